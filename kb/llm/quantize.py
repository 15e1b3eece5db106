"""A copy of a GGUF in another weight format, made once with llama.cpp's own quantizer (`llama_model_quantize`).

Why: on a CPU, prompt evaluation is the cost of an answer's first word, and llama.cpp evaluates some formats
faster than others on the same machine (Q4_0 is repacked for AVX2/AVX-512 at load). `bench/llm_speed.py` measures
each format beside the shipped Q4_K_M; `bench/answers.py` checks that a format does not lose answers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kb.errors import ModelUnusable

# llama.cpp's file types (enum llama_ftype) for the formats worth trying on a CPU
FTYPES = {"q4_0": 2, "q8_0": 7, "q4_k_m": 15, "iq4_nl": 25}


def quantized_path(source: Path, fmt: str) -> Path:
    """Where the `fmt` copy of `source` lives: beside it, its name's format replaced."""
    stem = source.name.removesuffix(".gguf")
    for known in FTYPES:
        if stem.lower().endswith("-" + known):
            stem = stem[: -len(known) - 1]
    return source.with_name(f"{stem}-{fmt}.gguf")


def quantize(source: Path, fmt: str, threads: int = 0) -> Path:
    """The `fmt` copy of `source`, made once (atomically: a temp file renamed into place)."""
    from kb.llm.runtime import import_llama_cpp

    if fmt not in FTYPES:
        raise ModelUnusable(f"unknown weight format {fmt!r}; one of {', '.join(FTYPES)}")
    dest = quantized_path(source, fmt)
    if dest.is_file():
        return dest
    llama_cpp = import_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[fmt]
    params.nthread = threads
    params.allow_requantize = True  # the shipped file is already quantized (Q4_K_M)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        rc = llama_cpp.llama_model_quantize(str(source).encode(), tmp.encode(), params)
        if rc != 0:
            raise ModelUnusable(f"llama.cpp could not quantize {source.name} to {fmt} (code {rc})")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest
