"""Ingest: bring a knowledge base up to date with folders of documents, in three stages.

plan (`plan.py`: diff the files against the catalog) → process (`process.py`: extract, chunk, embed; the stage
that can run elsewhere) → commit (`kb.store`: one atomic generation), orchestrated under the writer lock by
`run.py`. Discovery and `.kbignore` are in `discover.py`.
"""

from kb.errors import UsageError
from kb.ingest.discover import discover, file_sha256
from kb.ingest.options import IngestOptions, IngestReport, Progress
from kb.ingest.run import ingest, ingest_with_settings

__all__ = ["IngestOptions", "IngestReport", "Progress", "UsageError", "discover", "file_sha256", "ingest",
           "ingest_with_settings"]
