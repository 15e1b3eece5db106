"""`kb shell`: questions and follow-ups in one session, with slash commands.

On a terminal it is a prompt_toolkit REPL (line editing, history in `<data dir>/history`, Tab completes slash
commands); Ctrl-C during an answer cancels that answer (closing the LLM stream), Ctrl-C at the prompt clears
the line, Ctrl-D or /exit leaves. When stdin or stdout is not a terminal it reads one question (or command) per
line and prints plain text, so it works in pipes.

The models load once, on first use: the Asker loads the LLM lazily, and the embedding model with the first
question or /search.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kb.answer import Answer, AskOptions, open_asker
from kb.answer.conversation import Conversation
from kb.errors import KbError, UsageError
from kb.render import (AnswerPrinter, citation_notes, err, out, print_source_list, print_source_text, print_sources,
                       render_hits)

PROMPT = "kb> "
MAX_K = 50  # as `kb ask -k`

# name: (usage, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "help": ("/help", "this list"),
    "search": ("/search QUERY", "retrieval only, no LLM (like `kb search`)"),
    "sources": ("/sources", "every source the last answer was given: number, file, page or slide, heading"),
    "show": ("/show N", "the full text of source N of the last answer"),
    "k": ("/k N", "passages to retrieve for an answer or a /search"),
    "fusion": ("/fusion on|off|auto", "RAG-Fusion query variants (auto: when the first retrieval is not confident)"),
    "rerank": ("/rerank on|off", "rerank with the configured cross-encoder"),
    "model": ("/model", "the LLM and embedding model, loaded or to be loaded"),
    "kb": ("/kb", "which knowledge base this shell reads"),
    "clear": ("/clear", "forget the conversation (the next question is not a follow-up)"),
    "exit": ("/exit", "leave (Ctrl-D does too)"),
}
ALIASES = {"quit": "exit", "q": "exit", "?": "help", "h": "help"}


class CommandError(UsageError):
    """A slash command that cannot run as typed; the message is the one-line explanation."""


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""


def parse_command(line: str) -> Command | None:
    """`/name args` as a Command (aliases resolved, unknown names kept); None for a question."""
    line = line.strip()
    if not line.startswith("/"):
        return None
    name, _, arg = line[1:].partition(" ")
    name = name.strip().lower()
    return Command(ALIASES.get(name, name), arg.strip())


def command_list() -> str:
    return " ".join(usage.split(" ", 1)[0] for usage, _ in COMMANDS.values())


def parse_int(arg: str, usage: str, low: int, high: int) -> int:
    try:
        n = int(arg)
    except ValueError:
        raise CommandError(f"{usage}: {arg!r} is not a number") from None
    if not low <= n <= high:
        raise CommandError(f"{usage}: N must be between {low} and {high} (got {n})")
    return n


def parse_choice(arg: str, usage: str, choices: tuple[str, ...]) -> str:
    value = arg.lower()
    if value not in choices:
        raise CommandError(f"{usage}: expected {' or '.join(choices)} (got {arg!r})")
    return value


class Shell:
    """One session: the asker (models load on first use), the options the slash commands change, the
    conversation, the last answer. `handle(line)` runs a question or a command; nothing here reads input."""

    def __init__(self, settings, options: AskOptions, asker=None, cpu: bool = False, quiet: bool = False):
        self.settings = settings
        self.options = options
        self.quiet = quiet
        self.conversation = Conversation()
        self.last: Answer | None = None
        self._printer: AnswerPrinter | None = None
        # the asker keeps the status callback it was made with: route it to whatever is printing now
        self.asker = asker if asker is not None else open_asker(settings, cpu=cpu, on_status=self._status)

    def close(self) -> None:
        self.asker.close()

    def _status(self, message: str) -> None:
        if self._printer is not None:
            self._printer.status(message)

    def _working(self) -> AnswerPrinter:
        self._printer = AnswerPrinter(enabled=True, quiet=self.quiet)
        return self._printer

    def _load_embedder(self) -> None:
        if not self.asker.embedder_loaded:
            self._status(f"loading the embedding model {self.asker.embedding_model or ''}")
            self.asker.load_embedder()

    # ---- one line ----------------------------------------------------------------------------------

    def handle(self, line: str) -> bool:
        """Run one line of input; False when the session should end. A KeyboardInterrupt propagates (the
        interrupted answer is dropped; the caller decides whether the session goes on)."""
        line = line.strip()
        if not line:
            return True
        command = parse_command(line)
        try:
            if command is None:
                self.ask(line)
                return True
            return self.run(command)
        except CommandError as e:
            err.print(str(e), markup=False)
        except KbError as e:
            err.print(f"kb: error: {e}", markup=False)
        finally:
            self._printer = None
        return True

    def ask(self, question: str) -> Answer:
        with self._working() as printer:
            self._load_embedder()
            standalone = question
            if self.conversation.turns:
                printer.status("rewriting the follow-up")
                standalone = self.conversation.standalone(question, self.asker.llm).question
                if standalone != question:
                    printer.note(f"→ {standalone}")
                printer.status("retrieving")
            answer = self.asker.ask(standalone, self.options, on_text=printer.text, on_status=printer.status,
                                    on_sources=printer.sources)
            printer.finish(answer)
        self.last = answer
        self.conversation.add(question, standalone, answer.answer)
        print_sources(answer, show_all=False, shown_before=printer.shown_sources)
        return answer

    def run(self, command: Command) -> bool:
        if command.name not in COMMANDS:
            raise CommandError(f"unknown command /{command.name}; commands: {command_list()} (/help explains them)")
        return getattr(self, f"cmd_{command.name}")(command.arg) is not False

    # ---- the slash commands --------------------------------------------------------------------------

    def cmd_help(self, arg: str) -> None:
        width = max(len(usage) for usage, _ in COMMANDS.values())
        out.print("Ask a question, then follow-ups (\"and the second one?\"); or a command:", markup=False)
        for usage, text in COMMANDS.values():
            out.print(f"  {usage:<{width}}  {text}", markup=False)
        out.print("Ctrl-C cancels an answer; Ctrl-D leaves.", markup=False)

    def cmd_exit(self, arg: str) -> bool:
        return False

    def cmd_clear(self, arg: str) -> None:
        self.conversation.clear()
        out.print("conversation forgotten", markup=False)

    def cmd_search(self, arg: str) -> None:
        if not arg:
            raise CommandError(f"{COMMANDS['search'][0]}: what should I search for?")
        with self._working():
            self._load_embedder()
            response = self.asker.search(arg, k=self.options.top_k, path_glob=self.options.path_glob,
                                         rerank=self.options.rerank)
        if response.hits:
            render_hits(response)
        else:
            err.print("no results", markup=False)

    def _last_answer(self) -> Answer:
        if self.last is None:
            raise CommandError("no answer yet: ask a question first")
        if not self.last.sources:
            raise CommandError("the last answer had no sources")
        return self.last

    def cmd_sources(self, arg: str) -> None:
        answer = self._last_answer()
        print_source_list("Sources of the last answer:", answer.sources, citation_notes(answer, " (cited)"))

    def cmd_show(self, arg: str) -> None:
        answer = self._last_answer()
        numbers = sorted(s.n for s in answer.sources)
        n = parse_int(arg, COMMANDS["show"][0], numbers[0], numbers[-1]) if arg else None
        if n is None:
            raise CommandError(f"{COMMANDS['show'][0]}: which source? (1 to {numbers[-1]}; /sources lists them)")
        print_source_text(next(s for s in answer.sources if s.n == n))

    def cmd_k(self, arg: str) -> None:
        if arg:
            self.options.top_k = parse_int(arg, COMMANDS["k"][0], 1, MAX_K)
        out.print(f"k = {self.options.top_k}", markup=False)

    def cmd_fusion(self, arg: str) -> None:
        if arg:
            self.options.fusion = parse_choice(arg, COMMANDS["fusion"][0], ("on", "off", "auto"))
        out.print(f"fusion = {self.options.fusion}", markup=False)

    def cmd_rerank(self, arg: str) -> None:
        if arg:
            self.options.rerank = parse_choice(arg, COMMANDS["rerank"][0], ("on", "off")) == "on"
        configured = self.asker.has_reranker
        out.print(f"rerank = {'on' if self.options.rerank else 'off'}"
                  + ("" if configured else " (no reranker is configured: `kb config set reranker DIR`)"),
                  markup=False)

    def cmd_model(self, arg: str) -> None:
        from kb.errors import ModelNotFound
        from kb.llm import resolve_llm

        llm = self.asker.loaded_llm  # None until the first answer needs it
        if llm is not None:
            where = ("CPU" if llm.gpu_layers == 0 else "GPU, all layers" if llm.gpu_layers == -1
                     else f"{llm.gpu_layers} layers on the GPU")
            line = (f"{llm.model_id} ({self.settings.llm_model}) · loaded: {llm.n_ctx}-token context, "
                    f"{llm.threads} threads, {where}")
        else:
            try:
                resolved = resolve_llm(self.settings)
                line = (f"{resolved.model_id} ({self.settings.llm_model}) · loads with the first answer"
                        + (" (assembled from its packages first, once)" if resolved.needs_assembly else ""))
            except ModelNotFound as e:
                line = f"not available: {e}"
        embedder = self.asker.embedding_model or "?"
        rows = [("LLM", line),
                ("embedding model", f"{embedder} · " + ("loaded" if self.asker.embedder_loaded
                                                        else "loads with the first question or /search")),
                ("reranker", self.settings.reranker or "none configured")]
        for key, value in rows:
            out.print(f"{key:<15}  {value}", markup=False)

    def cmd_kb(self, arg: str) -> None:
        from kb.status import kb_status

        info = kb_status(self.asker.knowledge_base)
        out.print(f"{info['path']} · {info['documents']} documents, {info['chunks']} chunks, "
                  f"embedding model {info['embedding_model'] or '-'}, generation {self.asker.generation}",
                  markup=False)
        if info["generation"] != self.asker.generation:
            out.print(f"(generation {info['generation']} was committed since this shell started; restart it to "
                      f"search the newer one)", markup=False)


# ---- the loops -----------------------------------------------------------------------------------

def run_piped(shell: Shell, lines: TextIO) -> int:
    """One question or command per line, plain output, until end of input or /exit."""
    for line in lines:
        if not shell.handle(line):
            break
    return 0


def _completer():
    from prompt_toolkit.completion import Completer, Completion

    class SlashCommands(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            if text.startswith("/") and " " not in text:
                for name in COMMANDS:
                    if name.startswith(text[1:]):
                        yield Completion("/" + name, start_position=-len(text))

    return SlashCommands()


def _history(path: Path):
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return FileHistory(str(path))
    except OSError as e:
        err.print(f"warning: no history ({path}: {e.strerror or e})", markup=False)
        return InMemoryHistory()


def run_interactive(shell: Shell, history: Path) -> int:
    """The prompt_toolkit REPL. Ctrl-C cancels an answer or clears the line; Ctrl-D and /exit leave."""
    from prompt_toolkit import PromptSession

    session = PromptSession(history=_history(history), completer=_completer(), complete_while_typing=False)
    if not shell.quiet:
        from kb.status import display_path

        err.print(f"kb shell · {display_path(str(shell.asker.kb_path))} · {shell.asker.embedding_model} · "
                  f"/help for commands, Ctrl-D to leave", style="dim", markup=False)
    while True:
        try:
            line = session.prompt(PROMPT)
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        try:
            if not shell.handle(line):
                return 0
        except KeyboardInterrupt:
            err.print("(cancelled)", style="yellow", markup=False)


def run_shell(settings, options: AskOptions, cpu: bool = False, quiet: bool = False) -> int:
    """`kb shell`: the REPL on a terminal, line by line otherwise. Returns the exit code."""
    from kb.config import data_dir

    shell = Shell(settings, options, cpu=cpu, quiet=quiet)
    try:
        if sys.stdin.isatty() and sys.stdout.isatty():
            return run_interactive(shell, data_dir() / "history")
        return run_piped(shell, sys.stdin)
    finally:
        shell.close()
