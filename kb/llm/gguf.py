"""GGUF files: the magic check and a header reader (metadata only: no weights, no llama_cpp)."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from kb.errors import ModelNotFound, ModelUnusable

GGUF_MAGIC = b"GGUF"


def check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelNotFound(f"cannot read {path}: {e.strerror or e}") from None
    if magic != GGUF_MAGIC:
        raise ModelNotFound(f"{path} is not a GGUF model file (llama.cpp needs .gguf; it starts with {magic!r})")


# ---- GGUF header ---------------------------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file (v2/v3), without loading weights or importing llama_cpp.

    Scalars and strings come back as Python values; arrays (the vocabulary, merges) as {"array": length}.
    """
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != GGUF_MAGIC:
            raise ModelNotFound(f"{path} is not a GGUF model file")
        version, _n_tensors, n_kv = struct.unpack_from("<IQQ", m, 4)
        if version < 2:
            raise ModelNotFound(f"{path}: GGUF version {version} is too old for llama.cpp")
        pos, meta = 24, {}
        unpack = struct.unpack_from
        try:
            for _ in range(n_kv):
                (klen,) = unpack("<Q", m, pos)
                key = m[pos + 8:pos + 8 + klen].decode("utf-8", "replace")
                (vtype,) = unpack("<I", m, pos + 8 + klen)
                pos += 12 + klen
                if vtype == _GGUF_STRING:
                    (slen,) = unpack("<Q", m, pos)
                    meta[key] = m[pos + 8:pos + 8 + slen].decode("utf-8", "replace")
                    pos += 8 + slen
                elif vtype == _GGUF_ARRAY:
                    etype, count = unpack("<IQ", m, pos)
                    pos += 12
                    if etype == _GGUF_STRING:
                        for _ in range(count):
                            pos += 8 + unpack("<Q", m, pos)[0]
                    else:
                        pos += count * struct.calcsize(_GGUF_SCALARS[etype])
                    meta[key] = {"array": count}
                else:
                    fmt = _GGUF_SCALARS[vtype]
                    (meta[key],) = unpack(fmt, m, pos)
                    pos += struct.calcsize(fmt)
        except (KeyError, struct.error, IndexError):
            raise ModelUnusable(f"{path}: damaged GGUF header (metadata unreadable)") from None
    return meta


def gguf_summary(path: Path) -> dict[str, Any]:
    """What `kb models`/`kb doctor` show about a GGUF: architecture, trained context, chat template."""
    meta = read_gguf_metadata(path)
    arch = meta.get("general.architecture")
    ctx = meta.get(f"{arch}.context_length")
    return {
        "architecture": arch,
        "name": meta.get("general.name"),
        "size_label": meta.get("general.size_label"),
        "context_length": int(ctx) if isinstance(ctx, int) else None,
        "chat_template": isinstance(meta.get("tokenizer.chat_template"), str),
        "vocab_size": (meta.get("tokenizer.ggml.tokens") or {}).get("array"),
    }
