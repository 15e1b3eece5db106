"""Ingest throughput on SciFact written out as text files, beside the floor: the same chunk texts encoded by
the bare embedding model (`embed_documents`, batch 32; for a sentence-transformers model that is
SentenceTransformer.encode) in the same process.

    python bench/ingest.py [--limit N] [--model SPEC]

Prints chunks/s for kb and for the floor, their ratio (goal: >= 0.8), the unchanged re-run time, and what an
edit of one file costs (chunks re-embedded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dataset, figure, read_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="only the first N abstracts")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--model", default=None, help="embedding model spec (default: the configured one)")
    args = ap.parse_args()
    corpus = read_jsonl(dataset("scifact") / "corpus.jsonl")
    if args.limit:
        corpus = corpus[: args.limit]

    from kb.config import load_settings
    from kb.ingest import IngestOptions, ingest
    from kb.embedders import load_embedder, resolve_embedder
    from kb.store import KnowledgeBase

    spec = args.model or load_settings().embedding_model

    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for d in corpus:
            (docs / f"{d['_id']}.md").write_text(f"# {d['title']}\n\n{d['text']}\n", encoding="utf-8")
        resolved = resolve_embedder(spec)
        embedder = load_embedder(spec)
        embedder.embed_documents(["warm up"])
        kb = KnowledgeBase(Path(tmp) / "kb")
        options = IngestOptions(paths=[docs], workers=args.workers)

        t0 = time.perf_counter()
        report = ingest(kb, options, spec, lambda: embedder, resolved.model_id)
        kb_seconds = time.perf_counter() - t0
        chunks = report.chunks_total

        cat = kb.catalog(readonly=True)
        texts = cat.chunk_texts()
        cat.close()
        t0 = time.perf_counter()
        embedder.embed_documents(texts, batch_size=32)
        floor_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        again = ingest(kb, options, spec, lambda: embedder, resolved.model_id)
        rerun_seconds = time.perf_counter() - t0
        assert again.unchanged == len(corpus), again.to_dict()

        edited = docs / f"{corpus[0]['_id']}.md"
        edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more sentence at the end.\n", encoding="utf-8")
        t0 = time.perf_counter()
        edit = ingest(kb, options, spec, lambda: embedder, resolved.model_id)
        edit_seconds = time.perf_counter() - t0

    figure("files", len(corpus))
    figure("chunks", chunks)
    figure("kb_ingest_seconds", kb_seconds, "s")
    figure("kb_chunks_per_s", chunks / kb_seconds, "chunks/s")
    figure("floor_encode_seconds", floor_seconds, "s")
    figure("floor_chunks_per_s", chunks / floor_seconds, "chunks/s")
    figure("ratio_kb_to_floor", floor_seconds / kb_seconds)
    figure("unchanged_rerun_seconds", rerun_seconds, "s")
    figure("unchanged_rerun_fraction", rerun_seconds / kb_seconds)
    figure("edit_one_file_seconds", edit_seconds, "s")
    figure("edit_one_file_updated_files", len(edit.updated))
    figure("edit_one_file_chunks_embedded", edit.chunks_embedded)
    figure("edit_one_file_chunks_reused", edit.chunks_reused)


if __name__ == "__main__":
    main()
