"""The answer printer: streamed on a terminal, printed once checked when piped, withdrawn visibly."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kb import render
from kb.answer import ABSTAIN, Answer


@pytest.fixture
def consoles(monkeypatch):
    """Swap render's consoles for ones writing to buffers; `terminal` says whether they act as a TTY."""
    def make(terminal: bool):
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(render, "out", Console(file=out, force_terminal=terminal, color_system=None,
                                                   highlight=False, soft_wrap=True))
        monkeypatch.setattr(render, "err", Console(file=err, force_terminal=False, highlight=False, soft_wrap=True))
        return out, err
    return make


def withdrawn(question="How long does the remote's battery last?") -> Answer:
    return Answer(question=question, answer=ABSTAIN["en"], abstained=True,
                  abstain_reason="not supported by the sources: the sources never mention batteri, remot",
                  unsupported_answer="The battery lasts 27 months [1].")


def test_piped_answers_print_once_checked_and_never_the_rejected_text(consoles):
    out, err = consoles(False)
    with render.AnswerPrinter(enabled=True) as p:
        p.status("retrieving")
        p.text("The battery lasts 27 months [1].")  # streamed pieces are held back when piped
        p.finish(withdrawn())
    assert out.getvalue() == ABSTAIN["en"] + "\n"
    assert "27 months" not in out.getvalue() + err.getvalue()
    assert err.getvalue() == "retrieving …\n"


def test_a_streamed_answer_that_is_withdrawn_says_so_under_it(consoles):
    out, _ = consoles(True)
    with render.AnswerPrinter(enabled=True, quiet=True) as p:
        p.text("The battery lasts ")
        p.text("27 months [1].")
        p.finish(withdrawn())
    lines = out.getvalue().splitlines()
    assert lines[0] == "The battery lasts 27 months [1]."
    assert lines[1].startswith("↳ kb: not supported by the sources: the sources never mention batteri")
    assert lines[1].endswith(ABSTAIN["en"])


def test_a_streamed_answer_that_stands_is_not_repeated(consoles):
    out, _ = consoles(True)
    ok = Answer(question="q", answer="It stirs at 1,850 rpm [1].")
    with render.AnswerPrinter(enabled=True, quiet=True) as p:
        p.text(ok.answer)
        p.finish(ok)
    assert out.getvalue() == ok.answer + "\n"


def test_disabled_printer_prints_nothing(consoles):
    out, err = consoles(False)
    with render.AnswerPrinter(enabled=False) as p:
        p.status("retrieving")
        p.text("x")
        p.finish(withdrawn())
    assert out.getvalue() == err.getvalue() == ""


def test_on_a_terminal_the_sources_come_before_the_answer_and_only_the_cited_after(consoles):
    from kb.answer.types import Citation, Source

    out, _ = consoles(True)
    given = [Source(n, [n], "text", 1.0, n, path=f"/docs/{name}.md", heading="H") for n, name in ((1, "a"), (2, "b"))]
    ok = Answer(question="q", answer="It stirs at 1,850 rpm [2].", sources=given, citations=[Citation(given[1])])
    with render.AnswerPrinter(enabled=True, quiet=True) as p:
        p.sources(given)
        p.text(ok.answer)
        p.finish(ok)
    render.print_sources(ok, show_all=False, shown_before=p.shown_sources)
    text = out.getvalue()
    assert text.index("[1] ") < text.index("[2] ") < text.index(ok.answer) < text.index("Cited:")
    assert text.split("Cited:")[1].strip().startswith("[2] ") and "[1] " not in text.split("Cited:")[1]


def test_a_corrected_mark_is_said_under_the_streamed_answer_and_beside_its_source(consoles):
    from kb.answer.types import Citation, Source

    given = [Source(n, [n], "text", 1.0, n, path=f"/docs/{name}.md", heading="H") for n, name in ((1, "a"), (2, "b"))]
    # the model wrote [2]; kb found the sentence's figure in source 1 alone and put [1] in its place
    fixed = Answer(question="q", answer="It stirs at 1,850 rpm [1].", sources=given,
                   citations=[Citation(given[0], replaces=(2,))])
    for terminal in (True, False):
        out, _ = consoles(terminal)
        with render.AnswerPrinter(enabled=True, quiet=True) as p:
            p.text("It stirs at 1,850 rpm [2].")
            p.finish(fixed)
        render.print_sources(fixed, show_all=False)
        lines = out.getvalue().splitlines()
        if terminal:  # what streamed keeps the model's mark: the correction is said under it
            assert lines[:2] == ["It stirs at 1,850 rpm [2].",
                                 "↳ kb: [2] → [1]: [2] lacks a figure or code of the sentence, [1] holds them."]
        else:
            assert lines[0] == "It stirs at 1,850 rpm [1]." and "↳" not in out.getvalue()
        assert lines[-2:] == ["Sources:", "[1] /docs/a.md · H (corrected: the model wrote [2])"]
    # a pivoted answer reaches the terminal once, translated from the corrected text: nothing to say under it
    out, _ = consoles(True)
    with render.AnswerPrinter(enabled=True, quiet=True) as p:
        p.text(fixed.answer)
        p.finish(fixed)
    assert out.getvalue() == fixed.answer + "\n"


def test_a_ctrl_c_while_the_spinner_starts_or_stops_is_raised_after_it(ctrl_c_raises):
    # a KeyboardInterrupt inside rich's Live.start left it half started, and stopping it then raised IndexError
    # from rich, which escaped `kb shell`'s "(cancelled)" (seen in tests/test_shell.py's Ctrl-C step)
    import os
    import signal

    from kb.render import deferred_interrupt

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")
        steps.append("not reached")
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with deferred_interrupt():  # no Ctrl-C: nothing raised
        steps.append("quiet")
    assert steps[-1] == "quiet"
