"""Start-up time of the commands that must stay light (no torch, no llama_cpp): `kb --help`, `kb status`,
`kb config`, `kb list`, `kb kbs`. Median wall time of N fresh processes each, plus the Python floor (`python -c pass`).

    python bench/startup.py [--runs 15] [--compare OTHER_CHECKOUT] [--search KB]

With --compare, every command also runs from another checkout of kb (e.g. `git worktree add /tmp/before COMMIT`),
interleaved run by run with this one, and the ratio this/other is printed: a fair before/after on a busy machine.
With --search KB, also a whole `kb search` of an English question over that knowledge base (loads the embedder
and its query engine: not light, but what a user waits for each time), and its floor: the same search done
again in a process that already did it (the query's own cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure  # noqa: E402


def once(cmd: list[str], env: dict) -> float:
    # run from the data directory, not the caller's: `python -m kb` puts the working directory first on sys.path,
    # so from a checkout's root both sides of --compare would import that checkout's kb
    t = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=env["KB_DATA_DIR"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    return time.perf_counter() - t


def wall(cmd: list[str], env: dict, runs: int, other_env: dict | None = None) -> tuple[float, float | None]:
    """Median wall time over `runs` (and, with `other_env`, the same command's median there, runs interleaved)."""
    times, other = [], []
    for _ in range(runs):
        times.append(once(cmd, env))
        if other_env is not None:
            other.append(once(cmd, other_env))
    return statistics.median(times), (statistics.median(other) if other else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--compare", type=Path, help="another checkout of kb to time beside this one")
    ap.add_argument("--search", type=Path, help="a knowledge base to time `kb search` on")
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, KB_DATA_DIR=tmp, KB_CONFIG_DIR=tmp, PYTHONPATH=here)
        other_env = dict(env, PYTHONPATH=str(args.compare.resolve())) if args.compare else None
        figure("python_floor_s", wall([sys.executable, "-c", "pass"], env, args.runs)[0], "s")
        for name, argv in (("help", ["--help"]), ("status", ["status"]), ("config", ["config"]), ("list", ["list"]),
                           ("kbs", ["kbs"])):
            mine, other = wall([sys.executable, "-m", "kb", *argv], env, args.runs, other_env)
            figure(f"kb_{name}_s", mine, "s")
            if other is not None:
                figure(f"kb_{name}_compared_s", other, "s")
                figure(f"kb_{name}_ratio", mine / other)
        if args.search:
            search = ["--kb", str(args.search.resolve()), "search", "How long is the QF-300 warranty?", "--json"]
            mine, other = wall([sys.executable, "-m", "kb", *search], env, args.runs, other_env)
            figure("kb_search_s", mine, "s")
            if other is not None:
                figure("kb_search_compared_s", other, "s")
                figure("kb_search_ratio", mine / other)
            figure("search_again_in_process_floor_s", search_again(args.search.resolve()), "s")


def search_again(kb_dir: Path) -> float:
    """The median time of the same search in a process that has already run it once (models loaded)."""
    from kb.config import load_settings
    from kb.retrieve import open_searcher

    searcher = open_searcher(load_settings(str(kb_dir), {}))
    times = []
    for _ in range(6):
        t = time.perf_counter()
        searcher.search("How long is the QF-300 warranty?", k=10)
        times.append(time.perf_counter() - t)
    searcher.close()
    return statistics.median(times[1:])


if __name__ == "__main__":
    main()
