"""Extraction layer: every format on small fixtures built at test time, and every failure as a one-line
ExtractionError."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kb.document import ExtractionError, UnsupportedFormat
from kb.extract import SUPPORTED_SUFFIXES, extract_file, is_candidate, is_supported
from kb.extract.encoding import decode_bytes
from kb.extract.garble import looks_garbled
from kb.extract.pdf import clean_page_text
from kb.extract.text import parse_markdown

# ---- fixtures ----------------------------------------------------------------------------------


def make_pdf(path: Path, pages: list[str], title: str | None = None, image_page: int | None = None) -> Path:
    """A PDF with one text block per page; `image_page` (1-based) gets only an image (a "scan")."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    if title:
        c.setTitle(title)
    for n, text in enumerate(pages, start=1):
        if n == image_page:
            from PIL import Image
            from reportlab.lib.utils import ImageReader

            img = Image.new("RGB", (200, 100), "white")
            c.drawImage(ImageReader(img), 50, 500, width=400, height=200)
        else:
            y = 800
            for line in text.split("\n"):
                c.drawString(50, y, line)
                y -= 14
        c.showPage()
    c.save()
    return path


def encrypt_pdf(src: Path, dst: Path, password: str) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(str(src)))
    writer.encrypt(user_password=password, owner_password="owner-" + password, algorithm="AES-256")
    with open(dst, "wb") as f:
        writer.write(f)
    return dst


def make_pptx(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
    s1.shapes.title.text = "Quarterly Review"
    s1.placeholders[1].text_frame.text = "Revenue grew strongly"
    s1.notes_slide.notes_text_frame.text = "Mention the new office"

    s2 = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    s2.shapes.title.text = "Numbers"
    table = s2.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([("Region", "Sales"), ("North", "120"), ("South", "80")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    group = s2.shapes.add_group_shape()
    box = group.shapes.add_textbox(Inches(1), Inches(5), Inches(3), Inches(1))
    box.text_frame.text = "Grouped remark"
    inner = group.shapes.add_group_shape()
    inner.shapes.add_textbox(Inches(5), Inches(5), Inches(3), Inches(1)).text_frame.text = "Nested deeper"

    prs.slides.add_slide(prs.slide_layouts[6])  # blank slide: no section, but counted
    prs.save(str(path))
    return path


def write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


# ---- registry, sniffing, generic failures ------------------------------------------------------


def test_registry_and_candidates():
    for s in (".pdf", ".pptx", ".docx", ".md", ".markdown", ".txt", ".rst", ".html"):
        assert s in SUPPORTED_SUFFIXES
        assert is_supported(Path("x" + s.upper()))
    assert is_candidate(Path("old.ppt")) and not is_supported(Path("old.ppt"))
    assert is_supported(Path("photo.JPG")) and is_supported(Path("scan.tiff"))  # read by OCR
    assert not is_candidate(Path("song.mp3"))


def test_import_is_light():
    code = ("import sys, kb.extract; heavy = [m for m in ('pypdf', 'pypdfium2', 'pptx', 'docx', 'lxml', "
            "'pdfminer', 'charset_normalizer', 'msoffcrypto', 'olefile', 'odfdo') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("suffix,needle", [(".ppt", "convert it to .pptx"), (".doc", "convert it to .docx"),
                                           (".xls", "(.xls) is not supported")])
def test_legacy_office_formats_get_a_hint(tmp_path, suffix, needle):
    f = write(tmp_path / f"old{suffix}", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(UnsupportedFormat) as e:
        extract_file(f)
    assert needle in one_line(e.value) and "libreoffice --headless" in str(e.value)


def test_unknown_suffix(tmp_path):
    with pytest.raises(UnsupportedFormat, match=r"unsupported file type \(\.xyz\); supported: .*\.pdf"):
        extract_file(write(tmp_path / "a.xyz", "hello"))
    with pytest.raises(UnsupportedFormat, match="no extension"):
        extract_file(write(tmp_path / "README", "hello"))


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.pdf", "empty.pptx", "empty.html"])
def test_empty_files(tmp_path, name):
    with pytest.raises(ExtractionError, match="^empty file$"):
        extract_file(write(tmp_path / name, b""))


@pytest.mark.parametrize("data", [b"\n\n\n", b"   \t \r\n ", "\ufeff  \n".encode("utf-8"),
                                  " \n".encode("utf-16")])
def test_whitespace_only_text(tmp_path, data):
    with pytest.raises(ExtractionError, match="^empty file$"):
        extract_file(write(tmp_path / "blank.txt", data))


def test_missing_file(tmp_path):
    with pytest.raises(ExtractionError, match="file not found"):
        extract_file(tmp_path / "nope.pdf")


def test_text_named_pdf(tmp_path):
    with pytest.raises(ExtractionError) as e:
        extract_file(write(tmp_path / "notes.pdf", "This is not a PDF at all\n"))
    assert one_line(e.value) == "not a PDF file (starts with 'This is not a PDF at all')"


def test_zip_named_pdf_and_pdf_named_pptx(tmp_path):
    pptx = make_pptx(tmp_path / "deck.pptx")
    fake = write(tmp_path / "deck.pdf", pptx.read_bytes())
    with pytest.raises(ExtractionError, match=r"not a PDF file \(looks like a ZIP archive\)"):
        extract_file(fake)
    pdf = make_pdf(tmp_path / "doc.pdf", ["hello"])
    with pytest.raises(ExtractionError, match=r"not a PowerPoint \.pptx file \(looks like a PDF file\)"):
        extract_file(write(tmp_path / "doc.pptx", pdf.read_bytes()))


def test_binary_named_txt(tmp_path):
    with pytest.raises(ExtractionError, match="not a text file"):
        extract_file(write(tmp_path / "x.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256))))
    with pytest.raises(ExtractionError, match="binary"):
        extract_file(write(tmp_path / "y.txt", bytes(range(256)) * 4))


# ---- PDF ---------------------------------------------------------------------------------------


def test_pdf_pages_title_and_sections(tmp_path):
    f = make_pdf(tmp_path / "a.pdf", ["Alpha page one\nsecond line", "Beta page two"], title="My Report")
    doc = extract_file(f)
    assert doc.format == "pdf" and doc.pages == 2 and doc.title == "My Report"
    assert [s.page for s in doc.sections] == [1, 2]
    assert "Alpha page one" in doc.sections[0].text and "Beta page two" in doc.sections[1].text
    assert doc.warnings == []


def test_pdf_title_falls_back_to_first_line(tmp_path):
    doc = extract_file(make_pdf(tmp_path / "b.pdf", ["Annual Summary 2024\nbody text here"]))
    assert doc.title == "Annual Summary 2024"


def test_pdf_scanned_page_warns(tmp_path):
    f = make_pdf(tmp_path / "mixed.pdf", ["Real text on page one", "", "Text on page three"], image_page=2)
    doc = extract_file(f, ocr="never")
    assert doc.pages == 3 and [s.page for s in doc.sections] == [1, 3]
    assert doc.warnings == ["page 2: no text layer (scanned?)"]
    doc = extract_file(f)  # ocr auto: the page is OCR'd, and the picture is blank
    assert [s.page for s in doc.sections] == [1, 3] and doc.ocr_pages == 0
    assert doc.warnings == ["page 2: no text layer, and OCR found no text"]


def test_pdf_fully_scanned_fails_with_reason(tmp_path):
    f = make_pdf(tmp_path / "scan.pdf", [""], image_page=1)
    with pytest.raises(ExtractionError) as e:
        extract_file(f, ocr="never")
    assert one_line(e.value).startswith("no text layer on any page (scanned?)")


def test_pdf_encrypted(tmp_path):
    plain = make_pdf(tmp_path / "plain.pdf", ["Top secret plans"])
    f = encrypt_pdf(plain, tmp_path / "locked.pdf", "s3cret")
    with pytest.raises(ExtractionError) as e:
        extract_file(f)
    assert one_line(e.value) == "encrypted: password required (use --password)"
    with pytest.raises(ExtractionError, match="^encrypted: wrong password$"):
        extract_file(f, password="nope")
    doc = extract_file(f, password="s3cret")
    assert "Top secret plans" in doc.sections[0].text


def test_pdf_empty_user_password_opens_without_one(tmp_path):
    plain = make_pdf(tmp_path / "plain.pdf", ["Readable by all"])
    doc = extract_file(encrypt_pdf(plain, tmp_path / "restricted.pdf", ""))
    assert "Readable by all" in doc.sections[0].text


def test_pdf_truncated_recovers_the_pages_before_the_cut(tmp_path):
    full = make_pdf(tmp_path / "full.pdf", [f"Page {n} says hello {n * 111}" for n in range(1, 7)]).read_bytes()
    import re

    # reportlab writes the page dictionaries and the page tree first, then one content stream per page: cut the
    # file where page 4's content starts (the cross-reference table and the trailer are gone with the rest)
    cut = [m.start() for m in re.finditer(rb"\d+ 0 obj\s*<<\s*/Filter", full)][3]
    doc = extract_file(write(tmp_path / "cut.pdf", full[:cut]))
    assert doc.warnings[0] == "damaged PDF (truncated): recovered 3 of 6 pages"
    assert [s.text for s in doc.sections] == [f"Page {n} says hello {n * 111}" for n in (1, 2, 3)]
    assert doc.path.name == "cut.pdf" and doc.pages == 6


def test_pdf_truncated(tmp_path):
    full = make_pdf(tmp_path / "full.pdf", ["Some text " * 20] * 5).read_bytes()
    f = write(tmp_path / "cut.pdf", full[: len(full) // 2])
    try:
        doc = extract_file(f)  # pdfium may recover some pages of a cut file; then it must have text
        assert doc.text_length > 0
    except ExtractionError as e:
        assert one_line(e).startswith("broken PDF")
    with pytest.raises(ExtractionError, match="^broken PDF"):
        extract_file(write(tmp_path / "head.pdf", full[:300]))


def test_pdf_invalid_body(tmp_path):
    with pytest.raises(ExtractionError, match="^broken PDF"):
        extract_file(write(tmp_path / "bad.pdf", b"%PDF-1.3\nThis is not a valid PDF file\n%%EOF\n"))


def test_pdf_garbled_page_uses_fallback(tmp_path, monkeypatch):
    """When pypdf's text for a page looks garbled, pdfium's reading of the same page is used."""
    import kb.extract.pdf as pdfmod

    f = make_pdf(tmp_path / "g.pdf", ["Clean first page", "Second page true text", "Third page"])
    calls = {"pypdf": 0}
    real = pdfmod._Pypdf.text

    def garbling(self, i):
        calls["pypdf"] += 1
        return "ሳ۬ሳݱ۬ሳ\u0a00༝ޡЇ ۻᢞ ࢺࡥ ൞၂۱Ⴈ ष֥ؿ ޡЇđ\u0df1ิ܂ਔ \ufffd\ufffd" if i == 1 else real(self, i)

    monkeypatch.setattr(pdfmod._Pypdf, "text", garbling)
    doc = extract_file(f)
    assert [s.text for s in doc.sections] == ["Clean first page", "Second page true text", "Third page"]
    assert calls["pypdf"] == 2  # after the fallback rescued page 2, page 3 is read with pdfium first
    assert doc.warnings == []


def test_looks_garbled():
    garbage = "hanzibox ğโሳ۬-\u0adcሳݱ۬ሳ\u0a00༝ޡЇ\nۻᢞ\nhanzibox ൞၂۱Ⴈ LATEX3 ष֥ؿ LATEX ޡЇđ\u0df1ิ܂ਔ"
    assert looks_garbled(garbage)
    assert looks_garbled("\ufffd\ufffd\ufffd abc \ufffd\ufffd")
    assert looks_garbled("\ue000\ue001\ue002\ue003 text text")
    assert looks_garbled("!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" * 3)
    assert not looks_garbled("hanzibox是一个用LATEX3开发的LATEX宏包，它提供了三个命令。")
    assert not looks_garbled("Dense Passage Retrieval for Open-Domain Question Answering, with α and β ∗†")
    assert not looks_garbled("적립 제외 대상 무이자할부, 다이어트할부, 삼성카드 할인이 적용된 일시불")
    assert not looks_garbled("日本語のテキストと English words, 漢字とかな。")
    assert not looks_garbled("Привет, мир! Hello world.")
    assert not looks_garbled("")


def test_clean_page_text():
    raw = ("A heading\nThis is a long line of running text that wraps around to the\nnext line and "
           "continues with infor-\nmation about things.\nShort end.\nA new paragraph starts here and "
           "it is also rather long text\nthat keeps going on.\n\ufb01rst ligature\n\n\n\nlast")
    out = clean_page_text(raw)
    assert "information" in out and "first ligature" in out
    assert "\n\n\n" not in out and "Short end.\n\nA new paragraph" in out
    assert clean_page_text("中文第一行很长很长很长很长很长很长很长很长很长很长很长\n继续这一行\n" * 4).count("\n") < 8


# ---- PPTX --------------------------------------------------------------------------------------


def test_pptx_slides_tables_groups_notes(tmp_path):
    doc = extract_file(make_pptx(tmp_path / "deck.pptx"))
    assert doc.format == "pptx" and doc.pages == 3 and doc.title == "Quarterly Review"
    assert [s.slide for s in doc.sections] == [1, 2]
    s1, s2 = doc.sections[0].text, doc.sections[1].text
    assert s1.startswith("Quarterly Review") and "Revenue grew strongly" in s1
    assert s1.rstrip().endswith("Notes: Mention the new office")
    assert "Region | Sales\nNorth | 120\nSouth | 80" in s2
    assert "Grouped remark" in s2 and "Nested deeper" in s2
    assert s2.index("Numbers") < s2.index("Region") < s2.index("Grouped remark")


def test_pptx_no_slides(tmp_path):
    from pptx import Presentation

    f = tmp_path / "empty-deck.pptx"
    Presentation().save(str(f))
    with pytest.raises(ExtractionError, match="^no slides$"):
        extract_file(f)


def test_pptx_truncated_and_not_zip(tmp_path):
    data = make_pptx(tmp_path / "deck.pptx").read_bytes()
    with pytest.raises(ExtractionError, match="^broken PPTX"):
        extract_file(write(tmp_path / "cut.pptx", data[:5000]))
    with pytest.raises(ExtractionError, match="^not a PowerPoint .pptx file"):
        extract_file(write(tmp_path / "text.pptx", "just some words"))


def test_pptx_ole_container_without_package(tmp_path):
    """A legacy .ppt renamed to .pptx is an OLE2 file without an encrypted package."""
    with pytest.raises(ExtractionError, match="OLE2|legacy"):
        extract_file(write(tmp_path / "old.pptx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 1000))


def standard_encrypt(package: bytes, password: str) -> bytes:
    """`package` under ECMA-376 Standard encryption (MS-OFFCRYPTO 2.3.4.5-2.3.4.9, what Office 2007
    writes: AES-128 in ECB mode, a SHA-1 key derived over 50,000 iterations), built here from the spec
    because msoffcrypto-tool only writes Agile encryption; its OLE2 container writer holds the streams."""
    import hashlib
    import io
    import os
    import struct

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from msoffcrypto.method.container.ecma376_encrypted import ECMA376Encrypted

    salt = os.urandom(16)
    h = hashlib.sha1(salt + password.encode("utf-16-le")).digest()
    for i in range(50000):
        h = hashlib.sha1(struct.pack("<I", i) + h).digest()
    h = hashlib.sha1(h + struct.pack("<I", 0)).digest().ljust(64, b"\0")  # block 0
    x1 = hashlib.sha1(bytes(b ^ 0x36 for b in h)).digest()
    x2 = hashlib.sha1(bytes(b ^ 0x5C for b in h)).digest()
    key = (x1 + x2)[:16]

    def aes(data: bytes) -> bytes:
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        return enc.update(data) + enc.finalize()

    verifier = os.urandom(16)
    flags = 0x24  # fCryptoAPI | fAES
    header = struct.pack("<8I", flags, 0, 0x660E, 0x8004, 128, 0x18, 0, 0)  # AES-128, SHA-1, PROV_RSA_AES
    header += "Microsoft Enhanced RSA and AES Cryptographic Provider\0".encode("utf-16-le")
    info = (struct.pack("<HHII", 3, 2, flags, len(header)) + header
            + struct.pack("<I", 16) + salt + aes(verifier)
            + struct.pack("<I", 20) + aes(hashlib.sha1(verifier).digest().ljust(32, b"\0")))
    encrypted = struct.pack("<Q", len(package)) + aes(package + bytes(-len(package) % 16))
    out = io.BytesIO()
    ECMA376Encrypted(encrypted, info).write_to(out)
    return out.getvalue()


def test_pptx_standard_encryption_opens_with_password(tmp_path):
    """Office 2007's Standard encryption (the hostile set's decks are Agile, tested there)."""
    f = write(tmp_path / "locked.pptx", standard_encrypt(make_pptx(tmp_path / "deck.pptx").read_bytes(), "s3cret"))
    assert f.read_bytes().startswith(b"\xd0\xcf\x11\xe0")
    with pytest.raises(ExtractionError) as e:
        extract_file(f)
    assert one_line(e.value) == "encrypted: password required (use --password)"
    with pytest.raises(ExtractionError, match="^encrypted: wrong password$"):
        extract_file(f, password="nope")
    doc = extract_file(f, password="s3cret")
    assert doc.pages == 3 and "Revenue grew strongly" in doc.sections[0].text


def test_docx_agile_encryption_opens_with_password(tmp_path):
    import io

    import docx
    from msoffcrypto.format.ooxml import OOXMLFile

    d = docx.Document()
    d.add_heading("Locked notes", level=1)
    d.add_paragraph("The vault code is 4711.")
    d.save(str(tmp_path / "plain.docx"))
    out = io.BytesIO()
    with open(tmp_path / "plain.docx", "rb") as plain:
        OOXMLFile(plain).encrypt("s3cret", out)
    f = write(tmp_path / "locked.docx", out.getvalue())
    with pytest.raises(ExtractionError, match=r"^encrypted: password required \(use --password\)$"):
        extract_file(f)
    with pytest.raises(ExtractionError, match="^encrypted: wrong password$"):
        extract_file(f, password="nope")
    assert "The vault code is 4711." in extract_file(f, password="s3cret").sections[0].text


def test_docx_renamed_pptx(tmp_path):
    import docx

    d = docx.Document()
    d.add_paragraph("hi")
    d.save(str(tmp_path / "w.docx"))
    with pytest.raises(ExtractionError, match="not a PowerPoint presentation"):
        extract_file(write(tmp_path / "w.pptx", (tmp_path / "w.docx").read_bytes()))


# ---- text and Markdown -------------------------------------------------------------------------

SAMPLE = "Hello wörld — ünïcode ✓\nsecond line 中文\n"


@pytest.mark.parametrize("data", [
    SAMPLE.encode("utf-8"),
    b"\xef\xbb\xbf" + SAMPLE.encode("utf-8"),
    SAMPLE.encode("utf-16"),  # with BOM
    SAMPLE.encode("utf-16-le"),
    SAMPLE.encode("utf-16-be"),
    SAMPLE.encode("utf-32"),  # with BOM
    SAMPLE.encode("utf-32-le"),
    SAMPLE.encode("utf-32-be"),
], ids=["utf8", "utf8-bom", "utf16-bom", "utf16le", "utf16be", "utf32-bom", "utf32le", "utf32be"])
def test_unicode_encodings(tmp_path, data):
    doc = extract_file(write(tmp_path / "t.txt", data))
    assert doc.format == "text" and doc.title == "t" and doc.pages is None
    assert doc.sections[0].text == SAMPLE.strip()


@pytest.mark.parametrize("text,encoding", [
    ("Le café est déjà prêt. À côté de la fenêtre, « voilà » — c’est l’été. Où est le garçon ?", "cp1252"),
    ("Die Größe der Straße überrascht. Können wir später über die Lösung sprechen? Äpfel und Öl.", "cp1252"),
    ("知识库是一种用于存储和检索信息的系统。本工具可以在本地运行，不需要网络连接。用户可以将文档添加到知识库中。", "gbk"),
    ("知識庫是一種用於儲存和檢索資訊的系統。本工具可以在本地執行，不需要網路連線。使用者可以將文件加入知識庫中。", "big5"),
    ("Привет, как дела? Это тестовый документ для проверки кодировки файла.", "cp1251"),
])
def test_legacy_encodings(tmp_path, text, encoding):
    doc = extract_file(write(tmp_path / "legacy.txt", text, encoding))
    assert doc.sections[0].text == text


def test_short_latin1_markdown(tmp_path):
    doc = extract_file(write(tmp_path / "umlauts.md", b"## k\xf6nnen\n\nk\xf6nnen\n\n\xe4\xf6\xfc\xdf\n"))
    assert doc.sections[0].heading_path == ("können",)
    assert "äöüß" in doc.sections[0].text


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_cjk_utf16_without_bom(tmp_path, encoding):
    text = "中文测试文本，这是一个没有字节顺序标记的文件。一二三"  # 一 is U+4E00: some NUL bytes
    assert extract_file(write(tmp_path / "zh.txt", text, encoding)).sections[0].text == text


def test_decode_bytes_reports_encoding():
    assert decode_bytes("abc".encode("utf-16-le"))[1] == "utf-16-le"
    assert decode_bytes(b"\xff\xfe\x00\x00a\x00\x00\x00")[1] == "utf-32-le"


MARKDOWN = """\
---
title: Front Matter Title
---
Intro paragraph before any heading.

# Install

Overview of installation.

## Linux

Use the package manager:

```bash
# this is a comment, not a heading
apt install kb
```

### Debian

Debian specifics.

## Windows
Windows steps.

~~~
# also not a heading
~~~

Setext Top
==========

Top text.

Setext Sub
----------

Sub text.

---

After a rule.
"""


def test_markdown_sections_and_heading_paths(tmp_path):
    doc = extract_file(write(tmp_path / "guide.md", MARKDOWN))
    assert doc.format == "markdown" and doc.title == "Install"
    paths = [s.heading_path for s in doc.sections]
    assert paths == [(), ("Install",), ("Install", "Linux"), ("Install", "Linux", "Debian"),
                     ("Install", "Windows"), ("Setext Top",), ("Setext Top", "Setext Sub")]
    linux = doc.sections[2].text
    assert "# this is a comment, not a heading" in linux and "apt install kb" in linux
    assert "# also not a heading" in doc.sections[4].text
    assert "After a rule." in doc.sections[6].text
    assert doc.sections[0].text == "Intro paragraph before any heading."


def test_markdown_title_fallbacks():
    assert parse_markdown("## Only h2\n\ntext")[0] is None
    assert parse_markdown("---\ntitle: 'FM'\n---\n## h2\n\ntext")[0] == "FM"
    title, sections = parse_markdown("# Heading only\n")
    assert title == "Heading only" and sections[0].text == "# Heading only"


def test_markdown_without_h1_uses_stem(tmp_path):
    doc = extract_file(write(tmp_path / "my-notes.md", "Just text\n\nMore text\n"))
    assert doc.title == "my-notes" and len(doc.sections) == 1


def test_plain_text_keeps_paragraphs(tmp_path):
    doc = extract_file(write(tmp_path / "p.txt", "Para one.\r\n\r\n\r\n\r\nPara two\x07.\r\n  indented\n"))
    assert doc.sections[0].text == "Para one.\n\nPara two.\n  indented"
    doc = extract_file(write(tmp_path / "log.txt", "line of a log file\n" * 20 + "\x00\x00end\n"))
    assert doc.sections[0].text.endswith("line of a log file\nend")


# ---- DOCX and HTML -----------------------------------------------------------------------------


def test_docx(tmp_path):
    import docx

    d = docx.Document()
    d.core_properties.title = ""
    d.add_heading("Handbook", level=0)  # Title style
    d.add_paragraph("Welcome text.")
    d.add_heading("Setup", level=1)
    d.add_paragraph("Setup intro.")
    d.add_heading("Linux", level=2)
    d.add_paragraph("Linux steps.")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text, t.cell(1, 0).text, t.cell(1, 1).text = "Key", "Value", "os", "linux"
    d.add_heading("Usage", level=1)
    d.add_paragraph("Usage text.")
    f = tmp_path / "hb.docx"
    d.save(str(f))
    doc = extract_file(f)
    assert doc.format == "docx" and doc.title == "Handbook"
    by_path = {s.heading_path: s.text for s in doc.sections}
    assert "Welcome text." in by_path[()]
    assert "Linux steps." in by_path[("Setup", "Linux")] and "Key | Value\nos | linux" in by_path[("Setup", "Linux")]
    assert "Usage text." in by_path[("Usage",)]


def test_html(tmp_path):
    html = """<!DOCTYPE html><html><head><meta charset="windows-1252"><title>Caf\xe9 Guide</title>
    <style>body { color: red }</style><script>var x = "hidden";</script></head><body>
    <p>Intro <b>bold</b> text.</p>
    <h1>Menu</h1><p>Coffee and tea.</p>
    <h2>Prices</h2><table><tr><th>Item</th><th>Price</th></tr><tr><td>Espresso</td><td>2</td></tr></table>
    <!-- a comment --><ul><li>one</li><li>two</li></ul>
    </body></html>"""
    f = write(tmp_path / "page.html", html.encode("cp1252"))
    doc = extract_file(f)
    assert doc.format == "html" and doc.title == "Café Guide"
    all_text = "\n".join(s.text for s in doc.sections)
    assert "hidden" not in all_text and "color: red" not in all_text and "comment" not in all_text
    assert [s.heading_path for s in doc.sections] == [(), ("Menu",), ("Menu", "Prices")]
    assert "Item | Price\nEspresso | 2" in doc.sections[2].text
    assert "Intro bold text." in doc.sections[0].text
