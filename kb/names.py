"""File names are data: any name the OS allows must print on one line and survive JSON.

Names that are not UTF-8 reach Python as lone surrogates (surrogateescape: byte 0xE9 -> '\\udce9').
- Plain output (`shown`): control characters and those bytes are escaped (`\\n`, `\\t`, `\\x1b`, `\\xe9`, and a
  a backslash is left as it is), so one file is one line.
- JSON (`json_dumps`): valid JSON whose strings keep such names reversibly as `\\udcXX` escapes;
  `json.loads` gives back the same str and `os.fsencode` the original bytes.
"""

from __future__ import annotations

import json
import re

_UNSAFE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, shown as the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(name: str) -> str:
    """`name` on one printable line."""
    return _UNSAFE.sub(_escape, name)


def json_dumps(data, **kw) -> str:
    """json.dumps(ensure_ascii=False) that writes lone surrogates as \\udcXX escapes instead of failing."""
    text = json.dumps(data, ensure_ascii=False, **kw)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
