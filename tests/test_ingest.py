"""Ingest: discovery, incremental updates, failures, removals, the embedding cache, interruption."""

from __future__ import annotations

import shutil

import pytest

from conftest import SAMPLE_DOCS, FakeEmbedder
from kb.ingest import IngestOptions, UsageError, discover, ingest
from kb.store import KnowledgeBase


def _run(kb, paths, embedder=None, **kw):
    embedder = embedder or FakeEmbedder()
    options = IngestOptions(paths=[*paths], workers=kw.pop("workers", 0), **kw)
    return ingest(kb, options, "fake", lambda: embedder, embedder.model_id)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "notes"
    (d / "sub").mkdir(parents=True)
    (d / "a.md").write_text("# Alpha\n\nThe alpha reactor runs at 42 degrees.\n\n## Details\n\nMore alpha text.\n")
    (d / "b.txt").write_text("Bravo notes: the bravo pump moves 3 litres a minute.\n")
    (d / "sub" / "c.md").write_text("# Charlie\n\nCharlie likes cheese.\n")
    (d / ".hidden.md").write_text("# hidden\n")
    (d / ".git").mkdir()
    (d / ".git" / "x.md").write_text("# vcs\n")
    (d / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    (d / "old.ppt").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 600)
    return d


def test_discover_skips_hidden_vcs_and_other_types(folder):
    files, skipped = discover([folder])
    names = sorted(p.relative_to(folder).as_posix() for p in files)
    assert names == ["a.md", "b.txt", "old.ppt", "sub/c.md"]
    assert skipped == 1  # clip.mp4
    files, _ = discover([folder], include=["*.md"], exclude=["sub/*"])
    assert [p.name for p in files] == ["a.md"]


def test_kbignore(folder):
    (folder / ".kbignore").write_text("# comment\nsub\nb.txt\n")
    files, _ = discover([folder])
    assert sorted(p.name for p in files) == ["a.md", "old.ppt"]


def test_first_ingest_then_unchanged_then_edit_reembeds_only_changed_chunks(tmp_path, folder):
    kb = KnowledgeBase(tmp_path / "kb")
    emb = FakeEmbedder()
    r = _run(kb, [folder], emb)
    assert (len(r.added), len(r.updated), r.unchanged, len(r.removed)) == (3, 0, 0, 0)
    assert [(p.endswith("old.ppt"), "convert" in reason) for p, reason in r.failed] == [(True, True)]
    first_embedded = r.chunks_embedded
    assert first_embedded == r.chunks_total > 0

    emb2 = FakeEmbedder()
    r = _run(kb, [folder], emb2)
    assert (len(r.added), len(r.updated), r.unchanged) == (0, 0, 3)
    assert emb2.embedded == [] and r.generation == 1  # nothing changed: no new generation

    # edit one section of a.md: only the changed chunk is embedded again
    (folder / "a.md").write_text("# Alpha\n\nThe alpha reactor runs at 42 degrees.\n\n## Details\n\nEdited text.\n")
    emb3 = FakeEmbedder()
    r = _run(kb, [folder], emb3)
    assert len(r.updated) == 1 and r.unchanged == 2
    assert r.chunks_embedded == 1 and r.chunks_reused >= 1
    assert len(emb3.embedded) == 1 and "Edited text." in emb3.embedded[0]


def test_touching_a_file_without_changing_it_is_unchanged(tmp_path, folder):
    kb = KnowledgeBase(tmp_path / "kb")
    _run(kb, [folder])
    (folder / "b.txt").write_text((folder / "b.txt").read_text())  # new mtime, same bytes
    r = _run(kb, [folder])
    assert r.unchanged == 3 and not r.updated


def test_deleted_files_are_forgotten_and_reported(tmp_path, folder):
    kb = KnowledgeBase(tmp_path / "kb")
    _run(kb, [folder])
    (folder / "sub" / "c.md").unlink()
    r = _run(kb, [])  # no paths: refresh every folder ingested before
    assert [p.endswith("c.md") for p in r.removed] == [True]
    cat = kb.catalog(readonly=True)
    assert sorted(d.path.rsplit("/", 1)[-1] for d in cat.documents() if d.status == "ok") == ["a.md", "b.txt"]
    cat.close()


def test_a_removed_root_is_forgotten(tmp_path, folder):
    kb = KnowledgeBase(tmp_path / "kb")
    _run(kb, [folder])
    shutil.rmtree(folder)
    r = _run(kb, [])
    assert len(r.removed) == 4  # 3 documents + the failed .ppt record
    with pytest.raises(UsageError, match="nothing to ingest"):
        _run(kb, [])


def test_failures_are_reported_and_good_files_committed(tmp_path, folder):
    (folder / "empty.txt").write_text("   \n")
    (folder / "fake.pdf").write_text("this is not a pdf")
    kb = KnowledgeBase(tmp_path / "kb")
    r = _run(kb, [folder])
    reasons = {p.rsplit("/", 1)[-1]: reason for p, reason in r.failed}
    assert set(reasons) == {"empty.txt", "fake.pdf", "old.ppt"}
    assert "empty" in reasons["empty.txt"] and "not a PDF" in reasons["fake.pdf"]
    assert len(r.added) == 3
    # a file that keeps failing is reported again without being re-read
    r = _run(kb, [folder])
    assert {p.rsplit("/", 1)[-1] for p, _ in r.failed} == {"empty.txt", "fake.pdf", "old.ppt"}


def test_a_good_file_turning_bad_keeps_its_previous_version(tmp_path, folder):
    kb = KnowledgeBase(tmp_path / "kb")
    _run(kb, [folder])
    (folder / "b.txt").write_text("")
    r = _run(kb, [folder])
    assert len(r.failed) == 2 and any("previous version kept" in reason for _, reason in r.failed)
    cat = kb.catalog(readonly=True)
    doc = cat.document_by_path(str(folder / "b.txt"))
    assert doc.status == "ok"
    assert cat.count_chunks() == sum(d.chunks for d in cat.documents())
    cat.close()


def test_missing_path_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        _run(KnowledgeBase(tmp_path / "kb"), [tmp_path / "nope"])


def test_interrupt_during_embedding_leaves_previous_state(tmp_path, folder):
    kb = KnowledgeBase(tmp_path / "kb")
    _run(kb, [folder])
    (folder / "new.md").write_text("# New\n\nA new document about deltas.\n")

    class Exploding(FakeEmbedder):
        def embed_documents(self, texts, batch_size=32):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(kb, [folder], Exploding())
    cat = kb.catalog(readonly=True)
    assert cat.document_by_path(str(folder / "new.md")) is None
    assert cat.get_meta("generation") == "1"
    cat.close()
    r = _run(kb, [folder])
    assert [p.endswith("new.md") for p in r.added] == [True]


def test_the_next_files_are_chunked_while_a_pool_is_embedded(tmp_path, monkeypatch):
    """kb.ingest.process: while the first pool (FIRST_POOL texts) is embedded, on the main thread, the helper
    thread reads and chunks the next files; a synchronous pool would leave no chunking to happen meanwhile."""
    import threading

    import kb.ingest.process as process

    monkeypatch.setattr(process, "FIRST_POOL", 2)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"n{i}.md").write_text(f"# Note {i}\n\nPump {i} moves {i * 3} litres a minute.\n")

    class Watching(FakeEmbedder):
        def __init__(self):
            super().__init__()
            self.embedding = threading.Event()
            self.chunked_meanwhile = threading.Event()
            self.threads: set[str] = set()

        def count_tokens(self, texts):
            if threading.current_thread() is not threading.main_thread() and not self.chunked_meanwhile.is_set():
                # the helper waits for the pool to be under way: on a busy machine it could otherwise chunk every
                # file before the main thread reached the model, and the test failed though the overlap works
                self.embedding.wait(timeout=20)
            if self.embedding.is_set():
                self.chunked_meanwhile.set()
            return super().count_tokens(texts)

        def embed_documents(self, texts, batch_size=32):
            self.threads.add(threading.current_thread().name)
            if not self.chunked_meanwhile.is_set():
                self.embedding.set()
                self.chunked_meanwhile.wait(timeout=20)
                self.embedding.clear()
            return super().embed_documents(texts, batch_size)

    emb = Watching()
    kb = KnowledgeBase(tmp_path / "kb")
    report = ingest(kb, IngestOptions(paths=[docs], workers=0), "fake", lambda: emb, emb.model_id)
    assert emb.chunked_meanwhile.is_set()
    assert emb.threads == {threading.main_thread().name}  # the model runs on the main thread only
    assert report.chunks_embedded == report.chunks_total == 6 and len(report.added) == 6
    assert kb.catalog(readonly=True).count_chunks() == 6


def test_force_rebuilds_and_reuses_cached_vectors(tmp_path, folder):
    kb = KnowledgeBase(tmp_path / "kb")
    first = _run(kb, [folder])
    emb = FakeEmbedder()
    r = _run(kb, [folder], emb, force=True)
    assert len(r.updated) == 3 and r.chunks_reused == first.chunks_total and emb.embedded == []
    assert r.generation == 2


def test_chunks_an_older_tokenizer_made_are_tokenized_again_at_the_next_ingest(tmp_path, folder, monkeypatch):
    # kb 0.1 (tokenizer version 1, none recorded) stemmed "recognised" to "recognis" and "recognize" to "recogn", so a
    # question in American spelling missed the British document; version 2 folds the spellings. A knowledge base of
    # the old tokens is tokenized again at its next write, and `kb doctor` says so until then.
    from kb.doctor import check_knowledge_base
    from kb.retrieve import Searcher
    from kb.store.lexical import LexicalIndex
    from kb.text import TOKENIZER_VERSION

    (folder / "b.txt").write_text("Bravo notes: sticks larger than 256 GB are not recognised.\n")
    kb = KnowledgeBase(tmp_path / "kb")
    assert _run(kb, [folder]).generation == 1
    cat = kb.catalog()
    with cat.transaction():  # the chunks and the BM25 index as kb 0.1 left them
        ids, tokens = cat.all_chunk_tokens()
        cat.set_chunk_tokens((i, [t.replace("recogn", "recognis") for t in toks] + ["stale"])
                             for i, toks in zip(ids, tokens))
        cat.conn.execute("DELETE FROM meta WHERE key='tokenizer_version'")
    shutil.rmtree(kb.lexical_path(1))
    LexicalIndex.build(*cat.all_chunk_tokens()).save(kb.lexical_path(1))
    cat.close()

    def found() -> list[str]:
        searcher = Searcher(kb, FakeEmbedder)
        try:
            return [h.path for h in searcher.search("recognize", mode="bm25").hits]
        finally:
            searcher.close()

    def indexes_check():
        return next(c for c in check_knowledge_base(kb) if c.name == "indexes")

    assert not any(p.endswith("b.txt") for p in found())
    stale = indexes_check()
    assert stale.status == "warning" and "tokenizer version 1" in stale.detail and stale.fix == "kb repair"

    import kb.store.knowledge_base as knowledge_base

    monkeypatch.setattr(knowledge_base, "TOKENIZE_BATCH", 2)  # several batches
    r = _run(kb, [folder])  # no file changed
    assert r.generation == 2 and not r.updated and r.unchanged == 3
    assert found()[0].endswith("b.txt")
    assert kb.recorded("tokenizer_version") == str(TOKENIZER_VERSION)
    cat = kb.catalog(readonly=True)
    assert len(cat.all_chunk_tokens()[1]) > 2 and not any("stale" in t for t in cat.all_chunk_tokens()[1])  # all
    cat.close()
    assert indexes_check().status == "ok"


def test_extraction_in_a_worker_process(tmp_path):
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(12):
        (docs / f"n{i}.md").write_text(f"# Note {i}\n\nThis is note number {i}.\n")
    r = _run(KnowledgeBase(tmp_path / "kb"), [docs], workers=1)
    assert len(r.added) == 12 and not r.failed


def test_sample_docs_ingest_with_the_real_model(tmp_path, minilm):
    kb = KnowledgeBase(tmp_path / "kb")
    r = ingest(kb, IngestOptions(paths=[SAMPLE_DOCS], workers=0), "minilm", lambda: minilm, minilm.model_id)
    assert not r.failed and len(r.added) == 7
    cat = kb.catalog(readonly=True)
    docs = {d.path.rsplit("/", 1)[-1]: d for d in cat.documents()}
    assert docs["qf300_user_manual_en.pdf"].pages == 4 and docs["qf300_operator_training_en.pptx"].pages == 5
    assert "QUESTIONS.md" not in docs  # excluded by sample_docs/.kbignore
    assert max(r[0] for r in cat.conn.execute("SELECT n_tokens FROM chunks")) <= minilm.max_tokens
    assert cat.get_meta("embedding_model") == "all-MiniLM-L6-v2" and cat.get_meta("embedding_dim") == "384"
    cat.close()
