"""How long and how much memory does extracting one legitimate file take? Chooses `extract_timeout` and
`extract_memory_mb`: the slowest file of ../shared/eval (hostile/, tables/), sample_docs and a generated
1,000-page text PDF must all stay far below both budgets.

Prints per file: seconds and peak RSS of a fresh process extracting it (kb.extract.extract_file), and beside
the 1,000-page PDF the floor: the bare pypdf loop (`page.extract_text()` per page) on the same file.

    python bench/extract_budget.py [--pages 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench._common import EVAL, REPO, figure  # noqa: E402

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
path, mode = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if mode == "kb":
    from kb.extract import extract_file
    try:
        extract_file(Path(path)); outcome = "ok"
    except Exception as e:
        outcome = type(e).__name__
else:
    from pypdf import PdfReader
    for page in PdfReader(path).pages:
        page.extract_text()
    outcome = "ok"
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "outcome": outcome}))
"""


def measure(path: Path, mode: str = "kb") -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), mode], capture_output=True, text=True,
                         cwd=REPO, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from hostile_files import text_pdf

    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1000)
    args = ap.parse_args()
    files = sorted(p for d in ("hostile", "tables") for p in (EVAL / d).glob("*") if p.is_file())
    files += sorted(p for p in (REPO / "sample_docs").iterdir() if p.suffix in (".pdf", ".pptx", ".md", ".txt"))
    results = []
    for p in files:
        r = measure(p)
        results.append((r["seconds"], r["rss_mb"], p.name, r["outcome"]))
    results.sort(reverse=True)
    for s, rss, name, outcome in results[:5]:
        print(f"  {name}: {s:.2f} s, peak RSS {rss:.0f} MB ({outcome})")
    figure("slowest_eval_file_s", results[0][0], "s")
    figure("peak_rss_eval_mb", max(r[1] for r in results), "MB")
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.pdf"
        big.write_bytes(text_pdf(args.pages))
        kb = measure(big)
        floor = measure(big, "pypdf")
        figure(f"pdf_{args.pages}_pages_kb_s", kb["seconds"], "s")
        figure(f"pdf_{args.pages}_pages_floor_pypdf_s", floor["seconds"], "s")
        figure("ratio_kb_to_floor", kb["seconds"] / floor["seconds"])
        figure(f"pdf_{args.pages}_pages_peak_rss_mb", kb["rss_mb"], "MB")


if __name__ == "__main__":
    main()
