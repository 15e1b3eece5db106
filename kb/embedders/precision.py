"""Which numeric path the embedders run on: bf16 weights where the CPU multiplies bf16 natively, else fp32.

Measured on this machine (Xeon with AVX-512 BF16 and VNNI, 2 cores; bench/ingest.py, docs/embedding.md):
a bf16 copy of the weights with fp32 pooling encodes e5 ~2x faster than fp32 and its vectors agree with the
fp32 ones to a cosine >= 0.9999 (SciFact), so vectors from either path are interchangeable and the model
id does not change. On a CPU without AVX512_BF16 or AMX, oneDNN emulates bf16 and it is slower than fp32,
so there `auto` stays on fp32. torch's own `torch.ops.mkldnn._is_mkldnn_bf16_supported()` is not enough:
it is True on any AVX-512 CPU, emulated or not; the CPU flags are what decide.

Reading /proc/cpuinfo costs ~1 ms and imports nothing, so `kb doctor` can say which path is used and why.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

PRECISIONS = ("auto", "fp32", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32" or "bf16": the dtype the model's weights and activations use
    reason: str  # why, for `kb doctor`


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere, or when /proc/cpuinfo is unreadable)."""
    if platform.system() != "Linux":
        return set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> str | None:
    """The flag that makes bf16 fast on this CPU (avx512_bf16 or amx_bf16), or None."""
    flags = cpu_flags()
    return next((f for f in BF16_FLAGS if f in flags), None)


def choose_precision(requested: str = "auto", device: str | None = None) -> Precision:
    """The path for `requested` (the `embed_precision` setting) on `device` (None/"cpu": the CPU).
    Models on a GPU keep fp32 under `auto` (their own kernels decide there; not measured here)."""
    requested = (requested or "auto").lower()
    if requested not in PRECISIONS:
        raise ValueError(f"embed_precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "fp32":
        return Precision("fp32", "embed_precision = fp32")
    if requested == "bf16":
        return Precision("bf16", "embed_precision = bf16")
    if device not in (None, "cpu"):
        return Precision("fp32", f"auto: device {device}")
    flag = native_bf16()
    if flag:
        return Precision("bf16", f"auto: the CPU has {flag}")
    return Precision("fp32", "auto: the CPU has no avx512_bf16/amx_bf16 (bf16 would be emulated, slower)")
