"""Which BM25 engine: rank-bm25 (the design card's) versus bm25s (kb's), same tokens, same Okapi scoring.

    pip install rank-bm25   # only this bench needs it
    python bench/bm25_engines.py [--chunks 100000] [--queries 50]

Prints per-query latency of each engine on a synthetic corpus of N chunks (SciFact abstracts repeated
and perturbed), and nDCG@10 of each on the SciFact test queries (documents indexed whole), so the choice
rests on speed at equal quality.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dataset, figure  # noqa: E402


def synthetic(token_lists: list[list[str]], n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        for toks in token_lists:
            if len(out) == n:
                break
            t = list(toks)
            rng.shuffle(t)  # same vocabulary statistics, different documents
            out.append(t[: max(8, int(len(t) * rng.uniform(0.5, 1.0)))])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    import bm25s
    from rank_bm25 import BM25Okapi

    from kb.evaluate import evaluate_run, load_beir
    from kb.text import tokenize_many

    data = load_beir(dataset("scifact"), "test")
    ids = list(data.corpus)
    doc_tokens = tokenize_many(f"{d['title']}\n{d['text']}" for d in data.corpus.values())
    qids = list(data.queries)
    q_tokens = tokenize_many(data.queries[q] for q in qids)

    # quality on the real corpus
    for name in ("rank_bm25", "bm25s"):
        if name == "rank_bm25":
            engine = BM25Okapi(doc_tokens, k1=1.2, b=0.75)
            score = engine.get_scores
        else:
            engine = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
            engine.index(doc_tokens, show_progress=False)
            vocab = engine.vocab_dict
            score = lambda q: engine.get_scores([t for t in q if t in vocab])  # noqa: E731
        run = {}
        for qid, q in zip(qids, q_tokens):
            s = np.asarray(score(q))
            run[qid] = [ids[i] for i in np.argsort(-s)[:100]]
        figure(f"{name}_scifact_ndcg@10", evaluate_run(run, data.qrels)["ndcg@10"])

    # latency at scale
    corpus = synthetic(doc_tokens, args.chunks)
    queries = q_tokens[: args.queries]
    t = time.perf_counter()
    bs = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    bs.index(corpus, show_progress=False)
    figure("bm25s_index_seconds", time.perf_counter() - t, "s")
    vocab = bs.vocab_dict
    lat = []
    for q in queries:
        t = time.perf_counter()
        s = bs.get_scores([x for x in q if x in vocab])
        np.argpartition(-s, 10)[:10]
        lat.append((time.perf_counter() - t) * 1000)
    figure("bm25s_query_p50_ms", statistics.median(lat), "ms")
    t = time.perf_counter()
    rb = BM25Okapi(corpus, k1=1.2, b=0.75)
    figure("rank_bm25_index_seconds", time.perf_counter() - t, "s")
    lat = []
    for q in queries[: max(5, args.queries // 5)]:
        t = time.perf_counter()
        s = rb.get_scores(q)
        np.argpartition(-s, 10)[:10]
        lat.append((time.perf_counter() - t) * 1000)
    figure("rank_bm25_query_p50_ms", statistics.median(lat), "ms")
    figure("chunks", len(corpus))


if __name__ == "__main__":
    main()
