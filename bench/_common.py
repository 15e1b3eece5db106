"""Shared by the bench scripts: where the evaluation data is, a figure printer, a JSON cache, a searcher over
sample_docs."""

from __future__ import annotations

import json
import sys
import tempfile
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


class JsonCache:
    """Values computed once and kept in a JSON file across runs (the benches' LLM replies: greedy, so a rerun needs
    no LLM)."""

    def __init__(self, path: Path):
        self.path = path
        self.values = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def get(self, key: str, compute):
        if key not in self.values:
            self.values[key] = compute()
            self.path.write_text(json.dumps(self.values, ensure_ascii=False), encoding="utf-8")
        return self.values[key]


def sample_searcher(kb_dir: Path):
    """A Searcher over sample_docs in `kb_dir`, ingested there with the default settings first if it is not yet."""
    from kb.config import load_settings
    from kb.ingest import IngestOptions, ingest_with_settings
    from kb.retrieve import open_searcher

    settings = load_settings(str(kb_dir), {})
    if not (kb_dir / "catalog.sqlite").exists():
        ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[REPO / "sample_docs"]))
    return open_searcher(settings)


def sample_knowledge_base(kb_dir: Path | None, prefix: str):
    """(searcher, settings, the temporary directory to keep alive, or None): sample_docs in `kb_dir` (ingested there
    first if it is empty), else in a new temporary directory."""
    from kb.config import load_settings

    tmp = None if kb_dir else tempfile.TemporaryDirectory(prefix=prefix)
    kb_dir = kb_dir or Path(tmp.name) / "kb"
    return sample_searcher(kb_dir), load_settings(str(kb_dir)), tmp
