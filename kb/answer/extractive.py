"""`kb ask --extractive`: an answer made of the best matching sentences of the sources, with no LLM."""

from __future__ import annotations

from typing import Sequence

from kb.answer.types import QUOTED, Source
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


def quoted_answer(question: str, sources: Sequence[Source], lang: str) -> tuple[str, list[int]]:
    """What `kb ask` says when the model judged its sources to state the answer and then declined to write it: the
    sources' sentences closest to the question, quoted with their citations, after a line saying so."""
    text, numbers = extractive_answer(question, sources)
    return f"{QUOTED[lang]}\n{text}", numbers
