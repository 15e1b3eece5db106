"""Start-up time of the commands that must stay light (no torch, no llama_cpp): `kb --help`, `kb status`,
`kb config`, `kb list`, `kb kbs`. Median wall time of N fresh processes each, plus the Python floor (`python -c pass`).

    python bench/startup.py [--runs 15] [--compare OTHER_CHECKOUT]

With --compare, every command also runs from another checkout of kb (e.g. `git worktree add /tmp/before COMMIT`),
interleaved run by run with this one, and the ratio this/other is printed: a fair before/after on a busy machine.
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
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
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


if __name__ == "__main__":
    main()
