"""e5's query path on ONNX Runtime (kb.embedders.e5_onnx): its vectors are interchangeable with torch's, it
falls back to torch when it cannot be built, and `kb doctor` says which path queries take."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_eval


def _queries(n_en: int = 6, n_zh: int = 6) -> list[str]:
    """Real SciFact claims and CMRC 2018 questions, plus a text longer than one 512-token window."""
    texts = []
    for name, n in (("scifact", n_en), ("cmrc2018-dev", n_zh)):
        with open(shared_eval(name) / "queries.jsonl", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line, _ in zip(f, range(n))]
    return texts + [" ".join(texts) * 12]


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


@pytest.fixture(scope="module")
def fp32_torch():
    from kb.embedders.e5 import E5Embedder

    return E5Embedder(precision="fp32", query_engine="torch")


def test_onnx_queries_equal_fp32_torch_ones(default_embedder, fp32_torch):
    texts = _queries()
    assert default_embedder.query_engine == "onnxruntime" and fp32_torch.query_engine == "torch"
    reference = fp32_torch.embed_queries(texts)
    alone = np.concatenate([default_embedder.embed_queries([t]) for t in texts])  # one at a time, as searched
    together = default_embedder.embed_queries(texts)  # one padded batch
    assert alone.dtype == np.float32 and alone.shape == (len(texts), 384)
    assert default_embedder.query_engine == "onnxruntime"  # it did not fall back
    assert _min_cosine(alone, reference) >= 0.999
    assert _min_cosine(together, reference) >= 0.999
    assert _min_cosine(alone, together) >= 0.9999
    # and with today's document path (bf16 torch on a CPU with native bf16): a query still finds its own text
    assert np.allclose(np.linalg.norm(alone, axis=1), 1, atol=1e-5)
    torch_path = fp32_torch.embed_documents(texts[:4])
    assert _min_cosine(default_embedder.embed_documents(texts[:4]), torch_path) >= 0.999


def test_queries_alone_never_build_the_torch_model():
    from kb.embedders.e5 import E5Embedder

    e5 = E5Embedder()
    e5.embed_queries(["Vitamin D deficiency increases the risk of fractures", "QF-300 的保修期是多久？"])
    assert e5._torch_model is None  # noqa: SLF001 (the test looks inside)
    e5.embed_documents(["passage text"])
    assert e5._torch_model is not None  # noqa: SLF001


def test_queries_fall_back_to_torch_when_onnx_runtime_fails(monkeypatch, fp32_torch):
    from kb.embedders import e5_onnx
    from kb.embedders.e5 import E5Embedder

    def refuse(*args, **kwargs):
        raise RuntimeError("no graph for you")

    monkeypatch.setattr(e5_onnx.OnnxEncoder, "__init__", refuse)
    e5 = E5Embedder(precision="fp32")
    texts = _queries(2, 2)
    vectors = e5.embed_queries(texts)
    assert e5.query_engine == "torch" and "no graph for you" in e5.query_fallback
    assert _min_cosine(vectors, fp32_torch.embed_queries(texts)) >= 0.9999


def test_query_engine_is_planned_without_imports(monkeypatch):
    import importlib.util

    from kb.embedders.e5 import E5Embedder, planned_query_engine

    assert planned_query_engine(None) == ("onnxruntime", "fp32, the same vectors as torch fp32")
    assert planned_query_engine("cuda")[0] == "torch"
    assert planned_query_engine(None, "torch") == ("torch", "query_engine = torch")
    with pytest.raises(ValueError, match="query_engine"):
        E5Embedder(query_engine="tensorrt")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnx" else real_find_spec(name, *a))
    assert planned_query_engine(None) == ("torch", "onnx not installed")


def test_doctor_says_which_path_queries_take(tmp_path, monkeypatch):
    import importlib.util

    from kb import doctor
    from kb.config import load_settings
    from kb.store import KnowledgeBase

    settings = load_settings(str(tmp_path / "kb"), env={})
    check = doctor.check_embedding_model(settings, KnowledgeBase(tmp_path / "kb"))
    assert check.status == "ok" and "queries on ONNX Runtime (fp32" in check.detail
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    check = doctor.check_embedding_model(settings, KnowledgeBase(tmp_path / "kb"))
    assert "queries as documents (onnxruntime not installed)" in check.detail
