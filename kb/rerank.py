"""Cross-encoder reranking of fused candidates (sentence_transformers.CrossEncoder).

No reranker weights ship in any PyPI package we know of, so none is configured by default; any local
cross-encoder directory (or a hub id, when the network is allowed) works through the `reranker` setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from kb.errors import ModelNotFound
from kb.models.locate import in_hf_cache

RERANK_CANDIDATES = 40  # fused candidates rescored; beyond ~40 the cost grows and the gain does not


class CrossEncoderReranker:
    def __init__(self, spec: str, device: str | None = None, allow_network: bool = False, batch_size: int = 16,
                 max_candidates: int = RERANK_CANDIDATES):
        from kb.models.loading import quiet_loading

        path = Path(spec).expanduser()
        local = path.exists()
        if not local and not (allow_network or in_hf_cache(spec)):
            raise ModelNotFound(f"reranker {spec!r} is not a local directory and kb does not download without "
                                f"permission: pass --allow-network or point `reranker` to a local cross-encoder")
        from sentence_transformers import CrossEncoder

        with quiet_loading():
            self._model = CrossEncoder(str(path.resolve()) if local else spec, device=device,
                                       local_files_only=not allow_network)
        self.model_id = str(path.resolve()) if local else spec
        self.batch_size = batch_size
        self.max_candidates = max_candidates

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        out = self._model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                  show_progress_bar=False, convert_to_numpy=True)
        return [float(x) for x in out.reshape(len(texts), -1)[:, 0]]

    def rerank(self, query: str, hits: list) -> list:
        """Rescore the first `max_candidates` hits; the rest keep their fused order after them."""
        head, tail = hits[: self.max_candidates], hits[self.max_candidates:]
        scores = self.scores(query, [h.text for h in head])
        for h, s in zip(head, scores):
            h.scores["rerank"] = s
            h.score = s
        head.sort(key=lambda h: -h.scores["rerank"])
        return head + tail
