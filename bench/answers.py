"""Answer quality on sample_docs: every planted fact asked in its document's language and in the other one
(QUESTIONS.md and QUESTIONS_TRANSLATED.md: 39 same-language and 39 cross-lingual cases). For each, does `kb ask`
cite the expected file and location (any citation, inferred ones included; "marked": by a mark in the answer's
text, after kb replaced wrong ones; "model_marked": by a mark the model wrote), does it at least retrieve it among
its sources, does the answer state the fact (its numbers, else its words, as an answer in the question's language may write them); do the off-topic
questions abstain. Figures per model, for the same-language and the cross-lingual cases apart.

    python bench/answers.py [--models qwen2.5-coder-1.5b tiny] [--embedding-model e5] [--fusion auto]
                            [--cases all|same|cross] [--kb PATH] [--show]   (--show prints every answer)
                            [--context-tokens N] [--source-tokens N]   (the packing; default: the settings')
                            [--ids q14 q02t ...]   (only these cases, then the off-topic ones)
                            [--answer-check T]   (the answer check's threshold; default: the model's)
                            [--first-source-check T]   (answer from the best source alone at this P(yes); 0: never)
                            [--source-check T]   (refuse unless some source alone gets this P(yes); 0: never)

The answer check (the model asked, before it answers, whether any source states the answer) is measured in the
same run: every answer is generated with the check's P(yes) recorded, and the figures are printed without the
check (`nocheck_…`) and with it (a P(yes) below the threshold is a refusal). The check does not change the answer.
The first-source check does (an answer written from the best source alone): it runs as configured, and the share of
answers written that way is printed. "Retrieved" counts every source packed for the model, read or not.

Runs in-process with the real packaged models (the embedding model of the default config unless given).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, figure  # noqa: E402

SAMPLE = REPO / "sample_docs"


def _check_questions():
    spec = importlib.util.spec_from_file_location("check_questions", SAMPLE / "check_questions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_questions():
    """(QUESTIONS.md's rows, its off-topic rows)."""
    return _check_questions().parse_tables((SAMPLE / "QUESTIONS.md").read_text(encoding="utf-8"))


def load_cases():
    """Every fact asked both ways (check_questions.all_cases: `cross`, `answers` added)."""
    return _check_questions().all_cases()


def location_matches(item: dict, q: dict) -> bool:
    """`item`: a citation or source dict of `kb ask --json`."""
    if Path(item["path"]).name != q["file"]:
        return False
    loc = q["location"]
    if loc.startswith("p."):
        return item["page"] is not None and item["page"] <= int(loc[2:]) <= (item.get("page_end") or item["page"])
    if loc.startswith("slide "):
        return item["slide"] == int(loc.split()[1])
    return loc == "-" or (item.get("heading") or "").endswith(loc)


def _digits(text: str) -> list[str]:
    """The numbers of a text, integers without leading zeros (2024-03-05 is 2024 年 3 月 5 日)."""
    return [n if "." in n else n.lstrip("0") or "0" for n in re.findall(r"\d+(?:\.\d+)?", text.replace(",", ""))]


def contains_fact(answer: str, expected: str) -> bool:
    """The expected fact is in the answer: every number of it (units and wording may differ), else the words."""
    numbers = _digits(expected)
    if numbers:
        have = set(_digits(answer))
        return all(n in have for n in numbers)
    squash = lambda t: re.sub(r"[\s\-_·.,，。]+", "", t).casefold()  # noqa: E731
    return squash(expected) in squash(answer)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["qwen2.5-coder-1.5b", "tiny"])
    ap.add_argument("--embedding-model", default=None)
    ap.add_argument("--fusion", default="auto", choices=("auto", "on", "off"))
    ap.add_argument("--cases", default="all", choices=("all", "same", "cross"))
    ap.add_argument("--kb", default=None, help="an existing knowledge base of sample_docs (else a throwaway one)")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--ids", nargs="+", default=None, help="only these cases (e.g. q14 q02t), then the off-topic ones")
    ap.add_argument("--context-tokens", type=int, default=None, help="issue 14's before: 1200")
    ap.add_argument("--source-tokens", type=int, default=None, help="issue 14's before: 0 (whole sources)")
    ap.add_argument("--answer-check", type=float, default=None,
                    help="the answer check's threshold for the second set of figures (default: the model's; 0: none)")
    ap.add_argument("--first-source-check", type=float, default=None,
                    help="answer from the best source alone when its P(yes) is at least this (default: the model's)")
    ap.add_argument("--source-check", type=float, default=None,
                    help="refuse unless some source asked alone gets this P(yes) (default: the model's; 0: none)")
    args = ap.parse_args()

    from kb.answer import Asker, AskOptions
    from kb.config import load_settings
    from kb.ingest import IngestOptions, ingest_with_settings
    from kb.llm import load_llm
    from kb.retrieve import open_searcher

    _, off_topic = load_questions()
    questions = [q for q in load_cases() if (args.cases == "all" or q["cross"] == (args.cases == "cross"))
                 and (not args.ids or q["id"] in args.ids)]
    with tempfile.TemporaryDirectory() as tmp:
        flags = {"embedding_model": args.embedding_model} if args.embedding_model else {}
        settings = load_settings(args.kb or str(Path(tmp) / "kb"), flags)
        if not args.kb:
            ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[SAMPLE]))
        searcher = open_searcher(settings)
        for model in args.models:
            settings.values["llm_model"] = model
            llm = load_llm(settings)
            asker = Asker(searcher, lambda: llm)
            options = AskOptions.from_settings(settings, fusion=args.fusion, context_tokens=args.context_tokens,
                                               source_tokens=args.source_tokens,
                                               first_source_check=args.first_source_check,
                                               source_check=args.source_check)
            threshold = options.answer_check if args.answer_check is None else args.answer_check
            if threshold > 0:  # the check runs on every question but refuses none: both sets of figures from one run
                options.answer_check = 1e-9
            results = []  # (cross?, cited, retrieved, fact, P(yes), marked, model_marked)
            latencies, speeds, alone = [], [], []
            for q in questions:
                packed: list = []
                a = asker.ask(q["question"], options, on_sources=packed.extend).to_dict()
                latencies.append((q["cross"], a["timings_ms"]["total"]))
                if a["tokens_per_s"]:
                    speeds.append(a["tokens_per_s"])
                c = any(location_matches(x, q) for x in a["citations"])
                # the marks in the answer's text (after kb replaced wrong ones), and the model's own (before)
                by_n = {x["n"]: x for x in a["sources"]}
                marked = [x for x in a["citations"] if not x["inferred"]]
                m = any(location_matches(x, q) for x in marked)
                m0 = any(location_matches(by_n[n], q) for x in marked for n in x.get("replaces") or [x["n"]]
                         if n in by_n)
                r = any(location_matches(x, q) for x in [s.to_dict() for s in packed] or a["sources"])
                alone.append(a["first_source_only"])
                f = not a["abstained"] and any(contains_fact(a["answer"], x) for x in q["answers"])
                results.append((q["cross"], c, r, f, a["answerable"], m, m0))
                if args.show:
                    print(f"# {q['id']} {q['lang']} cited={c} marked={m} model_marked={m0} retrieved={r} fact={f} "
                          f"abstained={a['abstained']} "
                          f"({a['abstain_reason']}) P(yes)={a['answerable']} first_source_only={a['first_source_only']} "
                          f"pivot={(a.get('pivot') or {}).get('question')!r} "
                          f"first_token={a['timings_ms'].get('first_token')} total={a['timings_ms']['total']:.0f} "
                          f"settle={a['timings_ms'].get('settle', 0):.0f} "
                          f"queries={a['queries']}\n"
                          f"#   Q: {q['question']}\n#   A: {a['answer']!r}", flush=True)
            refusals = []  # (abstained, P(yes))
            for q in off_topic:
                a = asker.ask(q["question"], options).to_dict()
                refusals.append((a["abstained"], a["answerable"]))
                if args.show:
                    print(f"# {q['id']} abstained={a['abstained']} ({a['abstain_reason']}) "
                          f"P(yes)={a['answerable']}\n#   Q: {q['question']}\n#   A: {a['answer']!r}", flush=True)
            name = os.path.basename(model).replace(".gguf", "")
            for prefix, cut in (("nocheck_", 0.0), ("", threshold)) if threshold > 0 else (("", 0.0),):
                refused = lambda p: cut > 0 and p is not None and p < cut  # noqa: E731
                for cross in (False, True):
                    rows = [(c and not refused(p), c or r, f and not refused(p), m and not refused(p),
                             m0 and not refused(p)) for x, c, r, f, p, m, m0 in results if x == cross]
                    if rows:
                        kind = "cross_lingual" if cross else "same_language"
                        for i, what in enumerate(("cited_expected", "cited_or_retrieved_expected",
                                                  "answer_states_fact", "marked_expected", "model_marked_expected")):
                            figure(f"{prefix}{name}_{kind}_{what}", sum(row[i] for row in rows) / len(rows))
                figure(f"{prefix}{name}_offtopic_abstained",
                       sum(a or refused(p) for a, p in refusals) / len(refusals))
            if threshold > 0:
                figure(f"{name}_answer_check", threshold)
            figure(f"{name}_first_source_only", sum(alone) / len(alone))
            figure(f"{name}_p50_seconds", statistics.median(t for _, t in latencies) / 1000, "s")
            for cross in (False, True):
                mine = [t for x, t in latencies if x == cross]
                if mine:
                    kind = "cross_lingual" if cross else "same_language"
                    figure(f"{name}_{kind}_p50_seconds", statistics.median(mine) / 1000, "s")
            if speeds:
                figure(f"{name}_generation_tokens_per_s", statistics.median(speeds))
        searcher.close()


if __name__ == "__main__":
    main()
