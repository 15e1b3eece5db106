"""PowerPoint .pptx: one Section per slide (title, text frames in reading order, tables, notes).

Date, footer and slide-number placeholders are left out: repeated on every slide, they only
dilute retrieval.

Reading order is approximated from shape positions (top to bottom, then left to right, with a
tolerance so a row of boxes reads left to right); python-pptx returns shapes in z-order, which
often puts a late-added text box first. Groups are read recursively in their own order. SmartArt
text is read from the diagram's data part, which python-pptx does not expose as shapes.

Password-protected .pptx files are OLE2 containers holding an encrypted package; they are
decrypted when a password is given (see `kb.extract.ooxml`), else reported.
"""

from __future__ import annotations

from pathlib import Path

from kb.document import Document, ExtractionError, Section
from kb.extract.common import collapse_inline, normalize_whitespace, reading_order, short_reason
from kb.extract.ooxml import open_ooxml

_ROW_TOLERANCE = 228600  # EMU (0.25 in): boxes whose tops differ less than this are on one row


def extract_pptx(path: Path, password: str | None = None, ocr: str = "never") -> Document:
    """Slides as sections. With `ocr` "auto", pictures on a slide with little text (a screenshot slide) are read
    by OCR; with "always", every picture."""
    try:
        from pptx import Presentation
        from pptx.exc import PackageNotFoundError
    except ImportError as e:  # pragma: no cover - dependency missing
        raise ExtractionError(f"PowerPoint support is not installed ({short_reason(e)})") from None

    source = open_ooxml(path, password, kind="PowerPoint")
    try:
        prs = Presentation(source)
    except PackageNotFoundError:
        raise ExtractionError("broken PPTX: not a readable zip package (truncated or damaged?)") from None
    except KeyError as e:
        raise ExtractionError(f"broken PPTX: missing part {short_reason(e)}") from None
    except ValueError as e:
        if "content type" in str(e):  # e.g. a .docx renamed to .pptx: wrong main document type
            raise ExtractionError("not a PowerPoint presentation (the package holds another Office document type)"
                                  ) from None
        raise ExtractionError(f"broken PPTX: {short_reason(e)}") from None
    except Exception as e:
        raise ExtractionError(f"broken PPTX: {short_reason(e)}") from None

    try:
        slides = list(prs.slides)
    except Exception as e:
        raise ExtractionError(f"broken PPTX: cannot read the slide list ({short_reason(e)})") from None
    if not slides:
        raise ExtractionError("no slides")

    sections: list[Section] = []
    warnings: list[str] = []
    first_title = None
    ocr_slides = 0
    area = (prs.slide_width or 0) * (prs.slide_height or 0)
    for n, slide in enumerate(slides, start=1):
        try:
            title, text = _slide_text(slide)
        except Exception as e:  # one damaged slide must not lose the deck
            warnings.append(f"slide {n}: could not read ({short_reason(e)})")
            continue
        first_title = first_title or title
        read = _ocr_pictures(slide, text, area, ocr, warnings, n) if ocr != "never" else ""
        if read:
            text, ocr_slides = normalize_whitespace(f"{text}\n\n{read}"), ocr_slides + 1
        if text:
            sections.append(Section(text, slide=n, ocr=bool(read)))
    if not sections:
        raise ExtractionError("no text on any slide (images only?)")

    title = None
    try:
        title = collapse_inline(prs.core_properties.title or "") or None
    except Exception:
        pass
    if title and title.lower() in ("powerpoint presentation", "presentation", "untitled"):
        title = None
    return Document(path=path, format="pptx", title=title or first_title or path.stem, sections=sections,
                    pages=len(slides), warnings=warnings, ocr_pages=ocr_slides)


LITTLE_TEXT = 200  # non-space characters: a slide with less text than this has its pictures OCR'd in auto
MIN_PICTURE = 0.10  # share of the slide a picture must cover to be worth OCR in auto (not a logo or an icon)


def _pictures(shapes) -> list:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    out = []
    for shape in shapes:
        try:
            if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
                out += _pictures(shape.shapes)
            elif hasattr(shape, "image"):
                out.append(shape)
        except Exception:
            continue
    return out


def _ocr_pictures(slide, text: str, area: int, ocr: str, warnings: list[str], n: int) -> str:
    """The OCR text of this slide's pictures that `ocr` says to read ("" for none)."""
    import io

    if ocr == "auto" and sum(1 for ch in text if not ch.isspace()) >= LITTLE_TEXT:
        return ""
    found: list[str] = []
    for shape in _reading_order(_pictures(slide.shapes)):
        try:
            if ocr == "auto" and area and (shape.width or 0) * (shape.height or 0) < MIN_PICTURE * area:
                continue
            import numpy as np
            from PIL import Image

            from kb.extract.ocr import ocr_image

            with Image.open(io.BytesIO(shape.image.blob)) as im:
                found.append(ocr_image(np.asarray(im.convert("L"))).strip())
        except Exception as e:  # a picture format Pillow cannot decode (EMF, WMF): keep the slide's text
            warnings.append(f"slide {n}: picture not read by OCR ({short_reason(e)})")
    return "\n\n".join(t for t in found if t)


def _slide_text(slide) -> tuple[str | None, str]:
    parts: list[str] = []
    title_shape = None
    title = None
    try:
        title_shape = slide.shapes.title
    except Exception:
        pass
    if title_shape is not None and title_shape.has_text_frame:
        title = collapse_inline(title_shape.text_frame.text) or None
        if title:
            parts.append(title)
    skip = {title_shape.shape_id} if title_shape is not None else set()
    _collect(slide.shapes, parts, skip, slide.part)

    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = normalize_whitespace(frame.text.replace("\v", "\n")) if frame is not None else ""
        if notes:
            parts.append("Notes: " + notes)
    return title, normalize_whitespace("\n\n".join(p for p in parts if p))


def _position(shape) -> tuple[int, int]:
    top, left = shape.top, shape.left
    return (top if top is not None else 1 << 40, left if left is not None else 1 << 40)


def _reading_order(shapes) -> list:
    return reading_order(list(shapes), _position, _ROW_TOLERANCE)


def _collect(shapes, parts: list[str], skip: set[int], part) -> None:
    from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER

    boilerplate = (PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.SLIDE_NUMBER)
    for shape in _reading_order(list(shapes)):
        if shape.shape_id in skip:
            continue
        try:
            if shape.is_placeholder and shape.placeholder_format.type in boilerplate:
                continue  # the same date/footer/number on every slide only dilutes retrieval
            if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
                _collect(shape.shapes, parts, skip, part)
            elif shape.has_text_frame:
                text = normalize_whitespace(shape.text_frame.text.replace("\v", "\n"))
                if text:
                    parts.append(text)
            elif getattr(shape, "has_table", False) and shape.has_table:
                parts.append(_table_text(shape.table))
            elif getattr(shape, "has_chart", False) and shape.has_chart:
                chart = shape.chart
                if chart.has_title and chart.chart_title.has_text_frame:
                    parts.append(collapse_inline(chart.chart_title.text_frame.text))
            else:
                parts.append(_smartart_text(shape, part))
        except Exception:  # odd shapes (broken OLE objects, unknown graphic frames): skip, keep the rest
            continue


def _table_text(table) -> str:
    lines = []
    for row in table.rows:
        cells = [collapse_inline(c.text) for c in row.cells if not c.is_spanned]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


_DGM_NS = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
_A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
_R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _smartart_text(shape, part) -> str:
    """Text of a SmartArt diagram: the a:t runs of its data part, one point per line."""
    rel_ids = shape._element.find(f".//{{{_DGM_NS}}}relIds")
    if rel_ids is None:
        return ""
    r_id = rel_ids.get(f"{{{_R_NS}}}dm")
    if not r_id:
        return ""
    from lxml import etree

    root = etree.fromstring(part.related_part(r_id).blob)
    lines = []
    for pt in root.iter(f"{{{_DGM_NS}}}pt"):
        text = "".join(t.text or "" for t in pt.iter(f"{{{_A_NS}}}t")).strip()
        if text:
            lines.append(text)
    return "\n".join(lines)
