"""The SQLite catalog: documents, chunks, the embedding cache and meta, in one WAL-mode file.

The catalog is the source of truth; the dense and lexical index files are derived from it and named by
generation. `meta.generation` says which index files belong to the committed state.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    from kb.document import Chunk

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT, size INTEGER, mtime REAL,
    format TEXT, title TEXT, pages INTEGER,
    status TEXT NOT NULL,            -- 'ok' or 'failed'
    error TEXT, warnings TEXT,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: it labels the dense index
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    index_text TEXT NOT NULL,
    tokens TEXT NOT NULL,            -- BM25 tokens joined by spaces
    page_start INTEGER, page_end INTEGER, slide INTEGER,
    heading_path TEXT NOT NULL,      -- ' > '-joined
    n_tokens INTEGER NOT NULL,
    text_hash TEXT NOT NULL          -- of index_text: the embedding cache key
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS vectors(
    model_id TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY(model_id, text_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roots(path TEXT PRIMARY KEY, added_at REAL NOT NULL);
"""

HEADING_SEP = " > "

# Columns added to the schema after knowledge bases were first created: (table, column, SQL declaration with its
# default). A writer adds the missing ones when it opens the catalog (ALTER TABLE ... ADD COLUMN, one transaction);
# a reader of a catalog no writer has opened since sees the default through `Catalog.column_or(...)`. Append only.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("chunks", "ocr", "INTEGER NOT NULL DEFAULT 0"),  # 1: some of the chunk's text was read by OCR
    ("documents", "ocr_pages", "INTEGER NOT NULL DEFAULT 0"),  # pages (slides, image frames) read by OCR
    ("chunks", "lang", "TEXT"),  # "en" / "zh", from the chunk text at ingest (kb.text.text_language); NULL before
)


@dataclass
class DocumentRow:
    id: int
    path: str
    sha256: str | None
    size: int | None
    mtime: float | None
    format: str | None
    title: str | None
    pages: int | None
    status: str
    error: str | None
    warnings: str | None
    ingested_at: float
    chunks: int = 0
    ocr_pages: int = 0


@dataclass
class ChunkRow:
    id: int
    doc_id: int
    path: str
    ordinal: int
    text: str
    page_start: int | None
    page_end: int | None
    slide: int | None
    heading_path: str
    title: str | None = None
    ocr: bool = False


def _db_text(value: str | None) -> str | bytes | None:
    """A path for SQLite. File names that are not UTF-8 reach Python as lone surrogates (surrogateescape), which
    sqlite3 cannot encode: they are bound as their original bytes and stored as TEXT with `CAST(? AS TEXT)`, then
    read back by `_read_text` into the same str, so such a path round-trips exactly."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def _read_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _readable(value: str | None) -> str | None:
    """A display string (title, error) with any lone surrogate replaced by U+FFFD."""
    if value is None:
        return None
    return re.sub("[\ud800-\udfff]", "\ufffd", value)


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    conn.text_factory = _read_text
    return conn


class Catalog:
    """Thin typed access to the catalog; transactions are explicit (`with catalog.transaction():`)."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        self.conn = connect(path, readonly=readonly)
        if not readonly:
            self.conn.executescript(SCHEMA)
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", str(SCHEMA_VERSION))
                self.set_meta("generation", "0")
                self.set_meta("created_at", str(time.time()))
        self.columns = {t: {r[1] for r in self.conn.execute(f"PRAGMA table_info({t})")} for t in ("documents", "chunks")}
        missing = [(t, c, decl) for t, c, decl in ADDED_COLUMNS if c not in self.columns[t]]
        if missing and not readonly:
            with self.transaction():
                for table, column, decl in missing:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
                    self.columns[table].add(column)

    def column_or(self, alias: str, table: str, column: str, default: str) -> str:
        """`alias.column` for a SELECT, or the SQL literal `default` when this (older, read-only) catalog lacks it."""
        return f"{alias}.{column}" if column in self.columns[table] else default

    def close(self) -> None:
        self.conn.close()

    # meta
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                          (key, value))

    def meta(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT key, value FROM meta")}

    def transaction(self):
        return _Transaction(self.conn)

    # documents
    def documents(self) -> list[DocumentRow]:
        rows = self.conn.execute(
            "SELECT d.*, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id=d.id) AS chunks FROM documents d ORDER BY path"
        ).fetchall()
        return [DocumentRow(**dict(r)) for r in rows]

    def document_by_path(self, path: str) -> DocumentRow | None:
        r = self.conn.execute("SELECT *, 0 AS chunks FROM documents WHERE path=CAST(? AS TEXT)",
                              (_db_text(path),)).fetchone()
        return DocumentRow(**dict(r)) if r else None

    def upsert_document(self, *, path: str, sha256: str | None, size: int | None, mtime: float | None,
                        format: str | None, title: str | None, pages: int | None, status: str,
                        error: str | None, warnings: str | None, ocr_pages: int = 0) -> int:
        self.conn.execute(
            """INSERT INTO documents(path, sha256, size, mtime, format, title, pages, status, error, warnings, ingested_at,
                                     ocr_pages) VALUES(CAST(? AS TEXT),?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, size=excluded.size, mtime=excluded.mtime,
                 format=excluded.format, title=excluded.title, pages=excluded.pages, status=excluded.status,
                 error=excluded.error, warnings=excluded.warnings, ingested_at=excluded.ingested_at,
                 ocr_pages=excluded.ocr_pages""",
            (_db_text(path), sha256, size, mtime, format, _readable(title), pages, status, _readable(error),
             _readable(warnings), time.time(), ocr_pages),
        )
        return self.conn.execute("SELECT id FROM documents WHERE path=CAST(? AS TEXT)",
                                 (_db_text(path),)).fetchone()[0]

    def delete_document(self, doc_id: int) -> list[int]:
        """Remove a document and its chunks; returns the removed chunk ids (to drop from the dense index)."""
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))]
        self.conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        self.conn.execute("DELETE FROM documents WHERE id=?", (doc_id,))
        return ids

    def delete_chunks_of(self, doc_id: int) -> list[int]:
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))]
        self.conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        return ids

    def insert_chunks(self, doc_id: int, chunks: Sequence["Chunk"]) -> list[int]:
        """Store a document's chunks (their BM25 tokens set); returns their new ids."""
        ids = []
        for c in chunks:
            cur = self.conn.execute(
                """INSERT INTO chunks(doc_id, ordinal, text, index_text, tokens, page_start, page_end, slide,
                   heading_path, n_tokens, text_hash, ocr, lang) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (doc_id, c.ordinal, c.text, c.index_text, " ".join(c.tokens), c.page_start, c.page_end, c.slide,
                 HEADING_SEP.join(c.heading_path), c.n_tokens, c.text_hash, int(c.ocr), c.lang or None),
            )
            ids.append(cur.lastrowid)
        return ids

    # chunks
    def count_chunks(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def count_documents(self, status: str | None = None) -> int:
        if status:
            return self.conn.execute("SELECT COUNT(*) FROM documents WHERE status=?", (status,)).fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def all_chunk_tokens(self) -> tuple[list[int], list[list[str]]]:
        """Every chunk's id and BM25 tokens, in id order (what the lexical index is built from)."""
        ids: list[int] = []
        tokens: list[list[str]] = []
        for chunk_id, joined in self.conn.execute("SELECT id, tokens FROM chunks ORDER BY id"):
            ids.append(chunk_id)
            tokens.append(joined.split())
        return ids, tokens

    def chunks_to_tokenize(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        """(chunk id, index text, document path) of up to `limit` chunks with ids above `after`, in id order: what
        their BM25 tokens are made from."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT c.id, c.index_text, d.path FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE c.id > ? "
            "ORDER BY c.id LIMIT ?", (after, limit))]

    def set_chunk_tokens(self, items: Iterable[tuple[int, Sequence[str]]]) -> None:
        """Replace chunks' BM25 tokens: (chunk id, tokens) pairs."""
        self.conn.executemany("UPDATE chunks SET tokens=? WHERE id=?",
                              ((" ".join(tokens), chunk_id) for chunk_id, tokens in items))

    def _chunk_languages(self) -> Iterator[tuple[int, int, str]]:
        """(chunk id, document id, language "en" / "zh") of every chunk: recorded at ingest, or judged from the text
        for chunks ingested before the language was recorded."""
        from kb.text import text_language

        lang = self.column_or("c", "chunks", "lang", "NULL")
        for chunk_id, doc_id, code, text in self.conn.execute(
                f"SELECT c.id, c.doc_id, {lang}, CASE WHEN {lang} IS NULL THEN c.index_text END FROM chunks c "
                f"ORDER BY c.id"):
            yield chunk_id, doc_id, code or text_language(text or "")

    def chunk_languages(self) -> dict[str, list[int]]:
        """Every chunk's id by its language ("en" / "zh")."""
        out: dict[str, list[int]] = {}
        for chunk_id, _, lang in self._chunk_languages():
            out.setdefault(lang, []).append(chunk_id)
        return out

    def language_counts(self, except_docs: Iterable[int] = ()) -> dict[str, int]:
        """How many chunks are in each language ("en" / "zh"), leaving out the chunks of `except_docs`."""
        skip = set(except_docs)
        counts: dict[str, int] = {}
        for _, doc_id, lang in self._chunk_languages():
            if doc_id not in skip:
                counts[lang] = counts.get(lang, 0) + 1
        return counts

    def chunk_ids(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT id FROM chunks ORDER BY id")]

    def snapshot(self) -> dict:
        """meta, plus the chunk count, the failed documents' count, every chunk id and the chunks per language, read
        in one snapshot (a writer committing meanwhile cannot make them disagree)."""
        self.conn.execute("BEGIN")
        try:
            meta: dict = self.meta()
            meta["chunks"] = self.count_chunks()
            meta["failed"] = self.count_documents("failed")
            meta["chunk_ids"] = self.chunk_ids()
            meta["languages"] = self.language_counts()
        finally:
            self.conn.execute("COMMIT")
        return meta

    def quick_check(self) -> list[str]:
        """SQLite's PRAGMA quick_check: ["ok"] for an undamaged file."""
        return [r[0] for r in self.conn.execute("PRAGMA quick_check")]

    def chunk_texts(self) -> list[str]:
        """Every chunk's index text, in id order (what was embedded)."""
        return [r[0] for r in self.conn.execute("SELECT index_text FROM chunks ORDER BY id")]

    def all_chunk_hashes(self) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self.conn.execute("SELECT id, text_hash FROM chunks ORDER BY id")]

    def uncached_texts(self, model_id: str) -> dict[str, str]:
        """{text hash: index text} of the chunks the embedding cache holds no vector of for this model."""
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT c.text_hash, c.index_text FROM chunks c WHERE NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.model_id=? AND v.text_hash=c.text_hash)", (model_id,))}

    def chunks_by_ids(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        ids = list(ids)
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            q = ",".join("?" * len(part))
            for r in self.conn.execute(
                f"""SELECT c.id, c.doc_id, d.path, c.ordinal, c.text, c.page_start, c.page_end, c.slide,
                           c.heading_path, d.title, {self.column_or("c", "chunks", "ocr", "0")}
                    FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE c.id IN ({q})""", part):
                out[r[0]] = ChunkRow(*r[:-1], ocr=bool(r[-1]))
        return out

    def ok_documents(self) -> list[tuple[int, str]]:
        """(id, path) of every document that was ingested successfully."""
        return [(r[0], r[1]) for r in self.conn.execute("SELECT id, path FROM documents WHERE status='ok'")]

    def chunk_ids_of_documents(self, doc_ids: Iterable[int]) -> set[int]:
        """The ids of the chunks of these documents."""
        doc_ids = list(doc_ids)
        out: set[int] = set()
        for start in range(0, len(doc_ids), 500):
            part = doc_ids[start:start + 500]
            q = ",".join("?" * len(part))
            out.update(r[0] for r in self.conn.execute(f"SELECT id FROM chunks WHERE doc_id IN ({q})", part))
        return out

    # embedding cache
    def cached_vectors(self, model_id: str, hashes: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        hashes = list(dict.fromkeys(hashes))
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            q = ",".join("?" * len(part))
            for h, v in self.conn.execute(
                    f"SELECT text_hash, vector FROM vectors WHERE model_id=? AND text_hash IN ({q})", (model_id, *part)):
                out[h] = v
        return out

    def cached_hashes(self, model_id: str) -> Iterator[str]:
        """Every text hash the embedding cache holds a vector of for this model (keys only)."""
        for (h,) in self.conn.execute("SELECT text_hash FROM vectors WHERE model_id=?", (model_id,)):
            yield h

    def store_vectors(self, model_id: str, items: Iterable[tuple[str, bytes]]) -> None:
        """Add vectors to the embedding cache, in a transaction of their own."""
        with self.transaction():
            self.conn.executemany("INSERT OR REPLACE INTO vectors(model_id, text_hash, vector) VALUES(?,?,?)",
                                  ((model_id, h, v) for h, v in items))

    def drop_unreferenced_vectors(self, model_id: str) -> int:
        cur = self.conn.execute(
            "DELETE FROM vectors WHERE model_id=? AND text_hash NOT IN (SELECT text_hash FROM chunks)", (model_id,))
        return cur.rowcount

    def drop_other_models_vectors(self, *model_ids: str) -> None:
        """Drop the cached vectors of every model but these."""
        q = ",".join("?" * len(model_ids))
        self.conn.execute(f"DELETE FROM vectors WHERE model_id NOT IN ({q})", model_ids)

    # roots
    def roots(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT path FROM roots ORDER BY path")]

    def add_root(self, path: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO roots(path, added_at) VALUES(CAST(? AS TEXT), ?)",
                          (_db_text(path), time.time()))

    def remove_root(self, path: str) -> None:
        self.conn.execute("DELETE FROM roots WHERE path=CAST(? AS TEXT)", (_db_text(path),))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (KeyboardInterrupt included)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False
