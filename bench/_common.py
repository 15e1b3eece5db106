"""Shared by the bench scripts: where the evaluation data is, and a figure printer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"


def dataset(name: str) -> Path:
    path = EVAL / name
    if not path.exists():
        sys.exit(f"bench: {path} not found (the benchmarks need ../shared/eval beside the repo)")
    return path


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def figure(name: str, value: float, unit: str = "") -> None:
    """One figure per line: `name value [unit]`."""
    print(f"{name} {value:.4g}{' ' + unit if unit else ''}", flush=True)
