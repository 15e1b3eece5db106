"""The sentence-transformers backend: any sentence-transformers model from a local directory (`minilm` is
packaged), and reading such a directory's output dimension without loading it. torch and
sentence-transformers are imported only when a model is actually loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from kb.embedders.precision import choose_precision
from kb.models.loading import quiet_loading


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local directory (or a hub id when the user allows the network)."""

    def __init__(self, model_id: str, path: str, device: str | None = None, local_only: bool = True,
                 precision: str = "auto"):
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        with quiet_loading():
            self._model = SentenceTransformer(path, device=device, local_files_only=local_only)
        self.precision = choose_precision(precision, self._model.device.type)
        if self.precision.name == "bf16":
            _transformer_in_bf16(self._model)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_tokens = int(self._model.max_seq_length)
        self._counter = _token_counter(self._model.tokenizer)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._counter(texts) if texts else []

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32):
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vecs.astype(np.float32, copy=False)

    def embed_queries(self, texts: Sequence[str]):
        return self.embed_documents(texts)


def _transformer_in_bf16(model) -> None:
    """bf16 weights for the transformer module only, its outputs back in fp32 before pooling. Pooling and
    normalising in bf16 too (what `model.to(torch.bfloat16)` does) lose too much: cosine 0.998 to fp32 on
    SciFact. The hook sits on the sentence-transformers module: it calls the network's `.forward` itself,
    which bypasses hooks on the network."""
    import torch

    transformer = model[0]
    transformer.to(torch.bfloat16)

    def to_fp32(_module, _inputs, features):
        for key, value in features.items():
            if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
                features[key] = value.float()
        return features
    transformer.register_forward_hook(to_fp32)


def _token_counter(tokenizer):
    """Count tokens without truncation. A private copy of the fast (Rust) tokenizer is ~25% quicker than the
    transformers wrapper, stays silent about long inputs, and is unaffected by the truncation the model's
    own tokenizer switches on while encoding."""
    import copy

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        def count(texts):
            enc = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
            return [len(ids) for ids in enc]
        return count
    backend = copy.deepcopy(backend)
    backend.no_truncation()
    backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return lambda texts: [len(e.ids) for e in encode(list(texts), add_special_tokens=True)]


def sentence_transformers_dimension(directory: Path) -> int | None:
    """Output dimension from a sentence-transformers directory's module configs (the last Dense layer's
    out_features, else the Pooling width), or None when the files do not say or the weights are absent."""
    weights = ("model.safetensors", "pytorch_model.bin", "model.onnx")
    if not any((directory / w).is_file() for w in weights):
        return None
    try:
        modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        modules = []
    dim = None
    for m in modules:
        kind = str(m.get("type", ""))
        try:
            cfg = json.loads((directory / m.get("path", "") / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if kind.endswith(".Pooling") and cfg.get("word_embedding_dimension"):
            modes = sum(1 for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True) or 1
            dim = int(cfg["word_embedding_dimension"]) * modes
        elif kind.endswith(".Dense") and cfg.get("out_features"):
            dim = int(cfg["out_features"])
    return dim
