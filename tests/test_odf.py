"""OpenDocument text and presentations (kb/extract/odf.py): files written with odfdo, read back through extract_file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from conftest import run_kb as kb
from kb.extract import ExtractionError, UnsupportedFormat, extract_file, is_supported


def _odt(path: Path, title: str | None = "Pump manual") -> Path:
    from odfdo import Document, Header, List, Paragraph, Table

    doc = Document("text")
    doc.body.clear()
    if title:
        doc.meta.title = title
    body = doc.body
    body.append(Paragraph("Read this first."))
    body.append(Header(1, "Installation"))
    body.append(Paragraph("Leave 22 cm behind the pump."))
    body.append(Header(2, "Linux 安装"))
    body.append(Paragraph("在 Linux 上安装泵的驱动程序。"))
    body.append(List(["first item", "second item"]))
    table = Table("T1", width=3, height=3)
    table.set_values([["label", "1", "2"], ["other", "3", "4"], ["Total", "", "7"]])
    table.set_span("A3:B3")  # "Total" spans two columns: written once
    body.append(table)
    body.append(Header(2, "Empty heading"))
    body.append(Header(1, "Maintenance"))
    body.append(Paragraph("Replace the filter every 400 hours."))
    doc.save(path)
    return path


def _odp(path: Path) -> Path:
    from odfdo import Document, DrawPage, Frame, Table
    from odfdo.presentation_notes import PresentationNotes

    doc = Document("presentation")
    doc.body.clear()
    slides = [("Welcome", ["Pump QF-300 overview"], "Greet the audience"),
              ("Specifications", ["Maximum pressure: 7 bar", "供电电压：220 伏"], "The valve opens at 3 bar")]
    for n, (title, lines, note) in enumerate(slides, start=1):
        page = DrawPage(f"p{n}", name=f"page{n}")
        # z-order is not reading order: the lower box comes first in the file, the title last
        for i, line in reversed(list(enumerate(lines))):
            page.append(Frame.text_frame(line, position=("2cm", f"{5 + 3 * i}cm"), size=("20cm", "2cm")))
        page.append(Frame.text_frame(str(n), position=("24cm", "18cm"), size=("2cm", "1cm"),
                                     presentation_class="page-number"))
        page.append(Frame.text_frame(title, position=("2cm", "1cm"), size=("20cm", "3cm"),
                                     presentation_class="title"))
        if n == 2:
            table = Table("T", width=3, height=2)
            table.set_values([["label", "1", "2"], ["flow", "30", "40"]])
            page.append(Frame.table_frame(table, position=("2cm", "12cm"), size=("20cm", "4cm")))
        notes = PresentationNotes()
        notes.append(Frame.text_frame(note, presentation_class="notes", size=("16cm", "10cm")))
        page.append(notes)
        doc.body.append(page)
    doc.save(path)
    return path


def test_odt_sections_headings_lists_tables(tmp_path):
    doc = extract_file(_odt(tmp_path / "manual.odt"))
    assert doc.format == "odt" and doc.title == "Pump manual" and doc.pages is None
    assert [s.heading_path for s in doc.sections] == [(), ("Installation",), ("Installation", "Linux 安装"),
                                                      ("Maintenance",)]  # the empty heading is skipped
    assert doc.sections[1].text == "Installation\n\nLeave 22 cm behind the pump."
    lines = doc.sections[2].text.split("\n")
    assert "在 Linux 上安装泵的驱动程序。" in lines
    assert lines[lines.index("first item") + 1] == "second item"  # list items one a line
    assert [ln for ln in lines if "|" in ln] == ["label | 1 | 2", "other | 3 | 4", "Total | 7"]


def test_odt_title_falls_back_to_first_heading(tmp_path):
    assert extract_file(_odt(tmp_path / "notitle.odt", title=None)).title == "Installation"


def test_odp_slides_notes_tables(tmp_path):
    doc = extract_file(_odp(tmp_path / "deck.odp"))
    assert doc.format == "odp" and doc.pages == 2 and doc.title == "Welcome"
    assert [s.slide for s in doc.sections] == [1, 2] and all(s.page is None for s in doc.sections)
    assert doc.sections[0].text == "Welcome\n\nPump QF-300 overview\n\nNotes: Greet the audience"
    assert doc.sections[1].text.split("\n\n") == [
        "Specifications", "Maximum pressure: 7 bar", "供电电压：220 伏", "label | 1 | 2\nflow | 30 | 40",
        "Notes: The valve opens at 3 bar"]  # title first, reading order, no slide number


def _rewrite(src: Path, dst: Path, part: str, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, edit(data) if name == part else data)
    return dst


def test_password_protected_and_broken_files(tmp_path):
    good = _odt(tmp_path / "good.odt")
    enc = _rewrite(good, tmp_path / "locked.odt", "META-INF/manifest.xml", lambda b: b.replace(
        b'manifest:full-path="content.xml" manifest:media-type="text/xml"/>',
        b'manifest:full-path="content.xml" manifest:media-type="text/xml"><manifest:encryption-data '
        b'manifest:checksum-type="SHA1/1K" manifest:checksum="x"/></manifest:file-entry>'))
    reasons = {}
    for name, data in [("cut.odt", good.read_bytes()[: good.stat().st_size // 2]), ("text.odp", b"just text\n")]:
        (tmp_path / name).write_bytes(data)
    (tmp_path / "deck_named.odt").write_bytes(_odp(tmp_path / "deck.odp").read_bytes())
    for f in (enc, tmp_path / "cut.odt", tmp_path / "text.odp", tmp_path / "deck_named.odt"):
        with pytest.raises(ExtractionError) as e:
            extract_file(f)
        reasons[f.name] = str(e.value)
        assert "\n" not in reasons[f.name]
    assert reasons == {
        "locked.odt": "encrypted: password-protected OpenDocument files are not supported; save a copy without a "
                      "password",
        "cut.odt": "broken ODT: not a readable zip package (truncated or damaged?)",
        "text.odp": "not an OpenDocument file (starts with 'just text')",
        "deck_named.odt": "not an OpenDocument text file (the package holds a presentation document; rename it to "
                          ".odp)"}


def test_external_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    dtd = f'<!DOCTYPE office:document-content [<!ENTITY x SYSTEM "file://{secret}">]>'.encode()
    f = _rewrite(_odt(tmp_path / "a.odt"), tmp_path / "xxe.odt", "content.xml", lambda b: b.replace(
        b"?>", b"?>" + dtd, 1).replace(b"Leave 22 cm", b"&x; Leave 22 cm"))
    with pytest.raises(ExtractionError, match=r"^broken ODT: .*Entity 'x' not defined"):
        extract_file(f)


def test_ods_keeps_its_hint(tmp_path):
    assert is_supported(Path("a.odt")) and is_supported(Path("a.odp")) and not is_supported(Path("a.ods"))
    with pytest.raises(UnsupportedFormat, match=r"\(\.ods\) is not supported; convert it to \.pdf"):
        extract_file(tmp_path / "sheet.ods")


def test_cli_finds_a_fact_on_its_slide(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    _odp(docs / "deck.odp")
    _odt(docs / "manual.odt")
    r = kb("--kb", str(tmp_path / "kb"), "ingest", str(docs), "--json", "--embedding-model", "minilm")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["failed"] == []
    r = kb("--kb", str(tmp_path / "kb"), "search", "At what pressure does the valve open?", "--json", "-k", "1")
    assert r.returncode == 0, r.stderr
    hit = json.loads(r.stdout)["results"][0]
    assert hit["path"].endswith("deck.odp") and hit["slide"] == 2 and "3 bar" in hit["text"]
    listed = {Path(d["path"]).name: d for d in json.loads(kb("--kb", str(tmp_path / "kb"), "list", "--json").stdout)}
    assert listed["deck.odp"]["slides"] == 2 and listed["manual.odt"]["format"] == "odt"
