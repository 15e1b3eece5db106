"""kb.evaluate: BEIR loading and IR metrics, checked against hand-computed values."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from kb.evaluate import (
    BeirDataset,
    available_splits,
    evaluate_run,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    recall_at_k,
    replace_queries,
    score_query,
)

SHARED_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"

LOG2_3 = math.log2(3)  # 1.5849625...
# rels {a: 2, b: 1}: ideal order [a, b] -> IDCG = 2/log2(2) + 1/log2(3) = 2 + 0.6309298 = 2.6309298
IDCG_AB = 2 + 1 / LOG2_3


# --------------------------------------------------------------------------- nDCG


def test_ndcg_graded_gain_is_the_relevance_value():
    rels = {"a": 2, "b": 1}
    # [b, x, a]: DCG = 1/log2(2) + 0/log2(3) + 2/log2(4) = 1 + 0 + 1 = 2
    assert ndcg_at_k(["b", "x", "a"], rels, 10) == pytest.approx(2 / IDCG_AB)  # 0.760188
    assert ndcg_at_k(["b", "x", "a"], rels, 10) == pytest.approx(0.7601875, abs=1e-6)
    # (with gain 2^rel - 1 it would be (1 + 3/2) / (3 + 1/log2(3)) = 0.6885; not what trec_eval does)
    # ideal order -> 1
    assert ndcg_at_k(["a", "b"], rels, 10) == pytest.approx(1.0)
    # [b, a]: DCG = 1 + 2/log2(3) = 2.2618595 -> 2.2618595 / 2.6309298 = 0.859719
    assert ndcg_at_k(["b", "a"], rels, 10) == pytest.approx(0.8597186, abs=1e-6)
    # [x, a]: DCG = 2/log2(3) = 1.2618595 -> 0.479625
    assert ndcg_at_k(["x", "a"], rels, 10) == pytest.approx((2 / LOG2_3) / IDCG_AB)
    # nothing relevant retrieved, or nothing retrieved at all -> 0
    assert ndcg_at_k(["x", "y"], rels, 10) == 0.0
    assert ndcg_at_k([], rels, 10) == 0.0


def test_ndcg_cutoff_applies_to_dcg_and_idcg():
    rels = {"a": 2, "b": 1}
    # k=2, [b, x, a]: a at rank 3 falls outside; DCG@2 = 1; IDCG@2 = 2.6309298 -> 0.380094
    assert ndcg_at_k(["b", "x", "a"], rels, 2) == pytest.approx(1 / IDCG_AB)
    # k=1, [b]: DCG@1 = 1; IDCG@1 = 2 (only a fits) -> 0.5
    assert ndcg_at_k(["b", "a"], rels, 1) == pytest.approx(0.5)
    # k=1, [a]: 2/2 = 1
    assert ndcg_at_k(["a"], rels, 1) == pytest.approx(1.0)


def test_ndcg_ignores_zero_and_negative_judgements():
    # b judged 0 and c judged -1 are non-relevant: no gain, no place in the ideal ranking
    rels = {"a": 1, "b": 0, "c": -1}
    # [b, c, a]: DCG = 1/log2(4) = 0.5; IDCG = 1 -> 0.5
    assert ndcg_at_k(["b", "c", "a"], rels, 10) == pytest.approx(0.5)


def test_ndcg_duplicates_count_once():
    rels = {"a": 2, "b": 1}
    # [b, b, a] de-duplicates to [b, a]: DCG = 1 + 2/log2(3) = 2.2618595 -> 0.859719
    # (counting b twice would give 1 + 1/log2(3) + 2/log2(4) = 2.63093 -> 1.0, a perfect score)
    assert ndcg_at_k(["b", "b", "a"], rels, 10) == pytest.approx(ndcg_at_k(["b", "a"], rels, 10))
    # the cut-off applies after de-duplication: [b, b, a] at k=2 is [b, a]
    assert ndcg_at_k(["b", "b", "a"], rels, 2) == pytest.approx((1 + 2 / LOG2_3) / IDCG_AB)


def test_no_relevant_documents_scores_zero_everywhere():
    for rels in ({}, {"a": 0}, {"a": 0, "b": -1}):
        assert ndcg_at_k(["a", "b"], rels, 10) == 0.0
        assert recall_at_k(["a", "b"], rels, 10) == 0.0
        assert mrr_at_k(["a", "b"], rels, 10) == 0.0


def test_bad_cutoff_is_rejected():
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            ndcg_at_k(["a"], {"a": 1}, k)
    with pytest.raises(ValueError, match="unknown metric"):
        score_query(["a"], {"a": 1}, {"map": (10,)})


# --------------------------------------------------------------------------- recall


def test_recall_with_duplicates_and_cutoff():
    rels = {"a": 1, "b": 1, "c": 1, "d": 0}  # 3 relevant (d is judged non-relevant)
    ranked = ["a", "a", "a", "d", "b"]
    # de-duplicated: [a, d, b]; top 3 = {a, d, b}; relevant among them {a, b} -> 2/3
    # (without de-duplication top 3 = [a, a, a] -> 1/3, or 3/3 if each copy counted)
    assert recall_at_k(ranked, rels, 3) == pytest.approx(2 / 3)
    # top 2 = {a, d} -> 1/3
    assert recall_at_k(ranked, rels, 2) == pytest.approx(1 / 3)
    # k beyond the list length: {a, d, b} -> 2/3
    assert recall_at_k(ranked, rels, 100) == pytest.approx(2 / 3)
    assert recall_at_k(["c", "b", "a"], rels, 3) == pytest.approx(1.0)


# --------------------------------------------------------------------------- MRR


def test_mrr_at_the_cutoff():
    rels = {"a": 1}
    # a at rank 3: 1/3 when k >= 3, 0 when k = 2
    assert mrr_at_k(["x", "y", "a"], rels, 3) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], rels, 2) == 0.0
    # duplicates: [x, x, a] is [x, a] -> a at rank 2 -> 1/2, even at k = 2
    assert mrr_at_k(["x", "x", "a"], rels, 2) == pytest.approx(0.5)
    # only the first relevant document counts; graded relevance does not matter
    assert mrr_at_k(["x", "b", "a"], {"a": 3, "b": 1}, 10) == pytest.approx(0.5)


# --------------------------------------------------------------------------- evaluate_run


def test_evaluate_run_counts_a_missing_query_as_zero():
    qrels = {
        "q1": {"a": 1},
        "q2": {"b": 2, "c": 1},
        "q3": {"d": 1},  # not in the run
    }
    run = {
        "q1": ["a", "x"],
        "q2": ["c", "b"],
        "q_extra": ["a"],  # not judged: ignored
    }
    result = evaluate_run(run, qrels)
    assert set(result) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "queries"}
    assert result["queries"] == 3
    # ndcg: q1 = 1; q2 [c, b] = (1 + 2/log2(3)) / (2 + 1/log2(3)) = 2.2618595 / 2.6309298 = 0.859719;
    # q3 = 0 -> (1 + 0.859719 + 0) / 3 = 0.619906
    assert result["ndcg@10"] == pytest.approx((1 + (1 + 2 / LOG2_3) / IDCG_AB) / 3)
    assert result["ndcg@10"] == pytest.approx(0.619906, abs=1e-6)
    # recall: 1, 1, 0 -> 2/3; mrr: 1 (a at 1), 1 (c, rel 1, at 1), 0 -> 2/3
    assert result["recall@10"] == pytest.approx(2 / 3)
    assert result["recall@100"] == pytest.approx(2 / 3)
    assert result["mrr@10"] == pytest.approx(2 / 3)


def test_evaluate_run_custom_cutoffs_and_empty_qrels():
    qrels = {"q1": {"a": 1, "b": 1}}
    run = {"q1": ["x", "a", "b"]}
    result = evaluate_run(run, qrels, {"recall": (1, 2, 3), "mrr": (1,)})
    # recall@1 = 0/2, recall@2 = 1/2, recall@3 = 2/2; mrr@1 = 0 (a is at rank 2)
    assert result == {"recall@1": 0.0, "recall@2": 0.5, "recall@3": 1.0, "mrr@1": 0.0, "queries": 1}
    empty = evaluate_run(run, {})
    assert empty["queries"] == 0 and empty["ndcg@10"] == 0.0


def test_score_query_defaults():
    scores = score_query(["b", "x", "a"], {"a": 2, "b": 1})
    assert scores == pytest.approx(
        {"ndcg@10": 2 / IDCG_AB, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
    )


# --------------------------------------------------------------------------- percentile


def test_percentile_matches_numpy_linear_interpolation():
    # [1, 2, 3, 4]: p50 at position 3 * 0.5 = 1.5 -> 2.5; p95 at 2.85 -> 3 + 0.85 * (4 - 3) = 3.85
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile([4, 1, 3, 2], 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    assert percentile([1, 2], 0) == 1.0 and percentile([1, 2], 100) == 2.0
    rng = random.Random(7)
    for n in (1, 2, 5, 33, 200):
        values = [rng.expovariate(1.0) for _ in range(n)]
        for p in (0, 1, 25, 50, 90, 95, 99, 100):
            assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)), rel=1e-12)
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], float("nan"))


# --------------------------------------------------------------------------- load_beir


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def tiny_beir(tmp_path) -> Path:
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    _write_jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Cats", "text": "Cats purr."},
            {"_id": 2, "title": "", "text": "Numeric id, empty title."},
            {"_id": "d3", "text": "中文段落，没有标题。"},
        ],
    )
    _write_jsonl(
        root / "queries.jsonl",
        [
            {"_id": "q1", "text": "do cats purr", "metadata": {}},
            {"_id": "q2", "text": "中文问题"},
            {"_id": "q3", "text": "only judged in train"},
            {"_id": 4, "text": "not judged anywhere"},
        ],
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t2\t0\n\nq2\td3\t1\n", encoding="utf-8"
    )
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td1\t1\n", encoding="utf-8")
    return root


def test_load_beir_tiny(tiny_beir):
    ds = load_beir(tiny_beir)
    assert isinstance(ds, BeirDataset)
    assert ds.corpus == {
        "d1": {"title": "Cats", "text": "Cats purr."},
        "2": {"title": "", "text": "Numeric id, empty title."},  # ids are strings
        "d3": {"title": "", "text": "中文段落，没有标题。"},  # missing title -> ""
    }
    # only the queries judged in the split; a score-0 judgement still makes a query judged
    assert ds.queries == {"q1": "do cats purr", "q2": "中文问题"}
    assert ds.qrels == {"q1": {"d1": 2, "2": 0}, "q2": {"d3": 1}}
    assert all(isinstance(v, int) for rels in ds.qrels.values() for v in rels.values())

    train = load_beir(tiny_beir, "train")
    assert train.queries == {"q3": "only judged in train"}
    assert available_splits(tiny_beir) == ["test", "train"]


def test_replace_queries_keeps_judgements_of_the_translated_ones(tiny_beir, tmp_path):
    translated = tmp_path / "q.en.jsonl"
    _write_jsonl(translated, [{"_id": "q2", "text": "a Chinese question, in English"}])
    ds = replace_queries(load_beir(tiny_beir), translated)
    assert ds.queries == {"q2": "a Chinese question, in English"}
    assert ds.qrels == {"q2": {"d3": 1}}
    _write_jsonl(translated, [{"_id": "q3", "text": "judged only in train"}])
    with pytest.raises(ValueError, match=r"not judged in this split: q3"):
        replace_queries(load_beir(tiny_beir), translated)


def test_load_beir_missing_split_lists_the_existing_ones(tiny_beir):
    with pytest.raises(ValueError, match=r"'dev'.*available splits: test, train"):
        load_beir(tiny_beir, "dev")


def test_load_beir_missing_files(tmp_path, tiny_beir):
    with pytest.raises(ValueError, match="does not exist"):
        load_beir(tmp_path / "nope")
    (tiny_beir / "corpus.jsonl").unlink()
    with pytest.raises(ValueError, match="corpus.jsonl not found"):
        load_beir(tiny_beir)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "corpus.jsonl").write_text("", encoding="utf-8")
    (empty / "queries.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="no qrels"):
        load_beir(empty)


def test_load_beir_malformed_lines(tiny_beir):
    qrels = tiny_beir / "qrels" / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1 d1 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"test.tsv:2"):
        load_beir(tiny_beir)
    qrels.write_text("q1\td1\t1\nq9\td1\t1\n", encoding="utf-8")  # no header is fine; q9 has no text
    with pytest.raises(ValueError, match="q9"):
        load_beir(tiny_beir)
    qrels.write_text("q1\td1\t1\n", encoding="utf-8")
    assert load_beir(tiny_beir).qrels == {"q1": {"d1": 1}}
    (tiny_beir / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{broken\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus.jsonl:2: invalid JSON"):
        load_beir(tiny_beir)


# --------------------------------------------------------------------------- real data


def _shared(name: str) -> Path:
    path = SHARED_EVAL / name
    if not path.is_dir():
        pytest.skip(f"{path} is not available")
    return path


def test_load_beir_scifact():
    ds = load_beir(_shared("scifact"), "test")
    assert len(ds.queries) == 300
    assert len(ds.qrels) == 300
    assert len(ds.corpus) == 5183
    assert sum(len(r) for r in ds.qrels.values()) == 339
    # every judged doc is in the corpus; the oracle run scores perfectly
    assert all(d in ds.corpus for rels in ds.qrels.values() for d in rels)
    oracle = {q: sorted(rels, key=rels.get, reverse=True) for q, rels in ds.qrels.items()}
    assert evaluate_run(oracle, ds.qrels) == pytest.approx(
        {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0, "queries": 300}
    )
    with pytest.raises(ValueError, match="available splits: test, train"):
        load_beir(_shared("scifact"), "dev")


def test_load_beir_cmrc():
    ds = load_beir(_shared("cmrc2018-dev"), "test")
    assert len(ds.corpus) == 848
    assert len(ds.queries) == 3219  # every question is judged (its source paragraph)
    assert set(ds.queries) == set(ds.qrels)


# --------------------------------------------------------------------------- pytrec_eval cross-check


def test_matches_pytrec_eval_on_random_runs():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = random.Random(2024)
    docs = [f"d{i}" for i in range(60)]
    qrels = {
        f"q{i}": {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 8))}
        for i in range(40)
    }
    run = {q: rng.sample(docs, rng.randint(0, 40)) for q in qrels}
    # pytrec_eval ranks by score (ties broken by doc id), so give strictly decreasing scores
    scored = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in run.items() if r}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10", "recall.100"})
    theirs = ev.evaluate(scored)
    cut10 = {q: {d: s for d, s in ranking.items() if s > len(run[q]) - 10} for q, ranking in scored.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut10)
    for q, ranking in run.items():
        if not ranking:
            continue
        ours = score_query(ranking, qrels[q])
        assert ours["ndcg@10"] == pytest.approx(theirs[q]["ndcg_cut_10"], abs=1e-9)
        assert ours["recall@10"] == pytest.approx(theirs[q]["recall_10"], abs=1e-9)
        assert ours["recall@100"] == pytest.approx(theirs[q]["recall_100"], abs=1e-9)
        assert ours["mrr@10"] == pytest.approx(rr[q]["recip_rank"], abs=1e-9)
