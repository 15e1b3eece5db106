"""The data that flows between stages: extractors produce a Document, the chunker turns it into Chunks.

Kept free of heavy imports so every stage (and `kb status`) can use it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


from kb.errors import ExtractionError, UnsupportedFormat  # noqa: F401  (raised by every extractor)


@dataclass
class Section:
    """One structural unit of a document: a PDF page, a slide, or a block under one heading path.

    The chunker never merges text of two sections with different page/slide numbers
    without recording both, and splits on section boundaries first.
    """

    text: str
    page: int | None = None  # 1-based PDF page
    slide: int | None = None  # 1-based slide number
    heading_path: tuple[str, ...] = ()  # e.g. ("Installation", "Linux")
    ocr: bool = False  # the text was read by OCR from an image of the page


@dataclass
class Document:
    path: Path
    format: str  # "pdf", "pptx", "markdown", "text", "docx", "html"
    title: str
    sections: list[Section]
    pages: int | None = None  # number of pages (PDF) or slides (PPTX); None for flowing text
    warnings: list[str] = field(default_factory=list)  # e.g. "page 3: no text layer (scanned?)"
    ocr_pages: int = 0  # pages (slides, image frames) whose text came from OCR

    @property
    def text_length(self) -> int:
        return sum(len(s.text.strip()) for s in self.sections)


@dataclass
class Chunk:
    """A retrievable unit. `text` is what users see; `index_text` is what gets embedded and BM25-indexed."""

    text: str
    ordinal: int
    index_text: str
    page_start: int | None = None
    page_end: int | None = None
    slide: int | None = None
    heading_path: tuple[str, ...] = ()
    n_tokens: int = 0  # tokens of index_text, counted with the embedding model's tokenizer
    tokens: tuple[str, ...] = ()  # BM25 tokens of index_text (kb.text.tokenize), set when the chunk is indexed
    ocr: bool = False  # some of its text came from OCR
    lang: str = ""  # "en" / "zh" (kb.text.text_language of index_text), set with the tokens

    @property
    def text_hash(self) -> str:
        """Key of this chunk's vector in the embedding cache."""
        return text_hash(self.index_text)


def mark_ocr(chunks: list[Chunk], sections: list[Section]) -> None:
    """Flag the chunks holding text of an OCR'd section (by page, or slide; a chunk is OCR if any of it is)."""
    pages = {s.page for s in sections if s.ocr and s.page}
    slides = {s.slide for s in sections if s.ocr and s.slide}
    for c in chunks:
        c.ocr = c.slide in slides if c.slide else bool(c.page_start and any(
            p in pages for p in range(c.page_start, (c.page_end or c.page_start) + 1)))


def text_hash(text: str) -> str:
    """A chunk's key in the embedding cache (with the model id): the hash of the text that gets embedded."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
