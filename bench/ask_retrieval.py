"""Where does `kb ask`'s retrieval put the expected place? sample_docs' 78 cases (QUESTIONS.md and
QUESTIONS_TRANSLATED.md: 39 in the document's language, 39 in the other) through `Asker.retrieve` with the
defaults (`translate` on), RAG-Fusion three ways:

- `before`: the rewordings written whenever the first retrieval is not confident (auto mode until stop 24);
  emulated by running each question with `fusion` on when it is not confident and off when it is;
- `auto`: as now, no rewordings when the question's own lists fused with its translation's put a passage of the
  other language first;
- `off`: the translation alone.

    python bench/ask_retrieval.py [--kb DIR] [--cache FILE] [--show]

Prints, per way and per kind of case, how many have the expected place among the sources (the hits merged into
sources, before packing) and as the first source, which decides the pivot and the first-source check; and the
off-topic questions refused as weak evidence. The LLM's replies (translations, rewordings; greedy) are cached in
--cache, so a second run needs no LLM. Knowledge base: sample_docs in --kb (ingested there first if empty).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import JsonCache, figure, sample_knowledge_base  # noqa: E402
from answers import load_cases, load_questions, location_matches  # noqa: E402


class CachedChat:
    """The configured LLM's `chat` replies, cached by prompt in a JSON file (the LLM loaded on the first miss)."""

    def __init__(self, path: Path, settings):
        self.cache, self.settings, self.llm = JsonCache(path), settings, None

    def chat(self, messages, max_tokens, temperature=0.1, stop=None):
        key = json.dumps([messages, max_tokens, temperature], ensure_ascii=False)
        return self.cache.get(key, lambda: self._llm().chat(messages, max_tokens=max_tokens, temperature=temperature,
                                                            stop=stop))

    def _llm(self):
        if self.llm is None:
            from kb.llm import load_llm

            self.llm = load_llm(self.settings)
        return self.llm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", type=Path, default=None, help="a knowledge base of sample_docs (default: a temporary one)")
    ap.add_argument("--cache", type=Path, default=Path("ask_retrieval_cache.json"), help="the LLM's replies")
    ap.add_argument("--show", action="store_true", help="the rank of the expected place per case and way")
    args = ap.parse_args()

    from kb.answer import Asker, AskOptions
    from kb.answer.evidence import evidence, weak_evidence
    from kb.answer.fusion import confident
    from kb.answer.sources import build_sources

    searcher, settings, _tmp = sample_knowledge_base(args.kb, "kb-bench-ask-retrieval-")
    llm = CachedChat(args.cache, settings)
    asker = Asker(searcher, lambda: llm)

    def options(way: str, question: str):
        fusion = way
        if way == "before":
            first = searcher.search(question, k=settings.top_k, rerank=False)
            fusion = "off" if confident(first.hits) else "on"
        return AskOptions.from_settings(settings, fusion=fusion)

    cases = load_cases()
    _, off_topic = load_questions()
    ways = ("before", "auto", "off")
    for way in ways:
        ranks = {}
        for q in cases:
            response, _, _ = asker.retrieve(q["question"], options(way, q["question"]))
            sources = [s.to_dict() for s in build_sources(response.hits)]
            ranks[q["id"]] = next((r for r, s in enumerate(sources, 1) if location_matches(s, q)), None)
        for cross in (False, True):
            kind = "cross" if cross else "same"
            mine = [ranks[q["id"]] for q in cases if q["cross"] == cross]
            figure(f"{way}_{kind}_among_sources", sum(r is not None for r in mine))
            figure(f"{way}_{kind}_first", sum(r == 1 for r in mine))
        refused = 0
        for q in off_topic:
            response, _, _ = asker.retrieve(q["question"], options(way, q["question"]))
            refused += weak_evidence(evidence(response.list_scores), asker.embedding_model)
        figure(f"{way}_off_topic_weak_evidence", refused)
        if args.show:
            print("# " + way + " " + " ".join(f"{i}:{r or '-'}" for i, r in ranks.items()), flush=True)
    figure("cases_per_kind", len(cases) // 2)
    asker.close()


if __name__ == "__main__":
    main()
