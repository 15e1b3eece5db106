"""Search hits become the sources of an answer: adjacent chunks of one document merged into one source."""

from __future__ import annotations

from typing import Sequence

from kb.answer.types import Source


def merge_text(a: str, b: str) -> str:
    """Join two consecutive chunks, dropping the overlap the chunker repeated at the start of `b`."""
    for k in range(min(len(a), len(b), 800), 15, -1):
        if a.endswith(b[:k]):
            return a + b[k:]
    return a + "\n" + b


def build_sources(hits: Sequence) -> list[Source]:
    """Hits in relevance order become sources; a hit that directly follows (or precedes) another hit of the same
    document, on the same slide and under the same heading, joins its source instead of standing alone."""
    sources: list[Source] = []
    for h in hits:
        for s in sources:
            if s.doc_id != h.doc_id or s.slide != h.slide or s.heading != h.heading:
                continue
            first = s.ordinal_end - len(s.chunk_ids) + 1
            if h.ordinal == s.ordinal_end + 1:
                s.text = merge_text(s.text, h.text)
                s.chunk_ids.append(h.chunk_id)
                s.ordinal_end = h.ordinal
            elif h.ordinal == first - 1:
                s.text = merge_text(h.text, s.text)
                s.chunk_ids.insert(0, h.chunk_id)
            else:
                continue
            pages = [p for p in (s.page, s.page_end, h.page, h.page_end) if p]
            s.page, s.page_end = (min(pages), max(pages)) if pages else (None, None)
            s.ocr = s.ocr or h.ocr
            break
        else:
            sources.append(Source.of_hit(h))
    return sources
