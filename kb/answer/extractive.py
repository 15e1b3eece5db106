"""`kb ask --extractive`: an answer made of the best matching sentences of the sources, with no LLM."""

from __future__ import annotations

from typing import Sequence

from kb.answer.types import Source
from kb.text import split_sentences, tokenize


def extractive_answer(question: str, sources: Sequence[Source], max_sentences: int = 3) -> tuple[str, list[int]]:
    """The sentences of the best sources that share most words with the question, each with its citation."""
    q = set(tokenize(question))
    scored: list[tuple[float, int, int, str]] = []
    for rank, s in enumerate(sorted(sources, key=lambda s: s.rank)):
        for pos, sentence in enumerate(split_sentences(s.text)):
            words = set(tokenize(sentence))
            if not words:
                continue
            overlap = len(q & words) / max(len(q), 1)
            scored.append((overlap - 0.05 * rank - 0.001 * pos, s.n, pos, sentence.strip()))
    scored.sort(key=lambda x: -x[0])
    picked = sorted(scored[:max_sentences], key=lambda x: (x[1], x[2]))
    lines = [f"{sentence} [{n}]" for _, n, _, sentence in picked]
    return "\n".join(lines), sorted({n for _, n, _, _ in picked})
