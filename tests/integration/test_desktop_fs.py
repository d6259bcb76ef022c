"""What desktop tools read besides file contents (README "Layout"): `df` (statvfs) against the server's own
GETQUOTAROOT answer on a Dovecot with the quota plugin (scripts/test-server.sh --quota), and non-zero
totals without a quota so plain `df -h` lists the mount; extended attributes against FETCH FLAGS /
INTERNALDATE / BODYSTRUCTURE: exactly the names listxattr lists, ENODATA for other user.* names, EOPNOTSUPP for other namespaces, the size-0 probe,
ERANGE for a short buffer, EROFS for setxattr/removexattr, and no flag changed by reading them."""
import ctypes
import ctypes.util
import shutil
import datetime
import errno
import os
import re
import time
import unittest

from harness import Mount, Watchdog, folder_path, log, run, world
from imapcommon import check, connect
from reference import Reference, part_at

QUOTA = "10M,50"  # storage 10 MiB, 50 messages
MIME_TYPE, CHARSET = "user.mime_type", "user.charset"
MSG_NAMES = ["user.imap.flags", "user.imap.internaldate", "user.imap.uid"]
PER_FOLDER = 40  # messages checked per folder

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def raw_getxattr(path, name, size):
    """getxattr(2) with a buffer of `size` bytes: (result, errno)."""
    buf = ctypes.create_string_buffer(max(size, 1))
    r = _libc.getxattr(os.fsencode(path), name.encode(), buf if size else None, ctypes.c_size_t(size))
    return r, (ctypes.get_errno() if r < 0 else 0), buf.raw[:max(r, 0)]


def quota_root(env):
    """(storage used KiB, limit KiB, messages used, limit) from the server's own GETQUOTAROOT INBOX."""
    c = connect(env)
    try:
        typ, data = c.getquotaroot("INBOX")
        check((typ, data), "GETQUOTAROOT")
        text = b" ".join(bytes(x) for x in data[1]).decode()
        st = re.search(r"STORAGE (\d+) (\d+)", text)
        ms = re.search(r"MESSAGE (\d+) (\d+)", text)
        return int(st[1]), int(st[2]), int(ms[1]), int(ms[2])
    finally:
        c.logout()


def append(env, size):
    c = connect(env)
    try:
        raw = b"Subject: quota %d\r\n\r\n" % size + b"x" * size + b"\r\n"
        check(c.append("INBOX", None, None, raw), "APPEND")
    finally:
        c.logout()


def df_line(path):
    """The line plain `df -h` prints for `path` (fields), or None when it leaves the mount out."""
    r = run(["df", "-h"], timeout=30)
    for line in r.stdout.decode(errors="replace").splitlines()[1:]:
        f = line.split()
        if f and f[-1] == path:
            return f
    return None


def media_type(part):
    """The part's type as BODYSTRUCTURE gives it; what is missing defaults as in RFC 2045 §5.2 (a server that
    gives NIL for the type): application/octet-stream, text/plain for a text part without subtype."""
    ty, sub = (bytes(x).decode(errors="replace").strip().lower() if x is not None else "" for x in part[:2])
    ty = ty or "application"
    return "%s/%s" % (ty, sub or ("plain" if ty == "text" else "octet-stream"))


def charset_of(part):
    params = part[2] if len(part) > 2 and isinstance(part[2], list) else []
    for k, v in zip(params[::2], params[1::2]):
        if bytes(k).decode(errors="replace").lower() == "charset" and v is not None and bytes(v).strip():
            return bytes(v).decode(errors="replace").strip().lower()
    return None


class W_Desktop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = world()
        cls.m = Mount(cls.w, args=["--poll-interval", "1"], name="desktop")
        cls.m.start()

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()

    # ---- df
    def test_df_with_quota(self):
        env = self.w.start_extra_server("--quota", QUOTA)
        for size in (3000, 200_000):
            append(env, size)
        url = "imaps://%s@%s:%s" % (env["IMAP_USER"], env["IMAP_HOST"], env["IMAPS_PORT"])
        m = Mount(self.w, args=["--poll-interval", "1"], url=url, password=env["IMAP_PASS"],
                  ca_file=env["CA_FILE"], name="quota")
        m.start()
        try:
            with Watchdog(self.w, 60, "df with quota"):
                used, limit, msgs, msg_limit = quota_root(env)
                self.assertEqual((limit, msgs, msg_limit), (10240, 2, 50))
                self.assertGreater(used, 195)
                t0 = time.time()
                s = os.statvfs(m.path)
                self.assertLess(time.time() - t0, 3)
                self.assertEqual(s.f_frsize, 1024)
                self.assertEqual((s.f_blocks, s.f_bfree, s.f_bavail), (limit, limit - used, limit - used))
                self.assertEqual((s.f_files, s.f_ffree), (msg_limit, msg_limit - msgs))
                self.assertEqual(s.f_namemax, 255)
                f = df_line(m.path)
                self.assertIsNotNone(f, "df -h leaves the mount out")
                self.assertEqual(f[1], "10M", f)
                # More mail: df follows within the poll interval, and each call stays quick.
                append(env, 500_000)
                used2, _, msgs2, _ = quota_root(env)
                self.assertGreater(used2, used + 480)
                deadline, got = time.time() + 10, None
                while time.time() < deadline:
                    t0 = time.time()
                    s = os.statvfs(m.path)
                    self.assertLess(time.time() - t0, 3)
                    got = (s.f_blocks - s.f_bfree, s.f_ffree)
                    if got == (used2, msg_limit - msgs2):
                        break
                    time.sleep(0.3)
                self.assertEqual(got, (used2, msg_limit - msgs2))
        finally:
            m.stop()

    def test_df_without_quota(self):
        s = os.statvfs(self.m.path)
        self.assertGreater(s.f_blocks, 0)
        self.assertGreater(s.f_files, 0)
        self.assertEqual(s.f_namemax, 255)
        self.assertTrue(s.f_flag & os.ST_RDONLY)
        self.assertIsNotNone(df_line(self.m.path), "plain df -h leaves the mount out")

    # ---- extended attributes
    def messages(self):
        """(folder, uid, Message) for up to PER_FOLDER messages of every folder (Live's flags change)."""
        for folder, msgs in sorted(self.w.messages.items()):
            if folder == "Live":
                continue
            for uid in sorted(msgs)[:PER_FOLDER]:
                yield folder, uid, msgs[uid]

    def test_xattrs_against_the_server(self):
        ref = Reference(self.w.env)
        checked_dirs = checked_parts = with_charset = utf8 = 0
        try:
            with Watchdog(self.w, 300, "xattrs"):
                flags = {}
                for folder, uid, msg in self.messages():
                    if folder not in flags:
                        flags[folder] = {u: f - {"\\Recent"} for u, f in ref.flags(folder).items()}
                    d = os.path.join(self.m.path, folder_path(folder), str(uid))
                    self.assertEqual(sorted(os.listxattr(d)), MSG_NAMES, d)
                    self.assertEqual(os.getxattr(d, "user.imap.uid"), str(uid).encode())
                    got = set(os.getxattr(d, "user.imap.flags").decode().split())
                    self.assertEqual(got, set(flags[folder][uid]), d)
                    date = datetime.datetime.fromisoformat(os.getxattr(d, "user.imap.internaldate").decode())
                    self.assertEqual(date.timestamp(), msg.internaldate, d)
                    checked_dirs += 1
                    for sec, _ in msg.sections:
                        p = os.path.join(d, sec)
                        part = part_at(msg.bodystructure, sec)
                        cs = charset_of(part)
                        want = {MIME_TYPE: media_type(part).encode()}
                        if cs:
                            want[CHARSET] = cs.encode()
                            with_charset += 1
                        self.assertEqual({n: os.getxattr(p, n) for n in os.listxattr(p)}, want, p)
                        checked_parts += 1
                        if os.path.lexists(p + ".utf8"):  # the converted copy: the part's type, in UTF-8
                            self.assertEqual({n: os.getxattr(p + ".utf8", n) for n in os.listxattr(p + ".utf8")},
                                             {MIME_TYPE: want[MIME_TYPE], CHARSET: b"utf-8"}, p)
                            utf8 += 1
                        if os.path.lexists(p + ".MIME"):
                            self.assertEqual(os.getxattr(p + ".MIME", MIME_TYPE), b"text/plain")
                    for name, t in (("HEADER", b"text/plain"), ("TEXT", b"text/plain"), ("RFC822", b"message/rfc822")):
                        self.assertEqual(os.getxattr(os.path.join(d, name), MIME_TYPE), t)
                        self.assertEqual(os.listxattr(os.path.join(d, name)), [MIME_TYPE])
                    self.assertEqual(os.listxattr(os.path.join(d, "FLAGS")), [])
                log("xattrs: %d message directories, %d part files (%d with a charset, %d .utf8 copies)" % (
                    checked_dirs, checked_parts, with_charset, utf8))
                self.assertGreater(checked_dirs, 50)
                self.assertGreater(checked_parts, checked_dirs)
                self.assertGreater(with_charset, 10)
                self.assertGreater(utf8, 0)
                # Reading them changed no flag.
                for folder, before in flags.items():
                    after = {u: f - {"\\Recent"} for u, f in ref.flags(folder).items()}
                    self.assertEqual(after, before, folder)
        finally:
            ref.close()

    def test_ls_l_stops_asking_for_other_namespaces(self):
        # `ls -l` asks every entry for security.selinux and the POSIX ACLs unless the filesystem
        # says "not supported" once: then coreutils stops for the whole mount. Counted with strace.
        if not shutil.which("strace"):
            self.skipTest("strace is not installed")
        folder = max(self.w.messages, key=lambda f: len(self.w.messages[f]))
        d = os.path.join(self.m.path, folder_path(folder))
        n = len(os.listdir(d))
        self.assertGreater(n, 10, folder)
        r = run(["strace", "-f", "-c", "-e", "trace=getxattr,lgetxattr", "ls", "-l", d], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        calls = sum(int(line.split()[3]) for line in r.stderr.splitlines()
                    if line.split()[-1:] in (["getxattr"], ["lgetxattr"]))
        self.assertLessEqual(calls, 4, "xattr calls by ls -l of %d entries:\n%s" % (n, r.stderr))

    def test_xattr_errors(self):
        folder, uid, msg = next(self.messages())
        d = os.path.join(self.m.path, folder_path(folder), str(uid))
        part = os.path.join(d, msg.sections[0][0])
        for path, name in ((d, "user.mime_type"), (d, "user.nope"), (part, "user.imap.uid"),
                           (self.m.path, "user.imap.flags")):
            with self.assertRaises(OSError) as cm:
                os.getxattr(path, name)
            self.assertEqual(cm.exception.errno, errno.ENODATA, (path, name))
        # Other namespaces: "not supported", which `ls -l` remembers for the whole mount (it asks
        # for security.selinux and system.posix_acl_* of every entry otherwise)
        for path, name in ((d, "security.selinux"), (part, "system.posix_acl_access"), (d, "trusted.x")):
            with self.assertRaises(OSError) as cm:
                os.getxattr(path, name)
            self.assertEqual(cm.exception.errno, errno.EOPNOTSUPP, (path, name))
        value = os.getxattr(d, "user.imap.uid")
        # Size-0 probe, then a buffer too small, then one that fits.
        self.assertEqual(raw_getxattr(d, "user.imap.uid", 0)[:2], (len(value), 0))
        self.assertEqual(raw_getxattr(d, "user.imap.uid", len(value) - 1)[1] if len(value) > 1 else errno.ERANGE,
                         errno.ERANGE)
        self.assertEqual(raw_getxattr(d, "user.imap.uid", len(value)), (len(value), 0, value))
        short = _libc.listxattr(os.fsencode(d), ctypes.create_string_buffer(4), ctypes.c_size_t(4))
        self.assertEqual((short, ctypes.get_errno()), (-1, errno.ERANGE))
        self.assertEqual(_libc.listxattr(os.fsencode(d), None, ctypes.c_size_t(0)),
                         sum(len(n) + 1 for n in MSG_NAMES))
        for op in (lambda: os.setxattr(d, "user.imap.flags", b"\\Seen"), lambda: os.setxattr(part, "user.x", b"1"),
                   lambda: os.removexattr(d, "user.imap.uid")):
            with self.assertRaises(OSError) as cm:
                op()
            self.assertIn(cm.exception.errno, (errno.EROFS,), cm.exception)
