"""Generators of files that attack a reader: built small on disk, seeded, no third-party writer needed.

Used by tests/test_hostile.py, tests/test_fuzz.py and bench/extract_budget.py.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path


def pdf_from_objects(objects: list[bytes], root: int = 1, info: int | None = None) -> bytes:
    """A well-formed PDF (header, numbered objects, xref, trailer) from the bodies of objects 1..n."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    trailer = b"/Size %d /Root %d 0 R" % (len(objects) + 1, root)
    if info:
        trailer += b" /Info %d 0 R" % info
    out.write(b"trailer\n<<" + trailer + b">>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def text_pdf(pages: int, lines: int = 40, seed: int = 0) -> bytes:
    """A `pages`-page PDF of plain English text (Helvetica, `lines` lines a page), Flate-compressed."""
    import random

    rnd = random.Random(seed)
    words = ("valve pressure sensor firmware calibrate manual check replace filter pump motor error code "
             "reset cycle clean inspect operator service schedule warning temperature flow").split()
    n_pages = pages
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", _FONT]
    kids = []
    for p in range(n_pages):
        body = [b"BT /F1 10 Tf 50 780 Td 12 TL"]
        for _ in range(lines):
            line = " ".join(rnd.choice(words) for _ in range(12)) + "."
            body.append(b"(" + line.encode() + b") '")
        body.append(b"ET")
        content = zlib.compress(b"\n".join(body))
        objects.append(_stream(content, b"/Filter /FlateDecode "))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
                       b" /Contents %d 0 R >>" % len(objects))
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Count %d /Kids [%s] >>" % (n_pages, b" ".join(b"%d 0 R" % k for k in kids))
    return pdf_from_objects(objects)


def inflate_bomb_pdf(inflated: int = 1 << 30) -> bytes:
    """One page whose content stream is `inflated` bytes of spaces Flate-compressed (~1000:1 on disk)."""
    comp = zlib.compressobj(9)
    block = b" " * (16 << 20)
    parts = []
    left = inflated
    while left > 0:
        parts.append(comp.compress(block[:min(left, len(block))]))
        left -= len(block)
    parts.append(comp.flush())
    data = b"".join(parts)
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >>"
        b" /Contents 4 0 R >>",
        _stream(data, b"/Filter /FlateDecode "),
        _FONT,
    ])


def page_tree_cycle_pdf() -> bytes:
    """A page tree whose intermediate node lists its own parent as a kid (2 -> 3 -> 2 -> ...)."""
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 2 /Kids [3 0 R] >>",
        b"<< /Type /Pages /Parent 2 0 R /Count 2 /Kids [2 0 R 4 0 R] >>",
        b"<< /Type /Page /Parent 3 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
        b" /Resources << /Font << /F1 6 0 R >> >> >>",
        _stream(b"BT /F1 12 Tf 72 700 Td (cycle page text) Tj ET"),
        _FONT,
    ])


def deep_nesting_pdf(depth: int = 200_000) -> bytes:
    """Arrays nested `depth` deep, in the document info (read for the title) and in a page's resources."""
    nested = b"[" * depth + b"]" * depth
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 6 0 R >> /X 5 0 R >> >>",
        _stream(b"BT /F1 12 Tf 72 700 Td (deep) Tj ET"),
        nested,
        _FONT,
        b"<< /Title " + nested + b" >>",
    ], info=7)


def _replace_member(source: Path, name: str, writer) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename == name:
                writer(zout, item)
            else:
                zout.writestr(item, zin.read(item.filename))
    return out.getvalue()


def xml_bomb_pptx(deck: Path, inflated: int = 1 << 30) -> bytes:
    """`deck` with ppt/slides/slide1.xml replaced by a part that inflates to `inflated` bytes (whitespace
    inside the root element, written in streamed blocks so building it stays small)."""
    def write(zout: zipfile.ZipFile, item: zipfile.ZipInfo) -> None:
        info = zipfile.ZipInfo(item.filename, item.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zout.open(info, "w", force_zip64=True) as f:
            f.write(b'<?xml version="1.0"?><p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">')
            block = b" " * (16 << 20)
            left = inflated
            while left > 0:
                f.write(block[:min(left, len(block))])
                left -= len(block)
            f.write(b"</p:sld>")
    return _replace_member(deck, "ppt/slides/slide1.xml", write)


def laughs_pptx(deck: Path) -> bytes:
    """`deck` with slide1.xml replaced by the "billion laughs" entity expansion."""
    lol = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)]
    xml = ('<?xml version="1.0"?><!DOCTYPE p:sld [' + "".join(lol) + ']>'
           '<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">&lol9;</p:sld>').encode()
    return _replace_member(deck, "ppt/slides/slide1.xml", lambda z, item: z.writestr(item, xml))
