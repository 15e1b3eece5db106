"""Ingest throughput of the Ray path against the local path on the same cores, in one run: SciFact abstracts
written out as Markdown files, ingested into fresh knowledge bases by the local processor (one process, torch
on all cores) and by the Ray processor on a local cluster of this machine's cores with 1 and 2 actors (torch on
one core each). End to end, as `kb ingest` and `kb ingest --ray` run: every run loads its model (the local
process once, each Ray actor once; the model is loaded once before timing so that all read it from the page
cache), and Ray's figures include starting the actors.

    python bench/ray_ingest.py [--limit N] [--model SPEC]

Prints chunks/s for each, and ray/local ratios (goal at 2 workers on a 2-core machine: >= 0.85). The local run
is done first and last and averaged, since the machine is shared.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dataset, figure, read_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=200, help="the first N abstracts")
    ap.add_argument("--model", default=None, help="embedding model spec (default: the configured one)")
    args = ap.parse_args()
    corpus = read_jsonl(dataset("scifact") / "corpus.jsonl")[: args.limit]

    import ray

    from kb.config import load_settings
    from kb.embedders import load_embedder, resolve_embedder
    from kb.ingest import IngestOptions, ingest
    from kb.store import KnowledgeBase

    spec = args.model or load_settings().embedding_model
    model_id = resolve_embedder(spec).model_id
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for d in corpus:
            (docs / f"{d['_id']}.md").write_text(f"# {d['title']}\n\n{d['text']}\n", encoding="utf-8")
        load_embedder(spec).embed_documents(["warm up"])  # model files into the page cache
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        runs = iter(range(100))

        def timed(**options) -> tuple[float, int]:
            kb = KnowledgeBase(Path(tmp) / f"kb{next(runs)}")
            factory = functools.partial(load_embedder, spec)
            start = time.perf_counter()
            report = ingest(kb, IngestOptions(paths=[docs], workers=1, **options), spec, factory, model_id)
            assert not report.failed, report.failed
            return time.perf_counter() - start, report.chunks_total

        local_a, chunks = timed()
        print(f"local: {local_a:.1f} s", flush=True)
        ray_seconds = {}
        for w in (2, 1):
            ray_seconds[w] = timed(ray_address="auto", ray_workers=w)[0]
            print(f"ray, {w} actors: {ray_seconds[w]:.1f} s", flush=True)
        local_b, _ = timed()
        ray.shutdown()

    local = (local_a + local_b) / 2
    print(f"{len(corpus)} files, {chunks} chunks, model {model_id}, {cores} cores")
    figure("local_chunks_per_s", chunks / local, "chunks/s")
    figure("local_runs_s", local_a, f"s then {local_b:.1f} s")
    print("| Ray actors | seconds | chunks/s | ratio to local |\n| --- | --- | --- | --- |")
    for w in (1, 2):
        print(f"| {w} | {ray_seconds[w]:.1f} | {chunks / ray_seconds[w]:.2f} | {local / ray_seconds[w]:.2f} |")
    figure("ray2_over_local", local / ray_seconds[2], "(goal >= 0.85)")


if __name__ == "__main__":
    main()
