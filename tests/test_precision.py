"""The embedders' numeric path (kb.embedders.precision): bf16 vectors are interchangeable with fp32 ones
through the real models, `auto` falls back to fp32 without a native-bf16 CPU, and the setting is shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import shared_eval
from kb.embedders import precision


def _real_texts(n_en: int = 24, n_zh: int = 12) -> list[str]:
    """SciFact abstracts and CMRC 2018 paragraphs, their first 600 characters (batches of mixed lengths,
    padding included, and a fast test)."""
    texts = []
    for name, n in (("scifact", n_en), ("cmrc2018-dev", n_zh)):
        with open(shared_eval(name) / "corpus.jsonl", encoding="utf-8") as f:
            for line, _ in zip(f, range(n)):
                d = json.loads(line)
                texts.append(f"{d['title']}\n\n{d['text']}"[:600])
    return texts


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


def test_e5_bf16_vectors_are_interchangeable_with_fp32(default_embedder):
    from kb.embedders.e5 import E5Embedder

    texts = _real_texts(16, 8)
    # the session's e5 when it runs bf16 (auto on a CPU with native bf16), else one more load
    fp32 = E5Embedder(precision="fp32")
    bf16 = default_embedder if default_embedder.precision.name == "bf16" else E5Embedder(precision="bf16")
    assert (fp32.precision.name, bf16.precision.name) == ("fp32", "bf16")
    assert str(bf16._model.dtype) == "torch.bfloat16"  # noqa: SLF001 (the test looks inside)
    docs32, docs16 = fp32.embed_documents(texts), bf16.embed_documents(texts)
    assert docs16.dtype == np.float32 and docs16.shape == (len(texts), 384)
    assert _min_cosine(docs32, docs16) >= 0.999
    queries = [t[:60] for t in texts[::4]]
    assert _min_cosine(fp32.embed_queries(queries), bf16.embed_queries(queries)) >= 0.999


def test_minilm_bf16_vectors_are_interchangeable_with_fp32():
    from kb.embedders import load_embedder

    texts = _real_texts(n_zh=0)
    fp32, bf16 = load_embedder("minilm", precision="fp32"), load_embedder("minilm", precision="bf16")
    assert _min_cosine(fp32.embed_documents(texts), bf16.embed_documents(texts)) >= 0.999
    assert bf16.embed_queries(["what causes anaemia"]).dtype == np.float32


def test_auto_falls_back_to_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512bw", "avx512_vnni"})
    p = precision.choose_precision("auto")
    assert p.name == "fp32" and "no avx512_bf16" in p.reason
    assert precision.choose_precision("bf16").name == "bf16"  # forcing still works
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert precision.choose_precision("auto") == precision.Precision("bf16", "auto: the CPU has amx_bf16")
    assert precision.choose_precision("auto", "cuda").name == "fp32"
    assert precision.choose_precision("fp32").name == "fp32"
    with pytest.raises(ValueError):
        precision.choose_precision("fp8")


def test_a_loaded_model_stays_fp32_when_the_cpu_lacks_bf16(monkeypatch):
    import torch

    from kb.embedders import load_embedder

    monkeypatch.setattr(precision, "cpu_flags", lambda: set())
    model = load_embedder("minilm", device="cpu")
    assert model.precision.name == "fp32"
    assert {p.dtype for p in model._model.parameters()} == {torch.float32}  # noqa: SLF001


def test_the_setting_is_shown_by_kb_config_and_reported_by_doctor(tmp_path):
    env = {**os.environ, "KB_EMBED_PRECISION": "fp32", "KB_DATA_DIR": str(tmp_path), "KB_CONFIG_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "kb", "config", "--json"], env=env, capture_output=True,
                         text=True, check=True).stdout
    row = next(s for s in json.loads(out)["settings"] if s["key"] == "embed_precision")
    assert row == {"key": "embed_precision", "value": "fp32", "source": "env KB_EMBED_PRECISION"}
    bad = subprocess.run([sys.executable, "-m", "kb", "config"], env={**env, "KB_EMBED_PRECISION": "fp8"},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "embed_precision" in bad.stderr

    from kb import doctor
    from kb.config import load_settings
    from kb.store import KnowledgeBase

    settings = load_settings(str(tmp_path / "new"), env={"KB_EMBED_PRECISION": "fp32"})
    check = doctor.check_embedding_model(settings, KnowledgeBase(tmp_path / "new"))
    assert check.status == "ok" and "runs in fp32 (embed_precision = fp32)" in check.detail
