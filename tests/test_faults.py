"""The commit fault matrix: a fault at any step of a commit (disk full, a failing rename or fsync, a file size
limit, kill -9 before / between / after the index files and the SQLite transaction) leaves the knowledge base at
exactly the previous generation, `kb doctor` says what was left behind, and the next ingest completes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, FakeEmbedder, run_kb
from kb.doctor import check_knowledge_base
from kb.errors import KnowledgeBaseError
from kb.ingest import IngestOptions, ingest
from kb.maintenance import repair
from kb.store import KnowledgeBase
from kb.store.fsio import fs

_CHILD = textwrap.dedent("""
    import resource, signal, sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    from conftest import FakeEmbedder
    from kb.ingest import IngestOptions, ingest
    from kb.store import KnowledgeBase
    from kb.store.fsio import fs
    kb_dir, docs, fault = sys.argv[1:4]
    if fault.startswith("fsize:"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(fault[6:]), resource.RLIM_INFINITY))
    else:
        fs.crash_at = fault
    emb = FakeEmbedder()
    ingest(KnowledgeBase(kb_dir), IngestOptions(paths=[docs], workers=0), "fake", lambda: emb, emb.model_id)
""")


def _ingest(kb, docs):
    emb = FakeEmbedder()
    return ingest(kb, IngestOptions(paths=[docs], workers=0), "fake", lambda: emb, emb.model_id)


@pytest.fixture
def base(tmp_path):
    """A knowledge base at generation 1 holding a.txt, and b.txt added to the folder since. In Chinese, so every
    generation has the multilingual index (English ones have none: kb.store.keeps_multilingual)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("甲：甲号反应器在 42 度下运行。\n", encoding="utf-8")
    kb = KnowledgeBase(tmp_path / "kb")
    assert _ingest(kb, docs).generation == 1
    (docs / "b.txt").write_text("乙：乙号泵每分钟输送 3 升。\n", encoding="utf-8")
    return kb, docs


def _assert_previous_generation_then_recovers(kb, docs, committed=False):
    gen, dense, lexical, meta = kb.load_indexes()
    cat = kb.catalog(readonly=True)
    paths = sorted(d.path.rsplit("/", 1)[-1] for d in cat.documents())
    cat.close()
    if committed:  # killed after COMMIT: the new generation is whole
        assert (gen, paths, len(lexical)) == (2, ["a.txt", "b.txt"], 2)
    else:
        assert (gen, paths, len(lexical), len(dense)) == (1, ["a.txt"], 1, 1)
    checks = {c.name: c for c in check_knowledge_base(kb)}
    assert checks["indexes"].status == "ok"
    doctor = checks["stray files"]
    report = _ingest(kb, docs)
    assert report.generation == (gen if committed else 2) and not report.failed
    assert kb.load_indexes()[0] == report.generation
    assert {c.name: c for c in check_knowledge_base(kb)}["stray files"].status == "ok"
    return doctor


@pytest.mark.parametrize("step", ["indexes:start", "indexes:dense", "indexes:multilingual", "indexes:lexical",
                                  "commit:done"])
def test_kill_9_at_each_commit_step(base, step):
    kb, docs = base
    child = _CHILD.format(repo=str(REPO), tests=str(REPO / "tests"))
    r = subprocess.run([sys.executable, "-c", child, str(kb.path), str(docs), step], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 9, r.stderr
    doctor = _assert_previous_generation_then_recovers(kb, docs, committed=step == "commit:done")
    if step in ("indexes:dense", "indexes:multilingual", "indexes:lexical"):
        assert doctor.status == "warning" and "interrupted" in doctor.detail  # what the crash left behind


def test_file_size_limit_during_ingest(base):
    kb, docs = base
    child = _CHILD.format(repo=str(REPO), tests=str(REPO / "tests"))
    r = subprocess.run([sys.executable, "-c", child, str(kb.path), str(docs), "fsize:20000"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0
    _assert_previous_generation_then_recovers(kb, docs)


@pytest.mark.parametrize("seam, code", [("replace", errno.ENOSPC), ("fsync", errno.ENOSPC), ("replace", errno.EROFS),
                                        ("fsync", errno.EIO)])
def test_disk_full_or_failing_rename_during_commit(base, monkeypatch, seam, code):
    kb, docs = base

    def full(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fs, seam, full)
    with pytest.raises(OSError):
        _ingest(kb, docs)
    monkeypatch.undo()
    _assert_previous_generation_then_recovers(kb, docs)


@pytest.mark.skipif(os.geteuid() == 0, reason="chmod does not stop root; the EROFS seam case above stands in")
def test_read_only_directory(base):
    kb, docs = base
    kb.path.chmod(0o555)
    try:
        with pytest.raises(Exception):
            _ingest(kb, docs)
    finally:
        kb.path.chmod(0o755)
    _assert_previous_generation_then_recovers(kb, docs)


def test_truncated_index_file_is_refused_cleanly_and_repaired(base):
    kb, docs = base
    dense = kb.dense_path(1)
    dense.write_bytes(dense.read_bytes()[:100])
    with pytest.raises(KnowledgeBaseError, match="kb repair"):
        kb.load_indexes()
    assert {c.name: c for c in check_knowledge_base(kb)}["indexes"].status == "error"
    assert repair(kb) == 2
    gen, dense, lexical, _ = kb.load_indexes()
    assert (gen, len(dense), len(lexical)) == (2, 1, 1)
    assert _ingest(kb, docs).generation == 3


def test_damaged_catalog_is_refused_in_one_line(base):
    kb, _docs = base
    catalog = kb.path / "catalog.sqlite"
    data = bytearray(catalog.read_bytes())
    data[4096:4096 * 4] = b"\xab" * (4096 * 3)  # pages 2-4: the tables' b-trees
    catalog.write_bytes(bytes(data))
    for args in (["status"], ["search", "pump"], ["ingest", str(_docs)]):
        r = run_kb("--kb", str(kb.path), *args)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "catalog cannot be read" in r.stderr and "backup" in r.stderr
    assert {c.name: c for c in check_knowledge_base(kb)}["catalog"].status == "error"
