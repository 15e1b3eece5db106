"""Which PDF pages to OCR, and the OCR of one page (rendered with pypdfium2).

`ocr` mode: "never" keeps the text layer only (a scanned page is reported "no text layer (scanned?)"),
"always" OCRs every page, "auto" OCRs a page when (thresholds measured on every PDF of ../shared/eval/hostile
and tables plus generated scans: exactly the scan pages were picked, see docs/extraction.md):

* it has no text layer: fewer than 10 non-space characters (scanners stamp a page number) and images cover
  at least 10 % of it (a blank page with a logo is not OCR'd);
* its text stays garbled after the fallback extractor;
* images cover at least half of it and it has little text: under 200 characters and under 4 characters per
  square inch of image (a scan with a typed caption or header; a real text page has 20+ per square inch).

A page that is a scan with an invisible OCR layer already has its text and is left alone. The signal costs
a few ms a page (image objects' bounds, no rendering) and is only computed for pages with little text.
"""

from __future__ import annotations

__all__ = ["image_coverage", "ocr_reason", "ocr_page"]

_GRID = 64


def image_coverage(page) -> float:
    """Share of the page covered by image objects (overlaps counted once, Form XObjects descended into)."""
    from pypdfium2 import raw

    x0p, y0p, x1p, y1p = page.get_mediabox()  # object bounds are in unrotated user space
    pw, ph = x1p - x0p, y1p - y0p
    if pw <= 0 or ph <= 0:
        return 0.0
    cells: set[tuple[int, int]] = set()
    for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=4):
        left, bottom, right, top = obj.get_bounds()
        left, right, bottom, top = max(left, x0p), min(right, x1p), max(bottom, y0p), min(top, y1p)
        if right <= left or top <= bottom:
            continue
        if (right - left) * (top - bottom) >= 0.9 * pw * ph:
            return 1.0  # a full-page scan
        for i in range(int((left - x0p) / pw * _GRID), int(min(_GRID - 1, (right - x0p) / pw * _GRID)) + 1):
            for j in range(int((bottom - y0p) / ph * _GRID), int(min(_GRID - 1, (top - y0p) / ph * _GRID)) + 1):
                cells.add((i, j))
    return len(cells) / _GRID ** 2


def ocr_reason(page, text: str, garbled: bool) -> str | None:
    """Why `auto` OCRs this page (its chosen text and whether that stayed garbled), or None."""
    if garbled:
        return "text layer garbled"
    chars = sum(1 for ch in text if not ch.isspace())
    if chars >= 200:
        return None
    cover = image_coverage(page)
    if chars < 10:
        return "no text layer" if cover >= 0.10 else None
    w, h = page.get_size()
    image_in2 = cover * w * h / 5184  # 72 x 72 points to the square inch
    if cover >= 0.50 and chars / image_in2 < 4:
        return "mostly image, little text"
    return None


def render(page, dpi: int):
    """The page as a grey uint8 array, /Rotate applied."""
    img = page.render(scale=dpi / 72.0, grayscale=True).to_numpy()
    return img[:, :, 0] if img.ndim == 3 else img


def ocr_page(page) -> str:
    from kb.extract.ocr import DPI, ocr_image

    return ocr_image(render(page, DPI))
