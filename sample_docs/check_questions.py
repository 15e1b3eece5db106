"""Check sample_docs/QUESTIONS.md against the documents in sample_docs/.

For every question in the main table: extract the text of the named file at the
named location (PDF page via pypdf, slide via python-pptx incl. tables, grouped
shapes and speaker notes, Markdown section by heading path, whole .txt file) and
assert that the answer occurs there, does not occur at any other location of
that file, and does not occur in any other document. Whitespace is collapsed
and case ignored; answers containing Chinese are compared with all whitespace
removed. Also checks the corpus-level promises (counts of facts, Chinese and
cross-lingual questions, off-topic questions, at least two facts per file), and that QUESTIONS_TRANSLATED.md
asks every fact once in the other language (`all_cases()` gives both sets to bench/answers.py).

Run: python sample_docs/check_questions.py   (exit code 1 on any failure)
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC_SUFFIXES = {".pdf", ".pptx", ".md", ".txt"}
NOT_DOCS = {"QUESTIONS.md", "QUESTIONS_TRANSLATED.md"}
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


# --------------------------------------------------------------------------- extraction


def pdf_locations(path: Path) -> dict[str, str]:
    import pypdf

    reader = pypdf.PdfReader(str(path))
    return {f"p.{i}": (page.extract_text() or "") for i, page in enumerate(reader.pages, 1)}


def _shape_texts(shapes):
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for sh in shapes:
        if sh.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shape_texts(sh.shapes)
            continue
        if getattr(sh, "has_text_frame", False) and sh.has_text_frame:
            yield sh.text_frame.text
        if getattr(sh, "has_table", False) and sh.has_table:
            for row in sh.table.rows:
                for cell in row.cells:
                    yield cell.text


def pptx_locations(path: Path) -> dict[str, str]:
    from pptx import Presentation

    out = {}
    for i, slide in enumerate(Presentation(str(path)).slides, 1):
        parts = list(_shape_texts(slide.shapes))
        if slide.has_notes_slide:
            parts.append(slide.notes_slide.notes_text_frame.text)
        out[f"slide {i}"] = "\n".join(parts)
    return out


def md_locations(path: Path) -> dict[str, str]:
    """Map 'A > B > C' (headings of level >= 2, the '#' title left out) to the text directly under it."""
    sections: dict[str, list[str]] = {"": []}
    stack: list[tuple[int, str]] = []
    key = ""
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            level, title = len(m.group(1)), m.group(2)
            if level == 1:
                stack, key = [], ""
            else:
                stack = [(lv, t) for lv, t in stack if lv < level] + [(level, title)]
                key = " > ".join(t for _, t in stack)
            sections.setdefault(key, []).append(title)
            continue
        sections.setdefault(key, []).append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


def txt_locations(path: Path) -> dict[str, str]:
    return {"-": path.read_text(encoding="utf-8")}


EXTRACTORS = {".pdf": pdf_locations, ".pptx": pptx_locations, ".md": md_locations, ".txt": txt_locations}


def norm(text: str, cjk: bool) -> str:
    text = text.casefold()
    return re.sub(r"\s+", "", text) if cjk else re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------- QUESTIONS.md


def parse_tables(md: str) -> tuple[list[dict], list[dict]]:
    """Return (main rows, off-topic rows); rows are dicts keyed by the header cells."""
    main, off, current, header = [], [], None, None
    for line in md.splitlines():
        if line.startswith("## "):
            current = off if "off-topic" in line.casefold() else current
            header = None
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            if current is None:
                current = main
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue
        current.append(dict(zip(header, cells)))
    return main, off


def flipped(lang: str) -> str:
    """The `lang` of a question asked in the other language: en ↔ zh→en, zh ↔ en→zh."""
    source = lang.split("→")[-1]
    asked = lang.split("→")[0]
    other = "en" if asked == "zh" else "zh"
    return source if other == source else f"{other}→{source}"


def translated_rows() -> list[dict]:
    """QUESTIONS_TRANSLATED.md's rows (id, lang, question, answer)."""
    rows, _ = parse_tables((HERE / "QUESTIONS_TRANSLATED.md").read_text(encoding="utf-8"))
    return rows


def all_cases() -> list[dict]:
    """Every planted fact asked both ways: QUESTIONS.md's rows and their translations (file and location
    copied), each with `cross` (asked in the other language than its document's) and `answers` (the fact as
    an answer in the question's language may state it, alternatives)."""
    main_rows, _ = parse_tables((HERE / "QUESTIONS.md").read_text(encoding="utf-8"))
    by_id = {r["id"]: r for r in main_rows}
    cases = []
    for r in main_rows:
        cases.append({**r, "cross": "→" in r["lang"], "answers": [r["answer"]]})
    for t in translated_rows():
        base = by_id[t["id"]]
        cases.append({**base, "id": t["id"] + "t", "lang": t["lang"], "question": t["question"],
                      "cross": "→" in t["lang"], "answers": [a.strip() for a in t["answer"].split(" / ")]})
    return cases


def check_translated(main_rows: list[dict]) -> list[str]:
    """Every fact of QUESTIONS.md is asked once in QUESTIONS_TRANSLATED.md, in the other language."""
    failures = []
    rows = translated_rows()
    by_id = {r["id"]: r for r in rows}
    if len(by_id) != len(rows):
        failures.append("QUESTIONS_TRANSLATED.md: an id occurs twice")
    for r in main_rows:
        t = by_id.get(r["id"])
        if t is None:
            failures.append(f"{r['id']}: not in QUESTIONS_TRANSLATED.md")
        elif t["lang"] != flipped(r["lang"]):
            failures.append(f"{r['id']}: translated lang {t['lang']!r} != {flipped(r['lang'])!r}")
        elif bool(CJK.search(t["question"])) != t["lang"].startswith("zh"):
            failures.append(f"{r['id']}: translated question is not in {t['lang'].split('→')[0]}")
    extra = set(by_id) - {r["id"] for r in main_rows}
    if extra:
        failures.append(f"QUESTIONS_TRANSLATED.md: unknown ids {sorted(extra)}")
    return failures


# --------------------------------------------------------------------------- main


def main() -> int:
    docs = sorted(p for p in HERE.iterdir() if p.suffix in DOC_SUFFIXES and p.name not in NOT_DOCS)
    locs = {p.name: EXTRACTORS[p.suffix](p) for p in docs}
    main_rows, off_rows = parse_tables((HERE / "QUESTIONS.md").read_text(encoding="utf-8"))
    failures: list[str] = []

    expected_cols = ["id", "lang", "question", "answer", "file", "location"]
    for row in main_rows + off_rows:
        if list(row) != expected_cols:
            failures.append(f"{row.get('id', '?')}: columns {list(row)} != {expected_cols}")

    seen_answers: dict[str, str] = {}
    ok = 0
    for row in main_rows:
        qid, ans, fname, loc = row["id"], row["answer"], row["file"], row["location"]
        cjk = bool(CJK.search(ans))
        a = norm(ans, cjk)
        if a in seen_answers:
            failures.append(f"{qid}: answer {ans!r} duplicates {seen_answers[a]}")
        seen_answers[a] = qid
        if fname not in locs:
            failures.append(f"{qid}: file {fname!r} not found")
            continue
        if loc not in locs[fname]:
            failures.append(f"{qid}: location {loc!r} not in {fname} (have: {', '.join(locs[fname])})")
            continue
        problems = []
        if a not in norm(locs[fname][loc], cjk):
            problems.append(f"answer {ans!r} not found at {fname} {loc}")
        for other_loc, text in locs[fname].items():
            if other_loc != loc and a in norm(text, cjk):
                problems.append(f"answer {ans!r} also at {fname} {other_loc or '(before first heading)'}")
        for other, d in locs.items():
            if other != fname and any(a in norm(t, cjk) for t in d.values()):
                problems.append(f"answer {ans!r} also occurs in {other}")
        if problems:
            failures += [f"{qid}: {p}" for p in problems]
        else:
            ok += 1

    failures += check_translated(main_rows)

    # corpus-level promises
    langs = Counter(r["lang"] for r in main_rows)
    per_file = Counter(r["file"] for r in main_rows)
    cross = sum(n for lang, n in langs.items() if "→" in lang)
    zh_questions = sum(n for lang, n in langs.items() if lang.startswith("zh"))
    if len(main_rows) < 24:
        failures.append(f"only {len(main_rows)} facts (< 24)")
    if zh_questions < 8:
        failures.append(f"only {zh_questions} Chinese questions (< 8)")
    if cross < 3:
        failures.append(f"only {cross} cross-lingual questions (< 3)")
    if len(off_rows) != 5 or any(r["answer"] != "-" for r in off_rows):
        failures.append(f"off-topic table must have 5 rows with answer '-' (has {len(off_rows)})")
    for name in locs:
        if per_file[name] < 2:
            failures.append(f"{name}: only {per_file[name]} facts (< 2)")

    print(f"documents: {len(docs)}")
    for name in locs:
        print(f"  {name:36s} {per_file[name]:2d} facts, {len(locs[name])} locations")
    print(f"questions: {len(main_rows)} ({', '.join(f'{k}: {v}' for k, v in sorted(langs.items()))}); "
          f"off-topic: {len(off_rows)}")
    for f in failures:
        print("FAIL", f)
    print(f"{ok} passed, {len(main_rows) - ok} failed" + (f" ({len(failures)} problems)" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
