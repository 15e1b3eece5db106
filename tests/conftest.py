"""Every test gets its own kb home (data dir, config dir), runs offline, and can borrow the real model."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO.parent / "shared" / "eval"
SAMPLE_DOCS = REPO / "sample_docs"


def run_kb(*args, env=None, input=None, timeout=900) -> subprocess.CompletedProcess:
    """`kb ARGS...` in a fresh process, as a user runs it (text output captured)."""
    return subprocess.run([sys.executable, "-m", "kb", *args], capture_output=True, text=True, env=env or os.environ,
                          input=input, timeout=timeout)


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory):
    """One models dir for the whole run, so the 1.1 GB default LLM is assembled at most once per run
    (and deleted afterwards: pytest keeps old temp dirs around)."""
    import shutil

    path = tmp_path_factory.mktemp("models")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch, shared_models_dir):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("KB_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("KB_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    for var in list(os.environ):
        if var.startswith("KB_") and var not in ("KB_DATA_DIR", "KB_CONFIG_DIR"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("KB_MODELS_DIR", str(shared_models_dir))
    return home


def shared_eval(name: str) -> Path:
    """A dataset under ../shared/eval, or skip the test when this checkout has none."""
    path = SHARED_EVAL / name
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared/eval is absent)")
    return path


class FakeEmbedder:
    """Deterministic bag-of-words hashing vectors: fast, and similar texts get similar vectors."""

    model_id = "fake-hash-64"
    dim = 64
    max_tokens = 128

    def __init__(self):
        self.embedded: list[str] = []

    def count_tokens(self, texts):
        return [len(re.findall(r"\w+|[^\w\s]", t)) + 2 for t in texts]

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for w in re.findall(r"\w+", text.lower()):
            v[int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v + 1.0 / np.sqrt(self.dim)

    def embed_documents(self, texts, batch_size=32):
        self.embedded.extend(texts)
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts):
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def fake_kb(folder: Path, files: dict, name: str = "kb"):
    """Write `files` ({relative path: text or bytes}) under `folder`/docs and ingest them with a FakeEmbedder
    into `folder`/`name`. Returns (KnowledgeBase, the embedder, the IngestReport)."""
    from kb.ingest import IngestOptions, ingest
    from kb.store import KnowledgeBase

    docs = folder / "docs"
    for rel, content in files.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_bytes(content) if isinstance(content, bytes) else (docs / rel).write_text(content)
    emb = FakeEmbedder()
    kb = KnowledgeBase(folder / name)
    report = ingest(kb, IngestOptions(paths=[docs], workers=0), "fake", lambda: emb, emb.model_id)
    return kb, emb, report


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as at a terminal. A Python started in the background by a non-interactive
    shell (`pytest &` in a script) starts with SIGINT ignored, and then a test's own Ctrl-C would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def fake_embedder():
    return FakeEmbedder()


@pytest.fixture(scope="session")
def default_embedder():
    """The default embedding model (multilingual e5), loaded once per test session."""
    from kb.config import OPTION_BY_KEY
    from kb.embedders import load_embedder

    return load_embedder(OPTION_BY_KEY["embedding_model"].default)


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2, loaded once per test session."""
    from kb.embedders import load_embedder

    return load_embedder("minilm")
