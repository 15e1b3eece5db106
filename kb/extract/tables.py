"""PDF tables as rows: "label | cell | cell", the header row kept, from pypdfium2's positioned characters.

Measured against pdfplumber's table finder on ../shared/eval/tables, the sample manuals and generated
statements (docs/extraction.md): whole figure rows on one line 143/153 vs 73/153 (both pdfplumber strategies),
10-20x faster (~16 ms a page), no table found on any prose page, tables with and without ruling lines alike, and
a landscape table on a /Rotate 90 page read like an upright one.

Method (no ruling lines needed):
 1. pdfium characters with their loose boxes (font height, so commas stay on their line), in user space.
 2. Characters -> visual lines (vertical overlap); within a line a gap wider than CELL_GAP x line height starts
    a new cell (word spaces are ~0.25-0.35 em, table cells >= ~1 em apart).
 3. A table is a run of >= 3 close lines with >= 2 cells whose cell edges line up (>= 2 column anchors shared
    by half the rows, or a key/value table of >= 4 rows with one shared anchor); runs with long cells (two-column
    prose) and numbered or bulleted lists are not tables. One single-cell line (a section label) may sit inside.
 4. Rows: cells are placed in the table's columns (the most common cell count), empty cells kept so that
    figures stay under their header.

Only pages where a table is found change: their text is rebuilt from the same lines, prose as it reads and each
table as its rows set off by blank lines (one column assumed: a table on a multi-column page is left to pypdf).
"""

from __future__ import annotations

import re
from statistics import median
from typing import Callable

__all__ = ["page_text_with_tables", "page_tables"]

CELL_GAP = 0.8      # x line height: a gap this wide separates two cells
MIN_ROWS = 3


def page_chars(page):
    """[(x0, y0, x1, y1, ch)] in display space, whitespace/control chars dropped."""
    tp = page.get_textpage()
    try:
        n = tp.count_chars()
        if not n:
            return []
        text = tp.get_text_range(0, n)
        l0, b0, _, t0 = page.get_mediabox()
        height = t0 - b0
        out = []
        for i in range(n):
            ch = text[i] if i < len(text) else ""
            if not ch or ch.isspace() or ch in "\ufffe\x02\r\n":
                continue
            # loose=True: font-box height (same for all glyphs of a font, commas included) and advance-like widths
            l, b, r, t = tp.get_charbox(i, loose=True)  # pypdfium2 5.x: (left, bottom, right, top)
            if r <= l or t <= b:
                continue
            # user space, /Rotate not applied: the glyphs' own orientation, so a table printed landscape on a
            # page turned by /Rotate 90 is read like an upright one; origin moved to the top left
            out.append((l - l0, height - (t - b0), r - l0, height - (b - b0), ch))
        return out
    finally:
        tp.close()


def chars_to_lines(chars):
    """-> [line], line = {'y0','y1','x0','x1','h','segs': [(x0, x1, text)]}, top to bottom."""
    chars = sorted(chars, key=lambda c: ((c[1] + c[3]) / 2, c[0]))
    lines = []
    for c in chars:
        cy = (c[1] + c[3]) / 2
        placed = False
        for ln in reversed(lines[-3:]):  # only the last few lines can overlap (sorted by y)
            ov = min(ln["y1"], c[3]) - max(ln["y0"], c[1])
            if ov > 0.5 * min(ln["y1"] - ln["y0"], c[3] - c[1]):
                ln["chars"].append(c)
                placed = True
                break
        if not placed:
            lines.append({"y0": c[1], "y1": c[3], "chars": [c]})
    out = []
    for ln in lines:
        cs = sorted(ln["chars"], key=lambda c: c[0])
        h = median(c[3] - c[1] for c in cs)
        segs, cur, prev = [], [], None
        for c in cs:
            if prev is not None:
                gap = c[0] - prev[2]
                if gap > CELL_GAP * h:
                    segs.append(cur)
                    cur = []
                elif gap > 0.12 * h and cur:
                    cur.append((c[0], c[0], c[0], c[0], " "))
            cur.append(c)
            prev = c
        if cur:
            segs.append(cur)
        out.append({
            "y0": min(c[1] for c in cs), "y1": max(c[3] for c in cs),
            "x0": cs[0][0], "x1": max(c[2] for c in cs), "h": h,
            "segs": [(s[0][0], max(c[2] for c in s), "".join(c[4] for c in s).strip()) for s in segs],
        })
    out.sort(key=lambda ln: (ln["y0"], ln["x0"]))
    return out


def _aligned(rows, h):
    """Number of column anchors (segment left, right or centre x) shared by >= 50 % of the rows."""
    tol = 0.6 * h
    multi = [r for r in rows if len(r["segs"]) >= 2]
    if not multi:
        return 0
    best = 0
    for kind in (0, 1, 2):
        xs = sorted(s[0] if kind == 0 else s[1] if kind == 1 else (s[0] + s[1]) / 2
                    for r in multi for s in r["segs"][1:])
        clusters, cur = [], []
        for x in xs:
            if cur and x - cur[-1] > tol:
                clusters.append(cur)
                cur = []
            cur.append(x)
        if cur:
            clusters.append(cur)
        best = max(best, sum(1 for c in clusters if len(c) >= 0.5 * len(multi)))
    return best


def find_tables(lines):
    """-> list of (first, last) line-index ranges that are tables."""
    tables, i, n = [], 0, len(lines)
    while i < n:
        if len(lines[i]["segs"]) < 2:
            i += 1
            continue
        j, singles = i, 0
        while j + 1 < n:
            nxt = lines[j + 1]
            # rows of one table are close together: a gap of > 1.5 line heights ends the run
            if nxt["y0"] - lines[j]["y1"] > 1.5 * max(nxt["h"], lines[j]["h"]):
                break
            if len(nxt["segs"]) >= 2:
                singles = 0
            elif (singles == 0 and j + 2 < n and len(lines[j + 2]["segs"]) >= 2
                  and lines[j + 2]["y0"] - nxt["y1"] <= 1.5 * nxt["h"]):
                singles = 1
            else:
                break
            j += 1
        run = lines[i:j + 1]
        if _is_table(run):
            tables.append((i, j))
        i = j + 1
    return tables


_ENUM = re.compile(r"^(\(?[0-9A-Za-z]{1,3}[.)]|[-•*–·●■▪])$")


def _is_table(run) -> bool:
    if len(run) < MIN_ROWS:
        return False
    h = median(ln["h"] for ln in run)
    segs = [s[2] for ln in run for s in ln["segs"]]
    multi = [ln for ln in run if len(ln["segs"]) >= 2]
    # prose set in two columns, or justified text with wide gaps: long segments
    if sum(1 for t in segs if len(t) > 40) > 0.25 * len(segs):
        return False
    # numbered / bulleted lists: "1. | Call to order"
    if sum(1 for ln in multi if _ENUM.match(ln["segs"][0][2])) > 0.5 * len(multi):
        return False
    n3 = sum(1 for ln in run if len(ln["segs"]) >= 3)
    anchors = _aligned(run, h)
    if n3 >= 2:
        return anchors >= 2
    # two-column key/value tables ("Parameter | Value"): need more rows and one shared anchor
    return len(multi) >= 4 and anchors >= 1


def table_rows(run):
    """Cells of each line placed in the table's columns, so that a row with an empty cell keeps the
    header's column order ("Gross profit |  | 5,169.5 | ..."). Columns come from the most common
    segment count among the lines (the "full" rows); every segment goes to the column it overlaps most."""
    from collections import Counter
    counts = Counter(len(ln["segs"]) for ln in run if len(ln["segs"]) >= 2)
    ncol = max(counts, key=lambda k: (counts[k], k))
    full = [ln for ln in run if len(ln["segs"]) == ncol]
    cols = [(min(ln["segs"][k][0] for ln in full), max(ln["segs"][k][1] for ln in full)) for k in range(ncol)]
    rows = []
    for ln in run:
        if len(ln["segs"]) >= ncol:  # full row, or a header split finer than the body: keep as is
            rows.append(" | ".join(s[2] for s in ln["segs"]))
            continue
        cells = [""] * ncol
        for x0, x1, t in ln["segs"]:
            ov = [min(x1, c1) - max(x0, c0) for c0, c1 in cols]
            k = max(range(ncol), key=lambda i: ov[i]) if max(ov) > 0 else \
                min(range(ncol), key=lambda i: abs((x0 + x1) / 2 - (cols[i][0] + cols[i][1]) / 2))
            cells[k] = (cells[k] + " " + t).strip()
        while cells and not cells[-1]:
            cells.pop()
        rows.append(" | ".join(cells))
    return rows


def _lines(page) -> list[dict]:
    return chars_to_lines(page_chars(page))


def page_tables(page) -> list[list[str]]:
    """The rows of each table on an open pypdfium2 page."""
    lines = _lines(page)
    return [table_rows(lines[a:b + 1]) for a, b in find_tables(lines)]


def page_text_with_tables(page, clean: Callable[[str], str] = lambda t: t) -> str | None:
    """The page's text with each table as its rows (prose passed through `clean`), or None when it has no table."""
    lines = _lines(page)
    tables = find_tables(lines)
    if not tables:
        return None
    out: list[str] = []
    prose: list[str] = []
    k = 0
    starts = dict(tables)
    while k < len(lines):
        if k in starts:
            if prose:
                out.append(clean("\n".join(prose)))
                prose = []
            out.append("\n".join(table_rows(lines[k:starts[k] + 1])))
            k = starts[k] + 1
        else:
            prose.append(" ".join(s[2] for s in lines[k]["segs"]))
            k += 1
    if prose:
        out.append(clean("\n".join(prose)))
    return "\n\n".join(t for t in out if t.strip())
