"""Plain text and Markdown: the file decoded (`kb.extract.encoding`, shared with HTML), then for
Markdown its heading structure.

Markdown is split into one Section per heading (ATX `#` and setext `===`/`---`), each carrying its
nested `heading_path`. Fenced code blocks are skipped when looking for headings, so a `# comment`
inside a code block does not start a section.
"""

from __future__ import annotations

import re
from pathlib import Path

from kb.document import Document, ExtractionError, Section
from kb.extract.common import normalize_whitespace
from kb.extract.encoding import decode_bytes

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})


def read_text_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ExtractionError(f"cannot read file: {e.strerror or e}") from None
    if not data.strip():
        raise ExtractionError("empty file")
    text, _ = decode_bytes(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ExtractionError("empty file")
    return text


def extract_text(path: Path, password: str | None = None) -> Document:
    """One section with the whole text: the chunker does the paragraph splitting."""
    text = normalize_whitespace(read_text_file(path), keep_indent=True)
    if not text.strip():
        raise ExtractionError("empty file")
    return Document(path=path, format="text", title=path.stem, sections=[Section(text)])


# ---- Markdown ----------------------------------------------------------------------------------

_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH_RE = re.compile(r"^(?: {4}|\t| {0,3}(?:[>|]|[-+*][ \t]|\d{1,9}[.)][ \t]|<))")
_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _heading_text(raw: str) -> str:
    text = _LINK_RE.sub(r"\1", raw.strip())
    text = re.sub(r"(\*\*|__|\*|_|`)(.+?)\1", r"\2", text)
    return " ".join(text.split())


def parse_markdown(text: str) -> tuple[str | None, list[Section]]:
    """Sections by heading, and the title (first level-1 heading, else front-matter title)."""
    lines = text.split("\n")
    title: str | None = None
    front_title: str | None = None
    start = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        for i in range(1, min(len(lines), 200)):
            if lines[i].strip() in ("---", "..."):
                for fm in lines[1:i]:
                    m = re.match(r"^title:\s*(.+?)\s*$", fm)
                    if m:
                        front_title = m.group(1).strip("'\"") or None
                start = i + 1
                break

    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []
    head_n = 0  # how many lines at the start of `buf` are the heading itself
    fence: tuple[str, int] | None = None

    def flush() -> None:
        nonlocal buf, head_n
        if any(line.strip() for line in buf[head_n:]):  # a heading with no body lives on in its children's path
            sections.append(Section(normalize_whitespace("\n".join(buf), keep_indent=True),
                                    heading_path=tuple(t for _, t in path if t)))
        buf, head_n = [], 0

    def open_heading(level: int, heading: str, source: list[str]) -> None:
        nonlocal title, buf, head_n
        flush()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, heading))
        if level == 1 and title is None and heading:
            title = heading
        buf, head_n = list(source), len(source)

    last_is_paragraph = False  # may the next `===`/`---` line turn the previous line into a heading?
    for line in lines[start:]:
        if fence is not None:
            buf.append(line)
            m = _FENCE_RE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= fence[1] and not m.group(2).strip():
                fence = None
            continue
        m = _FENCE_RE.match(line)
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence = (m.group(1)[0], len(m.group(1)))
            buf.append(line)
            last_is_paragraph = False
            continue
        m = _ATX_RE.match(line)
        if m:
            open_heading(len(m.group(1)), _heading_text(m.group(2) or ""), [line])
            last_is_paragraph = False
            continue
        m = _SETEXT_RE.match(line)
        if m and last_is_paragraph:
            heading_line = buf.pop()
            level = 1 if m.group(1)[0] == "=" else 2
            open_heading(level, _heading_text(heading_line), [heading_line, line])
            last_is_paragraph = False
            continue
        buf.append(line)
        last_is_paragraph = bool(line.strip()) and not _NOT_PARAGRAPH_RE.match(line) and not _SETEXT_RE.match(line)
    flush()

    if not sections:  # headings only, no body text anywhere: keep the headings as the text
        body = normalize_whitespace("\n".join(lines[start:]), keep_indent=True)
        if body:
            sections.append(Section(body))
    return title or front_title, sections


def extract_markdown(path: Path, password: str | None = None) -> Document:
    text = read_text_file(path)
    title, sections = parse_markdown(text)
    if not sections:
        raise ExtractionError("empty file")
    return Document(path=path, format="markdown", title=title or path.stem, sections=sections)

