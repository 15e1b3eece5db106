"""kb/reports.py: the ingest progress bar on a terminal."""

import io
import os
import signal

import pytest
from rich.console import Console
from rich.live import Live

from kb import reports


@pytest.fixture
def terminal(monkeypatch, ctrl_c_raises):
    monkeypatch.setattr(reports, "err", Console(file=io.StringIO(), force_terminal=True, color_system=None))


def _interrupting(monkeypatch, name, before):
    """Live.<name> with a Ctrl-C delivered just before (before=True) or just after rich's own steps."""
    original = getattr(Live, name)

    def method(self, *args, **kwargs):
        if before:
            os.kill(os.getpid(), signal.SIGINT)
        result = original(self, *args, **kwargs)
        if not before:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(Live, name, method)


def test_a_ctrl_c_while_the_bar_starts_stops_it_and_is_raised(terminal, monkeypatch):
    _interrupting(monkeypatch, "start", before=False)
    progress = reports.IngestProgress(enabled=True)
    with pytest.raises(KeyboardInterrupt):
        with progress:
            pytest.fail("the Ctrl-C is raised from entering the bar")
    assert not progress.bar.live.is_started  # not left refreshing the terminal
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_while_the_bar_stops_is_raised_after_it_stopped(terminal, monkeypatch):
    _interrupting(monkeypatch, "stop", before=True)
    progress = reports.IngestProgress(enabled=True)
    with pytest.raises(KeyboardInterrupt):
        with progress as on_progress:
            assert progress.bar.live.is_started
            on_progress  # the ingest would run here
    assert not progress.bar.live.is_started
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
