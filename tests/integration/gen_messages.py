#!/usr/bin/env python3
"""Deterministic generator of imapfs's own test messages.

usage: gen_messages.py OUTDIR [--no-big]

Writes OUTDIR/<folder-dir>/NNN-<name>.eml and OUTDIR/manifest.json. The same seed always gives the same
bytes (checked by `gen_messages.py --selftest`). Messages are written with CRLF line ends except where a
message is meant to have LF-only lines (note: IMAP APPEND through imaplib, and the server itself, turn
every line end into CRLF, so over IMAP such a message looks like any other).

manifest.json:
  folders:   {folder name (Unicode, "/"-delimited): {"dir": subdir, "messages": [{"file", "name", "broken",
              "grep"}]}}          -- messages in APPEND order, so on a fresh server UID = index + 1
  empty_folders: [names]          -- folders created with no message
  noselect:  [names]              -- parents that exist only as \\Noselect (never created themselves)
  grep_token: the token that `grep -l` must find in section 1 of exactly the messages with "grep": true
  big:       {"folder", "uid", "section", "size", "sha256"} of the 12 MiB attachment
"""
import base64
import hashlib
import json
import os
import random
import sys

SEED = 20240611
GREP_TOKEN = "zebra-quokka-4711"
CRLF = b"\r\n"


# ---------------------------------------------------------------- building blocks


def hdrs(pairs, eol=CRLF):
    out = b""
    for k, v in pairs:
        if isinstance(v, str):
            v = v.encode("utf-8")
        out += k.encode("ascii") + b": " + v + eol
    return out


def leaf(ctype, body, cte=None, extra=(), eol=CRLF):
    """A body part (its MIME headers + blank line + body)."""
    pairs = [("Content-Type", ctype)]
    if cte:
        pairs.append(("Content-Transfer-Encoding", cte))
    pairs += list(extra)
    return hdrs(pairs, eol) + eol + body


def multipart(subtype, boundary, parts, preamble=b"", epilogue=b"", extra=(), eol=CRLF):
    body = preamble
    for p in parts:
        body += b"--" + boundary.encode() + eol + p + eol
    body += b"--" + boundary.encode() + b"--" + eol + epilogue
    return leaf('multipart/%s; boundary="%s"' % (subtype, boundary), body, extra=extra, eol=eol)


def message(top_headers, entity, eol=CRLF):
    """A whole message: top-level headers followed by the entity (which starts with its MIME headers)."""
    return hdrs(top_headers, eol) + hdrs([("MIME-Version", "1.0")], eol) + entity


def b64(data, line_len=76, eol=CRLF, trailing=b"", final_eol=True):
    enc = base64.b64encode(data)
    lines = [enc[i : i + line_len] for i in range(0, len(enc), line_len)]
    out = (trailing + eol).join(lines)
    if lines and final_eol:
        out += trailing + eol
    return out


def std_headers(n, subject, frm="Alice Example <alice@example.org>", to="Bob Example <bob@example.net>",
                day=None, extra=()):
    day = day if day is not None else (n % 28) + 1
    return [
        ("From", frm),
        ("To", to),
        ("Subject", subject),
        ("Date", "%s, %02d Mar 2024 %02d:%02d:%02d +0100" % (["Fri", "Sat", "Sun", "Mon", "Tue", "Wed", "Thu"][day % 7],
                                                            day, (n * 7) % 24, (n * 13) % 60, (n * 17) % 60)),
        ("Message-ID", "<gen-%04d@imapfs.test>" % n),
    ] + list(extra)


def text_lines(rng, n_lines, width=60):
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
             "tau upsilon phi chi psi omega mail folder message header body part").split()
    out = []
    for _ in range(n_lines):
        line = []
        while sum(len(w) + 1 for w in line) < width:
            line.append(rng.choice(words))
        out.append(" ".join(line))
    return out


def text(rng, n_lines, eol=CRLF, width=60):
    return eol.join(l.encode() for l in text_lines(rng, n_lines, width)) + eol


# ---------------------------------------------------------------- the messages


def gen_inbox(rng):
    msgs = []  # (name, bytes, grep, broken)
    n = [0]

    def add(name, data, grep=False, broken=False):
        msgs.append((name, data, grep, broken))
        n[0] += 1

    def H(subject, **kw):
        return std_headers(len(msgs) + 1, subject, **kw)

    # 1 plain 7bit
    add("plain-7bit", message(H("Plain 7bit text"), leaf("text/plain; charset=us-ascii", text(rng, 20), "7bit")))

    # 2 8-bit UTF-8 body and raw 8-bit header values
    body = ("Grüße aus Köln! Ærøskøbing, Ελληνικά, 日本語, emoji 😀.\r\n" * 5).encode("utf-8")
    add("utf8-8bit", message(H("Grüße – raw 8-bit subject ✓", frm="Jürgen Müller <juergen@example.de>"),
                             leaf("text/plain; charset=utf-8", body, "8bit")))

    # 3 quoted-printable: soft breaks, =3D, trailing spaces (encoded and raw), long lines, the grep token
    qp = (b"This line has an equals sign =3D and a soft line break that joins th=\r\n"
          b"is word together.\r\n"
          b"Trailing space encoded=20\r\n"
          b"Trailing raw whitespace that a decoder must drop   \r\n"
          b"Trailing tab raw\t\r\n"
          b"Latin-1 bytes: caf=E9 na=EFve =C3=BC (utf-8 u-umlaut)\r\n"
          b"Token split by a soft break: " + GREP_TOKEN[:5].encode() + b"=\r\n" + GREP_TOKEN[5:].encode() + b"\r\n"
          b"A very long line without soft breaks: " + b"x" * 300 + b"\r\n"
          b"Lower-case hex =3d and =c3=a9 (lenient)\r\n"
          b"Soft break at the very end=\r\n")
    add("qp-mixed", message(H("Quoted-printable zoo"), leaf("text/plain; charset=utf-8", qp, "quoted-printable")),
        grep=True)

    # 4-10 base64 shapes (section 1 is text so that grep can see the decoded token in some)
    token_text = ("Hidden in base64: %s\r\n" % GREP_TOKEN).encode() + text(rng, 30)
    bin_data = bytes(rng.getrandbits(8) for _ in range(3000))
    add("b64-76", message(H("base64 76"), leaf("text/plain; charset=us-ascii", b64(token_text, 76), "base64")),
        grep=True)
    add("b64-60", message(H("base64 60"), leaf("application/octet-stream", b64(bin_data, 60), "base64")))
    add("b64-77", message(H("base64 77"), leaf("application/octet-stream", b64(bin_data[:2999], 77), "base64")))
    add("b64-4", message(H("base64 4"), leaf("text/plain; charset=us-ascii", b64(token_text[:500], 4), "base64")),
        grep=True)
    add("b64-trailing-spaces", message(H("base64 trailing spaces"),
                                       leaf("application/octet-stream", b64(bin_data[:1000], 76, trailing=b"  "),
                                            "base64")))
    add("b64-lf-only", message(H("base64 LF-only"), leaf("application/octet-stream", b64(bin_data[:999], 76, eol=b"\n"),
                                                         "base64", eol=b"\n"), eol=b"\n"))
    add("b64-no-final-newline", message(H("base64 without final newline"),
                                        leaf("application/octet-stream", b64(bin_data[:998], 76, final_eol=False),
                                             "BASE64")))

    # 11 nested mixed > alternative > plain+html, with attachments
    pdf = b"%PDF-1.4\n" + bytes(rng.getrandbits(8) for _ in range(5000)) + b"\n%%EOF\n"
    png = b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(2000))
    alt = multipart("alternative", "alt-1", [
        leaf("text/plain; charset=utf-8", "Plain version with ümlauts and %s.\r\n".encode() % GREP_TOKEN.encode(),
             "quoted-printable"),
        leaf("text/html; charset=utf-8", b"<html><body><p>HTML version</p></body></html>\r\n", "7bit"),
    ])
    mixed = multipart("mixed", "mixed-1", [
        alt,
        leaf('application/pdf; name="report.pdf"', b64(pdf), "base64",
             [("Content-Disposition", 'attachment; filename="report.pdf"')]),
        leaf('image/png; name="pixel.png"', b64(png), "base64",
             [("Content-Disposition", 'inline; filename="pixel.png"')]),
        leaf('text/plain; charset=utf-8; name="notes.txt"',
             b"Notes =E2=80=94 with an em dash and =3D.\r\n", "quoted-printable",
             [("Content-Disposition", 'attachment; filename="notes.txt"')]),
    ], preamble=b"This is a multi-part message in MIME format.\r\n", epilogue=b"epilogue text\r\n")
    add("nested-alternative", message(H("Nested alternative with attachments"), mixed))

    # 12 message/rfc822 inside a multipart, its body multipart
    inner_multi = message(std_headers(9001, "Inner multipart"), multipart("mixed", "inner-b", [
        leaf("text/plain", b"inner text part\r\n", "7bit"),
        leaf("application/octet-stream", b64(bin_data[:500]), "base64"),
    ]))
    add("rfc822-multipart-inside", message(H("Fwd: inner multipart"), multipart("mixed", "outer-a", [
        leaf("text/plain", b"See the forwarded message.\r\n", "7bit"),
        leaf("message/rfc822", inner_multi, extra=[("Content-Disposition", "inline")]),
        leaf("text/plain", b"Trailer part.\r\n", "7bit"),
    ])))

    # 13 message/rfc822 inside a multipart, its body single-part (base64 encoded)
    inner_single = message(std_headers(9002, "Inner single"),
                           leaf("text/plain; charset=utf-8", b64("Inner single-part body äöü\r\n".encode()), "base64"))
    add("rfc822-single-inside", message(H("Fwd: inner single"), multipart("mixed", "outer-b", [
        leaf("text/plain", b"Forwarding below.\r\n", "7bit"),
        leaf("message/rfc822", inner_single),
    ])))

    # 14 message/rfc822 as the top-level type
    add("rfc822-toplevel", message(H("Top-level message/rfc822"), leaf("message/rfc822", inner_multi)))

    # 15 message/rfc822 inside message/rfc822 (inside a multipart)
    inner2 = message(std_headers(9003, "Middle"), leaf("message/rfc822", inner_single))
    add("rfc822-in-rfc822", message(H("Fwd: Fwd: nested"), multipart("mixed", "outer-c", [
        leaf("text/plain", b"Doubly forwarded.\r\n", "7bit"),
        leaf("message/rfc822", inner2),
    ])))

    # 16 empty parts in each encoding
    add("empty-parts", message(H("Empty parts"), multipart("mixed", "empty-b", [
        leaf("text/plain", b"", "7bit"),
        leaf("text/plain; charset=utf-8", b"", "8bit"),
        leaf("text/plain", b"", "quoted-printable"),
        leaf("application/octet-stream", b"", "base64"),
        leaf("application/octet-stream", b"", "binary"),
        leaf("text/plain", b"", None),
    ])))

    # 17 empty single-part body
    add("empty-body", message(H("Empty body"), leaf("text/plain", b"", "7bit")))

    # 18 300 parts
    parts = []
    for i in range(300):
        kind = i % 3
        payload = ("part %d of 300\r\n" % (i + 1)).encode()
        if kind == 0:
            parts.append(leaf("text/plain", payload, "7bit"))
        elif kind == 1:
            parts.append(leaf("application/octet-stream", b64(payload + bytes([i % 256]) * 10), "base64"))
        else:
            parts.append(leaf("text/plain", payload.replace(b"\r\n", b"=3D\r\n"), "quoted-printable"))
    add("300-parts", message(H("Three hundred parts"), multipart("mixed", "many-parts", parts)))

    # 19 30 levels of nesting: each level = text part + the next multipart
    inner = leaf("text/plain", b"the deepest part\r\n", "7bit")
    for level in range(30, 0, -1):
        inner = multipart("mixed", "deep-%02d" % level, [
            leaf("text/plain", ("level %d\r\n" % level).encode(), "7bit"),
            inner,
        ])
    add("deep-30", message(H("Thirty levels deep"), inner))

    # 20 multipart/digest: parts without Content-Type default to message/rfc822
    d1 = message(std_headers(9004, "Digest item 1"), leaf("text/plain", b"digest one\r\n", "7bit"))
    d2 = message(std_headers(9005, "Digest item 2"), multipart("alternative", "dig-alt", [
        leaf("text/plain", b"digest two plain\r\n", "7bit"),
        leaf("text/html", b"<p>digest two</p>\r\n", "7bit"),
    ]))
    digest_body = b""
    for d in (d1, d2):
        digest_body += b"--digest-b\r\n\r\n" + d + b"\r\n"
    digest_body += b"--digest-b--\r\n"
    add("digest", message(H("A digest"), leaf('multipart/digest; boundary="digest-b"', digest_body)))

    # 21 part without Content-Type and odd-case encoding names; body text with the grep token in part 1
    add("default-ctype", message(H("Defaults"), multipart("mixed", "def-b", [
        hdrs([("Content-Transfer-Encoding", "Quoted-Printable")]) + CRLF + ("token %s=\r\n here\r\n" % GREP_TOKEN).encode(),
        leaf("application/octet-stream", b64(b"\x00\x01\x02binary\xff"), "Base64"),
    ])), grep=True)

    # 22 grep decoy: the token only in section 2, and a base64 part whose *encoded* form would not match
    add("grep-decoy", message(H("Decoy"), multipart("mixed", "decoy-b", [
        leaf("text/plain", b"nothing to see in part one\r\n", "7bit"),
        leaf("text/plain", ("token in part two: %s\r\n" % GREP_TOKEN).encode(), "7bit"),
    ])))

    # 23 a CR/LF oddity: text/plain binary CTE with CRLF content and a header folded over lines
    add("folded-header", message(H("A folded\r\n subject over\r\n\tthree lines",
                                   extra=[("X-Long", "a" * 200), ("X-Empty", "")]),
                                 leaf("text/plain; charset=us-ascii;\r\n format=flowed", text(rng, 3), "7bit")))
    return msgs


def gen_broken(rng):
    msgs = []

    def H(subject):
        return std_headers(500 + len(msgs), subject)

    # missing boundary parameter
    msgs.append(("missing-boundary", message(H("Missing boundary"), hdrs([("Content-Type", "multipart/mixed")]) + CRLF
                                             + b"--nobody\r\nContent-Type: text/plain\r\n\r\nhello\r\n--nobody--\r\n"),
                 False, True))
    # boundary declared, closing delimiter missing, truncated part
    msgs.append(("unclosed-boundary", message(H("Unclosed boundary"), hdrs([("Content-Type", 'multipart/mixed; boundary="zz"')])
                                              + CRLF + b"--zz\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--zz\r\n"
                                              b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                                              b"AAECAwQFBgcICQ"), False, True))
    # garbage base64 with invalid characters (Dovecot drops the connection on BINARY of this)
    garbage = b"SGVsbG8gV29ybGQh!!!@@@***\r\nbm90IHZhbGlk$$$%%%\r\n====QUJD\r\n"
    msgs.append(("garbage-base64", message(H("Garbage base64"), multipart("mixed", "gb", [
        leaf("text/plain", b"the next part is broken\r\n", "7bit"),
        leaf("application/octet-stream", garbage, "base64"),
    ])), False, True))
    # single-part garbage base64
    msgs.append(("garbage-base64-single", message(H("Garbage base64 single"),
                                                  leaf("text/plain", b"@@@@ not base64 at all ####\r\n", "base64")),
                 False, True))
    # base64 whose length is not a multiple of 4
    msgs.append(("base64-truncated", message(H("Truncated base64"), leaf("application/octet-stream", b"QUJDREVGRw\r\nQQ", "base64")),
                 False, True))
    # unknown transfer encoding (BINARY answers NO [UNKNOWN-CTE])
    msgs.append(("unknown-cte", message(H("Unknown CTE"), multipart("mixed", "uc", [
        leaf("text/plain", b"ok part\r\n", "7bit"),
        leaf("application/octet-stream", b"begin 644 x\r\n#86)C\r\n`\r\nend\r\n", "x-uuencode"),
    ])), False, True))
    # bad QP (= followed by non-hex), header-only message without blank line
    msgs.append(("bad-qp", message(H("Bad QP"), leaf("text/plain", b"a=ZZb =\r\nc=4\r\n=", "quoted-printable")), False, True))
    msgs.append(("headers-only", hdrs(H("Headers only, no body, no blank line")), False, True))
    return msgs


def gen_small_folder(rng, tag, count, subject_prefix):
    msgs = []
    for i in range(count):
        body = text(rng, 5 + i)
        msgs.append(("%s-%d" % (tag, i + 1), message(std_headers(700 + 10 * len(tag) + i, "%s %d" % (subject_prefix, i + 1)),
                                                    leaf("text/plain; charset=utf-8", body, "7bit")), False, False))
    return msgs


def gen_big(rng):
    data = rng.randbytes(12 * 1024 * 1024)
    msg = message(std_headers(800, "Twelve MiB attachment"), multipart("mixed", "big-b", [
        leaf("text/plain", b"A big attachment follows.\r\n", "7bit"),
        leaf('application/octet-stream; name="big.bin"', b64(data), "base64",
             [("Content-Disposition", 'attachment; filename="big.bin"')]),
    ]))
    return [("big-12mib", msg, False, False)], data


FOLDERS = [
    # (folder name, dir, generator)
    ("INBOX", "inbox", gen_inbox),
    ("Archive/2024/Q1", "archive-2024-q1", lambda r: gen_small_folder(r, "q1", 3, "Quarterly")),
    ("Archive/2023", "archive-2023", lambda r: gen_small_folder(r, "y23", 2, "Yearly")),  # all-digit leaf
    # a selectable parent with numeric subfolders: "2" collides with the UID of a message in Projects
    ("Projects", "projects", lambda r: gen_small_folder(r, "pr", 2, "Project")),
    ("Projects/2", "projects-2", lambda r: gen_small_folder(r, "p2", 1, "Project two")),
    ("Projects/2025", "projects-2025", lambda r: gen_small_folder(r, "p25", 1, "Project 2025")),
    ("Entwürfe", "entwuerfe", lambda r: [(
        "entwurf-1", message(std_headers(901, "Entwurf: Grüße"), leaf("text/plain; charset=utf-8",
                                                                    "Liebe Grüße,\r\nJürgen\r\n".encode(), "8bit")),
        False, False)]),
    ("50% off & more", "percent-amp", lambda r: gen_small_folder(r, "pa", 2, "Percent")),
    ("Broken", "broken", gen_broken),
    # changed while mounted by the live-update test (excluded from the flags check)
    ("Live", "live", lambda r: gen_small_folder(r, "live", 2, "Live")),
]
EMPTY_FOLDERS = ["Empty"]
NOSELECT = ["Archive", "Archive/2024"]


def generate(outdir, big=True):
    rng = random.Random(SEED)
    manifest = {"folders": {}, "empty_folders": EMPTY_FOLDERS, "noselect": NOSELECT, "grep_token": GREP_TOKEN}
    folders = list(FOLDERS)
    big_data = None
    if big:
        def gen_big_folder(r):
            nonlocal big_data
            msgs, big_data = gen_big(random.Random(SEED + 1))
            return msgs
        folders.append(("Big", "big", gen_big_folder))
    for folder, d, gen in folders:
        os.makedirs(os.path.join(outdir, d), exist_ok=True)
        entries = []
        for i, (name, data, grep, broken) in enumerate(gen(rng)):
            fn = "%03d-%s.eml" % (i + 1, name)
            with open(os.path.join(outdir, d, fn), "wb") as f:
                f.write(data)
            entries.append({"file": os.path.join(d, fn), "name": name, "grep": grep, "broken": broken})
        manifest["folders"][folder] = {"dir": d, "messages": entries}
    if big_data is not None:
        manifest["big"] = {"folder": "Big", "uid": 1, "section": "2", "size": len(big_data),
                           "sha256": hashlib.sha256(big_data).hexdigest()}
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    return manifest


def tree_digest(outdir):
    h = hashlib.sha256()
    for root, dirs, files in os.walk(outdir):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(root, fn)
            h.update(os.path.relpath(p, outdir).encode() + b"\0")
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def main():
    import tempfile
    args = sys.argv[1:]
    if args == ["--selftest"]:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            generate(a, big=False)
            generate(b, big=False)
            da, db = tree_digest(a), tree_digest(b)
            print("gen_messages: deterministic" if da == db else "gen_messages: NOT deterministic", da)
            sys.exit(0 if da == db else 1)
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    m = generate(args[0], big="--no-big" not in args)
    n = sum(len(f["messages"]) for f in m["folders"].values())
    print("gen_messages: %d messages in %d folders -> %s" % (n, len(m["folders"]), args[0]), file=sys.stderr)


if __name__ == "__main__":
    main()
