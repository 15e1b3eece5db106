"""Decode the raw bytes of a text file (plain text, Markdown, HTML) without being told the encoding.

Encoding is decided in this order, cheapest and most certain first:

1. a byte-order mark (UTF-32 before UTF-16, whose LE mark is a prefix of UTF-32's);
2. UTF-16/32 without a BOM, recognised by where the NUL bytes fall (ASCII-heavy text in UTF-16LE
   has a NUL at every odd offset, UTF-32LE three NULs after each character, ...; mostly-CJK UTF-16
   has few NULs and is accepted when it decodes to clean text);
3. strict UTF-8 (also covers ASCII);
4. charset-normalizer for legacy 8-bit and CJK multi-byte encodings (GBK/GB18030, Big5, Shift-JIS,
   cp1251, ...). On short Western text it tends to pick an exotic Latin code page (cp1250, cp1257,
   mac_*) where cp1252 reads just as well; we then prefer cp1252, the common Windows default.
"""

from __future__ import annotations

import re
import unicodedata

from kb.document import ExtractionError
from kb.extract.garble import looks_garbled

__all__ = ["decode_bytes"]

_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)

# Code pages charset-normalizer likes to return for Western text that cp1252 decodes equally well.
_LATIN_LOOKALIKES = frozenset({
    "cp1250", "cp1257", "cp1254", "cp1258", "latin_1", "iso8859_1", "iso8859_2", "iso8859_4", "iso8859_9",
    "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "mac_latin2", "mac_roman",
    "mac_iceland", "mac_turkish", "hp_roman8", "cp437", "cp850", "cp858", "cp775", "cp852", "ptcp154",
})


def decode_bytes(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode raw bytes of a text file; returns (text, encoding name). `declared` (e.g. an HTML meta
    charset) is tried right after UTF-8."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(enc), enc
            except UnicodeDecodeError:
                raise ExtractionError(f"text is not valid {enc.upper()} despite its byte-order mark") from None
    if b"\x00" in data[:4096]:
        enc = _sniff_wide_encoding(data)
        if enc:
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError:
                pass
        if data.count(b"\x00") > len(data) // 100:
            raise ExtractionError("binary file, not text (contains NUL bytes)")
        data = data.replace(b"\x00", b"")  # a few stray NULs (padding in logs): drop them
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if declared:
        try:
            return data.decode(declared), declared
        except (UnicodeDecodeError, LookupError):
            pass
    return _detect_legacy(data)


def _sniff_wide_encoding(data: bytes) -> str | None:
    """UTF-16/32 without BOM: look at which byte positions hold the NULs."""
    sample = data[:4096]
    n = len(sample) - len(sample) % 4
    if n < 4:
        n = len(sample) - len(sample) % 2
    if n < 2:
        return None
    sample = sample[:n]
    zeros = [0, 0, 0, 0]
    for i, b in enumerate(sample):
        if b == 0:
            zeros[i % 4] += 1
    quarter = n / 4
    # UTF-32: for BMP text the two high bytes of every code unit are NUL.
    if n % 4 == 0 and n >= 8:
        if zeros[2] >= 0.9 * quarter and zeros[3] >= 0.9 * quarter:
            return "utf-32-le"
        if zeros[0] >= 0.9 * quarter and zeros[1] >= 0.9 * quarter:
            return "utf-32-be"
    half = n / 2
    odd, even = zeros[1] + zeros[3], zeros[0] + zeros[2]
    if odd >= 0.3 * half and even <= 0.05 * half:
        return "utf-16-le"
    if even >= 0.3 * half and odd <= 0.05 * half:
        return "utf-16-be"
    # Mostly-CJK UTF-16 has few NULs (only code points like U+4E00 have a zero byte): accept a
    # decoding that reads as clean text.
    if len(data) % 2:
        return None
    for enc in ("utf-16-le", "utf-16-be"):
        try:
            sample = data.decode(enc)[:4000]
        except UnicodeDecodeError:
            continue
        if sample and not looks_garbled(sample) and _clean_ratio(sample) > 0.99:
            return enc
    return None


def _clean_ratio(text: str) -> float:
    ok = sum(1 for c in text if c.isspace() or (c.isprintable() and unicodedata.category(c) not in ("Co", "Cn")))
    return ok / len(text)


def _detect_legacy(data: bytes) -> tuple[str, str]:
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ExtractionError("not a text file (binary data or unknown encoding)")
    text, enc = str(best), best.encoding
    if enc in _LATIN_LOOKALIKES and enc != "cp1252":
        try:
            alt = data.decode("cp1252")
        except UnicodeDecodeError:
            alt = None
        if alt is not None and _symbols_inside_words(alt) <= _symbols_inside_words(text):
            return alt, "cp1252"
    return text, enc


_WORD_SYMBOL_RE = re.compile(r"(?<=[^\W\d_])[^\w\s](?=[^\W\d_])")


def _symbols_inside_words(text: str) -> int:
    """Non-ASCII symbols wedged between letters ("Polska¹"): the mark of the wrong 8-bit code page."""
    return sum(1 for m in _WORD_SYMBOL_RE.finditer(text) if ord(m.group()) > 127)
