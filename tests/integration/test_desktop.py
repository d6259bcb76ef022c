"""Desktop integration (issue 14 items 1-4): fstab and mount(8), systemd readiness, logs of background
mounts, and a lifecycle that never leaves a dead mount. Run via run.py (tier `desktop`)."""
import errno
import os
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import REPO, Mount, Watchdog, binary, is_mounted, pids_for, run, world


def mountinfo(path):
    """(options, fstype, source) of the topmost mount at path, or None."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].encode().decode("unicode_escape") == os.path.realpath(path):
                sep = fields.index("-")
                found = (set(fields[5].split(",")), fields[sep + 1], fields[sep + 2])
    return found


def wait_for(pred, seconds, step=0.05):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "zombie" not in f.read().lower()
    except OSError:
        return False


def password_file(w):
    pf = os.path.join(w.tmp, "desktop-pw")
    with open(pf, "w") as f:
        f.write(w.env["IMAP_PASS"] + "\n")
    os.chmod(pf, 0o600)
    return pf


def datagram_socket(path):
    """A bound unix datagram socket at path (a filesystem path or an "@abstract" name)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + path[1:] if path.startswith("@") else path)
    s.settimeout(0.2)
    return s


def recv_until(sock, want, seconds):
    """Datagrams received until one contains `want` (bytes) or time is up: (list, matched)."""
    got = []
    end = time.time() + seconds
    while time.time() < end:
        try:
            got.append(sock.recv(65536))
        except socket.timeout:
            continue
        if want in got[-1]:
            return got, True
    return got, False


class DK_Desktop(unittest.TestCase):
    # ------------------------------------------------------------ 1. fstab and mount(8)

    def test_fstab_line_mounts_with_mount_T(self):
        """`mount -T FSTAB MOUNTPOINT` with a user-style fstab line: mount.fuse3 runs the program named by the
        type (found on its fixed PATH: a uniquely named link in /usr/local/bin stands in for an installed
        imapfs) as `PROG SOURCE MOUNTPOINT -o rw,noexec,nosuid,nodev,password_command=...,ca_file=...`."""
        w = world()
        mp = w.newdir("fstab")
        prog = "imapfs-it-%d" % os.getpid()
        link = os.path.join("/usr/local/bin", prog)
        os.symlink(binary(), link)
        fstab = os.path.join(w.tmp, "fstab-%d" % os.getpid())
        pw = password_file(w)
        opts = ("noauto,user,_netdev,nofail,x-systemd.automount,comment=test,ca_file=%s,timeout=10,"
                "password_command=cat\\040%s,cache_size=32M" % (w.env["CA_FILE"], pw))
        with open(fstab, "w") as f:
            f.write("# imapfs test\n%s %s fuse.%s %s 0 0\n" % (w.url(), mp, prog, opts))
        env = w.child_env(None)  # no IMAPFS_PASSWORD: the password comes from password_command
        try:
            r = run(["mount", "-T", fstab, mp], timeout=60, env=env)
            self.assertEqual(r.returncode, 0, "mount -T failed: %s" % (r.stdout + r.stderr).decode(errors="replace"))
            self.assertTrue(is_mounted(mp), "mount(8) returned 0 but nothing is mounted")
            info = mountinfo(mp)
            # as root fuser mounts type "fuse" itself; through fusermount3 (a user's mount) it is "fuse.imapfs"
            self.assertIn(info[1], ("fuse", "fuse.imapfs"))
            self.assertTrue(info[2].startswith("imapfs:%s@" % w.env["IMAP_USER"]), info)
            self.assertTrue({"ro", "nosuid", "nodev", "noexec"} <= info[0], info)
            with Watchdog(w, 30, "ls fstab mount"):
                self.assertIn("INBOX", os.listdir(mp))
            r = run(["fusermount3", "-u", mp], timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            os.unlink(link)
            for pid in self.pids_named(prog):
                os.kill(pid, signal.SIGKILL)
            if is_mounted(mp):
                run(["fusermount3", "-uz", mp], timeout=10)

    @staticmethod
    def pids_named(prog):
        out = []
        for d in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if os.path.basename(f.read().split(b"\0")[0]) == prog.encode():
                        out.append(int(d))
            except (OSError, ValueError):
                pass
        return out

    def test_standard_mount_options_are_accepted_and_the_mount_stays_read_only(self):
        w = world()
        opts = "rw,dev,suid,exec,atime,nodev,nosuid,noexec,noatime,_netdev,user,users,noauto,auto,nofail," \
               "x-systemd.requires=network-online.target,comment=x,default_permissions,connections=2,poll_interval=7"
        with Mount(w, args=["-o", opts], name="stdopts") as m:
            options = mountinfo(m.path)[0]
            self.assertTrue({"ro", "nosuid", "nodev", "noexec", "noatime"} <= options, options)
            with Watchdog(w, 30, "ls"):
                self.assertIn("INBOX", os.listdir(m.path))
            with self.assertRaises(OSError) as cm:
                open(os.path.join(m.path, "INBOX", "new"), "w")
            self.assertIn(cm.exception.errno, (errno.EROFS, errno.EACCES))

    def test_unknown_option_is_one_clear_line(self):
        w = world()
        mp = w.newdir("unknown")
        for opt, words in (("-o", "frobnicate=1"), ("-o", "pasword_command=x")):
            r = run([binary(), w.url(), mp, opt, words], timeout=30, env=w.child_env(w.env["IMAP_PASS"]))
            err = r.stderr.decode(errors="replace").strip()
            self.assertNotEqual(r.returncode, 0)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn("unknown option -o " + words.split("=")[0], err)
            self.assertFalse(is_mounted(mp))

    # ------------------------------------------------------------ 2. systemd readiness

    def test_ready_notification_after_the_mount_is_visible(self):
        w = world()
        for where in ("path", "abstract"):
            addr = (os.path.join(w.tmp, "notify-%d" % os.getpid()) if where == "path"
                    else "@imapfs-it-notify-%d" % os.getpid())
            sock = datagram_socket(addr)
            try:
                m = Mount(w, name="notify", env_extra={"NOTIFY_SOCKET": addr})
                m.start()
                try:
                    got, ok = recv_until(sock, b"READY=1", 30)
                    self.assertTrue(ok, "no READY=1 on %s socket; got %r; log: %s" % (where, got, m.log_text()))
                    self.assertTrue(is_mounted(m.path), "READY=1 before the mount was visible")
                    self.assertIn(b"MAINPID=%d" % m.proc.pid, got[-1])
                    m.proc.send_signal(signal.SIGTERM)
                    got, ok = recv_until(sock, b"STOPPING=1", 15)
                    self.assertTrue(ok, "no STOPPING=1 after SIGTERM; got %r" % got)
                    self.assertEqual(m.proc.wait(timeout=15), 0)
                finally:
                    m.stop()
            finally:
                sock.close()
                if where == "path":
                    os.unlink(addr)

    def test_readiness_comes_after_mounting_not_at_start(self):
        """A mount that cannot log in must not say READY=1."""
        w = world()
        addr = os.path.join(w.tmp, "notify-fail-%d" % os.getpid())
        sock = datagram_socket(addr)
        try:
            m = Mount(w, name="notifyfail", password="wrong-password", env_extra={"NOTIFY_SOCKET": addr})
            r = run(m.argv(), timeout=60, env=m.env)
            self.assertNotEqual(r.returncode, 0)
            got, ok = recv_until(sock, b"READY=1", 1)
            self.assertFalse(ok, got)
        finally:
            sock.close()
            os.unlink(addr)

    # ------------------------------------------------------------ 3. logs, --help, --version

    def test_log_file_gets_the_first_error_of_a_background_mount(self):
        w = world()
        m = Mount(w, name="logfail", password="wrong-password", foreground=False)
        logfile = m.path + ".imapfs-log"
        r = run(m.argv()[:1] + ["-o", "log_file=" + logfile] + m.argv()[1:], timeout=60, env=m.env)
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr.decode(errors="replace").strip().splitlines()
        self.assertTrue(err, "no error line on the terminal")
        with open(logfile, encoding="utf-8", errors="replace") as f:
            logged = f.read()
        # the line the terminal got is in the log too, as an ERROR with a timestamp
        self.assertRegex(logged, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z imapfs ERROR ")
        self.assertIn(err[-1].replace("imapfs: ", "", 1), logged)
        self.assertNotIn("wrong-password", logged)
        self.assertFalse(is_mounted(m.path))

    def test_log_file_of_a_running_background_mount(self):
        """After daemonizing (stderr is /dev/null) lines still reach --log-file; debug shows the mount."""
        w = world()
        m = Mount(w, args=["-d"], name="logrun", foreground=False)
        logfile = m.path + ".imapfs-log"
        r = run(m.argv()[:1] + ["--log-file", logfile] + m.argv()[1:], timeout=60, env=m.env)
        try:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(is_mounted(m.path))
            with Watchdog(w, 30, "ls"):
                os.listdir(os.path.join(m.path, "INBOX"))
            pid = pids_for(m.path)[0]
            run(["fusermount3", "-u", m.path], timeout=20)
            self.assertTrue(wait_for(lambda: not alive(pid), 15), "daemon still running")
            with open(logfile, encoding="utf-8", errors="replace") as f:
                logged = f.read()
            self.assertIn("mounted on " + m.path, logged)
            self.assertIn("unmounted " + m.path, logged)  # written after the daemon detached its stderr
            self.assertNotIn(w.env["IMAP_PASS"], logged)
        finally:
            m.stop()

    def test_syslog_gets_the_first_error_of_a_background_mount(self):
        """Without --log-file a background process logs to /dev/log. This machine runs no syslog daemon: the
        test binds /dev/log itself (and removes it); where one runs, a private mount namespace
        (unshare -m) bind-mounts the test's socket over /dev/log for imapfs only."""
        w = world()
        m = Mount(w, name="syslog", password="wrong-password", foreground=False)
        if os.path.exists("/dev/log"):
            sock_path = os.path.join(w.tmp, "devlog-%d" % os.getpid())
            cmd = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /dev/log && exec "$@"', sock_path] + m.argv()
            created = False
        else:
            sock_path, cmd, created = "/dev/log", m.argv(), True
        sock = datagram_socket(sock_path)
        try:
            r = run(cmd, timeout=60, env=m.env)
            self.assertNotEqual(r.returncode, 0)
            err = r.stderr.decode(errors="replace").strip().splitlines()
            got, ok = recv_until(sock, b"ERROR", 5)
            self.assertTrue(ok, "no error in syslog; got %r" % got)
            line = got[-1].decode(errors="replace")
            # RFC 3164 as glibc's syslog() sends it: <facility daemon * 8 + severity error>ident[pid]: text
            self.assertRegex(line, r"^<27>imapfs\[\d+\]: ERROR ")
            self.assertIn(err[-1].replace("imapfs: ", "", 1), line)
        finally:
            sock.close()
            if created or os.path.exists(sock_path):
                os.unlink(sock_path)

    def test_without_syslog_the_state_file_gets_the_first_error(self):
        """No syslog socket (this machine; elsewhere /dev/null is bind-mounted over /dev/log in a private mount
        namespace): a background mount logs to $XDG_STATE_HOME/imapfs/imapfs.log."""
        w = world()
        m = Mount(w, name="statelog", password="wrong-password", foreground=False)
        state = os.path.join(w.tmp, "state-%d" % os.getpid())
        m.env["XDG_STATE_HOME"] = state
        cmd = m.argv()
        if os.path.exists("/dev/log"):
            cmd = ["unshare", "-m", "sh", "-c", 'mount --bind /dev/null /dev/log && exec "$@"', "sh"] + cmd
        r = run(cmd, timeout=60, env=m.env)
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr.decode(errors="replace").strip().splitlines()
        self.assertEqual(len(err), 1, err)
        with open(os.path.join(state, "imapfs", "imapfs.log"), encoding="utf-8", errors="replace") as f:
            logged = f.read()
        self.assertIn(err[0].replace("imapfs: ", "", 1), logged)
        self.assertEqual(os.stat(os.path.join(state, "imapfs")).st_mode & 0o777, 0o700)

    def test_help_and_version(self):
        r = run([binary(), "--help"], timeout=10)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0)
        for want in ("Examples:", "fusermount3 -u MOUNTPOINT", "fuse.imapfs", "-o name=value", "--log-file"):
            self.assertIn(want, out)
        r = run([binary(), "--version"], timeout=10)
        version = r.stdout.decode().strip()
        self.assertRegex(version, r"^imapfs \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,}|unknown)\)$")
        g = run(["git", "-C", REPO, "rev-parse", "HEAD"], timeout=10)
        if g.returncode == 0:  # built from this checkout: the commit is a prefix of HEAD (or an older one)
            commit = re.search(r"commit ([0-9a-f]+)", version).group(1)
            r = run(["git", "-C", REPO, "cat-file", "-t", commit], timeout=10)
            self.assertEqual(r.stdout.strip(), b"commit", "%s is not a commit of this repository" % commit)

    # ------------------------------------------------------------ 4. lifecycle

    def test_signal_with_a_file_held_open_detaches_without_a_dead_mount(self):
        w = world()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with Mount(w, name="sigopen") as m:
                with Watchdog(w, 30, "open a file"):
                    held = open(os.path.join(m.path, "INBOX", "1", "HEADER"), "rb")
                    held.read(10)
                    cwd_holder = subprocess.Popen(["sleep", "60"], cwd=os.path.join(m.path, "INBOX"))
                try:
                    self.signal_detaches(m, sig)
                finally:
                    held.close()
                    cwd_holder.kill()
                    cwd_holder.wait()

    def signal_detaches(self, m, sig):
        m.proc.send_signal(sig)
        rc = m.proc.wait(timeout=20)
        self.assertEqual(rc, 0, "exit status %s after %s; log: %s" % (rc, sig.name, m.log_text()))
        self.assertFalse(is_mounted(m.path), "still mounted after %s" % sig.name)
        # no dead mount: the directory is the empty one underneath
        self.assertEqual(os.listdir(m.path), [])
        lines = [l for l in m.log_text().splitlines() if "busy" in l]
        self.assertEqual(len(lines), 1, m.log_text())
        self.assertIn("detached it lazily", lines[0])

    def test_nonempty_mountpoint_is_refused_unless_nonempty(self):
        w = world()
        mp = w.newdir("nonempty")
        with open(os.path.join(mp, "keep"), "w") as f:
            f.write("x")
        r = run([binary(), "--ca-file", w.env["CA_FILE"], w.url(), mp], timeout=30,
                env=w.child_env(w.env["IMAP_PASS"]))
        err = r.stderr.decode(errors="replace").strip()
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("is not empty", err)
        self.assertIn("-o nonempty", err)
        self.assertFalse(is_mounted(mp))
        m = Mount(w, args=["-o", "nonempty"], name="nonempty-ok")
        os.rmdir(m.path)
        m.path = mp
        with m:
            with Watchdog(w, 30, "ls"):
                self.assertIn("INBOX", os.listdir(mp))

    def test_already_mounted_mountpoint_is_refused(self):
        w = world()
        with Mount(w, name="twice") as m:
            r = run([binary(), "--ca-file", w.env["CA_FILE"], "-f", w.url(), m.path], timeout=30,
                    env=w.child_env(w.env["IMAP_PASS"]))
            err = r.stderr.decode(errors="replace").strip()
            self.assertNotEqual(r.returncode, 0)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertRegex(err, r"already a mount point \(fuse(\.imapfs)? imapfs:")
            with Watchdog(w, 30, "ls"):  # the first mount is untouched
                self.assertIn("INBOX", os.listdir(m.path))
            self.assertEqual(len(pids_for(m.path)), 1)

    def test_external_lazy_unmount_ends_the_process(self):
        w = world()
        m = Mount(w, name="lazy")
        try:
            m.start()
            with Watchdog(w, 30, "ls"):
                os.listdir(m.path)
            r = run(["fusermount3", "-u", "-z", m.path], timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            try:
                rc = m.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.fail("imapfs still running 15 s after fusermount3 -u -z")
            self.assertEqual(rc, 0, m.log_text())
            self.assertFalse(is_mounted(m.path))
        finally:
            m.stop()

    def test_auto_unmount_cleans_up_after_sigkill(self):
        """-o auto_unmount without allow_other (fuser alone refuses that): killed with SIGKILL, imapfs leaves no
        dead mount behind; for root, and for an unprivileged user mounting through fusermount3."""
        w = world()
        # An unprivileged user opens /dev/fuse itself before falling back to fusermount3 (fuser's order); it is
        # 0666 on desktops but 0600 in this container: open it up for the test, then put it back.
        mode = os.stat("/dev/fuse").st_mode & 0o777
        os.chmod("/dev/fuse", 0o666)
        try:
            self.auto_unmount_for(w, ("root", "nobody"))
        finally:
            os.chmod("/dev/fuse", mode)

    def auto_unmount_for(self, w, users):
        for user in users:
            m = Mount(w, args=["-o", "auto_unmount"], name="autounmount-" + user)
            pre = None
            if user == "nobody":
                os.chown(m.path, 65534, 65534)
                pre = drop_to_nobody
            try:
                m.logf = open(m.log_path, "ab")
                m.proc = subprocess.Popen(m.argv(), env=m.env, stdin=subprocess.DEVNULL, stdout=m.logf,
                                          stderr=subprocess.STDOUT, preexec_fn=pre)
                w.track(m)
                self.assertTrue(wait_for(lambda: is_mounted(m.path), 30), "%s: not mounted: %s" % (user, m.log_text()))
                with Watchdog(w, 30, "ls"):  # as the mounting user: another user's FUSE mount is closed even to root
                    r = run(["ls", m.path], timeout=30, preexec_fn=pre)
                    self.assertIn(b"INBOX", r.stdout, r.stderr)
                m.proc.kill()
                m.proc.wait(timeout=10)
                gone = wait_for(lambda: not is_mounted(m.path), 10)
                self.assertTrue(gone, "%s: the mount is still there 10 s after SIGKILL" % user)
                self.assertEqual(os.listdir(m.path), [])
            finally:
                m.stop()

    def test_auto_unmount_never_detaches_a_later_mount_at_the_same_place(self):
        """A's watcher knows A's mount ID: when A dies after its mount was replaced by B's, B stays."""
        w = world()
        a = Mount(w, args=["-o", "auto_unmount"], name="autounmount-later")
        b = Mount(w, name="autounmount-b")
        os.rmdir(b.path)
        b.path = a.path
        held = None
        try:
            a.start()
            with Watchdog(w, 30, "open a file"):
                held = open(os.path.join(a.path, "INBOX", "1", "HEADER"), "rb")  # keeps A's process serving
            self.assertEqual(run(["fusermount3", "-u", "-z", a.path], timeout=20).returncode, 0)
            b.start()
            a.proc.kill()
            a.proc.wait(timeout=10)
            time.sleep(2)  # A's watcher has had its chance
            self.assertTrue(is_mounted(b.path), "A's auto_unmount detached B's mount")
            with Watchdog(w, 30, "ls B"):
                self.assertIn("INBOX", os.listdir(b.path))
        finally:
            if held:
                held.close()
            b.stop()
            a.stop()


def drop_to_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


class DK_SystemdUnit(unittest.TestCase):
    def test_contrib_unit_runs_as_systemd_would(self):
        """contrib/imapfs@.service's ExecStart, with ${VAR}s from a conf file substituted as systemd does (one
        word each), under NOTIFY_SOCKET: READY=1 once mounted; then its ExecStop unmounts and imapfs exits 0.
        (This machine runs no systemd, so systemd itself is not in the loop.)"""
        w = world()
        unit = {}
        with open(os.path.join(REPO, "contrib", "imapfs@.service")) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    unit[k] = v
        self.assertEqual(unit["Type"], "notify")
        mp = w.newdir("unit")
        conf = {"URL": w.url(), "MOUNTPOINT": mp,
                "OPTIONS": "ca_file=%s,password_command=cat %s" % (w.env["CA_FILE"], password_file(w))}

        def argv(line):
            words = [conf.get(x[2:-1], x) if x.startswith("${") else x for x in line.lstrip("-").split()]
            return [binary() if x == "/usr/local/bin/imapfs" else x for x in words]

        addr = os.path.join(w.tmp, "unit-notify-%d" % os.getpid())
        sock = datagram_socket(addr)
        logf = open(mp + ".log", "wb")
        proc = subprocess.Popen(argv(unit["ExecStart"]), env=w.child_env(None, {"NOTIFY_SOCKET": addr}),
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        try:
            got, ok = recv_until(sock, b"READY=1", 30)
            self.assertTrue(ok, "no READY=1 from the unit's command; got %r" % got)
            self.assertTrue(is_mounted(mp))
            r = run(argv(unit["ExecStop"]), timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(proc.wait(timeout=15), 0)
            self.assertFalse(is_mounted(mp))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if is_mounted(mp):
                run(["fusermount3", "-uz", mp], timeout=10)
            logf.close()
            sock.close()
            os.unlink(addr)
