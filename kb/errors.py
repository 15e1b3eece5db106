"""kb's exceptions: one root, `KbError`, whose subclasses carry the exit code the CLI ends with.

The exit codes are the README's: 1 an error, 2 a usage error, 3 nothing found, 4 the knowledge base is busy.
The CLI and the shell map errors in one place (`exit_code` of a `KbError`); anything else is a bug and keeps its
traceback. Standard library only, so every command can import this at start-up.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOTHING_FOUND = 3
EXIT_BUSY = 4
EXIT_INTERRUPTED = 130


class KbError(Exception):
    """A problem the user can act on; the message says what and how."""

    exit_code = EXIT_ERROR


class UsageError(KbError, ValueError):
    """Bad arguments or input (a flag value, a missing path, a question too long for the model)."""

    exit_code = EXIT_USAGE


class NothingFound(KbError):
    """A search or a question with no result."""

    exit_code = EXIT_NOTHING_FOUND


class ConfigError(UsageError):
    """An invalid setting; the message names the key, the value and what is allowed."""


class QueryError(UsageError):
    """A query that cannot be run (no usable terms, empty knowledge base); the message says why."""


class PromptTooLong(UsageError):
    """The prompt does not fit the context window (the caller should send fewer passages)."""


class ModelNotFound(KbError):
    """A model that is not on this machine; the message says what is missing and how to get it."""


class ModelUnusable(ModelNotFound):
    """The model's file is there but cannot be used (failed verification, failed to load)."""


class KnowledgeBaseError(KbError):
    """A knowledge base that cannot be used as asked (missing, damaged, built with another model)."""


class KnowledgeBaseMissing(KnowledgeBaseError):
    """No knowledge base at the given path."""


class KnowledgeBaseBusy(KnowledgeBaseError):
    """Another kb process holds the writer lock."""

    exit_code = EXIT_BUSY


class ExtractionError(KbError):
    """A file could not be turned into text. The message is the one-line reason shown to the user; ingest
    reports it for that file and goes on."""


class UnsupportedFormat(ExtractionError):
    """No extractor handles this file type (the message carries a hint, e.g. convert with LibreOffice)."""


def exit_code_for(error: BaseException) -> int | None:
    """The documented exit code of an exception, or None for one kb does not expect (a bug)."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, KbError):
        return error.exit_code
    return None
