"""Sort OCR line boxes into reading order (multi-column aware) and join them into text.

Input: lines = [(box, text, score)], box = 4 corner points (x, y) in image pixels (RapidOCR's
`res.boxes`), or any (x0, y0, x1, y1) rectangle.

Algorithm (no learning, O(n log n)):
 1. Deskew (median angle of long boxes' top edges), then axis-aligned rectangles; h = median line height.
 2. Rows (vertical overlap with the row's widest piece) are collected top to bottom into bands that share a
    column gutter (an x-gap >= 0.6 h in every row); a row crossing the gutter (title, full-width paragraph)
    starts a new band. A band whose columns are real text columns (each >= 22 % of the text width, lines
    filling >= 50 % of it) is read column by column; other bands (one column, tables) row by row.
 3. Vertical text (margin stamps) is read last.
 4. Inside a column, lines whose vertical extents overlap by > 50 % of the smaller height form one
    row and are read left to right (label ... value on the same baseline).
 5. Joining: rows of a column are joined with "\n"; a vertical gap > 0.8 h between rows (or the start
    of a new column/section) becomes a paragraph break "\n\n". Pieces on one row are joined with a
    space, except between two CJK characters.
"""
from __future__ import annotations

import re
from statistics import median

__all__ = ["order_lines", "lines_to_text"]

GAP = 0.6  # x line height: minimum column gutter between OCR boxes (boxes are padded by the detector)
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")


def _rect(box):
    if len(box) == 4 and not hasattr(box[0], "__len__"):
        x0, y0, x1, y1 = box
        return float(x0), float(y0), float(x1), float(y1)
    xs = [float(p[0]) for p in box]
    ys = [float(p[1]) for p in box]
    return min(xs), min(ys), max(xs), max(ys)


def _rows(items, h):
    """Group (rect, text) items of one column into rows (top to bottom), each row left to right."""
    items = sorted(items, key=lambda it: (it[0][1] + it[0][3]) / 2)
    rows = []
    for it in items:
        r = it[0]
        if rows:
            last = rows[-1]
            # compare with the widest piece of the row, not the row's union: small or tall pieces
            # (single characters of a margin stamp, superscripts) must not chain lines together
            ref = max(last, key=lambda x: x[0][2] - x[0][0])[0]
            ov = min(ref[3], r[3]) - max(ref[1], r[1])
            if ov > 0.5 * min(ref[3] - ref[1], r[3] - r[1]):
                last.append(it)
                continue
        rows.append([it])
    return [sorted(row, key=lambda it: it[0][0]) for row in rows]


def _join_row(row, h):
    """Pieces of one row, left to right: a space between them, except between two CJK characters
    that sit close together (< 0.5 h apart) - those are one line split by the detector."""
    out, prev_x1 = "", None
    for r, t in row:
        t = t.strip()
        if not t:
            continue
        if out:
            close = prev_x1 is not None and r[0] - prev_x1 < 0.5 * h
            if not (close and _CJK.match(out[-1]) and _CJK.match(t[0])):
                out += " "
        out += t
        prev_x1 = r[2]
    return out


def _deskew(lines):
    """Rotate quad boxes by minus the page skew (median angle of the top edges of long boxes), so that
    axis-aligned rectangles of neighbouring lines of a skewed scan do not overlap vertically."""
    import math
    angles = []
    for b, t, *_ in lines:
        if len(b) == 4 and hasattr(b[0], "__len__"):
            (x0, y0), (x1, y1) = b[0][:2], b[1][:2]
            w = math.hypot(x1 - x0, y1 - y0)
            hgt = math.hypot(b[3][0] - x0, b[3][1] - y0)
            if w > 3 * hgt > 0:
                angles.append(math.atan2(y1 - y0, x1 - x0))
    if not angles:
        return lines
    a = sorted(angles)[len(angles) // 2]
    if abs(a) < 0.002:  # < 0.1 deg
        return lines
    c, s = math.cos(-a), math.sin(-a)
    out = []
    for b, t, *rest in lines:
        if len(b) == 4 and hasattr(b[0], "__len__"):
            b = [(x * c - y * s, x * s + y * c) for x, y, *_ in b]
        out.append((b, t, *rest))
    return out


def _valid_columns(gut, items, h, bx0, bx1):
    """Drop gutters that do not separate real text columns (see _gutters)."""
    gut = list(gut)
    width = bx1 - bx0
    while gut:
        edges = [bx0] + [g for gg in gut for g in gg] + [bx1]
        cols = [(edges[2 * k], edges[2 * k + 1]) for k in range(len(gut) + 1)]
        bad = None
        for k, (c0, c1) in enumerate(cols):
            ws = sorted(r[2] - r[0] for r, _ in items
                        if c0 - h <= (r[0] + r[2]) / 2 <= c1 + h and (r[2] - r[0]) < 0.55 * width)
            cw = c1 - c0
            if cw < 0.22 * width or len(ws) < 2 or ws[len(ws) // 2] < 0.5 * cw:
                bad = k
                break
        if bad is None:
            break
        del gut[min(bad, len(gut) - 1)]
    return gut


def _row_gaps(row, h):
    """x-gaps >= GAP x h between the pieces of one row."""
    gaps, prev = [], None
    for r, _ in row:
        if prev is not None and r[0] - prev >= GAP * h:
            gaps.append((prev, r[0]))
        prev = r[2] if prev is None else max(prev, r[2])
    return gaps


def _intersect(gut, gaps, h):
    out = []
    for a0, a1 in gut:
        for b0, b1 in gaps:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi - lo >= 0.5 * GAP * h:
                out.append((lo, hi))
    return out


def _crosses(row, gut):
    return any(r[0] < g1 and r[2] > g0 for r, _ in row for g0, g1 in gut)


def order_lines(lines):
    """-> list of blocks; each block is a list of rows; each row a list of (rect, text).

    Rows (lines of the whole page grouped by vertical overlap) are collected top to bottom into groups
    that share at least one vertical gutter (x-gap >= 1.2 h present in every multi-piece row, crossed by
    no piece). A row that crosses the group's gutter (a title, a full-width paragraph) or a row with gaps
    after gutter-less rows starts a new group. A group whose gutters separate real text columns
    (_valid_columns) is read column by column; other groups (single column, tables) row by row."""
    lines = _deskew(lines)
    items = [(_rect(b), t) for b, t, *_ in lines if t and t.strip()]
    if not items:
        return []
    h = median(r[3] - r[1] for r, _ in items) or 1.0
    # vertical text (margin stamps, rotated labels): taller than 2.5 lines and taller than wide.
    # It would glue many rows together; it is read last, as its own block.
    vertical = [it for it in items if (it[0][3] - it[0][1]) > 2.5 * h and (it[0][3] - it[0][1]) > (it[0][2] - it[0][0])]
    if vertical:
        items = [it for it in items if not any(it is v for v in vertical)]
        if not items:
            return [[[v] for v in vertical]]
    bx0 = min(r[0] for r, _ in items)
    bx1 = max(r[2] for r, _ in items)
    rows = _rows(items, h)
    groups = []  # [rows, gutters or None]
    for row in rows:
        gaps = _row_gaps(row, h)
        if groups:
            g_rows, gut = groups[-1]
            if gut:
                if gaps:
                    new = _intersect(gut, gaps, h)
                    if new:
                        g_rows.append(row)
                        groups[-1][1] = new
                        continue
                elif not _crosses(row, gut):
                    g_rows.append(row)
                    continue
            elif not gaps:
                g_rows.append(row)
                continue
            elif len(g_rows) == 1 and len(row) >= 1 and not _crosses(g_rows[0], gaps):
                # a single narrow row (e.g. a column heading) just before a multi-column row
                g_rows.append(row)
                groups[-1][1] = gaps
                continue
        groups.append([[row], gaps or None])
    blocks = []
    for g_rows, gut in groups:
        its = [it for row in g_rows for it in row]
        gut = _valid_columns(gut, its, h, bx0, bx1) if gut and len(g_rows) >= 3 else []
        if not gut:
            blocks.append(g_rows)
            continue
        bounds = [(g0 + g1) / 2 for g0, g1 in gut] + [float("inf")]
        cols = [[] for _ in bounds]
        for it in its:
            cx = (it[0][0] + it[0][2]) / 2
            cols[next(i for i, b in enumerate(bounds) if cx < b)].append(it)
        blocks.extend(_rows(c, h) for c in cols if c)
    if vertical:
        blocks.append([[v] for v in sorted(vertical, key=lambda it: it[0][0])])
    return blocks


def lines_to_text(lines) -> str:
    blocks = order_lines(lines)
    if not blocks:
        return ""
    h = median(r[3] - r[1] for b in blocks for row in b for r, _ in row) or 1.0
    paras = []
    for block in blocks:
        cur, prev_bottom = [], None
        for row in block:
            top = min(r[1] for r, _ in row)
            if prev_bottom is not None and top - prev_bottom > 0.8 * h and cur:
                paras.append("\n".join(cur))
                cur = []
            cur.append(_join_row(row, h))
            prev_bottom = max(r[3] for r, _ in row)
        if cur:
            paras.append("\n".join(cur))
    return "\n\n".join(p for p in paras if p.strip())
