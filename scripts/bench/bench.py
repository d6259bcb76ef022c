#!/usr/bin/env python3
"""imapfs benchmarks: imapfs against curl / Python imaplib on the same throwaway Dovecot, over
loopback and through scripts/netproxy.py (added latency); medians, a Markdown table, docs/benchmarks.md.
Python stdlib only; started by scripts/bench.sh, which builds the release binary and cleans up."""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import gen  # noqa: E402

MiB = 1 << 20
ALL_SCENARIOS = ["cat", "head", "ls", "find", "grep", "par", "warm", "rss", "huge", "index", "folders", "search", "rwmove",
                 "rwflags", "cpu", "findwarm", "remount-cat", "remount-ls", "remount-grep", "clock"]

# full and --quick sizes
FULL = dict(big_mib=50, par_n=8, par_mib=20, ls_msgs=10000, msgs=2000, gig_mib=1024, huge_msgs=100000,
            folders=200)
QUICK = dict(big_mib=8, par_n=8, par_mib=2, ls_msgs=1000, msgs=200, gig_mib=128, huge_msgs=5000, folders=50)


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def is_mounted(path):
    path = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].encode().decode("unicode_escape") == path:
                return True
    return False


def proc_status(pid, key):
    """kB value of a /proc/PID/status line (VmRSS, VmHWM), in bytes."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    """CPU time (user + system, all threads, including threads already gone) of a running process so
    far, in nanosecond resolution: clock_gettime on the process's CPU clock (Linux's
    MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)). /proc/PID/stat's utime + stime counts in ticks of
    10 ms, too coarse for a 20 ms re-read; it is the fallback. None once the process is gone."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def thread_cpu(pid):
    """{tid: (CPU seconds, name)} of every live thread of a process (schedstat: nanoseconds)."""
    out = {}
    base = "/proc/%d/task" % pid
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                ns = int(f.read().split()[0])
            with open("%s/%s/comm" % (base, tid)) as f:
                out[tid] = (ns / 1e9, f.read().strip())
        except (OSError, ValueError, IndexError):
            pass
    return out


def user_sys(pid):
    """(user, system) CPU seconds of a process from /proc/PID/stat (10 ms ticks: only for the split)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        hz = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / hz, int(fields[12]) / hz
    except (OSError, IndexError, ValueError):
        return (0.0, 0.0)


def run(cmd, timeout=1800, **kw):
    """subprocess.run(check=True) timed by its own clock: the CompletedProcess gains `seconds` (wall
    time from just before the fork to just after the child is reaped) and, unless stderr is a pipe,
    `rusage` (the child's and its waited-for descendants' CPU, from wait4).

    No `timeout=` anywhere on a timed path: with one, Popen.wait polls with sleeps of 1, 2, 4 ... 50
    ms, so every time lands just after ~7, 15, 31, 63, 113 ms ... Here a watchdog thread kills the
    child after `timeout`, the wait is a blocking wait4, and the clock is read right after it."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, **kw)
    killer = threading.Timer(timeout, p.kill)
    killer.daemon = True
    killer.start()
    out = err = ru = None
    try:
        if kw.get("stderr") == subprocess.PIPE:
            out, err = p.communicate()  # two pipes: its wait is a blocking waitpid too
            t1 = time.perf_counter()
        else:
            if p.stdout is not None:
                out = p.stdout.read()
                p.stdout.close()
            _, status, ru = os.wait4(p.pid, 0)
            t1 = time.perf_counter()
            p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        killer.cancel()
    if p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, cmd, out, err)
    cp = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    cp.seconds, cp.rusage = t1 - t0, ru
    return cp


def sh_timed(cmd, timeout=1800):
    """Wall time of `sh -c cmd` (raises on failure)."""
    return run(["sh", "-c", cmd], timeout=timeout, stdin=subprocess.DEVNULL).seconds


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.work)
        self.srv = os.path.join(self.work, "srv")
        self.pidsdir = os.path.join(self.work, "pids")
        os.makedirs(self.pidsdir, exist_ok=True)
        self.bin = os.path.join(REPO, "target", "release", "imapfs")
        self.rows = []
        self.notes = []
        self.proxies = {}  # link name -> (Popen, port)
        self.mount_n = 0
        self.can_drop = os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)
        self.expected = {}  # misc expectations computed while generating

    # ------------------------------------------------------------ processes

    def track(self, pid):
        open(os.path.join(self.pidsdir, str(pid)), "w").close()

    def untrack(self, pid):
        try:
            os.unlink(os.path.join(self.pidsdir, str(pid)))
        except OSError:
            pass

    def drop_caches(self):
        if self.a.no_drop_caches:
            return
        if not self.can_drop:
            if not getattr(self, "_warned_drop", False):
                self.notes.append("page cache NOT dropped (not root): cold runs are server-side warm")
                self._warned_drop = True
            return
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")

    # ------------------------------------------------------------ server

    def start_server(self):
        log("starting Dovecot in %s" % self.srv)
        os.makedirs(self.srv, exist_ok=True)
        run([os.path.join(REPO, "scripts", "test-server.sh"), "start", self.srv])
        self.env = {}
        with open(os.path.join(self.srv, "env")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    self.env[k] = v.strip("'")
        self.port = int(self.env["IMAPS_PORT"])
        self.maildir = os.path.join(self.srv, "home", self.env["IMAP_USER"], "Maildir")
        os.makedirs(self.maildir, exist_ok=True)
        st = os.stat(os.path.join(self.srv, "home"))
        self.md = gen.Maildir(self.maildir, st.st_uid, st.st_gid)
        self.md._own(os.path.join(self.srv, "home", self.env["IMAP_USER"]))
        self.md._own(self.maildir)

    def stats(self):
        """{"bytes": server bytes out, "cmds": commands, "fetch": FETCH commands} so far."""
        out = subprocess.run(["doveadm", "-c", self.env["DOVECOT_CONF"], "stats", "dump"], timeout=30,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True).stdout
        s = {"bytes": 0, "cmds": 0, "fetch": 0}
        for line in out.splitlines()[1:]:
            f = line.split("\t")
            if len(f) < 4 or f[1] != "bytes_out":
                continue
            if f[0] == "imap_bytes":
                s["cmds"], s["bytes"] = int(f[2]), int(f[3])
            elif f[0].startswith("imap_bytes_by_cmd_") and "FETCH" in f[0].upper():
                s["fetch"] += int(f[2])
        return s

    @staticmethod
    def delta(s0, s1):
        return {k: s1[k] - s0[k] for k in s0}

    # ------------------------------------------------------------ data

    def generated(self, folder, params):
        """True when `folder` already holds messages made with `params` (a reused --work dir)."""
        mark = os.path.join(self.work, "gen", folder)
        try:
            with open(mark) as f:
                return f.read() == params
        except OSError:
            return False

    def mark(self, folder, params):
        os.makedirs(os.path.join(self.work, "gen"), exist_ok=True)
        with open(os.path.join(self.work, "gen", folder), "w") as f:
            f.write(params)

    def make_folder(self, folder, specs, warm="warm"):
        """specs: list of (text_size, [attachment sizes]) for messages 0..n-1 (UIDs 1..n)."""
        params = json.dumps(specs)
        if self.generated(folder, params):
            log("%s: reusing %d messages" % (folder, len(specs)))
            return
        d = os.path.join(self.maildir, folder)
        if os.path.exists(d):
            shutil.rmtree(d)
        t0, total = time.time(), 0
        self.md.folder(folder)
        for i, (text, atts) in enumerate(specs):
            total += self.md.write(folder, i, gen.message(i, text, atts))
        log("%s: wrote %d messages, %.1f MiB, in %.1fs" % (folder, len(specs), total / MiB, time.time() - t0))
        t0 = time.time()
        r = self.peer(warm, None, folder)  # Dovecot indexes the folder and caches fields (untimed)
        log("%s: server indexed in %.1fs (%d items)" % (folder, time.time() - t0, r["items"]))
        self.mark(folder, params)

    def make_folders(self, parent, n):
        """n small folders parent/f000 ... (1-3 messages each, some read), for FOLDERS."""
        params = json.dumps(["folders", n])
        if self.generated(parent, params):
            log("%s: reusing %d folders" % (parent, n))
            return
        shutil.rmtree(os.path.join(self.maildir, parent), ignore_errors=True)
        for k in range(n):
            folder = "%s/f%03d" % (parent, k)
            self.md.folder(folder)
            for i in range(1 + k % 3):
                self.md.write(folder, i, gen.message(i, 600, []), seen=(i + k) % 2 == 0)
        self.mark(parent, params)
        log("%s: wrote %d folders" % (parent, n))

    def generate(self, sc):
        a = self.a
        if {"cat", "head", "warm", "cpu", "clock", "remount-cat"} & sc:
            self.make_folder("Big", [(3000, [a.big_mib * MiB])])
            self.big_local = os.path.join(self.work, "big-attachment.bin")
            if not os.path.exists(self.big_local) or os.path.getsize(self.big_local) != a.big_mib * MiB:
                with open(self.big_local, "wb") as f:
                    f.write(gen.attachment_bytes(0, 0, a.big_mib * MiB))
        if "par" in sc:
            self.make_folder("Par", [(2000, [a.par_mib * MiB])] * a.par_n)
        if "ls" in sc:
            self.make_folder("Ten", [(1000 + (i * 37) % 3000, gen.realistic_attachments(i, 16))
                                     for i in range(a.ls_msgs)], warm="warm-listing")
        if "ls" in sc:  # the warm ls -l reference: a local directory with as many subdirectories
            self.local_ls = os.path.join(self.work, "local-ls-%d" % a.ls_msgs)
            if not os.path.isdir(self.local_ls):
                tmp = self.local_ls + ".tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                os.makedirs(tmp)
                for i in range(1, a.ls_msgs + 1):
                    os.mkdir(os.path.join(tmp, str(i)))
                os.rename(tmp, self.local_ls)
        if {"find", "grep", "findwarm", "remount-grep"} & sc:
            self.two = [(1000 + (i * 37) % 5000, gen.realistic_attachments(i)) for i in range(a.msgs)]
            self.make_folder("Two", self.two)
        if "rss" in sc:
            cyc = [4, 12, 8, 8]
            sizes, tot, i = [], 0, 0
            while tot < a.gig_mib:
                s = min(cyc[i % 4], a.gig_mib - tot)
                sizes.append(s)
                tot += s
                i += 1
            self.make_folder("Gig", [(2000, [s * MiB]) for s in sizes])
        if {"index", "remount-ls"} & sc and "ls" not in sc:
            self.make_folder("Ten", [(1000 + (i * 37) % 3000, gen.realistic_attachments(i, 16))
                                     for i in range(a.ls_msgs)], warm="warm-listing")
        if "search" in sc and not {"ls", "index"} & sc:
            self.make_folder("Ten", [(1000 + (i * 37) % 3000, gen.realistic_attachments(i, 16))
                                     for i in range(a.ls_msgs)], warm="warm-listing")
        if {"folders", "search"} & sc:
            self.make_folders("Many", a.folders)
        if "huge" in sc:
            self.make_folder("Huge", [(800 + (i * 37) % 2000, gen.realistic_attachments(i, 8))
                                      for i in range(a.huge_msgs)], warm="warm-listing")

    # ------------------------------------------------------------ links

    def links(self):
        out = []
        if "loopback" in self.a.links:
            out.append(("loopback", self.port))
        if "proxy" in self.a.links:
            port = self.start_proxy()
            if port:
                out.append(("+%d ms each way" % self.a.delay_ms, port))
        return out

    def start_proxy(self):
        script = os.path.join(REPO, "scripts", "netproxy.py")
        if not os.path.exists(script):
            self.notes.append("scripts/netproxy.py missing: latency runs skipped")
            log("scripts/netproxy.py not found: skipping the latency runs")
            return None
        pf = os.path.join(self.work, "proxy.port")
        errf = open(os.path.join(self.work, "proxy.log"), "ab")
        p = subprocess.Popen([sys.executable, script, "--listen", "127.0.0.1:0", "--target",
                              "127.0.0.1:%d" % self.port, "--delay-ms", str(self.a.delay_ms), "--port-file", pf],
                             stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL, text=True)
        self.track(p.pid)
        line = p.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            p.kill()
            raise SystemExit("netproxy.py did not print PORT n (got %r)" % line)
        port = int(line[1])
        self.proxies[port] = p
        log("latency proxy on 127.0.0.1:%d (+%d ms each way)" % (port, self.a.delay_ms))
        return port

    def stop_proxies(self):
        for p in self.proxies.values():
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            self.untrack(p.pid)

    # ------------------------------------------------------------ imapfs

    def mount(self, port, args=()):
        self.mount_n += 1
        while os.path.exists(os.path.join(self.work, "mnt%d.log" % self.mount_n)):  # a reused work dir
            self.mount_n += 1
        mnt = os.path.join(self.work, "mnt%d" % self.mount_n)
        os.makedirs(mnt, exist_ok=True)
        logf = open(mnt + ".log", "ab")
        argv = [self.bin, "--ca-file", self.env["CA_FILE"], "-f"] + (["-d"] if self.a.debug else []) + \
            a_split(self.a.imapfs_args) + list(args) + ["imaps://%s@127.0.0.1:%d" % (self.env["IMAP_USER"], port), mnt]
        env = dict(os.environ, IMAPFS_PASSWORD=self.env["IMAP_PASS"])
        t0 = time.perf_counter()
        if self.a.debug:  # prefix every log line with the seconds since the mount started
            p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)

            def stamp(src=p.stdout, dst=logf, t0=t0):
                for line in src:
                    dst.write(b"%9.3f %s" % (time.perf_counter() - t0, line))
                    dst.flush()
            threading.Thread(target=stamp, daemon=True).start()
        else:
            p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        self.track(p.pid)
        while not is_mounted(mnt):
            if p.poll() is not None or time.perf_counter() - t0 > 60:
                raise SystemExit("imapfs did not mount (see %s.log)" % mnt)
            time.sleep(0.005)
        m = argparse.Namespace(path=mnt, proc=p, pid=p.pid, mount_s=time.perf_counter() - t0, log=mnt + ".log",
                               logf=logf, t0=t0)
        self.cur_mount = m
        return m

    def mark_log(self, what):
        """With --debug: a line in the current mount's log, on its clock, around every timed command."""
        m = getattr(self, "cur_mount", None)
        if self.a.debug and m and m.proc.poll() is None:
            m.logf.write(b"%9.3f ----- bench: %s\n" % (time.perf_counter() - m.t0, what.encode()))
            m.logf.flush()

    def unmount(self, m):
        subprocess.run(["fusermount3", "-u", m.path], timeout=30)
        try:
            m.proc.wait(20)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait(5)
            subprocess.run(["fusermount3", "-uz", m.path], timeout=30)
            self.notes.append("imapfs pid %d did not exit after fusermount3 -u (killed)" % m.pid)
        self.untrack(m.pid)
        self.cur_mount = None
        if m.proc.returncode not in (0, None):
            self.notes.append("imapfs exited with status %s (log %s)" % (m.proc.returncode, m.log))
        if not self.a.keep:
            try:
                os.rmdir(m.path)
            except OSError:
                pass

    # ------------------------------------------------------------ peers

    def peer(self, mode, port, folder):
        port = port or self.port
        out = subprocess.run([sys.executable, os.path.join(HERE, "peer.py"), mode, "127.0.0.1", str(port),
                              self.env["CA_FILE"], self.env["IMAP_USER"], folder],
                             env=dict(os.environ, IMAP_PASS=self.env["IMAP_PASS"]), timeout=3600,
                             stdout=subprocess.PIPE, check=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    def curl_cmd(self, port, folder, uid, section, out="/dev/null"):
        return ("curl -sS --fail --cacert '%s' -u '%s:%s' 'imaps://127.0.0.1:%d/%s;UID=%d;SECTION=%s' -o %s "
                "-w '%%{size_download}\\n'" % (self.env["CA_FILE"], self.env["IMAP_USER"], self.env["IMAP_PASS"],
                                                port, folder, uid, section, out))

    # ------------------------------------------------------------ measuring

    def measure(self, fn, settle=0.3):
        """(result of fn, server-stats delta). fn returns seconds or a dict with "seconds"."""
        time.sleep(settle)
        s0 = self.stats()
        self.mark_log("timed command starts")
        r = fn()
        self.mark_log("timed command done")
        time.sleep(settle)
        return r, self.delta(s0, self.stats())

    def add(self, scenario, link, imapfs=None, peer=None, target="", ok=None, ist=None, pst=None, extra=""):
        """imapfs/peer: lists of seconds; ist/pst: lists of stats deltas (median per field)."""
        def med_stats(lst):
            if not lst:
                return None
            return {k: median([d[k] for d in lst]) for k in lst[0]}
        row = dict(scenario=scenario, link=link, imapfs=imapfs or [], peer=peer or [], target=target,
                   ist=med_stats(ist), pst=med_stats(pst), extra=extra)
        ti, tp = median(row["imapfs"]), median(row["peer"])
        row["ratio"] = ti / tp if ti is not None and tp else None
        try:
            row["ok"] = bool(ok(row)) if ok else None
        except TypeError:  # a number is missing
            row["ok"] = None
        self.rows.append(row)
        log("%s [%s]: imapfs %s, peer %s, ratio %s, %s -> %s %s" % (
            scenario, link, fmt_s(ti), fmt_s(tp), fmt_r(row["ratio"]), target,
            {None: "-", True: "met", False: "MISSED"}[row["ok"]], extra))

    # ------------------------------------------------------------ scenarios

    def sc_cat_warm(self, link, port, sc):
        a, N = self.a, self.a.repeat
        cold, warm, curl, local, ist, pst, wst, warm_cpu = [], [], [], [], [], [], [], []
        cpu, curl_cpu, split, top = [], [], [], []
        path_in = "Big/1/2"
        curl_bytes = None
        for r in range(N):
            m = self.mount(port)
            self.drop_caches()

            def cold_cat():
                c0, th0, ut0 = cpu_seconds(m.pid), thread_cpu(m.pid), user_sys(m.pid)
                t = sh_timed("cat %s/%s >/dev/null" % (m.path, path_in))
                cpu.append(cpu_seconds(m.pid) - c0)  # read at once: not the settle after
                th1, ut1 = thread_cpu(m.pid), user_sys(m.pid)
                split.append((ut1[0] - ut0[0], ut1[1] - ut0[1]))
                top.append(sorted(((v - th0.get(k, (0, ""))[0], n) for k, (v, n) in th1.items()), reverse=True))
                return t
            t, d = self.measure(cold_cat)
            cold.append(t)
            ist.append(d)
            # Several warm re-reads per mount, alternating with the local cat so both see the same load.
            for k in range(10):
                sh_timed("cat %s >/dev/null" % self.big_local)  # the local copy warm
                local.append(sh_timed("cat %s >/dev/null" % self.big_local))
                c0 = cpu_seconds(m.pid)
                t, d = self.measure(lambda: sh_timed("cat %s/%s >/dev/null" % (m.path, path_in)),
                                    settle=0.3 if k == 0 else 0.02)
                warm.append(t)
                wst.append(d)
                warm_cpu.append(cpu_seconds(m.pid) - c0)
            if r == 0:
                h = hashlib.sha256()
                with open(os.path.join(m.path, path_in), "rb") as f:
                    while True:
                        b = f.read(MiB)
                        if not b:
                            break
                        h.update(b)
                want = hashlib.sha256(gen.attachment_bytes(0, 0, a.big_mib * MiB)).hexdigest()
                if h.hexdigest() != want:
                    self.notes.append("MISMATCH: %s read through imapfs differs from the generated bytes" % path_in)
            self.unmount(m)
            self.drop_caches()

            def do_curl():
                nonlocal curl_bytes
                cp = run(["sh", "-c", self.curl_cmd(port, "Big", 1, "2")], stdout=subprocess.PIPE, text=True)
                curl_bytes = int(cp.stdout.split()[-1])
                curl_cpu.append(cp.rusage.ru_utime + cp.rusage.ru_stime)
                return cp.seconds
            t, d = self.measure(do_curl)
            curl.append(t)
            pst.append(d)
        size = a.big_mib * MiB
        if "cat" in sc:
            self.add("cold `cat` of a %d MiB base64 attachment" % a.big_mib, link, cold, curl,
                     "≤ 1.1× curl", lambda r: r["ratio"] <= 1.1, ist, pst,
                     "imapfs %.0f MB/s decoded (%d B); curl %.0f MB/s, %d B encoded" % (
                         size / median(cold) / 1e6, size, curl_bytes / median(curl) / 1e6, curl_bytes))
        if "cpu" in sc:
            k = cpu.index(median(cpu)) if median(cpu) in cpu else 0
            threads = ", ".join("%.0f" % (1000 * v) for v, _ in top[k][:4] if v > 0.0005)
            self.add("imapfs CPU per decoded MiB in the cold `cat` of %d MiB (peer: curl's CPU per encoded MiB)"
                     % a.big_mib, link, cold, curl, "(reported)", None, ist, pst,
                     "imapfs CPU %.0f ms = **%.2f ms/MiB decoded** (user %.0f / sys %.0f ms; busiest threads %s ms; "
                     "runs %s); curl CPU %.0f ms = %.2f ms/MiB encoded" % (
                         1000 * median(cpu), 1000 * median(cpu) / a.big_mib, 1000 * split[k][0],
                         1000 * split[k][1], threads, " ".join("%.0f" % (1000 * c) for c in cpu),
                         1000 * median(curl_cpu), 1000 * median(curl_cpu) / (curl_bytes / MiB)))
        if "warm" in sc:
            self.add("warm re-read of the %d MiB attachment (peer: `cat` of a local file)" % a.big_mib, link,
                     warm, local, "≤ 1.2× local cat", lambda r: r["ratio"] <= 1.2, wst, None,
                     "%.0f MB/s vs %.0f MB/s; imapfs CPU during the re-read %.1f ms; %d samples each" % (
                         size / median(warm) / 1e6, size / median(local) / 1e6, 1000 * median(warm_cpu),
                         len(warm)))

    def sc_clock(self, link, port):
        """The benchmark's own clock: `sleep 0.010` and a ~10 ms warm re-read (the first MiBs of the
        big attachment) timed the old way (subprocess.run(timeout=): Popen.wait polls with sleeps of
        1, 2, 4 ... 50 ms) and the new way (run(): blocking wait4, clock read right after)."""
        def old(cmd):
            t0 = time.perf_counter()
            subprocess.run(["sh", "-c", cmd], timeout=1800, stdin=subprocess.DEVNULL, check=True)
            return time.perf_counter() - t0
        m = self.mount(port)
        run(["cat", os.path.join(m.path, "Big/1/2")], stdout=subprocess.DEVNULL)  # into the page cache
        # about 10 ms of re-read: as many MiB as the warm read does in 10 ms here
        t = median([sh_timed("cat %s/Big/1/2 >/dev/null" % m.path) for _ in range(3)])
        mib = max(1, min(self.a.big_mib, int(self.a.big_mib * 0.010 / t)))
        reread = "head -c %d %s/Big/1/2 >/dev/null" % (mib * MiB, m.path)
        for name, cmd in (("`sleep 0.010`", "sleep 0.010"), ("warm re-read of %d MiB through imapfs" % mib, reread)):
            new_t, old_t = [], []
            for _ in range(20):
                new_t.append(sh_timed(cmd))
                old_t.append(old(cmd))

            def spread(xs):
                return "%s ms" % " ".join("%.1f" % (1000 * x) for x in sorted(xs))
            self.add("clock: %s, new timer (peer: the old `timeout=` timer)" % name, link, new_t, old_t,
                     "(no quantisation)", None, None, None,
                     "new: %s; old: %s" % (spread(new_t), spread(old_t)))
        self.unmount(m)

    def sc_head(self, link, port):
        times, st = [], []
        for r in range(self.a.repeat):
            m = self.mount(port)
            run(["ls", "-l", os.path.join(m.path, "Big", "1")], stdout=subprocess.DEVNULL)
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("head -c 4096 %s/Big/1/2 >/dev/null" % m.path), settle=1.0)
            times.append(t)
            st.append(d)
            self.unmount(m)
        self.add("`head -c 4096` of the %d MiB attachment (message dir already looked up)" % self.a.big_mib,
                 link, times, None, "server sends ≤ 256 KiB, ≤ 2 FETCHes",
                 lambda r: r["ist"]["bytes"] <= 256 * 1024 and r["ist"]["fetch"] <= 2, st, None)

    def sc_ls(self, link, port):
        cold, warm, peer, ist, wst, pst, mnt, local, warm_cpu = [], [], [], [], [], [], [], [], []
        n = self.a.ls_msgs
        for r in range(self.a.repeat):
            m = self.mount(port)
            mnt.append(m.mount_s)
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("ls -l %s/Ten >/dev/null" % m.path))
            cold.append(t)
            ist.append(d)
            c0 = cpu_seconds(m.pid)
            t, d = self.measure(lambda: sh_timed("ls -l %s/Ten >/dev/null" % m.path), settle=0.05)
            warm_cpu.append(cpu_seconds(m.pid) - c0)
            warm.append(t)
            wst.append(d)
            sh_timed("ls -l %s >/dev/null" % self.local_ls)
            local.append(sh_timed("ls -l %s >/dev/null" % self.local_ls))
            cnt = len(os.listdir(os.path.join(m.path, "Ten")))
            if cnt != n:
                self.notes.append("ls Ten: %d entries, expected %d" % (cnt, n))
            self.unmount(m)
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("listing", port, "Ten"))
            peer.append(res["seconds"])
            pst.append(d)
        self.add("`ls -l` of a %d-message folder, cold" % n, link, cold, peer, "≤ 1.5× peer",
                 lambda r: r["ratio"] <= 1.5, ist, pst, "imapfs mount itself took %s" % fmt_s(median(mnt)))
        self.add("`ls -l` of a %d-message folder, warm (peer: `ls -l` of a local dir of %d subdirs)" % (n, n),
                 link, warm, local, "≤ 100 ms", lambda r: median(r["imapfs"]) <= 0.1, wst, None,
                 "imapfs CPU during the warm ls %.0f ms" % (1000 * median(warm_cpu)))

    def sc_find(self, link, port, proxied):
        times, peer, ist, pst = [], [], [], []
        out = os.path.join(self.work, "find.out")
        for r in range(self.a.repeat):
            m = self.mount(port)
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("cd %s && find Two -type f -printf '%%P %%s\\n' >%s" % (m.path, out)))
            times.append(t)
            ist.append(d)
            self.unmount(m)
            if r == 0:
                self.check_find(out)
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("structure", port, "Two"))
            peer.append(res["seconds"])
            pst.append(d)
        self.add("`find -type f -printf '%%s'` over %d messages, cold" % self.a.msgs, link, times, peer,
                 "≤ 3× peer at 20 ms RTT" if proxied else "(target is at 20 ms RTT)",
                 (lambda r: r["ratio"] <= 3) if proxied else None, ist, pst)

    def sc_findwarm(self, link, port, proxied):
        """`find -printf %s` on a fresh mount with the server's page cache warm (the cold run just
        before warmed it) against one BODYSTRUCTURE FETCH, warm too; the cold-server pair beside it."""
        cold, warm, pcold, pwarm, ist, pst, cst = [], [], [], [], [], [], []
        out = os.path.join(self.work, "find.out")
        cmd = "cd %s && find Two -type f -printf '%%P %%s\\n' >%s"
        for r in range(self.a.repeat):
            self.drop_caches()
            m = self.mount(port)
            t, d = self.measure(lambda: sh_timed(cmd % (m.path, out)))
            cold.append(t)
            cst.append(d)
            self.unmount(m)
            m = self.mount(port)  # imapfs cold, the server warm
            t, d = self.measure(lambda: sh_timed(cmd % (m.path, out)))
            warm.append(t)
            ist.append(d)
            self.unmount(m)
            if r == 0:
                self.check_find(out)
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("structure", port, "Two"))
            pcold.append(res["seconds"])
            res, d = self.measure(lambda: self.peer("structure", port, "Two"))
            pwarm.append(res["seconds"])
            pst.append(d)
        rc = median(cold) / median(pcold)
        self.add("`find -type f -printf '%%s'` over %d messages, server page cache warm" % self.a.msgs, link, warm,
                 pwarm, "≤ 3× peer at 20 ms RTT" if proxied else "(target is at 20 ms RTT)",
                 (lambda r: r["ratio"] <= 3) if proxied else None, ist, pst,
                 "server cold (page cache dropped): imapfs %s, peer %s, %.2f× (imapfs server bytes %s)" % (
                     fmt_s(median(cold)), fmt_s(median(pcold)), rc, fmt_st({k: median([x[k] for x in cst])
                                                                           for k in cst[0]})))

    def check_find(self, out):
        sizes = {}
        with open(out) as f:
            for line in f:
                p, s = line.rsplit(" ", 1)
                if p.rsplit("/", 1)[-1].isdigit():  # parts; not HEADER, FLAGS, n.MIME ... beside them
                    sizes[p] = int(s)
        want_files = sum(1 + len(atts) for _, atts in self.two)  # the text part and the attachments
        bad = 0
        for i, (_, atts) in enumerate(self.two):
            for k, sz in enumerate(atts):
                if sizes.get("%d/%d" % (i + 1, k + 2)) != sz:
                    bad += 1
        if len(sizes) != want_files or bad:
            self.notes.append("find Two: %d part files (expected %d), %d attachment sizes wrong" % (
                len(sizes), want_files, bad))

    def sc_grep(self, link, port, proxied):
        times, peer, ist, pst = [], [], [], []
        out = os.path.join(self.work, "grep.out")
        want = sum(1 for i in range(self.a.msgs) if i % 10 == 3)
        for r in range(self.a.repeat):
            m = self.mount(port)
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("cd %s && grep -l needle Two/*/1 >%s; [ $? -le 1 ]" % (m.path, out)))
            times.append(t)
            ist.append(d)
            self.unmount(m)
            got = sum(1 for _ in open(out))
            if got != want:
                self.notes.append("grep: imapfs found %d messages, expected %d" % (got, want))
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("grep", port, "Two"))
            if res["items"] != want:
                self.notes.append("grep: peer found %d messages, expected %d" % (res["items"], want))
            peer.append(res["seconds"])
            pst.append(d)
        self.add("`grep -l needle Folder/*/1` over %d messages, cold" % self.a.msgs, link, times, peer,
                 "≥ 5× faster than peer at 20 ms RTT" if proxied else "(target is at 20 ms RTT)",
                 (lambda r: r["ratio"] <= 0.2) if proxied else None, ist, pst)

    def sc_par(self, link, port):
        a = self.a
        times, peer, ist, pst = [], [], [], []
        for r in range(a.repeat):
            m = self.mount(port)
            self.drop_caches()
            cmd = " ".join("cat %s/Par/%d/2 >/dev/null &" % (m.path, u) for u in range(1, a.par_n + 1)) + " wait"
            t, d = self.measure(lambda: sh_timed(cmd))
            times.append(t)
            ist.append(d)
            self.unmount(m)
            self.drop_caches()
            cmd = " ".join("%s >/dev/null &" % self.curl_cmd(port, "Par", u, "2") for u in range(1, a.par_n + 1)) + " wait"
            t, d = self.measure(lambda: sh_timed(cmd))
            peer.append(t)
            pst.append(d)
        tot = a.par_n * a.par_mib * MiB
        self.add("%d parallel `cat`s of different %d MiB attachments" % (a.par_n, a.par_mib), link, times, peer,
                 "≥ 0.7× curls' throughput (ratio ≤ 1.43)", lambda r: r["ratio"] <= 1 / 0.7, ist, pst,
                 "imapfs %.0f MB/s decoded; curls %.0f MB/s decoded-equivalent" % (
                     tot / median(times) / 1e6, tot / median(peer) / 1e6))

    def sc_rss(self, link, port):
        times, hwm, ist = [], [], []
        for r in range(self.a.repeat):
            m = self.mount(port, ["--cache-size", "64M"])
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("find %s/Gig -type f -exec cat {} + >/dev/null" % m.path))
            times.append(t)
            ist.append(d)
            hwm.append(proc_status(m.pid, "VmHWM"))
            self.unmount(m)
        peak = median(hwm)
        self.add("read every file of a %d MiB folder, `--cache-size 64M`: peak RSS" % self.a.gig_mib, link, times,
                 None, "VmHWM ≤ 104 MiB", lambda r: peak <= 104 * MiB, ist, None,
                 "VmHWM %.1f MiB (runs: %s); %.0f MB/s" % (peak / MiB, ", ".join("%.1f" % (h / MiB) for h in hwm),
                                                          self.a.gig_mib * MiB / median(times) / 1e6))

    def sc_huge(self, link, port):
        n = self.a.huge_msgs
        times, peer, ist, pst, per, rss = [], [], [], [], [], []
        for r in range(self.a.repeat):
            m = self.mount(port)
            time.sleep(0.2)
            r0 = proc_status(m.pid, "VmRSS")
            self.drop_caches()
            cnt = []

            def do():
                cp = run(["sh", "-c", "ls %s/Huge | wc -l" % m.path], stdout=subprocess.PIPE, text=True)
                cnt.append(int(cp.stdout))
                return cp.seconds
            t, d = self.measure(do)
            times.append(t)
            ist.append(d)
            r1 = proc_status(m.pid, "VmRSS")
            rss.append(r1)
            per.append((r1 - r0) / n)
            if cnt[0] != n:
                self.notes.append("ls Huge: %d entries, expected %d" % (cnt[0], n))
            self.unmount(m)
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("listing", port, "Huge"))
            peer.append(res["seconds"])
            pst.append(d)
        self.add("`ls \\| wc -l` of a %d-message folder, cold (peer: imaplib listing FETCH)" % n, link, times, peer,
                 "≤ 300 B metadata/message (RSS delta)", lambda r: median(per) <= 300, ist, pst,
                 "RSS after %.1f MiB; %.0f B/message" % (median(rss) / MiB, median(per)))

    def sc_index(self, link, port, sc):
        """`cat Folder/INDEX` (the browser's folder summary) against the seed's single FETCH."""
        n = self.a.ls_msgs
        cold, warm, peer, ist, wst, pst = [], [], [], [], [], []
        out = os.path.join(self.work, "index.out")
        for r in range(self.a.repeat):
            m = self.mount(port)
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("cat %s/Ten/INDEX >%s" % (m.path, out)))
            cold.append(t)
            ist.append(d)
            t, d = self.measure(lambda: sh_timed("cat %s/Ten/INDEX >/dev/null" % m.path), settle=0.05)
            warm.append(t)
            wst.append(d)
            self.unmount(m)
            lines = sum(1 for _ in open(out, "rb"))
            if lines != n:
                self.notes.append("cat Ten/INDEX: %d lines, expected %d" % (lines, n))
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("index", port, "Ten"))
            peer.append(res["seconds"])
            pst.append(d)
        self.add("`cat Folder/INDEX` of a %d-message folder, cold (peer: one summary FETCH)" % n, link, cold,
                 peer, "≤ 1.3× peer", lambda r: r["ratio"] <= 1.3, ist, pst)
        self.add("`cat Folder/INDEX` of a %d-message folder, warm" % n, link, warm, None, "≤ 50 ms",
                 lambda r: median(r["imapfs"]) <= 0.05, wst, None)
        if "huge" not in sc:
            return
        hn = self.a.huge_msgs
        times, per, ist = [], [], []
        for r in range(self.a.repeat):
            m = self.mount(port)
            time.sleep(0.2)
            r0 = proc_status(m.pid, "VmRSS")
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("cat %s/Huge/INDEX | wc -l >%s" % (m.path, out)))
            times.append(t)
            ist.append(d)
            per.append((proc_status(m.pid, "VmHWM") - r0) / hn)
            self.unmount(m)
            got = int(open(out).read().strip() or 0)
            if got != hn:
                self.notes.append("cat Huge/INDEX: %d lines, expected %d" % (got, hn))
        self.add("`cat Folder/INDEX` of a %d-message folder: memory" % hn, link, times, None,
                 "≤ 300 B/message (peak RSS growth)", lambda r: median(per) <= 300, ist, None,
                 "%.0f B/message" % median(per))

    def sc_folders(self, link, port):
        """`cat FOLDERS` against LIST + STATUS of every folder in imaplib."""
        times, peer, ist, pst = [], [], [], []
        out = os.path.join(self.work, "folders.out")
        for r in range(self.a.repeat):
            m = self.mount(port)
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("cat %s/FOLDERS >%s" % (m.path, out)))
            times.append(t)
            ist.append(d)
            self.unmount(m)
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("folders", port, "INBOX"))
            peer.append(res["seconds"])
            pst.append(d)
            lines = sum(1 for _ in open(out, "rb"))
            if lines != res["items"]:
                self.notes.append("cat FOLDERS: %d lines, the peer listed %d folders" % (lines, res["items"]))
        self.add("`cat FOLDERS` over %d+ folders, cold (peer: LIST + STATUS each)" % self.a.folders, link, times,
                 peer, "≤ 1.3× peer, ≤ 2 round trips", lambda r: r["ratio"] <= 1.3, ist, pst)

    def sc_search(self, link, port, proxied):
        """SEARCH directories against imaplib's UID SEARCH, and against grep through the mount."""
        n = self.a.ls_msgs
        want = sum(1 for i in range(n) if i % 10 == 3)
        times, peer, ist, pst, grep_t = [], [], [], [], []
        out = os.path.join(self.work, "search.out")
        for r in range(self.a.repeat):
            m = self.mount(port)
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("ls '%s/Ten/SEARCH/TEXT needle' >%s" % (m.path, out)))
            times.append(t)
            ist.append(d)
            got = sum(1 for line in open(out) if line.strip().isdigit())
            if got != want:
                self.notes.append("ls Ten/SEARCH/TEXT needle: %d matches, expected %d" % (got, want))
            self.unmount(m)
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("search", port, "Ten"))
            peer.append(res["seconds"])
            pst.append(d)
            if res["items"] != want:
                self.notes.append("search peer: %d matches, expected %d" % (res["items"], want))
        if proxied:  # the grep the search replaces: once, it takes a while
            m = self.mount(port)
            self.drop_caches()
            grep_t.append(sh_timed("cd %s && grep -l needle Ten/*/1 >/dev/null; [ $? -le 1 ]" % m.path))
            self.unmount(m)
        self.add("`ls Folder/SEARCH/'TEXT needle'` over %d messages, cold (peer: one UID SEARCH)" % n, link, times,
                 peer, "≤ 1.2× peer", lambda r: r["ratio"] <= 1.2, ist, pst,
                 ("`grep -l needle Ten/*/1` through the mount: %s (%.0f× the search)" % (
                     fmt_s(grep_t[0]), grep_t[0] / median(times))) if grep_t else "")
        times, peer, ist, pst = [], [], [], []
        for r in range(self.a.repeat):
            m = self.mount(port)
            self.drop_caches()
            t, d = self.measure(lambda: sh_timed("ls %s/SEARCH/UNSEEN >%s" % (m.path, out)))
            times.append(t)
            ist.append(d)
            self.unmount(m)
            self.drop_caches()
            res, d = self.measure(lambda: self.peer("search-all", port, "INBOX"))
            peer.append(res["seconds"])
            pst.append(d)
            got = sum(1 for _ in open(out))
            if got != res["items"]:
                self.notes.append("ls SEARCH/UNSEEN: %d folders, the peer found %d" % (got, res["items"]))
        self.add("`ls MOUNT/SEARCH/UNSEEN` over %d+ folders, cold (peer: UID SEARCH UNSEEN in each, in turn)"
                 % self.a.folders, link, times, peer, "≤ 2× peer", lambda r: r["ratio"] <= 2, ist, pst)

    # ------------------------------------------------------------ remount (--cache-dir)

    def has_cache_dir(self):
        if not hasattr(self, "_has_cache_dir"):
            cp = subprocess.run([self.bin, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=30)
            self._has_cache_dir = "--cache-dir" in cp.stdout
        return self._has_cache_dir

    def sc_remount(self, link, port, what):
        """Mount with --cache-dir DIR, read, unmount, mount again with the same DIR and time the same read
        (the second mount's server bytes counted from before it mounts). The host page cache is not dropped
        between the mounts: the references (a local `cat`, imapfs's own warm `ls -l` / `grep`) are warm
        too. cat: against a local `cat` of the same bytes; ls: against the warm `ls -l` on the first
        mount; grep: against the warm `grep` on the first mount."""
        names = {"cat": "`cat` of the %d MiB attachment after a remount with `--cache-dir` (peer: local `cat`)"
                        % self.a.big_mib,
                 "ls": "`ls -l` of a %d-message folder after a remount with `--cache-dir` (peer: warm `ls -l`)"
                       % self.a.ls_msgs,
                 "grep": "`grep -l needle Folder/*/1` over %d messages after a remount with `--cache-dir` "
                         "(peer: warm grep)" % self.a.msgs}
        targets = {"cat": ("≤ 1.5× local cat, < 64 KiB sent",
                           lambda r: r["ratio"] <= 1.5 and r["ist"]["bytes"] < 64 * 1024),
                   "ls": ("≤ 1.3× warm ls -l", lambda r: r["ratio"] <= 1.3),
                   "grep": ("≤ 2× warm grep", lambda r: r["ratio"] <= 2)}
        if not self.has_cache_dir():
            log("remount-%s: skipped: no --cache-dir" % what)
            print("remount-%s: skipped: no --cache-dir" % what, flush=True)
            self.add(names[what], link, None, None, targets[what][0], None, None, None, "skipped: no --cache-dir")
            return
        if what == "cat":
            cmd = "cat %s/Big/1/2 >/dev/null"
            want = hashlib.sha256(gen.attachment_bytes(0, 0, self.a.big_mib * MiB)).hexdigest()
        elif what == "ls":
            cmd = "ls -l %s/Ten >/dev/null"
        else:
            cmd = "cd %s && grep -l needle Two/*/1 >/dev/null; [ $? -le 1 ]"
        times, ref, first, ist = [], [], [], []
        for r in range(self.a.repeat):
            cdir = os.path.join(self.work, "cache-dir-%s" % what)
            shutil.rmtree(cdir, ignore_errors=True)
            os.makedirs(cdir, mode=0o700)
            self.drop_caches()
            try:
                m = self.mount(port, ["--cache-dir", cdir])
            except SystemExit as e:
                self.notes.append("remount-%s: mounting with --cache-dir failed: %s" % (what, e))
                self.add(names[what], link, None, None, targets[what][0], None, None, None,
                         "skipped: mount with --cache-dir failed")
                return
            first.append(sh_timed(cmd % m.path))
            if what == "cat":
                sh_timed("cat %s >/dev/null" % self.big_local)
                for _ in range(3):
                    ref.append(sh_timed("cat %s >/dev/null" % self.big_local))
            else:
                ref.append(self.measure(lambda: sh_timed(cmd % m.path), settle=0.05)[0])
            self.unmount(m)
            time.sleep(0.3)
            s0 = self.stats()
            m = self.mount(port, ["--cache-dir", cdir])
            t = sh_timed(cmd % m.path)
            time.sleep(0.3)
            ist.append(self.delta(s0, self.stats()))
            times.append(t)
            if what == "cat" and r == 0:
                got = hashlib.sha256(open(os.path.join(m.path, "Big/1/2"), "rb").read()).hexdigest()
                if got != want:
                    self.notes.append("MISMATCH: Big/1/2 after a remount with --cache-dir differs from the "
                                      "generated bytes")
            self.unmount(m)
        self.add(names[what], link, times, ref, targets[what][0], targets[what][1], ist, None,
                 "first mount's read %s; server bytes are the second mount's, its login and resync included" %
                 fmt_s(median(first)))

    # ------------------------------------------------------------ read-write (--read-write)

    def fresh_folder(self, folder, n):
        """A folder rewritten from scratch with n small unread messages (UIDs 1..n), indexed by the
        server before anything is timed (a change-scenario run changes it)."""
        shutil.rmtree(os.path.join(self.maildir, folder), ignore_errors=True)
        self.md.folder(folder)
        for i in range(n):
            self.md.write(folder, i, gen.message(i, 600, []))
        self.peer("warm-listing", None, folder)

    def maildir_count(self, folder, seen=False):
        n = 0
        for sub in ("new", "cur"):
            for name in os.listdir(os.path.join(self.maildir, folder, sub)):
                n += not seen or "S" in name.rsplit(":2,", 1)[-1]
        return n

    def sc_rw(self, link, port, what):
        """`mv RwMove/{1..n} RwArchive/` (peer: UID MOVE per message), or `echo '+\\Seen' > FLAGS` of n
        messages (peer: UID STORE +FLAGS.SILENT per message), on a fresh --read-write mount (its listing
        of the folder included)."""
        n = 500
        src = "RwMove" if what == "move" else "RwFlags"
        times, peer, ist, pst = [], [], [], []
        for r in range(self.a.repeat):
            for who in ("imapfs", "peer"):
                self.fresh_folder(src, n)
                if what == "move":
                    self.fresh_folder("RwArchive", 0)
                if who == "peer":
                    res, d = self.measure(lambda: self.peer(what, port, src))
                    peer.append(res["seconds"])
                    pst.append(d)
                else:
                    m = self.mount(port, ["--read-write"])
                    cmd = ("cd '%s/%s' && mv $(seq 1 %d) ../RwArchive/" % (m.path, src, n) if what == "move" else
                           "cd '%s/%s' && for u in $(seq 1 %d); do echo '+\\Seen' > $u/FLAGS; done"
                           % (m.path, src, n))
                    t, d = self.measure(lambda: sh_timed(cmd))
                    times.append(t)
                    ist.append(d)
                    self.unmount(m)
                got = self.maildir_count("RwArchive") if what == "move" else self.maildir_count(src, seen=True)
                if got != n:
                    self.notes.append("%s by %s: %d of %d messages done" % (what, who, got, n))
        if what == "move":
            name = "`mv RwMove/{1..%d} RwArchive/`, --read-write (peer: UID MOVE per message)" % n
        else:
            name = "`echo '+\\Seen' > N/FLAGS` for %d messages, --read-write (peer: UID STORE per message)" % n
        self.add(name, link, times, peer, "≤ 1.5× peer", lambda r: r["ratio"] <= 1.5, ist, pst)

    # ------------------------------------------------------------ report

    def report(self, t_start, load_start):
        a = self.a
        head = ("| scenario | link | imapfs | peer | ratio | target | met | imapfs: server bytes / cmds (FETCH) | "
                "peer: server bytes / cmds (FETCH) | notes |\n|---|---|---|---|---|---|---|---|---|---|\n")
        lines = []
        order = []
        for r in self.rows:
            key = r["scenario"].split(",")[0]
            if key not in order:
                order.append(key)
        self.rows.sort(key=lambda r: order.index(r["scenario"].split(",")[0]))
        for r in self.rows:
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["scenario"], r["link"], fmt_s(median(r["imapfs"])), fmt_s(median(r["peer"])), fmt_r(r["ratio"]),
                r["target"], {None: "–", True: "yes", False: "**no**"}[r["ok"]], fmt_st(r["ist"]), fmt_st(r["pst"]),
                r["extra"]))
        table = head + "\n".join(lines) + "\n"
        samples = "\n".join("- %s [%s]: imapfs %s; peer %s" % (
            r["scenario"], r["link"], " ".join("%.3f" % x for x in r["imapfs"]) or "–",
            " ".join("%.3f" % x for x in r["peer"]) or "–") for r in self.rows)
        try:
            commit = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], stdout=subprocess.PIPE,
                                    text=True, timeout=10).stdout.strip()
        except Exception:
            commit = "?"
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except Exception:
            pass
        dv = subprocess.run(["dovecot", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
        cv = " ".join(subprocess.run(["curl", "--version"], stdout=subprocess.PIPE, text=True).stdout.split()[:2])
        cmdline = " ".join(["scripts/bench.sh"] + a.orig_args)
        facts = (
            "- command: `%s` (%s, repeat %d, medians shown)\n"
            "- date: %s; duration %.1f min\n"
            "- machine: %s, nproc %d, %s; load average at start %s, at end %s (shared with other builds)\n"
            "- imapfs %s (release build); %s; %s; Python %s\n"
            "- sizes: big %d MiB, parallel %d × %d MiB, ls %d messages, find/grep %d messages, RSS folder %d MiB, "
            "huge %d messages; latency link: scripts/netproxy.py --delay-ms %d (RTT +%d ms)\n" % (
                cmdline, "quick" if a.quick else "full", a.repeat,
                datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), (time.time() - t_start) / 60,
                cpu, os.cpu_count(), platform.release(), load_start, loadavg(), commit, "Dovecot " + dv.split()[0], cv, platform.python_version(), a.big_mib, a.par_n, a.par_mib, a.ls_msgs, a.msgs,
                a.gig_mib, a.huge_msgs, a.delay_ms, 2 * a.delay_ms))
        notes = "".join("- %s\n" % n for n in self.notes) or "- none\n"
        doc = DOC_TEMPLATE.format(facts=facts, table=table, samples=samples, notes=notes)
        print("\n" + table)
        if self.notes:
            print("notes:\n" + notes)
        if a.out != "-":
            out = a.out if os.path.isabs(a.out) else os.path.join(REPO, a.out)
            try:  # a hand-written "## Observations" section at the end survives a rerun
                with open(out) as f:
                    old = f.read()
                k = old.find("\n## Observations")
                if k >= 0:
                    doc = doc.rstrip("\n") + "\n\n" + old[k + 1:]
            except OSError:
                pass
            with open(out, "w") as f:
                f.write(doc)
            log("wrote %s" % out)


DOC_TEMPLATE = """# imapfs benchmarks

Produced by `scripts/bench.sh` (rerun it to refresh this file). Every run uses a throwaway Dovecot
(`scripts/test-server.sh`) on 127.0.0.1 filled with deterministic generated messages, once directly
and once through `scripts/netproxy.py` adding latency in each direction. Times are wall-clock
medians of the repeats; "ratio" is imapfs time / peer time (lower is better for imapfs).

{facts}
{table}
What is timed:

- **clock**: a command's time runs from just before its fork to just after a blocking `wait4` reaps it
  (no polling: `subprocess.run(timeout=…)` polled with sleeps of up to 50 ms and quantised every time);
  imapfs's CPU time is read from its process CPU clock (nanoseconds, all threads).
- **imapfs**: the shell command alone (`cat`, `ls -l`, `find`, `grep`, ...) on a mount made for that
  repeat (a fresh imapfs process, so nothing of it is cached; it has already logged in, which the
  mount does). "Cold" runs also drop the page cache first (`echo 3 > /proc/sys/vm/drop_caches`),
  which makes the server read its maildir from disk too. The warm `ls -l` and the warm re-read follow
  the cold run on the same mount.
- **curl**: the whole `curl` process: connect, TLS, LOGIN, SELECT and `UID FETCH n BODY[2]`; it
  downloads the *encoded* (base64) section, about 1.35× the decoded bytes imapfs delivers.
- **imaplib peers** (`scripts/bench/peer.py`): from before the TCP connect to the last answer:
  connect, TLS, LOGIN, EXAMINE and the FETCH(es); Python start-up and LOGOUT are not included.
- **server bytes / cmds (FETCH)**: deltas of `doveadm stats dump` (metric `imap_bytes`: bytes the
  server sent for finished IMAP commands, number of commands; FETCH = `FETCH`/`UID FETCH` commands),
  medians over the repeats. LOGIN and the TLS handshake are not IMAP commands there.
- Peak RSS is `VmHWM` of the imapfs process after the run; metadata per message is the growth of
  `VmRSS` across the `ls` divided by the number of messages.

Messages: multipart/mixed with a text part (1–6 KB, every 4th quoted-printable, "needle" in every
10th) and 0–2 base64 attachments (76-character lines, CRLF; 1 KiB–1 MiB in the find/grep folder,
≤ 16 KiB in the listing folders), generated by `scripts/bench/gen.py` straight into the maildir.

All samples (seconds):

{samples}

Notes from the run:

{notes}"""


def a_split(s):
    import shlex
    return shlex.split(s)


def fmt_s(x):
    if x is None:
        return "–"
    return "%.0f ms" % (x * 1000) if x < 1 else "%.2f s" % x


def fmt_r(x):
    return "–" if x is None else "%.2f×" % x


def fmt_b(n):
    if n >= 10 * MiB:
        return "%.1f MiB" % (n / MiB)
    if n >= 10 * 1024:
        return "%.0f KiB" % (n / 1024)
    return "%d B" % n


def fmt_st(s):
    if not s:
        return "–"
    return "%s / %d (%d)" % (fmt_b(s["bytes"]), s["cmds"], s["fetch"])


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench.sh", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run of a few minutes")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                    help="comma-separated subset of %s (default: all)" % ",".join(ALL_SCENARIOS))
    ap.add_argument("--links", default="loopback,proxy", help="loopback,proxy (default both)")
    ap.add_argument("--delay-ms", type=int, default=10, help="latency added each way by the proxy (default 10)")
    ap.add_argument("--repeat", type=int, default=3, help="repeats per measurement; medians reported (default 3)")
    ap.add_argument("--out", default="docs/benchmarks.md", help="report file ('-': only print)")
    ap.add_argument("--no-drop-caches", action="store_true", help="do not drop the page cache before cold runs")
    ap.add_argument("--imapfs-args", default="", help="extra imapfs options for every mount, e.g. "
                    "'--connections 8' (the RSS scenario adds --cache-size 64M after them)")
    ap.add_argument("--debug", action="store_true", help="mount with -d (logs in the work dir; use with --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (server, data, imapfs logs); "
                    "with BENCH_WORK=DIR set, a later run reuses the generated messages")
    for k, v in FULL.items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None,
                        help="default %d (--quick: %d)" % (v, QUICK[k]))
    a = ap.parse_args()
    a.orig_args = sys.argv[1:]
    a.work = os.environ.get("BENCH_WORK")
    if not a.work:
        ap.error("run me through scripts/bench.sh (BENCH_WORK unset)")
    a.keep = a.keep or os.environ.get("BENCH_KEEP") == "1"
    sizes = QUICK if a.quick else FULL
    for k, v in sizes.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    sc = set(s.strip() for s in a.scenarios.split(",") if s.strip())
    bad = sc - set(ALL_SCENARIOS)
    if bad:
        ap.error("unknown scenario(s): %s" % ", ".join(sorted(bad)))
    t_start, load_start = time.time(), loadavg()
    b = Bench(a)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        b.start_server()
        b.generate(sc)
        for link, port in b.links():
            proxied = port != b.port
            log("=== link: %s (port %d), load %s" % (link, port, loadavg()))
            if "clock" in sc:
                b.sc_clock(link, port)
            if {"cat", "warm", "cpu"} & sc:
                b.sc_cat_warm(link, port, sc)
            if "head" in sc:
                b.sc_head(link, port)
            if "ls" in sc:
                b.sc_ls(link, port)
            if "find" in sc:
                b.sc_find(link, port, proxied)
            if "grep" in sc:
                b.sc_grep(link, port, proxied)
            if "par" in sc:
                b.sc_par(link, port)
            if "rss" in sc:
                b.sc_rss(link, port)
            if "huge" in sc:
                b.sc_huge(link, port)
            if "index" in sc:
                b.sc_index(link, port, sc)
            if "folders" in sc:
                b.sc_folders(link, port)
            if "search" in sc:
                b.sc_search(link, port, proxied)
            if "rwmove" in sc:
                b.sc_rw(link, port, "move")
            if "rwflags" in sc:
                b.sc_rw(link, port, "seen")
            if "findwarm" in sc:
                b.sc_findwarm(link, port, proxied)
            for what in ("cat", "ls", "grep"):
                if "remount-" + what in sc:
                    b.sc_remount(link, port, what)
        b.report(t_start, load_start)
    finally:
        b.stop_proxies()


if __name__ == "__main__":
    main()
