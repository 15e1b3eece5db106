"""How much the cross-language list should weigh (kb.retrieve: CROSS_WEIGHT scaled by `standout`), on a
bilingual corpus built from real data and on sample_docs. Three ways, from the same candidate lists:

- `before`: the cross list at its full weight, whatever it holds;
- `after`: its weight scaled by how clearly its best stands out (what `kb search` does);
- `without`: no cross list (what a same-language question would get in a one-language corpus).

The bilingual corpus: SciFact's documents judged by its test queries plus 1,200 others (seeded), and all of CMRC
dev's paragraphs. Judged queries: SciFact test (English over English), CMRC's first 300 (Chinese over Chinese),
and bench/crosslingual/'s two sets (English questions over the Chinese paragraphs, Chinese claims over the English
abstracts). Prints hybrid nDCG@10 per set and way; sample_docs' 39 + 39 cases as found@1/@5.

    python bench/cross_weight.py [--keep DIR]   (DIR keeps the two knowledge bases for the next run)
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, dataset, figure, read_jsonl, sample_searcher  # noqa: E402

WAYS = ("before", "after", "without")
CROSS_SETS = {"cmrc_en_over_zh": "cmrc2018-dev.en", "scifact_zh_over_en": "scifact.zh"}


def bilingual_corpus(out: Path) -> None:
    """The BEIR folder described above, written to `out` (once)."""
    if (out / "qrels" / "test.tsv").exists():
        return
    sf, cm = dataset("scifact"), dataset("cmrc2018-dev")

    def qrels(path: Path) -> list[list[str]]:
        with open(path, encoding="utf-8") as f:
            return list(csv.reader(f, delimiter="\t"))[1:]

    sq, cq = qrels(sf / "qrels" / "test.tsv"), qrels(cm / "qrels" / "test.tsv")
    cross_ids = {q["_id"] for name in CROSS_SETS.values()
                 for q in read_jsonl(REPO / "bench" / "crosslingual" / f"{name}.queries.jsonl")}
    cm_first = list(dict.fromkeys(a for a, _, _ in cq))[:300]
    keep_cm = set(cm_first) | {i for i in cross_ids if i.startswith("DEV")}
    queries = [q for q in read_jsonl(sf / "queries.jsonl") if q["_id"] in {a for a, _, _ in sq}]
    queries += [q for q in read_jsonl(cm / "queries.jsonl") if q["_id"] in keep_cm]
    judged = {d for _, d, _ in sq}
    docs = read_jsonl(sf / "corpus.jsonl")
    others = [d for d in docs if d["_id"] not in judged]
    random.Random(7).shuffle(others)
    corpus = [d for d in docs if d["_id"] in judged] + others[:1200] + read_jsonl(cm / "corpus.jsonl")
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        with open(out / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    kept = {q["_id"] for q in queries}
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{a}\t{d}\t{s}\n" for a, d, s in sq + cq if a in kept)


def fused(searcher, found, way: str, k: int):
    """`found` (one query's candidate lists, computed once) fused with the cross list weighted `way`."""
    from kb.retrieve import standout

    for lists in found.queries:
        if lists.cross:
            lists.weight = standout([s for _, s in lists.dense]) if way == "after" else \
                {"before": 1.0, "without": 0.0}[way]
    return searcher.fuse(found, k=k, rerank=False)


def bilingual_searcher(kb_dir: Path, data: Path):
    """(the bilingual dataset, a Searcher over its corpus in `kb_dir`, ingested there first if not yet)."""
    from kb.config import load_settings
    from kb.evaluate import load_beir, write_corpus
    from kb.ingest import IngestOptions, ingest_with_settings
    from kb.retrieve import open_searcher

    base = load_beir(data)
    settings = load_settings(str(kb_dir), {})
    if not (kb_dir / "catalog.sqlite").exists():
        write_corpus(base, kb_dir.parent / "corpus")
        ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[kb_dir.parent / "corpus"]))
    return base, open_searcher(settings)


def query_sets(base, data: Path, limit: int | None = None) -> dict[str, dict[str, str]]:
    """{set: {query id: text}}: the two same-language sets (their first `limit`) and the two cross-lingual ones."""
    from kb.evaluate import load_beir, replace_queries

    sets = {"scifact_en": dict([(q, t) for q, t in base.queries.items() if not q.startswith("DEV")][:limit]),
            "cmrc_zh": dict([(q, t) for q, t in base.queries.items() if q.startswith("DEV")][:limit])}
    for label, name in CROSS_SETS.items():
        # (replace_queries keeps only those queries in the dataset it is given: a fresh copy each)
        wording = REPO / "bench" / "crosslingual" / f"{name}.queries.jsonl"
        sets[label] = replace_queries(load_beir(data), wording).queries
    return sets


def bilingual(kb_dir: Path, data: Path) -> None:
    from kb.evaluate import dedupe, doc_id_of, ndcg_at_k

    base, searcher = bilingual_searcher(kb_dir, data)
    for label, queries in query_sets(base, data).items():
        scores = {way: [] for way in WAYS}
        for qid, text in queries.items():
            found = searcher.candidates([text])
            for way in WAYS:
                hits = fused(searcher, found, way, 200).hits
                scores[way].append(ndcg_at_k(dedupe(doc_id_of(h.path) for h in hits), base.qrels[qid], 10))
        for way in WAYS:
            figure(f"bilingual_{label}_{way}_ndcg10", sum(scores[way]) / len(scores[way]))
    searcher.close()


def sample(kb_dir: Path) -> None:
    import answers
    import crosslingual as cross

    searcher = sample_searcher(kb_dir)
    cases = cross.load_cases()
    found = {q["id"]: searcher.candidates([q["question"]]) for q in cases}
    for way in WAYS:
        ranks = [(q["cross"], cross.rank_of(fused(searcher, found[q["id"]], way, 10), q, answers.location_matches))
                 for q in cases]
        for name, is_cross in (("same_language", False), ("cross_lingual", True)):
            rs = [r for c, r in ranks if c == is_cross]
            for k in (1, 5):
                figure(f"sample_{name}_{way}_found_at_{k}", sum(1 for r in rs if r and r <= k) / len(rs))
    searcher.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, default=None, help="keep the knowledge bases (and the corpus) in DIR")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-cross-weight-") as tmp:
        base = (args.keep or Path(tmp)).resolve()
        bilingual_corpus(base / "bilingual" / "data")
        sample(base / "sample" / "kb")
        bilingual(base / "bilingual" / "kb", base / "bilingual" / "data")


if __name__ == "__main__":
    main()
