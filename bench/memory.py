"""How much memory does a whole ingest take? Issue 10's goal: `../shared/eval/hostile` plus a generated
1,000-page PDF ingest with peak RSS under 1.5 GB (`--text-mb 3` adds a 3 MB text file).

`kb ingest` is run as a user runs it (`python -m kb ingest FOLDER`, fresh data dir, the default embedder), while
this script samples every process of its tree every 50 ms: the main process (planning, chunking, embedding,
commit), the extraction workers (PDF parsing, OCR) and, on a new machine, the child that builds e5's int8
encoder once. Printed: the peak of the tree's summed RSS (what the goal counts; shared library pages counted once
per process, so an overestimate), the peak of its summed PSS (shared pages split), each role's own peak, and what
the tree's peak was made of (the main process, the workers and the build child at that moment).

Each checkout ingests the folder twice: `<name>_first` with an empty models dir, as on a new machine (the ingest
passes 1,000 documents, so it builds the int8 encoder beside itself), then `<name>` into a new knowledge base
with the encoder built, as every later ingest. The floor: the same default embedder loaded alone in a process
that embeds one batch (what any ingest must hold), measured the same way.

    python bench/memory.py [--pages 1000] [--text-mb 0] [--compare OTHER_CHECKOUT] [--first-only]

With --compare, the same folder is also ingested by another checkout of kb (e.g. `git worktree add /tmp/before
COMMIT`), one run after the other, so before and after are read in one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench._common import REPO, dataset, figure  # noqa: E402

_EMBED_ALONE = r"""
from kb.config import load_settings
from kb.embedders import embedding_spec, load_embedder
s = load_settings()
e = load_embedder(embedding_spec(s), device=s.device, precision=s.embed_precision)
e.embed_documents(["a passage about valves and pumps " * 40] * 16)
"""


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(root: int) -> list[int]:
    kids, todo, out = _children(), [root], []
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _kb(pid: int, key: str, path: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _is_build(pid: int) -> bool:
    """Whether pid is the child that builds e5's int8 encoder (once per machine), or one it forked."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"e5_int8_build" in f.read()
    except OSError:
        return False


def watch(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Run cmd, sampling its process tree: peak summed RSS/PSS, the root's own peak, the largest extraction
    worker's and the int8 build child's (MB), and what the tree's peak was made of."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = {"tree_rss": 0, "tree_pss": 0, "main_rss": 0, "worker_rss": 0, "build_rss": 0, "main_at_tree_peak": 0,
            "workers_at_tree_peak": 0, "build_at_tree_peak": 0}
    builds: dict[int, bool] = {}
    while proc.poll() is None:
        rss = {pid: _kb(pid, "VmRSS:", "status") for pid in _tree(proc.pid)}
        pss = sum(_kb(pid, "Pss:", "smaps_rollup") for pid in rss)
        for pid in rss:
            if pid not in builds:
                builds[pid] = pid != proc.pid and _is_build(pid)
        build = sum(v for p, v in rss.items() if builds[p])
        if sum(rss.values()) > peak["tree_rss"]:  # what the tree's peak is made of
            peak["tree_rss"] = sum(rss.values())
            peak["main_at_tree_peak"] = rss.get(proc.pid, 0)
            peak["build_at_tree_peak"] = build
            peak["workers_at_tree_peak"] = peak["tree_rss"] - peak["main_at_tree_peak"] - build
        peak["tree_pss"] = max(peak["tree_pss"], pss)
        peak["main_rss"] = max(peak["main_rss"], rss.get(proc.pid, 0))
        peak["build_rss"] = max(peak["build_rss"], build)
        peak["worker_rss"] = max([peak["worker_rss"]] + [v for p, v in rss.items() if p != proc.pid and not builds[p]])
        time.sleep(0.05)
    err = proc.stderr.read()
    if proc.returncode not in (0, 1):  # 1: some files were reported (the hostile folder always has some)
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}:\n{err[-2000:]}")
    out = {k: v / 1024 for k, v in peak.items()}
    out["seconds"] = time.perf_counter() - t
    return out


def build_folder(root: Path, pages: int, text_mb: int) -> None:
    from hostile_files import text_pdf

    for p in dataset("hostile").iterdir():
        if p.is_file():
            shutil.copy(p, root / p.name)
    (root / f"generated-{pages}-pages.pdf").write_bytes(text_pdf(pages))
    if text_mb:
        prose = (REPO / "sample_docs").glob("*.md")
        block = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(prose))
        with open(root / f"generated-{text_mb}MB.txt", "w", encoding="utf-8") as f:
            while f.tell() < text_mb << 20:
                f.write(block + "\n\n")


def report(name: str, r: dict) -> None:
    figure(f"{name}_peak_tree_rss_mb", r["tree_rss"], "MB")
    figure(f"{name}_peak_tree_pss_mb", r["tree_pss"], "MB")
    figure(f"{name}_peak_main_rss_mb", r["main_rss"], "MB")
    figure(f"{name}_peak_worker_rss_mb", r["worker_rss"], "MB")
    figure(f"{name}_peak_int8_build_rss_mb", r["build_rss"], "MB")
    figure(f"{name}_main_at_tree_peak_mb", r["main_at_tree_peak"], "MB")
    figure(f"{name}_workers_at_tree_peak_mb", r["workers_at_tree_peak"], "MB")
    figure(f"{name}_int8_build_at_tree_peak_mb", r["build_at_tree_peak"], "MB")
    figure(f"{name}_seconds", r["seconds"], "s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--text-mb", type=int, default=0, help="add a generated text file of this many MB")
    ap.add_argument("--compare", type=Path, help="another checkout of kb to measure beside this one")
    ap.add_argument("--first-only", action="store_true",
                    help="only the first ingest on a new machine (with the int8 build), not a later one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-bench-mem-") as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        build_folder(folder, args.pages, args.text_mb)
        runs = [("kb", REPO)] + ([("compared", args.compare.resolve())] if args.compare else [])
        for name, checkout in runs:
            home = Path(tmp) / f"home-{name}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
            env.update(KB_DATA_DIR=str(home / "data"), KB_CONFIG_DIR=str(home / "config"),
                       KB_MODELS_DIR=str(home / "models"), HF_HUB_OFFLINE="1", PYTHONPATH=str(checkout))
            cmd = [sys.executable, "-m", "kb", "ingest", str(folder), "--json"]
            # a new machine: the models dir is empty, so the ingest also builds e5's int8 encoder once
            report(f"{name}_first", watch(cmd, env, checkout))
            if not args.first_only:  # every later ingest: the encoder is built; a new knowledge base
                report(name, watch(cmd, dict(env, KB_DATA_DIR=str(home / "data2")), checkout))
            if name == "kb":
                report("floor_embedder_alone", watch([sys.executable, "-c", _EMBED_ALONE], env, checkout))

if __name__ == "__main__":
    main()
