"""Document -> Chunks: structure-aware, token-budgeted, with a small sentence-aligned overlap.

Order of splitting: sections (PDF pages, slides, Markdown heading blocks), then paragraphs (blank lines),
then sentences (`kb.text.sentence_spans`), then, for a single sentence longer than the target, words /
single Han characters (and characters of one enormous "word", e.g. a long URL).

Rules:

* Consecutive sections share chunks only if neither is a slide and both have the same heading path.
  So PDF pages (same heading path) may be merged, and the chunk records page_start..page_end; slides are
  never merged with each other; Markdown sections with different heading paths never share a chunk.
* `index_text` = prefix + text. The prefix is the document title and the heading path, one line each
  ("Title\\nInstall > Linux\\n"; a first heading equal to the title is not repeated), truncated so that
  it takes at most a third of the token budget. `text` (no prefix) is what users see.
* `count_tokens([chunk.index_text])[0] <= max_tokens`, always; `n_tokens` is that count.
* `target_tokens` (default and maximum: `max_tokens`) is the chunk size aimed at, prefix and special
  tokens included. The chunks of one section are balanced (a section of 1.2 targets gives two chunks of
  ~0.6, not 1 + 0.2), and a paragraph that does not fit starts a fresh chunk when the current one is at
  least half full.
* Consecutive chunks of the same section overlap by up to `overlap_tokens`: the last whole sentence(s)
  of the previous chunk, or, when its last sentence alone is longer than that, its last words.
  No overlap across sections (pages, slides, headings).

Token counting: every sentence is counted once, all sentences of a document in one `count_tokens`
call, and counts are taken as additive (a text's count = the special tokens + the sum of its sentences'
counts without them), which is exact for WordPiece/SentencePiece tokenizers at whitespace seams. A
finished chunk is counted for real (all such chunks of the document in one call, and split further
if over) unless its estimate is exact by that rule with room to spare: every seam is whitespace or has
a CJK character on one side, and the estimate is at least one token per seam below `max_tokens`.
Chunks holding the parts of a word cut by characters are always verified.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from kb.document import Chunk, Document, Section, mark_ocr
from kb.text import HAN_CHARS as _HAN, sentence_spans

__all__ = ["CHUNKER_VERSION", "chunk_document", "index_prefix"]

CHUNKER_VERSION = 1

CountTokens = Callable[[Sequence[str]], list[int]]

_ATOM_RE = re.compile(rf"[{_HAN}]\s*|[^\s{_HAN}]+\s*|\s+")  # words (with trailing space) and Han chars
_BATCH = 2048  # texts per count_tokens call
_MIN_TARGET = 16  # content tokens aimed at, at least (within the hard budget)
_PATH_SEP = " > "


@dataclass(slots=True)
class _Piece:
    text: str  # stripped, never empty
    sep: str  # what joins it to the previous piece of a chunk: "", " ", "\n" or "\n\n"
    page: int | None
    sec: int  # index of its section in the document
    para_start: bool  # first piece of a paragraph or of a section
    tokens: int  # content tokens (special tokens excluded)


class _Counter:
    """count_tokens in batches, with the special-token constant split off."""

    def __init__(self, count_tokens: CountTokens):
        self.fn = count_tokens
        self.special = 0

    def raw(self, texts: Sequence[str]) -> list[int]:
        out: list[int] = []
        for i in range(0, len(texts), _BATCH):
            out.extend(self.fn(list(texts[i : i + _BATCH])))
        return out

    def content(self, texts: Sequence[str]) -> list[int]:
        s = self.special
        return [max(0, c - s) for c in self.raw(texts)]

    def one(self, text: str) -> int:
        return max(0, self.fn([text])[0] - self.special)


# --------------------------------------------------------------------------------------------------
# prefix


def index_prefix(title: str, heading_path: Sequence[str]) -> str:
    """The (untruncated) prefix of index_text: a title line and a heading-path line, each if non-empty.

    A first heading equal to the title (a Markdown H1 repeating it) is not repeated.
    """
    title = " ".join(title.split())
    path = [h for h in (" ".join(h.split()) for h in heading_path) if h]
    if path and title and path[0] == title:
        path = path[1:]
    return "".join(x + "\n" for x in (title, _PATH_SEP.join(path)) if x)


def _truncate(line: str, budget: int, counter: _Counter, keep_tail: bool = False) -> str:
    """The longest head (or tail) of `line`, with an ellipsis, of at most `budget` content tokens."""
    if budget <= 0:
        return ""

    def cut(n: int) -> str:
        if keep_tail:
            part = line[len(line) - n :].lstrip()
            return "…" + part if part else ""
        part = line[:n].rstrip()
        return part + "…" if part else ""

    lo, hi = 0, len(line)
    while lo < hi:  # binary search on characters
        mid = (lo + hi + 1) // 2
        if counter.one(cut(mid)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return cut(lo)


def _fit_prefix(prefix: str, has_title: bool, cap: int, counter: _Counter) -> tuple[str, int]:
    """Truncate a prefix to at most `cap` content tokens: the shorter line keeps up to half the cap.

    The title keeps its head, the heading path its tail (the most specific heading).
    """
    lines = prefix.rstrip("\n").split("\n")
    counts = counter.content(lines)
    budgets = [0] * len(lines)
    left = cap
    for k, i in enumerate(sorted(range(len(lines)), key=lambda i: counts[i])):
        budgets[i] = min(counts[i], left // (len(lines) - k))
        left -= budgets[i]
    fitted = [
        ln if c <= b else _truncate(ln, b, counter, keep_tail=not (has_title and i == 0))
        for i, (ln, c, b) in enumerate(zip(lines, counts, budgets))
    ]
    prefix = "".join(x + "\n" for x in fitted if x)
    while prefix:
        n = counter.one(prefix)
        if n <= cap:
            return prefix, n
        prefix = _truncate(prefix.rstrip("\n").replace("\n", " "), cap - 1, counter)
        prefix = prefix + "\n" if prefix else ""
    return "", 0


# --------------------------------------------------------------------------------------------------
# splitting


def _sep_for(seam: str) -> str:
    if not seam:
        return ""
    n = seam.count("\n")
    return "\n\n" if n >= 2 else "\n" if n == 1 else " "


def _group_sections(sections: list[Section]) -> list[list[int]]:
    """Runs of consecutive section indexes that may share chunks.

    Pages and slides are citation units, so each stays in chunks of its own: a citation then names the
    one page that holds the passage (a page range would send the reader hunting)."""
    groups: list[list[int]] = []
    for i, s in enumerate(sections):
        if groups:
            p = sections[groups[-1][-1]]
            if (s.slide is None and p.slide is None and s.page is None and p.page is None
                    and tuple(s.heading_path) == tuple(p.heading_path)):
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def _split_chars(s: str, limit: int, counter: _Counter) -> list[tuple[str, int]]:
    """Cut a string without spaces into slices of at most `limit` content tokens (real counts)."""
    out: list[tuple[str, int]] = []
    pending = [s]
    while pending:
        cur = pending.pop(0)
        c = counter.one(cur)
        if c <= limit or len(cur) <= 1:
            out.append((cur, c))
            continue
        size = max(1, min(len(cur) - 1, int(len(cur) * limit / c * 0.9)))
        pending[:0] = [cur[i : i + size] for i in range(0, len(cur), size)]
    return out


def _split_long(piece: _Piece, atoms: list[str], counts: list[int], limit: int,
                counter: _Counter) -> list[_Piece]:
    """Cut one overlong sentence into parts of at most `limit` tokens, at word / Han-character bounds."""
    raw_parts: list[tuple[str, int]] = []
    buf: list[str] = []
    buf_tok = 0
    for atom, c in zip(atoms, counts):
        if c > limit:  # one enormous "word": cut it by characters
            if buf:
                raw_parts.append(("".join(buf), buf_tok))
                buf, buf_tok = [], 0
            core = atom.rstrip()
            subs = _split_chars(core, limit, counter)
            subs[-1] = (subs[-1][0] + atom[len(core) :], subs[-1][1])
            raw_parts.extend(subs)
            continue
        if buf and buf_tok + c > limit:
            raw_parts.append(("".join(buf), buf_tok))
            buf, buf_tok = [], 0
        buf.append(atom)
        buf_tok += c
    if buf:
        raw_parts.append(("".join(buf), buf_tok))
    out: list[_Piece] = []
    prev_ws = False
    for raw, c in raw_parts:
        text = raw.strip()
        if text:
            sep = piece.sep if not out else (" " if prev_ws or raw[:1].isspace() else "")
            out.append(_Piece(text, sep, piece.page, piece.sec, piece.para_start and not out, c))
        prev_ws = raw[-1:].isspace()
    return out


def _limits(target: int, special: int, prefix_tokens: int, content_max: int) -> tuple[int, int]:
    """(content tokens aimed at, content tokens allowed) for chunks under a prefix of this size."""
    hard = max(1, content_max - prefix_tokens)
    return min(hard, max(target - special - prefix_tokens, _MIN_TARGET)), hard


# --------------------------------------------------------------------------------------------------
# packing


def _pack(pieces: list[_Piece], limit: int, overlap: int, counter: _Counter) -> list[list[_Piece]]:
    """Greedy, balanced packing of one group's pieces into chunks of at most `limit` content tokens.

    A chunk that continues the section of the previous one reserves `overlap` tokens for the tail it
    repeats; the tails are chosen after packing (so that all partial tails of the group are counted in
    one call).
    """
    total = sum(p.tokens for p in pieces)
    if total <= limit:
        return [pieces]
    n_est = max(1, math.ceil((total - overlap) / max(1, limit - overlap)))
    aim = min(limit, math.ceil((total + (n_est - 1) * overlap) / n_est))
    para_left = [0] * len(pieces)  # tokens from each piece to the end of its paragraph
    acc = 0
    for i in range(len(pieces) - 1, -1, -1):
        acc += pieces[i].tokens
        para_left[i] = acc
        if pieces[i].para_start:
            acc = 0

    bodies: list[list[_Piece]] = []
    cur: list[_Piece] = [pieces[0]]
    cur_tok = pieces[0].tokens
    reserve = 0  # tokens kept free in `cur` for its overlap tail
    for i in range(1, len(pieces)):
        p = pieces[i]
        new_tok = reserve + cur_tok + p.tokens
        take = new_tok <= limit and (new_tok <= aim or new_tok - p.tokens / 2 <= aim)
        if take and p.para_start and reserve + cur_tok >= aim / 2 and reserve + cur_tok + para_left[i] > aim:
            take = False  # start the paragraph in a fresh chunk rather than split it needlessly
        if take:
            cur.append(p)
            cur_tok += p.tokens
            continue
        bodies.append(cur)
        reserve = overlap if p.sec == cur[-1].sec and p.tokens + overlap <= limit else 0
        cur, cur_tok = [p], p.tokens
    bodies.append(cur)
    if overlap <= 0 or len(bodies) == 1:
        return bodies

    # Tails: the last whole sentence(s) of the previous chunk that fit the overlap, or its last words.
    tails: list[list[_Piece]] = [[] for _ in bodies]
    partial: list[tuple[int, list[str], int]] = []  # (chunk, atoms of the last sentence, words taken)
    for j in range(1, len(bodies)):
        prev, nxt = bodies[j - 1], bodies[j][0]
        if prev[-1].sec != nxt.sec or sum(x.tokens for x in bodies[j]) + overlap > limit:
            continue
        used = 0
        for x in reversed(prev):
            if x.sec != nxt.sec or used + x.tokens > overlap:
                break
            tails[j].append(x)
            used += x.tokens
        if tails[j]:
            tails[j].reverse()
            continue
        last = prev[-1]
        atoms = _ATOM_RE.findall(last.text)
        if len(atoms) >= 2:  # guess the number of words from the sentence's tokens per word
            guess = overlap * len(atoms) * 17 // (20 * max(1, last.tokens))  # aim a bit short: fewer recounts
            partial.append((j, atoms, max(1, min(len(atoms) - 1, guess))))
    if partial:
        texts = [_clause_start("".join(atoms[-k:]).strip()) for _, atoms, k in partial]
        for (j, atoms, k), text, n in zip(partial, texts, counter.content(texts)):
            while n > overlap and k > 1:  # the guess was too long: shrink and recount
                k = min(k - 1, k * overlap // max(1, n))
                if k < 1:
                    break
                text = "".join(atoms[-k:]).strip()
                n = counter.one(text)
            if text and 0 < n <= overlap:
                last = bodies[j - 1][-1]
                tails[j] = [_Piece(text, last.sep, last.page, last.sec, False, n)]
    return [t + b for t, b in zip(tails, bodies)]


_CLAUSE_RE = re.compile(r"[，；：,;:]\s*")


def _clause_start(tail: str) -> str:
    """Start a partial-sentence tail after a clause mark in its first half, if it has one."""
    m = _CLAUSE_RE.search(tail, 0, len(tail) // 2)
    return tail[m.end() :] if m and m.end() < len(tail) else tail


# --------------------------------------------------------------------------------------------------
# chunks


_CJK_EDGE_RE = re.compile(rf"[{_HAN}\u3000-\u303f\uff00-\uffef]")  # Han, CJK punctuation, full-width forms


def _additive_seam(a: _Piece, b: _Piece) -> bool:
    """Whether counts add up across this join: whitespace, or a CJK character on either side (which
    tokenizers split off on its own); not two word characters glued together (a cut word)."""
    return bool(b.sep) or bool(_CJK_EDGE_RE.match(a.text[-1]) or _CJK_EDGE_RE.match(b.text[0]))


def _join(pieces: list[_Piece]) -> str:
    parts = [pieces[0].text]
    for p in pieces[1:]:
        parts.append(p.sep)
        parts.append(p.text)
    return "".join(parts)


def _make_chunk(pieces: list[_Piece], sec: Section, prefix: str) -> Chunk:
    text = _join(pieces)
    pages = [p.page for p in pieces if p.page is not None]
    return Chunk(
        text=text,
        ordinal=0,
        index_text=prefix + text,
        page_start=min(pages) if pages else None,
        page_end=max(pages) if pages else None,
        slide=sec.slide,
        heading_path=tuple(sec.heading_path),
    )


def _refit(pieces: list[_Piece], sec: Section, prefix: str, prefix_tokens: int, max_tokens: int,
           counter: _Counter) -> list[Chunk]:
    """Chunks of `pieces` that fit `max_tokens` by a real count, splitting further where needed."""
    chunk = _make_chunk(pieces, sec, prefix)
    n = counter.raw([chunk.index_text])[0]
    if n <= max_tokens:
        chunk.n_tokens = n
        return [chunk]
    if len(pieces) > 1:
        mid = len(pieces) // 2
        halves = [pieces[:mid], pieces[mid:]]
    else:
        p = pieces[0]
        limit = max(1, (max_tokens - counter.special - prefix_tokens) * 3 // 4)
        atoms = _ATOM_RE.findall(p.text)
        parts = _split_long(p, atoms, counter.content([a.strip() or a for a in atoms]), limit, counter)
        if len(parts) <= 1:  # no word boundary helped: halve by characters
            h = max(1, len(p.text) // 2)
            parts = [_Piece(t, p.sep if j == 0 else "", p.page, p.sec, p.para_start and j == 0, 0)
                     for j, t in enumerate((p.text[:h], p.text[h:])) if t.strip()]
            if len(parts) <= 1:
                raise ValueError(f"cannot fit {p.text!r} into {max_tokens} tokens after the prefix")
        halves = [[x] for x in parts]
    out: list[Chunk] = []
    for h in halves:
        out.extend(_refit(h, sec, prefix, prefix_tokens, max_tokens, counter))
    return out


def chunk_document(
    doc: Document,
    count_tokens: CountTokens,
    max_tokens: int,
    target_tokens: int | None = None,
    overlap_tokens: int = 32,
) -> list[Chunk]:
    """Split a document into chunks whose index_text fits `max_tokens` tokens of the embedding model.

    `count_tokens(texts)` gives the model's token count of each text, special tokens included (the
    `Embedder.count_tokens` protocol). `target_tokens` is the chunk size aimed at, prefix included
    (None or 0: `max_tokens`; larger values are capped to it). `overlap_tokens` is the most that a chunk
    repeats of the previous chunk of the same section (0: no overlap).
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    sections = [s for s in doc.sections if s.text and not s.text.isspace()]
    if not sections:
        return []
    target = min(target_tokens, max_tokens) if target_tokens and target_tokens > 0 else max_tokens
    counter = _Counter(count_tokens)

    # ---- sentences of every section and the prefix of every heading path, counted in one call
    spans = [sentence_spans(s.text) for s in sections]
    sentences = [s.text[a:b] for s, sp in zip(sections, spans) for a, b in sp]
    paths = list(dict.fromkeys(tuple(s.heading_path) for s in sections))
    raw_prefixes = [index_prefix(doc.title, p) for p in paths]
    counts = counter.raw(["", *raw_prefixes, *sentences])
    counter.special = special = counts[0]
    content_max = max_tokens - special
    if content_max <= 0:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for text after {special} special tokens")
    cap = content_max // 3
    prefixes: dict[tuple[str, ...], tuple[str, int]] = {}
    for p, raw, c in zip(paths, raw_prefixes, counts[1 : 1 + len(paths)]):
        if c - special <= cap:
            prefixes[p] = (raw, max(0, c - special))
        else:
            prefixes[p] = _fit_prefix(raw, bool(doc.title.strip()), cap, counter)
    sent_tokens = [max(0, c - special) for c in counts[1 + len(paths) :]]

    # ---- pieces: sentences, with the whitespace that joins them; overlong ones cut further
    pieces_by_sec: list[list[_Piece]] = []
    overlong: list[tuple[int, int, int]] = []  # (section, piece, limit)
    k = 0
    for si, (sec, sp) in enumerate(zip(sections, spans)):
        limit = _limits(target, special, prefixes[tuple(sec.heading_path)][1], content_max)[0]
        plist: list[_Piece] = []
        prev_end = None
        for a, b in sp:
            sep = _sep_for(sec.text[prev_end:a]) if prev_end is not None else ""
            para_start = prev_end is None or sep == "\n\n"
            plist.append(_Piece(sec.text[a:b], sep, sec.page, si, para_start, sent_tokens[k]))
            if sent_tokens[k] > limit:
                overlong.append((si, len(plist) - 1, limit))
            prev_end = b
            k += 1
        pieces_by_sec.append(plist)
    if overlong:
        atoms = [_ATOM_RE.findall(pieces_by_sec[si][pi].text) for si, pi, _ in overlong]
        flat = counter.content([a.strip() or a for at in atoms for a in at])
        pos = [0]
        for at in atoms:
            pos.append(pos[-1] + len(at))
        for j in range(len(overlong) - 1, -1, -1):  # from the end, so earlier indexes stay valid
            si, pi, limit = overlong[j]
            parts = _split_long(pieces_by_sec[si][pi], atoms[j], flat[pos[j] : pos[j + 1]], limit, counter)
            pieces_by_sec[si][pi : pi + 1] = parts

    # ---- pack each run of mergeable sections
    packed: list[tuple[list[_Piece], Section]] = []
    for group in _group_sections(sections):
        first = sections[group[0]]
        limit = _limits(target, special, prefixes[tuple(first.heading_path)][1], content_max)[0]
        pieces: list[_Piece] = []
        for si in group:
            plist = pieces_by_sec[si]
            if plist and pieces:
                plist[0].sep = "\n"  # a page break inside a run of merged pages
            pieces.extend(plist)
        if pieces:
            for chunk_pieces in _pack(pieces, limit, min(max(0, overlap_tokens or 0), limit // 4), counter):
                packed.append((chunk_pieces, first))

    # ---- chunks; verify those whose estimate is not exact (one call), split any that are over
    chunks: list[Chunk] = []
    to_verify: list[int] = []
    for ps, sec in packed:
        prefix, ptok = prefixes[tuple(sec.heading_path)]
        chunk = _make_chunk(ps, sec, prefix)
        est = special + ptok + sum(p.tokens for p in ps)
        seams = len(ps) - 1 + (1 if prefix else 0)
        if est + seams <= max_tokens and all(_additive_seam(a, b) for a, b in zip(ps, ps[1:])):
            chunk.n_tokens = est
        else:
            to_verify.append(len(chunks))
        chunks.append(chunk)
    if to_verify:
        real = counter.raw([chunks[i].index_text for i in to_verify])
        refits: dict[int, list[Chunk]] = {}
        for i, n in zip(to_verify, real):
            if n <= max_tokens:
                chunks[i].n_tokens = n
            else:
                ps, sec = packed[i]
                prefix, ptok = prefixes[tuple(sec.heading_path)]
                refits[i] = _refit(ps, sec, prefix, ptok, max_tokens, counter)
        if refits:
            chunks = [c for i, c in enumerate(chunks) for c in (refits[i] if i in refits else [c])]
    for i, c in enumerate(chunks):
        c.ordinal = i
    mark_ocr(chunks, sections)
    return chunks
