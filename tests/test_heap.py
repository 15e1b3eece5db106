"""Memory of an ingest: freed heap given back (kb.heap), huge documents embedded in bounded pools."""

from __future__ import annotations

import pytest
from conftest import FakeEmbedder
from kb import heap
from kb.ingest import IngestOptions, ingest
from kb.store import KnowledgeBase


def test_give_back_freed_memory_runs_and_is_a_no_op_without_glibc(monkeypatch):
    heap.give_back_freed_memory()  # glibc here: malloc_trim(0)
    monkeypatch.setattr(heap, "_trim", lambda: None)
    heap.give_back_freed_memory()


class PoolRecorder(FakeEmbedder):
    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def embed_documents(self, texts, batch_size=32):
        self.calls.append(len(texts))
        return super().embed_documents(texts, batch_size)


def test_a_huge_documents_chunks_are_embedded_in_several_pools(tmp_path, monkeypatch):
    import kb.ingest.process as process

    monkeypatch.setattr(process, "EMBED_POOL", 8)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "small.md").write_text("# Small\n\nOne short note about a valve.\n")
    paragraphs = [f"Paragraph {i} says that pump number {i} moves {i * 3} litres a minute when it runs "
                  f"at full speed in the {i}th test rig." for i in range(120)]
    (docs / "huge.md").write_text("# Huge\n\n" + "\n\n".join(paragraphs) + "\n")
    emb = PoolRecorder()
    kb = KnowledgeBase(tmp_path / "kb")
    report = ingest(kb, IngestOptions(paths=[docs], workers=0), "fake", lambda: emb, emb.model_id)
    assert report.chunks_total > 3 * 8  # the huge file alone makes several pools' worth
    assert max(emb.calls) <= 8 and len(emb.calls) >= report.chunks_total // 8
    assert sum(emb.calls) == report.chunks_embedded == report.chunks_total
    assert kb.catalog(readonly=True).count_chunks() == report.chunks_total  # every chunk committed


def test_e5_gives_back_memory_after_long_batches_only(default_embedder, monkeypatch):
    import kb.embedders.e5 as e5

    if not isinstance(default_embedder, e5.E5Embedder):
        pytest.skip("the default embedder is not e5 here")
    trims = []
    monkeypatch.setattr(e5, "give_back_freed_memory", lambda: trims.append(1))
    default_embedder.embed_queries(["how do I reset the pump?"])
    assert trims == []  # a query's batch is small: no trim (it would cost more than the query)
    long = "the valve pressure sensor reads high after the firmware update " * 40
    default_embedder.embed_documents([long] * 32, batch_size=16)  # 16 rows x ~450 tokens each
    assert len(trims) >= 2  # one per long batch
