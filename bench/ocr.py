"""OCR accuracy and speed: pages of text PDFs rasterised as a scanner would (200 dpi grey, slight blur, 0.5 degree
skew), saved as an image-only PDF and as PNGs, then read back by kb.

    python bench/ocr.py [--pages N] [--out DIR] [--only NAME] [--no-speed]

Accuracy: kb's OCR text of each page of the image-only PDF (kb ingest's extractor, `--ocr auto`) against the
page's original text layer, as 1 - CER (edit distance / reference length, whitespace removed). A text layer's
stored order is not always the visual order (the sample manuals store a sidebar last; a LaTeX paper stores its
columns in reading order, but its tight text runs defeat the OCR-box ordering), so the text is compared with
both the stored order and its runs put in reading order by kb's ordering code, and the better of the two counts;
both are printed, with an order-free figure (character multisets). Goals: >= 0.95 English, >= 0.90 Chinese.

Speed: pages/s of kb's whole ingest (extract + OCR + chunk + embed + commit, in-process, models loaded first) of
the PNGs, beside the floor: the bare RapidOCR call (same packaged models and settings) on the same PNGs, in the
same run. Goal: ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVAL, REPO, figure  # noqa: E402

SOURCES = [  # (language, pdf)
    ("en", REPO / "sample_docs" / "qf300_user_manual_en.pdf"),
    ("zh", REPO / "sample_docs" / "qf300_service_manual_zh.pdf"),
    ("en", EVAL / "hostile" / "multi-column-2p.pdf"),
]
DPI = 200
_WS = re.compile(r"\s+")


def scan_like(pdf: Path, index: int):
    """A page rendered at 200 dpi grey, blurred a little and turned 0.5 degrees (white fill): a PIL image."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageFilter

    doc = pdfium.PdfDocument(str(pdf))
    try:
        im = doc[index].render(scale=DPI / 72, grayscale=True).to_pil().convert("L")
    finally:
        doc.close()
    im = im.filter(ImageFilter.GaussianBlur(radius=0.8))
    return im.rotate(0.5, resample=Image.BICUBIC, expand=True, fillcolor=255)


def text_layer_in_reading_order(pdf: Path, index: int) -> str:
    import pypdfium2 as pdfium

    from kb.extract.reading_order import lines_to_text

    doc = pdfium.PdfDocument(str(pdf))
    try:
        page = doc[index]
        height = page.get_height()
        tp = page.get_textpage()
        runs = []
        for i in range(tp.count_rects()):
            left, bottom, right, top = tp.get_rect(i)
            text = tp.get_text_bounded(left, bottom, right, top)
            if text.strip():
                runs.append(((left, height - top, right, height - bottom), text, 1.0))
        return lines_to_text(runs)
    finally:
        doc.close()


def text_layer(pdf: Path, index: int) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        return doc[index].get_textpage().get_text_range()
    finally:
        doc.close()


def _norm(s: str) -> str:
    return _WS.sub("", s.replace("\ufffe", "").replace("\x02", "").replace("-\n", ""))


def char_accuracy(ocr: str, ref: str) -> float:
    from rapidfuzz.distance import Levenshtein

    a, r = _norm(ocr), _norm(ref)
    return max(0.0, 1.0 - Levenshtein.distance(a, r) / len(r)) if r else float(not a)


def bag_accuracy(ocr: str, ref: str) -> float:
    from collections import Counter

    a, r = Counter(_norm(ocr)), Counter(_norm(ref))
    n = sum(r.values())
    return max(0.0, 1.0 - max(sum((r - a).values()), sum((a - r).values())) / n) if n else 1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=4, help="pages per source PDF")
    ap.add_argument("--out", type=Path, default=None, help="keep the scan-like PDFs and PNGs here")
    ap.add_argument("--only", default="", help="only source PDFs whose name contains this")
    ap.add_argument("--no-speed", action="store_true", help="accuracy only")
    args = ap.parse_args()

    import numpy as np
    from PIL import Image

    from kb.embedders import load_embedder
    from kb.extract import extract_file
    from kb.extract.ocr import engine, ocr_lines
    from kb.ingest import IngestOptions, ingest
    from kb.store import KnowledgeBase

    tmp = Path(tempfile.mkdtemp(prefix="kb-bench-ocr-"))
    out = args.out or tmp
    (out / "png").mkdir(parents=True, exist_ok=True)
    pages = []  # (lang, source name, page index, png path, reference text)
    pdfs = []
    for lang, pdf in SOURCES:
        if args.only not in pdf.name:
            continue
        if not pdf.exists():
            print(f"skipped {pdf} (not found)")
            continue
        import pypdfium2 as pdfium

        n = min(args.pages, len(pdfium.PdfDocument(str(pdf))))
        images = [scan_like(pdf, i) for i in range(n)]
        scan_pdf = out / f"{pdf.stem}-scan.pdf"
        images[0].save(scan_pdf, save_all=True, append_images=images[1:], resolution=DPI)
        pdfs.append((lang, pdf, scan_pdf, n))
        for i, im in enumerate(images):
            png = out / "png" / f"{pdf.stem}-p{i + 1}.png"
            im.save(png)
            pages.append((lang, pdf.name, i, png, text_layer_in_reading_order(pdf, i)))

    # ---- accuracy: kb's extractor on the image-only PDFs
    print("\naccuracy (kb extract_file on the image-only PDF, vs the text layer):")
    acc: dict[str, list[float]] = {}
    for lang, pdf, scan_pdf, n in pdfs:
        doc = extract_file(scan_pdf, ocr="auto")
        by_page = {s.page: s.text for s in doc.sections}
        for i in range(n):
            got, stored = by_page.get(i + 1, ""), text_layer(pdf, i)
            a_stored = char_accuracy(got, stored)
            a_ordered = char_accuracy(got, text_layer_in_reading_order(pdf, i))
            acc.setdefault(lang, []).append(max(a_stored, a_ordered))
            print(f"  {pdf.name} p.{i + 1} ({lang}): 1-CER vs stored order {a_stored:.4f}, vs reading order "
                  f"{a_ordered:.4f}, order-free {bag_accuracy(got, stored):.4f}  (pages OCR'd: {doc.ocr_pages})")
    for lang, values in acc.items():
        figure(f"char_accuracy_{lang}_mean", sum(values) / len(values))
        figure(f"char_accuracy_{lang}_min", min(values))

    if args.no_speed:
        return
    # ---- speed: the floor (bare RapidOCR on the PNGs) and kb's whole ingest of the same PNGs, one run
    arrays = [np.asarray(Image.open(p).convert("L")) for _, _, _, p, _ in pages]
    engine()  # models loaded before either clock starts
    ocr_lines(arrays[0])
    embedder = load_embedder("minilm")
    embedder.embed_documents(["warm up"])
    t = time.perf_counter()
    for a in arrays:
        engine()(a, use_det=True, use_cls=False, use_rec=True)
    floor = time.perf_counter() - t
    kb = KnowledgeBase(tmp / "kb")
    t = time.perf_counter()
    report = ingest(kb, IngestOptions(paths=[out / "png"], workers=0), "minilm", lambda: embedder,
                    embedder.model_id)
    whole = time.perf_counter() - t
    assert not report.failed, report.failed
    print(f"\nspeed over {len(arrays)} pages ({DPI} dpi PNGs):")
    figure("floor_bare_rapidocr_pages_per_s", len(arrays) / floor, "pages/s")
    figure("kb_ingest_pages_per_s", len(arrays) / whole, "pages/s")
    figure("ratio_kb_to_floor", floor / whole)
    if args.out is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
