"""Image files as documents: .png .jpg/.jpeg .tif/.tiff (every frame a page) .bmp .webp, read by OCR.

Pillow decodes the image (its decompression-bomb guard stays on: an image over ~179 megapixels is refused);
each frame becomes one page, converted to grey (what the OCR models see anyway).
"""

from __future__ import annotations

from pathlib import Path

from kb.document import Document, ExtractionError, Section
from kb.extract.common import short_reason

__all__ = ["IMAGE_SUFFIXES", "extract_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
MAX_FRAMES = 2000  # a multi-page TIFF beyond this is cut, with a warning


def extract_image(path: Path, password: str | None = None, ocr: str = "auto") -> Document:
    if ocr == "never":
        raise ExtractionError("image file: text can only be read by OCR, which is off (--ocr never)")
    import numpy as np
    from PIL import Image, ImageSequence, UnidentifiedImageError

    from kb.extract.ocr import ocr_image

    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise ExtractionError("not an image Pillow can read (damaged or an unknown variant)") from None
    except Image.DecompressionBombError as e:
        raise ExtractionError(f"image too large to read safely ({short_reason(e)})") from None
    sections: list[Section] = []
    warnings: list[str] = []
    frames = 0
    with im:
        for n, frame in enumerate(ImageSequence.Iterator(im), start=1):
            if n > MAX_FRAMES:
                warnings.append(f"only the first {MAX_FRAMES} frames were read")
                break
            frames = n
            try:
                text = ocr_image(np.asarray(frame.convert("L"))).strip()
            except (OSError, ValueError) as e:  # a truncated frame: keep the frames read so far
                warnings.append(f"page {n}: could not read the image ({short_reason(e)})")
                break
            if text:
                sections.append(Section(text, page=n, ocr=True))
            else:
                warnings.append(f"page {n}: OCR found no text")
    if not sections:
        raise ExtractionError("no text found by OCR in the image")
    title = sections[0].text.split("\n", 1)[0][:120] if len(sections[0].text) > 3 else path.stem
    return Document(path=path, format="image", title=title, sections=sections, pages=frames,
                    warnings=warnings, ocr_pages=len(sections))
