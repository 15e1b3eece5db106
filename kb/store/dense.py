"""The dense (vector) index: hnswlib, cosine space, labels are chunk ids.

Updates are incremental (mark_deleted + add_items) until deleted entries pile up, then the index is
rebuilt from the vectors kept in the catalog, which stay the source of truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from kb.store.fsio import fs

M = 16
EF_CONSTRUCTION = 200
EF_SEARCH_MIN = 64
REBUILD_DELETED_FRACTION = 0.25


class DenseIndex:
    def __init__(self, index, dim: int, live: int):
        self._index = index
        self.dim = dim
        self.live = live  # elements not marked deleted

    def __len__(self) -> int:
        return self.live

    @classmethod
    def build(cls, dim: int, ids: Sequence[int], vectors: np.ndarray) -> "DenseIndex":
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=dim)
        index.init_index(max_elements=max(len(ids), 1), ef_construction=EF_CONSTRUCTION, M=M,
                         allow_replace_deleted=False)
        if len(ids):
            index.add_items(vectors, np.asarray(ids, dtype=np.int64))
        return cls(index, dim, len(ids))

    @classmethod
    def load(cls, path: Path, dim: int, live: int) -> "DenseIndex":
        """`live` (the catalog's chunk count) is needed because hnswlib cannot count its deleted marks."""
        import hnswlib

        if not path.is_file():
            raise FileNotFoundError(f"{path.name} is missing")
        index = hnswlib.Index(space="cosine", dim=dim)
        try:
            index.load_index(str(path), max_elements=0)
        except RuntimeError as e:
            raise OSError(f"{path.name} is unreadable: {e}") from None
        return cls(index, dim, live)

    @property
    def stored(self) -> int:
        """Elements in the file, deleted ones included."""
        return int(self._index.get_current_count())

    def needs_rebuild(self, removing: int) -> bool:
        total = self._index.get_current_count()
        deleted = total - self.live + removing
        return total > 0 and deleted / total > REBUILD_DELETED_FRACTION

    def update(self, remove_ids: Sequence[int], add_ids: Sequence[int], add_vectors: np.ndarray) -> None:
        for i in remove_ids:
            try:
                self._index.mark_deleted(int(i))
                self.live -= 1
            except RuntimeError:
                pass  # not in the index (never embedded): nothing to delete
        if len(add_ids):
            need = self._index.get_current_count() + len(add_ids)
            if need > self._index.get_max_elements():
                self._index.resize_index(need)
            self._index.add_items(add_vectors, np.asarray(add_ids, dtype=np.int64))
            self.live += len(add_ids)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        self._index.save_index(str(tmp))
        with open(tmp, "rb") as f:
            fs.fsync(f.fileno())
        fs.replace(tmp, path)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored (unit-length) vectors of these chunk ids, one row each."""
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._index.get_items([int(i) for i in ids]), dtype=np.float32)

    def search(self, vector: np.ndarray, k: int, filter_fn=None) -> list[tuple[int, float]]:
        """Top-k (chunk_id, cosine similarity)."""
        if self.live == 0:
            return []
        k = min(k, self.live)
        self._index.set_ef(max(EF_SEARCH_MIN, 2 * k))
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        while k > 0:
            try:
                labels, distances = self._index.knn_query(query, k=k, filter=filter_fn)
            except RuntimeError:  # fewer than k reachable (filter, deletions): ask for fewer
                k = k - 1 if k < 8 else (k * 3) // 4
                continue
            return [(int(l), float(1.0 - d)) for l, d in zip(labels[0], distances[0])]
        return []
