"""OCR through the real stack: RapidOCR with the packaged models, on pages rendered from sample_docs.

Each OCR'd page costs seconds on 2 cores, so these tests OCR as few pages as they can (one per test).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from conftest import SAMPLE_DOCS, run_kb as kb, shared_eval

EN_PDF = SAMPLE_DOCS / "qf300_user_manual_en.pdf"
ZH_PDF = SAMPLE_DOCS / "qf300_service_manual_zh.pdf"


def _render(pdf: Path, index: int, dpi: int = 150):
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        return doc[index].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    finally:
        doc.close()


def _text_page_then_scan(out: Path) -> Path:
    """A 2-page PDF: EN manual page 1 with its text layer, then page 2 as a picture only (no text layer)."""
    from pypdf import PdfReader, PdfWriter

    buf = io.BytesIO()
    _render(EN_PDF, 1).save(buf, format="PDF", resolution=150)
    writer = PdfWriter()
    writer.add_page(PdfReader(str(EN_PDF)).pages[0])
    writer.add_page(PdfReader(io.BytesIO(buf.getvalue())).pages[0])
    with open(out, "wb") as f:
        writer.write(f)
    return out


def test_models_come_from_the_installed_wheel_and_nothing_is_downloaded(monkeypatch):
    import rapidocr
    from rapidocr.utils import download_file

    from kb.extract import ocr

    root = Path(rapidocr.__file__).parent / "models"
    for step, path in ocr.model_paths().items():
        assert path.parent == root and path.is_file() and path.stat().st_size > 100_000, step

    def no_download(*a, **k):
        raise AssertionError("RapidOCR tried to download a model")

    monkeypatch.setattr(download_file.DownloadFile, "run", no_download)
    monkeypatch.setattr(ocr, "_ENGINE", None)
    img = _render(ZH_PDF, 2).crop((0, 0, 1240, 500))  # the top of the fault-code page: a few lines, fast
    import numpy as np

    assert ocr.ocr_image(np.asarray(img)).strip()


def test_scanned_page_is_ocrd_searchable_and_marked(tmp_path):
    pdf = _text_page_then_scan(tmp_path / "manual_scan.pdf")
    path = tmp_path / "kb"
    # --ocr never: today's behaviour, the scanned page is reported and skipped
    r = kb("--kb", str(tmp_path / "kb_never"), "ingest", str(pdf), "--ocr", "never", "--json",
           "--embedding-model", "minilm")
    assert r.returncode == 0, r.stderr
    warnings = [w["message"] for w in json.loads(r.stdout)["warnings"]]
    assert warnings == ["page 2: no text layer (scanned?)"]

    r = kb("--kb", str(path), "ingest", str(pdf), "--json", "--embedding-model", "minilm")  # ocr auto (default)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["warnings"] == []
    docs = json.loads(kb("--kb", str(path), "list", "--json").stdout)
    assert docs[0]["ocr_pages"] == 1 and docs[0]["pages"] == 2
    assert "1 read by OCR" in kb("--kb", str(path), "list").stdout

    # q03: "How much clearance must be left behind the QF-300?" -> 22 cm, p.2 (now the scanned page)
    r = kb("--kb", str(path), "search", "How much clearance must be left behind the QF-300?", "--json", "-k", "1")
    hit = json.loads(r.stdout)["results"][0]
    assert hit["page"] == 2 and hit["ocr"] is True and "22 cm" in hit["text"]
    plain = kb("--kb", str(path), "search", "clearance at the rear", "-k", "1").stdout
    assert "p.2 (OCR)" in plain
    r = kb("--kb", str(path), "search", "stirring speed", "--json", "-k", "1")  # the text-layer page
    hit = json.loads(r.stdout)["results"][0]
    assert hit["page"] == 1 and hit["ocr"] is False


def test_progress_counts_pages_as_ocr_reads_them(tmp_path):
    from conftest import FakeEmbedder

    from kb.ingest import IngestOptions, ingest
    from kb.reports import IngestProgress
    from kb.store import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    _text_page_then_scan(docs / "manual_scan.pdf")
    seen = []
    emb = FakeEmbedder()
    ingest(KnowledgeBase(tmp_path / "kb"), IngestOptions(paths=[docs], workers=1), "fake", lambda: emb,
           emb.model_id, on_progress=seen.append)
    # the scanned page is counted while the file is still being read (its worker ticks after each OCR'd page)...
    assert any(p.files_done == 0 and p.ocr_pages_done == 1 for p in seen if p.phase == "extract")
    # ...and the file's pages once it is done
    last = seen[-1]
    assert (last.pages_done, last.ocr_pages_done) == (2, 1)
    assert IngestProgress.pages(last) == "2 pages (1 OCR) · "


def test_png_with_chinese_text(tmp_path):
    from kb.extract import extract_file

    png = tmp_path / "故障代码.png"
    _render(ZH_PDF, 2).save(png)  # p.3: the fault-code table (q15: E-214 搅拌电机堵转, q16: E-305)
    doc = extract_file(png)
    assert doc.format == "image" and doc.pages == 1 and doc.ocr_pages == 1
    text = doc.sections[0].text
    assert doc.sections[0].ocr and "E-214" in text and "搅拌电机堵转" in text and "二氧化碳传感器漂移" in text
    with pytest.raises(Exception, match="--ocr never"):
        extract_file(png, ocr="never")


def test_hostile_skewed_scan_now_has_text():
    from kb.extract import extract_file

    doc = extract_file(shared_eval("hostile") / "scanned-skew.pdf")
    text = " ".join(s.text for s in doc.sections)
    assert doc.ocr_pages == 1 and "LinnSequencer" in text and "Sequence Recorder" in text


def test_auto_leaves_text_pages_alone_and_reads_two_columns_in_order():
    """No OCR cost: the decision on real text pages, and the reading order on synthetic line boxes."""
    import pypdfium2 as pdfium

    from kb.extract.reading_order import lines_to_text
    from kb.extract.scan import ocr_reason

    for pdf in (EN_PDF, ZH_PDF):
        doc = pdfium.PdfDocument(str(pdf))
        for page in doc:
            text = page.get_textpage().get_text_range()
            assert ocr_reason(page, text, garbled=False) is None
        doc.close()

    def box(x0, y0, x1, y1):
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]

    title = [(box(100, 40, 900, 70), "A Title Across Both Columns", 0.99)]
    left = [(box(100, 100 + 40 * i, 480, 130 + 40 * i), f"left {i}", 0.99) for i in range(6)]
    right = [(box(520, 100 + 40 * i, 900, 130 + 40 * i), f"right {i}", 0.99) for i in range(6)]
    # the detector's order interleaves the columns row by row; reading order reads each column top to bottom
    rows = [x for pair in zip(left, right) for x in pair]
    text = lines_to_text(title + rows)
    assert text.split() == ("A Title Across Both Columns".split()
                            + [w for i in range(6) for w in ("left", str(i))]
                            + [w for i in range(6) for w in ("right", str(i))])


def test_screenshot_slide_is_ocrd_in_auto_only(tmp_path):
    from pptx import Presentation
    from pptx.util import Inches

    from kb.extract import extract_file

    shot = tmp_path / "shot.png"
    _render(EN_PDF, 1).crop((80, 80, 1150, 330)).save(shot)  # the top of p.2: "3 Installation ... 22 cm"
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    slide.shapes.title.text = "Site requirements"
    slide.shapes.add_picture(str(shot), Inches(0.5), Inches(1.5), width=Inches(9))
    prs.save(tmp_path / "deck.pptx")

    doc = extract_file(tmp_path / "deck.pptx", ocr="never")
    assert doc.sections[0].text == "Site requirements" and not doc.sections[0].ocr
    doc = extract_file(tmp_path / "deck.pptx")
    text = doc.sections[0].text
    assert doc.sections[0].ocr and doc.ocr_pages == 1 and text.startswith("Site requirements")
    assert "22 cm" in text and "vibration-free" in text
