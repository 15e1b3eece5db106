"""What does `kb ask` add to the LLM's own time? Time to first token and total time of kb's answer path (retrieval,
packing, prompt, streamed generation through the citation filter), beside the floor: the same final prompt run
through bare llama-cpp-python (`Llama.create_completion`, same tokens and sampling) on the same loaded model, in
the same process. The KV cache is reset before every run, so neither reuses the other's prompt. Model load is
excluded (one warm-up generation first). Then the same questions with RAG-Fusion on, showing its cost.

    python bench/ask.py [--kb DIR] [--model qwen2.5-coder-1.5b] [--questions 8]

Knowledge base: sample_docs, ingested into a temporary directory with the default embedding model unless --kb is
given. Questions: the first --questions of sample_docs/QUESTIONS.md that the LLM answers (an early abstention
never reaches the model). Prints medians over them; the goal is kb's overhead before the first token <= 20% of
the floor's prompt-evaluation time.
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


def timed_kb(asker, question: str, options) -> tuple[float, float, object]:
    """(seconds to the first streamed text, total seconds, Answer) of Asker.ask, the KV cache reset first."""
    asker.llm._llama.reset()
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
    args = ap.parse_args()

    from kb.answer import AskOptions, messages_for, open_asker
    from kb.config import load_settings
    from kb.ingest import IngestOptions, ingest_with_settings

    tmp = None
    path = args.kb
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="kb-bench-ask-")
        path = Path(tmp.name) / "kb"
        settings = load_settings(str(path))
        ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[REPO / "sample_docs"]))
    settings = load_settings(str(path), {"llm_model": args.model})
    asker = open_asker(settings)
    asker.llm.chat([{"role": "user", "content": "Say OK."}], max_tokens=4)  # load and warm up: not measured

    questions, _ = load_questions()
    off = AskOptions.from_settings(settings, fusion="off")
    rows = []
    for q in questions:
        if len(rows) == args.questions:
            break
        kb_first, kb_total, answer = timed_kb(asker, q["question"], off)
        if "prompt_tokens" not in answer.timings_ms:
            continue  # abstained before the LLM
        messages = messages_for(q["question"], answer.sources, answer.language)
        floor_first, floor_total, n_prompt = timed_floor(asker.llm, messages, off.max_tokens, off.temperature)
        fused_first, fused_total, _ = timed_kb(asker, q["question"], AskOptions.from_settings(settings, fusion="on"))
        rows.append(dict(kb_first=kb_first, kb_total=kb_total, floor_first=floor_first, floor_total=floor_total,
                         overhead=kb_first - floor_first, prompt_tokens=n_prompt,
                         fused_first=fused_first, fused_total=fused_total))
        print(f"# {q['id']} prompt {n_prompt} tok: kb first {kb_first:.2f} s / floor {floor_first:.2f} s; "
              f"total {kb_total:.2f} / {floor_total:.2f} s; fusion on: first {fused_first:.2f} s", flush=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    figure("questions", len(rows))
    figure("prompt_tokens_p50", med("prompt_tokens"))
    figure("floor_first_token_p50", med("floor_first"), "s")
    figure("kb_first_token_p50", med("kb_first"), "s")
    figure("kb_overhead_before_first_token_p50", med("overhead"), "s")
    figure("kb_overhead_ratio_p50", statistics.median(r["overhead"] / r["floor_first"] for r in rows))
    figure("floor_total_p50", med("floor_total"), "s")
    figure("kb_total_p50", med("kb_total"), "s")
    figure("fusion_on_first_token_p50", med("fused_first"), "s")
    figure("fusion_cost_before_first_token_p50", statistics.median(r["fused_first"] - r["kb_first"] for r in rows),
           "s")
    figure("fusion_on_total_p50", med("fused_total"), "s")
    if tmp is not None:
        asker.close()
        tmp.cleanup()


if __name__ == "__main__":
    main()
