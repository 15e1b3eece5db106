"""The BM25 index behind a small interface, so the engine can be swapped.

bm25s (sparse-matrix BM25, ~100x faster per query than rank-bm25's Python loop; see bench/bm25_engines.py)
is the engine. bm25s numbers documents 0..n-1, so a side array maps positions to chunk ids.
Tokenization (kb.text.tokenize) happens before this module: it indexes tokens, not text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from kb.store.fsio import fs

# Okapi BM25 as Lucene computes it; k1/b tuned with `kb eval` (see docs/retrieval.md).
BM25_PARAMS = {"method": "lucene", "k1": 1.2, "b": 0.75}


class LexicalIndex:
    def __init__(self, retriever, ids: np.ndarray):
        self._retriever = retriever
        self.ids = ids

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def build(cls, ids: Sequence[int], token_lists: Sequence[Sequence[str]]) -> "LexicalIndex":
        import bm25s

        retriever = bm25s.BM25(**BM25_PARAMS)
        if len(ids):
            retriever.index([list(t) for t in token_lists], show_progress=False)
        return cls(retriever, np.asarray(ids, dtype=np.int64))

    def save(self, directory: Path) -> None:
        """Write to `directory` atomically: a temp dir renamed into place."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "ids.npy", self.ids)
        if len(self):
            self._retriever.save(str(tmp), show_progress=False)
        (tmp / "kb-lexical.json").write_text(json.dumps({"count": len(self), **BM25_PARAMS}))
        _fsync_dir_files(tmp)
        fs.replace(tmp, directory)

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        import bm25s

        ids = np.load(directory / "ids.npy")
        if ids.shape[0] == 0:
            return cls(bm25s.BM25(**BM25_PARAMS), ids)
        retriever = bm25s.BM25.load(str(directory), mmap=False, show_progress=False)
        return cls(retriever, ids)

    def coverage(self, query_tokens: Sequence[str]) -> float:
        """Share of the query's tokens that occur anywhere in the index (0 for an empty query or index)."""
        if not len(self) or not query_tokens:
            return 0.0
        vocab = self._retriever.vocab_dict
        return sum(t in vocab for t in query_tokens) / len(query_tokens)

    def search(self, query_tokens: Sequence[str], k: int, allowed: np.ndarray | None = None
               ) -> list[tuple[int, float]]:
        """Top-k (chunk_id, score) with score > 0; `allowed` is an optional boolean mask over positions."""
        if not len(self) or not query_tokens:
            return []
        vocab = self._retriever.vocab_dict
        known = [t for t in query_tokens if t in vocab]
        if not known:
            return []
        scores = self._retriever.get_scores(known)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        k = min(k, scores.shape[0])
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in top if scores[i] > 0]


def _fsync_dir_files(directory: Path) -> None:
    for p in directory.iterdir():
        with open(p, "rb") as f:
            fs.fsync(f.fileno())
