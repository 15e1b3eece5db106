"""Does `kb ask` answer English questions over Chinese documents, and still refuse unrelated ones? (issue 12)

    kb --kb KB eval ../shared/eval/cmrc2018-dev --mode bm25      # once: builds KB (any mode keeps it)
    python bench/ask_across.py --kb KB [--offtopic 20]

Answerable: the 30 hand-written English questions over CMRC (bench/crosslingual/cmrc2018-dev.en.queries.jsonl),
each judged against its paragraph; "cited" = a citation names that paragraph's document, "stated" = one of CMRC's
gold answer spans is in the answer or in the Chinese answer the model wrote before it was translated back (`pivot`).
Unrelated: --offtopic SciFact claims and as many calibration questions over SciFact abstracts (bench/calibration),
asked over the same Chinese corpus: the share refused.

Before and after in one run, the same code and model: the multilingual list off (weight 0: no list, so the
weak-evidence gate judges e5's cosines) against on (the default: the list is fused and the gate judges its top
cosine, kb.answer.evidence.MULTILINGUAL_FLOOR). Prints each question's outcome and the figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, dataset, figure, read_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", required=True, type=Path)
    ap.add_argument("--offtopic", type=int, default=20, help="SciFact claims and calibration questions, each")
    ap.add_argument("--queries", type=Path, default=REPO / "bench" / "crosslingual" / "cmrc2018-dev.en.queries.jsonl",
                    help="English questions with CMRC dev query ids (default: the 30 hand-written ones)")
    ap.add_argument("--after-only", action="store_true", help="only the defaults (skip the run with the list off)")
    args = ap.parse_args()

    from kb.answer import Asker, AskOptions
    from kb.config import load_settings
    from kb.evaluate import doc_id_of, load_beir
    from kb.llm import load_llm
    from kb.retrieve import MULTILINGUAL_WEIGHT, open_searcher

    cmrc = dataset("cmrc2018-dev")
    qrels = load_beir(cmrc, "test").qrels
    gold = {r["id"]: r["answers"] for r in read_jsonl(cmrc / "qa.jsonl")}
    answerable = [q for q in read_jsonl(args.queries) if q.get("text")]
    claims = [r["text"] for r in read_jsonl(dataset("scifact") / "queries.jsonl")]
    random.Random(0).shuffle(claims)
    unrelated = claims[:args.offtopic] + [r["question"] for r in
                                          read_jsonl(REPO / "bench" / "calibration" / "en.jsonl")][:args.offtopic]

    settings = load_settings(str(args.kb.resolve()), {})
    searcher = open_searcher(settings)
    llm = load_llm(settings)
    asker = Asker(searcher, lambda: llm)
    options = AskOptions.from_settings(settings)
    runs = (("before", 0.0), ("after", MULTILINGUAL_WEIGHT))
    for label, weight in runs[1:] if args.after_only else runs:
        searcher.multilingual_weight = weight
        cited = stated = refused_weak = 0
        seconds = []
        for q in answerable:
            t = time.perf_counter()
            a = asker.ask(q["text"], options).to_dict()
            seconds.append(time.perf_counter() - t)
            relevant = set(qrels[q["_id"]])
            is_cited = any(doc_id_of(c["path"]) in relevant for c in a["citations"])
            written = a["answer"] + " " + ((a.get("pivot") or {}).get("answer") or "")
            is_stated = not a["abstained"] and any(g in written for g in gold[q["_id"]])
            cited += is_cited
            stated += is_stated
            refused_weak += a["abstain_reason"] == "weak evidence"
            print(f"# {label} {q['_id']} cited={is_cited} stated={is_stated} reason={a['abstain_reason']}"
                  f" P(yes)={a['answerable']}"
                  f" | {q['text']} -> {a['answer'][:100]!r}", flush=True)
        refused = 0
        for text in unrelated:
            a = asker.ask(text, options).to_dict()
            refused += a["abstained"]
            if not a["abstained"]:
                print(f"# {label} unrelated answered P(yes)={a['answerable']} | {text} -> {a['answer'][:100]!r}",
                      flush=True)
        n = len(answerable)
        figure(f"{label}_cited", cited / n)
        figure(f"{label}_stated", stated / n)
        figure(f"{label}_refused_weak_evidence", refused_weak / n)
        if unrelated:
            figure(f"{label}_unrelated_refused", refused / len(unrelated))
        figure(f"{label}_p50_answer", statistics.median(seconds), "s")
    searcher.close()


if __name__ == "__main__":
    main()
