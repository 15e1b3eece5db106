"""Calibrating abstention: how strong is the retrieval evidence for questions the documents answer, and for
questions they do not?

    python bench/abstain.py [--embedding-model e5] [--offtopic 150] [--dump features.jsonl]

Knowledge base: sample_docs. Answerable: the questions of sample_docs/QUESTIONS.md. Off-topic: its off-topic
questions plus --offtopic CMRC 2018 questions (Chinese) and as many SciFact claims (English) from
../shared/eval, none of which the handbook answers. For the evidence features of kb.answer (top dense
cosine, dense margin over the median candidate, top BM25 score) it prints, per candidate threshold, the share
of answerable questions that would be refused (must stay ~0) and of off-topic ones that would be caught.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, dataset, figure, read_jsonl  # noqa: E402
from answers import load_questions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedding-model", default=None)
    ap.add_argument("--offtopic", type=int, default=150)
    ap.add_argument("--dump", type=Path, default=None)
    args = ap.parse_args()

    from kb.answer import evidence
    from kb.config import load_settings
    from kb.ingest import IngestOptions, ingest_with_settings
    from kb.retrieve import open_searcher

    questions, off_topic = load_questions()
    rng = random.Random(0)
    cmrc = [q["text"] for q in read_jsonl(dataset("cmrc2018-dev") / "queries.jsonl")]
    scifact = [q["text"] for q in read_jsonl(dataset("scifact") / "queries.jsonl")]
    unrelated = rng.sample(cmrc, args.offtopic) + rng.sample(scifact, args.offtopic)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        flags = {"embedding_model": args.embedding_model} if args.embedding_model else {}
        settings = load_settings(str(Path(tmp) / "kb"), flags)
        ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[REPO / "sample_docs"]))
        searcher = open_searcher(settings)
        for kind, texts in (("answerable", [q["question"] for q in questions]),
                            ("offtopic", [q["question"] for q in off_topic] + unrelated)):
            for text in texts:
                r = searcher.search(text, k=5, mode="hybrid", rerank=False)
                rows.append({"kind": kind, "q": text, **evidence(r.list_scores)})
        searcher.close()
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    ans = [r for r in rows if r["kind"] == "answerable"]
    off = [r for r in rows if r["kind"] == "offtopic"]
    for feature in ("dense_top", "dense_margin", "bm25_top"):
        figure(f"answerable_min_{feature}", min(r[feature] for r in ans))
        values = sorted({round(r[feature], 3) for r in rows})
        for t in values[:: max(1, len(values) // 12)]:
            refused = sum(r[feature] < t for r in ans) / len(ans)
            caught = sum(r[feature] < t for r in off) / len(off)
            figure(f"{feature}<{t}_refuses_answerable", refused)
            figure(f"{feature}<{t}_catches_offtopic", caught)


if __name__ == "__main__":
    main()
