"""Questions about long real documents: page hit@1 / hit@5 and MRR@10 of `kb search` (hybrid) over six manuals
of 63-234 pages that nobody here wrote (two in Chinese; bench/longdocs/fetch.py fetches them, pinned), with 39
questions written against their pages (bench/longdocs/questions.jsonl: file, gold pages, kinds). Kinds: `plain`
(a short question), `boilerplate` (a short need wrapped in a long preamble and instructions), `names-document`
(the question says which manual it is about). A question may have two kinds; it counts in each.

A hit is a result from the question's file whose page range holds a gold page.

    python bench/longdocs.py [--compare OTHER_CHECKOUT] [--keep DIR] [--show]

With --compare, the same questions run on another checkout of kb too (e.g. `git worktree add /tmp/before
COMMIT`, or `git archive COMMIT | tar -x -C /tmp/before`), each in its own process with that checkout first on
sys.path, and the figures are printed side by side (`before` = the other checkout, `after` = this one).
The second checkout's knowledge base starts as a copy of the first's, re-ingested with force: its chunks are
built by its own code and every chunk whose embedded text did not change takes its vector from the copied
embedding cache. --keep DIR keeps the knowledge bases in DIR/<label> for the next run (again re-ingested with
force, so a code change is always measured).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, read_jsonl  # noqa: E402

HERE = Path(__file__).resolve().parent / "longdocs"
QUESTIONS = HERE / "questions.jsonl"
KINDS = ("plain", "boilerplate", "names-document")


def rank_of(hits: list[dict], q: dict) -> int | None:
    for h in hits:
        if Path(h["path"]).name != q["file"] or h["page"] is None:
            continue
        end = h["page_end"] or h["page"]
        if any(h["page"] <= p <= end for p in q["pages"]):
            return h["rank"]
    return None


def run_one(kb_dir: Path, docs: Path, force: bool) -> dict[str, int | None]:
    """In this process (the checkout under test first on sys.path): ingest `docs` into `kb_dir`, search every
    question, return {question id: rank of the first gold hit in the top 10, or None}."""
    from kb.config import load_settings
    from kb.ingest import IngestOptions, ingest_with_settings
    from kb.retrieve import open_searcher

    settings = load_settings(str(kb_dir), {})
    ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[docs], force=force))
    searcher = open_searcher(settings)
    ranks = {}
    try:
        for q in read_jsonl(QUESTIONS):
            response = searcher.search(q["question"], k=10, mode="hybrid")
            ranks[q["id"]] = rank_of([h.to_dict() for h in response.hits], q)
    finally:
        searcher.close()
    return ranks


def run_checkout(checkout: Path, kb_dir: Path, docs: Path) -> dict[str, int | None]:
    """This script's --one mode in a child process with `checkout` first on sys.path."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", str(kb_dir), "--docs", str(docs)],
                          cwd=str(checkout), env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"longdocs: the run on {checkout} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def figures(ranks: dict[str, int | None], questions: list[dict]) -> dict[str, dict[str, float]]:
    out = {}
    for kind in ("all", *KINDS):
        rs = [ranks[q["id"]] for q in questions if kind == "all" or kind in q["kinds"]]
        if rs:
            out[kind] = {"n": len(rs), "hit@1": sum(1 for r in rs if r == 1) / len(rs),
                         "hit@5": sum(1 for r in rs if r and r <= 5) / len(rs),
                         "mrr@10": sum(1 / r for r in rs if r) / len(rs)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compare", type=Path, default=None, help="another checkout of kb (the 'before')")
    ap.add_argument("--keep", type=Path, default=None, help="keep the knowledge bases in DIR/<label>")
    ap.add_argument("--show", action="store_true", help="every question's rank")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--docs", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:  # child mode: one checkout, one knowledge base
        force = (args.one / "catalog.sqlite").exists()
        print(json.dumps(run_one(args.one, args.docs, force)))
        return

    import importlib.util

    spec = importlib.util.spec_from_file_location("longdocs_fetch", HERE / "fetch.py")
    fetch_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch_module)
    docs = fetch_module.fetch()
    questions = read_jsonl(QUESTIONS)
    runs = {"before": args.compare.resolve()} if args.compare else {}
    runs["after"] = REPO
    with tempfile.TemporaryDirectory(prefix="kb-longdocs-") as tmp:
        base = args.keep or Path(tmp)
        ranks = {}
        for label, checkout in runs.items():
            kb_dir = base / label
            seed = next((base / other for other in ranks if (base / other / "catalog.sqlite").exists()), None)
            if seed and not kb_dir.exists():  # start from the other run's knowledge base: its embedding cache
                shutil.copytree(seed, kb_dir)  # carries over, and the forced ingest re-chunks with this code
            ranks[label] = run_checkout(checkout, kb_dir, docs)
    table = {label: figures(r, questions) for label, r in ranks.items()}
    if args.json:
        print(json.dumps({"figures": table, "ranks": ranks}, indent=1))
        return
    if args.show:
        for q in questions:
            print(f"{q['id']:5s} {','.join(q['kinds']):28s} "
                  + " ".join(f"{label}={ranks[label][q['id']]}" for label in ranks) + f"  {q['question'][:70]}")
    print(f"{'kind':15s} {'n':>3s} " + " ".join(f"{label + ' ' + m:>16s}" for label in ranks
                                                 for m in ("hit@1", "hit@5", "mrr@10")))
    for kind in ("all", *KINDS):
        row = [table[label][kind] for label in ranks]
        print(f"{kind:15s} {row[0]['n']:3d} " + " ".join(f"{f[m]:16.3f}" for f in row
                                                         for m in ("hit@1", "hit@5", "mrr@10")))


if __name__ == "__main__":
    main()
