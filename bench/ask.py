"""Time to the first word of `kb ask`, before and after issue 14, in one run, question by question (interleaved,
since the machine is shared): *before* as shipped (threads = the physical cores, the whole prompt evaluated
every time, up to 1,200 tokens of whole sources), *after* as now (threads chosen by `auto_threads`, the system
prompt's KV state loaded from the models dir as a new `kb ask` process does, the settings' packing:
`context_tokens`, `source_tokens`, the answer checks). Each run starts from an empty KV cache. Model load is excluded (one
warm-up generation first). With --floor, the same final prompt through bare llama-cpp-python
(`Llama.create_completion`, same tokens and sampling): kb's own overhead. With --fusion, RAG-Fusion's cost. With
--all-sources, *after* once more with the first-source check off (`first_source_check` 0): what answering from the
best source alone changes. With --flip-flash, *after* once more with the `flash_attention` setting flipped (a second
copy of the model).

    python bench/ask.py [--kb DIR] [--model qwen2.5-coder-1.5b] [--questions 8] [--floor] [--fusion] [--threads N]
                        [--all-sources] [--flip-flash]

Knowledge base: sample_docs, ingested into a temporary directory with the default embedding model unless --kb is
given. Questions: the first --questions of sample_docs/QUESTIONS.md that the LLM answers (an early abstention
never reaches the model). Prints medians over them; the goal (issue 14) is after/before <= 0.5 for the first
token, with the same answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, figure  # noqa: E402
from answers import load_questions  # noqa: E402


BEFORE_CONTEXT_TOKENS = 1200


def timed_kb(asker, question: str, options, one_shot: bool = True) -> tuple[float, float, object]:
    """(seconds to the first streamed text, total seconds, Answer) of Asker.ask. `one_shot`: as a new `kb ask`
    process finds it, the KV cache empty and no prefix state in memory (a saved one on disk is loaded)."""
    llm = asker.llm
    if one_shot:
        llm._llama.reset()
        llm.prefix_cache.states.clear()
    first: list[float] = []
    start = time.perf_counter()
    answer = asker.ask(question, options, on_text=lambda _t: first.append(time.perf_counter()) if not first else None)
    end = time.perf_counter()
    return (first[0] if first else end) - start, end - start, answer


def timed_floor(llm, messages: list[dict], max_tokens: int, temperature: float) -> tuple[float, float, int]:
    """(seconds to the first token, total seconds, prompt tokens) of bare llama-cpp-python on the same prompt."""
    from kb.llm import REPEAT_PENALTY

    llama = llm._llama
    tokens = llm.prompt_tokens(messages)
    llama.reset()
    first = None
    start = time.perf_counter()
    for chunk in llama.create_completion(prompt=tokens, max_tokens=max_tokens, temperature=temperature,
                                         repeat_penalty=REPEAT_PENALTY, stop=llm._stops, stream=True):
        if first is None and chunk["choices"][0]["text"]:
            first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - start, end - start, len(tokens)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", type=Path, default=None, help="a knowledge base holding sample_docs (default: build one)")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--floor", action="store_true", help="also the bare llama-cpp-python floor (one more prompt)")
    ap.add_argument("--fusion", action="store_true", help="also with RAG-Fusion on")
    ap.add_argument("--threads", type=int, default=0,
                    help="before and after both with this many threads: what the prompt's size alone changes")
    ap.add_argument("--all-sources", action="store_true", help="also after with first_source_check 0")
    ap.add_argument("--flip-flash", action="store_true",
                    help="also after with the flash_attention setting flipped (a second copy of the model)")
    args = ap.parse_args()

    from kb.answer import Asker, AskOptions, messages_for
    from kb.config import load_settings
    from kb.ingest import IngestOptions, ingest_with_settings
    from kb.llm import load_llm, physical_cores
    from kb.llm.runtime import LLM, state_dir
    from kb.retrieve import open_searcher

    tmp = None
    path = args.kb
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="kb-bench-ask-")
        path = Path(tmp.name) / "kb"
        settings = load_settings(str(path))
        ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[REPO / "sample_docs"]))
    settings = load_settings(str(path), {"llm_model": args.model, **({"threads": args.threads} if args.threads else {})})
    searcher = open_searcher(settings)
    after_llm = load_llm(settings)
    # before: as shipped (threads = the physical cores, the whole prompt evaluated every time)
    before_llm = LLM(after_llm.path, n_ctx=after_llm.n_ctx, threads=args.threads or physical_cores(), gpu_layers=0,
                     flash_attention=False)
    before_llm.prefix_cache.enabled = False
    before, after = Asker(searcher, lambda: before_llm), Asker(searcher, lambda: after_llm)
    flipped_llm = LLM(after_llm.path, n_ctx=after_llm.n_ctx, threads=after_llm.threads, gpu_layers=0,
                      state_dir=state_dir(settings), flash_attention=not after_llm.flash_attention) \
        if args.flip_flash else None
    flipped = Asker(searcher, lambda: flipped_llm)
    for llm in filter(None, (before_llm, after_llm, flipped_llm)):  # load and warm up: not measured
        llm.chat([{"role": "user", "content": "Say OK."}], max_tokens=4)
    print(f"# before: {before_llm.threads} threads, no prefix state, no flash attention; after: {after_llm.threads} "
          f"threads, prefix state from disk, flash attention {'on' if after_llm.flash_attention else 'off'}", flush=True)

    questions, _ = load_questions()
    off = AskOptions.from_settings(settings, fusion="off")
    # before: the packing as issue 14 found it (1,200 tokens of whole sources, no answer check, no translation of the
    # question, no pivot); after: the settings'
    off_before = AskOptions.from_settings(settings, fusion="off", context_tokens=BEFORE_CONTEXT_TOKENS, source_tokens=0,
                                          answer_check=0, first_source_check=0, translate=False, pivot=False)
    off_all = AskOptions.from_settings(settings, fusion="off", first_source_check=0)
    rows = []
    for q in questions:
        if len(rows) == args.questions:
            break
        b_first, b_total, b_answer = timed_kb(before, q["question"], off_before)
        if "prompt_tokens" not in b_answer.timings_ms:
            continue  # abstained before the LLM
        a_first, a_total, a_answer = timed_kb(after, q["question"], off)
        row = dict(before_first=b_first, before_total=b_total, after_first=a_first, after_total=a_total,
                   prompt_tokens=b_answer.timings_ms["prompt_tokens"],
                   after_evaluated=a_answer.timings_ms.get("prompt_tokens_evaluated", float("nan")),
                   same_answer=b_answer.answer == a_answer.answer, alone=a_answer.first_source_only)
        if args.all_sources:
            row["all_first"], row["all_total"], all_answer = timed_kb(after, q["question"], off_all)
            row["same_as_all"] = all_answer.answer == a_answer.answer
        if args.flip_flash:
            row["flipped_first"], row["flipped_total"], flipped_answer = timed_kb(flipped, q["question"], off)
            row["same_as_flipped"] = flipped_answer.answer == a_answer.answer
        if args.floor:
            messages = messages_for(q["question"], a_answer.sources, a_answer.language)
            row["floor_first"], row["floor_total"], _ = timed_floor(after_llm, messages, off.max_tokens,
                                                                    off.temperature)
        if args.fusion:
            row["fused_first"], row["fused_total"], _ = timed_kb(after, q["question"],
                                                                 AskOptions.from_settings(settings, fusion="on"))
        rows.append(row)
        print(f"# {q['id']} prompt {row['prompt_tokens']:.0f} tok (after: {row['after_evaluated']:.0f} evaluated, "
              f"{after_llm.last_stats.get('prefix_state')}): first token before {b_first:.2f} s / after "
              f"{a_first:.2f} s ({'first source alone' if row['alone'] else 'all sources'}"
              + (f"; all sources {row['all_first']:.2f} s, same answer {row['same_as_all']}" if args.all_sources else "")
              + (f"; flash attention {'off' if after_llm.flash_attention else 'on'} {row['flipped_first']:.2f} s, "
                 f"same answer {row['same_as_flipped']}" if args.flip_flash else "")
              + f"); total {b_total:.2f} / {a_total:.2f} s; same answer {row['same_answer']}", flush=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    figure("questions", len(rows))
    figure("prompt_tokens_p50", med("prompt_tokens"))
    figure("after_prompt_tokens_evaluated_p50", med("after_evaluated"))
    figure("before_first_token_p50", med("before_first"), "s")
    figure("after_first_token_p50", med("after_first"), "s")
    figure("after_over_before_first_token_p50", statistics.median(r["after_first"] / r["before_first"] for r in rows))
    figure("before_total_p50", med("before_total"), "s")
    figure("after_total_p50", med("after_total"), "s")
    figure("same_answer_share", sum(r["same_answer"] for r in rows) / len(rows))
    figure("after_first_source_only_share", sum(r["alone"] for r in rows) / len(rows))
    if args.all_sources:
        figure("all_sources_first_token_p50", med("all_first"), "s")
        figure("after_over_all_sources_first_token_p50",
               statistics.median(r["after_first"] / r["all_first"] for r in rows))
        figure("same_answer_as_all_sources_share", sum(r["same_as_all"] for r in rows) / len(rows))
    if args.flip_flash:
        figure("flash_flipped_first_token_p50", med("flipped_first"), "s")
        figure("after_over_flash_flipped_first_token_p50",
               statistics.median(r["after_first"] / r["flipped_first"] for r in rows))
        figure("flipped_over_before_first_token_p50",
               statistics.median(r["flipped_first"] / r["before_first"] for r in rows))
        figure("same_answer_as_flash_flipped_share", sum(r["same_as_flipped"] for r in rows) / len(rows))
    if args.floor:
        figure("floor_first_token_p50", med("floor_first"), "s")
        figure("kb_overhead_ratio_p50", statistics.median((r["after_first"] - r["floor_first"]) / r["floor_first"]
                                                          for r in rows))
    if args.fusion:
        figure("fusion_on_first_token_p50", med("fused_first"), "s")
        figure("fusion_on_total_p50", med("fused_total"), "s")
    searcher.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
