"""Word .docx: paragraphs and tables in body order, one Section per heading.

Headings are recognised by paragraph style ("Heading N", "Title", or a custom style based on one)
or by an explicit outline level, so documents that restyle their headings still get a heading path.
"""

from __future__ import annotations

import re
from pathlib import Path

from kb.document import Document, ExtractionError, Section
from kb.extract.common import collapse_inline, normalize_whitespace, short_reason
from kb.extract.ooxml import open_ooxml

_HEADING_STYLE_RE = re.compile(r"^(?:heading|überschrift|titre|título|titolo|kop)\s*(\d)$", re.IGNORECASE)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def extract_docx(path: Path, password: str | None = None) -> Document:
    try:
        import docx
        from docx.opc.exceptions import PackageNotFoundError
        from docx.table import Table
        from docx.text.paragraph import Paragraph
    except ImportError as e:  # pragma: no cover - dependency missing
        raise ExtractionError(f"Word support is not installed ({short_reason(e)})") from None

    source = open_ooxml(path, password, kind="Word")
    try:
        d = docx.Document(source)
    except PackageNotFoundError:
        raise ExtractionError("broken DOCX: not a readable zip package (truncated or damaged?)") from None
    except KeyError as e:
        raise ExtractionError(f"broken DOCX: missing part {short_reason(e)}") from None
    except ValueError as e:
        if "content type" in str(e):  # e.g. a .docx renamed to .pptx: wrong main document type
            raise ExtractionError("not a Word document (the package holds another Office document type)") from None
        raise ExtractionError(f"broken DOCX: {short_reason(e)}") from None
    except Exception as e:
        raise ExtractionError(f"broken DOCX: {short_reason(e)}") from None

    sections: list[Section] = []
    path_stack: list[tuple[int, str]] = []
    buf: list[str] = []
    first_heading = None
    title_style_text = None

    def flush() -> None:
        text = normalize_whitespace("\n\n".join(buf))
        if text:
            sections.append(Section(text, heading_path=tuple(t for _, t in path_stack)))
        buf.clear()

    for el in d.element.body.iterchildren():
        if el.tag == f"{_W}p":
            para = Paragraph(el, d)
            text = para.text
            level = _heading_level(para)
            if level == 0 and text.strip():  # the "Title" style: a document title, not a section
                title_style_text = title_style_text or collapse_inline(text)
                buf.append(text)
            elif level and text.strip():
                flush()
                heading = collapse_inline(text)
                while path_stack and path_stack[-1][0] >= level:
                    path_stack.pop()
                path_stack.append((level, heading))
                first_heading = first_heading or heading
                buf.append(heading)
            elif text.strip():
                buf.append(text)
        elif el.tag == f"{_W}tbl":
            try:
                buf.append(_table_text(Table(el, d)))
            except Exception:  # irregular table grids: fall back to the cell texts in order
                buf.append("\n".join(t.text for t in el.iter(f"{_W}t") if t.text))
    flush()

    sections = [s for s in sections if s.text.strip() and not _only_heading(s)] or sections
    if not sections:
        raise ExtractionError("no text in document")
    try:
        core_title = collapse_inline(d.core_properties.title or "")
    except Exception:
        core_title = ""
    title = core_title or title_style_text or first_heading or path.stem
    return Document(path=path, format="docx", title=title, sections=sections)


def _only_heading(section: Section) -> bool:
    return bool(section.heading_path) and section.text.strip() == section.heading_path[-1]


def _heading_level(para) -> int | None:
    """1-9 for headings, 0 for the Title style, None for body text."""
    style = para.style
    seen = 0
    while style is not None and seen < 10:
        name = (style.name or "").strip()
        if name.lower() == "title":
            return 0
        m = _HEADING_STYLE_RE.match(name)
        if m:
            return int(m.group(1))
        style, seen = style.base_style, seen + 1
    ppr = para._p.pPr
    if ppr is not None:
        lvl = ppr.find(f"{_W}outlineLvl")
        if lvl is not None:
            try:
                value = int(lvl.get(f"{_W}val"))
            except (TypeError, ValueError):
                return None
            return value + 1 if value < 9 else None
    return None


def _table_text(table) -> str:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        prev = None
        for cell in row.cells:
            if cell._tc is not prev:  # a merged cell is returned once per grid column it spans
                cells.append(collapse_inline(cell.text))
            prev = cell._tc
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
