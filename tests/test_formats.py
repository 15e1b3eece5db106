"""Spreadsheets (XLSX, CSV) and EPUB: real files written with their libraries, read back through extract_file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from kb.extract import extract_file, is_supported
from kb.extract.sheet import ROWS_PER_SECTION


def test_xlsx_rows_keep_their_header(tmp_path):
    import datetime as dt

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Cash flow"
    ws.append(["Item", "2017", "2016", "2015"])
    ws.append(["Net cash used in investing activities", -1204, -988.0, -1131])
    for n in range(ROWS_PER_SECTION + 5):
        ws.append([f"Line {n}", n, n * 2.5, None])
    ws.append(["Total", "=SUM(B2:B3)", dt.date(2017, 12, 31)])
    other = wb.create_sheet("Notes")
    other.append(["Note", "Text"])
    other.append([1, "Figures in thousands of dollars"])
    wb.save(tmp_path / "acme_2017.xlsx")

    doc = extract_file(tmp_path / "acme_2017.xlsx")
    assert doc.format == "xlsx" and [s.heading_path for s in doc.sections] == [("Cash flow",)] * 2 + [("Notes",)]
    first, second, notes = (s.text.split("\n") for s in doc.sections)
    assert first[0] == second[0] == "Item | 2017 | 2016 | 2015"  # every block starts with the header
    assert first[1] == "Net cash used in investing activities | -1204 | -988 | -1131"
    assert "Line 3 | 3 | 7.5" in first and second[-1].startswith("Total | ") and second[-1].endswith("2017-12-31")
    assert notes == ["Note | Text", "1 | Figures in thousands of dollars"]


def test_csv_with_semicolons_in_chinese(tmp_path):
    f = tmp_path / "销售.csv"
    f.write_text("地区;季度;销售额\n华东;Q1;1,204\n华南;Q1;988\n", encoding="utf-8")
    doc = extract_file(f)
    assert doc.format == "csv" and doc.sections[0].heading_path == ("销售",)
    assert doc.sections[0].text.split("\n") == ["地区 | 季度 | 销售额", "华东 | Q1 | 1,204", "华南 | Q1 | 988"]


def _epub(path: Path, chapters: list[tuple[str, str]]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" '
                   'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                   '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                   '</rootfiles></container>')
        items = "".join(f'<item id="c{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>'
                        for i in range(len(chapters)))
        spine = "".join(f'<itemref idref="c{i}"/>' for i in reversed(range(len(chapters))))  # spine order wins
        z.writestr("OEBPS/content.opf", '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" '
                   'version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>The Pump Book'
                   f'</dc:title></metadata><manifest>{items}</manifest><spine>{spine}</spine></package>')
        for i, (title, body) in enumerate(chapters):
            z.writestr(f"OEBPS/text/ch{i}.xhtml", f'<?xml version="1.0" encoding="utf-8"?><html '
                       f'xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head><body>'
                       f'<h1>{title}</h1><p>{body}</p></body></html>')
    return path


def test_epub_chapters_in_spine_order(tmp_path):
    doc = extract_file(_epub(tmp_path / "book.epub", [("Second", "The valve opens at 3 bar."),
                                                      ("First", "泵的额定流量为每分钟 12 升。")]))
    assert doc.format == "epub" and doc.title == "The Pump Book"
    assert [s.heading_path[0] for s in doc.sections] == ["First", "Second"]
    assert "12 升" in doc.sections[0].text and "3 bar" in doc.sections[1].text


def test_broken_and_legacy_spreadsheets(tmp_path):
    from kb.errors import ExtractionError, UnsupportedFormat

    (tmp_path / "cut.xlsx").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ExtractionError):
        extract_file(tmp_path / "cut.xlsx")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 600)
    with pytest.raises(UnsupportedFormat, match="convert-to xlsx"):
        extract_file(tmp_path / "old.xls")
    assert is_supported(Path("a.XLSX")) and is_supported(Path("b.csv")) and is_supported(Path("c.epub"))
