"""The store: catalog, dense and lexical indexes, and the atomic, single-writer commit."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from kb.store import (
    Changes, DocumentUpdate, EmbeddingInfo, KnowledgeBase, KnowledgeBaseBusy, KnowledgeBaseError,
)
from kb.document import Chunk
from kb.store.dense import DenseIndex
from kb.store.lexical import LexicalIndex

DIM = 8
EMB = EmbeddingInfo("test-model", "test", DIM)


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _doc(path: str, texts: list[str]) -> tuple[DocumentUpdate, list[tuple[str, bytes]]]:
    chunks, vectors = [], []
    for i, t in enumerate(texts):
        chunk = Chunk(t, i, t, page_start=1, page_end=1, heading_path=("Intro",), n_tokens=len(t.split()),
                      tokens=tuple(t.lower().split()))
        chunks.append(chunk)
        vectors.append((chunk.text_hash, _vec(hash(t) % 10_000).tobytes()))
    return DocumentUpdate(path=path, sha256="x" + path, size=1, mtime=1.0, format="text", title=path,
                          pages=None, status="ok", chunks=chunks), vectors


def _commit(kb: KnowledgeBase, docs: dict[str, list[str]], remove: list[int] = ()) -> int:
    with kb.writer() as w:
        changes = Changes(remove_doc_ids=list(remove))
        for path, texts in docs.items():
            upd, vecs = _doc(path, texts)
            w.catalog.store_vectors(EMB.model_id, vecs)
            changes.updates.append(upd)
        return w.commit(changes, EMB, "1")


def test_commit_publishes_a_generation_readers_can_load(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    assert _commit(kb, {"/a.txt": ["alpha beta", "gamma delta"], "/b.txt": ["epsilon"]}) == 1
    gen, dense, lexical, meta = kb.load_indexes()
    assert gen == 1 and len(dense) == 3 and len(lexical) == 3
    assert meta["embedding_model"] == "test-model" and meta["embedding_dim"] == str(DIM)
    hits = lexical.search(["gamma"], k=5)
    assert len(hits) == 1
    cat = kb.catalog(readonly=True)
    assert cat.chunks_by_ids([hits[0][0]])[hits[0][0]].text == "gamma delta"
    cat.close()


def test_update_replaces_a_documents_chunks_and_keeps_one_old_generation(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    _commit(kb, {"/a.txt": ["alpha beta"]})
    _commit(kb, {"/a.txt": ["alpha beta", "new text"]})
    gen = _commit(kb, {"/a.txt": ["only this"]})
    assert gen == 3
    _, dense, lexical, _ = kb.load_indexes()
    assert len(lexical) == 1 and len(dense) == 1
    assert lexical.search(["alpha"], k=5) == []
    files = sorted(p.name for p in kb.path.iterdir() if p.name.startswith(("dense", "lexical")))
    assert files == ["dense-2.bin", "dense-3.bin", "lexical-2", "lexical-3"]


def test_dense_index_finds_vectors_and_skips_deleted(tmp_path):
    vecs = np.stack([_vec(i) for i in range(50)])
    idx = DenseIndex.build(DIM, list(range(100, 150)), vecs)
    assert idx.search(vecs[7], 1)[0][0] == 107
    idx.update([107], [999], _vec(999).reshape(1, -1))
    idx.save(tmp_path / "d.bin")
    loaded = DenseIndex.load(tmp_path / "d.bin", DIM, live=50)
    top = [i for i, _ in loaded.search(vecs[7], 5)]
    assert 107 not in top
    assert loaded.search(_vec(999), 1)[0][0] == 999
    # asking for more neighbours than exist returns what there is
    assert len(loaded.search(vecs[0], 500)) == 50


def test_lexical_index_ignores_unknown_terms_and_filters(tmp_path):
    idx = LexicalIndex.build([10, 11, 12], [["red", "apple"], ["green", "apple"], ["blue", "sky"]])
    idx.save(tmp_path / "lex")
    idx = LexicalIndex.load(tmp_path / "lex")
    assert [i for i, _ in idx.search(["apple", "unknownword"], 5)] in ([10, 11], [11, 10])
    assert idx.search(["unknownword"], 5) == []
    mask = np.array([False, True, False])
    assert [i for i, _ in idx.search(["apple"], 5, allowed=mask)] == [11]


def test_crash_before_commit_leaves_previous_generation_and_is_swept(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    _commit(kb, {"/a.txt": ["alpha beta"]})
    with pytest.raises(RuntimeError):
        with kb.writer() as w:
            upd, vecs = _doc("/b.txt", ["should not appear"])
            w.catalog.store_vectors(EMB.model_id, vecs)
            # simulate a crash after the next generation's files were written but before the flip
            (kb.path / "dense-2.bin").write_bytes(b"partial")
            (kb.path / "lexical-2.tmp").mkdir()
            raise RuntimeError("crash")
    gen, dense, lexical, _ = kb.load_indexes()
    assert gen == 1 and len(lexical) == 1
    cat = kb.catalog(readonly=True)
    assert [d.path for d in cat.documents()] == ["/a.txt"]
    cat.close()
    _commit(kb, {"/b.txt": ["fresh"]})  # the next writer sweeps the strays and commits over them
    assert not (kb.path / "lexical-2.tmp").exists()
    assert kb.load_indexes()[0] == 2


def _hold_lock(path, ready, release):
    kb = KnowledgeBase(path)
    with kb.writer(command="kb ingest test"):
        ready.set()
        release.wait(20)


def test_second_writer_fails_with_a_clear_message(tmp_path):
    path = tmp_path / "kb"
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(path, ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(KnowledgeBaseBusy, match=r"busy: another kb process \(pid \d+, `kb ingest test`"):
            with KnowledgeBase(path).writer(timeout=0.2):
                pass
    finally:
        release.set()
        proc.join(30)
    with KnowledgeBase(path).writer(timeout=5):  # free again once the holder is gone
        pass


def test_model_mismatch_is_a_clear_error(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    _commit(kb, {"/a.txt": ["alpha"]})
    with kb.writer() as w:
        with pytest.raises(KnowledgeBaseError, match="embedded with test-model.*--force"):
            w.check_model(EmbeddingInfo("other-model", "other", 16))


def test_reader_of_missing_index_file_gets_repair_hint(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    _commit(kb, {"/a.txt": ["alpha"]})
    (kb.path / "dense-1.bin").unlink()
    with pytest.raises(KnowledgeBaseError, match="kb repair"):
        kb.load_indexes()
    from kb.maintenance import repair

    assert repair(kb) == 2
    assert len(kb.load_indexes()[1]) == 1


def test_large_deletions_trigger_a_rebuild(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    _commit(kb, {f"/{i}.txt": [f"text number {i}"] for i in range(20)})
    cat = kb.catalog(readonly=True)
    ids = [d.id for d in cat.documents()][:10]
    cat.close()
    _commit(kb, {}, remove=ids)
    _, dense, _, _ = kb.load_indexes()
    assert len(dense) == 10 and dense.stored == 10  # rebuilt, not 20 with 10 marked deleted


def _multilingual_rows(kb: KnowledgeBase) -> int:
    from kb.embedders.multilingual import MODEL_ID

    cat = kb.catalog(readonly=True)
    try:
        return cat.conn.execute("SELECT COUNT(*) FROM vectors WHERE model_id=?", (MODEL_ID,)).fetchone()[0]
    finally:
        cat.close()


def test_each_generation_has_the_multilingual_index_of_every_chunk(tmp_path):
    """Over a corpus without English, the commit embeds its new chunks with the multilingual model
    (kb.embedders.multilingual, the real one), keeps those vectors beside the main model's, and writes their index
    with the generation's other files."""
    kb = KnowledgeBase(tmp_path / "kb")
    _commit(kb, {"/a.txt": ["保修期为自发货之日起27个月", "每周清洁一次进气滤网"],
                 "/b.txt": ["华东地区的授权经销商是上海澜舟科技"]})
    index = kb.load_multilingual(1, 3)
    assert index is not None and index.stored == 3 and _multilingual_rows(kb) == 3
    from kb.embedders.multilingual import multilingual_embedder

    hits = index.search(multilingual_embedder().embed_queries(["How long is the warranty?"])[0], 3)
    cat = kb.catalog(readonly=True)
    texts = {i: r.text for i, r in cat.chunks_by_ids([i for i, _ in hits]).items()}
    cat.close()
    assert texts[hits[0][0]] == "保修期为自发货之日起27个月", [(texts[i], s) for i, s in hits]
    gen = _commit(kb, {}, remove=[2])  # /b.txt's document id
    index = kb.load_multilingual(gen, 2)
    assert len(index) == 2 and _multilingual_rows(kb) == 2  # its vector dropped with its chunk


def test_the_multilingual_index_follows_the_share_of_english(tmp_path):
    """The list serves English questions over a corpus (nearly) without English, so a corpus with English at
    MULTILINGUAL_INDEX_SHARE or more has no index and the multilingual model embeds nothing; when Chinese documents
    bring English under it, the commit embeds every chunk, English ones included; back above, the index and its
    vectors go."""
    from kb.store.knowledge_base import MULTILINGUAL_INDEX_SHARE, keeps_multilingual

    from kb.retrieve import CROSS_SHARE

    assert MULTILINGUAL_INDEX_SHARE >= CROSS_SHARE  # the index is there whenever search wants the list
    assert keeps_multilingual({}) and keeps_multilingual({"zh": 9, "en": 1}) and not keeps_multilingual({"en": 1})
    kb = KnowledgeBase(tmp_path / "kb")
    _commit(kb, {"/en.txt": ["the warranty lasts 27 months", "clean the filter weekly"]})
    assert kb.load_multilingual(1, 2) is None and _multilingual_rows(kb) == 0
    zh = {f"/zh{i}.txt": [f"第{i}条：设备每运行{i}百小时检查一次"] for i in range(9)}
    gen = _commit(kb, zh)  # English 2 of 11 chunks: under the share
    assert len(kb.load_multilingual(gen, 11)) == 11 and _multilingual_rows(kb) == 11
    gen = _commit(kb, {}, remove=list(range(2, 9)))  # seven Chinese documents go: English 2 of 4
    assert kb.load_multilingual(gen, 4) is None and _multilingual_rows(kb) == 0
    assert not kb.multilingual_path(gen).exists()


def test_a_generation_without_the_multilingual_index_gets_it_at_the_next_commit(tmp_path):
    """A knowledge base written before the multilingual list existed: the next commit, even one with nothing to
    change (a plain `kb ingest`), embeds every chunk and publishes a generation that has it."""
    from kb.embedders.multilingual import MODEL_ID

    kb = KnowledgeBase(tmp_path / "kb")
    _commit(kb, {"/a.txt": ["保修期为27个月", "每周清洁滤网"]})
    kb.multilingual_path(1).unlink()
    with kb.writer() as w:
        w.catalog.conn.execute("DELETE FROM vectors WHERE model_id=?", (MODEL_ID,))
        w.catalog.conn.commit()
    assert kb.load_multilingual(1, 2) is None
    assert _commit(kb, {}) == 2
    assert len(kb.load_multilingual(2, 2)) == 2 and _multilingual_rows(kb) == 2
    assert _commit(kb, {}) == 2  # and then nothing to do
