"""Shared world for the imapfs integration tests: one throwaway Dovecot, seeded once, its reference
answers captured once, and helpers to mount/unmount imapfs with bounded waits.

Environment:
  IMAPFS_BIN     the binary (default: <repo>/target/release/imapfs)
  IMAPFS_CORPUS  the real-world corpus root (default: <repo>/../shared/corpus); absent -> tier skipped
  KEEP_TMP=1     keep the temp dir (server logs, imapfs logs) after the run
  IMAPFS_TEST_SERVER  the server the world runs (default dovecot; run.py --server NAME sets it):
                 dovecot      scripts/test-server.sh
                 dovecot-min  the same Dovecot advertising only IMAP4rev1 LITERAL+ (scripts/servers/)
                 cyrus        Cyrus IMAP from the unpacked Debian package (scripts/servers/cyrus.sh)
                 courier      Courier-IMAP from the unpacked Debian packages (scripts/servers/courier.sh)
                 Reference answers come from the server under test: BINARY.PEEK where the server has it
                 (Dovecot, also the cut-down one, which still implements it; Cyrus), otherwise BODY.PEEK
                 decoded here (see PortableReference). A message the server refuses to APPEND is left
                 out of the world (listed in the closing notes).
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))

import gen_messages  # noqa: E402
import seed  # noqa: E402
from imapcommon import load_env  # noqa: E402
from reference import Reference  # noqa: E402

DOVECOT_SERVER = os.path.join(REPO, "scripts", "test-server.sh")
SERVER = os.environ.get("IMAPFS_TEST_SERVER") or "dovecot"
SERVER_SCRIPTS = {
    "dovecot": DOVECOT_SERVER,
    "dovecot-min": os.path.join(REPO, "scripts", "servers", "dovecot-min.sh"),
    "cyrus": os.path.join(REPO, "scripts", "servers", "cyrus.sh"),
    "courier": os.path.join(REPO, "scripts", "servers", "courier.sh"),
}
if SERVER not in SERVER_SCRIPTS:
    raise SystemExit("IMAPFS_TEST_SERVER=%s: unknown server (known: %s)" % (SERVER, ", ".join(SERVER_SCRIPTS)))
# the chosen server's start/stop/status script (all take the same arguments and write the same DIR/env)
TEST_SERVER = SERVER_SCRIPTS[SERVER]
MOUNT_DEADLINE = 30  # seconds for a mount to appear
CORPUS_FOLDER = "Corpus"


def log(msg):
    print("[integration] " + msg, file=sys.stderr, flush=True)


def binary():
    b = os.environ.get("IMAPFS_BIN", "target/release/imapfs")
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def corpus_root():
    c = os.environ.get("IMAPFS_CORPUS")
    return c if c else os.path.join(os.path.dirname(REPO), "shared", "corpus")


def run(cmd, timeout=30, **kw):
    """subprocess.run with a mandatory timeout, capturing bytes output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(cmd, timeout=timeout, **kw)


# ---------------------------------------------------------------- names / paths


def escape_component(name, beside_uids=()):
    """A folder-name level as imapfs shows it (README, "Folder names"): % / control characters . ..
    escaped; a level made only of digits keeps its name unless its parent folder holds a message with
    that UID (beside_uids), in which case its first digit is escaped (2024 -> %32024)."""
    if name == ".":
        return "%2E"
    if name == "..":
        return "%2E%2E"
    if name == "":
        return "%"
    out = []
    for ch in name:
        if ch == "%":
            out.append("%25")
        elif ch == "/":
            out.append("%2F")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("%%%02X" % ord(ch))
        else:
            out.append(ch)
    s = "".join(out)
    if re.fullmatch(r"[1-9][0-9]*", name) and int(name) in beside_uids:
        s = "%%%02X" % ord(name[0]) + s[1:]
    return s


_uids_by_folder = {}  # folder name -> set of UIDs (filled by World.setup from the reference)


def folder_path(folder):
    """Relative path of a folder (a reference Folder, or a Unicode "/"-delimited name) in the mount."""
    name, delim = (folder.name, folder.delim or "/") if hasattr(folder, "name") else (folder, "/")
    if SERVER == "courier" and not hasattr(folder, "name"):
        name, delim = courier_name(name), "."
    levels = name.split(delim)
    out = []
    for i, level in enumerate(levels):
        parent = delim.join(levels[:i])
        out.append(escape_component(level, _uids_by_folder.get(parent, ()) if parent else ()))
    return "/".join(out)


def top_path(rel):
    """A path relative to the mount root, as the tests spell it for a top-level folder, where it is on the
    chosen server (Courier: every folder but INBOX is under INBOX/)."""
    if SERVER == "courier" and rel != "INBOX" and not rel.startswith("INBOX/"):
        return "INBOX/" + rel
    return rel


def is_mounted(path):
    path = os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp == path:
                    return True
    except OSError:
        pass
    return False


def pids_for(mountpoint):
    """PIDs of imapfs processes whose command line names this (unique, temporary) mountpoint."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"imapfs" and mountpoint.encode() in argv:
            out.append(int(d))
    return out


# ---------------------------------------------------------------- servers other than Dovecot


def seed_tolerant(env, specs, refused):
    """scripts/seed.py's seed(), except that a message the server refuses (APPEND answered NO, as Cyrus
    does for some malformed headers) is left out and recorded in `refused` as (folder, file, answer)
    instead of stopping the run. Same dates, flags and order as seed.seed() for the accepted ones."""
    import imaplib
    from imapcommon import connect, imap_quote
    conn = connect(env, timeout=120)
    done = {}
    try:
        existing = seed.list_names(conn)
        for folder, path in specs:
            try:
                name = seed.ensure_folder(conn, folder, existing)
            except RuntimeError as e:  # CREATE refused (Cyrus: "%" in a name is "Invalid mailbox name")
                refused.append((folder, "(CREATE)", str(e)[:200]))
                continue
            entries = done.setdefault(folder, [])
            for i, raw_path in enumerate(seed.message_files(path) if path else []):
                with open(raw_path, "rb") as f:
                    raw = f.read()
                # the index among the files (not among accepted ones): a refused message does not shift the
                # dates and flags of the others
                date, fl = seed.internaldate_of(raw, i), seed.flags_for(i, "mixed")
                try:
                    typ, data = conn.append(imap_quote(name), fl, date, raw)
                except imaplib.IMAP4.error as e:  # NO/BAD
                    typ, data = "NO", [str(e).encode()]
                if typ != "OK":
                    refused.append((folder, raw_path, b" ".join(d for d in data if isinstance(d, bytes))
                                    .decode("utf-8", "replace")[:200]))
                    continue
                entries.append((raw_path, date, fl))
    finally:
        try:
            conn.logout()
        except Exception:
            pass
    return done


def courier_name(name):
    """A folder name of the tests ("/"-delimited, top level) as Courier has it: every folder of its personal
    namespace is under "INBOX." and the delimiter is ".". Names already under INBOX stay as they are."""
    if name.upper() == "INBOX" or name.upper().startswith("INBOX."):
        return name
    return "INBOX." + name.replace("/", ".")


def test_name(name):
    """A folder name as the server lists it, as the tests spell it ("/"-delimited; on Courier without the
    "INBOX." of its personal namespace): the inverse of courier_name."""
    if SERVER == "courier" and name.upper().startswith("INBOX."):
        return name[len("INBOX."):].replace(".", "/")
    return name


class CourierNames:
    """An imaplib connection whose mailbox arguments (the tests' "/"-names, quoted or not) are turned into
    Courier's names, so that seed.py and the tests' own IMAP calls work unchanged against Courier."""

    def __init__(self, conn):
        self._c = conn

    def __getattr__(self, k):
        return getattr(self._c, k)

    @staticmethod
    def _m(mbox):
        if len(mbox) >= 2 and mbox[0] == mbox[-1] == '"':
            return '"%s"' % courier_name(mbox[1:-1])
        return courier_name(mbox)

    def create(self, mbox):
        return self._c.create(self._m(mbox))

    def delete(self, mbox):
        return self._c.delete(self._m(mbox))

    def append(self, mbox, *args):
        return self._c.append(self._m(mbox), *args)

    def select(self, mbox="INBOX", readonly=False):
        return self._c.select(self._m(mbox), readonly)

    def status(self, mbox, names):
        return self._c.status(self._m(mbox), names)


class FolderMessages(dict):
    """World.messages: {folder name as the tests spell it (test_name): {uid: Message}}; on Courier the name
    the server lists ("INBOX.Archive.2024.Q1", World.folders) finds it too."""

    def __missing__(self, key):
        if SERVER == "courier" and isinstance(key, str) and test_name(key) != key:
            return self[test_name(key)]
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


if SERVER == "courier":
    import imapcommon
    _plain_connect = imapcommon.connect

    def _courier_connect(*a, **kw):
        return CourierNames(_plain_connect(*a, **kw))

    # seed.py and the tests (and reference.py) take connect from imapcommon; seed has its own binding
    imapcommon.connect = seed.connect = _courier_connect
    import reference as _reference
    _reference.connect = _courier_connect


class PortableReference(Reference):
    """The reference client for a server without BINARY (Courier): every part is BODY.PEEK decoded here
    (base64 strictly: a part that is not clean base64 gets no reference, as Dovecot's BINARY refuses it;
    quoted-printable per RFC 2045). The single body of an encapsulated message (part "1" of a message whose
    top-level type is message/rfc822, part "n.1" of a message/rfc822 part n whose body is not multipart) is
    taken as BODY.PEEK[TEXT] / BODY.PEEK[n.TEXT]: the same bytes by RFC 3501 (and on Dovecot), while Courier
    answers BODY[1] / BODY[n.1] of such a part with the wrong bytes when that body is itself a message
    (the inner message's body only, its last byte cut: INBOX/14/1, INBOX/15/2.1)."""

    def message(self, folder, uid, bodies=True):
        from reference import is_multipart, is_message_rfc822, part_at, part_encoding
        m = super().message(folder, uid, bodies=False)
        if not bodies:
            return m
        for sec, kind in m.sections:
            enc = part_encoding(part_at(m.bodystructure, sec))
            fetch = sec
            if sec == "1" and not is_multipart(m.bodystructure):
                fetch = "TEXT"
            elif sec.endswith(".1"):
                parent = part_at(m.bodystructure, sec[:-2])
                if is_message_rfc822(parent) and not is_multipart(parent[8]):
                    fetch = sec[:-2] + ".TEXT"
            raw = self.body_section(folder, uid, fetch)
            m.files[sec] = None if raw is None else strict_decode(enc, raw)
            if kind == "message":
                m.files[sec + ".HEADER"] = self.body_section(folder, uid, sec + ".HEADER")
        return m


def strict_decode(encoding, raw):
    import base64
    import binascii
    from reference import py_decode
    if encoding == "base64":
        s = re.sub(rb"[ \t\r\n]", b"", raw)
        if not re.fullmatch(rb"[A-Za-z0-9+/]*={0,2}", s) or len(s) % 4:
            return None
        try:
            return base64.b64decode(s, validate=True)
        except binascii.Error:
            return None
    return py_decode(encoding, raw)


def make_reference(env):
    """The reference client for the chosen server (see the module doc)."""
    if SERVER in ("dovecot", "dovecot-min"):
        return Reference(env)
    from imapcommon import connect
    c = connect(env, timeout=60)
    try:
        caps = {x.upper() for x in c.capability()[1][-1].decode().split()}  # after login (Cyrus: only then)
    finally:
        c.logout()
    return Reference(env) if "BINARY" in caps else PortableReference(env)


# ---------------------------------------------------------------- mounts


class MountError(Exception):
    pass


DEFAULT = object()


class Mount:
    """An imapfs mount run in the foreground (-f) as our child process, logging to a file.
    password: DEFAULT = the right one in IMAPFS_PASSWORD; None = no IMAPFS_PASSWORD at all."""

    def __init__(self, world, args=(), url=None, password=DEFAULT, name="mnt", env_extra=None, foreground=True,
                 ca_file=None, timeout=10):
        self.world = world
        self.timeout = timeout
        self.path = world.newdir(name)
        self.log_path = self.path + ".log"
        self.url = url or world.url()
        self.password = world.env["IMAP_PASS"] if password is DEFAULT else password
        self.args = list(args)
        self.ca_file = ca_file or world.env["CA_FILE"]
        self.env = world.child_env(self.password, env_extra)
        self.proc = None
        self.foreground = foreground

    def argv(self):
        a = [binary(), "--ca-file", self.ca_file, "--timeout", str(self.timeout)]
        if self.foreground:
            a.append("-f")
        return a + self.args + [self.url, self.path]

    def start(self, deadline=MOUNT_DEADLINE):
        if not os.path.exists(binary()):
            raise MountError("imapfs binary not found at %s (build it: cargo build --release)" % binary())
        self.logf = open(self.log_path, "ab")
        t0 = time.time()
        self.proc = subprocess.Popen(self.argv(), env=self.env, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        self.world.track(self)
        while time.time() - t0 < deadline:
            if is_mounted(self.path):
                self.mount_seconds = time.time() - t0
                return self
            if self.proc.poll() is not None:
                raise MountError("imapfs exited with %s before mounting; log: %s" % (self.proc.returncode,
                                                                                    self.log_text()[-2000:]))
            time.sleep(0.02)
        self.stop()
        raise MountError("not mounted after %ss; log: %s" % (deadline, self.log_text()[-2000:]))

    def died(self):
        """None while the process runs; else a description with the log tail (for failure messages)."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return "imapfs (pid %d) exited with status %s; log tail:\n%s" % (
            self.proc.pid, self.proc.returncode, self.log_text()[-3000:])

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=15):
        """Unmount with fusermount3 -u; the process must then exit. Escalates (kill, lazy unmount) if not.
        Returns True when it went cleanly."""
        clean = True
        if is_mounted(self.path):
            try:
                r = run(["fusermount3", "-u", self.path], timeout=timeout)
                if r.returncode != 0:
                    clean = False
                    log("fusermount3 -u %s: %s" % (self.path, r.stderr.decode(errors="replace").strip()))
            except subprocess.TimeoutExpired:
                clean = False
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                clean = False
                log("imapfs (pid %d) did not exit after unmount; killing it" % self.proc.pid)
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in pids_for(self.path):
            clean = False
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if is_mounted(self.path):
            clean = False
            run(["fusermount3", "-uz", self.path], timeout=10)
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        self.world.untrack(self)
        return clean

    def kill(self):
        """Emergency stop (watchdog): SIGKILL, which aborts the FUSE connection, then lazy unmount."""
        for pid in ([self.proc.pid] if self.proc and self.proc.poll() is None else []) + pids_for(self.path):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            run(["fusermount3", "-uz", self.path], timeout=10)
        except Exception:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Watchdog:
    """Kill all mounts if a block takes longer than `seconds`, so a hung FUSE call can't hang the run."""

    def __init__(self, world, seconds, what):
        self.world, self.seconds, self.what = world, seconds, what
        self.fired = False

    def _fire(self):
        self.fired = True
        log("WATCHDOG: %s took more than %ss; killing imapfs mounts" % (self.what, self.seconds))
        for m in list(self.world.mounts):
            m.kill()

    def __enter__(self):
        self.timer = threading.Timer(self.seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()


# ---------------------------------------------------------------- the world


class World:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="imapfs-it-")
        os.chmod(self.tmp, 0o711)  # the mail user (nobody) must traverse into the server dir
        self.server_dir = os.path.join(self.tmp, "server")
        self.mounts = []
        self.servers = [self.server_dir]
        self.server_scripts = {}  # server dir -> its script, when not TEST_SERVER
        self.refused = []  # (folder, message file, server's answer) of every APPEND the server refused
        self.counter = 0
        self.corpus = None
        self.timings = {}
        self.notes = []

    # -- setup
    def setup(self):
        t0 = time.time()
        r = run(["bash", TEST_SERVER, "start", self.server_dir], timeout=300)
        if r.returncode != 0:
            raise RuntimeError("test server failed: %s" % r.stderr.decode(errors="replace"))
        self.timings["server start"] = time.time() - t0
        self.env = load_env(os.path.join(self.server_dir, "env"))

        t0 = time.time()
        gen_dir = os.path.join(self.tmp, "messages")
        self.manifest = gen_messages.generate(gen_dir)
        self.timings["generate"] = time.time() - t0

        specs = [(f, os.path.join(gen_dir, m["dir"])) for f, m in self.manifest["folders"].items()]
        specs += [(f, None) for f in self.manifest["empty_folders"]]
        croot = corpus_root()
        if os.path.isdir(croot) and seed.message_files(croot):
            self.corpus = croot
            specs.append((CORPUS_FOLDER, croot))
        else:
            self.notes.append("note: corpus not found at %s; the corpus tier will be skipped" % croot)
            log(self.notes[-1])
        t0 = time.time()
        if SERVER in ("dovecot", "dovecot-min"):
            self.seeded = seed.seed(self.env, specs, "mixed", quiet=True)
        else:
            self.seeded = seed_tolerant(self.env, specs, self.refused)
            for folder, path, why in self.refused:
                what = path if path == "(CREATE)" else "APPEND of " + os.path.relpath(
                    path, self.tmp if path.startswith(self.tmp) else os.path.dirname(REPO))
                self.notes.append("note: %s refused %s to %s: %s" % (SERVER, what, folder, why))
                log(self.notes[-1])
        self.timings["seed"] = time.time() - t0

        t0 = time.time()
        ref = make_reference(self.env)
        try:
            self.folders = ref.list_folders()
            self.messages = FolderMessages()
            for f in self.folders:
                if not f.noselect:
                    self.messages[test_name(f.name)] = ref.folder_messages(f.name)
                    _uids_by_folder[f.name] = set(self.messages[test_name(f.name)])
            self.flags_before = {f: {u: m.flags - {"\\Recent"} for u, m in ms.items()}
                                 for f, ms in self.messages.items()}
            self.reference_reconnects = ref.reconnects
            if SERVER not in ("dovecot", "dovecot-min"):
                self.unpin_broken(gen_dir)
        finally:
            ref.close()
        self.timings["reference"] = time.time() - t0
        log("world ready in %s: %s" % (self.tmp, ", ".join("%s %.2fs" % kv for kv in self.timings.items())))

    def unpin_broken(self, gen_dir):
        """No reference for the base64/quoted-printable parts of the generator's deliberately broken
        messages (manifest "broken"): servers decode broken encodings differently (Broken/7, quoted-printable
        ending in a lone "=": Cyrus's BINARY and Python drop the "=", imapfs's own decoder keeps it, Dovecot's
        BINARY refuses it, so the Dovecot run has no reference there either), so there is no one right answer
        to hold imapfs to. Those files must still be readable with an exact st_size (check_messages)."""
        from reference import part_at, part_encoding
        n = 0
        for folder, entries in self.seeded.items():
            broken = {os.path.join(gen_dir, e["file"]) for e in self.manifest["folders"].get(folder, {})
                      .get("messages", []) if e["broken"]}
            for i, (path, _, _) in enumerate(entries):
                m = self.messages[folder].get(i + 1) if path in broken else None  # fresh server: UID = i + 1
                for sec, kind in m.sections if m else ():
                    if kind == "leaf" and part_encoding(part_at(m.bodystructure, sec)) in ("base64", "quoted-printable"):
                        m.files[sec] = None
                        n += 1
        self.notes.append("note: %d encoded parts of deliberately broken messages have no reference on %s" % (n, SERVER))
        log(self.notes[-1])

    # -- helpers
    def newdir(self, name):
        self.counter += 1
        p = os.path.join(self.tmp, "%s-%d" % (name, self.counter))
        os.mkdir(p)
        return p

    def url(self, scheme="imaps", host=None, port=None, user=None):
        port = port or (self.env["IMAPS_PORT"] if scheme == "imaps" else self.env["IMAP_PORT"])
        return "%s://%s@%s:%s" % (scheme, user or self.env["IMAP_USER"], host or self.env["IMAP_HOST"], port)

    def child_env(self, password, extra=None):
        e = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
        e.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        e["XDG_STATE_HOME"] = os.path.join(self.tmp, "state")  # background logs without syslog (README, Logs)
        if password is not None:
            e["IMAPFS_PASSWORD"] = password
        e.update(extra or {})
        return e

    def track(self, m):
        if m not in self.mounts:
            self.mounts.append(m)

    def untrack(self, m):
        if m in self.mounts:
            self.mounts.remove(m)

    def start_extra_server(self, *opts):
        """Another server of the chosen kind; with options (e.g. --no-starttls, which only the Dovecot
        script has) a Dovecot from scripts/test-server.sh."""
        d = os.path.join(self.tmp, "server-%d" % (len(self.servers) + 1))
        self.servers.append(d)
        script = TEST_SERVER if not opts else DOVECOT_SERVER
        self.server_scripts[d] = script
        r = run(["bash", script, "start", d] + list(opts), timeout=120)
        if r.returncode != 0:
            raise RuntimeError("extra test server failed: %s" % r.stderr.decode(errors="replace"))
        return load_env(os.path.join(d, "env"))

    def server_bytes_out(self):
        if SERVER not in ("dovecot", "dovecot-min"):
            # only Dovecot's stats count the bytes a server sent
            raise unittest.SkipTest("no server-side byte counter on %s (doveadm stats is Dovecot's)" % SERVER)
        r = run(["doveadm", "-c", self.env["DOVECOT_CONF"], "stats", "dump"], timeout=20)
        for line in r.stdout.decode().splitlines():
            f = line.split("\t")
            if len(f) > 3 and f[0] == "imap_bytes" and f[1] == "bytes_out":
                return int(f[3])
        return 0

    def server_log(self):
        if SERVER not in ("dovecot", "dovecot-min"):
            raise unittest.SkipTest("no per-session byte log on %s (the logout line is Dovecot's)" % SERVER)
        with open(os.path.join(self.server_dir, "log", "dovecot.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    # -- teardown
    def teardown(self):
        for m in list(self.mounts):
            try:
                m.stop(timeout=10)
            except Exception as e:  # keep tearing down
                log("teardown: %s" % e)
        for d in self.servers:
            try:
                run(["bash", self.server_scripts.get(d, TEST_SERVER), "stop", d], timeout=30)
            except Exception as e:
                log("teardown: stopping %s: %s" % (d, e))
        if os.environ.get("KEEP_TMP"):
            log("kept %s" % self.tmp)
        else:
            # never rm -rf through a mount that is still there
            if not any(is_mounted(os.path.join(self.tmp, d)) for d in os.listdir(self.tmp)):
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                log("a mount under %s is still there; leaving the directory" % self.tmp)


_world = None
_world_error = None


def world():
    """The shared world, set up on first use (a setup failure is re-raised for every test that needs it)."""
    global _world, _world_error
    if _world_error is not None:
        raise _world_error
    if _world is None:
        w = World()
        atexit.register(w.teardown)
        try:
            w.setup()
        except Exception as e:
            _world_error = e
            raise
        _world = w
    return _world


def teardown_world():
    global _world
    if _world is not None:
        w, _world = _world, None
        atexit.unregister(w.teardown)
        w.teardown()


# ---------------------------------------------------------------- comparing a mounted tree with the reference


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def describe_mismatch(path, want, got):
    i = first_diff(want, got)
    return "%s: expected %d bytes, got %d; first difference at offset %d: expected %r got %r" % (
        path, len(want), len(got), i, want[i : i + 24], got[i : i + 24])


# Files of the browsing layout (README, "Browsing"): compared by test_browse.py, left out elsewhere.
BROWSE_NAME = re.compile(r"^(INDEX|FOLDERS|TEXT|RFC822|FLAGS|BODYSTRUCTURE|.+\.(MIME|utf8))$")


def is_browse(path):
    """True for an INDEX/FOLDERS/FLAGS/... file or an attachment link."""
    return bool(BROWSE_NAME.match(os.path.basename(path))) or os.path.islink(path)


def uid_names(d):
    """The message directories of a folder directory, as sorted UIDs."""
    return sorted(int(n) for n in os.listdir(d) if n.isdigit())


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def check_messages(root, folder, msgs, stats=None):
    """Compare every message dir of a folder in the mount with the reference. Returns a list of problems."""
    problems = []
    stats = stats if stats is not None else {}
    fdir = os.path.join(root, folder_path(folder))
    for uid, m in sorted(msgs.items()):
        d = os.path.join(fdir, str(uid))
        rel = "%s/%d" % (folder_path(folder), uid)
        try:
            names = set(n for n in os.listdir(d) if n in m.files or not is_browse(os.path.join(d, n)))
        except OSError as e:
            problems.append("%s: cannot list: %s" % (rel, e))
            continue
        want = set(m.files)
        if names != want:
            problems.append("%s: file set differs: missing %s, unexpected %s" % (
                rel, sorted(want - names), sorted(names - want)))
        for name in sorted(want & names):
            p = os.path.join(d, name)
            try:
                st = os.stat(p)
                data = read_file(p)
            except OSError as e:
                problems.append("%s/%s: read error: %s" % (rel, name, e))
                continue
            stats["files"] = stats.get("files", 0) + 1
            stats["bytes"] = stats.get("bytes", 0) + len(data)
            if st.st_size != len(data):
                problems.append("%s/%s: st_size %d but %d bytes read" % (rel, name, st.st_size, len(data)))
            ref = m.files[name]
            if ref is None:
                stats["no_reference"] = stats.get("no_reference", 0) + 1
                continue
            if data != ref:
                problems.append(describe_mismatch("%s/%s" % (rel, name), ref, data))
    return problems


def check_stat_tool(root, folder, msgs):
    """`stat -c %s` (via find -exec) agrees with the reference sizes."""
    problems = []
    fdir = os.path.join(root, folder_path(folder))
    r = run(["find", fdir, "-type", "f", "-exec", "stat", "-c", "%s\t%n", "{}", "+"], timeout=120)
    if r.returncode != 0:
        problems.append("find/stat in %s exited %d: %s" % (folder, r.returncode, r.stderr.decode(errors="replace")[:500]))
    sizes = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        size, path = line.split("\t", 1)
        sizes[os.path.relpath(path, fdir)] = int(size)
    for uid, m in msgs.items():
        for name, ref in m.files.items():
            key = "%d/%s" % (uid, name)
            if key not in sizes:
                problems.append("%s/%s: not found by find" % (folder_path(folder), key))
            elif ref is not None and sizes[key] != len(ref):
                problems.append("%s/%s: stat -c %%s says %d, reference is %d bytes" % (
                    folder_path(folder), key, sizes[key], len(ref)))
    return problems
