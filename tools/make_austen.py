#!/usr/bin/env python3
"""Builds the Jane Austen language-modelling corpus for the decoder path (pretraining + gate tuning).

Standard library only (Python 3.11+). Source: the six novels in the Debian package
``r-cran-janeaustenr`` (``apt-get download r-cran-janeaustenr``), stored in R's lazy-load database
(``data/Rdata.rdx`` + ``data/Rdata.rdb``), read with the R-serialisation reader of
``tools/make_datasets.py``. Each novel is a character vector of printed lines; blank lines separate
paragraphs. The texts are public domain (Austen died in 1817); the package is MIT-licensed.

Outputs (JSONL, one ``{"text": ..., "book": ..., "chapter": ...}`` per row; gatecut reads ``text``):

* ``austen-pretrain.jsonl``: Sense and Sensibility, Pride and Prejudice, Mansfield Park, Emma and
  Northanger Abbey, in book order, as consecutive paragraph groups of at least ``--pretrain-words``
  words (paragraphs are never split; the pretraining script re-joins each book and cuts it into
  token blocks itself).
* ``austen-tune.jsonl`` / ``austen-test.jsonl``: Persuasion, chapters 1..``--tune-chapters`` and
  the rest. Rows are short so that they fit gatecut's ``--max-len 128`` tokens: paragraphs are
  merged while the row stays within ``--row-words`` words, and a longer paragraph is cut at
  sentence ends (or, for one over-long sentence, between words).

Within a paragraph, printed line breaks and runs of spaces become single spaces. Chapter and
volume headings are kept as their own short paragraphs; nothing else is removed.

Example (from the repository root):
  python3 tools/make_austen.py --out data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_datasets as md  # noqa: E402  (the R reader, .deb reader and fetch helper)

PACKAGE = "r-cran-janeaustenr"
PRETRAIN_BOOKS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey"]
TUNE_BOOK = "persuasion"
HEADING = re.compile(r"^\s*(chapter|volume)\b", re.I)


def load_novels(deb: Path):
    files = dict(md.deb_members(deb))
    base = "usr/lib/R/site-library/janeaustenr/data/"
    try:
        rdx, rdb = files[base + "Rdata.rdx"], files[base + "Rdata.rdb"]
    except KeyError:
        raise md.DataError(f"{deb}: no {base}Rdata.rdx/.rdb") from None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Rdata.rdx").write_bytes(rdx)
        (Path(tmp) / "Rdata.rdb").write_bytes(rdb)
        objs = md.read_lazyload_db(Path(tmp) / "Rdata.rdx", Path(tmp) / "Rdata.rdb",
                                   set(PRETRAIN_BOOKS + [TUNE_BOOK]))
    novels = {}
    for name, vec in objs.items():
        if not isinstance(vec, md.RVector) or vec.kind != md.STRSXP:
            raise md.DataError(f"janeaustenr::{name} is not a character vector")
        if any(line is None for line in vec.data):
            raise md.DataError(f"janeaustenr::{name} has NA lines")
        novels[name] = vec.data
    return novels, files.get(f"usr/share/doc/{PACKAGE}/copyright", b"").decode("utf-8")


def paragraphs(lines):
    """[(chapter number, paragraph text)]: blank lines end paragraphs; headings count chapters."""
    out, cur, chapter = [], [], 0
    for line in lines + [""]:
        if line.strip():
            cur.append(line.strip())
            continue
        if cur:
            text = re.sub(r"\s+", " ", " ".join(cur)).strip()
            if HEADING.match(text) and re.match(r"^\s*chapter\b", text, re.I):
                chapter += 1
            out.append((chapter, text))
            cur = []
    return out


def split_long(text, limit):
    """Pieces of at most ``limit`` words, cut at sentence ends where possible."""
    sentences = re.split(r"(?<=[.!?;:])\s+|(?<=[.!?;:][\"')])\s+", text) if len(text.split()) > limit else [text]
    pieces, cur = [], []
    for s in sentences:
        words = s.split()
        while len(words) > limit:  # one over-long sentence: cut between words
            if cur:
                pieces.append(" ".join(cur))
                cur = []
            pieces.append(" ".join(words[:limit]))
            words = words[limit:]
        if cur and len(cur) + len(words) > limit:
            pieces.append(" ".join(cur))
            cur = []
        cur.extend(words)
    if cur:
        pieces.append(" ".join(cur))
    return pieces


def short_rows(paras, limit):
    """Paragraphs merged (same chapter) while the row stays within ``limit`` words."""
    rows, cur, cur_ch = [], [], None
    for chapter, text in paras:
        for piece in split_long(text, limit):
            n = len(piece.split())
            if cur and (chapter != cur_ch or sum(len(p.split()) for p in cur) + n > limit):
                rows.append((cur_ch, " ".join(cur)))
                cur = []
            cur.append(piece)
            cur_ch = chapter
    if cur:
        rows.append((cur_ch, " ".join(cur)))
    return rows


def long_rows(paras, min_words):
    rows, cur, cur_ch = [], [], None
    for chapter, text in paras:
        if cur and chapter != cur_ch:
            rows.append((cur_ch, "\n".join(cur)))
            cur = []
        cur.append(text)
        cur_ch = chapter
        if sum(len(p.split()) for p in cur) >= min_words:
            rows.append((cur_ch, "\n".join(cur)))
            cur = []
    if cur:
        rows.append((cur_ch, "\n".join(cur)))
    return rows


def write_jsonl(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (git-ignored, e.g. data)")
    ap.add_argument("--work", type=Path, default=Path("data/downloads"), help="where the .deb is downloaded")
    ap.add_argument("--deb", type=Path, help="use this r-cran-janeaustenr .deb instead of downloading")
    ap.add_argument("--pretrain-words", type=int, default=200, help="minimum words per pretraining row")
    ap.add_argument("--row-words", type=int, default=80, help="maximum words per tune/test row")
    ap.add_argument("--tune-chapters", type=int, default=19, help="Persuasion chapters 1..N tune, the rest test")
    args = ap.parse_args(argv)
    try:
        deb = args.deb or md.fetch(["apt-get", "download", PACKAGE], args.work, f"{PACKAGE}_*.deb")
        novels, copyright_text = load_novels(deb)
    except md.DataError as e:
        print(f"make_austen: error: {e}", file=sys.stderr)
        return 2
    print(f"{deb.name}: sha256 {md.sha256(deb)}")
    pre = []
    for book in PRETRAIN_BOOKS:
        paras = paragraphs(novels[book])
        rows = long_rows(paras, args.pretrain_words)
        pre.extend({"text": t, "book": book, "chapter": ch} for ch, t in rows)
        print(f"  {book}: {len(novels[book])} lines, {len(paras)} paragraphs, "
              f"{sum(len(t.split()) for _, t in paras)} words, {rows[-1][0]} chapters, {len(rows)} rows")
    paras = paragraphs(novels[TUNE_BOOK])
    rows = short_rows(paras, args.row_words)
    tune = [{"text": t, "book": TUNE_BOOK, "chapter": ch} for ch, t in rows if ch <= args.tune_chapters]
    test = [{"text": t, "book": TUNE_BOOK, "chapter": ch} for ch, t in rows if ch > args.tune_chapters]
    print(f"  {TUNE_BOOK}: {len(paras)} paragraphs, {sum(len(t.split()) for _, t in paras)} words, "
          f"{rows[-1][0]} chapters, {len(rows)} rows of <= {args.row_words} words")
    outs = {"austen-pretrain": pre, "austen-tune": tune, "austen-test": test}
    for name, rs in outs.items():
        path = args.out / f"{name}.jsonl"
        write_jsonl(path, rs)
        words = [len(r["text"].split()) for r in rs]
        print(f"{path}: {len(rs)} rows, {sum(words)} words (per row: median {sorted(words)[len(words) // 2]}, "
              f"max {max(words)}), sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    lic = next((l.split(":", 1)[1].strip() for l in copyright_text.splitlines() if l.startswith("License:")), "?")
    print(f"package licence: {lic} (the novels themselves are public domain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
