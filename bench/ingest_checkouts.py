"""A whole `kb ingest` by this checkout and by another one, on the same folders, alternated in one run: wall time,
chunks, disk, and whether the generation has the multilingual index; beside the floor, the same chunk texts
embedded by the bare default embedder (`embed_documents`) in a fresh process, what any ingest of them must spend.

    git worktree add --detach /tmp/before COMMIT
    python bench/ingest_checkouts.py --compare /tmp/before [--rounds 2] [--scifact 1000] [--cmrc 300]

Folders: the first N SciFact abstracts (English) and CMRC paragraphs (Chinese), one Markdown file per record, and
sample_docs (bilingual). Each ingest is `python -m kb ingest FOLDER --json` into a new knowledge base, run from a
temporary directory with PYTHONPATH set to the checkout (the models dir is shared, so e5's int8 encoder is built
once, before the first timed run if it was not). Read the ratios: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, dataset, figure, read_jsonl  # noqa: E402

_FLOOR = r"""
import sys, time
from kb.config import load_settings
from kb.embedders import embedding_spec, load_embedder
from kb.store import KnowledgeBase
texts = KnowledgeBase(sys.argv[1]).catalog(readonly=True).chunk_texts()
s = load_settings()
e = load_embedder(embedding_spec(s), device=s.device, precision=s.embed_precision)
if hasattr(e, "prepare_documents"):  # e5: its int8 encoder loaded before the clock starts, as an ingest has it
    e.prepare_documents()
e.embed_documents(texts[:8])
t = time.perf_counter()
e.embed_documents(texts)
print(time.perf_counter() - t)
"""


def write_corpus(name: str, n: int, root: Path) -> Path:
    folder = root / f"{name}-{n}"
    folder.mkdir()
    for r in read_jsonl(dataset(name) / "corpus.jsonl")[:n]:
        (folder / f"{r['_id']}.md").write_text(f"# {r.get('title') or r['_id']}\n\n{r['text']}\n", encoding="utf-8")
    return folder


def ingest(checkout: Path, folder: Path, work: Path) -> dict:
    kb_dir = Path(tempfile.mkdtemp(prefix="kb-", dir=work))
    env = dict(os.environ, PYTHONPATH=str(checkout))
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kb", "--kb", str(kb_dir / "kb"), "ingest", str(folder), "--json"],
                          env=env, cwd=kb_dir, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode not in (0, 1):
        sys.exit(f"bench: kb ingest {folder} by {checkout} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return {"seconds": seconds, "chunks": json.loads(done.stdout)["chunks"]["total"], "kb": kb_dir / "kb",
            "disk_mb": sum(p.stat().st_size for p in (kb_dir / "kb").rglob("*") if p.is_file()) / 2 ** 20,
            "multilingual": (kb_dir / "kb" / "multilingual-1.bin").exists()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", required=True, type=Path, help="the other checkout of kb (before)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scifact", type=int, default=1000, help="SciFact abstracts in the English folder")
    ap.add_argument("--cmrc", type=int, default=300, help="CMRC paragraphs in the Chinese folder")
    args = ap.parse_args()
    checkouts = {"before": args.compare.resolve(), "after": REPO}
    with tempfile.TemporaryDirectory(prefix="kb-bench-ingest-") as tmp:
        work = Path(tmp)
        folders = {"scifact": write_corpus("scifact", args.scifact, work),
                   "cmrc": write_corpus("cmrc2018-dev", args.cmrc, work), "sample_docs": REPO / "sample_docs"}
        runs: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for name, folder in folders.items():
                for label, checkout in checkouts.items():
                    run = ingest(checkout, folder, work)
                    runs.setdefault((name, label), []).append(run)
                    print(f"# {name} {label}: {run['seconds']:.1f} s, {run['chunks']} chunks, {run['disk_mb']:.1f} MB, "
                          f"multilingual index {run['multilingual']}", flush=True)
        for name in folders:
            after = runs[(name, "after")]
            floor = subprocess.run([sys.executable, "-c", _FLOOR, str(after[-1]["kb"])], capture_output=True,
                                   text=True, check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
            for label in checkouts:
                rs = runs[(name, label)]
                figure(f"{name}_{label}_seconds", sum(r["seconds"] for r in rs) / len(rs), "s")
                figure(f"{name}_{label}_disk", rs[-1]["disk_mb"], "MB")
            figure(f"{name}_after_over_before", sum(r["seconds"] for r in after) /
                   sum(r["seconds"] for r in runs[(name, "before")]), "x")
            figure(f"{name}_floor_embedding_seconds", float(floor.stdout.strip().splitlines()[-1]), "s")
        for rs in runs.values():
            for r in rs:
                shutil.rmtree(r["kb"].parent, ignore_errors=True)


if __name__ == "__main__":
    main()
