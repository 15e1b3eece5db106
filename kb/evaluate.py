"""Retrieval evaluation: load a BEIR-layout dataset and score ranked runs with standard IR metrics.

Pure functions only (no printing, no heavy imports), so the CLI and the bench scripts can share them.

Metric definitions follow trec_eval (as used by BEIR through pytrec_eval):

* ``ndcg@k`` is trec_eval's ``ndcg_cut.k``: DCG = sum over ranks i=1..k of rel_i / log2(i + 1), where
  the gain is the graded relevance value itself (not 2^rel - 1) and only rel > 0 contributes; the
  ideal DCG sorts the query's judged relevances (rel > 0) in decreasing order and cuts at k as well.
* ``recall@k`` is ``recall.k``: |relevant in top k| / |relevant|, relevant meaning rel > 0.
* ``mrr@k`` is BEIR's MRR@k: 1 / rank of the first relevant document in the top k, else 0.

Every metric is 0 for a query without relevant documents.

A ranking is a list of document ids, best first. **Duplicate ids count once**: only the first
occurrence is kept, and the cut-off k applies to the de-duplicated list (pytrec_eval takes a
doc -> score dict, so it cannot see duplicates either; trec_eval would reject the run). So a
chunk-level retriever that returns several chunks of one document gets no extra credit for the
repeats, and the repeats do not use up any of the k slots.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

__all__ = [
    "BeirDataset",
    "DEFAULT_KS",
    "available_splits",
    "load_beir",
    "replace_queries",
    "dedupe",
    "ndcg_at_k",
    "recall_at_k",
    "mrr_at_k",
    "score_query",
    "evaluate_run",
    "percentile",
]

# Metric name -> cut-offs computed by evaluate_run: yields ndcg@10, recall@10, recall@100, mrr@10.
DEFAULT_KS: Mapping[str, tuple[int, ...]] = {"ndcg": (10,), "recall": (10, 100), "mrr": (10,)}

_LAYOUT = "expected BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv"


# --------------------------------------------------------------------------- loading


@dataclass
class BeirDataset:
    corpus: dict[str, dict] = field(default_factory=dict)  # doc id -> {"title": str, "text": str}
    queries: dict[str, str] = field(default_factory=dict)  # query id -> text (judged queries only)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # query id -> doc id -> relevance


def available_splits(dataset_dir: Path) -> list[str]:
    """The splits that have a ``qrels/<split>.tsv`` file, sorted."""
    qrels_dir = Path(dataset_dir) / "qrels"
    if not qrels_dir.is_dir():
        return []
    return sorted(p.stem for p in qrels_dir.glob("*.tsv") if p.is_file())


def load_beir(dataset_dir: Path, split: str = "test") -> BeirDataset:
    """Load a dataset in BEIR layout.

    ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``) and
    ``qrels/<split>.tsv`` (``query-id<TAB>corpus-id<TAB>score``, header line optional). Ids are
    always strings. ``queries`` holds only the queries judged in the split (in qrels order); judgements
    with score 0 are kept in ``qrels`` (as BEIR does) and simply count as non-relevant.
    Raises ValueError with a one-line reason for a missing directory, file or split, or a malformed line.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise ValueError(f"dataset directory {root} does not exist ({_LAYOUT})")
    corpus_path, queries_path = root / "corpus.jsonl", root / "queries.jsonl"
    for path in (corpus_path, queries_path):
        if not path.is_file():
            raise ValueError(f"{path} not found ({_LAYOUT})")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = available_splits(root)
        have = f"available splits: {', '.join(splits)}" if splits else f"no qrels/*.tsv files in {root}"
        raise ValueError(f"split {split!r} not found: {qrels_path} does not exist ({have})")

    qrels = _read_qrels(qrels_path)

    all_queries: dict[str, str] = {}
    for lineno, obj in _read_jsonl(queries_path):
        all_queries[_id_of(obj, queries_path, lineno)] = str(obj.get("text") or "")
    missing = [qid for qid in qrels if qid not in all_queries]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{len(missing)} query id(s) judged in {qrels_path} are not in {queries_path}: {shown}"
        )
    queries = {qid: all_queries[qid] for qid in qrels}

    corpus: dict[str, dict] = {}
    for lineno, obj in _read_jsonl(corpus_path):
        corpus[_id_of(obj, corpus_path, lineno)] = {
            "title": str(obj.get("title") or ""),
            "text": str(obj.get("text") or ""),
        }
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)


def replace_queries(dataset: BeirDataset, queries_path: Path) -> BeirDataset:
    """Evaluate other wordings of the judged queries (e.g. translations): `queries_path` is a queries.jsonl whose
    ids are query ids of the split; only those queries are kept, with the new text and the split's judgements."""
    path = Path(queries_path)
    if not path.is_file():
        raise ValueError(f"queries file {path} not found")
    texts = {_id_of(obj, path, lineno): str(obj.get("text") or "") for lineno, obj in _read_jsonl(path)}
    unknown = [qid for qid in texts if qid not in dataset.qrels]
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ValueError(f"{len(unknown)} query id(s) in {path} are not judged in this split: {shown}")
    dataset.queries = texts
    dataset.qrels = {qid: dataset.qrels[qid] for qid in texts}
    return dataset


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def _id_of(obj: dict, path: Path, lineno: int) -> str:
    if obj.get("_id") is None:
        raise ValueError(f"{path}:{lineno}: missing '_id'")
    return str(obj["_id"])


def _parse_score(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        try:
            value = float(raw)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            score = _parse_score(cols[2].strip()) if len(cols) == 3 else None
            if score is None:
                if lineno == 1 and len(cols) == 3:
                    continue  # header: query-id  corpus-id  score
                raise ValueError(
                    f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>integer score', got {line[:80]!r}"
                )
            qid, did = cols[0].strip(), cols[1].strip()
            qrels.setdefault(qid, {})[did] = score  # a repeated pair: the last line wins, as in BEIR
    return qrels


# --------------------------------------------------------------------------- metrics


def dedupe(ranked: Iterable[str]) -> list[str]:
    """The ranking with repeated ids removed, keeping each id's first (best) position."""
    return list(dict.fromkeys(ranked))


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"cut-off k must be a positive integer, got {k!r}")
    return k


def _top_k(ranked: Sequence[str], k: int) -> list[str]:
    _check_k(k)
    top: list[str] = []
    seen: set[str] = set()
    for doc in ranked:
        if doc not in seen:
            seen.add(doc)
            top.append(doc)
            if len(top) == k:
                break
    return top


def ndcg_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int = 10) -> float:
    """trec_eval ndcg_cut.k: gain = graded relevance (rel > 0 only), discount log2(rank + 1)."""
    top = _top_k(ranked, k)
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    if not ideal:
        return 0.0
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    dcg = 0.0
    for i, doc in enumerate(top):
        rel = rels.get(doc, 0)
        if rel > 0:
            dcg += rel / math.log2(i + 2)
    return dcg / idcg


def recall_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """|relevant in top k| / |relevant| (relevant: rel > 0); 0 when nothing is relevant."""
    relevant = {d for d, r in rels.items() if r > 0}
    top = _top_k(ranked, k)
    if not relevant:
        return 0.0
    return sum(1 for d in top if d in relevant) / len(relevant)


def mrr_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant (rel > 0) document within the top k, else 0."""
    for i, doc in enumerate(_top_k(ranked, k)):
        if rels.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


_METRICS = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}


def _check_ks(ks: Mapping[str, Iterable[int]]) -> dict[str, list[int]]:
    unknown = sorted(set(ks) - set(_METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(_METRICS)}")
    return {name: [_check_k(k) for k in cuts] for name, cuts in ks.items()}


def score_query(
    ranked: Sequence[str], rels: Mapping[str, int], ks: Mapping[str, Iterable[int]] = DEFAULT_KS
) -> dict[str, float]:
    """All metrics for one query, e.g. {"ndcg@10": ..., "recall@10": ..., "recall@100": ..., "mrr@10": ...}."""
    ranked = dedupe(ranked)
    return {
        f"{name}@{k}": _METRICS[name](ranked, rels, k)
        for name, cuts in _check_ks(ks).items()
        for k in cuts
    }


def evaluate_run(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Mapping[str, Iterable[int]] = DEFAULT_KS,
) -> dict[str, float | int]:
    """Mean of each metric over every query in ``qrels``.

    ``run`` maps query id -> ranked doc ids (best first). A judged query missing from the run scores 0
    on every metric (trec_eval -c); queries in the run but not in ``qrels`` are ignored; a judged query
    with no relevant documents scores 0. With the default ``ks`` the keys are ``ndcg@10``,
    ``recall@10``, ``recall@100``, ``mrr@10``, plus ``queries`` (the number of judged queries averaged).
    Note that BEIR averages over the queries present in the run instead, so a partial run reports
    higher numbers there.
    """
    checked = _check_ks(ks)
    names = [f"{name}@{k}" for name, cuts in checked.items() for k in cuts]
    totals = dict.fromkeys(names, 0.0)
    for qid, rels in qrels.items():
        ranked = run.get(qid)
        if not ranked:
            continue
        for key, value in score_query(ranked, rels, checked).items():
            totals[key] += value
    n = len(qrels)
    result: dict[str, float | int] = {key: (total / n if n else 0.0) for key, total in totals.items()}
    result["queries"] = n
    return result


# --------------------------------------------------------------------------- latency


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between closest ranks, like
    numpy.percentile's default: position (n - 1) * p / 100 in the sorted values."""
    data = sorted(float(v) for v in values)
    if not data:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= p <= 100:  # also rejects NaN
        raise ValueError(f"percentile p must be within 0..100, got {p!r}")
    pos = (len(data) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    frac = pos - lo
    return data[lo] + (data[hi] - data[lo]) * frac


# ---- running an evaluation through kb's own ingest and search ---------------------------------

def corpus_filename(doc_id: str) -> str:
    """A BEIR doc id as a safe file name (and back, with `doc_id_of`)."""
    from urllib.parse import quote

    return quote(doc_id, safe="") + ".md"


def doc_id_of(path: str) -> str:
    from urllib.parse import unquote

    return unquote(Path(path).name[: -len(".md")])


def write_corpus(dataset: BeirDataset, directory: Path) -> None:
    """Write each BEIR document as Markdown (`# title` then text) so it goes through the real ingest path."""
    directory.mkdir(parents=True, exist_ok=True)
    for doc_id, doc in dataset.corpus.items():
        title = (doc.get("title") or "").strip()
        body = (doc.get("text") or "").strip()
        text = f"# {title}\n\n{body}\n" if title else f"{body}\n"
        (directory / corpus_filename(doc_id)).write_text(text, encoding="utf-8")


def run_queries(searcher, dataset: BeirDataset, modes: Sequence[str], depth: int = 100,
                on_query=None, variants=None, translated=None) -> dict[str, dict]:
    """Search every judged query in each mode (`bm25`, `dense`, `hybrid`, `hybrid+rerank`, `hybrid+fusion`,
    `hybrid+translate`); a document ranks by its best chunk. `variants(query) -> [str]` writes the RAG-Fusion
    queries for `hybrid+fusion`, `translated(searcher, query) -> str | None` the translation for
    `hybrid+translate` (their generation counts in the latency).

    Returns {mode: metrics + p50_ms/p95_ms}.
    """
    import time

    results: dict[str, dict] = {}
    for mode in modes:
        run: dict[str, list[str]] = {}
        latencies: list[float] = []
        for n, (qid, text) in enumerate(dataset.queries.items(), 1):
            t = time.perf_counter()
            base, _, extra = mode.partition("+")
            extra_queries = variants(text) if extra == "fusion" else ()
            translation = translated(searcher, text) if extra == "translate" else None
            response = searcher.search(text, k=depth * 2, mode=base, candidates=depth, rerank=extra == "rerank",
                                       extra_queries=extra_queries, translation=translation)
            latencies.append((time.perf_counter() - t) * 1000)
            run[qid] = dedupe(doc_id_of(h.path) for h in response.hits)[:depth]
            if on_query:
                on_query(mode, n, len(dataset.queries))
        metrics = evaluate_run(run, {q: dataset.qrels[q] for q in dataset.queries})
        metrics["p50_ms"] = round(percentile(latencies, 50), 2)
        metrics["p95_ms"] = round(percentile(latencies, 95), 2)
        results[mode] = metrics
    return results


EVAL_MODES = ("hybrid", "dense", "bm25", "hybrid+rerank", "hybrid+fusion", "hybrid+translate")


def run_eval(settings, dataset_dir: Path, split: str = "test", modes: Sequence[str] = (), limit: int = 0,
             queries: Path | None = None, keep_kb: bool = False, on_progress=None, on_model_load=None,
             on_query=None) -> dict:
    """`kb eval`: ingest a BEIR dataset's corpus through kb's own ingest (into a throwaway knowledge base, or into
    `settings.kb_path` when `keep_kb`, kept for next time) and score every judged query in each mode.

    Returns {dataset, split, queries, documents, embedding_model, modes: {mode: metrics + p50_ms/p95_ms}}.
    """
    import tempfile

    from kb.errors import UsageError
    from kb.ingest import IngestOptions, ingest_with_settings
    from kb.retrieve import open_searcher

    for m in modes:
        if m not in EVAL_MODES:
            raise UsageError(f"--mode must be one of: {', '.join(EVAL_MODES)} (got {m!r})")
    try:
        dataset = load_beir(dataset_dir, split)
        if queries:
            replace_queries(dataset, queries)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if limit:
        dataset.queries = dict(list(dataset.queries.items())[:limit])
    with tempfile.TemporaryDirectory(prefix="kb-eval-") as tmp:
        if not keep_kb:
            settings.kb_path = Path(tmp) / "kb"
        corpus_dir = settings.kb_path / "eval-corpus" / Path(dataset_dir).resolve().name
        write_corpus(dataset, corpus_dir)
        ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[corpus_dir]),
                             on_progress=on_progress, on_model_load=on_model_load)
        searcher = open_searcher(settings)
        try:
            default = ["bm25", "dense", "hybrid"] + (["hybrid+rerank"] if searcher.reranker else [])
            results = run_queries(searcher, dataset, list(modes) or default, on_query=on_query,
                                  variants=fusion_variant_writer(settings, modes), translated=_translator(settings, modes))
            model = searcher.meta.get("embedding_model")
        finally:
            searcher.close()
    return {"dataset": str(dataset_dir), "split": split, "queries": len(dataset.queries),
            "documents": len(dataset.corpus), "embedding_model": model, "modes": results}


def _translator(settings, modes: Sequence[str]):
    if "hybrid+translate" not in modes:
        return None
    from kb.answer.fusion import translator

    return translator(settings)


def fusion_variant_writer(settings, modes: Sequence[str]):
    """For `--mode hybrid+fusion`: the configured LLM writing RAG-Fusion variants, as `kb ask` does."""
    if "hybrid+fusion" not in modes:
        return None
    from kb.answer.fusion import generate_variants
    from kb.llm import load_llm

    llm = load_llm(settings)
    return lambda query: generate_variants(llm, query, settings.variants)[0]
