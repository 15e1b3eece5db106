"""e5 query latency before/after the ONNX Runtime query path, in one run, beside the floor of each engine,
and whether the new query vectors are interchangeable with the old ones.

    python bench/query_latency.py [--queries 40] [--rounds 5] [--all-queries]

The queries are what bench/ingest.py's `query_p50` times: the first --queries of SciFact and of CMRC 2018 dev,
each embedded alone (`embed_queries([q])`). Paths, all in this process, timed in blocks (every query once)
that take turns over --rounds rounds, so a change of load on the shared machine hits them all alike:
  before         E5Embedder(query_engine="torch"): the torch path in the `auto` precision (transformers'
                 BertModel when ONNX Runtime came in; since issue 10's memory work the plain-torch encoder)
  after          E5Embedder(): queries on ONNX Runtime fp32 (kb.embedders.e5_onnx)
  floor_torch    the bare torch encoder's forward on the same inputs (already tokenised and looked up)
  floor_onnx     the bare ONNX Runtime session run on the same inputs
  before_1thread the before path with torch.set_num_threads(1) (for the thread-count question)
Prints each path's p50/p95 (median over rounds of each block's figure), the ratios after/before and
path/floor, the first-query cost of a fresh embedder (model or session built at first use), and the cosine
of the after vectors (one query at a time) to fp32 torch (batched) over SciFact's test queries and CMRC's
dev queries (--all-queries: every query of both files; default: the 300 SciFact test queries and the first
500 CMRC ones). Goal (issue 11): after p50 <= 12 ms on a quiet machine, cosine min >= 0.999.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import dataset, figure, read_jsonl  # noqa: E402


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=40, help="per dataset, as bench/ingest.py")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--all-queries", action="store_true", help="cosine over every query of both datasets")
    args = ap.parse_args()

    import numpy as np
    import torch

    from kb.embedders.e5 import E5Embedder

    sci = read_jsonl(dataset("scifact") / "queries.jsonl")
    cmrc = read_jsonl(dataset("cmrc2018-dev") / "queries.jsonl")
    queries = [q["text"] for q in sci[:args.queries]] + [q["text"] for q in cmrc[:args.queries]]

    # first-query cost of a fresh embedder: what a one-shot `kb search` pays once
    for name, kwargs in (("before", {"query_engine": "torch"}), ("after", {})):
        t0 = time.perf_counter()
        e = E5Embedder(**kwargs)
        load = (time.perf_counter() - t0) * 1000
        figure(f"{name}.load", load, "ms")
        figure(f"{name}.first_query", timed(e.embed_queries, [queries[0]]), "ms")
        del e

    before, after = E5Embedder(query_engine="torch"), E5Embedder()
    after.embed_queries(["warm up"])
    print(f"before.path torch {before.precision.name} ({before.precision.reason}), {torch.get_num_threads()} threads")
    print(f"after.path {after.query_engine}"
          + (f" fp32, {after._onnx.threads} threads" if after.query_engine == "onnxruntime" else  # noqa: SLF001
             f" (fell back: {after.query_fallback})"))

    # the floors: the same inputs, tokenised and looked up beforehand, through each bare engine
    inputs = []
    for q in queries:
        ids = [before._bos, *before._content_ids(["query: " + q])[0], before._eos]  # noqa: SLF001
        from kb.embedders.e5 import _dequantise  # noqa: PLC0415 (bench looks inside)

        embeds = _dequantise(before._words[np.array([ids])]).reshape(1, len(ids), 384)  # noqa: SLF001
        inputs.append((embeds, np.ones((1, len(ids)), dtype=np.int64)))
    model = before._model  # noqa: SLF001

    def floor_torch(x):
        with torch.inference_mode():
            model(torch.from_numpy(x[0]).to(model.dtype), torch.from_numpy(x[1]))

    def floor_onnx(x):
        after._onnx.run(x[0] + after._position_type[:x[0].shape[1]], x[1])  # noqa: SLF001

    threads = torch.get_num_threads()
    paths = {
        "before": (threads, lambda i: before.embed_queries([queries[i]])),
        "after": (threads, lambda i: after.embed_queries([queries[i]])),
        "floor_torch": (threads, lambda i: floor_torch(inputs[i])),
        "floor_onnx": (threads, lambda i: floor_onnx(inputs[i])),
        "before_1thread": (1, lambda i: before.embed_queries([queries[i]])),
    }
    p50s = {k: [] for k in paths}
    p95s = {k: [] for k in paths}
    names = list(paths)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            n_threads, fn = paths[name]
            torch.set_num_threads(n_threads)
            fn(0)
            times = [timed(fn, i) for i in range(len(queries))]
            p50s[name].append(statistics.median(times))
            p95s[name].append(float(np.percentile(times, 95)))
    torch.set_num_threads(threads)
    p50 = {k: statistics.median(v) for k, v in p50s.items()}
    for name in names:
        figure(f"{name}.p50", p50[name], "ms")
        figure(f"{name}.p95", statistics.median(p95s[name]), "ms")
        print(f"{name}.p50_per_round {' '.join(f'{x:.1f}' for x in p50s[name])}")
    figure("after_vs_before.p50_ratio", p50["after"] / p50["before"])
    figure("before_vs_floor_torch.p50_ratio", p50["before"] / p50["floor_torch"])
    figure("after_vs_floor_onnx.p50_ratio", p50["after"] / p50["floor_onnx"])

    # interchangeable? the after path, one query at a time, against torch fp32 in batches
    qrels = (dataset("scifact") / "qrels" / "test.tsv").read_text().splitlines()[1:]
    test_ids = {line.split("\t")[0] for line in qrels}
    if args.all_queries:
        sets = {"scifact_all": [q["text"] for q in sci], "cmrc_dev_all": [q["text"] for q in cmrc]}
    else:
        sets = {"scifact_test": [q["text"] for q in sci if q["_id"] in test_ids],
                "cmrc_dev_first500": [q["text"] for q in cmrc[:500]]}
    reference = E5Embedder(precision="fp32", query_engine="torch")
    for name, texts in sets.items():
        ref = reference.embed_queries(texts)
        new = np.concatenate([after.embed_queries([t]) for t in texts])
        old = before.embed_queries(texts)  # today's path (bf16 on this CPU), batched
        cos, cos_old = (ref * new).sum(axis=1), (ref * old).sum(axis=1)
        figure(f"{name}.queries", len(texts))
        print(f"{name}.after_vs_fp32.cosine_min {float(cos.min()):.6f} mean {float(cos.mean()):.6f}")
        print(f"{name}.before_vs_fp32.cosine_min {float(cos_old.min()):.6f} mean {float(cos_old.mean()):.6f}")
        print(f"{name}.after_vs_before.cosine_min {float((new * old).sum(axis=1).min()):.6f}", flush=True)


if __name__ == "__main__":
    main()
