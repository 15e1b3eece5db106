"""Start-up time of the commands that must stay light (no torch, no llama_cpp): `kb --help`, `kb status`,
`kb config`, `kb list`, `kb kbs`. Median wall time of N fresh processes each, plus the Python floor (`python -c pass`).

    python bench/startup.py [--runs 15]
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


def wall(cmd: list[str], env: dict, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, KB_DATA_DIR=tmp, KB_CONFIG_DIR=tmp)
        figure("python_floor_s", wall([sys.executable, "-c", "pass"], env, args.runs), "s")
        for name, argv in (("help", ["--help"]), ("status", ["status"]), ("config", ["config"]), ("list", ["list"]),
                           ("kbs", ["kbs"])):
            figure(f"kb_{name}_s", wall([sys.executable, "-m", "kb", *argv], env, args.runs), "s")


if __name__ == "__main__":
    main()
