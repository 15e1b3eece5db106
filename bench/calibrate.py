"""Does kb answer when the answer is among its sources, and refuse when it is not? The calibration set of
bench/calibration/ (CMRC 2018 questions in Chinese, questions written over SciFact abstracts in English) is fed
straight to kb's answering path after retrieval (`Asker.answer_from`: packing, prompt, generation, citation
filter, grounding check), each question twice:

- answerable: its own paragraph and the nearest other paragraph (the gold one first or second, drawn from one
  seeded sequence over the languages in order: `--lang en` alone places the English gold paragraphs otherwise than
  `--lang zh en` does, so compare runs made with the same `--lang` and `--n`);
- unanswerable: the two nearest other paragraphs, which hold none of its gold answers.

    python bench/calibrate.py [--lang zh en] [--n 20] [--model qwen2.5-coder-1.5b] [--dump out.jsonl] [--show]
                              [--context-tokens N] [--source-tokens N]   (the packing; default: the settings')
    python bench/calibrate.py --names-test 600 [--lang zh en]   (the names test alone over 600 other CMRC
                                                                 questions or SciFact claims, no LLM)
    python bench/calibrate.py --alone out.jsonl [--lang en]   (each source of a dump's cases asked alone: the
                                                               source check at every threshold)

Per language it prints the share of answerable questions refused by the model or withdrawn by the grounding
check (goal <= 5%), the share whose answer holds a gold answer, and the share of unanswerable ones refused
(goal >= 95%). `--dump` keeps every raw answer, so grounding thresholds can be re-checked offline
(`--recheck out.jsonl`, no LLM).

The answer check (the model asked whether any source states the answer, before it answers) is measured in the
same run: every answer is generated and the check's P(yes) recorded beside it, and the figures are printed twice,
without the check (`nocheck_…`) and with it at `--answer-check` (default: the model's calibrated threshold), where
a P(yes) below the threshold is a refusal. The check runs before generation and does not change the answer, so
both are exact; `--recheck out.jsonl --answer-check T` re-reports at another threshold. The first-source check
(the same question asked of the best source alone first; at `--first-source-check`, default the model's, the
answer is written from that source alone) changes answers, so it runs as set; the share of answers written from
the first source alone is printed. So does the source check (`--source-check`, default the model's; each source
asked alone, a refusal unless one gets the threshold): its refusals count in both sets of figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dataset, figure, read_jsonl  # noqa: E402

HERE = Path(__file__).resolve().parent / "calibration"


def squash(text: str) -> str:
    return re.sub(r"[\s\-_·.,，。、「」《》\"'“”]+", "", text).casefold()


def holds_answer(text: str, answers: list[str]) -> bool:
    return any(squash(a) and squash(a) in squash(text) for a in answers)


def load_set(lang: str, n: int) -> tuple[list[dict], dict[str, dict]]:
    """(questions with `question`, `answers`, `doc_id`; corpus by id)."""
    if lang == "zh":
        base = dataset("cmrc2018-dev")
        qa = {q["id"]: q for q in read_jsonl(base / "qa.jsonl")}
        items = [qa[row["id"]] for row in read_jsonl(HERE / "zh.jsonl")]
    else:
        base = dataset("scifact")
        items = read_jsonl(HERE / "en.jsonl")
    corpus = {d["_id"]: d for d in read_jsonl(base / "corpus.jsonl")}
    return items[:n], corpus


class Neighbours:
    """The paragraphs nearest a question by shared tokens weighted by IDF (a small BM25-like ranking)."""

    def __init__(self, corpus: dict[str, dict]):
        from kb.text import tokenize

        self.tokenize = tokenize
        self.ids = list(corpus)
        self.tokens = [set(tokenize(corpus[i].get("title", "") + " " + corpus[i]["text"])) for i in self.ids]
        df = Counter(t for ts in self.tokens for t in ts)
        self.idf = {t: math.log(len(self.ids) / c) for t, c in df.items()}

    def nearest(self, question: str, exclude, k: int) -> list[str]:
        q = set(self.tokenize(question))
        scored = sorted(((sum(self.idf.get(t, 0) for t in q & ts), i) for i, ts in zip(self.ids, self.tokens)),
                        reverse=True)
        return [i for _, i in scored if not exclude(i)][:k]


def source(doc: dict, rank: int):
    from kb.answer.types import Source

    title = doc.get("title") or doc["_id"]
    return Source(0, [rank], doc["text"], 1.0 / (rank + 1), rank, 0, path=f"{doc['_id']}.txt", title=title,
                  doc_id=rank)


def classify(a: dict) -> str:
    if not a["abstained"]:
        return "answered"
    return "withdrawn" if a["unsupported_answer"] else "refused"


def with_check(rows: list[dict], threshold: float) -> list[dict]:
    """The outcomes had the answer check refused every answer whose P(yes) is below `threshold`."""
    out = []
    for r in rows:
        p = r.get("answerable")
        if threshold > 0 and p is not None and p < threshold and r["outcome"] != "refused":
            r = dict(r, outcome="refused", gold=False)
        out.append(r)
    return out


def report(rows: list[dict], threshold: float = 0.0) -> None:
    """The figures without the answer check (prefixed `nocheck_`) and, when `threshold` is set, with it."""
    if threshold > 0:
        report_outcomes(rows, "nocheck_")
        figure("answer_check", threshold)
        rows = with_check(rows, threshold)
    report_outcomes(rows, "")


def report_outcomes(rows: list[dict], prefix: str) -> None:
    def show(name, value, unit=""):
        figure(prefix + name, value, unit)

    for lang in sorted({r["lang"] for r in rows}):
        ans = [r for r in rows if r["lang"] == lang and r["kind"] == "answerable"]
        una = [r for r in rows if r["lang"] == lang and r["kind"] == "unanswerable"]
        if ans:
            show(f"{lang}_answerable_n", len(ans))
            show(f"{lang}_answerable_refused", sum(r["outcome"] == "refused" for r in ans) / len(ans))
            show(f"{lang}_answerable_withdrawn", sum(r["outcome"] == "withdrawn" for r in ans) / len(ans))
            show(f"{lang}_answerable_refused_or_withdrawn", sum(r["outcome"] != "answered" for r in ans) / len(ans))
            show(f"{lang}_answerable_holds_gold", sum(r["gold"] for r in ans) / len(ans))
        if una:
            show(f"{lang}_unanswerable_n", len(una))
            show(f"{lang}_unanswerable_refused", sum(r["outcome"] != "answered" for r in una) / len(una))
        alone = [r["first_source_only"] for r in rows if r["lang"] == lang and "first_source_only" in r]
        if alone:
            show(f"{lang}_first_source_only", sum(alone) / len(alone))
        times = [r["seconds"] for r in rows if r["lang"] == lang and "seconds" in r]
        if times:
            show(f"{lang}_seconds_per_answer_p50", sorted(times)[len(times) // 2], "s")


def recheck(path: Path, threshold: float) -> None:
    """The checks of the current code over answers recorded with --dump (no LLM): the names test before the LLM
    (a question it stops gets no answer), the quote of sources the model judged sure (P(yes) at the default
    settings' first-source threshold) and then declined, and the grounding check after it. Exact for a dump whose
    answers the names test did not stop (one made with the test off, e.g. by an older checkout): greedy decoding
    gives the same answer to the same prompt."""
    report(rechecked(read_jsonl(path)), threshold)


def rechecked(rows: list[dict]) -> list[dict]:
    """`rows` (a --dump's) with their outcomes and gold as the current code's checks make them (see `recheck`)."""
    from kb.answer.extractive import quoted_answer
    from kb.answer.grounding import is_decline, unmentioned_names, unsupported
    from kb.answer.types import AskOptions, Source
    from kb.config import load_settings

    options = AskOptions.from_settings(load_settings(None, {}))
    for r in rows:
        raw = r["unsupported_answer"] or r["answer"]
        sources, unread = ([Source(s.get("n", 0), [i], s["text"], 0.0, i, path=s["path"], title=s.get("title"))
                            for i, s in enumerate(r.get(key, []))] for key in ("sources", "unread"))
        if unmentioned_names(r["question"], sources + unread):
            r["outcome"] = "refused"
        elif is_decline(raw) and not r["first_source_only"] and options.sure(r["answerable"]):
            # judged to state the answer, then declined: the sources are quoted (kb.answer.extractive.quoted_answer)
            r["outcome"], raw = "answered", quoted_answer(r["question"], sources, r["lang"])[0]
        elif is_decline(raw) or r["outcome"] == "refused":
            r["outcome"] = "refused"
        else:
            r["outcome"] = "withdrawn" if unsupported(raw, sources, r["question"], unread) else "answered"
        r["gold"] = r["outcome"] == "answered" and holds_answer(raw, r["answers"])
    return rows


def alone(path: Path, langs: list[str], model: str | None) -> None:
    """How the source check (`source_check`) would do at each threshold, over the answers recorded with --dump:
    each source of each case (read or unread) asked alone, as the check asks it (that source numbered 1), and a
    case answered from all its sources counted refused when no source alone gets the threshold (an answer from
    the first source alone, or a refusal, stays). The recorded outcomes are rechecked with the current code first.
    Needs the LLM (~10 s a case); prints each case's P(yes) per source, then per language and threshold the
    answerable questions lost and the unanswerable ones refused."""
    from kb.answer.prompt import check_messages
    from kb.answer.types import Source
    from kb.config import load_settings
    from kb.llm import load_llm

    llm = load_llm(load_settings(None, {"llm_model": model} if model else {}))
    rows = [r for r in rechecked(read_jsonl(path)) if r["lang"] in langs]
    for r in rows:
        r["alone"] = [llm.yes_probability(check_messages(
            r["question"], [Source(1, [0], d["text"], 1.0, 0, path=d["path"], title=d.get("title"))], r["lang"]))
            for d in r["sources"] + r.get("unread", [])]
        print(f"# {r['lang']} {r['kind']} {r['id']} {r['outcome']} first_source_only={r['first_source_only']} "
              f"alone={[round(p, 3) for p in r['alone']]}", flush=True)
    for lang in langs:
        ans = [r for r in rows if r["lang"] == lang and r["kind"] == "answerable"]
        una = [r for r in rows if r["lang"] == lang and r["kind"] == "unanswerable"]
        for t in [x / 100 for x in range(60, 90)]:
            def stopped(r):
                return r["outcome"] != "answered" or (not r["first_source_only"] and max(r["alone"]) < t)

            print(f"{lang} source_check {t:.2f}: answerable lost {sum(map(stopped, ans))}/{len(ans)}, "
                  f"unanswerable refused {sum(map(stopped, una))}/{len(una)}")


def names_test(n: int, lang: str = "zh", seed: int = 14) -> None:
    """The names test alone (kb.answer.grounding.unmentioned_names, no LLM) over `n` questions outside the
    calibration set, drawn at random: how often it stops an answerable one (its paragraph and the nearest other)
    and an unanswerable one (the two nearest others, as above). Chinese: CMRC questions; English: SciFact claims
    with their first judged abstract (claims, not questions, but they name codes the same way)."""
    from kb.answer.grounding import unmentioned_names

    if lang == "zh":
        base = dataset("cmrc2018-dev")
        held = {row["id"] for row in read_jsonl(HERE / "zh.jsonl")}
        items = [q for q in read_jsonl(base / "qa.jsonl") if q["id"] not in held]
    else:
        base = dataset("scifact")
        held = {row["doc_id"] for row in read_jsonl(HERE / "en.jsonl")}
        claims = {q["_id"]: q["text"] for q in read_jsonl(base / "queries.jsonl")}
        judged: dict[str, str] = {}
        for split in ("train", "test"):
            for line in (base / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]:
                qid, doc_id, *_ = line.split("\t")
                judged.setdefault(qid, doc_id)
        items = [{"question": claims[q], "doc_id": d, "answers": []} for q, d in judged.items()
                 if q in claims and d not in held]
    items = random.Random(seed).sample(items, min(n, len(items)))
    corpus = {d["_id"]: d for d in read_jsonl(base / "corpus.jsonl")}
    items = [q for q in items if q["doc_id"] in corpus]
    near = Neighbours(corpus)
    stopped = {"answerable": 0, "unanswerable": 0}
    for q in items:
        others = near.nearest(q["question"], lambda i: i == q["doc_id"] or holds_answer(corpus[i]["text"],
                                                                                       q["answers"]), 2)
        cases = {"answerable": [corpus[q["doc_id"]], corpus[others[0]]],
                 "unanswerable": [corpus[i] for i in others]}
        for kind, docs in cases.items():
            if unmentioned_names(q["question"], [source(d, r) for r, d in enumerate(docs)]):
                stopped[kind] += 1
    figure(f"{lang}_names_test_questions", len(items))
    figure(f"{lang}_names_test_answerable_stopped", stopped["answerable"] / len(items))
    figure(f"{lang}_names_test_unanswerable_stopped", stopped["unanswerable"] / len(items))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", nargs="+", default=["zh", "en"])
    ap.add_argument("--n", type=int, default=20, help="questions per language (each asked twice)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--kinds", nargs="+", default=["answerable", "unanswerable"])
    ap.add_argument("--dump", type=Path, default=None)
    ap.add_argument("--recheck", type=Path, default=None)
    ap.add_argument("--alone", type=Path, default=None, metavar="DUMP",
                    help="each source of a --dump's cases asked alone: the source check at every threshold (LLM)")
    ap.add_argument("--names-test", type=int, default=0, metavar="N",
                    help="only the names test, no LLM, over N other CMRC questions (zh) or SciFact claims (en)")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--answer-check", type=float, default=None,
                    help="the answer check's threshold for the second set of figures (default: the model's; 0: none)")
    ap.add_argument("--first-source-check", type=float, default=None,
                    help="answer from the best source alone when its P(yes) is at least this (default: the model's)")
    ap.add_argument("--source-check", type=float, default=None,
                    help="refuse unless some source asked alone gets this P(yes) (default: the model's; 0: none)")
    ap.add_argument("--context-tokens", type=int, default=None, help="issue 14's before: 1200")
    ap.add_argument("--source-tokens", type=int, default=None, help="issue 14's before: 0 (whole sources)")
    args = ap.parse_args()
    if args.recheck:
        recheck(args.recheck, args.answer_check or 0.0)
        return
    if args.alone:
        alone(args.alone, args.lang, args.model)
        return
    if args.names_test:
        for lang in args.lang:
            names_test(args.names_test, lang)
        return

    from kb.answer.asker import Asker
    from kb.answer.types import AskOptions
    from kb.config import load_settings
    from kb.llm import load_llm

    from kb.embedders import embedding_spec, load_embedder

    settings = load_settings(None, {"llm_model": args.model} if args.model else {})
    llm = load_llm(settings)
    # the default embedder scores a long source's sentences, as the searcher's does in `kb ask`
    asker = Asker(None, lambda: llm, embedder=load_embedder(embedding_spec(settings)))
    options = AskOptions.from_settings(settings, context_tokens=args.context_tokens, source_tokens=args.source_tokens,
                                       first_source_check=args.first_source_check, source_check=args.source_check)
    threshold = options.answer_check if args.answer_check is None else args.answer_check
    if threshold > 0:  # the check runs on every question but refuses none: both sets of figures from one run
        options.answer_check = 1e-9
    rng = random.Random(14)
    rows = []
    dump = open(args.dump, "w", encoding="utf-8") if args.dump else None
    for lang in args.lang:
        items, corpus = load_set(lang, args.n)
        near = Neighbours(corpus)
        for q in items:
            gold = corpus[q["doc_id"]]
            others = near.nearest(q["question"], lambda i: i == q["doc_id"] or holds_answer(corpus[i]["text"],
                                                                                           q["answers"]), 2)
            cases = {"answerable": [gold, corpus[others[0]]] if rng.random() < 0.5 else [corpus[others[0]], gold],
                     "unanswerable": [corpus[i] for i in others]}
            for kind in args.kinds:
                t = time.perf_counter()
                a = asker.answer_from(q["question"], [source(d, r) for r, d in enumerate(cases[kind])],
                                      options).to_dict()
                row = {"lang": lang, "kind": kind, "id": q.get("id"), "question": q["question"],
                       "answers": q["answers"], "outcome": classify(a), "answer": a["answer"],
                       "unsupported_answer": a["unsupported_answer"], "reason": a["abstain_reason"],
                       "gold": not a["abstained"] and holds_answer(a["answer"], q["answers"]),
                       "seconds": time.perf_counter() - t,
                       "prompt_tokens": a["timings_ms"].get("prompt_tokens"), "answerable": a["answerable"],
                       "first_source_only": a["first_source_only"],
                       "sources": [{"n": s["n"], "path": s["path"], "title": s["title"], "text": s["text"]}
                                   for s in a["sources"]],
                       "unread": [{"path": f"{d['_id']}.txt", "title": d.get("title"), "text": d["text"]}  # packed,
                                  for d in cases[kind][len(a["sources"]):]]}  # not read (first source alone)
                rows.append(row)
                if dump:
                    dump.write(json.dumps(row, ensure_ascii=False) + "\n")
                    dump.flush()
                if args.show:
                    print(f"# {lang} {kind} {row['id']} {row['outcome']} gold={row['gold']} "
                          f"{row['seconds']:.0f}s P(yes)={row['answerable']} first_source_only={row['first_source_only']} "
                          f"({row['reason']})\n"
                          f"#   Q: {row['question']}\n"
                          f"#   A: {(row['unsupported_answer'] or row['answer'])!r}", flush=True)
    report(rows, threshold)


if __name__ == "__main__":
    main()
