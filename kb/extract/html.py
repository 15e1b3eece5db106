"""HTML: visible text, one Section per h1-h6 heading, tables as " | " rows, title from <title>.

Encoding: BOM, then UTF-8, then the charset the page declares, then detection (see `kb.extract.encoding`);
the bytes are decoded by us rather than lxml, which falls back to Latin-1 silently.
"""

from __future__ import annotations

import re
from pathlib import Path

from kb.document import Document, ExtractionError, Section
from kb.extract.common import collapse_inline, normalize_whitespace, short_reason
from kb.extract.encoding import decode_bytes

_DROP = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
                   "head", "button", "select", "canvas"})
_BLOCK = frozenset({"p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "ul", "ol",
                    "li", "dl", "dt", "dd", "blockquote", "pre", "figure", "figcaption", "form", "fieldset",
                    "address", "details", "summary", "hr", "center", "caption", "body", "html"})
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def extract_html(path: Path, password: str | None = None) -> Document:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ExtractionError(f"cannot read file: {e.strerror or e}") from None
    if not data.strip():
        raise ExtractionError("empty file")
    m = _CHARSET_RE.search(data[:4096])
    declared = m.group(1).decode("ascii", "ignore") if m else None
    text, _ = decode_bytes(data, declared=declared)
    return parse_html(text, path)


def parse_html(text: str, path: Path) -> Document:
    import lxml.html
    from lxml import etree

    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)  # lxml refuses str input with an encoding declaration
    if not text.strip():
        raise ExtractionError("empty file")
    try:
        root = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as e:
        raise ExtractionError(f"broken HTML: {short_reason(e)}") from None

    title_el = root.find(".//title")
    title = collapse_inline(title_el.text_content()) if title_el is not None else ""
    walker = _Walker()
    body = root.find("body")
    walker.walk(body if body is not None else root)
    sections = walker.finish()
    if not sections:
        raise ExtractionError("no visible text in the page")
    if not title:
        title = next((s.heading_path[0] for s in sections if s.heading_path), "") or path.stem
    return Document(path=path, format="html", title=title, sections=sections)


class _Walker:
    def __init__(self):
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.buf: list[str] = []
        self.pre = 0

    def emit(self, s: str | None) -> None:
        if s:
            self.buf.append(s if self.pre else re.sub(r"\s+", " ", s))

    def flush(self) -> None:
        text = "".join(self.buf)
        text = re.sub(r" *\n *", "\n", text)
        text = normalize_whitespace(text, keep_indent=True)
        if text:
            self.sections.append(Section(text, heading_path=tuple(t for _, t in self.path)))
        self.buf = []

    def finish(self) -> list[Section]:
        self.flush()
        return self.sections

    def walk(self, el) -> None:
        tag = el.tag if isinstance(el.tag, str) else None
        if tag is None or tag.lower() in _DROP:  # comments, processing instructions, scripts
            self.emit(el.tail)
            return
        tag = tag.lower()
        if tag in _HEADINGS:
            heading = collapse_inline(el.text_content())
            if heading:
                self.flush()
                level = _HEADINGS[tag]
                while self.path and self.path[-1][0] >= level:
                    self.path.pop()
                self.path.append((level, heading))
                self.buf.append(heading + "\n\n")
            self.emit(el.tail)
            return
        if tag == "table":
            self.buf.append("\n\n" + _table_text(el) + "\n\n")
            self.emit(el.tail)
            return
        if tag == "br":
            self.buf.append("\n")
            self.emit(el.tail)
            return
        block = tag in _BLOCK
        if block:
            self.buf.append("\n\n" if tag not in ("li", "dt", "dd") else "\n")
        if tag == "pre":
            self.pre += 1
        self.emit(el.text)
        for child in el:
            self.walk(child)
        if tag == "pre":
            self.pre -= 1
        if block:
            self.buf.append("\n\n" if tag not in ("li", "dt", "dd") else "\n")
        self.emit(el.tail)


def _table_text(table) -> str:
    lines = []
    for tr in table.iter("tr"):
        cells = [collapse_inline(c.text_content()) for c in tr
                 if isinstance(c.tag, str) and c.tag.lower() in ("td", "th")]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
