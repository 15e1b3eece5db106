"""Terminal rendering that `kb ask`, `kb search` and `kb shell` share: the two consoles, the streamed answer with
its spinner, the sources list, search hits.

Rich on a terminal (colour, a spinner), plain lines when piped. Only rich is imported at the top, so the CLI
still starts fast.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterable, Mapping

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def deferred_interrupt():
    """Hold a Ctrl-C until the block is done, then raise it (or hand it to the handler in place). rich's spinner
    starts and stops in several steps; a KeyboardInterrupt between two of them leaves it half started, and
    stopping it then fails inside rich (IndexError: pop from empty list) instead of cancelling the answer."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hit: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: hit.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if hit:
            if callable(previous):
                previous(signal.SIGINT, hit[0])
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


class AnswerPrinter:
    """On a terminal, streams the answer to stdout as it is written, with a spinner on stderr until the first
    words. Piped, it prints the final answer once it is complete and checked (`finish`), with plain status lines
    on stderr (none when quiet)."""

    def __init__(self, enabled: bool, quiet: bool = False):
        self.enabled = enabled
        self.quiet = quiet
        self.streaming = enabled and out.is_terminal
        self.spinner = None
        self.wrote = False
        self.streamed: list[str] = []  # what went to the terminal, as written
        self.shown_sources = False  # listed before the answer (`sources`)

    def __enter__(self):
        if self.enabled and err.is_terminal and not self.quiet:
            self.spinner = err.status("retrieving", spinner="dots")
            self._start_spinner()
        return self

    def _start_spinner(self) -> None:
        with deferred_interrupt():
            self.spinner.start()

    def _stop_spinner(self, forget: bool = True) -> None:
        if self.spinner is not None:
            with deferred_interrupt():
                self.spinner.stop()
            if forget:
                self.spinner = None

    def status(self, message: str) -> None:
        if not self.enabled or self.quiet:
            return
        if self.spinner is not None:
            self.spinner.update(message)
        elif not self.wrote:
            err.print(message if message.endswith(("…", "%")) else f"{message} …", markup=False)

    def note(self, message: str) -> None:
        """A line on stderr that stays (unlike a status), e.g. what a follow-up question was rewritten into."""
        if self.enabled and not self.quiet:
            err.print(message, style="dim" if err.is_terminal else None, markup=False)

    def sources(self, sources) -> None:
        """On a terminal, the numbered sources as soon as retrieval ends, so the reader has them while the LLM
        reads them (piped, they come after the answer, as before)."""
        if not self.streaming or not sources:
            return
        spinning = self.spinner is not None
        self._stop_spinner(forget=False)
        out.print("Sources:", style="bold", markup=False)
        for s in sources:
            out.print(f"[{s.n}] {source_label(s)}", style="dim", markup=False)
        out.print()
        self.shown_sources = True
        if spinning:
            self.spinner.update("reading the sources")
            self._start_spinner()

    def text(self, piece: str) -> None:
        if not self.streaming:
            return
        self._stop_spinner()
        out.print(piece, end="", markup=False, highlight=False)
        out.file.flush()
        self.wrote = True
        self.streamed.append(piece)

    def finish(self, answer) -> None:
        """The answer is complete: print it if it was not streamed; if the grounding check rejected what was
        streamed, say so under it."""
        if not self.enabled:
            return
        self._stop_spinner()
        if not self.wrote:
            out.print(answer.answer, markup=False, highlight=False)
            return
        out.print()
        self.wrote = False
        if answer.unsupported_answer:
            out.print(f"↳ kb: {answer.abstain_reason}. {answer.answer}", style="yellow", markup=False)
        streamed, self.streamed = "".join(self.streamed), []
        for c in answer.citations:  # what streamed still shows the model's wrong mark (not a pivot's translation)
            if any(f"[{n}]" in streamed for n in c.replaces):
                out.print(f"↳ kb: {marks(c.replaces)} → [{c.source.n}]: {marks(c.replaces)} lacks a figure or code "
                          f"of the sentence, [{c.source.n}] holds them.", style="yellow", markup=False)

    def __exit__(self, *exc):
        self._stop_spinner()
        if self.wrote:
            out.print()
        return False


def _where(s) -> tuple[str, str]:
    """(`file p.3`, ` · heading`) of a source or a search hit."""
    from kb.status import display_path

    return " ".join(x for x in (display_path(s.path), s.location) if x), f" · {s.heading}" if s.heading else ""


def source_label(s) -> str:
    """`file p.3 · heading`: where a source (or a search hit) comes from."""
    return "".join(_where(s))


def print_source_list(title: str, sources: Iterable, notes: Mapping[int, str] | None = None) -> None:
    """A title and one `[n] file p.3 · heading` line per source, followed by `notes[n]` if there is one."""
    notes = notes or {}
    out.print()
    out.print(title, style="bold" if out.is_terminal else None, markup=False)
    for s in sources:
        out.print(f"[{s.n}] {source_label(s)}{notes.get(s.n, '')}", markup=False)


def marks(numbers: Iterable[int]) -> str:
    """[2][3]"""
    return "".join(f"[{n}]" for n in numbers)


def citation_notes(answer, cited_note: str = "") -> dict[int, str]:
    """What the source list says beside each cited source: `cited_note`, whose marks it replaced ("corrected:
    the model wrote [2]"), or that it was inferred."""
    notes = {c.source.n: " (inferred)" for c in answer.citations if c.inferred}
    for c in answer.citations:
        if not c.inferred:
            wrote = f" (corrected: the model wrote {marks(c.replaces)})" if c.replaces else ""
            notes[c.source.n] = cited_note + wrote
    return notes


def print_sources(answer, show_all: bool, shown_before: bool = False) -> None:
    """The sources after an answer: those it cites (or, with show_all, every one it was given); the three nearest
    when it abstained. `shown_before`: every source was listed before the answer, so only the cited ones are
    named again ("Cited:")."""
    notes = citation_notes(answer)
    if answer.abstained:
        shown, title = answer.sources[:3], "Nearest sources:"
    elif show_all:
        shown, title = answer.sources, "Sources:"
    else:
        shown, title = [s for s in answer.sources if s.n in notes], "Sources:"
    if shown_before:
        if answer.abstained:
            return
        title = "Cited:"
    if shown:
        print_source_list(title, shown, notes)


def print_source_text(s) -> None:
    """One source in full: `[n] file p.3 · heading`, then its text."""
    from rich.markup import escape

    if out.is_terminal:
        out.print(f"[bold]\\[{s.n}][/] [cyan]{escape(source_label(s))}[/]")
    else:
        out.print(f"[{s.n}] {source_label(s)}", markup=False)
    out.print(s.text.strip(), markup=False)


def render_hits(response) -> None:
    """Search hits: rank, where, score, and a snippet with the query's words in bold on a terminal."""
    from rich.markup import escape

    from kb.text import tokenize

    terms = {t for t in tokenize(response.query, stem=False) if len(t) > 1}
    for h in response.hits:
        where, heading = _where(h)
        snippet = " ".join(h.text.split())
        if len(snippet) > 300:
            snippet = snippet[:300] + "…"
        if out.is_terminal:
            out.print(f"[bold]{h.rank:>2}.[/] [cyan]{escape(where)}[/][dim]{escape(heading)}  {h.score:.4f}[/]")
            out.print("    " + highlight(snippet, terms))
        else:
            out.print(f"{h.rank}. {where}{heading}  ({h.score:.4f})", markup=False)
            out.print(f"    {snippet}", markup=False)


def highlight(text: str, terms: set[str]) -> str:
    """Bold the query's words in a snippet (rich markup; the rest is escaped)."""
    import re

    from rich.markup import escape

    if not terms:
        return escape(text)
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    parts, last = [], 0
    for m in pattern.finditer(text):
        parts.append(escape(text[last:m.start()]))
        parts.append(f"[bold yellow]{escape(m.group(0))}[/]")
        last = m.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


def print_answer_timings(answer) -> None:
    """`kb ask -v`: where the time went (ms per stage) and the generation speed, on stderr."""
    err.print(" · ".join(f"{k} {v:.0f}" for k, v in answer.timings_ms.items())
              + (f" · {answer.tokens_per_s:.1f} tokens/s" if answer.tokens_per_s else ""), markup=False)
