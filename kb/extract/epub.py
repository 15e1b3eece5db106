"""EPUB: the chapters in reading order (the package's spine), each parsed as HTML into heading sections.

An EPUB is a zip of XHTML files; META-INF/container.xml names the package document (.opf), whose spine lists
the chapters in order and whose metadata holds the title. zipfile and lxml (both already used by kb) read it;
no e-book library is needed. DRM-protected books (META-INF/encryption.xml) are reported, not read as garbage.
"""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path

from kb.document import Document, ExtractionError, Section
from kb.extract.common import collapse_inline, short_reason

__all__ = ["extract_epub"]

_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "opf": "http://www.idpf.org/2007/opf",
       "dc": "http://purl.org/dc/elements/1.1/"}
MAX_CHAPTER_BYTES = 50 * 1024 * 1024


def extract_epub(path: Path, password: str | None = None) -> Document:
    from lxml import etree

    from kb.extract.html import parse_html

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ExtractionError(f"broken EPUB: not a readable zip ({short_reason(e)})") from None
    with zf:
        names = set(zf.namelist())
        if "META-INF/encryption.xml" in names:
            raise ExtractionError("EPUB is DRM-protected (META-INF/encryption.xml): it cannot be read")
        try:
            container = etree.fromstring(zf.read("META-INF/container.xml"))
            opf_path = container.find(".//c:rootfile", _NS).get("full-path")
            opf = etree.fromstring(zf.read(opf_path))
        except (KeyError, AttributeError, etree.XMLSyntaxError) as e:
            raise ExtractionError(f"broken EPUB: no readable package document ({short_reason(e)})") from None
        base = posixpath.dirname(opf_path)
        manifest = {item.get("id"): item.get("href") for item in opf.iterfind(".//opf:manifest/opf:item", _NS)}
        title_el = opf.find(".//dc:title", _NS)
        title = collapse_inline(title_el.text or "") if title_el is not None else ""
        sections: list[Section] = []
        warnings: list[str] = []
        for ref in opf.iterfind(".//opf:spine/opf:itemref", _NS):
            href = manifest.get(ref.get("idref"))
            if not href:
                continue
            name = posixpath.normpath(posixpath.join(base, href.split("#")[0]))
            try:
                info = zf.getinfo(name)
                if info.file_size > MAX_CHAPTER_BYTES:
                    raise ExtractionError("chapter too large")
                chapter = parse_html(zf.read(info).decode("utf-8", errors="replace"), path)
            except ExtractionError as e:
                if "no visible text" not in str(e):
                    warnings.append(f"{href}: {e}")
                continue
            except (KeyError, zipfile.BadZipFile, OSError) as e:
                warnings.append(f"{href}: could not read ({short_reason(e)})")
                continue
            heading = chapter.title if chapter.title != path.stem else ""
            for s in chapter.sections:
                if heading and (not s.heading_path or s.heading_path[0] != heading):
                    s.heading_path = (heading, *s.heading_path)
                sections.append(s)
    if not sections:
        raise ExtractionError("no text in any chapter")
    return Document(path=path, format="epub", title=title or path.stem, sections=sections, warnings=warnings)
