"""Extraction worker processes with a budget per file.

Each worker is a spawned process serving one file at a time over a pipe. Its address space is capped
(`resource.setrlimit(RLIMIT_AS)` = what it uses when idle + `memory_mb`), so a file that needs more fails inside
the worker with MemoryError (reported "needed more than 2 GB") or, if a C library aborts, kills only the worker.
The parent waits for each file at most `timeout` seconds; a worker past its deadline is killed, the file reported
("took longer than 120 s") and a fresh worker started. A file that reports progress (`tick()`: every page read by
OCR) gets `timeout` seconds from its last tick, so a 40-page scan (~5 s a page) is read whole while a file that
stops making progress is still stopped. Results come back in task order.

Ctrl-C: workers ignore SIGINT, the parent kills them as it unwinds. kill -9 of the parent: a worker blocked on
its pipe reads EOF and exits; one busy with a file finds its parent gone when it sends the result and exits then.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Callable, Iterator, Sequence

from kb.ingest.options import ExtractOptions

Result = tuple  # (Document | None, error str | None)


def size_text(mb: int) -> str:
    return f"{mb / 1024:g} GB" if mb >= 1024 else f"{mb} MB"


_CONN = None  # in a worker process: its pipe to the parent


def tick() -> None:
    """Tell the parent that the file in hand made progress (e.g. one more page read by OCR). In a worker this
    sends a message the parent counts; anywhere else it does nothing."""
    if _CONN is not None:
        _CONN.send(_TICK)


def _serve(conn, options: ExtractOptions, job: Callable) -> None:
    """A worker's loop: cap the address space, then extract each path received until told to stop."""
    import resource
    import signal

    global _CONN
    _CONN = conn

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        size = 1 << 30
    limit = size + options.memory_mb * (1 << 20)
    idle = _resident()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass  # a hard limit already lower: keep it
    conn.send(_READY)  # a file's deadline starts now, not while this process was starting
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        result = job(path, options)
        retire = _resident() - idle > RETIRE_GROWTH_MB * (1 << 20)
        try:
            conn.send((result, retire))
        except (BrokenPipeError, OSError):
            return
        if retire:
            return


def _resident() -> int:
    """This process's resident memory in bytes (0 if unknown)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


_READY = "ready"
_TICK = "tick"
# A worker whose resident memory grew by more than this while extracting a file (the OCR engine's ~0.5 GB, a huge
# PDF's heap that the allocator keeps) hands back its result and exits; a fresh worker takes its place. The memory
# goes back to the system at once instead of staying with an idle worker for the rest of the run.
RETIRE_GROWTH_MB = 200
STARTUP = 120.0  # seconds a worker may take to start (spawn, imports) on a loaded machine


class _Worker:
    def __init__(self, ctx, options: ExtractOptions, job: Callable):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, options, job), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.retiring = False
        self.timeout = options.timeout
        self.task: int | None = None
        self.deadline = 0.0

    def give(self, index: int, path: str) -> None:
        self.conn.send(path)  # queued in the pipe if the worker is still starting
        self.task = index
        self.deadline = time.monotonic() + self.timeout + (0 if self.ready else STARTUP)

    def receive(self, on_tick: Callable[[int], None]):
        """The next result; None when it was the worker's ready signal (the file's deadline starts then) or a
        tick (passed on as `on_tick(task)`). Sets `retiring` when the worker exits after this result."""
        message = self.conn.recv()
        if message == _TICK:  # progress (a page read by OCR): the file's clock starts again
            self.deadline = time.monotonic() + self.timeout
            on_tick(self.task)
            return None
        if message == _READY:
            self.ready = True
            self.deadline = time.monotonic() + self.timeout
            return None
        result, self.retiring = message
        return result

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


GROW_AFTER = 0.5  # seconds the caller waits on extraction, every worker busy, before another worker starts


def max_workers() -> int:
    """The most extraction workers worth running: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run_budgeted(paths: Sequence[str], options: ExtractOptions, workers: int, job: Callable,
                 ahead: int, most: int | None = None, stats: dict | None = None,
                 on_tick: Callable[[int], None] | None = None) -> Iterator[Result]:
    """Yield `job(path, options)` for each path, in order, each run in a worker under the budgets.

    Starts `workers` workers and adds one (up to `most`, default the core count) whenever the caller has been
    waiting GROW_AFTER seconds for the next result with every worker busy: extraction is then the slower side
    (PDF-heavy or scanned folders), while a caller busy embedding never waits and keeps the cores for itself.
    `stats["workers"]` is set to the most workers that ran; `on_tick(index)` is called for each `tick()` the job
    of paths[index] sends while it runs."""
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    todo = deque(enumerate(paths))
    done: dict[int, Result] = {}
    pool = [_Worker(ctx, options, job) for _ in range(max(1, min(workers, len(paths))))]
    most = max(len(pool), min(most or max_workers(), len(paths)))
    stats = stats if stats is not None else {}
    on_tick = on_tick or (lambda index: None)
    stats["workers"] = len(pool)
    next_out = 0
    waiting_since = None
    try:
        while next_out < len(paths):
            for i, w in enumerate(pool):
                if w.task is None and todo and todo[0][0] < next_out + ahead:
                    index, path = todo.popleft()
                    try:
                        w.give(index, path)
                    except (BrokenPipeError, OSError):  # died while idle: replace it and retry
                        w.kill()
                        pool[i] = w = _Worker(ctx, options, job)
                        w.give(index, path)
            busy = [w for w in pool if w.task is not None]
            if next_out in done or not busy:
                waiting_since = None
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
                continue
            now = time.monotonic()
            if waiting_since is None or next_out == 0:  # the first result also waits for the worker to start
                waiting_since = now
            elif now - waiting_since >= GROW_AFTER and len(busy) == len(pool) < most and todo:
                pool.append(_Worker(ctx, options, job))  # the caller is waiting on extraction: add a worker
                stats["workers"] = len(pool)
                waiting_since = now
                continue
            timeout = min(w.deadline for w in busy) - now
            if len(busy) == len(pool) < most and todo:
                timeout = min(timeout, GROW_AFTER)
            ready = wait([w.conn for w in busy], timeout=max(0.0, timeout))
            for i, w in enumerate(pool):
                if w.task is None:
                    continue
                if w.conn in ready:
                    try:
                        message = w.receive(on_tick)
                        if message is not None:
                            done[w.task] = message
                            w.task = None
                        if not w.retiring:
                            continue
                    except (EOFError, OSError):
                        w.process.join(5)
                        code = w.process.exitcode
                        done[w.task] = (None, _death_reason(code, options))
                elif time.monotonic() >= w.deadline:
                    done[w.task] = (None, f"took longer than {options.timeout:g} s (extract_timeout); skipped")
                else:
                    continue
                w.kill()
                pool[i] = _Worker(ctx, options, job)
    finally:
        for w in pool:
            w.kill()


def _death_reason(code: int | None, options: ExtractOptions) -> str:
    limit = size_text(options.memory_mb)
    if code is not None and code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return (f"the reader crashed ({name}) on this file; it may have needed more than {limit} "
                f"(extract_memory_mb)")
    return f"the reader exited unexpectedly (exit code {code}) on this file"
