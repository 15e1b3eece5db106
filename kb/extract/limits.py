"""Decompression limits the readers lack.

What the libraries already bound (checked in their sources): pypdf caps every decoded stream (Flate, LZW,
run-length, JBIG2: 75 MB, `pypdf.filters.ZLIB_MAX_OUTPUT_LENGTH` and friends) and refuses with LimitReachedError;
python-pptx and python-docx parse XML with `resolve_entities=False` (no entity expansion: "billion laughs" stays
one unexpanded reference) and lxml's default `huge_tree=False` (text nodes over 10 MB and trees over 256 levels
deep are refused). Neither bounds the zip: a part is inflated whole into memory before it is parsed, so a slide
that inflates to gigabytes would be read. pypdfium2 (native) has no limit we can set: the worker's memory cap
(kb.ingest.workers) stops it.

Python's zipfile never inflates a member past its declared size (and fails the CRC if the data would go on), so
checking the declared sizes is enough.
"""

from __future__ import annotations

import zipfile

from kb.document import ExtractionError

MAX_PART_BYTES = 256 << 20  # one inflated part of an Office package
MAX_PACKAGE_BYTES = 1 << 30  # all parts together
MAX_PARTS = 20_000


def check_zip_package(source, kind: str) -> None:
    """Refuse (ExtractionError) an Office package whose parts would inflate beyond the limits."""
    try:
        with zipfile.ZipFile(source) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # the reader reports a broken package in its own words
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    if len(infos) > MAX_PARTS:
        raise ExtractionError(f"{kind} package has {len(infos)} parts (limit {MAX_PARTS}); not read")
    total = 0
    for info in infos:
        if info.file_size > MAX_PART_BYTES:
            raise ExtractionError(f"{kind} package part {info.filename} would inflate to "
                                  f"{info.file_size / (1 << 20):.0f} MB (limit {MAX_PART_BYTES >> 20} MB); not read")
        total += info.file_size
    if total > MAX_PACKAGE_BYTES:
        raise ExtractionError(f"{kind} package would inflate to {total / (1 << 20):.0f} MB "
                              f"(limit {MAX_PACKAGE_BYTES >> 20} MB); not read")
