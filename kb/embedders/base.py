"""The `Embedder` protocol: what every embedding backend provides (text -> L2-normalised float32 vectors)."""

from __future__ import annotations

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
