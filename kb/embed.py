"""Embedders: turn text into L2-normalised float32 vectors.

Every backend implements the `Embedder` protocol; `load_embedder(spec)` picks one from a model spec
(see kb.models). torch and sentence-transformers are imported only when a model is actually loaded.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # recorded in the knowledge base; a different id means different vectors
    dim: int
    max_tokens: int  # longest input (in the model's own tokens, special tokens included) it reads whole

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model will see them, special tokens included."""

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> "np.ndarray":
        """(n, dim) float32, rows L2-normalised."""

    def embed_queries(self, texts: Sequence[str]) -> "np.ndarray":
        """(n, dim) float32, rows L2-normalised. Asymmetric models add their query prefix here."""


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local directory (or a hub id when the user allows the network)."""

    def __init__(self, model_id: str, path: str, device: str | None = None, local_only: bool = True):
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        self._model = SentenceTransformer(path, device=device, local_files_only=local_only)
        self.dim = int(self._model.get_sentence_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        self._tokenizer = self._model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        enc = self._tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in enc]

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


def text_hash(text: str) -> str:
    """Key of the embedding cache (together with the model id)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
