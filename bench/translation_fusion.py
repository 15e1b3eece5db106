"""How a question's LLM translation should be fused with the question's own lists, in a knowledge base partly in
the other language. Four ways, from the same candidate lists and the same translation:

- `cross`: the question's lists plus its dense list over the other language's chunks (`kb search`; no LLM);
- `before`: that, plus the translation's lists at full weight (`kb search --translate`, `kb eval --mode
  hybrid+translate` until stop 23);
- `before_ask`: that, with the translation's lists at half weight and its best passage kept among the sources
  (`kb ask` with `translate = true` until stop 23, RAG-Fusion's rewordings aside);
- `after`: the translation's lists in place of the cross-language list, at full weight, its best passage kept
  (all three since stop 23; since stop 26 the first passage of each of its lists).

Sets: sample_docs' 39 + 39 cases (the expected place at rank 1, and among the first 4: `kb ask`'s `top_k`), and
cross_weight.py's bilingual corpus from real data (SciFact abstracts and CMRC paragraphs) with its four judged
query sets (nDCG@10; the two same-language ones cut to `--limit` queries, since every question of a bilingual
corpus is translated). Translations come from the packaged LLM (one short greedy call each) and are cached in
the keep directory.

    python bench/translation_fusion.py [--keep DIR] [--limit 100] [--sample-kb KB]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cross_weight  # noqa: E402
from _common import JsonCache, figure, sample_searcher  # noqa: E402

WAYS = ("cross", "before", "before_ask", "after")


class Translations:
    """The LLM's translations, cached in a JSON file (the LLM loaded on the first miss)."""

    def __init__(self, path: Path, settings):
        self.cache, self.settings, self.llm = JsonCache(path), settings, None

    def __call__(self, query: str) -> str | None:
        return self.cache.get(query, lambda: self._translate(query))

    def _translate(self, query: str) -> str | None:
        from kb.answer.fusion import translate
        from kb.llm import load_llm

        self.llm = self.llm or load_llm(self.settings)
        return translate(self.llm, query)


def fused(searcher, question: str, translation: str | None, way: str, k: int):
    """The search response of `question` fused `way`."""
    if way in ("cross", "after") or not translation:
        return searcher.search(question, k=k, rerank=False,
                               translation=translation if way != "cross" else None)
    found = searcher.candidates([question, translation])
    if way == "before_ask":
        found.queries[1].weight = 0.5
    return searcher.fuse(found, k=k, rerank=False, reserve=[translation] if way == "before_ask" else ())


def sample(kb_dir: Path, translations) -> None:
    import answers
    import crosslingual as cross

    searcher = sample_searcher(kb_dir)
    cases = cross.load_cases()
    for way in WAYS:
        ranks = []
        for q in cases:
            translation = translations(q["question"]) if searcher.cross_language(q["question"]) else None
            response = fused(searcher, q["question"], translation, way, 4)
            ranks.append((q["cross"], cross.rank_of(response, q, answers.location_matches)))
        for name, is_cross in (("same_language", False), ("cross_lingual", True)):
            rs = [r for c, r in ranks if c == is_cross]
            for k in (1, 4):
                figure(f"sample_{name}_{way}_found_at_{k}", sum(1 for r in rs if r and r <= k) / len(rs))
    searcher.close()


def bilingual(kb_dir: Path, data: Path, translations, limit: int) -> None:
    from kb.evaluate import dedupe, doc_id_of, ndcg_at_k

    base, searcher = cross_weight.bilingual_searcher(kb_dir, data)
    for label, queries in cross_weight.query_sets(base, data, limit).items():
        scores: dict[str, list[float]] = {way: [] for way in WAYS}
        for qid, text in queries.items():
            translation = translations(text) if searcher.cross_language(text) else None
            for way in WAYS:
                hits = fused(searcher, text, translation, way, 200).hits
                scores[way].append(ndcg_at_k(dedupe(doc_id_of(h.path) for h in hits), base.qrels[qid], 10))
        for way in WAYS:
            figure(f"bilingual_{label}_{way}_ndcg10", sum(scores[way]) / len(scores[way]))
    searcher.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, default=None, help="keep the knowledge bases, corpus and translations in DIR")
    ap.add_argument("--limit", type=int, default=100, help="same-language queries per bilingual set")
    ap.add_argument("--sample-kb", type=Path, default=None, help="an existing knowledge base of sample_docs")
    args = ap.parse_args()
    from kb.config import load_settings

    with tempfile.TemporaryDirectory(prefix="kb-translation-fusion-") as tmp:
        base = (args.keep or Path(tmp)).resolve()
        base.mkdir(parents=True, exist_ok=True)
        translations = Translations(base / "translations.json", load_settings(str(base / "sample" / "kb"), {}))
        sample(args.sample_kb or base / "sample" / "kb", translations)
        cross_weight.bilingual_corpus(base / "bilingual" / "data")
        bilingual(base / "bilingual" / "kb", base / "bilingual" / "data", translations, args.limit)


if __name__ == "__main__":
    main()
