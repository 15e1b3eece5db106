"""Which questions does `kb ask` answer from the question's own best source, without translating them? On a
bilingual knowledge base every question used to be translated first (one LLM call), and the translation's lists
could change a same-language question's best source. Now `Asker.settles` asks the first-source check of the
question's own first retrieval: when its best source is in the question's language and the model's P(yes) that it
states the answer reaches the check's threshold, that source is answered from at once. Over sample_docs' 78 cases
(QUESTIONS.md and QUESTIONS_TRANSLATED.md) with the defaults and the real LLM, per kind (same-language,
cross-lingual): how many settle, how many of those have the expected place as that source (a settle on another
source would answer from the wrong one), how many were asked of the model at all (the check's cost when it does
not settle); and the off-topic questions that stop there (weak evidence stops before the model is asked; the
answer check still judges one that settles).

    python bench/settle.py [--kb DIR] [--show]

Knowledge base: sample_docs in --kb (ingested there first if empty), else a temporary one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, sample_knowledge_base  # noqa: E402
from answers import load_cases, load_questions, location_matches  # noqa: E402


class RecordingLLM:
    """The LLM, with the P(yes) of its last check recorded."""

    def __init__(self, llm):
        self.llm, self.p = llm, None

    def yes_probability(self, messages, keep=False):
        self.p = self.llm.yes_probability(messages, keep=keep)
        return self.p

    def __getattr__(self, name):
        return getattr(self.llm, name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", type=Path, default=None, help="a knowledge base of sample_docs (default: a temporary one)")
    ap.add_argument("--show", action="store_true", help="each case's P(yes) and whether its best source is right")
    args = ap.parse_args()

    from kb.answer import Asker, AskOptions
    from kb.answer.sources import build_sources
    from kb.llm import load_llm
    from kb.text import question_language

    searcher, settings, _tmp = sample_knowledge_base(args.kb, "kb-bench-settle-")
    llm = RecordingLLM(load_llm(settings))
    asker = Asker(searcher, lambda: llm)
    options = AskOptions.from_settings(settings)

    def first_retrieval(question: str) -> tuple[bool, object, float | None]:
        """(settled, the question's own first retrieval, the check's P(yes) or None when not asked)."""
        seen = {}

        def enough(first) -> bool:
            llm.p = None
            seen["settled"] = asker.settles(question, question_language(question), first, options)
            seen["first"] = first
            return True  # only the first retrieval is measured

        asker.retrieve(question, options, enough=enough)
        return seen["settled"], seen["first"], llm.p

    cases = load_cases()
    _, off_topic = load_questions()
    rows = []
    for q in cases:
        settled, first, p = first_retrieval(q["question"])
        top = build_sources(first.hits)[0].to_dict()
        rows.append((q, settled, location_matches(top, q), p))
        if args.show:
            print(f"# {q['id']} settled={settled} top_expected={location_matches(top, q)} "
                  f"P(yes)={'-' if p is None else f'{p:.3f}'}", flush=True)
    for cross in (False, True):
        kind = "cross" if cross else "same"
        mine = [r for r in rows if r[0]["cross"] == cross]
        figure(f"{kind}_cases", len(mine))
        figure(f"{kind}_settled", sum(r[1] for r in mine))
        figure(f"{kind}_settled_on_expected", sum(r[1] and r[2] for r in mine))
        figure(f"{kind}_asked", sum(r[3] is not None for r in mine))
    off = [first_retrieval(q["question"]) for q in off_topic]
    figure("off_topic_settled", sum(settled for settled, _, _ in off))
    figure("off_topic_settled_as_weak_evidence", sum(settled and p is None for settled, _, p in off))
    figure("threshold", max(options.first_source_check, options.answer_check))
    asker.close()


if __name__ == "__main__":
    main()
