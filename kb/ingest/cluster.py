"""Stage 2 of an ingest on a Ray cluster: the same contract as `LocalProcessor` (one `Processed` per task, in
task order; every yielded chunk's vector in the embedding cache once the iterator is exhausted), with read →
extract → chunk → embed running in Ray Data actors, one embedder loaded per actor.

How it is split (docs/scale.md says why):
- The driver (the `kb ingest` process, holding the writer lock) plans, then sends the tasks as a Ray dataset;
  it stores the vectors that come back in the cache, yields the results in task order (buffering those that
  arrive early, ignoring a task seen twice) and commits. Nothing is committed before the end, so a driver
  stopped by Ctrl-C leaves the knowledge base as it was (and Ray is shut down on the way out).
- The embedding cache lives in the driver's SQLite catalog, which workers cannot query. The driver broadcasts
  the cached keys for this model (the first 64 bits of each text hash, a sorted uint64 array: 80 MB at 10M
  chunks) and workers embed only chunks not in it. A chunk a worker took as cached is checked on the driver
  against the real cache, and embedded there in the (2^-64-unlikely) case it is not.
- Files: a worker reads the path itself when it sees a file of the planned size and sha256 there (a shared
  file system); otherwise it fetches the bytes from a small actor pinned to the driver's node
  (`ray_ship_files=always` forces that for every file).
- A worker process killed mid-batch: Ray restarts the actor and retries the batch (RETRIES times), so each
  task's result reaches the driver at least once and the driver keeps the first.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from kb.ingest.options import IngestOptions, Progress
from kb.ingest.plan import FileTask
from kb.ingest.process import EMBED_POOL, LocalProcessor, Processed, extract_one

RETRIES = 4  # restarts of a dead actor and retries of its batch before the ingest fails (a file that kills
#              its worker every time, e.g. a crashing PDF library, must not loop forever)
SHIP_MODES = ("auto", "always")


def hash_key(text_hash: str) -> int:
    """The 64-bit key a text hash is broadcast as (its first 16 hex digits)."""
    return int(text_hash[:16], 16)


def connect(address: str) -> bool:
    """Join or start a cluster: "local" starts one in this process, "auto" joins the running one, anything else
    is an address. Returns whether this call connected (and so should disconnect at the end)."""
    import ray

    if ray.is_initialized():
        return False
    import logging

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its per-dataset INFO lines would break kb's output
    ray.init(address=None if address in ("", "local") else address, include_dashboard=False,
             log_to_driver=False, logging_level="WARNING")
    return True


def plan_workers(resources: dict, wanted: int) -> tuple[int, dict]:
    """How many actors and what each needs: one per GPU when the cluster has GPUs, else one per CPU."""
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return (wanted or gpus), {"num_gpus": 1}
    return (wanted or max(1, int(resources.get("CPU", 1)))), {"num_cpus": 1}


class FileServer:
    """Runs on the driver's node: hands a worker the bytes of a file it cannot see."""

    def read(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except OSError:
            return None


class Worker:
    """A Ray Data actor: loads the embedder once, then turns batches of tasks into pickled results."""

    def __init__(self, options: IngestOptions, embedder_factory: Callable, cached_ref: list, file_server,
                 ship: str):
        import ray

        self.options, self.ship, self.server = options, ship, file_server
        self.cached = ray.get(cached_ref[0])  # sorted uint64 keys of the vectors the driver already has
        self.chunker = LocalProcessor(options, embedder_factory, model_id="", cache=None)
        self.chunker.embedder = self.embedder = embedder_factory()

    def _is_cached(self, h: str) -> bool:
        key = np.uint64(hash_key(h))
        i = int(np.searchsorted(self.cached, key))
        return i < len(self.cached) and self.cached[i] == key

    def _extract(self, path: str, size: int, sha256: str):
        if self.ship == "auto":
            try:
                if os.path.getsize(path) == size and hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha256:
                    return extract_one(path, self.options.extraction())
            except OSError:
                pass
        import ray

        data = ray.get(self.server.read.remote(path))
        if data is None:
            return None, "cannot read file on the ingesting machine"
        with tempfile.TemporaryDirectory(prefix="kb-ray-") as tmp:
            local = Path(tmp) / Path(path).name  # same name: same suffix, same title fallback
            local.write_bytes(data)
            doc, error = extract_one(str(local), self.options.extraction())
        if doc is not None:
            doc.path = Path(path)
        return doc, error

    def _one(self, path: str, size: int, sha256: str):
        doc, error = self._extract(path, size, sha256)
        if error is not None:
            return None, [], error
        try:
            chunks = self.chunker.chunk(doc)
        except Exception as e:
            return None, [], f"unexpected error while chunking: {type(e).__name__}: {e}"
        if not chunks:
            return None, [], "no text to index"
        return doc, chunks, None

    def __call__(self, batch: dict) -> dict:
        results, texts, owner = [], {}, {}
        for i, path, size, sha in zip(batch["i"], batch["path"], batch["size"], batch["sha256"]):
            doc, chunks, error = self._one(str(path), int(size), str(sha))
            for c in chunks:
                h = c.text_hash
                if h not in texts and not self._is_cached(h):
                    texts[h], owner[h] = c.index_text, int(i)
            results.append((int(i), doc, chunks, error))
        hashes = list(texts)
        vectors = self.embedder.embed_documents([texts[h] for h in hashes], batch_size=self.options.batch_size) \
            if hashes else []
        new: dict[int, dict[str, bytes]] = {}
        for h, v in zip(hashes, vectors):
            new.setdefault(owner[h], {})[h] = np.asarray(v, dtype=np.float32).tobytes()
        payloads = [pickle.dumps((doc, chunks, error, new.get(i, {}), self.embedder.dim))
                    for i, doc, chunks, error in results]
        return {"i": np.array([r[0] for r in results], dtype=np.int64),
                "payload": np.array(payloads, dtype=object)}


@dataclass
class EmbedderInfo:
    """What the driver knows of the workers' embedder (the commit needs its dimension)."""

    dim: int


class RayProcessor:
    """`LocalProcessor`'s contract, with the work done by Ray Data actors (see the module docstring)."""

    def __init__(self, options: IngestOptions, embedder_factory: Callable, model_id: str, cache,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_embedder: Callable[[object], None] | None = None):
        if options.ray_ship_files not in SHIP_MODES:
            raise ValueError(f"ray_ship_files must be one of {SHIP_MODES}")
        self.options, self.model_id, self.cache = options, model_id, cache
        self._factory = embedder_factory
        self._on_embedder = on_embedder or (lambda e: None)
        self._emit = on_progress or (lambda p: None)
        self.embedder: EmbedderInfo | None = None
        self.embedded = self.reused = self.chunks = 0
        self.workers = 0
        self._driver_embedder = None
        self._stored: set[str] = set()
        self._pairs: list[tuple[str, bytes]] = []
        self._claims: list[tuple[str, str]] = []  # (hash, index_text) a worker took as cached

    def run(self, tasks: Sequence[FileTask]) -> Iterator[Processed]:
        if not tasks:
            return
        import ray

        joined = connect(self.options.ray_address)
        try:
            yield from self._run(ray, tasks)
            self._flush()
        finally:
            if joined:
                ray.shutdown()

    def _dataset(self, ray, tasks: Sequence[FileTask]):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = False
        self.workers, resources = plan_workers(ray.cluster_resources(), self.options.ray_workers)
        files_per_batch = max(1, min(64, len(tasks) // (2 * self.workers)))
        cached = np.array(sorted({hash_key(h) for h in self.cache.cached_hashes(self.model_id)}), dtype=np.uint64)
        here = ray.get_runtime_context().get_node_id()
        server = ray.remote(num_cpus=0)(FileServer).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
        rows = [{"i": i, "path": t.path, "size": t.size, "sha256": t.sha256} for i, t in enumerate(tasks)]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // files_per_batch)))
        with warnings.catch_warnings():  # Ray 2.60 warns that retries belong in named parameters it lacks
            warnings.simplefilter("ignore")
            return ds.map_batches(
                Worker, batch_size=files_per_batch, batch_format="numpy", concurrency=self.workers,
                fn_constructor_kwargs={"options": self.options, "embedder_factory": self._factory,
                                       "cached_ref": [ray.put(cached)], "file_server": server,
                                       "ship": self.options.ray_ship_files},
                max_restarts=RETRIES, max_task_retries=RETRIES, **resources)

    def _run(self, ray, tasks: Sequence[FileTask]) -> Iterator[Processed]:
        total, done, waiting = len(tasks), 0, {}
        rows = iter(self._dataset(ray, tasks).iter_rows())
        try:
            for row in rows:
                i = int(row["i"])
                if i < done or i in waiting:
                    continue  # a retried batch delivered this task again: the first result stands
                waiting[i] = row["payload"]
                while done in waiting:
                    yield self._processed(tasks[done], waiting.pop(done))
                    done += 1
                    self._emit(Progress("embed", done, total, self.chunks, self.chunks, tasks[done - 1].path))
        finally:
            getattr(rows, "close", lambda: None)()  # stop the execution and free its actors (Ctrl-C, errors)
        if done != total:
            raise RuntimeError(f"the Ray cluster returned {done} of {total} files")

    def _processed(self, task: FileTask, payload: bytes) -> Processed:
        doc, chunks, error, vectors, dim = pickle.loads(payload)
        if self.embedder is None:
            self.embedder = EmbedderInfo(dim)
            self._on_embedder(self.embedder)
        if error is not None:
            return Processed(task, error=error)
        for h, v in vectors.items():
            if h not in self._stored:
                self._stored.add(h)
                self._pairs.append((h, v))
        for c in chunks:
            if c.text_hash not in self._stored:
                self._claims.append((c.text_hash, c.index_text))
        self.chunks += len(chunks)
        if len(self._pairs) + len(self._claims) >= EMBED_POOL:
            self._flush()
        return Processed(task, document=doc, chunks=chunks)

    def _flush(self) -> None:
        """Store the new vectors; check the chunks workers took as cached (embed here any that are not)."""
        if self._pairs:
            self.cache.store_vectors(self.model_id, self._pairs)
            self.embedded += len(self._pairs)
            self._pairs = []
        if not self._claims:
            return
        present = self.cache.cached_vectors(self.model_id, [h for h, _ in self._claims])
        missing = {h: t for h, t in self._claims if h not in present and h not in self._stored}
        self.reused += len(self._claims) - len(missing)
        self._claims = []
        if missing:
            if self._driver_embedder is None:
                self._driver_embedder = self._factory()
            vectors = self._driver_embedder.embed_documents(list(missing.values()),
                                                            batch_size=self.options.batch_size)
            self.cache.store_vectors(self.model_id, ((h, v.tobytes()) for h, v in zip(missing, vectors)))
            self._stored.update(missing)
            self.embedded += len(missing)
