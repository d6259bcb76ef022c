"""Network and server faults under a live imapfs mount, injected with scripts/netproxy.py.

imapfs is mounted as imaps://USER@127.0.0.1:PROXYPORT with --timeout 3; the proxy forwards to a
dedicated Dovecot (E_Faults: its own server, so restarting it or deleting folders cannot disturb the
other tests) or to the shared one (F_Load, read-only). Every wait is bounded (poll until true or fail
after a deadline), every subprocess has a timeout, and a Watchdog kills a hung mount.

For each fault the test records what a user saw (command, exit status / errno, seconds) and the table
is printed at the end of each class and repeated in the run's closing notes.

Environment: IMAPFS_SOAK_SECONDS (default 30; run.py --long sets 300) for the load test.
"""
import errno
import hashlib
import json
import os
import random
import select
import subprocess
import sys
import threading
import time
import unittest

from harness import REPO, TEST_SERVER, Mount, Watchdog, describe_mismatch, folder_path, log, run, world

sys.path.insert(0, os.path.join(REPO, "scripts"))
import netproxy  # noqa: E402
import seed  # noqa: E402
from imapcommon import connect, imap_quote, load_env  # noqa: E402

NETPROXY = os.path.join(REPO, "scripts", "netproxy.py")
IO_TIMEOUT = 3  # imapfs --timeout for every fault mount
ONE_TIMEOUT_BOUND = IO_TIMEOUT + 3  # "fails within the timeout + slack"
RESULTS = []  # rows: (fault, action, what the user saw, seconds, verdict)
_STRERR = {os.strerror(e): errno.errorcode[e] for e in errno.errorcode}


def record(fault, action, saw, seconds, verdict="ok"):
    RESULTS.append((fault, action, saw, seconds, verdict))
    log("fault %-22s %-38s -> %s (%s) [%s]" % (fault, action, saw, "-" if seconds is None else "%.2fs" % seconds,
                                               verdict))


def print_table(w, rows, title):
    if not rows:
        return
    lines = ["  %s" % title,
             "    %-22s %-44s %-46s %8s  %s" % ("fault", "user action", "user saw", "time", "verdict")]
    for fault, action, saw, secs, verdict in rows:
        lines.append("    %-22s %-44s %-46s %8s  %s" % (fault, action[:44], saw[:46],
                                                         "-" if secs is None else "%.2fs" % secs, verdict))
    print("\n".join(lines), flush=True)
    if w is not None:
        w.notes.extend(lines)


def errname(stderr):
    """The errno name a tool's 'prog: path: strerror' line names, else the last field."""
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    if not text:
        return ""
    last = text[-1].rsplit(": ", 1)[-1].strip()
    return _STRERR.get(last, last)


def user_op(argv, timeout=60):
    """Run a user command; returns (returncode or 'TIMEOUT', stdout, errno name, seconds)."""
    t0 = time.monotonic()
    try:
        r = run(argv, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "TIMEOUT", b"", "hung > %ss" % timeout, time.monotonic() - t0
    return r.returncode, r.stdout, errname(r.stderr) if r.returncode else "", time.monotonic() - t0


def sha(b):
    return hashlib.sha256(b).hexdigest()


def poll(fn, deadline, step=0.2):
    """Call fn until it returns a true value or `deadline` seconds pass; returns (value, seconds) or (None, secs)."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > deadline:
            return None, time.monotonic() - t0
        time.sleep(step)


# ---------------------------------------------------------------- the proxy as a child process


class Proxy:
    def __init__(self, w, target_port, delay_ms=0, name="proxy"):
        d = w.newdir(name)
        self.control = os.path.join(d, "control.json")
        self.stats_path = os.path.join(d, "stats.json")
        self.log_path = os.path.join(d, "netproxy.log")
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, NETPROXY, "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%s" % target_port,
             "--delay-ms", str(delay_ms), "--control", self.control, "--stats", self.stats_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.logf)
        line = b""
        t_end = time.monotonic() + 15
        while not line.endswith(b"\n") and time.monotonic() < t_end:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                c = os.read(self.proc.stdout.fileno(), 64)
                if not c:
                    break
                line += c
        if not line.startswith(b"PORT "):
            self.stop()
            raise RuntimeError("netproxy did not print its port (got %r)" % line)
        self.port = int(line.split()[1])
        self.loads = 0

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def set(self, **settings):
        """Write the control file and wait (bounded) until the proxy has applied it."""
        self.loads += 1
        netproxy.write_control(self.control, **settings)
        got, _ = poll(lambda: self.stats().get("control_loads", 0) >= self.loads, 5, 0.02)
        if not got:
            raise AssertionError("netproxy did not apply %s within 5 s" % settings)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.logf.close()
        return self.proc.returncode


# ---------------------------------------------------------------- faults on a dedicated server


class E_Faults(unittest.TestCase):
    """One dedicated Dovecot, seeded from the generated messages (so the shared world's reference answers
    apply: same files in the same order give the same UIDs and bytes); a fresh proxy and mount per test."""

    @classmethod
    def setUpClass(cls):
        cls.w = w = world()
        cls.rows_from = len(RESULTS)
        t0 = time.time()
        cls.env = w.start_extra_server()
        cls.server_dir = w.servers[-1]
        gen = os.path.join(w.tmp, "messages")
        folders = w.manifest["folders"]
        inbox_dir = os.path.join(gen, folders["INBOX"]["dir"])
        big_dir = os.path.join(gen, folders["Big"]["dir"])
        q1_dir = os.path.join(gen, folders["Archive/2024/Q1"]["dir"])
        first_inbox = seed.message_files(inbox_dir)[0]
        seed.seed(cls.env, [("INBOX", inbox_dir), ("Big", big_dir), ("Victim", q1_dir),
                            ("Expunge", big_dir), ("Expunge", first_inbox)], "mixed", quiet=True)
        big = w.manifest["big"]
        cls.big_ref = w.messages[big["folder"]][big["uid"]].files[big["section"]]
        cls.big_sha = big["sha256"]
        cls.inbox = w.messages["INBOX"]
        cls.victim = w.messages["Archive/2024/Q1"]
        cls.expunge_small = w.messages["INBOX"][1]
        w.timings["faults: server start + seed"] = time.time() - t0

    @classmethod
    def tearDownClass(cls):
        print_table(cls.w, RESULTS[cls.rows_from:], "faults injected through scripts/netproxy.py (imapfs --timeout %d):"
                    % IO_TIMEOUT)
        try:
            run(["bash", TEST_SERVER, "stop", cls.server_dir], timeout=30)
        except Exception as e:
            log("stopping the fault server: %s" % e)

    def setUp(self):
        self.proxy = None
        self.mount = None

    def tearDown(self):
        if self.mount is not None:
            if self.proxy is not None and self.proxy.proc.poll() is None:
                try:
                    self.proxy.set(mode="pass")
                except AssertionError:
                    pass
            d = self.mount.died()
            clean = self.mount.stop()
            if d:
                log("%s: imapfs died: %s" % (self._testMethodName, d))
            if os.environ.get("KEEP_TMP") or not clean:
                log("%s: imapfs log %s" % (self._testMethodName, self.mount.log_path))
        if self.proxy is not None:
            self.proxy.stop()

    # -- helpers
    def start(self, args=(), delay_ms=0, name="fault"):
        self.proxy = Proxy(self.w, self.env["IMAPS_PORT"], delay_ms=delay_ms, name=name + "-proxy")
        url = "imaps://%s@127.0.0.1:%d" % (self.env["IMAP_USER"], self.proxy.port)
        self.mount = Mount(self.w, args=["-d"] + list(args), url=url, password=self.env["IMAP_PASS"],
                           ca_file=self.env["CA_FILE"], timeout=IO_TIMEOUT, name=name)
        self.mount.start()
        return self.mount.path

    def imap(self):
        return connect(self.env, timeout=30)

    def log_lines(self, *needles):
        return [l for l in self.mount.log_text().splitlines() if any(n in l for n in needles)]

    def assert_alive(self):
        d = self.mount.died()
        self.assertIsNone(d, d)

    def big_path(self, root, folder="Big"):
        return os.path.join(root, folder_path(folder), "1", "2")

    # -- the faults
    def test_01_cut_mid_fetch_of_big_attachment(self):
        with Watchdog(self.w, 120, "cut mid-FETCH"):
            root = self.start(name="cut")
            p = self.big_path(root)
            self.assertEqual(os.stat(p).st_size, len(self.big_ref))
            self.proxy.set(mode="cut_after_bytes", bytes=2_000_000, scope="once")
            rc, out, err, secs = user_op(["cat", p], timeout=90)
            st = self.proxy.stats()
            saw = "exit %s%s, %d bytes, sha256 %s" % (rc, " " + err if err else "", len(out),
                                                      "equal" if sha(out) == self.big_sha else "DIFFERENT")
            ok = rc == 0 and sha(out) == self.big_sha and st.get("cuts") == 1
            record("cut after 2 MB (RST)", "cat Big/1/2 (12 MiB)", saw, secs, "ok" if ok else "FAIL")
            self.assertEqual(st.get("cuts"), 1, "the proxy did not cut the fetching connection: %s" % st)
            self.assertEqual(rc, 0, "cat failed after a cut: %s; log: %s" % (err, self.log_lines("WARN", "ERROR")[-10:]))
            if out != self.big_ref:
                self.fail(describe_mismatch("cat Big/1/2 after a cut", self.big_ref, out))
            self.assertTrue(self.log_lines("reconnecting"), "no reconnect was logged")
            self.assert_alive()

    def test_02_server_restart_under_the_mount(self):
        with Watchdog(self.w, 150, "server restart"):
            root = self.start(args=["--poll-interval", "1"], name="restart")
            inbox = os.path.join(root, "INBOX")
            uids = sorted(self.inbox)
            self.assertEqual(sorted(int(n) for n in os.listdir(inbox) if n.isdigit()), uids)  # Courier: folders too
            self.assertEqual(run(["cat", os.path.join(inbox, "1", "HEADER")], timeout=30).stdout,
                             self.inbox[1].files["HEADER"])
            old_port = self.env["IMAPS_PORT"]
            r = run(["bash", TEST_SERVER, "stop", self.server_dir], timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            t_down = time.monotonic()
            # while it is down: a cold read must fail cleanly (EIO) in about one timeout, not hang
            cold = os.path.join(inbox, "2", "1")
            rc, out, err, secs = user_op(["cat", cold], timeout=60)
            record("server down", "cat INBOX/2/1 (cold)", "exit %s %s" % (rc, err), secs,
                   ("ok" if secs <= ONE_TIMEOUT_BOUND else "SLOW: > --timeout + 3 s") if rc not in (0, "TIMEOUT")
                   else ("served from cache" if rc == 0 else "FAIL"))
            self.assertNotEqual(rc, "TIMEOUT", "a read hung while the server was down")
            self.assertLessEqual(secs, 2 * IO_TIMEOUT + 4, "a read took %.2fs while the server was down" % secs)
            if rc == 0:
                self.assertEqual(out, self.inbox[2].files["1"])
            r = run(["bash", TEST_SERVER, "start", self.server_dir], timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            E_Faults.env = load_env(os.path.join(self.server_dir, "env"))
            # test-server.sh picks fresh ports on every start: point the proxy at the new one
            self.proxy.set(target="127.0.0.1:%s" % self.env["IMAPS_PORT"])
            t_up = time.monotonic()
            log("server restarted: port %s -> %s, down for %.2fs" % (old_port, self.env["IMAPS_PORT"], t_up - t_down))
            attempts = []

            def recovered():
                rc1, out1, err1, _ = user_op(["ls", inbox], timeout=30)
                rc2, out2, err2, _ = user_op(["cat", os.path.join(inbox, "3", "1")], timeout=30)
                attempts.append((rc1, err1, rc2, err2))
                return (rc1 == 0 and sorted(int(x) for x in out1.split() if x.isdigit()) == uids and rc2 == 0
                        and out2 == self.inbox[3].files["1"])

            ok, secs = poll(recovered, 30, 0.25)
            record("server restarted", "ls INBOX + cat INBOX/3/1 (cold)",
                   "works again after %d attempt(s); first: %s" % (len(attempts), attempts[0][:4] if attempts else "-"),
                   secs, "ok" if ok else "FAIL")
            self.assertTrue(ok, "not usable 30 s after the server came back; attempts (ls rc, err, cat rc, err): %s"
                            % attempts[-5:])
            log("mount usable %.2fs after the restart" % secs)
            rc, out, err, secs = user_op(["cat", cold], timeout=60)
            record("server restarted", "cat INBOX/2/1 (failed while down)", "exit %s %s" % (rc, err), secs,
                   "ok" if rc == 0 and out == self.inbox[2].files["1"] else "FAIL")
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, self.inbox[2].files["1"])
            self.assert_alive()

    def test_03_stall_longer_than_timeout(self):
        with Watchdog(self.w, 120, "stall"):
            root = self.start(name="stall")
            p = self.big_path(root)
            self.assertEqual(os.stat(p).st_size, len(self.big_ref))  # structure and size known, content cold
            self.proxy.set(mode="stall")
            rc, out, err, secs = user_op(["cat", p], timeout=60)
            held = self.proxy.stats().get("queued_s2c", 0)
            E_Faults.stall_eio_seconds = secs if err == "EIO" else None
            ok = rc not in (0, "TIMEOUT") and err == "EIO"
            record("stall (no server data)", "cat Big/1/2 (cold)", "exit %s %s (proxy held %d B)" % (rc, err, held),
                   secs, ("ok" if secs <= ONE_TIMEOUT_BOUND else "SLOW: > --timeout + 3 s") if ok else "FAIL")
            self.assertNotEqual(rc, "TIMEOUT", "cat hung during a stall")
            self.assertEqual(err, "EIO", "want EIO during a stall; got exit %s %s" % (rc, err))
            # no hang: a bound that holds today (see test_03b for the one-timeout promise)
            self.assertLessEqual(secs, 2 * IO_TIMEOUT + 3, "EIO took %.2fs with --timeout %d" % (secs, IO_TIMEOUT))
            # a second, independent cold read during the stall fails the same way
            rc2, _, err2, secs2 = user_op(["cat", os.path.join(root, "INBOX", "5", "1")], timeout=60)
            record("stall (no server data)", "cat INBOX/5/1 (cold)", "exit %s %s" % (rc2, err2), secs2,
                   ("ok" if secs2 <= ONE_TIMEOUT_BOUND else "SLOW: > --timeout + 3 s") if rc2 not in (0, "TIMEOUT")
                   else ("served (cached?)" if rc2 == 0 else "FAIL"))
            self.assertNotEqual(rc2, "TIMEOUT")
            if rc2 != 0 and E_Faults.stall_eio_seconds is not None:
                E_Faults.stall_eio_seconds = max(E_Faults.stall_eio_seconds, secs2)
            self.proxy.set(mode="pass")
            t0 = time.monotonic()
            last = []

            def works():
                r = user_op(["cat", p], timeout=60)
                last[:] = [r[0], r[2], len(r[1])]
                return r[0] == 0 and sha(r[1]) == self.big_sha

            ok, _ = poll(works, 20, 0.25)
            secs = time.monotonic() - t0
            record("stall ended", "cat Big/1/2", "exit %s %s, sha256 %s" % (last[0], last[1], "equal" if ok else "-"),
                   secs, "ok" if ok else "FAIL")
            self.assertTrue(ok, "mount unusable 20 s after the stall ended: %s" % last)
            self.assert_alive()

    def test_03b_stall_eio_within_one_timeout(self):
        """The promise of store.rs ("a dead server gives EIO after about one timeout, not several"), as the
        user sees it. A cold `cat` of a part costs two FUSE READs (the
        kernel's read-ahead, then, after its EIO, a synchronous read of the first page), and a path may need
        lookups that refresh the folder list: after one operation gave up, the others fail fast, and a failed
        refresh keeps the old listing for another interval."""
        secs = getattr(E_Faults, "stall_eio_seconds", None)
        if secs is None:
            self.skipTest("test_03 did not measure an EIO")
        self.assertLessEqual(secs, ONE_TIMEOUT_BOUND, "EIO after %.2fs with --timeout %d" % (secs, IO_TIMEOUT))

    def test_04_connection_limit(self):
        hogs = []
        try:
            with Watchdog(self.w, 120, "connection limit"):
                # the server allows 20 logged-in sessions per user+IP; leave imapfs 2 of them
                for _ in range(18):
                    hogs.append(self.imap())
                root = self.start(args=["--connections", "8"], name="limit")
                jobs = [(os.path.join(root, "INBOX", str(u), n), ref) for u, m in sorted(self.inbox.items())
                        for n, ref in m.files.items() if ref is not None]
                problems, lock = [], threading.Lock()

                def reader(k):
                    for path, ref in jobs[k::8]:
                        try:
                            with open(path, "rb") as f:
                                got = f.read()
                        except OSError as e:
                            with lock:
                                problems.append("%s: %s" % (path, e))
                            continue
                        if got != ref:
                            with lock:
                                problems.append(describe_mismatch(path, ref, got))

                t0 = time.monotonic()
                threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=90)
                secs = time.monotonic() - t0
                hung = any(t.is_alive() for t in threads)
                lines, _ = poll(lambda: self.log_lines("refuses more connections"), 5)
                line = lines[0].split("]", 1)[-1].strip() if lines else "(no log line)"
                record("connection limit", "8 parallel readers, %d files" % len(jobs),
                       "%d errors; log: %s" % (len(problems), line[:90]), secs,
                       "ok" if not problems and lines and not hung else "FAIL")
                log("connection limit log line: %s" % (lines[0] if lines else None))
                self.assertFalse(hung, "a reader hung at the connection limit")
                self.assertFalse(problems, "\n".join(problems[:20]))
                self.assertTrue(lines, "no 'refuses more connections' line in the log; warnings: %s"
                                % self.log_lines("WARN")[-10:])
                self.assert_alive()
        finally:
            for c in hogs:
                try:
                    c.logout()
                except Exception:
                    pass

    def test_05_refuse_new_connections(self):
        with Watchdog(self.w, 150, "refuse"):
            root = self.start(args=["--connections", "8"], name="refuse")
            # refuse from right after the mount: only the connection that mounted is open (reads open more
            # on demand, e.g. 8 after two cold cats, so warming up first would leave nothing to refuse)
            active = self.proxy.stats().get("active")
            self.proxy.set(mode="refuse")
            uids = sorted(self.inbox)
            # 1: one reader at a time; stop at the first failure (each costs several --timeout budgets)
            problems, t0, n = [], time.monotonic(), 0
            seq = [(os.path.join(root, "INBOX", str(u), name), ref) for u in uids[2:8]
                   for name, ref in sorted(self.inbox[u].files.items()) if ref is not None]
            seq.append((self.big_path(root), self.big_ref))
            for path, ref in seq:
                n += 1
                rc, out, err, secs1 = user_op(["cat", path], timeout=60)
                if rc != 0 or out != ref:
                    problems.append("%s: exit %s %s%s after %.2fs" % (os.path.relpath(path, root), rc, err,
                                                                      "" if rc else " (wrong bytes)", secs1))
                    break
            secs = time.monotonic() - t0
            st = self.proxy.stats()
            record("refuse new conns", "sequential cat of %d files" % len(seq),
                   ("%d/%d ok" % (n, len(seq)) if not problems else "read %d of %d: %s" % (n, len(seq), problems[0]))
                   + "; %s conn open at start, %d new refused" % (active, st.get("refused", 0)),
                   secs, "ok" if not problems else "FAIL (bug)")
            self.assertNotIn("TIMEOUT", " ".join(problems), "a read hung while new connections were refused")
            E_Faults.refuse_problems = list(problems)
            self.assert_alive()
            if problems:
                return  # test_05b reports it; the parallel phase would only repeat the failure, slowly
            # 2: eight readers at once: the pool (--connections 8) wants more connections than it has
            jobs = [(os.path.join(root, "INBOX", str(u), n), ref) for u in uids[8:] for n, ref in
                    sorted(self.inbox[u].files.items()) if ref is not None]
            par, lock = [], threading.Lock()

            def reader(k):
                for path, ref in jobs[k::8]:
                    if len(par) > 5:
                        return
                    rc, out, err, _ = user_op(["cat", path], timeout=60)
                    if rc != 0 or out != ref:
                        with lock:
                            par.append("%s: exit %s %s" % (os.path.relpath(path, root), rc, err))

            t0 = time.monotonic()
            ths = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(8)]
            for t in ths:
                t.start()
            for t in ths:
                t.join(120)
            secs = time.monotonic() - t0
            hung = any(t.is_alive() for t in ths)
            st2 = self.proxy.stats()
            record("refuse new conns", "8 parallel readers, %d files" % len(jobs),
                   "%d failures%s; %d new refused; %d conns open" % (
                       len(par), " (HUNG)" if hung else "", st2.get("refused", 0) - st.get("refused", 0),
                       st2.get("active", 0)), secs, "ok" if not par and not hung else "FAIL (bug)")
            self.assertFalse(hung, "a reader hung while new connections were refused")
            E_Faults.refuse_problems += par
            self.assert_alive()

    def test_05b_refuse_existing_connection_keeps_serving(self):
        """Reads keep working on the connection already open while the server refuses new ones. A connect
        failure while other connections live makes the pool wait for those instead of failing the read."""
        problems = getattr(E_Faults, "refuse_problems", None)
        if problems is None:
            self.skipTest("test_05 did not run")
        self.assertFalse(problems, "reads failed while only new connections were refused: %s" % problems[:10])

    def test_06_uidvalidity_change(self):
        with Watchdog(self.w, 120, "UIDVALIDITY change"):
            root = self.start(args=["--poll-interval", "1"], name="uidvalidity")
            vdir = os.path.join(root, folder_path("Victim"))
            self.assertEqual(sorted(int(n) for n in os.listdir(vdir)), sorted(self.victim))
            unread = os.open(os.path.join(vdir, "1", "1"), os.O_RDONLY)  # opened, never read: no page cache
            readfd = os.open(os.path.join(vdir, "2", "1"), os.O_RDONLY)
            try:
                self.assertEqual(os.read(readfd, 1 << 20), self.victim[2].files["1"])
                new_bodies = [b"replacement one\r\n", b"replacement two\r\n"]
                c = self.imap()
                try:
                    old_uv = self._uidvalidity(c, "Victim")
                    for _ in range(5):
                        c.delete(imap_quote("Victim"))
                        c.create(imap_quote("Victim"))
                        new_uv = self._uidvalidity(c, "Victim")
                        if new_uv != old_uv:
                            break
                        time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock
                    self.assertNotEqual(new_uv, old_uv, "could not get a new UIDVALIDITY")
                    for i, body in enumerate(new_bodies):
                        raw = (b"From: a@example.org\r\nSubject: new %d\r\nMessage-ID: <new%d@x>\r\n\r\n" % (i, i)) + body
                        c.append(imap_quote("Victim"), None, None, raw)
                finally:
                    c.logout()
                t0 = time.monotonic()

                def new_listing():
                    try:
                        names = sorted(int(n) for n in os.listdir(vdir))
                        return names == [1, 2] and open(os.path.join(vdir, "1", "1"), "rb").read() == new_bodies[0]
                    except OSError:
                        return False

                ok, secs = poll(new_listing, 12)
                record("UIDVALIDITY changed", "ls Victim; cat Victim/1/1", "new listing and content" if ok else
                       "old listing still shown", secs, "ok" if ok else "FAIL")
                self.assertTrue(ok, "the recreated folder's listing did not appear within 12 s (--poll-interval 1)")
                for fd, what in ((unread, "pread of old handle (never read)"), (readfd, "pread of old handle (read)")):
                    t1 = time.monotonic()
                    try:
                        got = os.pread(fd, 100, 0)
                        saw = "returned %d bytes (%s)" % (len(got), "old content" if got else "EOF")
                        good = False
                    except OSError as e:
                        saw = "errno %s" % errno.errorcode.get(e.errno, e.errno)
                        good = e.errno in (errno.ESTALE, errno.ENOENT)
                    verdict = "ok" if good else ("page cache (kernel)" if fd == readfd else "FAIL")
                    record("UIDVALIDITY changed", what, saw, time.monotonic() - t1, verdict)
                    if fd == unread:
                        self.assertTrue(good, "old open handle: want ESTALE or ENOENT, got %s" % saw)
            finally:
                os.close(unread)
                os.close(readfd)
            self.assert_alive()

    @staticmethod
    def _uidvalidity(c, folder):
        typ, data = c.status(imap_quote(folder), "(UIDVALIDITY)")
        return data[0].split(b"UIDVALIDITY", 1)[1].strip(b" )") if typ == "OK" else None

    def test_07_expunge_during_read(self):
        with Watchdog(self.w, 120, "expunge during read"):
            root = self.start(args=["--poll-interval", "1"], delay_ms=2, name="expunge")
            p = self.big_path(root, "Expunge")
            fd = os.open(p, os.O_RDONLY)
            outcome = {}
            try:
                first = os.read(fd, 1 << 20)
                self.assertEqual(first, self.big_ref[: len(first)])
                c = self.imap()
                try:
                    c.select(imap_quote("Expunge"))
                    c.uid("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
                    c.expunge()
                finally:
                    c.logout()
                t_exp = time.monotonic()

                def rest():
                    got = bytearray(first)
                    try:
                        while True:
                            if len(got) == 2 << 20:  # then let imapfs notice the expunge (bounded)
                                poll(lambda: not os.path.exists(os.path.join(root, folder_path("Expunge"), "1")), 10)
                            b = os.read(fd, 1 << 20)
                            if not b:
                                break
                            got += b
                        outcome["result"] = "EOF"
                    except OSError as e:
                        outcome["result"] = errno.errorcode.get(e.errno, str(e.errno))
                    outcome["data"] = bytes(got)

                t = threading.Thread(target=rest, daemon=True)
                t.start()
                t.join(60)
                secs = time.monotonic() - t_exp
                self.assertFalse(t.is_alive(), "reading an expunged message hung (> 60 s)")
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass
            data = outcome["data"]
            prefix_ok = data == self.big_ref[: len(data)]
            res = outcome["result"]
            ok = prefix_ok and ((res == "EOF" and data == self.big_ref) or res in ("ENOENT", "EIO", "ESTALE"))
            record("expunged while read", "read rest of Expunge/1/2 (12 MiB)",
                   "%s after %d of %d bytes%s" % (res, len(data), len(self.big_ref), "" if prefix_ok else " WRONG BYTES"),
                   secs, "ok" if ok else "FAIL")
            self.assertTrue(prefix_ok, describe_mismatch("Expunge/1/2 read across the expunge",
                                                         self.big_ref[: len(data)], data))
            self.assertTrue(ok, "want the whole part or ENOENT/EIO/ESTALE, got %s after %d bytes" % (res, len(data)))
            # the other message of the folder is unaffected
            rc, out, err, s2 = user_op(["cat", os.path.join(root, folder_path("Expunge"), "2", "1")], timeout=30)
            record("expunged while read", "cat Expunge/2/1 (other message)", "exit %s %s" % (rc, err), s2,
                   "ok" if rc == 0 and out == self.expunge_small.files["1"] else "FAIL")
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, self.expunge_small.files["1"])
            gone, s3 = poll(lambda: not os.path.exists(os.path.join(root, folder_path("Expunge"), "1")), 10)
            record("expunged while read", "ls Expunge", "UID 1 gone" if gone else "UID 1 still listed", s3,
                   "ok" if gone else "FAIL")
            self.assertTrue(gone, "the expunged message is still listed after 10 s")
            self.assert_alive()


# ---------------------------------------------------------------- load through the proxy


class F_Load(unittest.TestCase):
    def test_16_concurrent_readers(self):
        from reference import Reference
        w = world()
        rows_from = len(RESULTS)
        seconds = float(os.environ.get("IMAPFS_SOAK_SECONDS", "30"))
        proxy = Proxy(w, w.env["IMAPS_PORT"], delay_ms=1, name="load-proxy")
        m = Mount(w, args=["--cache-size", "32M", "--connections", "4"],
                  url="imaps://%s@127.0.0.1:%d" % (w.env["IMAP_USER"], proxy.port), name="load", timeout=10)
        skip = {"Live", "Corpus"}
        folders = [f for f in w.messages if f not in skip]
        jobs = []  # (folder, rel path, reference bytes)
        for f in folders:
            for uid, msg in w.messages[f].items():
                for name, ref in msg.files.items():
                    if ref is not None:
                        jobs.append((f, "%s/%d/%s" % (folder_path(f), uid, name), ref))
        big = [j for j in jobs if len(j[2]) > (1 << 20)]
        small = [j for j in jobs if len(j[2]) <= (1 << 20)]
        token = w.manifest["grep_token"].encode()
        problems, counts, lock = [], {}, threading.Lock()
        peak = {"rss": 0}
        stop = threading.Event()
        try:
            with Watchdog(w, seconds + 150, "load test"):
                m.start()
                root = m.path
                pid = m.proc.pid

                def rss_monitor():
                    while not stop.is_set():
                        try:
                            with open("/proc/%d/status" % pid) as fh:
                                for line in fh:
                                    if line.startswith("VmRSS:"):
                                        peak["rss"] = max(peak["rss"], int(line.split()[1]) * 1024)
                        except OSError:
                            pass
                        stop.wait(0.2)

                def bad(msg):
                    with lock:
                        problems.append(msg)

                def find_want(f):
                    return sorted(os.path.join(root, folder_path(f), "%d/%s" % (u, n))
                                  for u, msg in w.messages[f].items() for n in msg.files)

                def op(rng, kind):
                    if kind == "cat":
                        f, rel, ref = rng.choice(big) if rng.random() < 0.05 else rng.choice(small)
                        rc, out, err, _ = user_op(["cat", os.path.join(root, rel)], timeout=120)
                        if rc != 0:
                            bad("cat %s: exit %s %s" % (rel, rc, err))
                        elif out != ref:
                            bad(describe_mismatch("cat " + rel, ref, out))
                    elif kind == "pread":
                        f, rel, ref = rng.choice(jobs)
                        off = rng.randrange(len(ref) + 1)
                        n = rng.choice([1, 100, 4096, 65536, 300000])
                        with open(os.path.join(root, rel), "rb") as fh:
                            got = os.pread(fh.fileno(), n, off)
                        if got != ref[off : off + n]:
                            bad(describe_mismatch("pread(%d,%d) %s" % (off, n, rel), ref[off : off + n], got))
                    elif kind == "grep":
                        f = rng.choice(["INBOX", "Projects", "Archive/2024/Q1", "Entwürfe"])
                        d = os.path.join(root, folder_path(f))
                        want = sorted(os.path.join(d, "%d/%s" % (u, n)) for u, msg in w.messages[f].items()
                                      for n, ref in msg.files.items() if ref is not None and token in ref)
                        unknown = {os.path.join(d, "%d/%s" % (u, n)) for u, msg in w.messages[f].items()
                                   for n, ref in msg.files.items() if ref is None}
                        rc, out, err, _ = user_op(["grep", "-r", "-l", "-F", "--", token, d], timeout=120)
                        got = sorted(p for p in out.decode("utf-8", "replace").splitlines() if p not in unknown)
                        if rc not in (0, 1) or got != want:
                            bad("grep -r -l in %s: exit %s %s; %d files, want %d" % (f, rc, err, len(got), len(want)))
                    elif kind == "find":
                        f = rng.choice(folders)
                        d = os.path.join(root, folder_path(f))
                        rc, out, err, _ = user_op(["find", d, "-type", "f"], timeout=120)
                        got = sorted(out.decode("utf-8", "replace").splitlines())
                        want = find_want(f)
                        sub = [p for p in got if not any(p.startswith(os.path.join(root, folder_path(g)) + "/")
                                                         for g in w.messages if g != f
                                                         and folder_path(g).startswith(folder_path(f) + "/"))]
                        if rc != 0 or sub != want:
                            bad("find %s: exit %s %s; %d files, want %d" % (f, rc, err, len(sub), len(want)))
                    elif kind == "stat":
                        sample = rng.sample(jobs, 20)
                        rc, out, err, _ = user_op(["stat", "-c", "%s"] + [os.path.join(root, j[1]) for j in sample],
                                                  timeout=60)
                        sizes = out.split()
                        if rc != 0 or [int(s) for s in sizes] != [len(j[2]) for j in sample]:
                            bad("stat -c %%s of 20 files: exit %s %s; sizes %s" % (rc, err, sizes[:5]))
                    with lock:
                        counts[kind] = counts.get(kind, 0) + 1

                kinds = ["cat", "cat", "pread", "pread", "grep", "find", "stat", "cat"]

                def worker(k):
                    rng = random.Random(1000 + k)
                    t_end = time.monotonic() + seconds
                    while time.monotonic() < t_end and not stop.is_set():
                        kind = kinds[k % len(kinds)] if rng.random() < 0.5 else rng.choice(kinds)
                        try:
                            op(rng, kind)
                        except OSError as e:
                            bad("%s: %s" % (kind, e))
                        except subprocess.TimeoutExpired as e:
                            bad("%s: timed out: %s" % (kind, e))

                mon = threading.Thread(target=rss_monitor, daemon=True)
                mon.start()
                t0 = time.monotonic()
                threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(16)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=seconds + 130)
                secs = time.monotonic() - t0
                hung = sum(t.is_alive() for t in threads)
                stop.set()
                pst = proxy.stats()
        finally:
            stop.set()
            m.stop()
            proxy.stop()
        ops = sum(counts.values())
        mib = peak["rss"] / (1 << 20)
        record("load: 16 readers", "%.0fs of %s" % (seconds, ", ".join("%s %d" % kv for kv in sorted(counts.items()))),
               "%d errors, %d hung; peak RSS %.1f MiB; %.0f MB via proxy" % (
                   len(problems), hung, mib, pst.get("bytes_s2c", 0) / 1e6), secs,
               "ok" if not problems and not hung and mib < 100 else "FAIL")
        w.timings["load test: ops / peak RSS MiB (--cache-size 32M)"] = "%d / %.1f" % (ops, mib)
        # nothing changed on the server
        ref = Reference(w.env)
        try:
            flag_problems = []
            for f in folders:
                before = w.flags_before.get(f, {})
                after = {u: fl - {"\\Recent"} for u, fl in ref.flags(f).items()}
                if before != after:
                    flag_problems.append(f)
        finally:
            ref.close()
        print_table(w, RESULTS[rows_from:], "load through scripts/netproxy.py (delay 1 ms):")
        self.assertEqual(hung, 0, "%d reader(s) hung" % hung)
        self.assertFalse(problems, "%d problem(s):\n  %s" % (len(problems), "\n  ".join(sorted(set(problems))[:30])))
        self.assertGreater(ops, 16, "the load test did almost nothing")
        self.assertLess(mib, 100, "imapfs peak RSS %.1f MiB with --cache-size 32M" % mib)
        self.assertFalse(flag_problems, "flags changed in %s" % flag_problems)
