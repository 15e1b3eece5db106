"""The store's write seams, in one swappable object so tests can inject faults where a commit touches the disk.

`fs.replace`, `fs.fsync` are what dense.py, lexical.py use to publish files; `fs.step(name)` marks the commit's
steps (knowledge_base.Writer.commit): "indexes:start", "indexes:dense", "indexes:lexical" (both files written,
SQLite transaction still open), "commit:done" (after COMMIT, before the sweep). A test replaces `fs` attributes
(e.g. `fs.replace = failing`) or sets `fs.crash_at = "indexes:dense"` to make the process `os._exit(9)` there, as
kill -9 would. Nothing here changes what a normal run does.
"""

from __future__ import annotations

import os


class FileSystem:
    def __init__(self) -> None:
        self.crash_at: str | None = None
        self.replace = os.replace
        self.fsync = os.fsync

    def step(self, name: str) -> None:
        if self.crash_at == name:
            os._exit(9)


fs = FileSystem()
