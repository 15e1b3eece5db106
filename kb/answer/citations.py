"""Citations: the streamed filter that keeps [n] of sources in the prompt and normalises other forms, and the
citations inferred after generation for answer sentences that cite nothing or the wrong source."""

from __future__ import annotations

import re
from typing import NamedTuple, Sequence

from kb.answer.grounding import DECLINE
from kb.answer.types import Citation, Source
from kb.text import sentence_spans, tokenize

_OPEN = "[【［"
_CITE = re.compile(r"[\[【［]\s*(?:(?:source|sources|来源|资料)\s*)?(\d{1,3}(?:\s*[,，、;；]\s*\d{1,3})*)\s*[\]】］]",
                   re.IGNORECASE)
_CITE_PREFIX = re.compile(r"[\[【［]\s*(?:s(?:o(?:u(?:r(?:c(?:es?)?)?)?)?)?|来源?|资料?)?\s*[\d\s,，、;；]*\Z",
                          re.IGNORECASE)


class CitationFilter:
    """Rewrites citation markers while the answer streams: [n] of a source in the prompt is kept (in the form
    [n]), a number that names no source is removed, 【1】, [1, 2] and [Source 1] are normalised. Text that only
    might be a citation is held back until it is decided."""

    def __init__(self, valid: set[int]):
        self.valid = valid
        self.buffer = ""
        self.cited: list[int] = []

    def _citation(self, m: re.Match) -> str:
        numbers = [int(x) for x in re.findall(r"\d+", m.group(1))]
        keep = [n for n in numbers if n in self.valid]
        for n in keep:
            if n not in self.cited:
                self.cited.append(n)
        return "".join(f"[{n}]" for n in dict.fromkeys(keep))

    def feed(self, piece: str) -> str:
        self.buffer += piece
        out: list[str] = []
        while self.buffer:
            i = min((self.buffer.find(c) for c in _OPEN if c in self.buffer), default=-1)
            if i < 0:
                out.append(self.buffer)
                self.buffer = ""
                break
            out.append(self.buffer[:i])
            self.buffer = self.buffer[i:]
            m = _CITE.match(self.buffer)
            if m:
                out.append(self._citation(m))
                self.buffer = self.buffer[m.end():]
            elif _CITE_PREFIX.match(self.buffer) and len(self.buffer) < 24:
                break  # may still become a citation: wait for more text
            else:
                out.append(self.buffer[0])
                self.buffer = self.buffer[1:]
        return _tidy("".join(out))

    def flush(self) -> str:
        rest, self.buffer = self.buffer, ""
        return rest


def _tidy(text: str) -> str:
    return text.replace(" .", ".") if text.startswith(" .") else text


_LEAD_MARKS = re.compile(r"\s*(?:\[\d+\][\s.,;:。，；]*)+")
_MARK = re.compile(r"\[(\d+)\]")


def claim_spans(answer: str) -> list[tuple[int, int]]:
    """Where the answer's sentences are, each with the citation markers written after its full stop ("… 1,850
    rpm. [2]"): (start, end) offsets into `answer`, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    for start, end in sentence_spans(answer):
        lead = _LEAD_MARKS.match(answer, start, end)
        if spans and lead:
            marks = answer[start:lead.end()].rstrip()
            spans[-1] = (spans[-1][0], start + len(marks))
            start = lead.end()
        text = answer[start:end]
        if text.strip():
            spans.append((start + len(text) - len(text.lstrip()), start + len(text.rstrip())))
    return spans


def claims(answer: str) -> list[str]:
    """The answer's sentences, each with the citation markers written after its full stop ("… 1,850 rpm. [2]")."""
    return [answer[a:b] for a, b in claim_spans(answer)]


INFER_MIN_OVERLAP = 0.5  # share of an uncited sentence's words found in a source (see docs/answering.md)


class Attribution(NamedTuple):
    """An answer sentence and the source it was drawn from, found after generation. `replaces`: the sentence's own
    marks, when every source they name lacks one of its numbers or codes while this one holds them all (then the
    marks are wrong, and kb puts this source's number in their place); empty when the sentence cited nothing, or
    when its marks may still be right (a source in the other language holds no words of it), and this source is
    only added beside them."""
    sentence: str
    source: Source
    replaces: tuple[int, ...]
    span: tuple[int, int]


def infer_citations(answer: str, sources: Sequence[Source], source_vectors=None, embed=None) -> list[Attribution]:
    """For each answer sentence that cites nothing, or cites only sources that do not hold it, the source it was
    drawn from, if one is clear enough: the source sharing most of the sentence's words (BM25 tokens, without the
    citation markers) and all of its numbers, near-ties broken by embedding similarity when vectors are at hand."""
    out: list[Attribution] = []
    if not sources:
        return out
    source_tokens = [set(tokenize(s.text)) for s in sources]
    index_of = {s.n: i for i, s in enumerate(sources)}
    for span in claim_spans(answer):
        sentence = answer[span[0]:span[1]]
        if DECLINE.match(sentence):
            continue
        cited = [index_of[int(n)] for n in _MARK.findall(sentence) if int(n) in index_of]
        text = _MARK.sub(" ", sentence)
        words = set(tokenize(text))
        if len(words) < 2:
            continue
        numbers = {w for w in words if any(ch.isdigit() for ch in w)}
        # a source supports a claim when it holds most of its words, and every number and code in it
        overlaps = [len(words & st) / len(words) if numbers <= st else 0.0 for st in source_tokens]
        best = max(overlaps)
        if best < INFER_MIN_OVERLAP or any(overlaps[i] >= INFER_MIN_OVERLAP for i in cited):
            continue
        candidates = [i for i, o in enumerate(overlaps) if o >= best - 0.1]
        if len(candidates) > 1 and source_vectors is not None and embed is not None:
            v = embed(text)
            i = max(candidates, key=lambda j: (float(source_vectors[j] @ v), overlaps[j]))
        else:
            i = max(candidates, key=lambda j: overlaps[j])
        wrong = bool(cited) and all(not numbers <= source_tokens[j] for j in cited)
        out.append(Attribution(sentence, sources[i], tuple(sorted({sources[j].n for j in cited})) if wrong else (),
                               span))
    return out


def marks_in(text: str) -> list[int]:
    """The source numbers an answer's [n] marks name, in order of first appearance."""
    return list(dict.fromkeys(int(n) for n in _MARK.findall(text)))


def correct_marks(answer: str, found: Sequence[Attribution]) -> str:
    """The answer with each wrong mark (`Attribution.replaces`) replaced by the number of the source that holds
    its sentence; a mark repeated by the replacement is written once ("[1][1]" -> "[1]")."""
    out, last = [], 0
    for a in sorted((a for a in found if a.replaces), key=lambda a: a.span):
        start, end = a.span
        new = f"[{a.source.n}]"
        fixed = _MARK.sub(lambda m: new if int(m.group(1)) in a.replaces else m.group(0), answer[start:end])
        out += [answer[last:start], re.sub(r"(\[\d+\])(?:\s*\1)+", r"\1", fixed)]
        last = end
    return "".join(out) + answer[last:]


def cite(text: str, sources: Sequence[Source], found: Sequence[Attribution]) -> tuple[str, list[Citation]]:
    """The answer with its wrong marks corrected (`correct_marks`), and its citations: the sources its marks name,
    each with the marks it replaced, then the sources `found` for sentences that cite nothing or whose marks may
    still be right, as inferred."""
    text = correct_marks(text, found)
    by_n = {s.n: s for s in sources}
    citations = [Citation(by_n[n], replaces=tuple(sorted({r for a in found if a.source.n == n for r in a.replaces})))
                 for n in marks_in(text) if n in by_n]
    return text, citations + [Citation(a.source, inferred=True, sentence=a.sentence) for a in found if not a.replaces]
