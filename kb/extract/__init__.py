"""Turn a file into a `Document`, or fail with an `ExtractionError` whose message is one line a user
can act on ("encrypted: password required (use --password)", "legacy PowerPoint format ...").

The registry maps file suffixes to extractor functions, imported on first use so that `import
kb.extract` (and so `kb --help`) never loads pypdf, pdfium, python-pptx or lxml. Before handing a
file to its extractor we sniff the first bytes: a text file named `.pdf` or a zip named `.pdf` gets
a clear reason instead of a parser's stack trace. Any exception an extractor lets slip is turned into
an ExtractionError here as well, so callers only ever need to catch that.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kb.document import Document, ExtractionError, UnsupportedFormat
from kb.extract.common import CFB_MAGIC, PDF_MAGIC, ZIP_MAGIC, describe_head, short_reason

__all__ = [
    "extract_file",
    "is_supported",
    "is_candidate",
    "SUPPORTED_SUFFIXES",
    "Document",
    "ExtractionError",
    "UnsupportedFormat",
    "OCR_MODES",
]

# suffix -> (module, function, format name used in messages)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    ".pdf": ("kb.extract.pdf", "extract_pdf", "PDF"),
    ".pptx": ("kb.extract.pptx", "extract_pptx", "PowerPoint"),
    ".docx": ("kb.extract.docx", "extract_docx", "Word"),
    ".md": ("kb.extract.text", "extract_markdown", "Markdown"),
    ".markdown": ("kb.extract.text", "extract_markdown", "Markdown"),
    ".txt": ("kb.extract.text", "extract_text", "text"),
    ".text": ("kb.extract.text", "extract_text", "text"),
    ".rst": ("kb.extract.text", "extract_text", "text"),
    ".html": ("kb.extract.html", "extract_html", "HTML"),
    ".htm": ("kb.extract.html", "extract_html", "HTML"),
    **{s: ("kb.extract.image", "extract_image", "image") for s in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp",
                                                                  ".webp")},
}
_REGISTRY.update({
    ".xlsx": ("kb.extract.sheet", "extract_xlsx", "Excel"),
    ".csv": ("kb.extract.sheet", "extract_csv", "CSV"),
    ".epub": ("kb.extract.epub", "extract_epub", "EPUB"),
    ".odt": ("kb.extract.odf", "extract_odt", "OpenDocument text"),
    ".odp": ("kb.extract.odf", "extract_odp", "OpenDocument presentation"),
})
_OCR_FORMATS = frozenset({"PDF", "PowerPoint", "image"})  # extractors that take `ocr=`
OCR_MODES = ("auto", "always", "never")
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_REGISTRY)


def _convert_hint(what: str, suffix: str, target: str) -> str:
    return (f"{what} ({suffix}) is not supported; convert it to {target}, "
            f"e.g. `libreoffice --headless --convert-to {target.lstrip('.')} FILE`")


# Formats people will have in a documents folder: reported with what to do instead of skipped silently.
_KNOWN_UNSUPPORTED: dict[str, str] = {
    ".ppt": _convert_hint("legacy PowerPoint format", ".ppt", ".pptx"),
    ".pps": _convert_hint("legacy PowerPoint show format", ".pps", ".pptx"),
    ".pot": _convert_hint("legacy PowerPoint template format", ".pot", ".pptx"),
    ".doc": _convert_hint("legacy Word format", ".doc", ".docx"),
    ".dot": _convert_hint("legacy Word template format", ".dot", ".docx"),
    ".rtf": _convert_hint("RTF", ".rtf", ".docx"),
    ".ppsx": "PowerPoint show files (.ppsx) are not supported; rename a copy to .pptx",
    ".xls": _convert_hint("legacy Excel format", ".xls", ".xlsx"),
    ".ods": _convert_hint("OpenDocument spreadsheets", ".ods", ".pdf") + " (spreadsheets are not indexed)",
    ".key": "Apple Keynote files (.key) are not supported; export to .pptx or .pdf from Keynote",
    ".pages": "Apple Pages files (.pages) are not supported; export to .docx or .pdf from Pages",
}


def is_supported(path: Path) -> bool:
    """Whether kb has an extractor for this file's type (by suffix)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def is_candidate(path: Path) -> bool:
    """Whether a folder scan should pick this file up: supported, or a known format we report with a
    conversion hint (so a folder of .ppt decks is not skipped without a word)."""
    suffix = Path(path).suffix.lower()
    return suffix in SUPPORTED_SUFFIXES or suffix in _KNOWN_UNSUPPORTED


def unsupported_reason(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in _KNOWN_UNSUPPORTED:
        return _KNOWN_UNSUPPORTED[suffix]
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    if not suffix:
        return f"file has no extension, so its type is unknown; supported: {supported}"
    return f"unsupported file type ({suffix}); supported: {supported}"


def extract_file(path: Path, password: str | None = None, ocr: str = "auto") -> Document:
    """Extract a file's text and structure. Raises ExtractionError (UnsupportedFormat for file types
    kb does not read) with a one-line reason; never any other exception for a bad file. `ocr` ("auto",
    "always", "never") says which scanned pages, images and pictures on slides are read by OCR."""
    if ocr not in OCR_MODES:
        raise ValueError(f"ocr must be one of {', '.join(OCR_MODES)}, not {ocr!r}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _REGISTRY:
        raise UnsupportedFormat(unsupported_reason(path))
    try:
        if not path.is_file():
            raise ExtractionError("not a regular file" if path.exists() else "file not found")
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(65536)
    except ExtractionError:
        raise
    except OSError as e:
        raise ExtractionError(f"cannot read file: {e.strerror or e}") from None
    if size == 0 or (size <= len(head) and not head.strip()):
        raise ExtractionError("empty file")

    module, func, kind = _REGISTRY[suffix]
    _sniff(suffix, kind, head)
    try:
        extractor = getattr(importlib.import_module(module), func)
        doc = extractor(path, password=password, **({"ocr": ocr} if kind in _OCR_FORMATS else {}))
    except ExtractionError:
        raise
    except MemoryError:
        raise ExtractionError(f"{kind} file too large to read into memory") from None
    except RecursionError:
        raise ExtractionError(f"broken {kind} file: structure nested too deeply") from None
    except Exception as e:  # a library's error on a hostile file: one line, not a traceback
        raise ExtractionError(f"could not read {kind} file: {type(e).__name__}: {short_reason(e)}") from None
    if doc.text_length == 0:
        raise ExtractionError("no text found")
    return doc


def _sniff(suffix: str, kind: str, head: bytes) -> None:
    """Check that the content matches the suffix before a parser sees it."""
    if suffix == ".pdf":
        if PDF_MAGIC not in head[:1024]:
            raise ExtractionError(f"not a PDF file ({describe_head(head)})")
    elif suffix in (".pptx", ".docx", ".xlsx", ".epub"):
        # OLE2 is either a password-protected package or a legacy file with a new name: the extractor
        # tells them apart by the container's stream names.
        if head.startswith((*ZIP_MAGIC, CFB_MAGIC)):
            return
        raise ExtractionError(f"not a {kind} {suffix} file ({describe_head(head)})")
    elif suffix in (".odt", ".odp"):
        if not head.startswith(ZIP_MAGIC):
            raise ExtractionError(f"not an OpenDocument file ({describe_head(head)})")
    elif suffix in (".txt", ".text", ".md", ".markdown", ".rst", ".html", ".htm", ".csv"):
        for magic in (PDF_MAGIC, *ZIP_MAGIC, CFB_MAGIC, b"\x89PNG", b"\xff\xd8\xff"):
            if head.startswith(magic):
                raise ExtractionError(f"not a text file ({describe_head(head)})")
