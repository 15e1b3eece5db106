"""Embedders: turn text into L2-normalised float32 vectors.

Every backend implements the `Embedder` protocol; `load_embedder(spec)` picks one from a model spec
(see kb.models). torch and sentence-transformers are imported only when a model is actually loaded.
"""

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


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local directory (or a hub id when the user allows the network)."""

    def __init__(self, model_id: str, path: str, device: str | None = None, local_only: bool = True):
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        with _quiet_loading():
            self._model = SentenceTransformer(path, device=device, local_files_only=local_only)
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


class _quiet_loading:
    """Model loading prints progress bars and deprecation chatter on stderr; kb reports loading itself."""

    def __enter__(self):
        import logging
        import warnings

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore", FutureWarning)
        self._level = logging.getLogger("transformers").level
        logging.getLogger("transformers").setLevel(logging.ERROR)
        try:
            from transformers.utils import logging as hf_logging

            self._bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        except Exception:
            self._bars = None
        return self

    def __exit__(self, *exc):
        import logging

        logging.getLogger("transformers").setLevel(self._level)
        if self._bars:
            from transformers.utils import logging as hf_logging

            hf_logging.enable_progress_bar()
        self._warnings.__exit__(*exc)
        return False
