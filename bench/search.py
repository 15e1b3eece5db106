"""Warm in-process query latency of kb search (bm25, dense, hybrid) at 10k and 100k chunks, beside the
floor: bare hnswlib knn_query + bare bm25s scoring of the same queries, as a ratio. Also the peak memory
of a process that has loaded the 100k-chunk knowledge base.

    python bench/search.py [--sizes 10000 100000] [--queries 200] [--model minilm]

The corpus is SciFact's abstracts chunked by kb; larger sizes repeat them with perturbed token order and
vectors (random noise, re-normalised), which keeps the vocabulary and the vector geometry realistic.
Query vectors are computed once up front: the figures are retrieval latency; query embedding is
reported on its own line.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dataset, figure, read_jsonl  # noqa: E402


def build_kb(path: Path, n: int, base_texts, base_tokens, base_vecs, model_id: str, dim: int) -> None:
    from kb.document import Chunk
    from kb.store import Changes, DocumentUpdate, EmbeddingInfo, KnowledgeBase

    rng = np.random.default_rng(n)
    kb = KnowledgeBase(path)
    emb = EmbeddingInfo(model_id, "bench", dim)
    with kb.writer() as w:
        changes = Changes()
        per_doc = 10
        vectors = []
        for d in range(0, n, per_doc):
            chunks = []
            for i in range(d, min(n, d + per_doc)):
                j = i % len(base_texts)
                rep = i // len(base_texts)
                toks = list(base_tokens[j])
                if rep:
                    rng.shuffle(toks)
                    toks = toks[: max(8, int(len(toks) * rng.uniform(0.6, 1.0)))]
                    v = base_vecs[j] + rng.normal(0, 0.35 / np.sqrt(dim), dim).astype(np.float32)
                    v /= np.linalg.norm(v)
                else:
                    v = base_vecs[j]
                text = f"{rep}:{base_texts[j]}"
                chunk = Chunk(text, i - d, text, n_tokens=len(toks), tokens=tuple(toks))
                vectors.append((chunk.text_hash, v.astype(np.float32).tobytes()))
                chunks.append(chunk)
            changes.updates.append(DocumentUpdate(path=f"/bench/doc{d // per_doc}.txt", sha256=str(d), size=1,
                                                  mtime=0.0, format="text", title=None, pages=None, status="ok",
                                                  chunks=chunks))
        w.catalog.store_vectors(model_id, vectors)
        w.commit(changes, emb, "bench")


def latency(fn, queries) -> tuple[float, float]:
    for q in queries[:5]:
        fn(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def peak_memory_mb(kb_path: Path) -> float:
    """Peak RSS of a fresh process that opens the knowledge base for search. Read from VmHWM: getrusage's
    ru_maxrss survives fork + exec, so it would report this (large) bench process instead."""
    code = ("from kb.store import KnowledgeBase; from kb.retrieve import Searcher\n"
            f"s = Searcher(KnowledgeBase({str(kb_path)!r}))\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.strip()) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--model", default="minilm")
    args = ap.parse_args()

    from kb.chunking import chunk_document
    from kb.document import Document, Section
    from kb.embedders import load_embedder
    from kb.retrieve import CANDIDATES, Searcher
    from kb.store import KnowledgeBase
    from kb.text import tokenize

    data = dataset("scifact")
    corpus = read_jsonl(data / "corpus.jsonl")
    queries = [q["text"] for q in read_jsonl(data / "queries.jsonl")][: args.queries]
    embedder = load_embedder(args.model)
    texts = []
    for d in corpus:
        doc = Document(Path(d["_id"]), "text", d["title"], [Section(d["text"])])
        texts += [c.index_text for c in chunk_document(doc, embedder.count_tokens, embedder.max_tokens)]
    tokens = [tokenize(t) for t in texts]
    vecs = embedder.embed_documents(texts, batch_size=64)
    t = time.perf_counter()
    qvecs = embedder.embed_queries(queries)
    figure("query_embed_ms_per_query", (time.perf_counter() - t) * 1000 / len(queries), "ms")
    qcache = {q: v for q, v in zip(queries, qvecs)}

    class Cached:
        """The real embedder's query vectors, computed up front."""
        model_id, dim = embedder.model_id, embedder.dim

        def embed_queries(self, qs):
            return np.stack([qcache[q] for q in qs])

    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "kb"
            t = time.perf_counter()
            build_kb(path, n, texts, tokens, vecs, embedder.model_id, embedder.dim)
            figure(f"n{n}_build_seconds", time.perf_counter() - t, "s")
            s = Searcher(KnowledgeBase(path), lambda: Cached())
            for mode in ("bm25", "dense", "hybrid"):
                p50, p95 = latency(lambda q: s.search(q, k=10, mode=mode), queries)
                figure(f"n{n}_{mode}_p50_ms", p50, "ms")
                figure(f"n{n}_{mode}_p95_ms", p95, "ms")
            # the floor: the same indexes queried bare, same candidate depth, no fusion, no catalog
            qtok = {q: tokenize(q) for q in queries}
            lex, dense = s.lexical, s.dense
            vocab = lex._retriever.vocab_dict

            def floor(q):
                sc = lex._retriever.get_scores([x for x in qtok[q] if x in vocab])
                np.argpartition(-sc, CANDIDATES)[:CANDIDATES]
                dense._index.knn_query(qcache[q].reshape(1, -1), k=CANDIDATES)

            fp50, fp95 = latency(floor, queries)
            figure(f"n{n}_floor_p50_ms", fp50, "ms")
            figure(f"n{n}_floor_p95_ms", fp95, "ms")
            hp50, _ = latency(lambda q: s.search(q, k=10, mode="hybrid"), queries)
            figure(f"n{n}_hybrid_to_floor_ratio", hp50 / fp50)
            s.close()
            figure(f"n{n}_peak_rss_mb", peak_memory_mb(path), "MB")
    figure("bench_process_peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MB")


if __name__ == "__main__":
    main()
