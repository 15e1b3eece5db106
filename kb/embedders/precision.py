"""Which numeric path the embedders run on: bf16 weights where the CPU multiplies bf16 natively, else fp32; int8
(e5 only, OpenVINO, on a CPU with VNNI) where it can run (see AUTO_INT8).

Measured on this machine (Xeon with AVX-512 BF16 and VNNI, 2 cores; bench/ingest.py, docs/embedding.md):
a bf16 copy of the weights with fp32 pooling encodes e5 ~2x faster than fp32 and its vectors agree with the
fp32 ones to a cosine >= 0.9999 (SciFact), so vectors from either path are interchangeable and the model
id does not change. On a CPU without AVX512_BF16 or AMX, oneDNN emulates bf16 and it is slower than fp32,
so there `auto` stays on fp32. torch's own `torch.ops.mkldnn._is_mkldnn_bf16_supported()` is not enough:
it is True on any AVX-512 CPU, emulated or not; the CPU flags are what decide.

e5's int8 path (kb.embedders.e5_openvino) keeps the FFN down-projections and the first and last layers in bf16,
which keeps its vectors within a cosine of 0.999 of fp32 (SciFact, CMRC) at ~1.4-1.7x bf16's speed; it needs
VNNI (AVX-512 VNNI, AVX-VNNI or AMX) to be fast and to be exact enough, and the openvino and nncf packages, so
it is used only there, even when asked for (NO_VNNI). Other models have no int8 path.

Reading /proc/cpuinfo costs ~1 ms and imports nothing, so `kb doctor` can say which path is used and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from kb.hardware import cpu_flags

PRECISIONS = ("auto", "fp32", "bf16", "int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
# auto picks int8 (for e5, on a CPU with VNNI, openvino and nncf installed). It was held back while int8 flipped
# tests/test_cli.py's sample search, through a near-tie among unrelated chunks at the top of the cross-language
# list; that list now weighs by how clearly its best stands out (kb.retrieve.standout), and the flip is gone
# (docs/embedding.md). False makes int8 opt-in again (embed_precision = int8).
AUTO_INT8 = True


# Why an explicit int8 is not honoured on a CPU without VNNI (measured on an AVX2-only AMD EPYC, 300 SciFact +
# CMRC texts, docs/embedding.md): the vectors fall to cosine 0.9965 of fp32's (87 of 300 under the 0.999 that
# keeps them interchangeable), and it is no faster than torch fp32 (4.7 against 5.2 texts/s). The likely cause:
# without VNNI, int8 kernels sum u8 x s8 products in pairs into saturating 16-bit lanes (AVX2's vpmaddubsw).
NO_VNNI = "the CPU has no VNNI (int8 would be slower than fp32 here and its vectors drift from fp32's)"


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32", "bf16" or "int8": the arithmetic of the model's matrix products
    reason: str  # why, for `kb doctor`


def native_bf16() -> str | None:
    """The flag that makes bf16 fast on this CPU (avx512_bf16 or amx_bf16), or None."""
    flags = cpu_flags()
    return next((f for f in BF16_FLAGS if f in flags), None)


def native_int8() -> str | None:
    """The flag that makes int8 matrix products fast on this CPU (AMX, AVX-512 VNNI or AVX-VNNI), or None."""
    flags = cpu_flags()
    return next((f for f in INT8_FLAGS if f in flags), None)


def int8_missing() -> list[str]:
    """The packages e5's int8 path needs that are not installed (looked up, not imported)."""
    import importlib.util

    return [m for m in ("openvino", "nncf") if importlib.util.find_spec(m) is None]


def choose_precision(requested: str = "auto", device: str | None = None, int8: bool = False) -> Precision:
    """The path for `requested` (the `embed_precision` setting) on `device` (None/"cpu": the CPU); `int8`: the
    model has an int8 path (e5). Models on a GPU keep fp32 under `auto` (their own kernels decide there; not
    measured here)."""
    requested = (requested or "auto").lower()
    if requested not in PRECISIONS:
        raise ValueError(f"embed_precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "fp32":
        return Precision("fp32", "embed_precision = fp32")
    if requested == "bf16":
        return Precision("bf16", "embed_precision = bf16")
    on_cpu = device in (None, "cpu")
    if requested == "int8":
        missing = int8_missing() if int8 and on_cpu else []
        if int8 and on_cpu and not missing and native_int8():
            return Precision("int8", "embed_precision = int8")
        why = ("this model has no int8 path" if not int8 else f"device {device}" if not on_cpu
               else f"{' and '.join(missing)} not installed" if missing else NO_VNNI)
        fallback = choose_precision("auto", device)
        return Precision(fallback.name, f"embed_precision = int8, but {why}: {fallback.reason}")
    if not on_cpu:
        return Precision("fp32", f"auto: device {device}")
    if AUTO_INT8 and int8 and (flag := native_int8()) and not int8_missing():
        return Precision("int8", f"auto: the CPU has {flag}")
    flag = native_bf16()
    if flag:
        return Precision("bf16", f"auto: the CPU has {flag}")
    return Precision("fp32", "auto: the CPU has no avx512_bf16/amx_bf16 (bf16 would be emulated, slower)")
