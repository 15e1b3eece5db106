"""Choosing the fusion defaults (RRF k, candidate depth, BM25 weight) on a BEIR split, through kb's own
retrieval: each query's dense and BM25 lists are computed once at full depth by kb's Searcher, then every
combination is fused with kb.retrieve.rrf and scored with kb.evaluate. Tune on `train`, confirm on `test`
with `kb eval`.

    python bench/tune_fusion.py KB_DIR DATASET_DIR [--split train] [--limit N]

KB_DIR: a knowledge base that holds the dataset's corpus, e.g. one left by `kb --kb DIR eval DATASET_DIR`.
Prints `ndcg@10_k{K}_c{C}_w{W} value` per combination, then the best one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure  # noqa: E402

KS = (5, 10, 20, 40, 60, 100)
DEPTHS = (20, 50, 100, 200)
BM25_WEIGHTS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kb_dir", type=Path)
    ap.add_argument("dataset_dir", type=Path)
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()

    from kb.config import load_settings
    from kb.evaluate import doc_id_of, evaluate_run, load_beir
    from kb.retrieve import open_searcher, rrf

    dataset = load_beir(args.dataset_dir, args.split)
    queries = list(dataset.queries.items())[: args.limit or None]
    searcher = open_searcher(load_settings(str(args.kb_dir.resolve())))
    depth = max(DEPTHS)
    per_query = {}
    doc_of = {}
    for qid, text in queries:
        lists = {}
        for mode in ("dense", "bm25"):
            r = searcher.search(text, k=depth, mode=mode, candidates=depth, rerank=False)
            lists[mode] = [h.chunk_id for h in r.hits]
            doc_of.update((h.chunk_id, doc_id_of(h.path)) for h in r.hits)
        per_query[qid] = lists
    qrels = {qid: dataset.qrels[qid] for qid, _ in queries}

    def score(run_lists) -> float:
        run = {qid: [doc_of[c] for c in ids] for qid, ids in run_lists.items()}
        return evaluate_run(run, qrels)["ndcg@10"]

    for mode in ("dense", "bm25"):
        figure(f"ndcg@10_{mode}", score({q: lists[mode] for q, lists in per_query.items()}))
    best = (0.0, None)
    for k in KS:
        for c in DEPTHS:
            for w in BM25_WEIGHTS:
                run = {q: [i for i, _ in rrf([lists["dense"][:c], lists["bm25"][:c]], k, [1.0, w])][:200]
                       for q, lists in per_query.items()}
                value = score(run)
                figure(f"ndcg@10_k{k}_c{c}_w{w}", value)
                best = max(best, (value, (k, c, w)), key=lambda x: x[0])
    figure(f"best_ndcg@10_k{best[1][0]}_c{best[1][1]}_w{best[1][2]}", best[0])
    searcher.close()


if __name__ == "__main__":
    main()
