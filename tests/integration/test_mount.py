"""imapfs integration tests against a throwaway Dovecot (see harness.py). Run via run.py."""
import hashlib
import os
import re
import signal
import stat
import subprocess
import time
import unittest

from harness import (DEFAULT, Mount, MountError, Watchdog, check_messages, check_stat_tool, describe_mismatch,
                     folder_path, is_browse, is_mounted, top_path, log, pids_for, read_file, run, uid_names,
                     world)


def fmt(problems, limit=40):
    head = problems[:limit]
    more = "\n  ... and %d more" % (len(problems) - limit) if len(problems) > limit else ""
    return "%d problem(s):\n  " % len(problems) + "\n  ".join(head) + more


# ================================================================ the tree and its contents


class A_Content(unittest.TestCase):
    """One mount of the seeded account, read with Python and with the usual tools."""

    @classmethod
    def setUpClass(cls):
        cls.w = world()
        cls.m = Mount(cls.w, name="content")
        cls.m.start()
        cls.root = cls.m.path
        log("content mount up in %.2fs" % cls.m.mount_seconds)

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()

    def tearDown(self):
        d = self.m.died()
        if d and not getattr(A_Content, "_reported", False):
            A_Content._reported = True
            log("content mount is gone: " + d)

    def folders(self):
        return self.w.folders

    def test_01_folders_match_list(self):
        with Watchdog(self.w, 60, "folder walk"):
            want = {folder_path(f) for f in self.folders()}
            got = set()
            for dirpath, dirnames, filenames in os.walk(self.root):
                rel = os.path.relpath(dirpath, self.root)
                # a message dir holds files (at least HEADER); a folder dir holds only directories
                dirnames[:] = [d for d in dirnames if d != "SEARCH"  # search directories: test_search.py
                               and not os.path.isfile(os.path.join(dirpath, d, "HEADER"))]
                if rel != ".":
                    got.add(rel)
            self.assertEqual(sorted(got), sorted(want), "folder tree vs LIST")
            for f in self.folders():
                entries = sorted(n for n in os.listdir(os.path.join(self.root, folder_path(f))) if n not in ("INDEX", "SEARCH"))
                children = sorted(folder_path(c).rsplit("/", 1)[-1] for c in self.folders()
                                  if c.name.startswith(f.name + (f.delim or "/"))
                                  and (f.delim or "/") not in c.name[len(f.name) + 1:])
                if f.noselect:
                    self.assertEqual(entries, children, "\\Noselect %s must hold only its children" % f.name)
                elif not self.w.messages.get(f.name):
                    self.assertEqual(entries, children, "empty folder %s must be empty" % f.name)
            # the names this suite relies on, spelled out: a numeric folder keeps its name unless its parent
            # holds a message of that UID ("Projects/2" -> "Projects/%32": the digit 2 is 0x32)
            # (but not a folder the server refused to create: Cyrus has no "%" in names, see harness.seed_tolerant)
            refused = {folder_path(f) for f, what, _ in self.w.refused if what == "(CREATE)"}
            for p in ["INBOX", "Archive/2024/Q1", "Archive/2023", "Projects/%32", "Projects/2025", "Projects/1",
                      "Entwürfe", "50%25 off & more", "Empty", "Broken"]:
                if p in refused:
                    continue
                p = top_path(p)  # (Courier: under INBOX/)
                self.assertTrue(os.path.isdir(os.path.join(self.root, p)), "missing folder dir %s" % p)

    def test_02_modes(self):
        with Watchdog(self.w, 60, "modes"):
            problems = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                for d in dirnames:
                    st = os.lstat(os.path.join(dirpath, d))
                    if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o555:
                        problems.append("%s: mode %o" % (os.path.join(dirpath, d), st.st_mode))
                for fn in filenames:
                    if os.path.islink(os.path.join(dirpath, fn)):
                        continue  # attachment links (test_browse.py)
                    st = os.lstat(os.path.join(dirpath, fn))
                    if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o444:
                        problems.append("%s: mode %o" % (os.path.join(dirpath, fn), st.st_mode))
            self.assertFalse(problems, fmt(problems))
            with self.assertRaises(OSError, msg="writing must fail on a read-only fs"):
                with open(os.path.join(self.root, "INBOX", "1", "HEADER"), "wb") as f:
                    f.write(b"x")
            with self.assertRaises(OSError):
                os.mkdir(os.path.join(self.root, "INBOX", "newdir"))

    def test_03_message_dirs_are_uids_with_internaldate_mtime(self):
        with Watchdog(self.w, 60, "message dirs"):
            problems = []
            for f in self.folders():
                if f.noselect:
                    continue
                d = os.path.join(self.root, folder_path(f))
                got = sorted(int(n) for n in os.listdir(d) if os.path.isfile(os.path.join(d, n, "HEADER")))
                want = sorted(self.w.messages[f.name])
                if got != want:
                    problems.append("%s: message dirs %s, UIDs %s" % (f.name, got, want))
                    continue
                for uid, m in self.w.messages[f.name].items():
                    st = os.stat(os.path.join(d, str(uid)))
                    if int(st.st_mtime) != int(m.internaldate):
                        problems.append("%s/%d: mtime %d, INTERNALDATE %d" % (f.name, uid, st.st_mtime, m.internaldate))
            self.assertFalse(problems, fmt(problems))
            # `ls` agrees
            r = run(["ls", os.path.join(self.root, "INBOX")], timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            # (on Courier every other folder is under INBOX too)
            self.assertEqual(sorted(int(x) for x in r.stdout.split() if x.isdigit()),
                             sorted(self.w.messages["INBOX"]))

    def test_04_every_file_matches_reference(self):
        with Watchdog(self.w, 300, "reading every file"):
            problems, stats = [], {}
            t0 = time.time()
            for f in self.folders():
                if f.noselect or f.name == "Corpus":
                    continue
                problems += check_messages(self.root, f.name, self.w.messages[f.name], stats)
            log("read %d files, %d bytes in %.2fs (%d without reference)" % (
                stats.get("files", 0), stats.get("bytes", 0), time.time() - t0, stats.get("no_reference", 0)))
            self.assertFalse(problems, fmt(problems))

    def test_05_stat_tool_sizes(self):
        with Watchdog(self.w, 120, "stat -c %s"):
            problems = []
            for f in self.folders():
                if not f.noselect and f.name != "Corpus":
                    problems += check_stat_tool(self.root, f.name, self.w.messages[f.name])
            self.assertFalse(problems, fmt(problems))

    def test_06_cat_and_head(self):
        with Watchdog(self.w, 120, "cat/head"):
            problems = []
            for uid, m in self.w.messages["INBOX"].items():
                for name, ref in m.files.items():
                    p = os.path.join(self.root, "INBOX", str(uid), name)
                    r = run(["cat", p], timeout=30)
                    if r.returncode != 0:
                        problems.append("cat %s: exit %d %s" % (p, r.returncode, r.stderr[:200]))
                    elif ref is not None and r.stdout != ref:
                        problems.append(describe_mismatch("cat INBOX/%d/%s" % (uid, name), ref, r.stdout))
            # head -c at odd offsets of a base64 part
            m = self.w.messages["INBOX"][11]
            for n in (1, 3, 57, 4096, len(m.files["2"]) - 1):
                r = run(["head", "-c", str(n), os.path.join(self.root, "INBOX", "11", "2")], timeout=30)
                if r.stdout != m.files["2"][:n]:
                    problems.append(describe_mismatch("head -c %d INBOX/11/2" % n, m.files["2"][:n], r.stdout))
            self.assertFalse(problems, fmt(problems))

    def test_07_grep_l(self):
        w = self.w
        token = w.manifest["grep_token"]
        want = sorted(uid for uid, m in w.messages["INBOX"].items()
                      if m.files.get("1") is not None and token.encode() in m.files["1"])
        manifest_want = sorted(i + 1 for i, e in enumerate(w.manifest["folders"]["INBOX"]["messages"]) if e["grep"])
        self.assertEqual(want, manifest_want, "generator/reference disagree on which messages hold the token")
        with Watchdog(w, 120, "grep -l"):
            # message dirs only (on Courier, INBOX also holds the other folders)
            r = run(["bash", "-c", 'shopt -s extglob\ncd "$1" && grep -l -- "$2" INBOX/+([0-9])/1', "-", self.root,
                     token], timeout=60)
        self.assertIn(r.returncode, (0, 1), "grep failed: %r" % r.stderr)
        got = sorted(int(l.split("/")[1]) for l in r.stdout.decode().splitlines())
        self.assertEqual(got, want, "grep -l %s INBOX/*/1" % token)

    def test_08_find_lists_every_file(self):
        with Watchdog(self.w, 120, "find"):
            r = run(["find", self.root, "-type", "f"], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = set(os.path.relpath(p, self.root) for p in r.stdout.decode("utf-8", "replace").splitlines())
        want = set()
        for f in self.folders():
            for uid, m in self.w.messages.get(f.name, {}).items():
                for name in m.files:
                    want.add("%s/%d/%s" % (folder_path(f), uid, name))
        got = set(p for p in got if p in want or not is_browse(p))  # browsing files: test_browse.py
        self.assertEqual(sorted(want - got), [], "files missing from find")
        self.assertEqual(sorted(got - want), [], "unexpected files in find")


# ================================================================ partial reads of a big attachment


class B_PartialRead(unittest.TestCase):
    def test_head_c_4096_of_12mib_attachment_fetches_little(self):
        w = world()
        big = w.manifest["big"]
        ref = w.messages[big["folder"]][big["uid"]].files[big["section"]]
        self.assertEqual(hashlib.sha256(ref).hexdigest(), big["sha256"], "reference of the big part is wrong")
        log_before = len(w.server_log())
        m = Mount(w, name="partial")
        with Watchdog(w, 120, "head -c on the big attachment"):
            m.start()
            try:
                before = w.server_bytes_out()
                p = os.path.join(m.path, folder_path(big["folder"]), str(big["uid"]), big["section"])
                r = run(["ls", "-l", os.path.dirname(p)], timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(os.stat(p).st_size, big["size"])
                r = run(["head", "-c", "4096", p], timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                if r.stdout != ref[:4096]:
                    self.fail(describe_mismatch("head -c 4096 " + p, ref[:4096], r.stdout))
                # let any read-ahead finish: wait until the server's counter is still for 0.5 s (max 5 s)
                last, still_since, t_end = w.server_bytes_out(), time.time(), time.time() + 5
                while time.time() < t_end and time.time() - still_since < 0.5:
                    time.sleep(0.1)
                    now = w.server_bytes_out()
                    if now != last:
                        last, still_since = now, time.time()
                stats_delta = last - before
            finally:
                clean = m.stop()
        # per-session totals: the Disconnected lines of the sessions this mount opened (by session
        # id: a session of an earlier mount may close after log_before and must not count here)
        t_end = time.time() + 5
        while True:
            new = w.server_log()[log_before:]
            sessions = set(re.findall(r"imap-login: Info: Login: .*session=<([^>]+)>", new))
            outs = [int(x) for sid, x in re.findall(r"imap\(.*<([^>]+)>: Info: Disconnected.* out=(\d+)", new)
                    if sid in sessions]
            if len(outs) >= len(sessions) or time.time() > t_end:
                break
            time.sleep(0.1)
        session_total = sum(outs)
        w.timings["head -c 4096: server bytes (stats delta)"] = stats_delta
        w.timings["head -c 4096: server bytes (sessions out=, whole mount)"] = session_total
        log("head -c 4096 of the 12 MiB part: doveadm stats bytes_out delta %d; mount's sessions out= total %d "
            "(%d sessions)" % (stats_delta, session_total, len(outs)))
        self.assertTrue(clean, "unmount was not clean")
        self.assertLess(stats_delta, 1 << 20, "server sent %d bytes for head -c 4096" % stats_delta)
        self.assertLess(session_total, 1 << 20, "the mount's sessions received %d bytes in all" % session_total)


# ================================================================ random access and concurrency


class BB_Reads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = world()
        cls.m = Mount(cls.w, name="reads")
        cls.m.start()

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()

    def test_random_preads_of_big_attachment(self):
        import random
        w = self.w
        big = w.manifest["big"]
        ref = w.messages[big["folder"]][big["uid"]].files[big["section"]]
        size = len(ref)
        p = os.path.join(self.m.path, folder_path(big["folder"]), str(big["uid"]), big["section"])
        rng = random.Random(4711)
        cases = [(0, 1), (1, 2), (131071, 2), (131072, 1), (3 * 131072 - 5, 10), (size - 1, 1), (size - 10, 100),
                 (size, 10), (size + 100, 10), (size // 2, 1 << 20)]
        cases += [(rng.randrange(size), rng.choice([1, 3, 57, 4096, 65536, 200000])) for _ in range(40)]
        problems = []
        with Watchdog(w, 180, "random preads"):
            fd = os.open(p, os.O_RDONLY)
            try:
                for off, n in cases:
                    got = os.pread(fd, n, off)
                    want = ref[off : off + n]
                    if got != want:
                        problems.append(describe_mismatch("pread(%d, %d) of %s" % (off, n, p), want, got))
            finally:
                os.close(fd)
        self.assertFalse(problems, fmt(problems))

    def test_parallel_readers(self):
        import random
        import threading
        w = self.w
        jobs = []
        for folder in ("INBOX", "Projects", "Entwürfe", "Archive/2024/Q1"):
            for uid, m in w.messages[folder].items():
                for name, ref in m.files.items():
                    if ref is not None:
                        jobs.append((os.path.join(self.m.path, folder_path(folder), str(uid), name), ref))
        big = w.manifest["big"]
        jobs.append((os.path.join(self.m.path, folder_path(big["folder"]), str(big["uid"]), big["section"]),
                     w.messages[big["folder"]][big["uid"]].files[big["section"]]))
        problems = []
        lock = threading.Lock()

        def worker(seed):
            mine = list(jobs)
            random.Random(seed).shuffle(mine)
            for path, ref in mine:
                try:
                    got = read_file(path)
                except OSError as e:
                    got = None
                    with lock:
                        problems.append("%s: %s" % (path, e))
                if got is not None and got != ref:
                    with lock:
                        problems.append(describe_mismatch(path, ref, got))

        with Watchdog(w, 240, "parallel readers"):
            threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=250)
            log("8 parallel readers x %d files in %.2fs" % (len(jobs), time.time() - t0))
        self.assertFalse(any(t.is_alive() for t in threads), "a reader hung")
        self.assertFalse(problems, fmt(sorted(set(problems))))

    def test_rereads_while_other_opens_hold_the_file(self):
        """Re-reads of the big attachment are byte-exact and never EIO whatever else holds it open: a
        complete read makes later opens use kernel passthrough (as root), which the kernel refuses
        while the inode is open in cached mode and the other way round."""
        import mmap
        w = self.w
        big = w.manifest["big"]
        ref = w.messages[big["folder"]][big["uid"]].files[big["section"]]
        with Mount(w, name="reread", env_extra={"RUST_LOG": "imapfs=warn,imapfs::fuse=debug"}) as m, \
                Watchdog(w, 180, "re-reads"):
            p = os.path.join(m.path, folder_path(big["folder"]), str(big["uid"]), big["section"])
            problems = []

            def check(what, got):
                if got != ref:
                    problems.append(describe_mismatch("%s of %s" % (what, p), ref, got))
            a = os.open(p, os.O_RDONLY)  # a cached open holding the file
            self.assertEqual(os.pread(a, 10, 5), ref[5:15])
            check("full read while a partial reader holds it", read_file(p))
            check("second full read while it still holds it", read_file(p))
            os.close(a)
            check("full read once alone", read_file(p))
            e = os.open(p, os.O_RDONLY)
            try:
                check("full read while another full-read handle is open", read_file(p))
                self.assertEqual(os.pread(e, 100, len(ref) - 50), ref[-50:])
            finally:
                os.close(e)
            with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                check("mmap", mm[:])
            fd = os.open(p, os.O_RDONLY)
            try:
                for off, n in ((0, 1), (4095, 2), (len(ref) // 3, 1 << 20), (len(ref) - 1, 10)):
                    self.assertEqual(os.pread(fd, n, off), ref[off:off + n], "pread(%d, %d)" % (off, n))
            finally:
                os.close(fd)
            self.assertFalse(problems, fmt(problems))
            if os.geteuid() == 0:  # registering a backing file needs CAP_SYS_ADMIN
                self.assertIn("through its backing file", m.log_text(), "no open used kernel passthrough")


# ================================================================ the mailbox changes while mounted


class BC_Live(unittest.TestCase):
    def test_new_and_expunged_messages_show_up(self):
        import gen_messages
        from imapcommon import connect, imap_quote
        w = world()
        folder = "Live"
        uids = sorted(w.messages[folder])
        with Mount(w, args=["--poll-interval", "1"], name="live") as m:
            d = os.path.join(m.path, folder_path(folder))

            def listing():
                with Watchdog(w, 30, "ls Live"):
                    return uid_names(d)

            self.assertEqual(listing(), uids)
            raw = gen_messages.message(gen_messages.std_headers(999, "Arrived while mounted"),
                                       gen_messages.leaf("text/plain", b"fresh mail\r\n", "7bit"))
            c = connect(w.env)
            try:
                c.append(imap_quote(folder), None, None, raw)
                new_uid = max(uids) + 1
                t0, seen = time.time(), None
                while time.time() - t0 < 20:
                    if new_uid in listing():
                        seen = time.time() - t0
                        break
                    time.sleep(0.2)
                self.assertIsNotNone(seen, "UID %d did not appear within 20 s (--poll-interval 1)" % new_uid)
                log("new message visible after %.2fs" % seen)
                with Watchdog(w, 30, "read new message"):
                    self.assertEqual(read_file(os.path.join(d, str(new_uid), "1")), b"fresh mail\r\n")
                # expunge the first message
                c.select(imap_quote(folder))
                c.uid("STORE", str(uids[0]), "+FLAGS.SILENT", "(\\Deleted)")
                c.expunge()
                t0, gone = time.time(), None
                while time.time() - t0 < 20:
                    if uids[0] not in listing():
                        gone = time.time() - t0
                        break
                    time.sleep(0.2)
                self.assertIsNotNone(gone, "expunged UID %d still listed after 20 s" % uids[0])
                log("expunged message gone after %.2fs" % gone)
            finally:
                c.logout()


    def test_idle_pushes_new_mail_long_before_the_poll_interval(self):
        """With --poll-interval 60, new mail in the folder in use still shows up within seconds:
        the server pushes it (IMAP IDLE on a connection of its own)."""
        import gen_messages
        from imapcommon import connect, imap_quote
        w = world()
        folder = "Pushed"
        c = connect(w.env)
        if b"IDLE" not in c.capability()[1][0].upper().split():  # asked after login (Cyrus)
            # imapfs uses IDLE only when advertised (the cut-down Dovecot does not): polling is
            # what BC_Live's other tests cover there.
            c.logout()
            self.skipTest("the server does not advertise IDLE")
        c.create(imap_quote(folder))
        c.logout()
        with Mount(w, args=["--poll-interval", "60"], name="idle") as m:
            d = os.path.join(m.path, folder_path(folder))

            def listing():
                with Watchdog(w, 30, "ls Pushed"):
                    return uid_names(d)

            before = listing()
            c = connect(w.env)
            try:
                raw = gen_messages.message(gen_messages.std_headers(998, "Pushed"),
                                           gen_messages.leaf("text/plain", b"pushed mail\r\n", "7bit"))
                c.append(imap_quote(folder), None, None, raw)
                t0, seen = time.time(), None
                while time.time() - t0 < 10:
                    now = listing()
                    if len(now) > len(before):
                        seen = time.time() - t0
                        break
                    time.sleep(0.1)
                self.assertIsNotNone(seen, "new mail not listed within 10 s although --poll-interval is 60")
                log("pushed message visible after %.2fs (poll interval 60 s)" % seen)
                new_uid = max(now)
                with Watchdog(w, 30, "read pushed message"):
                    self.assertEqual(read_file(os.path.join(d, str(new_uid), "1")), b"pushed mail\r\n")
            finally:
                c.delete(imap_quote(folder))
                c.logout()

    def test_burst_of_appends_and_folder_changes(self):
        """1,000 messages appended by another client all appear, exact; a new folder appears and
        a deleted one disappears; all with --poll-interval 1 and bounded waits."""
        import gen_messages
        from imapcommon import connect, imap_quote
        w = world()
        c = connect(w.env)
        folder, extra = "Burst", "Burst-new"
        try:
            c.create(imap_quote(folder))
            with Mount(w, args=["--poll-interval", "1"], name="burst") as m:
                d = os.path.join(m.path, folder_path(folder))  # (Courier: under INBOX/)

                def wait_for(pred, what, limit=60):
                    t0 = time.time()
                    while time.time() - t0 < limit:
                        with Watchdog(w, 30, what):
                            if pred():
                                return time.time() - t0
                        time.sleep(0.2)
                    self.fail("%s: not within %ss" % (what, limit))

                wait_for(lambda: os.path.isdir(d), "folder Burst listed")
                t_append = time.time()
                for i in range(1000):
                    raw = gen_messages.message(gen_messages.std_headers(5000 + i, "burst %d" % i),
                                               gen_messages.leaf("text/plain", b"burst body %d\r\n" % i, "7bit"))
                    c.append(imap_quote(folder), None, None, raw)
                log("appended 1000 messages in %.2fs" % (time.time() - t_append))
                took = wait_for(lambda: len(uid_names(d)) == 1000, "1000 appended messages listed")
                log("all 1000 visible %.2fs after the last APPEND" % took)
                names = [str(u) for u in uid_names(d)]
                self.assertEqual(names, [str(u) for u in range(1, 1001)])
                for i in (0, 499, 999):
                    with Watchdog(w, 30, "read burst message"):
                        self.assertEqual(read_file(os.path.join(d, names[i], "1")), b"burst body %d\r\n" % i)
                c.create(imap_quote(extra))
                top = os.path.dirname(os.path.join(m.path, folder_path(extra)))
                took = wait_for(lambda: extra in os.listdir(top), "new folder listed")
                log("new folder visible after %.2fs" % took)
                c.delete(imap_quote(extra))
                took = wait_for(lambda: extra not in os.listdir(top), "deleted folder gone")
                log("deleted folder gone after %.2fs" % took)
        finally:
            try:
                c.delete(imap_quote(folder))
            except Exception:
                pass
            c.logout()


# ================================================================ errors


class C_Errors(unittest.TestCase):
    """Every failure: non-zero exit, exactly one line on stderr, nothing mounted."""

    def attempt(self, url=None, password=DEFAULT, args=(), mountpoint=None, ca_file=None, foreground=False,
                timeout=60, io_timeout=10):
        w = world()
        m = Mount(w, args=args, url=url, password=password, name="err", ca_file=ca_file, foreground=foreground,
                  timeout=io_timeout)
        if mountpoint is not None:
            os.rmdir(m.path)
            m.path = mountpoint
        t0 = time.time()
        try:
            r = run(m.argv(), env=m.env, stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            m.kill()
            self.fail("imapfs did not give up within %ss" % timeout)
        finally:
            mounted = is_mounted(m.path)
            for pid in pids_for(m.path):  # a daemon that should not exist
                os.kill(pid, signal.SIGKILL)
            if mounted:
                run(["fusermount3", "-uz", m.path], timeout=10)
        elapsed = time.time() - t0
        err = r.stderr.decode("utf-8", "replace")
        lines = [l for l in err.splitlines()]
        self.assertNotEqual(r.returncode, 0, "exit status 0; stderr: %r" % err)
        self.assertFalse(mounted, "something was mounted at %s" % m.path)
        self.assertEqual(len(lines), 1, "want exactly one line on stderr, got %d: %r" % (len(lines), err))
        self.assertTrue(lines[0].strip(), "empty error line")
        for internal in ("Error {", "error:0", ".c:", "Os {", "kind:"):
            self.assertNotIn(internal, lines[0], "library internals in the message")
        log("%s -> exit %d in %.2fs: %s" % (self._testMethodName, r.returncode, elapsed, lines[0]))
        return r, lines[0]

    def test_wrong_password(self):
        self.attempt(password="not-the-password")

    def test_wrong_password_foreground(self):
        self.attempt(password="not-the-password", foreground=True)

    def test_wrong_user(self):
        self.attempt(url=world().url(user="nobody-here"))

    def test_unreachable_port(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        self.attempt(url=world().url(port=port))

    def test_silent_server_times_out(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(5)  # the kernel accepts connections; nobody ever sends a greeting
        try:
            t0 = time.time()
            self.attempt(url=world().url(port=s.getsockname()[1]), io_timeout=2, timeout=30)
            self.assertLess(time.time() - t0, 20, "--timeout 2 was not honoured")
        finally:
            s.close()

    def test_certificate_for_another_name(self):
        w = world()
        host = w.env["WRONG_NAME_HOST"]
        for scheme in ("imaps", "imap"):
            _, line = self.attempt(url=w.url(scheme=scheme, host=host))
            # the names the certificate has (scripts/lib/testservers.sh) and the host asked for
            self.assertIn("is for wrong.invalid, not for %s" % host, line)

    def test_certificate_untrusted(self):
        _, line = self.attempt(ca_file=world().env["OTHER_CA_FILE"])
        self.assertIn("is not trusted", line)
        self.assertIn("--ca-file", line)

    def test_implicit_tls_against_plain_port(self):
        w = world()
        t0 = time.time()
        _, line = self.attempt(url=w.url(scheme="imaps", port=w.env["IMAP_PORT"]))
        self.assertLess(time.time() - t0, 3)
        self.assertIn("looks like a plain IMAP port", line)
        self.assertIn("use %s (STARTTLS)" % w.url(scheme="imap", port=w.env["IMAP_PORT"]), line)

    def test_starttls_against_tls_port(self):
        w = world()
        t0 = time.time()
        _, line = self.attempt(url=w.url(scheme="imap", port=w.env["IMAPS_PORT"]))
        self.assertLess(time.time() - t0, 4, "a TLS port is recognised within about a second")
        self.assertIn("looks like a TLS port", line)
        self.assertIn("use %s" % w.url(scheme="imaps", port=w.env["IMAPS_PORT"]), line)

    def test_starttls_missing(self):
        w = world()
        env = w.start_extra_server("--no-starttls")
        self.attempt(url="imap://%s@%s:%s" % (env["IMAP_USER"], env["IMAP_HOST"], env["IMAP_PORT"]),
                     password=env["IMAP_PASS"])

    def test_mountpoint_missing(self):
        p = os.path.join(world().tmp, "does-not-exist")
        self.attempt(mountpoint=p)
        self.assertFalse(os.path.exists(p), "the missing mountpoint was created")

    def test_mountpoint_is_a_file(self):
        p = os.path.join(world().tmp, "a-regular-file")
        with open(p, "w") as f:
            f.write("x")
        self.attempt(mountpoint=p)

    def test_password_file_too_open(self):
        w = world()
        pf = os.path.join(w.tmp, "pw-0644")
        with open(pf, "w") as f:
            f.write(w.env["IMAP_PASS"] + "\n")
        os.chmod(pf, 0o644)
        self.attempt(password=None, args=["--password-file", pf])

    def test_no_password_at_all(self):
        # no IMAPFS_PASSWORD, no --password-*, stdin not a terminal: must fail, not hang
        self.attempt(password=None)


# ================================================================ lifecycle and secrets


def proc_bytes(pid, what):
    with open("/proc/%d/%s" % (pid, what), "rb") as f:
        return f.read()


class D_Lifecycle(unittest.TestCase):
    def test_background_mode_returns_once_mounted_and_fusermount_ends_it(self):
        w = world()
        m = Mount(w, name="bg", foreground=False)
        out = open(m.log_path, "wb")
        t0 = time.time()
        try:
            r = subprocess.run(m.argv(), env=m.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               timeout=60)
            elapsed = time.time() - t0
            mounted_at_return = is_mounted(m.path)
            w.timings["background mount returns after"] = round(elapsed, 3)
            self.assertEqual(r.returncode, 0, "background mount failed: %s" % m.log_text()[-1000:])
            self.assertTrue(mounted_at_return, "the command returned 0 before the mount was up")
            pids = pids_for(m.path)
            self.assertEqual(len(pids), 1, "want one daemon process, found %s" % pids)
            pid = pids[0]
            with Watchdog(w, 30, "ls in background mount"):
                self.assertIn("INBOX", os.listdir(m.path))
            # the password must not be visible in the daemon either
            self.assertNotIn(w.env["IMAP_PASS"].encode(), proc_bytes(pid, "environ"), "password in daemon environ")
            self.assertNotIn(w.env["IMAP_PASS"].encode(), proc_bytes(pid, "cmdline"))
            r = run(["fusermount3", "-u", m.path], timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            t_end = time.time() + 10
            while os.path.exists("/proc/%d" % pid) and time.time() < t_end:
                try:  # reap if it is a zombie child of ours (it should not be: it daemonized)
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.05)
            alive = os.path.exists("/proc/%d" % pid) and b"zombie" not in proc_bytes(pid, "status").lower()
            self.assertFalse(alive, "the daemon did not exit after fusermount3 -u")
        finally:
            out.close()
            for pid in pids_for(m.path):
                os.kill(pid, signal.SIGKILL)
            if is_mounted(m.path):
                run(["fusermount3", "-uz", m.path], timeout=10)

    def test_sigterm_and_sigint_unmount_cleanly(self):
        w = world()
        for sig in (signal.SIGTERM, signal.SIGINT):
            m = Mount(w, name="sig")
            try:
                m.start()
                with Watchdog(w, 30, "ls"):
                    os.listdir(m.path)
                m.proc.send_signal(sig)
                try:
                    rc = m.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.fail("imapfs ignored %s" % sig.name)
                self.assertFalse(is_mounted(m.path), "still mounted after %s" % sig.name)
                self.assertEqual(rc, 0, "exit status %s after %s; log: %s" % (rc, sig.name, m.log_text()[-500:]))
            finally:
                m.stop()

    def test_starttls_mount(self):
        w = world()
        with Mount(w, url=w.url(scheme="imap"), name="starttls") as m:
            with Watchdog(w, 60, "starttls read"):
                ref = w.messages["INBOX"][1]
                self.assertEqual(read_file(os.path.join(m.path, "INBOX", "1", "1")), ref.files["1"])

    def test_insecure_skips_verification(self):
        w = world()
        # a CA that does not match, and a host the certificate does not name: --insecure mounts anyway
        with Mount(w, args=["--insecure"], ca_file=w.env["OTHER_CA_FILE"],
                   url=w.url(host=w.env["WRONG_NAME_HOST"]), name="insecure") as m:
            with Watchdog(w, 30, "ls"):
                self.assertIn("INBOX", os.listdir(m.path))

    def test_password_file_and_command(self):
        w = world()
        pf = os.path.join(w.tmp, "pw-0600")
        with open(pf, "w") as f:
            f.write(w.env["IMAP_PASS"] + "\n")
        os.chmod(pf, 0o600)
        script = os.path.join(w.tmp, "pw.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho '%s'\n" % w.env["IMAP_PASS"])
        os.chmod(script, 0o700)
        for args in (["--password-file", pf], ["--password-command", script]):
            with Mount(w, args=args, password=None, name="pw") as m:
                with Watchdog(w, 30, "ls"):
                    self.assertIn("INBOX", os.listdir(m.path), args)

    def test_password_not_in_proc_or_debug_log(self):
        w = world()
        pw = w.env["IMAP_PASS"].encode()
        m = Mount(w, args=["-d"], name="secret", env_extra={"RUST_LOG": "trace"})
        with m:
            pid = m.proc.pid
            with Watchdog(w, 60, "reads"):
                os.listdir(os.path.join(m.path, "INBOX"))
                read_file(os.path.join(m.path, "INBOX", "1", "1"))
            self.assertNotIn(pw, proc_bytes(pid, "cmdline"), "password in /proc/PID/cmdline")
            self.assertNotIn(pw, proc_bytes(pid, "environ"), "password in /proc/PID/environ")
        text = m.log_text()
        self.assertTrue(text.strip(), "-d produced no log output at all")
        self.assertNotIn(w.env["IMAP_PASS"], text, "password in the -d log")
        # the LOGIN/AUTHENTICATE line must not leak it base64-encoded either (AUTHENTICATE PLAIN)
        import base64
        plain = base64.b64encode(b"\0" + w.env["IMAP_USER"].encode() + b"\0" + pw).decode()
        self.assertNotIn(plain, text, "password (SASL PLAIN base64) in the -d log")


# ================================================================ last: nothing was changed on the server


class Z_FlagsUnchanged(unittest.TestCase):
    def test_flags_unchanged_after_reading_everything(self):
        from reference import Reference
        w = world()
        ref = Reference(w.env)
        try:
            problems = []
            for folder, before in w.flags_before.items():
                if folder == "Live":  # changed on purpose by BC_Live
                    continue
                after = {u: f - {"\\Recent"} for u, f in ref.flags(folder).items()}
                for uid in sorted(set(before) | set(after)):
                    if before.get(uid) != after.get(uid):
                        problems.append("%s/%s: flags before %s, after %s" % (
                            folder, uid, sorted(before.get(uid, [])), sorted(after.get(uid, []))))
            n_seen = sum("\\Seen" in f for b in w.flags_before.values() for f in b.values())
            n_flagged = sum("\\Flagged" in f for b in w.flags_before.values() for f in b.values())
            self.assertGreater(n_seen, 0)
            self.assertGreater(n_flagged, 0)
            self.assertFalse(problems, fmt(problems))
        finally:
            ref.close()
