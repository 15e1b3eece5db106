"""e5's encoder in int8 on OpenVINO, for documents (kb.embedders.e5 decides when it is used).

Why: embedding is the whole cost of an ingest, and on a CPU with VNNI (AVX-512 VNNI, AVX-VNNI, AMX) int8
matrix products run at about twice the rate of bf16. Measured on this 2-core AVX-512 machine over SciFact
abstracts (docs/embedding.md, bench/ingest.py): OpenVINO int8 encodes ~1.4-1.7x as many texts per second as
kb's torch bf16 path; an int8 ingest runs ~2.6-3.0x as many chunks per second as an fp32 one.

What is quantized, and why the vectors stay interchangeable: the q/k/v, attention-output and FFN up-projection
products of layers 1-10 run in int8, with static per-tensor activation ranges and SmoothQuant, calibrated by
NNCF (OpenVINO's quantization library, rather than our own range statistics) on `calibration.txt` (64
passages kb ships, half English, half Chinese). The FFN down-projections read GELU outputs, whose long tail one
int8 range cannot hold (all quantized: cosine to fp32 0.9987 min on SciFact); with them in bf16 (fp32 on a CPU
without native bf16) 3 of 1,000 SciFact abstracts still fell to 0.9988; with the first and last layers also in
bf16, the lowest of 1,000 SciFact abstracts and 300 CMRC paragraphs is 0.99934, at the same speed. So these
vectors mix with stored fp32/bf16 ones and the model id does not change. Attention (softmax, the q.k and a.v
products) and LayerNorm run in bf16/fp32.

Building costs ~25-40 s (graph, then NNCF's calibration passes), so it happens once per machine and the result
is kept in the models dir (`<models_dir>/e5-int8/<key>/`, ~44 MB), keyed by the weight file, the OpenVINO and
NNCF versions, the calibration set and this recipe. The build runs in a child process (`python -m
kb.embedders.e5_int8_build`): NNCF imports torch, scikit-learn and scipy and holds the calibration statistics, none of
which the ingest should keep resident. A file lock makes concurrent builders wait for one another; the folder
appears whole (written beside it, then renamed) or not at all.

Graph: x [batch, tokens, hidden] (word embeddings, dequantised by the caller), mask [batch, tokens] int64 (1 =
token) -> y [batch, tokens, hidden], the last hidden state; positions and token type 0 are added inside, as in
kb.embedders.e5.TorchEncoder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

RECIPE = ("e5-int8-v2: nncf transformer, smoothquant 0.95, ffn down-projections and the first and last layers "
          "unquantized, calibration.txt")
CALIBRATION_FILE = "calibration.txt"
MODEL_XML = "encoder.xml"
# How batches are shaped for this engine: OpenVINO's CPU plugin keeps memory for every input shape it has run
# (kernels and buffers, ~2 MB each), and an ingest's length-sorted batches have hundreds of shapes: a probe of
# batches of 32 rows over 68 lengths grew to 3.5 GB resident. At most 4,096 tokens a batch (8 rows of 512),
# lengths padded to a multiple of 32 and rows to a multiple of 4, it levels off at ~340 MB, at the same
# tokens/s (kb.embedders.e5._encode; docs/embedding.md).
SHAPES = (4096, 32, 4)


def calibration_texts() -> list[str]:
    """The passages NNCF calibrates the activation ranges on (shipped with kb, separated by `-----` lines)."""
    text = resources.files("kb.embedders").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n-----\n") if p.strip()]


def cache_key(weights_path: Path) -> str:
    """What the built model depends on: the weight file, the engine and quantizer versions, the recipe."""
    from importlib.metadata import version

    st = weights_path.stat()
    h = hashlib.sha256()
    with open(weights_path, "rb") as f:
        h.update(f.read(1 << 20))  # the header and vocabulary: which model; size + the first MB identify the file
    calibration = resources.files("kb.embedders").joinpath(CALIBRATION_FILE).read_bytes()
    for part in (str(st.st_size), version("openvino"), version("nncf"), RECIPE,
                 hashlib.sha256(calibration).hexdigest()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def build_model(weights: Mapping[str, "np.ndarray"], layers: int, heads: int, eps: float):
    """The fp32 OpenVINO model (post-LN BERT, as TorchEncoder computes it); matrix products named l{i}.{qkv,ao,
    fi,fo} so the quantizer can be told which to leave alone."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as op

    hidden = weights["emb.ln.w"].shape[0]
    f32 = lambda a: op.constant(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    x_in = op.parameter([-1, -1, hidden], np.float32, name="x")
    mask_in = op.parameter([-1, -1], np.int64, name="mask")

    def norm(x, w, b):
        return op.add(op.multiply(op.mvn(x, op.constant(np.array([-1], dtype=np.int64)), True, eps, "inside_sqrt"),
                                  f32(w)), f32(b))

    def linear(x, w, b, name):
        return op.add(op.matmul(x, f32(w), False, True, name=name), f32(b))

    length = op.gather(op.shape_of(x_in), op.constant(np.array([1], dtype=np.int64)), op.constant(np.int64(0)))
    position_type = op.slice(f32(weights["emb.pos"] + weights["emb.type"][0]),
                             op.constant(np.array([0], dtype=np.int64)), length,
                             op.constant(np.array([1], dtype=np.int64)), op.constant(np.array([0], dtype=np.int64)))
    x = norm(op.add(x_in, position_type), weights["emb.ln.w"], weights["emb.ln.b"])
    keep = op.unsqueeze(op.convert(mask_in, "boolean"), op.constant(np.array([1, 2], dtype=np.int64)))
    heads_shape = op.constant(np.array([0, 0, heads, hidden // heads], dtype=np.int64))
    to_heads = op.constant(np.array([0, 2, 1, 3], dtype=np.int64))
    merged = op.constant(np.array([0, 0, hidden], dtype=np.int64))
    for i in range(layers):
        def w(short):
            return weights[f"l{i}.{short}"]

        qkv = linear(x, np.concatenate([w(f"{p}.w") for p in "qkv"]), np.concatenate([w(f"{p}.b") for p in "qkv"]),
                     f"l{i}.qkv")
        q, k, v = (op.transpose(op.reshape(part, heads_shape, True), to_heads)
                   for part in op.split(qkv, op.constant(np.int64(-1)), 3).outputs())
        a = op.reshape(op.transpose(op.scaled_dot_product_attention(q, k, v, keep), to_heads), merged, True)
        x = norm(op.add(linear(a, w("ao.w"), w("ao.b"), f"l{i}.ao"), x), w("aln.w"), w("aln.b"))
        ffn = linear(op.gelu(linear(x, w("fi.w"), w("fi.b"), f"l{i}.fi"), "erf"), w("fo.w"), w("fo.b"), f"l{i}.fo")
        x = norm(op.add(ffn, x), w("oln.w"), w("oln.b"))
    return ov.Model([op.result(x, name="y")], [x_in, mask_in], "e5-encoder")


def unquantized(layers: int) -> list[str]:
    """The matrix products that stay in bf16/fp32: every FFN down-projection, and all of the first and last layer."""
    return [f"l{i}.fo" for i in range(layers)] + [f"l{i}.{p}" for i in (0, layers - 1) for p in ("qkv", "ao", "fi")]


def quantize(model, samples: list[tuple["np.ndarray", "np.ndarray"]], layers: int):
    """The int8 model: NNCF's post-training quantization for transformers, `unquantized` left out."""
    import nncf

    return nncf.quantize(model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(samples), ignored_scope=nncf.IgnoredScope(names=unquantized(layers)))


def _folder(weights_path: Path, cache_dir: Path) -> Path:
    return Path(cache_dir) / "e5-int8" / cache_key(weights_path)


def built_folder(weights_path: Path, cache_dir: Path) -> Path | None:
    """The folder of the int8 model for `weights_path` when it has been built, else None."""
    folder = _folder(weights_path, cache_dir)
    return folder if (folder / MODEL_XML).is_file() else None


def ensure_built(weights_path: Path, cache_dir: Path, timeout: float = 1800) -> Path:
    """The folder holding the int8 model for `weights_path`, built first (in a child process) when absent."""
    from filelock import FileLock

    target = _folder(weights_path, cache_dir)
    if (target / MODEL_XML).is_file():
        return target
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".build.lock"), timeout=timeout):
        if (target / MODEL_XML).is_file():  # another process built it while we waited
            return target
        for stale in [*root.glob(".partial-*"), target]:  # left by a builder killed with -9: nobody is using them
            shutil.rmtree(stale, ignore_errors=True)
        partial = root / f".partial-{os.getpid()}"
        partial.mkdir()
        try:
            log.info("building e5's int8 encoder once for this machine (~25-40 s) into %s", target)
            done = subprocess.run([sys.executable, "-m", "kb.embedders.e5_int8_build", str(weights_path), str(partial)],
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0 or not (partial / MODEL_XML).is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
                raise RuntimeError(f"building the int8 encoder failed: {tail[0]}")
            os.replace(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return target


class OpenVinoEncoder:
    """The compiled int8 encoder: `run(x, mask)` -> the last hidden state (fp32)."""

    def __init__(self, folder: Path, threads: int, bf16: bool):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": max(1, int(threads)), "PERFORMANCE_HINT": "LATENCY",
                  # what stays out of int8 (the FFN down-projections, attention, LayerNorm) runs in bf16 where the
                  # CPU multiplies bf16 natively, else in fp32
                  "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
        self._compiled = core.compile_model(core.read_model(Path(folder) / MODEL_XML), "CPU", config)
        self._request = self._compiled.create_infer_request()

    def run(self, x: "np.ndarray", mask: "np.ndarray") -> "np.ndarray":
        import numpy as np

        out = self._request.infer({"x": np.ascontiguousarray(x, dtype=np.float32),
                                   "mask": np.ascontiguousarray(mask, dtype=np.int64)})
        return out[0].copy()  # the request reuses its output buffer
