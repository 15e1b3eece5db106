"""Ingest throughput before and after the fast paths (bf16, e5's int8), in one run, beside the floor of each: the same chunk
texts encoded by the bare embedding model (`embed_documents`, batch 32; for a sentence-transformers model
that is SentenceTransformer.encode) in the same process.

    python bench/ingest.py [--limit N] [--model SPEC] [--datasets scifact cmrc2018-dev] [--precisions fp32 auto]

(`auto` is e5's OpenVINO int8 path on a CPU with VNNI, bf16 or fp32 elsewhere: `--precisions fp32 bf16 auto`
compares all three.)

For each dataset (its corpus.jsonl written out as one Markdown file per record) and each `embed_precision`,
a child process loads the embedder, ingests the folder (timed), reads its peak RSS (VmHWM) right after the
ingest, encodes the same chunk texts bare (the floor), embeds 40 of the dataset's queries one at a time
(p50 latency), re-runs the unchanged ingest and edits one file. Children run in turn, so the before/after
ratios come from one run on the same (shared, noisy) machine. Prints per dataset and precision:
chunks/s of kb and of the floor, their ratio (goal: >= 0.85), peak RSS, query p50; then the after/before
speed-ups (goal for e5: >= 3x, never below 2.5x) and the cosine of the two paths' vectors for the same
chunks (interchangeable when >= 0.999).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dataset, figure, read_jsonl  # noqa: E402

QUERIES = 40


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def child(args) -> None:
    """One dataset, one precision: prints a JSON object of figures; saves the floor vectors for the cosine."""
    import numpy as np

    from kb.embedders import load_embedder, resolve_embedder
    from kb.ingest import IngestOptions, ingest
    from kb.store import KnowledgeBase

    corpus = read_jsonl(dataset(args.dataset) / "corpus.jsonl")
    if args.limit:
        corpus = corpus[: args.limit]
    queries = [q["text"] for q in read_jsonl(dataset(args.dataset) / "queries.jsonl")[:QUERIES]]
    out: dict = {"files": len(corpus)}
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for d in corpus:
            (docs / f"{d['_id']}.md").write_text(f"# {d['title']}\n\n{d['text']}\n", encoding="utf-8")
        resolved = resolve_embedder(args.model)
        embedder = load_embedder(args.model, precision=args.precision)
        if hasattr(embedder, "prepare_documents"):  # e5: its int8 encoder is built once per machine, not timed here
            t0 = time.perf_counter()
            embedder.prepare_documents()
            out["prepare_seconds"] = time.perf_counter() - t0
        out["path"] = f"{embedder.precision.name} ({embedder.precision.reason})"
        embedder.embed_documents(["warm up"])
        kb = KnowledgeBase(Path(tmp) / "kb")
        options = IngestOptions(paths=[docs], workers=args.workers)

        t0 = time.perf_counter()
        report = ingest(kb, options, args.model, lambda: embedder, resolved.model_id)
        out["kb_seconds"] = time.perf_counter() - t0
        out["peak_rss_mb"] = vm_hwm_mb()  # this process so far: model + the whole ingest
        out["chunks"] = report.chunks_total

        cat = kb.catalog(readonly=True)
        texts = cat.chunk_texts()
        cat.close()
        t0 = time.perf_counter()
        vecs = embedder.embed_documents(texts, batch_size=32)
        out["floor_seconds"] = time.perf_counter() - t0
        np.save(args.vectors, vecs)

        times = []
        for q in queries:
            t0 = time.perf_counter()
            embedder.embed_queries([q])
            times.append((time.perf_counter() - t0) * 1000)
        out["query_p50_ms"] = statistics.median(times)

        t0 = time.perf_counter()
        again = ingest(kb, options, args.model, lambda: embedder, resolved.model_id)
        out["unchanged_rerun_seconds"] = time.perf_counter() - t0
        assert again.unchanged == len(corpus), again.to_dict()
        edited = docs / f"{corpus[0]['_id']}.md"
        edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more sentence at the end.\n", encoding="utf-8")
        edit = ingest(kb, options, args.model, lambda: embedder, resolved.model_id)
        out["edit_one_file_chunks_embedded"] = edit.chunks_embedded
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="only the first N records of each dataset")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--model", default=None, help="embedding model spec (default: the configured one)")
    ap.add_argument("--datasets", nargs="+", default=["scifact", "cmrc2018-dev"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "auto"], help="before first, then after")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--precision", help=argparse.SUPPRESS)
    ap.add_argument("--vectors", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.model is None:
        from kb.config import load_settings

        args.model = load_settings().embedding_model
    if args.child:
        return child(args)

    import numpy as np

    figure(f"model {args.model}; limit", args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            results, vectors = {}, {}
            for precision in args.precisions:
                vectors[precision] = str(Path(tmp) / f"{name}-{precision}.npy")
                cmd = [sys.executable, __file__, "--child", "--dataset", name, "--precision", precision,
                       "--vectors", vectors[precision], "--model", args.model, "--limit", str(args.limit),
                       "--workers", str(args.workers)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    sys.exit(f"bench child failed ({name}, {precision}):\n{proc.stderr[-3000:]}")
                r = results[precision] = json.loads(proc.stdout.strip().splitlines()[-1])
                tag = f"{name}.{precision}"
                print(f"{tag}.path {r['path']}")
                if "prepare_seconds" in r:  # building (first run on a machine) or loading e5's int8 encoder
                    figure(f"{tag}.prepare_seconds", r["prepare_seconds"], "s")
                figure(f"{tag}.files", r["files"])
                figure(f"{tag}.chunks", r["chunks"])
                figure(f"{tag}.kb_chunks_per_s", r["chunks"] / r["kb_seconds"], "chunks/s")
                figure(f"{tag}.floor_chunks_per_s", r["chunks"] / r["floor_seconds"], "chunks/s")
                figure(f"{tag}.ratio_kb_to_floor", r["floor_seconds"] / r["kb_seconds"])
                figure(f"{tag}.peak_rss_ingest", r["peak_rss_mb"], "MB")
                figure(f"{tag}.query_p50", r["query_p50_ms"], "ms")
                figure(f"{tag}.unchanged_rerun_seconds", r["unchanged_rerun_seconds"], "s")
                figure(f"{tag}.edit_one_file_chunks_embedded", r["edit_one_file_chunks_embedded"])
            before, *afters = args.precisions
            for after in afters:
                b, a = results[before], results[after]
                tag = f"{name}.{after}_vs_{before}"
                figure(f"{tag}.kb_speedup", b["kb_seconds"] / a["kb_seconds"])
                figure(f"{tag}.floor_speedup", b["floor_seconds"] / a["floor_seconds"])
                figure(f"{tag}.kb_after_vs_floor_before", b["floor_seconds"] / a["kb_seconds"])
                figure(f"{tag}.query_p50_ratio", a["query_p50_ms"] / b["query_p50_ms"])
                cos = (np.load(vectors[before]) * np.load(vectors[after])).sum(axis=1)
                print(f"{tag}.cosine_min {float(cos.min()):.6f}")
                print(f"{tag}.cosine_mean {float(cos.mean()):.6f}", flush=True)


if __name__ == "__main__":
    main()
