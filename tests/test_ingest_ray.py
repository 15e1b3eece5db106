"""The Ray process stage on a real two-node local cluster, with the real MiniLM model and sample_docs: the same
chunks and vectors as a local ingest, a worker killed mid-batch changes nothing, files shipped from the driver
give the same result, and `kb ingest --ray ADDRESS` reuses the embedding cache through the broadcast keys."""

from __future__ import annotations

import functools
import json
import os
import shutil

import numpy as np
import pytest

from kb.ingest import IngestOptions, ingest
from kb.ingest.cluster import hash_key, plan_workers
from kb.store import KnowledgeBase
from conftest import SAMPLE_DOCS, run_kb

MODEL_ID = "all-MiniLM-L6-v2"


def test_plan_workers_uses_gpus_when_the_cluster_has_them():
    assert plan_workers({"CPU": 8.0, "GPU": 2.0}, 0) == (2, {"num_gpus": 1})
    assert plan_workers({"CPU": 8.0}, 0) == (8, {"num_cpus": 1})
    assert plan_workers({"CPU": 8.0}, 3) == (3, {"num_cpus": 1})
    assert hash_key("00000000000000ff" + "a" * 16) == 255


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each; started once for the module."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, logging_level="WARNING")
    yield c
    ray.shutdown()
    c.shutdown()


def _contents(kb_path):
    """Every chunk (document, ordinal, texts, tokens, position) with its vector, keyed for comparison."""
    cat = KnowledgeBase(kb_path).catalog(readonly=True)
    rows = cat.conn.execute(
        "SELECT d.path, c.ordinal, c.text, c.index_text, c.tokens, c.page_start, c.slide, c.heading_path, v.vector "
        "FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "LEFT JOIN vectors v ON v.text_hash = c.text_hash AND v.model_id = ?", (MODEL_ID,)).fetchall()
    cat.close()
    return {r[:8]: np.frombuffer(r[8], dtype=np.float32) for r in rows}


def _same(a, b):
    assert a.keys() == b.keys() and len(a) > 20
    for key, v in a.items():
        w = b[key]
        assert float(v @ w / (np.linalg.norm(v) * np.linalg.norm(w))) >= 0.9999, key


def _killing_factory(marker):
    """The real model, in a worker process that dies (SIGKILL) in its first embedding call of the run."""
    from kb.embedders import load_embedder

    def factory():
        embedder = load_embedder("minilm")
        real = embedder.embed_documents

        def embed_documents(texts, batch_size=32):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), 9)
            return real(texts, batch_size=batch_size)

        embedder.embed_documents = embed_documents
        return embedder

    return factory


def test_ray_ingest_equals_local_and_survives_a_killed_worker(cluster, tmp_path, minilm):
    from kb.embedders import load_embedder

    local = ingest(KnowledgeBase(tmp_path / "local"), IngestOptions(paths=[SAMPLE_DOCS], workers=0), "minilm",
                   lambda: minilm, MODEL_ID)
    marker = tmp_path / "killed"
    report = ingest(KnowledgeBase(tmp_path / "ray"), IngestOptions(paths=[SAMPLE_DOCS], ray_address="auto"),
                    "minilm", _killing_factory(str(marker)), MODEL_ID)
    assert marker.exists()  # a worker really died mid-batch, and its batch was retried
    assert not report.failed and sorted(report.added) == sorted(local.added)
    assert report.chunks_total == local.chunks_total == report.chunks_embedded
    _same(_contents(tmp_path / "local"), _contents(tmp_path / "ray"))

    # files the workers cannot read are shipped from the driver: same result
    shipped = ingest(KnowledgeBase(tmp_path / "shipped"),
                     IngestOptions(paths=[SAMPLE_DOCS], ray_address="auto", ray_ship_files="always"),
                     "minilm", functools.partial(load_embedder, "minilm"), MODEL_ID)
    assert not shipped.failed and shipped.chunks_total == local.chunks_total
    _same(_contents(tmp_path / "local"), _contents(tmp_path / "shipped"))


def test_ctrl_c_on_the_driver_commits_nothing(cluster, tmp_path):
    from kb.embedders import load_embedder

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"note{i}.md").write_text(f"# Note {i}\n\nThe stirrer number {i} turns at {i * 100} rpm.\n")

    def interrupt(progress):
        if progress.phase == "embed":
            raise KeyboardInterrupt

    kb = KnowledgeBase(tmp_path / "kb")
    with pytest.raises(KeyboardInterrupt):
        ingest(kb, IngestOptions(paths=[docs], ray_address="auto"), "minilm",
               functools.partial(load_embedder, "minilm"), MODEL_ID, on_progress=interrupt)
    cat = kb.catalog(readonly=True)
    assert cat.documents() == [] and cat.count_chunks() == 0 and cat.get_meta("generation") in (None, "0")
    cat.close()


def test_cli_ray_reuses_the_cache_and_a_copied_folder_is_shipped(cluster, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    env = {**os.environ, "KB_EMBEDDING_MODEL": "minilm"}
    first = run_kb("--kb", str(tmp_path / "kb"), "ingest", str(docs), "--ray", cluster.address, "--json", env=env)
    assert first.returncode == 0, first.stderr
    r1 = json.loads(first.stdout)
    again = run_kb("--kb", str(tmp_path / "kb"), "ingest", str(docs), "--force", "--ray", cluster.address, "--json",
                   env={**env, "KB_RAY_SHIP_FILES": "always"})
    assert again.returncode == 0, again.stderr
    r2 = json.loads(again.stdout)
    assert r1["added"] == 7 and r2["updated"] == 7
    assert r2["chunks"] == {"embedded": 0, "reused": r1["chunks"]["total"], "total": r1["chunks"]["total"]}
