"""kb shell: slash-command parsing, a session with a scripted LLM, and the real thing in a pseudo-terminal
(pexpect) and in a pipe, with the packaged embedding model and the `tiny` LLM."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO, SAMPLE_DOCS, fake_kb
from kb.answer import Asker, AskOptions
from kb.config import load_settings
from kb.retrieve import Searcher
from kb.shell import COMMANDS, Command, CommandError, Shell, parse_choice, parse_command, parse_int

# ---- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("line, expected", [
    ("What is the warranty?", None),
    ("  /help ", Command("help")),
    ("/K 5", Command("k", "5")),
    ("/search  stirring speed ", Command("search", "stirring speed")),
    ("/show 2", Command("show", "2")),
    ("/quit", Command("exit")),
    ("/?", Command("help")),
    ("/nonsense arg", Command("nonsense", "arg")),
    ("/", Command("")),
])
def test_parse_command(line, expected):
    assert parse_command(line) == expected


def test_argument_parsers_explain_in_one_line():
    assert parse_int("7", "/k N", 1, 50) == 7
    for bad, why in (("x", "'x' is not a number"), ("0", "between 1 and 50"), ("51", "between 1 and 50")):
        with pytest.raises(CommandError, match=why) as e:
            parse_int(bad, "/k N", 1, 50)
        assert "\n" not in str(e.value) and str(e.value).startswith("/k N: ")
    assert parse_choice("ON", "/fusion on|off|auto", ("on", "off", "auto")) == "on"
    with pytest.raises(CommandError, match=r"expected on or off or auto \(got 'maybe'\)"):
        parse_choice("maybe", "/fusion on|off|auto", ("on", "off", "auto"))


def stub_shell() -> Shell:
    """A shell whose commands run without a knowledge base (no question may be asked of it)."""
    asker = SimpleNamespace(has_reranker=False, embedding_model="fake", embedder_loaded=False, loaded_llm=None,
                            close=lambda: None)
    return Shell(load_settings(), AskOptions(), asker=asker)


def run(shell: Shell, capsys, line: str) -> tuple[bool, str, str]:
    keep_going = shell.handle(line)
    captured = capsys.readouterr()
    return keep_going, captured.out, captured.err


def test_commands_change_the_options_and_bad_arguments_get_one_line(capsys):
    shell = stub_shell()
    assert run(shell, capsys, "/k 9") == (True, "k = 9\n", "") and shell.options.top_k == 9
    assert run(shell, capsys, "/k x") == (True, "", "/k N: 'x' is not a number\n") and shell.options.top_k == 9
    assert run(shell, capsys, "/fusion off")[1] == "fusion = off\n" and shell.options.fusion == "off"
    assert run(shell, capsys, "/fusion")[1] == "fusion = off\n"
    assert "no reranker is configured" in run(shell, capsys, "/rerank on")[1] and shell.options.rerank
    assert run(shell, capsys, "/rerank sideways")[2].startswith("/rerank on|off: expected on or off")
    assert run(shell, capsys, "/show 1")[2] == "no answer yet: ask a question first\n"
    assert run(shell, capsys, "/sources")[2] == "no answer yet: ask a question first\n"
    assert run(shell, capsys, "/search")[2] == "/search QUERY: what should I search for?\n"
    _, out, _ = run(shell, capsys, "/help")
    assert all(usage in out for usage, _ in COMMANDS.values())
    assert run(shell, capsys, "") == (True, "", "")
    assert run(shell, capsys, "/exit")[0] is False and run(shell, capsys, "/quit")[0] is False


def test_an_unknown_command_lists_the_commands(capsys):
    keep_going, out, err = run(stub_shell(), capsys, "/frobnicate now")
    assert keep_going and out == ""
    assert err.startswith("unknown command /frobnicate; commands: /help /search /sources /show /k ")
    assert err.count("\n") == 1


# ---- a session with a scripted LLM ------------------------------------------------------------------

class ScriptedLLM:
    """Answers every question with `answer`, rewrites every follow-up as `rewrite`."""

    model_id = "scripted.gguf"
    n_ctx = 2048
    threads = 1
    gpu_layers = 0
    last_stats: dict = {}

    def __init__(self, answer: str, rewrite: str):
        self.answer, self.rewrite = answer, rewrite
        self.rewrites: list[list[dict]] = []

    def count_tokens(self, text):
        return len(text.split())

    def chat(self, messages, max_tokens, temperature=0.1, stop=None):
        self.rewrites.append(messages)
        return self.rewrite

    def stream_chat(self, messages, max_tokens, temperature=0.1, stop=None):
        yield from self.answer.split(" ")[:1]
        for word in self.answer.split(" ")[1:]:
            yield " " + word


@pytest.fixture
def session(tmp_path):
    kb, emb, _ = fake_kb(tmp_path, {
        "codes.md": "# Error codes\n\nE-214 means the stir motor stalled.\n\n## Second code\n\n"
                    "E-305 means the carbon dioxide sensor drifted; recalibrate it.\n",
        "warranty.md": "# Warranty\n\nThe warranty lasts 27 months.\n"})
    llm = ScriptedLLM("E-305 means the sensor drifted [1].", "What does error code E-305 mean?")
    asker = Asker(Searcher(kb, lambda: emb), lambda: llm)
    shell = Shell(load_settings(str(kb.path)), AskOptions(top_k=3, fusion="off"), asker=asker)
    yield shell, llm
    shell.close()


def test_a_follow_up_is_retrieved_as_its_standalone_rewrite(session, capsys):
    shell, llm = session
    first = shell.ask("Which error codes are there?")
    assert first.question == "Which error codes are there?" and llm.rewrites == []  # nothing to rewrite yet
    out = capsys.readouterr().out
    # the scripted answer's [1] is the first code's section, without E-305: kb puts E-305's source in its place
    assert out.startswith("E-305 means the sensor drifted [3].\n")
    assert re.search(r"\nSources:\n\[3\] .*Second code \(corrected: the model wrote \[1\]\)\n", out)
    follow_up = shell.ask("and the second one?")
    assert follow_up.question == "What does error code E-305 mean?"
    assert "Which error codes are there?" in llm.rewrites[0][1]["content"]
    assert "→ What does error code E-305 mean?" in capsys.readouterr().err
    shell.handle("/clear")
    assert shell.ask("and the second one?").question == "and the second one?"
    assert len(llm.rewrites) == 1


def test_sources_and_show_describe_the_last_answer(session, capsys):
    shell, _ = session
    shell.handle("What does E-305 mean?")
    capsys.readouterr()
    shell.handle("/sources")
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0] == "Sources of the last answer:"
    assert re.match(r"\[1\] .*codes\.md · Error codes.* \(cited\)$", lines[1])
    assert len(lines) == 1 + len(shell.last.sources)
    shell.handle("/show 1")
    out = capsys.readouterr().out
    assert out.splitlines()[0] == lines[1].removesuffix(" (cited)") and "E-305 means the carbon dioxide" in out
    _, _, err = run(shell, capsys, "/show 99")
    assert err == f"/show N: N must be between 1 and {len(shell.last.sources)} (got 99)\n"


def test_search_renders_hits_like_kb_search(session, capsys):
    shell, _ = session
    shell.handle("/search warranty months")
    out = capsys.readouterr().out
    assert re.match(r"1\. .*warranty\.md · Warranty  \(\d\.\d{4}\)\n    .*The warranty lasts 27 months\.", out)


# ---- the real thing: a pseudo-terminal and a pipe ----------------------------------------------------

TIMEOUT = 900  # seconds per step: the machine is slow and busy; nothing here measures time
QUESTION = "What is the maximum stirring speed of the QF-300?"


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory, shared_models_dir):
    """sample_docs ingested once for the module with the packaged embedding model, through the CLI."""
    home = tmp_path_factory.mktemp("shell")
    env = {**os.environ, "KB_DATA_DIR": str(home / "data"), "KB_CONFIG_DIR": str(home / "config"),
           "KB_MODELS_DIR": str(shared_models_dir), "HF_HUB_OFFLINE": "1"}
    path = home / "kb"
    r = subprocess.run([sys.executable, "-m", "kb", "--kb", str(path), "ingest", str(SAMPLE_DOCS), "--json"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 7
    return path


def shell_env() -> dict:
    """The test's isolated environment (conftest's isolated_home), on a terminal prompt_toolkit can drive."""
    env = dict(os.environ, TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1")
    env.pop("NO_COLOR", None)
    for var in ("KB_DATA_DIR", "KB_CONFIG_DIR", "KB_MODELS_DIR", "HF_HUB_OFFLINE"):
        assert env.get(var), var
    return env


# prompt_toolkit switches bracketed paste on as each prompt starts: a new prompt, not the redrawn input line
PROMPT = r"\x1b\[\?2004h.*?kb>"
INPUT_DONE = "\x1b[?2004l"  # ...and off when the line is accepted
SPINNER_STOPPED = "\x1b[?25h"  # the spinner shows the cursor again when the first words arrive (or it ends)


def test_a_session_in_a_terminal(sample_kb):
    import pexpect

    env = shell_env()
    child = pexpect.spawn(sys.executable, ["-m", "kb", "--kb", str(sample_kb), "shell", "--model", "tiny"], env=env,
                          cwd=str(REPO), encoding="utf-8", timeout=TIMEOUT, dimensions=(50, 200))
    transcript: list[str] = []

    def step(line: str, *expected: str) -> str:
        """Send a line, wait for each expected text in turn and the next prompt; return what was printed."""
        child.sendline(line)
        child.expect_exact(INPUT_DONE)
        seen = ""
        for text in expected:
            child.expect_exact(text)
            seen += child.before + child.after
        child.expect(PROMPT)
        seen += child.before
        transcript.append(f"kb> {line}\n{seen}")
        return seen

    try:
        child.expect(PROMPT)
        step(QUESTION)
        step("and what about its temperature range?")
        sources = step("/sources", "Sources of the last answer:")
        assert re.search(r"\[1\] sample_docs/qf300_\S+", sources), sources

        # Ctrl-C as soon as the answer starts streaming: the answer stops, the shell stays
        child.sendline("Describe every section of the QF-300 user manual in detail, step by step.")
        child.expect_exact(INPUT_DONE)
        child.expect_exact(SPINNER_STOPPED)
        child.sendintr()
        # on an idle machine the tiny model can finish a short answer before the signal lands: then no
        # "(cancelled)", but the shell must still be alive at its next prompt
        if child.expect([re.escape("(cancelled)"), PROMPT]) == 0:
            child.expect(PROMPT)

        shown = step("/show 1", "[1]")
        assert "qf300_" in shown and len(shown.strip().splitlines()) > 2, shown  # file and page, then the text
        assert "unknown command /frobnicate; commands: /help" in step("/frobnicate")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
        print("\n".join(transcript))  # shown when the test fails
    assert child.exitstatus == 0, child.before
    history = (Path(env["KB_DATA_DIR"]) / "history").read_text(encoding="utf-8")
    assert QUESTION in history and "/show 1" in history


def test_questions_piped_in_get_plain_answers(sample_kb):
    r = subprocess.run([sys.executable, "-m", "kb", "--kb", str(sample_kb), "shell", "--model", "tiny"],
                       input=QUESTION + "\n", capture_output=True, text=True, env=shell_env(), cwd=REPO,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and "\x1b[" not in r.stdout, r.stdout
    assert "loading the language model" in r.stderr


def test_the_second_question_reuses_the_system_prompt_in_the_kv_cache(tmp_path, capsys):
    """The real (tiny) LLM: llama.cpp keeps the previous prompt's KV cache, and the shell's prompts start with the
    same system prompt, so the second question evaluates fewer tokens than its prompt holds."""
    from kb.answer.prompt import system_prompt
    from kb.llm import load_llm

    kb, emb, _ = fake_kb(tmp_path, {
        "codes.md": "# Error codes\n\nE-214 means the stir motor stalled.\n\nE-305 means the sensor drifted.\n",
        "warranty.md": "# Warranty\n\nThe warranty lasts 27 months.\n"})
    settings = load_settings(str(kb.path), {"llm_model": "tiny"})
    llm = load_llm(settings)
    asker = Asker(Searcher(kb, lambda: emb), lambda: llm)
    shell = Shell(settings, AskOptions(top_k=2, fusion="off", max_tokens=8), asker=asker)
    try:
        first = shell.ask("What does error code E-214 mean?")
        second = shell.ask("How long does the warranty last?")
    finally:
        shell.close()
    # the first evaluated at most its whole prompt (less when this process, or the models dir, already holds the
    # system prompt's state from an earlier test); the second (after the follow-up rewrite, another prompt, ran
    # in between) restored the system prompt's state and evaluated only the rest
    assert 0 < first.timings_ms["prompt_tokens_evaluated"] <= first.timings_ms["prompt_tokens"]
    assert llm.last_stats["prefix_state"] == "memory"
    assert llm.last_stats["prompt_tokens_reused"] >= llm.count_tokens(system_prompt("en"))
    assert second.timings_ms["prompt_tokens_evaluated"] <= \
        second.timings_ms["prompt_tokens"] - llm.count_tokens(system_prompt("en"))
