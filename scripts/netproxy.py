#!/usr/bin/env python3
"""A loopback TCP proxy with added latency and injectable faults, for imapfs tests and benchmarks.

usage: netproxy.py --listen 127.0.0.1:0 --target 127.0.0.1:PORT [--delay-ms D] [--port-file FILE]
                   [--control FILE] [--stats FILE] [--mode MODE] [--cut-bytes N] [--cut-scope SCOPE]
                   [--max-conns N] [--max-queue BYTES]
       netproxy.py --selftest

Prints `PORT <n>` as its first line on stdout (and writes <n> to --port-file), then forwards every
accepted connection to --target until killed (SIGTERM/SIGINT -> exit 0). Only loopback addresses
(127.0.0.0/8) are accepted for --listen and --target.

Latency: --delay-ms D forwards each chunk D ms after it was received, in each direction (RTT grows by
2*D), without limiting throughput: every direction of every connection has a reader thread that
queues (receive time, bytes) and a writer thread that sends each chunk when it is due, in order.
Memory is bounded: a reader stops reading while its queue holds --max-queue bytes (default 16 MiB),
so TCP flow control pushes back on the sender.

Modes (at start from --mode, or at runtime from the --control JSON file, re-read when it changes):
  pass              forward everything (default)
  stall             hold server->client data on every connection (current and new) until the mode
                    changes; client->server still flows
  refuse            accept new connections and close them at once; existing connections keep working
  cut_after_bytes   cut a connection (abortive close, RST, of both sides) once the server has sent
                    it `bytes` bytes counted from the moment the mode was set (new connections count
                    from 0). `scope`:
                      "once"     (default) the first connection, existing or new, to reach the count
                                 is cut, then the mode goes back to pass by itself
                      "new"      every connection accepted from now on is cut after `bytes`
                      "all"      every connection, existing and new, is cut after `bytes` (counted
                                 from the moment the mode was set)
Control file keys (all optional): {"mode": ..., "bytes": N, "scope": ..., "delay_ms": D,
"target": "127.0.0.1:PORT"}. A key that is absent keeps its current value, except that writing a
control file always re-arms a cut mode. `target` redirects NEW connections (e.g. to a restarted
server on another port). Write the file atomically (write a temp file, rename it over) — see
write_control() below; a file that is not valid JSON is ignored (logged) until it changes again.

Counters: --stats FILE is rewritten (atomically) about every 0.2 s when something changed, and on
SIGUSR1 the counters are printed on stderr as one JSON line:
  {"connections": accepted, "active": open now, "refused": closed at once (refuse mode or over
   --max-conns), "cuts": connections cut, "bytes_c2s": ..., "bytes_s2c": ..., "mode": ...,
   "delay_ms": ..., "target": ..., "control_loads": ..., "queued_s2c": held bytes now}

Threads: 4 per connection plus 2; --max-conns (default 64) bounds them (more connections are refused).
"""
import argparse
import collections
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

CHUNK = 256 * 1024
SOCKBUF = 4 * 1024 * 1024


def log(msg):
    print("netproxy: " + msg, file=sys.stderr, flush=True)


def parse_addr(s, what):
    host, sep, port = s.rpartition(":")
    if not sep:
        raise ValueError("%s: expected HOST:PORT, got %r" % (what, s))
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("%s: %r is not an IP address (only loopback addresses are allowed)" % (what, host))
    if not (ip.version == 4 and ip in ipaddress.ip_network("127.0.0.0/8")):
        raise ValueError("%s: %s is not a loopback address (127.0.0.0/8)" % (what, host))
    return host, int(port)


def write_control(path, **settings):
    """Atomically (re)write a control file: write_control(p, mode="stall"). Usable by tests."""
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "w") as f:
        json.dump(settings, f)
    os.replace(tmp, path)


def _reset(sock):
    """Close with a TCP reset (RST), as a refusing or crashing server would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _tune(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKBUF)
        except OSError:
            pass


class Direction:
    """One direction of a connection: a bounded queue of (received at, bytes), filled by a reader thread
    and drained by a writer thread that sends each chunk when it is due."""

    def __init__(self, conn, src, dst, s2c):
        self.conn, self.src, self.dst, self.s2c = conn, src, dst, s2c
        self.q = collections.deque()
        self.qbytes = 0
        self.eof = False
        self.cv = threading.Condition()
        self.sent = 0  # bytes forwarded

    def reader(self):
        p = self.conn.proxy
        try:
            while not self.conn.dead:
                with self.cv:
                    while self.qbytes >= p.max_queue and not self.conn.dead:
                        self.cv.wait(0.5)
                if self.conn.dead:
                    return
                try:
                    data = self.src.recv(CHUNK)
                except OSError:
                    data = None
                if not data:
                    with self.cv:
                        self.eof = True
                        self.cv.notify_all()
                    if data is None:
                        self.conn.abort("recv error")
                    return
                with self.cv:
                    self.q.append((time.monotonic(), data))
                    self.qbytes += len(data)
                    self.cv.notify_all()
                with p.lock:
                    if self.s2c:
                        p.stats["queued_s2c"] += len(data)
        finally:
            self.conn.thread_done()

    def writer(self):
        p = self.conn.proxy
        try:
            while True:
                with self.cv:
                    while True:
                        if self.conn.dead:
                            return
                        if self.q and not (self.s2c and p.mode == "stall"):
                            due = self.q[0][0] + p.delay_ms / 1000.0
                            now = time.monotonic()
                            if now >= due:
                                t, data = self.q.popleft()
                                self.qbytes -= len(data)
                                self.cv.notify_all()
                                break
                            self.cv.wait(due - now)
                        elif not self.q and self.eof:
                            try:
                                self.dst.shutdown(socket.SHUT_WR)
                            except OSError:
                                pass
                            return
                        else:
                            self.cv.wait(0.25)
                cut = False
                if self.s2c:
                    with p.lock:
                        p.stats["queued_s2c"] -= len(data)
                    keep = p.claim_cut(self.conn, self.sent, len(data))
                    if keep is not None:
                        data = data[:keep]
                        cut = True
                self.sent += len(data)  # before sending: a peer that has the bytes sees them counted
                try:
                    if data:
                        self.dst.sendall(data)
                except OSError:
                    self.conn.abort("send error")
                    return
                with p.lock:
                    p.stats["bytes_s2c" if self.s2c else "bytes_c2s"] += len(data)
                    p.dirty = True
                if cut:
                    p.cut_done(self.conn)
                    self.conn.abort("cut after %d server bytes" % self.sent, rst=True)
                    return
        finally:
            self.conn.thread_done()


class Conn:
    def __init__(self, proxy, client, server, cid):
        self.proxy, self.client, self.server, self.id = proxy, client, server, cid
        self.dead = False
        self.lock = threading.Lock()
        self.threads_left = 4
        self.c2s = Direction(self, client, server, False)
        self.s2c = Direction(self, server, client, True)
        self.cut_base = 0  # s2c bytes already sent when the current cut was armed
        self.cut_armed = False

    def start(self):
        for fn in (self.c2s.reader, self.c2s.writer, self.s2c.reader, self.s2c.writer):
            threading.Thread(target=fn, daemon=True, name="conn%d" % self.id).start()

    def wake(self):
        for d in (self.c2s, self.s2c):
            with d.cv:
                d.cv.notify_all()

    def abort(self, why, rst=False):
        with self.lock:
            if self.dead:
                return
            self.dead = True
        if rst:
            log("connection %d: %s: closing both sides" % (self.id, why))
        for s in (self.client, self.server):
            try:
                if rst:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.wake()

    def thread_done(self):
        with self.lock:
            self.threads_left -= 1
            last = self.threads_left == 0
        if not last:
            # one direction ended; when both readers saw EOF and writers drained, the others end too
            if self.c2s.eof and self.s2c.eof and not self.c2s.q and not self.s2c.q:
                self.wake()
            return
        for s in (self.client, self.server):
            try:
                s.close()
            except OSError:
                pass
        self.proxy.conn_closed(self)


class Proxy:
    def __init__(self, listen, target, delay_ms=0.0, mode="pass", cut_bytes=0, cut_scope="once",
                 control=None, stats_file=None, max_conns=64, max_queue=16 * 1024 * 1024):
        self.listen_addr = listen
        self.target = target
        self.delay_ms = float(delay_ms)
        self.mode = "pass"
        self.cut_bytes = 0
        self.cut_scope = "once"
        self.control = control
        self.stats_file = stats_file
        self.max_conns = max_conns
        self.max_queue = max_queue
        self.lock = threading.RLock()
        self.conns = {}
        self.next_id = 0
        self.stop = threading.Event()
        self.dirty = True
        self.stats = {"connections": 0, "active": 0, "refused": 0, "cuts": 0, "bytes_c2s": 0,
                      "bytes_s2c": 0, "control_loads": 0, "queued_s2c": 0}
        self._control_sig = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(listen)
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.apply({"mode": mode, "bytes": cut_bytes, "scope": cut_scope})

    # ---- settings
    def apply(self, s):
        with self.lock:
            if "delay_ms" in s:
                self.delay_ms = max(0.0, float(s["delay_ms"]))
            if "target" in s:
                self.target = parse_addr(str(s["target"]), "target")
            mode = s.get("mode", self.mode)
            if mode not in ("pass", "stall", "refuse", "cut_after_bytes"):
                raise ValueError("unknown mode %r" % mode)
            if "bytes" in s:
                self.cut_bytes = int(s["bytes"])
            if "scope" in s:
                if s["scope"] not in ("once", "new", "all"):
                    raise ValueError("unknown scope %r" % s["scope"])
                self.cut_scope = s["scope"]
            self.mode = mode
            # (re)arm: existing connections count from now for scopes once/all; never for "new"
            for c in self.conns.values():
                c.cut_armed = mode == "cut_after_bytes" and self.cut_scope in ("once", "all")
                c.cut_base = c.s2c.sent
            self.dirty = True
            conns = list(self.conns.values())
        for c in conns:
            c.wake()

    def cut_limit(self, conn, sent):
        """Total s2c byte count at which this connection is to be cut, or None."""
        if self.mode != "cut_after_bytes" or not conn.cut_armed:
            return None
        return conn.cut_base + self.cut_bytes

    def claim_cut(self, conn, sent, n):
        """How many of the next n server bytes this connection passes before it is cut, or None (no cut).
        Decided under the lock: with scope "once", one connection gets the cut even when several reach the
        count at the same moment (two connections fetching one big part in parallel)."""
        with self.lock:
            limit = self.cut_limit(conn, sent)
            if limit is None or sent + n < limit:
                return None
            conn.cut_armed = False
            if self.cut_scope == "once":
                for c in self.conns.values():
                    c.cut_armed = False
            return max(0, limit - sent)

    def cut_done(self, conn):
        with self.lock:
            self.stats["cuts"] += 1
            self.dirty = True
            conn.cut_armed = False
            if self.mode == "cut_after_bytes" and self.cut_scope == "once":
                self.mode = "pass"
                for c in self.conns.values():
                    c.cut_armed = False

    def load_control(self):
        if not self.control:
            return
        try:
            st = os.stat(self.control)
        except OSError:
            return
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sig == self._control_sig:
            return
        self._control_sig = sig
        try:
            with open(self.control) as f:
                s = json.load(f)
            if not isinstance(s, dict):
                raise ValueError("not a JSON object")
            self.apply(s)
            with self.lock:
                self.stats["control_loads"] += 1
            log("control: %s" % json.dumps(s, sort_keys=True))
        except (OSError, ValueError) as e:
            log("control file %s ignored: %s" % (self.control, e))

    # ---- stats
    def snapshot(self):
        with self.lock:
            d = dict(self.stats)
            d.update(mode=self.mode, delay_ms=self.delay_ms, target="%s:%d" % self.target, port=self.port,
                     cut_bytes=self.cut_bytes, cut_scope=self.cut_scope)
        return d

    def write_stats(self):
        if not self.stats_file:
            return
        tmp = self.stats_file + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.snapshot(), f)
            os.replace(tmp, self.stats_file)
        except OSError as e:
            log("stats: %s" % e)

    def housekeeping(self):
        while not self.stop.is_set():
            self.load_control()
            with self.lock:
                dirty, self.dirty = self.dirty, False
            if dirty:
                self.write_stats()
            self.stop.wait(0.05 if self.control else 0.2)

    # ---- connections
    def conn_closed(self, conn):
        with self.lock:
            self.conns.pop(conn.id, None)
            self.stats["active"] = len(self.conns)
            self.stats["queued_s2c"] -= conn.s2c.qbytes
            self.dirty = True

    def handle(self, client):
        with self.lock:
            refuse = self.mode == "refuse" or len(self.conns) >= self.max_conns
            if refuse:
                self.stats["refused"] += 1
                self.dirty = True
            target = self.target
        if refuse:
            _reset(client)
            return
        try:
            server = socket.create_connection(target, timeout=10)
            server.settimeout(None)
        except OSError as e:
            log("connect to %s:%d failed: %s" % (target[0], target[1], e))
            with self.lock:
                self.stats["refused"] += 1
                self.dirty = True
            _reset(client)
            return
        _tune(client)
        _tune(server)
        with self.lock:
            self.next_id += 1
            c = Conn(self, client, server, self.next_id)
            c.cut_armed = self.mode == "cut_after_bytes"  # new connections count from 0 in every scope
            self.conns[c.id] = c
            self.stats["connections"] += 1
            self.stats["active"] = len(self.conns)
            self.dirty = True
        c.start()

    def serve(self):
        threading.Thread(target=self.housekeeping, daemon=True, name="housekeeping").start()
        while not self.stop.is_set():
            try:
                r, _, _ = select.select([self.sock], [], [], 0.25)
            except InterruptedError:
                continue
            if not r:
                continue
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            client.settimeout(None)
            # connect to the target off the accept loop (a dead target must not block accepting)
            threading.Thread(target=self.handle, args=(client,), daemon=True, name="connect").start()

    def shutdown(self):
        self.stop.set()
        with self.lock:
            conns = list(self.conns.values())
        for c in conns:
            c.abort("proxy stopping")
        try:
            self.sock.close()
        except OSError:
            pass
        self.write_stats()


# ------------------------------------------------------------------ selftest


def _selftest():
    ok = True

    def server_echo(ls):
        while True:
            try:
                s, _ = ls.accept()
            except OSError:
                return

            def echo(s=s):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    if d[:1] == b"B":  # bulk: "B<n>\n" -> n bytes back
                        n = int(d[1:].split(b"\n")[0])
                        buf = b"x" * CHUNK
                        while n > 0:
                            s.sendall(buf[: min(n, CHUNK)])
                            n -= min(n, CHUNK)
                    elif d[:1] == b"S":  # sink: "S<n>\n" then n bytes -> "done"
                        n = int(d[1:].split(b"\n", 1)[0])
                        got = len(d.split(b"\n", 1)[1])
                        while got < n:
                            x = s.recv(CHUNK)
                            if not x:
                                break
                            got += len(x)
                        s.sendall(b"done")
                    else:
                        s.sendall(d)
                s.close()
            threading.Thread(target=echo, daemon=True).start()

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    threading.Thread(target=server_echo, args=(ls,), daemon=True).start()
    target = ls.getsockname()

    def rtt(port, n=20):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        best = []
        for _ in range(n):
            t = time.monotonic()
            s.sendall(b"ping")
            got = b""
            while len(got) < 4:
                got += s.recv(16)
            best.append(time.monotonic() - t)
        s.close()
        best.sort()
        return best[len(best) // 2]

    def bulk(port, nbytes, upload=False):
        s = socket.create_connection(("127.0.0.1", port))
        _tune(s)
        t = time.monotonic()
        if upload:
            s.sendall(b"S%d\n" % nbytes)
            buf = b"y" * CHUNK
            left = nbytes
            while left > 0:
                s.sendall(buf[: min(left, CHUNK)])
                left -= min(left, CHUNK)
            got = b""
            while len(got) < 4:
                got += s.recv(16)
        else:
            s.sendall(b"B%d\n" % nbytes)
            got = 0
            while got < nbytes:
                d = s.recv(CHUNK)
                if not d:
                    break
                got += len(d)
        dt = time.monotonic() - t
        s.close()
        return nbytes / dt / 1e6

    results = []
    for delay in (0, 25):
        p = Proxy(("127.0.0.1", 0), target, delay_ms=delay)
        th = threading.Thread(target=p.serve, daemon=True)
        th.start()
        r = rtt(p.port)
        down = bulk(p.port, 512 * 1024 * 1024)
        up = bulk(p.port, 256 * 1024 * 1024, upload=True)
        results.append((delay, r, down, up))
        print("selftest: delay %2d ms: echo RTT %.1f ms, server->client %.0f MB/s, client->server %.0f MB/s"
              % (delay, r * 1000, down, up))
        p.shutdown()
    base, delayed = results[0][1], results[1][1]
    added = (delayed - base) * 1000
    if not (2 * 25 - 5 <= added <= 2 * 25 + 15):
        print("selftest: FAIL: delay 25 ms added %.1f ms to the RTT (want ~50)" % added)
        ok = False
    else:
        print("selftest: ok: delay 25 ms added %.1f ms to the RTT (want ~50)" % added)
    for delay, r, down, up in results:
        if min(down, up) < 200:
            print("selftest: FAIL: throughput with delay %d ms is %.0f/%.0f MB/s (want > 200)" % (delay, down, up))
            ok = False
    if ok:
        print("selftest: ok: throughput > 200 MB/s in both directions with and without delay")

    # faults: refuse, stall, cut
    p = Proxy(("127.0.0.1", 0), target)
    threading.Thread(target=p.serve, daemon=True).start()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.settimeout(3)
    p.apply({"mode": "stall"})
    s.sendall(b"hello")
    s.settimeout(0.3)
    try:
        s.recv(16)
        print("selftest: FAIL: stall forwarded data")
        ok = False
    except socket.timeout:
        pass
    p.apply({"mode": "pass"})
    s.settimeout(3)
    if s.recv(16) != b"hello":
        print("selftest: FAIL: data held by stall not delivered after pass")
        ok = False
    p.apply({"mode": "refuse"})
    r2 = socket.create_connection(("127.0.0.1", p.port))
    r2.settimeout(3)
    try:
        refused = r2.recv(16) == b""
    except OSError:
        refused = True
    s.sendall(b"again")
    if not refused or s.recv(16) != b"again":
        print("selftest: FAIL: refuse mode (new refused: %s; existing must still work)" % refused)
        ok = False
    p.apply({"mode": "cut_after_bytes", "bytes": 1000000, "scope": "once"})
    s.sendall(b"B5000000\n")
    got = 0
    try:
        while True:
            d = s.recv(CHUNK)
            if not d:
                break
            got += len(d)
    except OSError:
        pass
    if got != 1000000 or p.mode != "pass" or p.stats["cuts"] != 1:
        print("selftest: FAIL: cut after 1000000 bytes: client got %d bytes, mode now %s" % (got, p.mode))
        ok = False
    p.shutdown()
    if ok:
        print("selftest: ok: stall holds and releases, refuse spares existing connections, cut at exact byte")
    print("selftest: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--target")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--port-file")
    ap.add_argument("--control")
    ap.add_argument("--stats")
    ap.add_argument("--mode", default="pass", choices=["pass", "stall", "refuse", "cut_after_bytes"])
    ap.add_argument("--cut-bytes", type=int, default=0)
    ap.add_argument("--cut-scope", default="once", choices=["once", "new", "all"])
    ap.add_argument("--max-conns", type=int, default=64)
    ap.add_argument("--max-queue", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args(argv)
    if a.selftest:
        return _selftest()
    if not a.target:
        ap.error("--target is required")
    try:
        listen = parse_addr(a.listen, "--listen")
        target = parse_addr(a.target, "--target")
    except ValueError as e:
        ap.error(str(e))
    p = Proxy(listen, target, delay_ms=a.delay_ms, mode=a.mode, cut_bytes=a.cut_bytes, cut_scope=a.cut_scope,
              control=a.control, stats_file=a.stats, max_conns=a.max_conns, max_queue=a.max_queue)
    p.load_control()

    def on_term(signum, frame):
        p.stop.set()

    def on_usr1(signum, frame):
        print(json.dumps(p.snapshot(), sort_keys=True), file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % p.port)
        os.replace(tmp, a.port_file)
    print("PORT %d" % p.port, flush=True)
    p.write_stats()
    p.serve()
    p.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
