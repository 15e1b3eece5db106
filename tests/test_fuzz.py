"""Fuzzing the readers: seeded mutations (flipped bytes, truncations, spliced and duplicated segments, zeroed
ranges) of the PDFs, decks and texts of sample_docs and ../shared/eval/hostile, each extracted the way an
ingest does (kb.ingest.process.extract_one in budgeted workers).

Every case must end within its budget with readable text or a reason, never a traceback or a hang.
KB_FUZZ_CASES sets the number of cases (default 120, under a minute on 2 cores); KB_FUZZ_SEED the seed.
Run with `-s` for the figures: outcomes by reason, the slowest case, the workers' peak RSS.
"""

from __future__ import annotations

import os
import random
import resource
import time
from collections import Counter
from pathlib import Path

from conftest import SAMPLE_DOCS, SHARED_EVAL
from kb.ingest.options import ExtractOptions
from kb.ingest.process import extract_one
from kb.ingest.workers import run_budgeted

CASES = int(os.environ.get("KB_FUZZ_CASES", "120"))
SEED = int(os.environ.get("KB_FUZZ_SEED", "13"))
# OCR off: this test is about the parsers. A mutated PDF whose pages come out as garbage is, rightly, read by OCR
# page by page (a truncated ctex-faq.pdf: 37 pages, ~3 min), which tests/test_ocr.py covers.
BUDGET = ExtractOptions(timeout=60, memory_mb=1024, ocr="never")
SUFFIXES = {".pdf", ".pptx", ".docx", ".md", ".txt", ".html"}


def _seeds() -> list[Path]:
    files = [p for p in sorted(SAMPLE_DOCS.iterdir()) if p.suffix in SUFFIXES]
    hostile = SHARED_EVAL / "hostile"
    if hostile.is_dir():
        files += [p for p in sorted(hostile.iterdir()) if p.suffix in SUFFIXES and p.stat().st_size < 1 << 20]
    return files


def mutate(data: bytes, rnd: random.Random) -> tuple[str, bytes]:
    """One seeded mutation of `data`: (its name, the mutated bytes)."""
    n = len(data)
    if n < 2:
        return "append", data + bytes(rnd.randrange(256) for _ in range(64))
    kind = rnd.choice(["flip", "truncate", "splice", "duplicate", "zero"])
    buf = bytearray(data)
    if kind == "flip":
        for _ in range(rnd.randint(1, 64)):
            buf[rnd.randrange(n)] ^= 1 << rnd.randrange(8)
    elif kind == "truncate":
        del buf[rnd.randrange(1, n):]
    elif kind == "splice":  # a segment moved elsewhere: objects and zip entries cut and pasted
        a = rnd.randrange(n)
        seg = bytes(buf[a:a + rnd.randint(1, 4096)])
        b = rnd.randrange(n)
        buf[b:b] = seg
    elif kind == "duplicate":  # a segment repeated many times: lengths and offsets go wrong
        a = rnd.randrange(n)
        seg = bytes(buf[a:a + rnd.randint(1, 256)])
        buf[a:a] = seg * rnd.randint(2, 200)
    else:
        a = rnd.randrange(n)
        buf[a:a + rnd.randint(1, 4096)] = bytes(min(n - a, 4096))[:len(buf[a:a + 4096])]
    return kind, bytes(buf)


def _reason_class(reason: str) -> str:
    """A reason without its details, for counting (file names and numbers dropped)."""
    import re

    head = re.split(r" \(|:", reason)[0]
    return head if len(head) < 60 else head[:60] + "…"


def test_fuzzed_files_end_with_text_or_a_reason(tmp_path):
    seeds = _seeds()
    rnd = random.Random(SEED)
    paths, kinds = [], []
    for i in range(CASES):
        src = seeds[i % len(seeds)] if i < len(seeds) else rnd.choice(seeds)
        kind, data = mutate(src.read_bytes(), rnd)
        p = tmp_path / f"case{i:05d}-{kind}-{src.stem[:40]}{src.suffix}"
        p.write_bytes(data)
        paths.append(str(p))
        kinds.append(kind)
    started = time.monotonic()
    outcomes: Counter = Counter()
    slowest = (0.0, "")
    last = started
    for path, (doc, reason) in zip(paths, run_budgeted(paths, BUDGET, 2, extract_one, ahead=8)):
        now = time.monotonic()
        # results arrive in order with two workers, so the gap between two is an upper bound of a case's time
        slowest = max(slowest, (now - last, os.path.basename(path)))
        last = now
        if doc is not None:
            assert doc.text_length > 0, f"{path}: ingested with no text"
            outcomes["ingested"] += 1
        else:
            assert reason and "Traceback" not in reason and not reason.startswith("unexpected error"), reason
            assert "took longer than" not in reason, f"{path} hung: {reason}"
            outcomes[_reason_class(reason)] += 1
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\nfuzz: {CASES} cases (seed {SEED}) in {time.monotonic() - started:.1f} s; "
          f"slowest {slowest[0]:.2f} s ({slowest[1]}); peak worker RSS {rss:.0f} MB")
    for what, count in outcomes.most_common():
        print(f"  {count:5d}  {what}")
    assert sum(outcomes.values()) == CASES
