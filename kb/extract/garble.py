"""Is this extracted or decoded text garbage? Shared by the PDF extractor (a CID font without a
usable Unicode map comes out as U+FFFD, unassigned code points or a scatter of unrelated scripts)
and encoding detection (a wrong guess at UTF-16 without a BOM reads the same way).

Only the standard library here.
"""

from __future__ import annotations

import unicodedata

__all__ = ["looks_garbled", "garble_score"]

# Letters whose Unicode name does not start with a script name, or that mix into any script.
_NEUTRAL = frozenset({
    "MATHEMATICAL", "MODIFIER", "SCRIPT", "DOUBLE-STRUCK", "BLACK-LETTER", "PLANCK", "OHM", "KELVIN",
    "ANGSTROM", "TURNED", "INVERTED", "SUPERSCRIPT", "SUBSCRIPT", "FEMININE", "MASCULINE", "MICRO",
    "GREEK",  # maths in any language
})
_EAST_ASIAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC", "HALFWIDTH"})


def _family(ch: str) -> str:
    o = ord(ch)
    if o < 0x250:
        return "LATIN"
    if 0x3040 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3134F:
        return "EAST_ASIAN"
    try:
        word = unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return "?"
    if word in _EAST_ASIAN:
        return "EAST_ASIAN"
    if word == "FULLWIDTH":
        return "LATIN"
    return "NEUTRAL" if word in _NEUTRAL else word


def _profile(text: str) -> tuple[int, int, int, int, int, int]:
    """(non-space chars, bad chars, letters, letters+digits, letters in scripts other than Latin and
    the main non-Latin one, number of such minor scripts)."""
    n = bad = letters = alnum = 0
    families: dict[str, int] = {}
    for ch in text:
        if ch.isspace() or ch in "\ufffe\x02":  # pdfium's marks for a hyphen at a line break
            continue
        n += 1
        if ch.isalpha():
            letters += 1
            alnum += 1
            fam = "LATIN" if ch < "\x80" else _family(ch)
            families[fam] = families.get(fam, 0) + 1
        elif ch.isdigit():
            alnum += 1
        elif ch == "\ufffd" or (ch > "\x7f" and unicodedata.category(ch) in ("Co", "Cn", "Cs")) \
                or (ch < " " or "\x7f" <= ch < "\xa0"):
            bad += 1
    families.pop("NEUTRAL", None)
    families.pop("LATIN", None)
    other = sorted(families.values(), reverse=True)
    minor = sum(other[1:])  # the biggest non-Latin script is the document's language; the rest is noise
    return n, bad, letters, alnum, minor, max(0, len(other) - 1)


def garble_score(text: str) -> float:
    """0 for clean text, higher for more replacement/unassigned characters and script scatter."""
    n, bad, letters, alnum, minor, n_minor = _profile(text)
    if not n:
        return 0.0
    score = bad / n + (minor / letters if letters else 0.0) * (1.0 if n_minor >= 2 else 0.25)
    if n >= 40 and alnum / n < 0.2:
        score += 0.2
    return score


def looks_garbled(text: str) -> bool:
    """Whether extracted text is likely mis-decoded: many U+FFFD/private-use/unassigned/control
    characters, letters scattered over several unrelated scripts (what a CID font without a
    Unicode map turns into), or hardly any letters and digits at all."""
    n, bad, letters, alnum, minor, n_minor = _profile(text)
    if not n:
        return False
    if bad / n >= 0.02 and bad >= 2 or (n < 20 and bad / n > 0.3):
        return True
    if n_minor >= 3 and minor >= 5:
        return True
    if letters and n_minor >= 2 and minor / letters >= 0.05:
        return True
    return n >= 40 and alnum / n < 0.15
