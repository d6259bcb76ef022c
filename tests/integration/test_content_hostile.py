"""Irregular and hostile content against Dovecot: every file is byte-exact or EIO, never other bytes.

A server of its own (so other tests' folders and counts stay as they are) gets folder "Hostile":
  1 a 2 MiB base64 attachment with 50 lines of 76 `!` in the middle (same line length: the layout
    guessed from head and tail says 2,100,002 bytes; the real decoded size is 2,097,152)
  2 a `Content-Transfer-Encoding: binary` part holding NUL bytes (UTF-16 text)
  3 base64 with uneven lines in the middle (77 then 75 characters), which Dovecot decodes
  4 base64 with padding (`=`) in the middle, which Dovecot refuses to decode (`NO [PARSE]`)
  5 a regular 3 MiB base64 attachment (for reads from its end)
  6 base64 with lines of random lengths (no layout: indexed by a scan)
Dovecot cannot produce a NIL part size in BODYSTRUCTURE: the unit tests cover that (src/fs/tests).

The reference for each file is Dovecot's `BINARY.PEEK[section]`; where Dovecot refuses BINARY it is
the lenient decoding documented in the README (base64 ignoring everything outside its alphabet; `=`
ends a quantum and decoding goes on), applied to `BODY.PEEK[section]`. Every file is read whole
(`cat`) on one mount, and on a fresh mount in random ranges from the end first, then from the start;
each read must give exactly the reference's bytes or fail with EIO, and afterwards the file must read
whole and exact with st_size equal to the real size.
"""
import base64
import errno
import os
import random
import re
import tempfile
import time
import unittest

import sys

from harness import REPO, TEST_SERVER, Mount, Watchdog, describe_mismatch, log, run, world
from imapcommon import connect

sys.path.insert(0, os.path.join(REPO, "scripts"))
import seed  # noqa: E402

FOLDER = "Hostile"
ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def lenient_b64(enc):
    out, q = bytearray(), []

    def flush():
        n = max(len(q) - 1, 0)
        v = q + [0] * (4 - len(q))
        w = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]
        out.extend(bytes([(w >> 16) & 255, (w >> 8) & 255, w & 255])[:n])
        q.clear()

    for b in enc:
        i = ALPHABET.find(bytes([b]))
        if i >= 0:
            q.append(i)
            if len(q) == 4:
                flush()
        elif b == ord("="):
            flush()
    flush()
    return bytes(out)


def b64_lines(data, lengths):
    """base64 of data in lines of the given lengths (cycled), CRLF."""
    enc = base64.b64encode(data)
    out, i, k = [], 0, 0
    while i < len(enc):
        n = lengths[k % len(lengths)]
        out.append(enc[i:i + n] + b"\r\n")
        i, k = i + n, k + 1
    return out


def message(subject, ctype, cte, body, n):
    head = ("From: hostile@example.org\r\nTo: t@example.org\r\nSubject: %s\r\n"
            "Date: Mon, %d Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"hb\"\r\n\r\n" % (subject, n)).encode()
    return (head + b"--hb\r\nContent-Type: text/plain\r\n\r\n" + subject.encode() + b"\r\n--hb\r\n"
            + ("Content-Type: %s\r\nContent-Transfer-Encoding: %s\r\n\r\n" % (ctype, cte)).encode()
            + body + b"\r\n--hb--\r\n")


def generate(d):
    rng = random.Random(90210)
    msgs = []
    lines = b64_lines(rng.randbytes(2 * 1024 * 1024), [76])
    mid = len(lines) // 2
    lines[mid:mid] = [b"!" * 76 + b"\r\n"] * 50
    msgs.append(("garbage run", "application/octet-stream", "base64", b"".join(lines)))
    utf16 = "Grüße aus dem Büro — ☃\r\n".encode("utf-16-le") * 400
    msgs.append(("binary utf-16", "text/plain; charset=utf-16le", "binary", utf16))
    lines = b64_lines(rng.randbytes(600 * 1024), [76])
    mid = len(lines) // 2
    lines[mid] = lines[mid][:76] + lines[mid + 1][:1] + b"\r\n"
    lines[mid + 1] = lines[mid + 1][1:]
    msgs.append(("uneven lines", "application/octet-stream", "base64", b"".join(lines)))
    lines = b64_lines(rng.randbytes(500 * 1024), [76])
    lines[len(lines) // 2] = b"QQ==" + lines[len(lines) // 2][4:]
    msgs.append(("padding in the middle", "application/octet-stream", "base64", b"".join(lines)))
    msgs.append(("regular 3 MiB", "application/octet-stream", "base64",
                 b"".join(b64_lines(rng.randbytes(3 * 1024 * 1024), [76]))))
    msgs.append(("random line lengths", "application/octet-stream", "base64",
                 b"".join(b64_lines(rng.randbytes(700 * 1024), [rng.randrange(4, 120) for _ in range(997)]))))
    for i, (subject, ctype, cte, body) in enumerate(msgs):
        with open(os.path.join(d, "%02d.eml" % i), "wb") as f:
            f.write(message(subject, ctype, cte, body, i + 1))
    return [m[0] for m in msgs]


def references(env, uids):
    """{uid: (reference bytes of part 2, how it was obtained)} from the server itself."""
    out = {}
    for uid in uids:
        c = connect(env)
        try:
            c.select('"%s"' % FOLDER, readonly=True)
            try:
                typ, d = c.uid("FETCH", str(uid), "(BINARY.PEEK[2])")
                if typ == "OK" and d and isinstance(d[0], tuple):
                    out[uid] = (d[0][1], "BINARY")
                    continue
            except Exception:  # NO [PARSE], or BYE for some broken base64
                c = connect(env)
                c.select('"%s"' % FOLDER, readonly=True)
            typ, d = c.uid("FETCH", str(uid), "(BODY.PEEK[2])")
            body = [x[1] for x in d if isinstance(x, tuple)][0]  # after a NO, imaplib keeps "(UID n)"
            out[uid] = (lenient_b64(body), "lenient decoding of BODY[2]")
        finally:
            try:
                c.logout()
            except Exception:
                pass
    return out


class H_ContentHostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = w = world()
        t0 = time.time()
        cls.env = w.start_extra_server()
        cls.server_dir = w.servers[-1]
        d = tempfile.mkdtemp(dir=w.tmp, prefix="hostile-msgs-")
        cls.subjects = generate(d)
        seed.seed(cls.env, [(FOLDER, d)], "none", quiet=True)
        cls.uids = list(range(1, len(cls.subjects) + 1))
        cls.refs = references(cls.env, cls.uids)
        for uid, (ref, how) in cls.refs.items():
            log("hostile UID %d (%s): %d bytes by %s" % (uid, cls.subjects[uid - 1], len(ref), how))
        w.timings["hostile content: server + seed + reference"] = time.time() - t0

    @classmethod
    def tearDownClass(cls):
        run(["bash", TEST_SERVER, "stop", cls.server_dir], timeout=30)

    def mount(self, name):
        env = self.env
        m = Mount(self.w, url=self.w.url(port=env["IMAPS_PORT"]), password=env["IMAP_PASS"],
                  ca_file=env["CA_FILE"], name=name)
        return m.start()

    def path(self, m, uid):
        return os.path.join(m.path, FOLDER, str(uid), "2")

    def settled(self, m, uid, problems):
        """After everything: the file reads whole and exact, and st_size is the real size."""
        ref = self.refs[uid][0]
        p = self.path(m, uid)
        with open(p, "rb") as f:
            got = f.read()
        if got != ref:
            problems.append(describe_mismatch("re-read of UID %d" % uid, ref, got))
        t_end = time.time() + 3
        while os.stat(p).st_size != len(ref) and time.time() < t_end:
            time.sleep(0.05)  # the kernel is told about a corrected size from another thread
        if os.stat(p).st_size != len(ref):
            problems.append("UID %d: st_size %d, real size %d" % (uid, os.stat(p).st_size, len(ref)))

    def check_cat(self, uids):
        problems = []
        m = self.mount("hostile-cat")
        try:
            with Watchdog(self.w, 180, "cat of hostile parts"):
                for uid in uids:
                    ref = self.refs[uid][0]
                    r = run(["cat", self.path(m, uid)], timeout=120)
                    if r.returncode != 0 and b"Input/output error" not in r.stderr:
                        problems.append("cat UID %d: %r" % (uid, r.stderr[-200:]))
                    if r.stdout != ref[:len(r.stdout)] or (r.returncode == 0 and r.stdout != ref):
                        problems.append(describe_mismatch("cat of UID %d" % uid, ref, r.stdout))
                    self.settled(m, uid, problems)
        finally:
            m.stop()
        return problems

    def check_ranges(self, uids):
        problems = []
        m = self.mount("hostile-ranges")
        rng = random.Random(17)
        try:
            with Watchdog(self.w, 180, "random reads of hostile parts"):
                for uid in uids:
                    ref = self.refs[uid][0]
                    p = self.path(m, uid)
                    size = os.stat(p).st_size  # may still be a guess
                    cases = [(max(size - 5000, 0), 5000), (size // 2, 70000), (0, 4096)]
                    cases += [(rng.randrange(max(size, 1)), rng.choice([1, 100, 4096, 200000])) for _ in range(8)]
                    fd = os.open(p, os.O_RDONLY)
                    try:
                        for off, n in cases:
                            try:
                                got = os.pread(fd, n, off)
                            except OSError as e:
                                if e.errno != errno.EIO:
                                    problems.append("pread(%d, %d) of UID %d: %s" % (off, n, uid, e))
                                continue
                            if got != ref[off:off + n]:
                                problems.append(describe_mismatch("pread(%d, %d) of UID %d" % (off, n, uid),
                                                                  ref[off:off + n], got))
                    finally:
                        os.close(fd)
                    self.settled(m, uid, problems)
        finally:
            m.stop()
        return problems

    def test_base64_whole_reads_are_exact_or_eio(self):
        uids = [u for u in self.uids if u != 2]
        problems = self.check_cat(uids)
        self.assertFalse(problems, "\n".join(problems))

    def test_base64_range_reads_end_first_are_exact_or_eio(self):
        uids = [u for u in self.uids if u != 2]
        problems = self.check_ranges(uids)
        self.assertFalse(problems, "\n".join(problems))

    def test_garbage_run_size_is_corrected(self):
        ref = self.refs[1][0]
        self.assertEqual(len(ref), 2 * 1024 * 1024)
        m = self.mount("hostile-size")
        try:
            p = self.path(m, 1)
            self.assertEqual(os.stat(p).st_size, 2_100_002, "the head/tail guess (if this changes, the test "
                                                            "no longer shows the correction)")
            problems = []
            self.settled(m, 1, problems)
            self.assertFalse(problems, "\n".join(problems))
            log_text = m.log_text()
        finally:
            m.stop()
        self.assertTrue(re.search(r"decoded size is 2097152, not the 2100002", log_text), log_text[-2000:])

    def test_binary_part_with_nul_bytes(self):
        ref, how = self.refs[2]
        self.assertEqual(how, "BINARY")
        self.assertIn(b"\0", ref)
        problems = self.check_cat([2]) + self.check_ranges([2])
        # Only BINARY carries NUL (Dovecot sends 0x80 in BODY[]): this needs the IMAP store's
        # BINARY.PEEK support (MailStore::offers_binary).
        self.assertFalse(problems, "%d problem(s), first: %s" % (len(problems), "\n".join(problems[:3])))
