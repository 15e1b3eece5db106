"""PDF: one Section per page, pypdf first, pypdfium2 as the fallback.

Pipeline per page: pypdf's text; if it is empty, fails, or `looks_garbled` (CID fonts without a
usable ToUnicode map come out as U+FFFD, unassigned code points or a scatter of unrelated scripts),
the same page is read with pypdfium2 and the less garbled text wins. Once the fallback has rescued a
garbled page, it is asked first for the rest of the document (the broken font is usually used
throughout), which keeps a garbled CJK document from paying for both extractors on every page.
Files pypdf cannot open at all are retried whole with pypdfium2, then with pdfminer.six (only when
the file still ends with `%%EOF`: on truncated files pdfminer fails too, after seconds of work).

Why pypdfium2 and not pdfminer.six as the fallback, measured on ../shared/eval/hostile (whole
documents, one CPU core; "garbled" = pages `looks_garbled` flags, Han = CJK ideographs found):

    extractor      hanzibox.pdf (43 p.)            ctex-faq.pdf (41 p.)     embedded-cmap-cidfont.pdf
    pypdf          2.9 s, 36 garbled, 0 Han        1.5 s, 18737 Han         3 of 3 lines
    pypdfium2      0.18 s, 0 garbled, 5422 Han     0.08 s, 18737 Han        3 of 3 lines
    pdfminer.six   6.3 s, 0 garbled, 5422 Han      2.5 s, 18737 Han         1 of 3 lines

pypdfium2 is correct on every hostile file pdfminer reads (except `unreadablemetadata.pdf`, which
only pdfminer opens) and 18-35x faster. pypdf stays the primary extractor: it is pure Python, and
its output keeps superscripts and footnote marks on their line where pdfium breaks lines around
them (pdfium would be ~18x faster as the primary; a possible later trade).

Text clean-up: ligatures (ﬁ, ﬂ, ...) expanded, words hyphenated at a line end joined when both
halves are lower-case, whitespace collapsed, wrapped lines of Chinese/Japanese text joined (a line
break inside a sentence would split words for the tokenizer; Korean uses spaces and is left alone),
and a blank line inserted after short lines that end a sentence or look like headings, so the
chunker sees paragraph breaks; PDF text has no explicit paragraphs.
"""

from __future__ import annotations

import re
from pathlib import Path

from kb.document import Document, ExtractionError, Section
from kb.extract.common import quiet_logger, short_reason, strip_controls
from kb.extract.garble import garble_score, looks_garbled

__all__ = ["extract_pdf", "clean_page_text"]


class _OpenFailed(Exception):
    """This library could not open the file; another one may."""


# ---- text clean-up -----------------------------------------------------------------------------

_LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})
_HYPHEN_BREAK_RE = re.compile(r"([^\W\d_])[-\u2010\u00ad][ \t]*\n[ \t]*([^\W\d_])")
_SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_TERMINAL = tuple(".!?:;。！？：；…\"”’)」』】")
_HAN_KANA_RE = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_CJK_RE = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def _dehyphenate(m: re.Match) -> str:
    a, b = m.group(1), m.group(2)
    return a + b if a.islower() and b.islower() else m.group(0)


def _width(line: str) -> int:
    return len(line) + len(_CJK_RE.findall(line))  # CJK glyphs are twice as wide


def clean_page_text(text: str) -> str:
    """Readable page text with paragraph breaks the chunker can split on."""
    text = text.replace("\r\n", "\n").replace("\ufffe", "-\n").replace("\x02", "-\n")  # pdfium's hyphen marks
    text = strip_controls(text.translate(_LIGATURES))
    text = _HYPHEN_BREAK_RE.sub(_dehyphenate, text)
    lines = [_SPACES_RE.sub(" ", line).strip() for line in text.split("\n")]

    filled = [ln for ln in lines if ln]
    typical = sorted(map(_width, filled))[int(len(filled) * 0.9)] if len(filled) >= 6 else 0
    out: list[str] = []
    for i, line in enumerate(lines):
        if not line:
            if out and out[-1]:
                out.append("")
            continue
        prev = out[-1] if out else ""
        if prev and typical >= 20 and _HAN_KANA_RE.match(line[0]) and _HAN_KANA_RE.match(prev[-1]) \
                and _width(lines[i - 1]) >= 0.8 * typical and not prev.endswith(_TERMINAL):
            out[-1] = prev + line  # a wrapped Chinese/Japanese line: no space between
        else:
            out.append(line)
        nxt = next((ln for ln in lines[i + 1:i + 2] if ln), "")
        if typical >= 20 and nxt:
            w = _width(line)
            ends_sentence = line.endswith(_TERMINAL) and w < 0.75 * typical
            heading_like = w < 0.5 * typical and sum(c.isalpha() for c in line) >= 2 \
                and not line.endswith((",", "-", "–", "(", "/")) and not line[-1].isdigit() \
                and (nxt[0].isupper() or nxt[0].isdigit())
            if ends_sentence or heading_like:
                out.append("")
    return "\n".join(out).strip()


# ---- page sources ------------------------------------------------------------------------------

class _Pypdf:
    name = "pypdf"

    def __init__(self, reader):
        self.reader = reader

    def text(self, i: int) -> str:
        return self.reader.pages[i].extract_text() or ""

    def has_images(self, i: int) -> bool:
        try:
            return len(self.reader.pages[i].images) > 0
        except Exception:
            return False

    def close(self) -> None:
        pass


class _Pdfium:
    name = "pdfium"

    def __init__(self, path: Path, password: str | None, fallback: bool = False):
        self.path, self.password, self.fallback = path, password, fallback
        self._doc = None
        self._failed: str | None = None

    @property
    def doc(self):
        """Opened on first use: most documents never need the fallback."""
        if self._doc is None:
            if self._failed:
                raise _OpenFailed(self._failed)
            try:
                self._doc = _open_pdfium(self.path, self.password)
            except ExtractionError as e:
                if not self.fallback:
                    raise
                # As a fallback, pdfium refusing the file (e.g. an empty owner password, which pypdf
                # accepts and pdfium does not) only means the pages keep pypdf's text.
                self._failed = f"pdfium: {e}"
                raise _OpenFailed(self._failed) from None
            except _OpenFailed as e:
                self._failed = str(e)
                raise
        return self._doc

    def __len__(self) -> int:
        return len(self.doc)

    def text(self, i: int) -> str:
        page = self.doc[i]
        try:
            textpage = page.get_textpage()
            try:
                return textpage.get_text_range()
            finally:
                textpage.close()
        finally:
            page.close()

    def has_images(self, i: int) -> bool:
        try:
            from pypdfium2 import raw

            page = self.doc[i]
            try:
                return any(True for _ in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=3))
            finally:
                page.close()
        except Exception:
            return False

    def title(self) -> str | None:
        try:
            return self.doc.get_metadata_dict().get("Title")
        except Exception:
            return None

    def close(self) -> None:
        if self._doc is not None:
            try:
                self._doc.close()
            except Exception:
                pass
            self._doc = None


def _open_pdfium(path: Path, password: str | None):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path), password=password or None)
    except pdfium.PdfiumError as e:
        if getattr(e, "err_code", None) == 4 or "password" in str(e).lower():
            raise ExtractionError("encrypted: wrong password" if password
                                  else "encrypted: password required (use --password)") from None
        m = re.search(r"\(PDFium: ([^)]*)\)", str(e))
        raise _OpenFailed(f"pdfium: {m.group(1).lower()}" if m else short_reason(e)) from None


def _open_pypdf(path: Path, password: str | None):
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(str(path), strict=False)
        encrypted = reader.is_encrypted
    except Exception as e:
        raise _OpenFailed(short_reason(e)) from None
    used_password = None
    if encrypted:
        try:
            ok = reader.decrypt("")
            if not ok and password:
                ok, used_password = reader.decrypt(password), password
        except DependencyError:
            raise ExtractionError("encrypted: AES decryption needs the 'cryptography' package") from None
        except Exception as e:  # unsupported algorithm etc.: pdfium may manage
            raise _OpenFailed(f"encryption not supported by pypdf ({short_reason(e)})") from None
        if not ok:
            raise ExtractionError("encrypted: wrong password" if password
                                  else "encrypted: password required (use --password)")
    try:
        n_pages = len(reader.pages)
    except Exception as e:
        raise _OpenFailed(short_reason(e)) from None
    return reader, n_pages, used_password


# ---- the extractor -----------------------------------------------------------------------------

def extract_pdf(path: Path, password: str | None = None, ocr: str = "never") -> Document:
    """A PDF's pages as sections; `ocr` ("auto", "always", "never") says which pages are OCR'd (kb.extract.scan)."""
    quiet_logger("pypdf")
    quiet_logger("pdfminer")
    reasons: list[str] = []
    try:
        reader, n_pages, used_password = _open_pypdf(path, password)
    except _OpenFailed as e:
        reasons.append(str(e))
    else:
        primary = _Pypdf(reader)
        fallback = _Pdfium(path, used_password or password, fallback=True)
        try:
            title = _pypdf_title(reader)
            return _build(path, n_pages, [primary, fallback], title, ocr)
        finally:
            fallback.close()

    pdfium = _Pdfium(path, password)
    try:
        n_pages = len(pdfium)
    except _OpenFailed as e:
        reasons.append(str(e))
    else:
        try:
            return _build(path, n_pages, [pdfium], pdfium.title(), ocr)
        finally:
            pdfium.close()

    if _ends_with_eof_marker(path):
        try:
            return _extract_pdfminer(path, password)
        except _OpenFailed as e:
            reasons.append(str(e))
    else:
        return _recover_truncated(path, password, ocr, reasons[0])
    raise ExtractionError(f"broken PDF: {reasons[0]}")


def _recover_truncated(path: Path, password: str | None, ocr: str, reason: str) -> Document:
    """The pages of a cut-short PDF that survived (kb.extract.repair), with a "recovered N of M pages" warning."""
    import shutil
    import tempfile

    from kb.extract.repair import MAX_REPAIR_BYTES, rebuild_truncated

    failure = f"broken PDF: file looks truncated (no %%EOF at the end; {reason})"
    rebuilt = rebuild_truncated(path) if path.stat().st_size <= MAX_REPAIR_BYTES else None
    if rebuilt is None:
        raise ExtractionError(failure + "; no page could be recovered")
    data, found, declared = rebuilt
    tmp = Path(tempfile.mkdtemp(prefix="kb-repair-"))
    try:
        fixed = tmp / path.name
        fixed.write_bytes(data)
        pdfium = _Pdfium(fixed, password)
        try:
            doc = _build(fixed, len(pdfium), [pdfium], pdfium.title(), ocr)
        except (_OpenFailed, ExtractionError) as e:
            raise ExtractionError(f"{failure}; recovery failed ({e})") from None
        finally:
            pdfium.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc.path = path
    read = len({s.page for s in doc.sections})
    # a page count read from a damaged page tree can be a sub-tree's (a truncated ctex-faq.pdf "declared" 2 and
    # gave 41 pages): only a count at least as large as what was read is stated
    stated = declared and declared >= read
    doc.warnings.insert(0, f"damaged PDF (truncated): recovered {read} of {declared} pages" if stated else
                        f"damaged PDF (truncated): recovered {read} pages; the rest of the file, with its page "
                        "count, is missing")
    return doc


def _build(path: Path, n_pages: int, sources: list, title: str | None, ocr: str = "never") -> Document:
    """Run the page loop over one or two sources (primary first, fallback on demand), OCR where `ocr` says."""
    sections: list[Section] = []
    warnings: list[str] = []
    order = list(range(len(sources)))
    scanned = ocr_pages = 0
    pdfium = next((s for s in sources if isinstance(s, _Pdfium)), None)
    for i in range(n_pages):
        page_no = i + 1
        tried: list[tuple[float, int, str]] = []  # (garble score, source index, cleaned text)
        errors: list[str] = []
        for idx in order:
            raw = _safe_text(sources[idx], i, errors)
            if raw is not None and raw.strip():
                garbled = looks_garbled(raw)
                tried.append((garble_score(raw) if garbled else 0.0, idx, clean_page_text(raw)))
                if not garbled:
                    break
        best = min(tried, key=lambda t: (t[0], order.index(t[1]))) if tried else (0.0, order[0], "")
        if pdfium is not None and ocr != "never":
            done = _ocr_page(pdfium, i, ocr, best[2], best[0] > 0, warnings)
            if done is not None:
                if done:
                    sections.append(Section(done, page=page_no, ocr=True))
                    ocr_pages += 1
                continue
        if not tried or not any(t for _, _, t in tried):
            if any(src.has_images(i) for src in sources[:1]):
                warnings.append(f"page {page_no}: no text layer (scanned?)")
                scanned += 1
            elif errors:
                warnings.append(f"page {page_no}: could not extract text ({errors[0]})")
            continue
        score, idx, text = best
        if pdfium is not None and score == 0 and text:
            text = _with_tables(pdfium, i, text)
        if idx != order[0] and len(tried) > 1 and tried[0][0] > 0:
            order = [idx] + [j for j in order if j != idx]  # the fallback rescued a garbled page: lead with it
        if score > 0:
            warnings.append(f"page {page_no}: text looks garbled (font without a Unicode map?)")
        if text:
            sections.append(Section(text, page=page_no))

    if not sections:
        if n_pages == 0:
            raise ExtractionError("PDF has no pages")
        if scanned:
            hint = "; OCR is off (--ocr never): use --ocr auto" if ocr == "never" else ""
            raise ExtractionError("no text layer on any page (scanned?)" + hint)
        if warnings:
            raise ExtractionError(f"no text extracted: {warnings[0]}")
        raise ExtractionError("no text on any page")
    return Document(path=path, format="pdf", title=_choose_title(title, sections, path), sections=sections,
                    pages=n_pages, warnings=warnings, ocr_pages=ocr_pages)


def _with_tables(pdfium: "_Pdfium", i: int, text: str) -> str:
    """Page i's text rebuilt with its tables as rows (kb.extract.tables) when it has one, else `text`."""
    from kb.extract.tables import page_text_with_tables

    try:
        page = pdfium.doc[i]
    except Exception:
        return text
    try:
        return page_text_with_tables(page, clean_page_text) or text
    except Exception:  # the table finder failing on an odd page keeps the page's plain text
        return text
    finally:
        page.close()


def _ocr_page(pdfium: "_Pdfium", i: int, ocr: str, text: str, garbled: bool, warnings: list[str]) -> str | None:
    """Page i's OCR text if `ocr` says to read it ("" when OCR found nothing), None to keep the text layer."""
    from kb.extract.scan import ocr_page, ocr_reason

    try:
        page = pdfium.doc[i]
    except Exception:  # pdfium cannot open the file or the page: keep what the text layer gave
        return None
    try:
        reason = "always" if ocr == "always" else ocr_reason(page, text, garbled)
        if reason is None:
            return None
        found = ocr_page(page).strip()
    except Exception as e:  # a page OCR cannot read keeps its text layer
        warnings.append(f"page {i + 1}: OCR failed ({type(e).__name__}: {short_reason(e)})")
        return None
    finally:
        page.close()
    if not found and not text.strip():
        warnings.append(f"page {i + 1}: no text layer, and OCR found no text")
    return found if found or not text.strip() else None


def _safe_text(source, i: int, errors: list[str]) -> str | None:
    try:
        return source.text(i)
    except ExtractionError:
        raise
    except _OpenFailed as e:
        errors.append(str(e))
    except RecursionError:
        errors.append(f"{source.name}: structure nested too deeply")
    except Exception as e:  # one bad page must not lose the others
        errors.append(f"{source.name}: {short_reason(e)}")
    return None


def _pypdf_title(reader) -> str | None:
    try:
        meta = reader.metadata
        return meta.title if meta else None
    except Exception:
        return None


_JUNK_TITLE_RE = re.compile(
    r"^(untitled|title|document\d*|slide \d+|microsoft word - .*|.*\.(dvi|docx?|tex|pdf|pptx?|indd|qxd))$",
    re.IGNORECASE)


def _choose_title(meta_title: str | None, sections: list[Section], path: Path) -> str:
    """Metadata title unless it is empty or a tool's placeholder, else the first line of text."""
    if isinstance(meta_title, str):
        t = " ".join(strip_controls(meta_title).split())
        if t and not _JUNK_TITLE_RE.match(t) and not looks_garbled(t):
            return t
    for line in sections[0].text.split("\n")[:5]:
        line = line.strip()
        if len(line) >= 3 and sum(c.isalpha() for c in line) >= 3:
            return line[:120]
    return path.stem


def _ends_with_eof_marker(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 2048))
            return b"%%EOF" in f.read()
    except OSError:
        return False


def _extract_pdfminer(path: Path, password: str | None) -> Document:
    """Last resort for files with a damaged page tree that pdfminer's object scan can still read."""
    try:
        from pdfminer.high_level import extract_pages
        from pdfminer.layout import LTTextContainer
        from pdfminer.pdfdocument import PDFPasswordIncorrect
    except ImportError as e:
        raise _OpenFailed(short_reason(e)) from None
    texts: list[str] = []
    try:
        for page in extract_pages(str(path), password=password or ""):
            texts.append("".join(el.get_text() for el in page if isinstance(el, LTTextContainer)))
    except PDFPasswordIncorrect:
        raise ExtractionError("encrypted: wrong password" if password
                              else "encrypted: password required (use --password)") from None
    except Exception as e:
        raise _OpenFailed(short_reason(e)) from None
    if not texts:
        raise _OpenFailed("no pages found")

    class _Pre:
        name = "pdfminer"

        def text(self, i: int) -> str:
            return texts[i]

        def has_images(self, i: int) -> bool:
            return False

    doc = _build(path, len(texts), [_Pre()], None)
    doc.warnings.insert(0, "damaged PDF: read with pdfminer, some pages may be missing")
    return doc

