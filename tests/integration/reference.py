#!/usr/bin/env python3
"""Reference client: what imapfs should show, read straight from the IMAP server (never through imapfs).

usage: reference.py --env DIR/env [--folder NAME] [--selfcheck] [--summary]

Library use:
    ref = Reference(env)            # env: dict from imapcommon.load_env
    folders = ref.list_folders()    # [Folder(name, raw, delim, attrs)]
    msgs = ref.folder_messages("INBOX")   # {uid: Message}
    ref.flags("INBOX")              # {uid: frozenset of flags}
    ref.close()

Message: uid, internaldate (epoch seconds), flags, header (BODY.PEEK[HEADER] bytes), sections (leaf
sections in order: "1", "2.1", "3", ...; message/rfc822 parts included), files {name: bytes or None}:
"HEADER", every leaf section (BINARY.PEEK[section]), every message/rfc822 section (BODY.PEEK[section]:
the encapsulated message verbatim -- Dovecot's BINARY of such a part rewrites the base64/QP parts inside
it to binary, see Reference.message_part) and "<sec>.HEADER" for message/rfc822 parts
(BODY.PEEK[<sec>.HEADER]). None means "no reference": Dovecot refused BINARY for that part (NO, e.g.
[UNKNOWN-CTE]) or dropped the connection (it does on broken base64); the client reconnects and goes on.

Only EXAMINE and *.PEEK are used, so reading never changes flags. Section numbering follows RFC 3501
section 6.4.5: a non-multipart message has part 1; a message/rfc822 part n has its body's parts at n.1,
n.2 (multipart body) or its single body at n.1; multipart containers themselves are not files.
"""
import argparse
import base64
import binascii
import datetime
import imaplib
import os
import quopri
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imapcommon import check, connect, imap_quote, load_env, mutf7_decode, mutf7_encode  # noqa: E402

imaplib._MAXLINE = 10_000_000  # very long header/bodystructure lines are fine


# ---------------------------------------------------------------- response parsing


class Lit(bytes):
    """A literal string from the server."""


def _responses(data):
    """Group imaplib's untagged data into responses: each a list of bytes (text) and Lit pieces."""
    out, cur = [], []
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            text, lit = item
            m = re.search(rb"~?\{(\d+)\}$", text)
            cur.append(text[: m.start()] if m else text)
            cur.append(Lit(lit))
        else:
            cur.append(item)
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def parse_sexp(pieces):
    """Parse a response (text pieces and Lit) into nested lists of bytes/Lit; atoms stay bytes,
    NIL becomes None. Atoms like BODY[1.HEADER]<0> keep their bracketed part."""
    toks = []
    for p in pieces:
        if isinstance(p, Lit):
            toks.append(p)
            continue
        i, n = 0, len(p)
        while i < n:
            c = p[i : i + 1]
            if c in b" \r\n":
                i += 1
            elif c in b"()":
                toks.append(c.decode())
                i += 1
            elif c == b'"':
                j, buf = i + 1, bytearray()
                while p[j : j + 1] != b'"':
                    if p[j : j + 1] == b"\\":
                        j += 1
                    buf += p[j : j + 1]
                    j += 1
                toks.append(Lit(bytes(buf)))
                i = j + 1
            else:
                j, depth = i, 0
                while j < n:
                    cj = p[j : j + 1]
                    if cj == b"[":
                        depth += 1
                    elif cj == b"]":
                        depth -= 1
                    elif depth == 0 and cj in b" ()\r\n":
                        break
                    j += 1
                atom = p[i:j]
                toks.append(None if atom.upper() == b"NIL" else atom)
                i = j
    pos = 0

    def val():
        nonlocal pos
        t = toks[pos]
        pos += 1
        if t == "(":
            lst = []
            while toks[pos] != ")":
                lst.append(val())
            pos += 1
            return lst
        return t

    items = []
    while pos < len(toks):
        items.append(val())
    return items


def parse_fetch(data):
    """{uid: {ITEM-NAME(str, upper): value}} from the untagged FETCH data of imaplib."""
    res = {}
    for resp in _responses(data):
        items = parse_sexp(resp)
        # items: [seq, [k, v, k, v, ...]]  (imaplib strips the leading "* " and keeps "n FETCH"?)
        if len(items) >= 2 and isinstance(items[-1], list):
            kv = items[-1]
        else:
            continue
        d = {}
        for k, v in zip(kv[0::2], kv[1::2]):
            d[bytes(k).decode("ascii").upper()] = v
        if "UID" in d:
            uid = int(d["UID"])
            res.setdefault(uid, {}).update(d)
    return res


# ---------------------------------------------------------------- BODYSTRUCTURE


def is_multipart(body):
    return isinstance(body, list) and body and isinstance(body[0], list)


def children(body):
    """The child parts of a multipart: the leading lists, before the subtype string."""
    out = []
    for c in body:
        if not isinstance(c, list):
            break
        out.append(c)
    return out


def _lower(x):
    return bytes(x).decode("ascii", "replace").lower() if x is not None else ""


def part_type(body):
    return "%s/%s" % (_lower(body[0]), _lower(body[1]))


def part_encoding(body):
    return _lower(body[5])


def is_message_rfc822(body):
    # Dovecot gives message/rfc822 (and message/global) parts the envelope/body/lines extension
    return (not is_multipart(body) and part_type(body) in ("message/rfc822", "message/global")
            and len(body) > 8 and isinstance(body[8], list))


def sections(bs):
    """[(section, kind)] in order; kind is "leaf" or "message" (message/rfc822 part)."""
    out = []

    def visit(part, sec):
        if is_multipart(part):
            for i, child in enumerate(children(part), 1):
                visit(child, "%s.%d" % (sec, i) if sec else str(i))
        elif is_message_rfc822(part):
            out.append((sec, "message"))
            inner = part[8]
            if is_multipart(inner):
                visit(inner, sec)
            else:
                visit(inner, sec + ".1")
        else:
            out.append((sec, "leaf"))

    if is_multipart(bs):
        visit(bs, "")
    else:
        visit(bs, "1")
    return out


def part_at(bs, sec):
    """The BODYSTRUCTURE node for a section string."""
    nums = [int(x) for x in sec.split(".")]
    node = bs
    if not is_multipart(bs):
        if nums[0] != 1:
            raise KeyError(sec)
        nums = nums[1:]  # part 1 of a non-multipart message is its body
    for n in nums:
        if is_multipart(node):
            node = children(node)[n - 1]
        elif is_message_rfc822(node):
            inner = node[8]
            node = children(inner)[n - 1] if is_multipart(inner) else inner
        else:
            if n != 1:
                raise KeyError(sec)
    return node


def expected_files(secs):
    names = ["HEADER"]
    for s, kind in secs:
        names.append(s)
        if kind == "message":
            names.append(s + ".HEADER")
    return names


def parse_internaldate(v):
    s = bytes(v).decode().strip()
    return datetime.datetime.strptime(s, "%d-%b-%Y %H:%M:%S %z").timestamp()


# ---------------------------------------------------------------- the client


class Folder:
    def __init__(self, name, raw, delim, attrs):
        self.name, self.raw, self.delim, self.attrs = name, raw, delim, attrs

    @property
    def noselect(self):
        return any(a.lower() in ("\\noselect", "\\nonexistent") for a in self.attrs)

    def __repr__(self):
        return "Folder(%r, %r, %r)" % (self.name, self.raw, self.attrs)


class Message:
    def __init__(self, uid):
        self.uid = uid
        self.internaldate = None
        self.flags = frozenset()
        self.header = b""
        self.bodystructure = None
        self.sections = []
        self.files = {}

    def __repr__(self):
        return "Message(uid=%d, files=%s)" % (self.uid, list(self.files))


class Reference:
    def __init__(self, env, timeout=120):
        self.env = env
        self.timeout = timeout
        self.conn = None
        self.selected = None
        self.reconnects = 0

    def _conn(self):
        if self.conn is None:
            self.conn = connect(self.env, timeout=self.timeout)
            self.selected = None
        return self.conn

    def _drop(self):
        try:
            if self.conn is not None:
                self.conn.shutdown()
        except Exception:
            pass
        self.conn = None
        self.selected = None
        self.reconnects += 1

    def close(self):
        if self.conn is not None:
            try:
                self.conn.logout()
            except Exception:
                pass
            self.conn = None

    def examine(self, folder):
        c = self._conn()
        if self.selected != folder:
            typ, data = c.select(imap_quote(mutf7_encode(folder)), readonly=True)
            if typ != "OK":
                raise RuntimeError("EXAMINE %s: %r" % (folder, data))
            self.selected = folder
        return c

    def list_folders(self):
        c = self._conn()
        data = check(c.list('""', "*"), "LIST")
        out = []
        for resp in _responses(data):
            items = parse_sexp(resp)
            attrs, delim, raw = items[0], items[1], items[2]
            raw = bytes(raw).decode("ascii")
            out.append(Folder(mutf7_decode(raw), raw, bytes(delim).decode() if delim else None,
                              [bytes(a).decode() for a in attrs]))
        return out

    def uids(self, folder):
        c = self.examine(folder)
        data = check(c.uid("SEARCH", "ALL"), "UID SEARCH")
        return sorted(int(x) for x in b" ".join(d for d in data if d).split())

    def flags(self, folder):
        c = self.examine(folder)
        if not self.uids(folder):
            return {}
        data = check(c.uid("FETCH", "1:*", "(UID FLAGS)"), "FETCH FLAGS")
        return {uid: frozenset(bytes(f).decode() for f in d["FLAGS"]) for uid, d in parse_fetch(data).items()}

    def _fetch_one(self, folder, uid, item, key):
        """Fetch one item; returns bytes, or None when the server refuses (NO) or drops the connection.
        A BINARY fetch refused with [UNKNOWN-CTE] gives the raw part (BODY.PEEK): imapfs serves a part
        whose encoding is unknown as it is stored."""
        try:
            c = self.examine(folder)
            typ, data = c.uid("FETCH", str(uid), "(UID %s)" % item)
        except (imaplib.IMAP4.abort, OSError, EOFError):
            self._drop()
            return None
        if typ != "OK":
            if item.startswith("BINARY.PEEK[") and b"UNKNOWN-CTE" in b" ".join(d for d in data if isinstance(d, bytes)):
                sec = item[len("BINARY.PEEK["):-1]
                return self._fetch_one(folder, uid, "BODY.PEEK[%s]" % sec, "BODY[%s]" % sec)
            return None
        d = parse_fetch(data).get(uid, {})
        for k, v in d.items():
            if k.startswith(key):
                return b"" if v is None else bytes(v)
        return None

    def message(self, folder, uid, bodies=True):
        c = self.examine(folder)
        data = check(c.uid("FETCH", str(uid), "(UID INTERNALDATE FLAGS BODYSTRUCTURE BODY.PEEK[HEADER])"),
                     "FETCH %s/%d" % (folder, uid))
        d = parse_fetch(data)[uid]
        m = Message(uid)
        m.internaldate = parse_internaldate(d["INTERNALDATE"])
        m.flags = frozenset(bytes(f).decode() for f in d["FLAGS"])
        m.header = bytes(d["BODY[HEADER]"])
        m.bodystructure = d["BODYSTRUCTURE"]
        m.sections = sections(m.bodystructure)
        m.files["HEADER"] = m.header
        for sec, kind in m.sections:
            if not bodies:
                m.files[sec] = None
            elif kind == "message":
                m.files[sec] = self.message_part(folder, uid, sec, part_encoding(part_at(m.bodystructure, sec)))
            else:
                m.files[sec] = self._fetch_one(folder, uid, "BINARY.PEEK[%s]" % sec, "BINARY[%s]" % sec)
            if kind == "message":
                m.files[sec + ".HEADER"] = (self._fetch_one(folder, uid, "BODY.PEEK[%s.HEADER]" % sec,
                                                            "BODY[%s.HEADER]" % sec) if bodies else None)
        return m

    def message_part(self, folder, uid, sec, encoding):
        """A message/rfc822 part: the encapsulated message as it is (BODY.PEEK[sec]), with only the part's
        own transfer encoding removed (RFC 2046 allows none but 7bit/8bit/binary; broken mailers use base64).
        Not BINARY.PEEK[sec]: for a message/rfc822 part Dovecot re-encodes the encapsulated message,
        turning every base64/QP part inside it into "Content-Transfer-Encoding: binary"."""
        raw = self._fetch_one(folder, uid, "BODY.PEEK[%s]" % sec, "BODY[%s]" % sec)
        if raw is None or encoding not in ("base64", "quoted-printable"):
            return raw
        return self._fetch_one(folder, uid, "BINARY.PEEK[%s]" % sec, "BINARY[%s]" % sec)

    def folder_messages(self, folder, bodies=True):
        return {uid: self.message(folder, uid, bodies) for uid in self.uids(folder)}

    def body_section(self, folder, uid, sec):
        """BODY.PEEK[sec] (the encoded bytes)."""
        return self._fetch_one(folder, uid, "BODY.PEEK[%s]" % sec, "BODY[%s]" % sec)


# ---------------------------------------------------------------- self-check


def py_decode(encoding, raw):
    if encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", raw)
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except binascii.Error:
            return None
    if encoding == "quoted-printable":
        # RFC 2045: trailing whitespace on a line is dropped before decoding
        lines = raw.split(b"\r\n")
        return quopri.decodestring(b"\r\n".join(l.rstrip(b" \t") for l in lines))
    return raw


def selfcheck(ref, folder, msgs):
    """Compare Dovecot's BINARY with Python's decoding of BODY.PEEK; returns (checked, mismatches)."""
    checked, bad = 0, []
    for uid, m in msgs.items():
        for sec, kind in m.sections:
            got = m.files[sec]
            if got is None or kind == "message":
                continue
            enc = part_encoding(part_at(m.bodystructure, sec))
            raw = ref.body_section(folder, uid, sec)
            want = py_decode(enc, raw)
            checked += 1
            if want != got:
                bad.append((folder, uid, sec, enc, len(got), None if want is None else len(want)))
    return checked, bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", required=True)
    ap.add_argument("--folder", action="append")
    ap.add_argument("--selfcheck", action="store_true", help="compare BINARY with Python's own decoding")
    a = ap.parse_args()
    ref = Reference(load_env(a.env))
    rc = 0
    try:
        folders = ref.list_folders()
        for f in folders:
            print("%-30s raw=%-25s delim=%s attrs=%s" % (f.name, f.raw, f.delim, " ".join(f.attrs)))
        for f in folders:
            if f.noselect or (a.folder and f.name not in a.folder):
                continue
            msgs = ref.folder_messages(f.name)
            for uid, m in msgs.items():
                noref = [k for k, v in m.files.items() if v is None]
                print("  %s/%d  %s  flags=%s files=%d bytes=%d%s" % (
                    f.name, uid, datetime.datetime.fromtimestamp(m.internaldate, datetime.timezone.utc).isoformat(),
                    ",".join(sorted(m.flags)) or "-", len(m.files), sum(len(v) for v in m.files.values() if v),
                    " no-reference=" + ",".join(noref) if noref else ""))
            if a.selfcheck:
                n, bad = selfcheck(ref, f.name, msgs)
                print("  selfcheck %s: %d parts compared, %d mismatches" % (f.name, n, len(bad)))
                for b in bad:
                    print("    MISMATCH", b)
                    rc = 1
        print("reconnects after refused/dropped BINARY: %d" % ref.reconnects)
    finally:
        ref.close()
    sys.exit(rc)


if __name__ == "__main__":
    main()
