"""PDF tables come out as rows ("label | cell | cell", header kept); prose pages are unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_eval
from kb.extract import extract_file

HEADER = ("", "Note", "2024", "2023")
ROWS = [
    ("Revenue", "3", "12,480.5", "11,902.1"),
    ("Cost of sales", "4", "(7,311.0)", "(7,020.4)"),
    ("Gross profit", "", "5,169.5", "4,881.7"),
    ("Net cash used in investing activities", "9", "(1,204)", "(988)"),
    ("Profit for the year", "", "2,176.7", "2,005.6"),
]
PROSE = ("The group's revenue grew by 4.9 per cent, driven by higher volumes in the instruments segment and a "
         "full year of the service contracts acquired in 2023.")


def statement_pdf(path: Path, ruled: bool) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.setFont("Helvetica-Bold", 14)
    c.drawString(60, 790, "Consolidated income statement")
    c.setFont("Helvetica", 10)
    for k, line in enumerate((PROSE[:95], PROSE[95:])):
        c.drawString(60, 765 - 13 * k, line)
    right = (None, 330, 420, 510)  # label left-aligned at 60, figures right-aligned
    y = 700
    for row in (HEADER, *ROWS):
        c.drawString(60, y, row[0])
        for x, cell in zip(right[1:], row[1:]):
            c.drawRightString(x, y, cell)
        if ruled:
            c.line(55, y - 4, 515, y - 4)
        y -= 18
    c.drawString(60, y - 30, "Finance costs increased because the facility was drawn for longer during the year.")
    c.showPage()
    c.setFont("Helvetica", 10)
    for k in range(12):  # a prose page: stays as it is
        c.drawString(60, 780 - 14 * k, f"Line {k + 1} of the chairman's statement, in plain prose without any table.")
    c.save()
    return path


@pytest.mark.parametrize("ruled", [True, False])
def test_generated_statement_rows_on_one_line(tmp_path, ruled):
    doc = extract_file(statement_pdf(tmp_path / "statement.pdf", ruled), ocr="never")
    lines = doc.sections[0].text.split("\n")
    assert " | Note | 2024 | 2023" in lines  # the header is kept, its empty label cell too
    for label, note, a, b in ROWS:
        assert f"{label} | {note} | {a} | {b}" in lines, (label, lines)
    assert "Consolidated income statement" in lines[0] and "instruments segment" in doc.sections[0].text
    assert " | " not in doc.sections[1].text and "Line 12 of the chairman's statement" in doc.sections[1].text


# rows read on the rendered pages (checked by eye against the page images)
REAL_ROWS = {
    "nics-background-checks-2015-11.pdf": (0, [
        "Alabama | 18,870 | 23,022 | 22,650 | 859 | 1,178 | 0 | 14 | 15 | 0 | 2,179 | 2,307",
        "Alaska | 209 | 3,062 | 3,209 | 191 | 184 | 0 | 9 | 3 | 0 | 100 | 100",
        "California | 98 452 | 41 181 | 35 007 | 4 559 | 0 | 0 | 0 | 0 | 0 | 480 | 433",
    ]),
    "nics-background-checks-2015-11-rotated.pdf": (0, [
        "Alabama | 18,870 | 23,022 | 22,650 | 859 | 1,178 | 0 | 14 | 15 | 0 | 2,179 | 2,307",
        "Arizona | 2,303 | 12,382 | 9,041 | 707 | 618 | 0 | 5 | 3 | 0 | 1,273 | 648",
    ]),
    "WARN-Report-for-7-1-2015-to-03-25-2016.pdf": (0, [
        "Notice Date | Effective | Received | Company | City | No. Of | Layoff/Closure",
        "06/22/2015 | 03/25/2016 | 07/01/2015 | Maxim Integrated Product | San Jose | 150 | Closure Permanent",
        "07/01/2015 | 09/02/2015 | 07/01/2015 | Leidos | El Segundo | 72 | Layoff Permanent",
    ]),
    "table-curves-example.pdf": (0, [
        "Anaemia | Common | Common | Common",
        "Thrombocytopenia | Uncommon | Uncommon | Common",
        "Pruritus | Uncommon | Uncommon | Uncommon*",
        "Angioedema | Not known | Not known | Not known",
    ]),
}


@pytest.mark.parametrize("name", sorted(REAL_ROWS))
def test_real_tables_rows(name):
    page, rows = REAL_ROWS[name]
    doc = extract_file(shared_eval("tables") / name, ocr="never")
    text = next(s.text for s in doc.sections if s.page == page + 1)
    lines = text.split("\n")
    for row in rows:
        assert any(line.startswith(row) for line in lines), (row, [ln for ln in lines if ln[:8] == row[:8]])


def test_prose_pages_unchanged():
    """Pages without a table keep the text they had (the sample manuals' prose pages, a 2-column paper)."""
    import pypdfium2 as pdfium

    from kb.extract.tables import page_tables

    for pdf in (Path(__file__).resolve().parents[1] / "sample_docs" / "qf300_user_manual_en.pdf",
                shared_eval("hostile") / "multi-column-2p.pdf"):
        doc = pdfium.PdfDocument(str(pdf))
        found = [len(page_tables(doc[i])) for i in range(len(doc))]
        doc.close()
        # the manual's page 1 has its spec table; no other page has one
        assert found == ([1, 0, 0, 0] if pdf.name.startswith("qf300") else [0, 0]), (pdf.name, found)
