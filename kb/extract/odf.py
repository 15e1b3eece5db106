"""OpenDocument text (.odt) and presentations (.odp), read with odfdo.

odfdo (pure Python on lxml, maintained) opens the package and parses its XML parts; kb walks the element tree
through odfdo's public element API (`tag`, `xpath`, attributes):

* ODT: paragraphs, lists (one item a line), tables (one row a line, cells joined by ` | `, a merged cell once) in
  body order, one Section per heading (`text:h` with its outline level gives the heading path, as Word headings do
  in docx.py). Footnotes and text frames anchored in a paragraph follow that paragraph; tracked deletions,
  comments and generated indexes (a table of contents repeats the headings) are left out.
* ODP: one Section per slide (`draw:page`, numbered from 1 like PPTX slides), the title frame first, then the
  other frames in reading order (top to bottom, left to right, as pptx.py), tables as rows, the speaker notes
  (`presentation:notes`) appended as "Notes: ...". Footer, date and slide-number frames are left out. Pictures are
  not OCR'd.

Safety. Zip: `kb.extract.limits.check_zip_package` bounds the inflated parts before anything is read (odfdo has
its own zip-bomb check besides: compression ratio over 200:1, over 500 MB or 10,000 files). XML: odfdo has no
parser of its own; it calls lxml's `etree.parse`/`fromstring` with the default parser. Since lxml 5.0 that parser
has `resolve_entities="internal"` and `no_network=True`: an external entity (`<!ENTITY x SYSTEM "file:///...">`)
is never loaded (its reference is a parse error, "Entity 'x' not defined"), and libxml2 refuses internal entity
expansion past its amplification limit ("billion laughs": "Maximum entity amplification factor exceeded").
Checked with lxml 6.1 / libxml2 2.14; tests/test_odf.py keeps checking the external case. Both end as
"broken ODT: ...".

Password-protected files keep a plain manifest whose entries carry `manifest:encryption-data`; odfdo cannot
decrypt them, so they are reported before parsing.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from kb.document import Document, ExtractionError, Section
from kb.extract.common import collapse_inline, normalize_whitespace, reading_order, short_reason

# Elements whose content is not document text: tracked deletions, comments, footnote marks (the note body is read),
# declarations, forms, generated indexes (a table of contents repeats the headings), alt text, slide thumbnails.
_SKIP = frozenset({
    "text:tracked-changes", "office:annotation", "office:annotation-end", "text:note-citation",
    "text:sequence-decls", "text:variable-decls", "text:user-field-decls", "text:dde-connection-decls",
    "office:forms", "office:event-listeners", "office:scripts", "text:table-of-content", "text:illustration-index",
    "text:table-index", "text:object-index", "text:user-index", "text:alphabetical-index", "text:bibliography",
    "svg:title", "svg:desc", "draw:page-thumbnail", "presentation:notes", "text:ruby-text",
    "table:table-column", "table:table-columns", "table:table-header-columns", "table:table-column-group",
})
_BLOCK = frozenset({"text:p", "text:h", "text:list", "table:table", "text:section"})
_LIST = frozenset({"text:list", "text:list-item", "text:list-header"})
_BOILERPLATE = frozenset({"page-number", "footer", "date-time", "header"})  # presentation:class, as in pptx.py
_GENERIC_TITLES = ("impress presentation", "presentation", "untitled")
_MAX_REPEAT = 64  # a repeated table cell or row (table:number-*-repeated) is written at most this often
_ROW_TOLERANCE = 0.635  # cm (0.25 in): shapes whose tops differ less than this are on one row (as pptx.py)
_LENGTH_RE = re.compile(r"^\s*(-?\d+(?:\.\d*)?|-?\.\d+)\s*(cm|mm|in|inch|pt|pc|px)?\s*$")
_CM = {"cm": 1.0, "mm": 0.1, "in": 2.54, "inch": 2.54, "pt": 2.54 / 72, "pc": 2.54 / 6, "px": 2.54 / 96, None: 1.0}
_KINDS = {"text": ".odt", "presentation": ".odp", "spreadsheet": ".ods", "graphics": ".odg"}


def extract_odt(path: Path, password: str | None = None) -> Document:
    """An OpenDocument text file as sections per heading."""
    doc = _open(path, "ODT", "text")
    try:
        blocks: list[tuple] = []
        _walk(doc.body, blocks)
    except (MemoryError, RecursionError):
        raise
    except Exception as e:  # a damaged content.xml is parsed here, on first access
        raise ExtractionError(f"broken ODT: {short_reason(e)}") from None

    sections: list[Section] = []
    path_stack: list[tuple[int, str]] = []
    buf: list[str] = []
    first_heading = None
    last_kind = None

    def flush() -> None:
        text = normalize_whitespace("\n\n".join(buf))
        if text:
            sections.append(Section(text, heading_path=tuple(t for _, t in path_stack)))
        buf.clear()

    for kind, text, level in blocks:
        if kind == "h" and collapse_inline(text):
            flush()
            heading = collapse_inline(text)
            while path_stack and path_stack[-1][0] >= level:
                path_stack.pop()
            path_stack.append((level, heading))
            first_heading = first_heading or heading
            buf.append(heading)
        elif kind == "li" and last_kind == "li" and buf and text.strip():
            buf[-1] += "\n" + text  # list items one a line
        elif text.strip():
            buf.append(text)
        if text.strip():
            last_kind = kind
    flush()

    sections = [s for s in sections if s.text.strip() and not _only_heading(s)] or sections
    if not sections:
        raise ExtractionError("no text in document")
    title = _meta_title(doc) or first_heading or path.stem
    return Document(path=path, format="odt", title=title, sections=sections)


def extract_odp(path: Path, password: str | None = None) -> Document:
    """An OpenDocument presentation as one section per slide."""
    doc = _open(path, "ODP", "presentation")
    try:
        slides = [c for c in _children(doc.body) if c.tag == "draw:page"]
    except (MemoryError, RecursionError):
        raise
    except Exception as e:
        raise ExtractionError(f"broken ODP: {short_reason(e)}") from None
    if not slides:
        raise ExtractionError("no slides")

    sections: list[Section] = []
    warnings: list[str] = []
    first_title = None
    for n, slide in enumerate(slides, start=1):
        try:
            title, text = _slide_text(slide)
        except (MemoryError, RecursionError):
            raise
        except Exception as e:  # one damaged slide must not lose the deck
            warnings.append(f"slide {n}: could not read ({short_reason(e)})")
            continue
        first_title = first_title or title
        if text:
            sections.append(Section(text, slide=n))
    if not sections:
        raise ExtractionError("no text on any slide (images only?)")
    title = _meta_title(doc)
    if title and title.lower() in _GENERIC_TITLES:
        title = None
    return Document(path=path, format="odp", title=title or first_title or path.stem, sections=sections,
                    pages=len(slides), warnings=warnings)


# ---- opening ----------------------------------------------------------------------------------------------------

def _open(path: Path, kind: str, want: str):
    """The odfdo Document of a plain (unencrypted) package of the wanted type, or an ExtractionError."""
    try:
        from odfdo import Document as OdfDocument
        from odfdo.security import SecurityError
    except ImportError as e:  # pragma: no cover - dependency missing
        raise ExtractionError(f"OpenDocument support is not installed ({short_reason(e)})") from None
    from kb.extract.limits import check_zip_package

    check_zip_package(str(path), kind)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            manifest = z.read("META-INF/manifest.xml") if "META-INF/manifest.xml" in names else b""
            mimetype = z.read("mimetype")[:200].decode("ascii", "replace").strip() if "mimetype" in names else ""
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise ExtractionError(f"broken {kind}: not a readable zip package (truncated or damaged?)") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError) as e:
        raise ExtractionError(f"broken {kind}: {short_reason(e)}") from None
    if b"encryption-data" in manifest:
        raise ExtractionError("encrypted: password-protected OpenDocument files are not supported; "
                              "save a copy without a password")
    if not mimetype.startswith("application/vnd.oasis.opendocument."):
        if "[Content_Types].xml" in names:
            raise ExtractionError("not an OpenDocument file (an Office Open XML package: a .docx/.pptx/.xlsx "
                                  "renamed?)")
        if "content.xml" in names and not mimetype:
            raise ExtractionError(f"broken {kind}: the package has no mimetype part")
        raise ExtractionError("not an OpenDocument file (a zip archive without an OpenDocument mimetype)")
    if "content.xml" not in names:
        raise ExtractionError(f"broken {kind}: the package has no content.xml part")
    got = mimetype.rsplit(".", 1)[-1]
    if got.split("-")[0] != want:
        suffix = _KINDS.get(got.split("-")[0])
        raise ExtractionError(f"not an OpenDocument {want} file (the package holds a {got} document"
                              + (f"; rename it to {suffix})" if suffix else ")"))
    try:
        return OdfDocument(Path(path))
    except SecurityError as e:
        raise ExtractionError(f"{kind} package refused by odfdo's zip-bomb check ({short_reason(e)})") from None
    except (MemoryError, RecursionError):
        raise
    except Exception as e:
        raise ExtractionError(f"broken {kind}: {short_reason(e)}") from None


def _meta_title(doc) -> str:
    try:
        return collapse_inline(doc.meta.title or "")
    except Exception:  # no meta.xml, or a damaged one: the title comes from the text instead
        return ""


def _only_heading(section: Section) -> bool:
    return bool(section.heading_path) and section.text.strip() == section.heading_path[-1]


# ---- the element tree -------------------------------------------------------------------------------------------

def _children(el) -> list:
    """Child elements (odfdo's `children` also wraps XML comments and processing instructions, and fails on them)."""
    return el.xpath("*")


def _walk(el, out: list[tuple], in_list: bool = False) -> None:
    """Append the block-level content under `el` to `out` as (kind, text, level) in document order; kind is
    "h" (heading), "p", "li" (a paragraph in a list) or "table"."""
    for child in _children(el):
        _visit(child, out, in_list)


def _visit(el, out: list[tuple], in_list: bool = False) -> None:
    tag = el.tag
    if tag in _SKIP:
        return
    if tag in ("text:p", "text:h"):
        extra: list[tuple] = []
        text = _inline(el, extra)
        if tag == "text:h":
            out.append(("h", text, _outline_level(el)))
        else:
            out.append(("li" if in_list else "p", text, 0))
        out.extend(extra)
    elif tag == "table:table":
        out.append(("table", _table_text(el), 0))
    elif tag == "draw:g":
        for shape in _reading_order(_children(el)):
            _visit(shape, out, in_list)
    elif el.get_attribute_string("presentation:class") in _BOILERPLATE:
        return
    else:  # sections, lists, frames, text boxes, shapes: walk on
        _walk(el, out, in_list or tag in _LIST)


def _outline_level(el) -> int:
    level = el.get_attribute_integer("text:outline-level")
    return min(max(level or 1, 1), 10)


def _inline(el, extra: list[tuple]) -> str:
    """The text of a paragraph. Spaces, tabs and line breaks are elements in ODF; footnotes, frames and shapes
    anchored in the paragraph are blocks of their own, added to `extra`."""
    parts: list[str] = []
    for child in el.xpath("*|text()"):  # in document order; text after a comment is a text node of its own
        if isinstance(child, str):
            parts.append(child)
            continue
        tag = child.tag
        if tag in _SKIP:
            pass
        elif tag == "text:s":
            parts.append(" " * min(child.get_attribute_integer("text:c") or 1, 100))
        elif tag == "text:tab":
            parts.append("\t")
        elif tag == "text:line-break":
            parts.append("\n")
        elif tag == "text:note":
            for body in _children(child):
                if body.tag == "text:note-body":
                    _walk(body, extra)
        elif tag in _BLOCK or tag.startswith("draw:"):
            _visit(child, extra)
        else:  # spans, links, fields, bookmarks, ruby bases
            parts.append(_inline(child, extra))
    return "".join(parts)


def _table_text(table) -> str:
    lines: list[str] = []
    _table_rows(table, lines)
    return "\n".join(lines)


def _table_rows(el, lines: list[str]) -> None:
    for child in _children(el):
        tag = child.tag
        if tag == "table:table-row":
            cells: list[str] = []
            for cell in _children(child):
                if cell.tag != "table:table-cell":  # a covered (merged) cell: its text is in the spanning cell
                    continue
                blocks: list[tuple] = []
                _walk(cell, blocks)
                text = collapse_inline(" ".join(t for _, t, _ in blocks))
                cells += [text] * _repeat(cell, "table:number-columns-repeated")
            while cells and not cells[-1]:
                cells.pop()
            if any(cells):
                lines += [" | ".join(cells)] * _repeat(child, "table:number-rows-repeated")
        elif tag in ("table:table-header-rows", "table:table-rows", "table:table-row-group"):
            _table_rows(child, lines)


def _repeat(el, attr: str) -> int:
    return min(max(el.get_attribute_integer(attr) or 1, 1), _MAX_REPEAT)


# ---- slides -----------------------------------------------------------------------------------------------------

def _slide_text(slide) -> tuple[str | None, str]:
    parts: list[str] = []
    title = None
    shapes = [c for c in _children(slide) if c.tag not in _SKIP]
    for shape in shapes:
        if shape.get_attribute_string("presentation:class") == "title":
            blocks: list[tuple] = []
            _walk(shape, blocks)
            title = collapse_inline(" ".join(t for _, t, _ in blocks)) or None
            if title:
                parts.append(title)
                shapes.remove(shape)
            break
    for shape in _reading_order(shapes):
        blocks = []
        _visit(shape, blocks)
        text, lines = [], []
        for kind, t, _ in blocks:
            if kind == "table":
                text.append("\n".join(lines))
                text.append(t)
                lines = []
            else:
                lines.append(t)
        text.append("\n".join(lines))
        parts += [normalize_whitespace(t) for t in text]

    notes = [c for c in _children(slide) if c.tag == "presentation:notes"]
    if notes:
        blocks = []
        _walk(notes[0], blocks)
        text = normalize_whitespace("\n".join(t for _, t, _ in blocks))
        if text:
            parts.append("Notes: " + text)
    return title, normalize_whitespace("\n\n".join(p for p in parts if p))


def _length(value: str | None) -> float | None:
    m = _LENGTH_RE.match(value or "")
    return float(m.group(1)) * _CM[m.group(2)] if m else None


def _position(shape, depth: int = 0) -> tuple[float, float]:
    """(top, left) in cm; a group's is its first child's; unplaced shapes go last."""
    y, x = _length(shape.get_attribute_string("svg:y")), _length(shape.get_attribute_string("svg:x"))
    if (y is None or x is None) and shape.tag == "draw:g" and depth < 20:
        inner = [_position(c, depth + 1) for c in _children(shape)]
        return min(inner) if inner else (float("inf"), float("inf"))
    return (y if y is not None else float("inf"), x if x is not None else float("inf"))


def _reading_order(shapes) -> list:
    return reading_order(list(shapes), _position, _ROW_TOLERANCE)
