"""Recover the readable pages of a truncated PDF (a download or copy cut short).

A PDF's cross-reference table and trailer sit at its end, so a file cut anywhere loses them and no library opens
it (pypdf, pypdfium2 and pdfminer.six all fail on ../shared/eval/hostile/*_truncated50pct.pdf). The objects before
the cut are intact, though. This scans the bytes for `N G obj` headers (and the objects packed inside object
streams), keeps every complete object, and appends a new page tree holding the page objects that survived, a
catalog and a cross-reference stream; pypdfium2 then reads the rebuilt file like any other. Pages whose own
dictionary was cut off cannot be recovered (their content streams survive, but nothing says which fonts they use),
so a file whose page objects all sit after the cut still fails.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

__all__ = ["rebuild_truncated", "MAX_REPAIR_BYTES"]

MAX_REPAIR_BYTES = 512 * 1024 * 1024  # larger damaged files are reported, not scanned in memory
_OBJ = re.compile(rb"(?<![0-9A-Za-z])(\d{1,7})\s+(\d{1,5})\s+obj\b")
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


def _packed(head: bytes, body: bytes) -> list[tuple[int, int, bytes]]:
    """(object number, index, text) of the objects inside an object stream (/ObjStm, FlateDecode)."""
    try:
        raw = body.split(b"stream", 1)[1].lstrip(b"\r\n")
        data = zlib.decompressobj().decompress(raw)
        first = int(re.search(rb"/First\s+(\d+)", head).group(1))
        nums = [int(x) for x in data[:first].split()]
    except Exception:  # a cut or unusual stream: its objects stay unknown
        return []
    offsets = list(zip(nums[0::2], nums[1::2]))
    out = []
    for j, (num, off) in enumerate(offsets):
        end = first + offsets[j + 1][1] if j + 1 < len(offsets) else len(data)
        out.append((num, j, data[first + off:end]))
    return out


def rebuild_truncated(path: Path) -> tuple[bytes, int, int | None] | None:
    """The file with a new page tree and cross-reference stream appended, the number of page objects found, and
    the page count the document declared (None when that was cut off too); None when no page survived."""
    data = Path(path).read_bytes()
    starts = [(m.start(), int(m.group(1)), int(m.group(2))) for m in _OBJ.finditer(data)]
    entries: dict[int, tuple[int, int, int]] = {}  # number -> (1, offset, generation) | (2, stream number, index)
    pages: list[int] = []
    declared = None
    for k, (pos, num, gen) in enumerate(starts):
        body = data[pos:starts[k + 1][0] if k + 1 < len(starts) else len(data)]
        if b"endobj" not in body:
            continue  # the object the cut went through
        head = body.split(b"stream", 1)[0]
        entries[num] = (1, pos, gen)
        members = _packed(head, body) if b"/ObjStm" in head else [(num, -1, head)]
        for onum, index, text in members:
            if index >= 0:
                entries.setdefault(onum, (2, num, index))
            if _PAGE.search(text[:4000]):
                pages.append(onum)
            m = _COUNT.search(text[:4000])
            if m and declared is None:
                declared = int(m.group(1) or m.group(2))
    pages = [p for p in dict.fromkeys(pages) if p in entries]
    if not pages:
        return None
    top = max(entries)
    catalog, tree, xref = top + 1, top + 2, top + 3
    out = bytearray(data)
    out += b"\n"
    entries[catalog] = (1, len(out), 0)
    out += b"%d 0 obj\n<< /Type /Catalog /Pages %d 0 R >>\nendobj\n" % (catalog, tree)
    entries[tree] = (1, len(out), 0)
    kids = b" ".join(b"%d 0 R" % p for p in pages)
    out += b"%d 0 obj\n<< /Type /Pages /Kids [%s] /Count %d >>\nendobj\n" % (tree, kids, len(pages))
    entries[xref] = (1, len(out), 0)
    rows = b"".join(struct.pack(">BIH", *entries.get(i, (0, 0, 0))) for i in range(xref + 1))
    start = len(out)
    out += b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root %d 0 R /Length %d >>\nstream\n" % (
        xref, xref + 1, catalog, len(rows))
    out += rows + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % start
    return bytes(out), len(pages), declared
