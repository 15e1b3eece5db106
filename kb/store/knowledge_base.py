"""A knowledge base directory: the catalog, the index files of each generation, and the writer lock.

Atomic commit: a writer builds generation N+1's index files beside generation N's, then one SQLite
transaction records the new chunks and flips `meta.generation`. A crash anywhere before that COMMIT
leaves generation N whole; stray files are swept by the next writer. Generation N's files are kept one
round longer so a reader that read `generation = N` just before the flip can still load them.
One writer at a time (an OS file lock, released even on kill -9); readers never take it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from kb.document import Chunk  # noqa: F401  (the type DocumentUpdate.chunks holds)
from kb.store.catalog import Catalog
from kb.store.fsio import fs
from kb.text import TOKENIZER_VERSION

CATALOG = "catalog.sqlite"
LOCK = "write.lock"
LOCK_INFO = "write.lock.json"
def tokenizer_version(meta: Mapping[str, str]) -> str:
    """The version of kb's tokenizer (kb.text.TOKENIZER_VERSION) that made a knowledge base's BM25 tokens, from its
    catalog's meta: kb 0.1 recorded none, and was version 1."""
    return meta.get("tokenizer_version") or "1"


MULTILINGUAL_BATCH = 256  # chunks embedded by the multilingual model between progress reports (`Writer.commit`)
TOKENIZE_BATCH = 2000  # chunks tokenized again at a time (`Writer._tokenize_again`): memory stays bounded
_GEN_FILE = re.compile(r"^(dense|lexical|multilingual)-(\d+)(\.bin)?(\.tmp)?$")
# A generation has the multilingual index while English is under this share of its chunks. Search uses the list for
# English questions under kb.retrieve.CROSS_SHARE (0.1), so the index is there whenever it is wanted; the margin
# keeps a corpus near that line from dropping and re-embedding it at every ingest. Above it (English folders, most
# bilingual ones) the multilingual model embeds nothing: their ingest is as fast as before the list
# (docs/benchmarks.md).
MULTILINGUAL_INDEX_SHARE = 0.2


def check_model(meta: Mapping[str, str], embedding: EmbeddingInfo) -> None:
    """Raise KnowledgeBaseError, with the fix, when a knowledge base (its catalog's `meta`) was embedded with another
    model than `embedding`: its vectors and the model's would not be comparable, even at the same dimension."""
    recorded = meta.get("embedding_model")
    if recorded and recorded != embedding.model_id:
        dim = f" ({embedding.dim}-d)" if embedding.dim else ""  # 0: not loaded yet, so not known
        raise KnowledgeBaseError(
            f"this knowledge base was embedded with {recorded} ({meta.get('embedding_dim')}-d); the configured "
            f"model is {embedding.model_id}{dim}. Re-embed everything with `kb ingest --force --embedding-model "
            f"{embedding.spec}`, or use the recorded model.")


def keeps_multilingual(language_counts: Mapping[str, int]) -> bool:
    """Whether a generation with these chunks per language ("en", "zh") has the multilingual index."""
    total = sum(language_counts.values())
    return language_counts.get("en", 0) < MULTILINGUAL_INDEX_SHARE * total or not total


from kb.errors import KnowledgeBaseBusy, KnowledgeBaseError, KnowledgeBaseMissing  # noqa: E402,F401


@dataclass
class DocumentUpdate:
    """A document to (re)write in the catalog. `chunks` is None for a failed document."""

    path: str
    sha256: str | None
    size: int | None
    mtime: float | None
    format: str | None
    title: str | None
    pages: int | None
    status: str  # 'ok' or 'failed'
    error: str | None = None
    warnings: Sequence[str] = ()
    ocr_pages: int = 0
    chunks: "list[Chunk] | None" = None  # with their BM25 tokens set


@dataclass
class Changes:
    remove_doc_ids: list[int] = field(default_factory=list)
    updates: list[DocumentUpdate] = field(default_factory=list)
    add_roots: list[str] = field(default_factory=list)
    remove_roots: list[str] = field(default_factory=list)
    rebuild: bool = False  # rebuild the indexes from the catalog's vectors (forced ingest, repair)


@dataclass
class EmbeddingInfo:
    model_id: str
    spec: str
    dim: int


class KnowledgeBase:
    def __init__(self, path: Path):
        self.path = Path(path)

    # ---- opening -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / CATALOG).is_file()

    def catalog(self, readonly: bool = False) -> Catalog:
        if readonly and not self.exists():
            raise KnowledgeBaseMissing(
                f"no knowledge base at {self.path}; create one with `kb ingest PATH` (or choose one with --kb)")
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        return Catalog(self.path / CATALOG, readonly=readonly)

    def recorded(self, key: str) -> str | None:
        """A meta value as committed (None for a knowledge base that does not exist yet)."""
        if not self.exists():
            return None
        catalog = self.catalog(readonly=True)
        try:
            return catalog.get_meta(key)
        finally:
            catalog.close()

    def stray_index_files(self, generation: int) -> list[Path]:
        """Index files that belong neither to `generation` nor to the one before it (kept for readers that
        loaded it just before the last commit), and temporary files a write left behind."""
        keep = {generation, generation - 1}
        return sorted(p for p in self.path.iterdir()
                      if (m := _GEN_FILE.match(p.name)) and (int(m.group(2)) not in keep or m.group(4)))

    def writer_info(self) -> dict | None:
        """What the writer lock's holder recorded about itself (pid, command, start time), if anything."""
        try:
            info = json.loads((self.path / LOCK_INFO).read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def dense_path(self, generation: int) -> Path:
        return self.path / f"dense-{generation}.bin"

    def lexical_path(self, generation: int) -> Path:
        return self.path / f"lexical-{generation}"

    def multilingual_path(self, generation: int) -> Path:
        """The multilingual list's vector index (kb.embedders.multilingual) of a generation."""
        return self.path / f"multilingual-{generation}.bin"

    def load_multilingual(self, generation: int, live: int):
        """The multilingual list's DenseIndex of a committed generation, or None when the generation has none (a
        knowledge base last written by a kb before it: the next commit builds it, even one with nothing to change)."""
        from kb.embedders.multilingual import DIM
        from kb.store.dense import DenseIndex

        path = self.multilingual_path(generation)
        if generation == 0 or not path.is_file():
            return None
        try:
            return DenseIndex.load(path, DIM, live)
        except (FileNotFoundError, OSError):  # swept by a writer since: search without it
            return None

    # ---- writing -------------------------------------------------------------------------------
    @contextmanager
    def writer(self, timeout: float = 0.0, command: str = "kb") -> Iterator["Writer"]:
        """Hold the writer lock for the duration; fail with a clear message if another process has it."""
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path / LOCK))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise KnowledgeBaseBusy(self._busy_message()) from None
        try:
            (self.path / LOCK_INFO).write_text(json.dumps(
                {"pid": os.getpid(), "command": command, "started": time.time()}))
            catalog = self.catalog()
            try:
                writer = Writer(self, catalog)
                writer.sweep()
                yield writer
            finally:
                catalog.close()
        finally:
            try:
                (self.path / LOCK_INFO).unlink()
            except OSError:
                pass
            lock.release()

    def _busy_message(self) -> str:
        try:
            info = json.loads((self.path / LOCK_INFO).read_text())
            since = time.strftime("%H:%M:%S", time.localtime(info["started"]))
            who = f"another kb process (pid {info['pid']}, `{info['command']}`, since {since})"
        except (OSError, ValueError, KeyError):
            who = "another kb process"
        return (f"knowledge base {self.path} is busy: {who} is writing to it. "
                f"Wait for it to finish, or pass --wait SECONDS.")

    # ---- reading -------------------------------------------------------------------------------
    def load_indexes(self):
        """(generation, DenseIndex | None, LexicalIndex | None, meta) as committed; retries if a writer
        swaps generations between reading the catalog and opening the files."""
        from kb.store.dense import DenseIndex
        from kb.store.lexical import LexicalIndex

        last_error: Exception | None = None
        for _ in range(5):
            catalog = self.catalog(readonly=True)
            try:
                meta = catalog.meta()
                live = catalog.count_chunks()
            finally:
                catalog.close()
            gen = int(meta.get("generation", "0"))
            if gen == 0:
                return gen, None, None, meta
            try:
                dense = DenseIndex.load(self.dense_path(gen), int(meta["embedding_dim"]), live)
                lexical = LexicalIndex.load(self.lexical_path(gen))
                return gen, dense, lexical, meta
            except (FileNotFoundError, OSError) as e:
                last_error = e
                time.sleep(0.05)
        raise KnowledgeBaseError(
            f"the index files of {self.path} are missing or unreadable ({last_error}); "
            f"rebuild them with `kb repair`")

    def disk_size(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
        return total


class Writer:
    """What a process may do while it holds the writer lock."""

    def __init__(self, kb: KnowledgeBase, catalog: Catalog):
        self.kb = kb
        self.catalog = catalog

    @property
    def generation(self) -> int:
        return int(self.catalog.get_meta("generation") or 0)

    def sweep(self) -> list[Path]:
        """Remove index files of uncommitted (crashed) or superseded generations."""
        removed = self.kb.stray_index_files(self.generation)
        for p in removed:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        return removed

    def check_model(self, embedding: EmbeddingInfo) -> None:
        check_model(self.catalog.meta() if self.catalog.count_chunks() else {}, embedding)

    def commit(self, changes: Changes, embedding: EmbeddingInfo, chunker_version: str,
               on_multilingual: Callable[[int, int], None] | None = None) -> int:
        """Apply `changes` and publish a new generation atomically. Returns the committed generation.

        Vectors of every new chunk must already be in the embedding cache (Writer.catalog.store_vectors); the
        multilingual model's are computed here, `on_multilingual(done, total)` told of each batch.
        """
        from kb.embedders.multilingual import DIM as MULTI_DIM, MODEL_ID as MULTI_ID
        from kb.store.dense import DenseIndex
        from kb.store.lexical import LexicalIndex

        cat = self.catalog
        old_gen = self.generation
        new_gen = old_gen + 1
        keep_multilingual = keeps_multilingual(self._languages_after(changes))
        if keep_multilingual:
            self._embed_multilingual(changes, on_multilingual)
        with cat.transaction():
            # chunks tokenized by another version of kb's tokenizer are tokenized again, before this commit's own
            # chunks are added, and the BM25 index is rebuilt from them
            retokenize = bool(old_gen) and tokenizer_version(cat.meta()) != str(TOKENIZER_VERSION)
            if retokenize:
                self._tokenize_again()
            cat.set_meta("tokenizer_version", str(TOKENIZER_VERSION))
            removed: list[int] = []
            added: list[int] = []
            added_hashes: list[str] = []
            for doc_id in changes.remove_doc_ids:
                removed += cat.delete_document(doc_id)
            for u in changes.updates:
                doc_id = cat.upsert_document(
                    path=u.path, sha256=u.sha256, size=u.size, mtime=u.mtime, format=u.format, title=u.title,
                    pages=u.pages, status=u.status, error=u.error,
                    warnings="\n".join(u.warnings) if u.warnings else None, ocr_pages=u.ocr_pages)
                if u.chunks is not None or u.status != "ok":
                    removed += cat.delete_chunks_of(doc_id)
                if u.chunks:
                    added += cat.insert_chunks(doc_id, u.chunks)
                    added_hashes += [c.text_hash for c in u.chunks]
            for root in changes.add_roots:
                cat.add_root(root)
            for root in changes.remove_roots:
                cat.remove_root(root)
            # a generation written before the multilingual list existed gets it now, even with nothing else to do
            upgrade = bool(old_gen) and keep_multilingual and not self.kb.multilingual_path(old_gen).exists()
            bump = bool(removed or added or changes.rebuild or retokenize or upgrade)
            if bump:
                live_before = cat.count_chunks() - len(added) + len(removed)

                def index_of(old_path: Path, model_id: str, dim: int) -> "DenseIndex":
                    """The old generation's index with this commit's removals and additions, or built anew."""
                    index = None
                    if not changes.rebuild and old_gen and old_path.exists():
                        index = DenseIndex.load(old_path, dim, live_before)
                        if index.needs_rebuild(len(removed)):
                            index = None
                    if index is None:
                        ids_hashes = cat.all_chunk_hashes()
                        return DenseIndex.build(dim, [i for i, _ in ids_hashes],
                                                self._cached(model_id, dim, [h for _, h in ids_hashes]))
                    index.update(removed, added, self._cached(model_id, dim, added_hashes))
                    return index

                dense = index_of(self.kb.dense_path(old_gen), embedding.model_id, embedding.dim)
                fs.step("indexes:start")
                dense.save(self.kb.dense_path(new_gen))
                fs.step("indexes:dense")
                if keep_multilingual:
                    multilingual = index_of(self.kb.multilingual_path(old_gen), MULTI_ID, MULTI_DIM)
                    multilingual.save(self.kb.multilingual_path(new_gen))
                    fs.step("indexes:multilingual")
                ids, tokens = cat.all_chunk_tokens()
                LexicalIndex.build(ids, tokens).save(self.kb.lexical_path(new_gen))
                fs.step("indexes:lexical")
                cat.set_meta("generation", str(new_gen))
                cat.set_meta("embedding_model", embedding.model_id)
                cat.set_meta("embedding_spec", embedding.spec)
                cat.set_meta("embedding_dim", str(embedding.dim))
                cat.set_meta("chunker_version", str(chunker_version))
                # without the index, the multilingual model's vectors go too (re-embedded if the mix comes back)
                cat.drop_other_models_vectors(embedding.model_id, *([MULTI_ID] if keep_multilingual else []))
                cat.drop_unreferenced_vectors(embedding.model_id)
                cat.drop_unreferenced_vectors(MULTI_ID)
            cat.set_meta("last_ingest", str(time.time()))
        fs.step("commit:done")
        if bump:
            self.sweep()
            return new_gen
        return old_gen

    def _tokenize_again(self) -> None:
        """Every chunk's BM25 tokens made again from its text, by this kb's tokenizer: the chunks were tokenized
        by another version of it (kb.text.TOKENIZER_VERSION), so queries would not meet them."""
        from kb.text import chunk_tokens, file_name_tokens

        names: dict[str, list[str]] = {}
        last = 0
        while rows := self.catalog.chunks_to_tokenize(after=last, limit=TOKENIZE_BATCH):
            tokens = []
            for chunk_id, text, path in rows:
                if path not in names:
                    names[path] = file_name_tokens(Path(path).name)
                tokens.append((chunk_id, chunk_tokens(text, names[path])))
            self.catalog.set_chunk_tokens(tokens)
            last = rows[-1][0]

    def _cached(self, model_id: str, dim: int, hashes: Sequence[str]):
        import numpy as np

        found = self.catalog.cached_vectors(model_id, hashes)
        missing = [h for h in hashes if h not in found]
        if missing:
            raise KnowledgeBaseError(f"internal error: {len(missing)} chunks have no cached {model_id} vector")
        if not hashes:
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack([np.frombuffer(found[h], dtype=np.float32) for h in hashes])

    def _languages_after(self, changes: Changes) -> dict[str, int]:
        """The chunks per language the catalog will hold once `changes` are applied: those of the documents they
        leave alone, and theirs."""
        from kb.text import text_language

        cat = self.catalog
        replaced = set(changes.remove_doc_ids)
        for u in changes.updates:
            row = cat.document_by_path(u.path) if (u.chunks is not None or u.status != "ok") else None
            if row is not None:
                replaced.add(row.id)
        counts = cat.language_counts(except_docs=replaced)
        for u in changes.updates:
            for c in u.chunks or ():
                lang = c.lang or text_language(c.index_text)
                counts[lang] = counts.get(lang, 0) + 1
        return counts

    def _embed_multilingual(self, changes: Changes, on_batch: Callable[[int, int], None] | None = None) -> None:
        """Before the commit's transaction: the multilingual model's vectors of the chunks this commit adds, and of
        every chunk already in the catalog that has none (a knowledge base written before the multilingual list
        existed), into the embedding cache. Vectors of a commit that then fails stay in the cache, unreferenced,
        until a later commit drops them."""
        from kb.embedders.multilingual import MODEL_ID, multilingual_embedder

        texts = {c.text_hash: c.index_text for u in changes.updates for c in (u.chunks or ())}
        cached = self.catalog.cached_vectors(MODEL_ID, list(texts))
        texts = {h: t for h, t in texts.items() if h not in cached}
        texts.update(self.catalog.uncached_texts(MODEL_ID))
        if not texts:
            return
        hashes, model = list(texts), multilingual_embedder()
        for start in range(0, len(hashes), MULTILINGUAL_BATCH):  # stored as they come: an interrupted run keeps them
            part = hashes[start:start + MULTILINGUAL_BATCH]
            vectors = model.embed_documents([texts[h] for h in part])
            self.catalog.store_vectors(MODEL_ID, ((h, v.tobytes()) for h, v in zip(part, vectors)))
            if on_batch:
                on_batch(start + len(part), len(hashes))
