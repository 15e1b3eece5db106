"""The weak-evidence gate for English questions over Chinese documents: does the evidence it reads separate
answerable questions from unrelated ones? (issue 12)

    kb --kb CMRC_KB eval ../shared/eval/cmrc2018-dev --mode bm25      # once: builds the knowledge base
    python bench/gate_across.py --kb CMRC_KB

Answerable English questions over CMRC: the 30 hand-written ones (bench/crosslingual/) and CMRC dev questions
1,001-1,100 translated into English by the default LLM (computed once, cached beside the knowledge base; those
with Han characters left in are dropped). Unrelated: 150 SciFact claims and the 60 English calibration questions
over SciFact abstracts (bench/calibration/en.jsonl). For each: e5's top cosine and the gate's verdict on it
(kb.answer.evidence.WEAK_EVIDENCE), and the multilingual list's top cosine; then the share each threshold on the
latter would refuse.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, JsonCache, dataset, figure, read_jsonl  # noqa: E402

THRESHOLDS = (0.18, 0.20, 0.21, 0.22, 0.23, 0.24, 0.25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", required=True, type=Path)
    args = ap.parse_args()

    from kb.answer.evidence import evidence, weak_evidence
    from kb.answer.fusion import translate
    from kb.config import load_settings
    from kb.embedders.multilingual import multilingual_embedder
    from kb.evaluate import load_beir
    from kb.retrieve import open_searcher

    settings = load_settings(str(args.kb.resolve()), {})
    searcher = open_searcher(settings)
    cmrc = load_beir(dataset("cmrc2018-dev"), "test")
    cache = JsonCache(args.kb / "gate_across_translations.json")
    llm = []

    def english(text: str) -> str:
        if not llm:
            from kb.llm import load_llm

            llm.append(load_llm(settings))
        return translate(llm[0], text) or ""

    held_out = [cache.get(qid, lambda t=text: english(t)) for qid, text in list(cmrc.queries.items())[1000:1100]]
    claims = [r["text"] for r in read_jsonl(dataset("scifact") / "queries.jsonl")]
    random.Random(0).shuffle(claims)
    sets = {
        "answerable_hand_written": [r["text"] for r in
                                    read_jsonl(REPO / "bench" / "crosslingual" / "cmrc2018-dev.en.queries.jsonl")],
        "answerable_held_out": [t for t in held_out if t and not re.search(r"[\u4e00-\u9fff]", t)],
        "unrelated_scifact_claims": claims[:150],
        "unrelated_calibration": [r["question"] for r in read_jsonl(REPO / "bench" / "calibration" / "en.jsonl")],
    }
    model = multilingual_embedder()
    searcher.multilingual_weight = 0.0  # e5's evidence as the gate read it before
    tops: dict[str, list[float]] = {}
    for name, questions in sets.items():
        e5_refused, tops[name] = 0, []
        for q in questions:
            e5_refused += weak_evidence(evidence(searcher.search(q, k=4, rerank=False).list_scores),
                                        searcher.meta.get("embedding_model"))
        index = searcher.multilingual_index
        tops[name] = [index.search(v, 1)[0][1] for v in model.embed_queries(questions)]
        figure(f"{name}_questions", len(questions))
        figure(f"{name}_e5_gate_refuses", e5_refused / len(questions))
        figure(f"{name}_multilingual_top_min", min(tops[name]))
        figure(f"{name}_multilingual_top_p50", statistics.median(tops[name]))
    for t in THRESHOLDS:
        print(f"multilingual top < {t:.2f} refuses: " + ", ".join(
            f"{name} {sum(x < t for x in values) / len(values):.2f}" for name, values in tops.items()), flush=True)
    searcher.close()


if __name__ == "__main__":
    main()
