"""Spreadsheets: .xlsx (openpyxl) and .csv (the csv module), a sheet's rows as "cell | cell | cell" lines.

Each sheet is cut into blocks of ROWS_PER_SECTION rows, and every block starts with the sheet's header row (its
first non-empty row), so that a chunk holding row 480 still says what its columns are. The sheet name is the
section's heading. openpyxl reads in read-only mode (rows streamed, memory bounded) with the values formulas last
computed to (data_only), as a user sees them.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Iterable

from kb.document import Document, ExtractionError, Section
from kb.extract.common import collapse_inline, short_reason

__all__ = ["extract_xlsx", "extract_csv", "rows_to_sections"]

ROWS_PER_SECTION = 25
MAX_ROWS = 200_000  # per sheet: the rest is cut, with a warning


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return collapse_inline(str(value))


def rows_to_sections(name: str, rows: Iterable[Iterable], warnings: list[str]) -> list[Section]:
    """A sheet's rows as sections of ROWS_PER_SECTION lines, each led by the header row."""
    header: str | None = None
    block: list[str] = []
    sections: list[Section] = []
    for n, row in enumerate(rows, start=1):
        if n > MAX_ROWS:
            warnings.append(f"{name}: only the first {MAX_ROWS} rows were read")
            break
        cells = [_cell(v) for v in row]
        while cells and not cells[-1]:
            cells.pop()
        if not any(cells):
            continue
        line = " | ".join(cells)
        if header is None:
            header = line
            continue
        block.append(line)
        if len(block) == ROWS_PER_SECTION:
            sections.append(Section("\n".join([header, *block]), heading_path=(name,)))
            block = []
    if block or (header and not sections):
        sections.append(Section("\n".join([header or "", *block]).strip(), heading_path=(name,)))
    return sections


def extract_xlsx(path: Path, password: str | None = None) -> Document:
    from zipfile import BadZipFile

    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, KeyError, OSError) as e:
        raise ExtractionError(f"broken XLSX: {short_reason(e)}") from None
    sections: list[Section] = []
    warnings: list[str] = []
    try:
        for ws in wb.worksheets:
            try:
                sections += rows_to_sections(ws.title, ws.iter_rows(values_only=True), warnings)
            except Exception as e:  # one damaged sheet must not lose the others
                warnings.append(f"sheet {ws.title}: could not read ({short_reason(e)})")
        title = collapse_inline(wb.properties.title or "") if wb.properties else ""
    finally:
        wb.close()
    if not sections:
        raise ExtractionError("no cells with text in any sheet")
    return Document(path=path, format="xlsx", title=title or path.stem, sections=sections, warnings=warnings)


def extract_csv(path: Path, password: str | None = None) -> Document:
    from kb.extract.text import read_text_file

    text = read_text_file(path)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    warnings: list[str] = []
    try:
        sections = rows_to_sections(path.stem, csv.reader(text.splitlines(), dialect), warnings)
    except csv.Error as e:
        raise ExtractionError(f"broken CSV: {short_reason(e)}") from None
    if not sections:
        raise ExtractionError("no cells with text")
    return Document(path=path, format="csv", title=path.stem, sections=sections, warnings=warnings)
