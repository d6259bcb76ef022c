"""Deterministic benchmark messages, written straight into the test server's maildir (stdlib only).

scripts/test-server.sh uses `maildir:~/Maildir:LAYOUT=fs` with home DIR/home/<user>, so folder "F" is
DIR/home/<user>/Maildir/F/{cur,new,tmp}. Writing files there (owned by the mail user) is much faster
than APPENDing 100,000 messages; Dovecot notices them on its next sync. File names are
`<time>.M<n>P1.bench,S=<size>,W=<size>:2,` with strictly increasing <time>: Dovecot assigns new UIDs
in file-name time order, so message i (0-based) gets UID i+1. The file's mtime is its INTERNALDATE.

Every message is multipart/mixed: a text/plain part (a few KB, every 4th one quoted-printable) and
zero or more base64 attachments (76-character lines, CRLF). The text part of every message with
index % 10 == 3 contains NEEDLE (and no other part or message does).
"""
import base64
import email.utils
import os
import random

NEEDLE = b"needle"
BASE_TIME = 1_600_000_000  # 2020-09-13: INTERNALDATE of message 0; +1 h per message
WORDS = (b"invoice report meeting project budget quarterly review draft schedule shipment order "
         b"payment account update summary attached please find regards thanks monday friday "
         b"customer supplier contract delivery status question answer follow up notes agenda "
         b"server backup release version issue ticket deadline proposal estimate travel").split()
_POOL = None


def pool():
    """16 MiB of deterministic pseudo-random bytes; attachments are slices of it (cheap to make)."""
    global _POOL
    if _POOL is None:
        _POOL = random.Random(12345).randbytes(16 << 20)
    return _POOL


def payload(seed, size):
    p = pool()
    off = (seed * 1_000_003) % len(p)
    out = bytearray()
    while len(out) < size:
        take = min(size - len(out), len(p) - off)
        out += p[off:off + take]
        off = 0
    return bytes(out)


def b64_lines(data):
    """base64 in 76-character lines, CRLF after each (the usual MIME layout)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


_LINES = None


def text_body(rng, size, needle):
    """Lines of words (a slice of a fixed pool of 4096 lines, so 100,000 messages are quick to make)."""
    global _LINES
    if _LINES is None:
        r = random.Random(777)
        _LINES = [b" ".join(r.choice(WORDS) for _ in range(r.randint(6, 11))) for _ in range(4096)]
    start = rng.randrange(len(_LINES))
    lines, n = [], 0
    while n < size:
        line = _LINES[(start + len(lines)) % len(_LINES)]
        lines.append(line)
        n += len(line) + 2
    if needle:
        k = rng.randrange(len(lines))
        lines[k] = lines[k] + b" " + NEEDLE
    return lines


def qp_encode_lines(lines):
    """Quoted-printable with a few encoded non-ASCII words and soft breaks (realistic, decodable)."""
    out = []
    for i, line in enumerate(lines):
        if i % 5 == 2:
            line = line + b" caf=C3=A9"
        while len(line) > 75:
            cut = 75
            while line[cut - 3:cut].find(b"=") >= 0:  # never split an =XX escape
                cut -= 1
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return b"\r\n".join(out) + b"\r\n"


def message(index, text_size, attachments, needle=None):
    """One message as bytes (CRLF). attachments: list of decoded sizes."""
    rng = random.Random(index * 7919 + text_size)
    if needle is None:
        needle = index % 10 == 3
    boundary = b"=_bench_%08d" % index
    date = BASE_TIME + index * 3600
    hdr = [
        b"Return-Path: <sender%d@example.org>" % (index % 97),
        b"From: Sender %d <sender%d@example.org>" % (index % 97, index % 97),
        b"To: Bench User <tester@example.org>",
        b"Subject: " + b" ".join(rng.choice(WORDS) for _ in range(5)) + b" #%d" % index,
        b"Date: " + email.utils.formatdate(date, usegmt=True).encode(),
        b"Message-ID: <bench.%d@example.org>" % index,
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"',
    ]
    lines = text_body(rng, text_size, needle)
    parts = [b"This is a multi-part message in MIME format.\r\n"]
    if index % 4 == 1:
        parts.append(b"--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp_encode_lines(lines))
    else:
        parts.append(b"--" + boundary + b"\r\nContent-Type: text/plain; charset=us-ascii\r\n"
                     b"Content-Transfer-Encoding: 7bit\r\n\r\n" + b"\r\n".join(lines) + b"\r\n")
    for k, size in enumerate(attachments):
        name = b"file%d-%d.bin" % (index, k + 1)
        parts.append(b"--" + boundary + b"\r\nContent-Type: application/octet-stream; name=\"" + name +
                     b"\"\r\nContent-Disposition: attachment; filename=\"" + name +
                     b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64_lines(payload(index * 31 + k, size)))
    return b"\r\n".join(hdr) + b"\r\n\r\n" + b"".join(parts) + b"--" + boundary + b"--\r\n"


def attachment_bytes(index, k, size):
    """The decoded bytes of attachment k (0-based) of message `index`: what imapfs's file k+2 holds."""
    return payload(index * 31 + k, size)


def realistic_attachments(index, max_kib=1024):
    """0-2 attachments, sizes spread log-uniformly from 1 KiB to max_kib KiB (with the default 1 MiB,
    about 40% of them are above 64 KiB encoded)."""
    rng = random.Random(index * 104729)
    n = rng.choice((0, 1, 1, 1, 2))
    return [int(1024 * 2 ** rng.uniform(0, max_kib.bit_length() - 1)) for _ in range(n)]


class Maildir:
    def __init__(self, root, uid=None, gid=None):
        self.root, self.uid, self.gid = root, uid, gid

    def folder(self, name):
        d = os.path.join(self.root, name)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
            self._own(os.path.join(d, sub))
        p = d
        while p != self.root and p.startswith(self.root):
            self._own(p)
            p = os.path.dirname(p)
        return d

    def _own(self, path):
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)

    def write(self, folder, index, raw, seen=False):
        d = self.folder(folder) if not os.path.isdir(os.path.join(self.root, folder, "cur")) else \
            os.path.join(self.root, folder)
        t = BASE_TIME + index * 3600
        name = "%d.M%dP1.bench,S=%d,W=%d:2,%s" % (t, index, len(raw), len(raw), "S" if seen else "")
        tmp = os.path.join(d, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(raw)
        self._own(tmp)
        os.utime(tmp, (t, t))
        os.rename(tmp, os.path.join(d, "cur", name))
        return len(raw)
