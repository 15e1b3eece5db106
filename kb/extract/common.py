"""Small helpers shared by the extractors: content sniffing, whitespace clean-up, short error text.

Only the standard library here, so `import kb.extract` stays cheap.
"""

from __future__ import annotations

import logging
import re

# File signatures, for telling the user what a misnamed file really is.
PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # local file header; empty archive
CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2 compound file: legacy Office, encrypted OOXML

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (PDF_MAGIC, "a PDF file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (CFB_MAGIC, "an OLE2/legacy Office file"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"{\\rtf", "an RTF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
    (b"Rar!", "a RAR archive"),
)


def describe_head(head: bytes) -> str:
    """A short description of what the first bytes of a file look like, for error messages."""
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return f"looks like {what}"
    sample = head[:24]
    text = sample.decode("utf-8", errors="replace").rstrip("\ufffd")  # a cut multi-byte char at the end
    if text and all((c.isprintable() and c != "\ufffd") or c in "\r\n\t" for c in text):
        return f"starts with {' '.join(text.split())!r}"
    return "starts with bytes " + sample[:8].hex(" ")


def short_reason(exc: BaseException, limit: int = 120) -> str:
    """One line from a library exception: first line of its message, else its class name."""
    msg = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else ""
    msg = msg or type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def quiet_logger(name: str) -> None:
    """Stop a library's log warnings (pypdf: "rebuild xref", ...) from reaching stderr via Python's
    last-resort handler; records still propagate to whatever handlers the application installs."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


# ---- whitespace --------------------------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_SPACES_RE = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES_RE = re.compile(r"\n{3,}")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # category Cc, minus \t \n (\v \f \r mapped first)


def strip_controls(text: str) -> str:
    """Drop control and format characters that only confuse tokenisers (keeps \\n and \\t)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n").replace("\v", "\n")
    return _CONTROL_RE.sub("", text.translate(_ZERO_WIDTH))


def normalize_whitespace(text: str, keep_indent: bool = False) -> str:
    """Trim lines and keep paragraph breaks (at most one blank line). Without `keep_indent` (PDF,
    slides) runs of spaces collapse too; with it (text, Markdown, code) lines keep their layout."""
    text = strip_controls(text)
    if keep_indent:
        lines = [line.rstrip() for line in text.split("\n")]
    else:
        lines = [_SPACES_RE.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES_RE.sub("\n\n", "\n".join(lines)).strip("\n")


def collapse_inline(text: str) -> str:
    """All whitespace (newlines too) to single spaces: for headings, table cells, titles."""
    return " ".join(strip_controls(text).split())


def reading_order(items: list, position, tolerance: float) -> list:
    """Shapes on a slide in reading order: rows of items whose tops (`position(item)` -> (top, left)) differ by
    less than `tolerance`, top to bottom, each row left to right; document order among equals."""
    rows: list[list] = []
    row_top = None
    for item in sorted(items, key=position):
        top = position(item)[0]
        if row_top is None or top - row_top > tolerance:
            rows.append([])
            row_top = top
        rows[-1].append(item)
    return [s for row in rows for s in sorted(row, key=lambda s: position(s)[1])]
