"""Ingest throughput on SciFact written out as text files, beside the floor: the same chunk texts
encoded by a bare SentenceTransformer.encode in the same process.

    python bench/ingest.py [--limit N]

Prints chunks/s for kb and for the floor, their ratio (goal: >= 0.8), and the unchanged re-run time.
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
    args = ap.parse_args()
    corpus = read_jsonl(dataset("scifact") / "corpus.jsonl")
    if args.limit:
        corpus = corpus[: args.limit]

    from kb.ingest import IngestOptions, ingest
    from kb.models import load_embedder, resolve_embedder
    from kb.store import KnowledgeBase

    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for d in corpus:
            (docs / f"{d['_id']}.md").write_text(f"# {d['title']}\n\n{d['text']}\n", encoding="utf-8")
        resolved = resolve_embedder("minilm")
        embedder = load_embedder("minilm")
        embedder.embed_documents(["warm up"])
        kb = KnowledgeBase(Path(tmp) / "kb")
        options = IngestOptions(paths=[docs], workers=args.workers)

        t0 = time.perf_counter()
        report = ingest(kb, options, "minilm", lambda: embedder, resolved.model_id)
        kb_seconds = time.perf_counter() - t0
        chunks = report.chunks_total

        cat = kb.catalog(readonly=True)
        texts = [r[0] for r in cat.conn.execute("SELECT index_text FROM chunks ORDER BY id")]
        cat.close()
        t0 = time.perf_counter()
        embedder._model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        floor_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        again = ingest(kb, options, "minilm", lambda: embedder, resolved.model_id)
        rerun_seconds = time.perf_counter() - t0
        assert again.unchanged == len(corpus), again.to_dict()

    figure("files", len(corpus))
    figure("chunks", chunks)
    figure("kb_ingest_seconds", kb_seconds, "s")
    figure("kb_chunks_per_s", chunks / kb_seconds, "chunks/s")
    figure("floor_encode_seconds", floor_seconds, "s")
    figure("floor_chunks_per_s", chunks / floor_seconds, "chunks/s")
    figure("ratio_kb_to_floor", floor_seconds / kb_seconds)
    figure("unchanged_rerun_seconds", rerun_seconds, "s")
    figure("unchanged_rerun_fraction", rerun_seconds / kb_seconds)


if __name__ == "__main__":
    main()
