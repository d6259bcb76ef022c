"""A scriptable fake IMAP server for the hostile-server tests (Python standard library only).

It answers what imapfs sends the way Dovecot does (greeting, CAPABILITY, STARTTLS, LOGIN,
AUTHENTICATE PLAIN with and without SASL-IR, LIST, EXAMINE/SELECT, STATUS, NOOP, UID SEARCH, IDLE,
UID FETCH with UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE BODY.PEEK[section]<o.n> BINARY.PEEK
BINARY.SIZE, pipelined commands, LOGOUT) over an in-memory mailbox whose folder names are raw bytes,
and lets a test replace any part of that behaviour (see `Behaviour`). Every command line it receives
is recorded (`FakeIMAP.received`), literals included, so a test can assert what the client sent.

The server runs an asyncio loop in a daemon thread: `FakeIMAP(...).start()` returns once it
listens on 127.0.0.1 (implicit TLS on `.port`, plain + STARTTLS on `.starttls_port`).
"""
import asyncio
import base64
import os
import re
import ssl
import subprocess
import threading
import time

DATE = "01-Dec-2026 10:00:00 +0000"


def make_cert(directory):
    """A throwaway self-signed certificate for 127.0.0.1 (openssl CLI); returns (cert, key) paths."""
    cert = os.path.join(directory, "fake-cert.pem")
    key = os.path.join(directory, "fake-key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
        check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


# ---------------------------------------------------------------- the mailbox model


def quote(b):
    """An IMAP quoted string (bytes)."""
    if isinstance(b, str):
        b = b.encode()
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def astring(b):
    """A quoted string when IMAP allows one (7-bit, no CR/LF/NUL), else a literal."""
    if isinstance(b, str):
        b = b.encode()
    if all(0x20 <= c < 0x7F or c == 0x09 for c in b):
        return quote(b)
    return b"{%d}\r\n" % len(b) + b


def _split_header(raw):
    if raw.startswith(b"\r\n"):  # no header fields at all
        return b"\r\n", raw[2:]
    k = raw.find(b"\r\n\r\n")
    if k < 0:
        return raw, b""
    return raw[: k + 4], raw[k + 4 :]


def _header_fields(header):
    """{lowercase name: unfolded value} of a header block."""
    out = {}
    name = None
    for line in header.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and name:
            out[name] += b" " + line.strip()
        elif b":" in line:
            name, v = line.split(b":", 1)
            name = name.strip().lower().decode("latin-1")
            out[name] = v.strip()
    return out


def _params(value):
    """`text/plain; charset="x"; name=y` -> ("text", "plain", [(k, v), ...])."""
    parts = [p.strip() for p in value.split(b";")]
    ts = parts[0].split(b"/", 1)
    typ = ts[0].strip().lower() or b"text"
    sub = ts[1].strip().lower() if len(ts) > 1 else b"plain"
    params = []
    for p in parts[1:]:
        if b"=" in p:
            k, v = p.split(b"=", 1)
            params.append((k.strip().lower(), v.strip().strip(b'"')))
    return typ, sub, params


class Part:
    """One MIME entity: its header block (with the blank line), body, type and children."""

    def __init__(self, raw, default_type=(b"text", b"plain")):
        self.header, self.body = _split_header(raw)
        f = _header_fields(self.header)
        if "content-type" in f:
            self.type, self.subtype, self.params = _params(f["content-type"])
        else:
            self.type, self.subtype = default_type
            self.params = [(b"charset", b"us-ascii")] if self.type == b"text" else []
        self.cte = f.get("content-transfer-encoding", b"7bit").lower()
        self.disposition = f.get("content-disposition")
        self.children = []
        if self.type == b"multipart":
            boundary = dict(self.params).get(b"boundary", b"")
            pieces = (b"\r\n" + self.body).split(b"\r\n--" + boundary)
            for piece in pieces[1:]:
                if piece.startswith(b"--"):
                    break
                k = piece.find(b"\r\n")
                self.children.append(Part(piece[k + 2 :] if k >= 0 else b""))

    def find(self, path):
        """The entity at a section path ([] = this one); None when there is none."""
        if not path:
            return self
        if not self.children:
            return self if path == [1] else None
        i = path[0]
        if not 1 <= i <= len(self.children):
            return None
        return self.children[i - 1].find(path[1:])

    def structure(self, overrides, path=()):
        """BODYSTRUCTURE as Dovecot writes it; overrides: {"2": b"NIL"} replaces a part's size."""
        if self.children:
            kids = b"".join(c.structure(overrides, path + (i + 1,)) for i, c in enumerate(self.children))
            return b"(" + kids + b" " + quote(self.subtype) + b" " + _plist(self.params) + b" NIL NIL NIL)"
        sec = ".".join(map(str, path or (1,)))
        size = overrides.get(sec, b"%d" % len(self.body))
        s = b"(" + quote(self.type) + b" " + quote(self.subtype) + b" " + _plist(self.params)
        s += b" NIL NIL " + quote(self.cte) + b" " + size
        if self.type == b"text":
            s += b" %d" % self.body.count(b"\n")
        s += b" NIL "
        if self.disposition:
            d = self.disposition.split(b";", 1)
            _, _, dp = _params(b"x/x;" + d[1]) if len(d) > 1 else (None, None, [])
            s += b"(" + quote(d[0].strip().lower()) + b" " + _plist(dp) + b")"
        else:
            s += b"NIL"
        return s + b" NIL NIL)"


def _plist(params):
    if not params:
        return b"NIL"
    return b"(" + b" ".join(quote(k) + b" " + quote(v) for k, v in params) + b")"


class Message:
    def __init__(self, uid, raw, flags=(), date=DATE, bodystructure=None, size_overrides=None):
        self.uid = uid
        self.raw = raw
        self.flags = list(flags)
        self.date = date
        self._bs = bodystructure
        self.size_overrides = size_overrides or {}
        self._part = None

    @property
    def part(self):
        if self._part is None:
            self._part = Part(self.raw)
        return self._part

    def bodystructure(self):
        if self._bs is None:
            self._bs = self.part.structure(self.size_overrides)
        return self._bs

    def section(self, spec, binary=False):
        """The bytes of BODY[spec] (or BINARY[spec], decoded); None when there is no such part."""
        spec = spec.upper()
        if spec == "":
            return self.raw
        if spec == "HEADER" or spec.startswith("HEADER.FIELDS"):
            return self.part.header
        if spec == "TEXT":
            return self.part.body
        nums, _, tail = spec.partition(".M") if spec.endswith(".MIME") else (spec, "", "")
        try:
            path = [int(x) for x in nums.split(".")]
        except ValueError:
            return None
        p = self.part.find(path)
        if p is None:
            return None
        if tail == "IME":
            return p.header if p is not self.part else None
        if binary and p.cte == b"base64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/]", b"", p.body) + b"==", validate=False)
        if binary and p.cte == b"quoted-printable":
            import quopri
            return quopri.decodestring(p.body)
        return p.body


class Folder:
    def __init__(self, name, messages=(), uidvalidity=1700000000, attrs=b"\\HasNoChildren", literal=False,
                 selectable=True):
        self.name = name if isinstance(name, bytes) else name.encode()
        self.messages = list(messages)
        self.uidvalidity = uidvalidity
        self.attrs = attrs
        self.literal = literal  # always send the name as a literal
        self.selectable = selectable

    def uidnext(self):
        return max([m.uid for m in self.messages], default=0) + 1

    def wire_name(self):
        return b"{%d}\r\n" % len(self.name) + self.name if self.literal else astring(self.name)


def simple_message(subject, body, extra_headers=b""):
    body = body if isinstance(body, bytes) else body.encode()
    return (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: " + subject.encode() +
            b"\r\nMIME-Version: 1.0\r\n" + extra_headers +
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body)


def multipart_message(subject, parts, boundary=b"b0undary"):
    """parts: (content-type line, cte or None, body bytes, disposition or None)."""
    out = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: " + subject.encode() +
           b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n"
           b"This is a multi-part message.\r\n")
    for ctype, cte, body, disp in parts:
        out += b"--" + boundary + b"\r\n"
        if ctype:
            out += b"Content-Type: " + ctype + b"\r\n"
        if cte:
            out += b"Content-Transfer-Encoding: " + cte + b"\r\n"
        if disp:
            out += b"Content-Disposition: " + disp + b"\r\n"
        out += b"\r\n" + body + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def base64_lines(data, width=76):
    b = base64.b64encode(data)
    return b"\r\n".join(b[i : i + width] for i in range(0, len(b), width))


# ---------------------------------------------------------------- behaviour hooks


class Behaviour:
    """What a test can change. Handlers are coroutines `async def h(server, conn, tag, cmd_line) -> bool`
    (True when they answered the command); `inject` lines go before and inside the untagged answer of the
    named command; `drip` sends a command's whole answer `n` bytes at a time every `interval` seconds."""

    def __init__(self):
        self.user = "alice"
        self.password = "secret"
        self.greeting = None  # bytes, or a coroutine `async def g(server, conn)`
        self.caps_pre = b"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"
        self.caps_post = (b"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT THREAD=REFERENCES MULTIAPPEND "
                          b"UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH "
                          b"ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SPECIAL-USE LITERAL+")
        self.caps_starttls = b"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED"
        self.caps_after_starttls = None  # pre-login capabilities once TLS is up (default: caps_pre)
        self.login_disabled = False  # refuse LOGIN (the capability lists say so when set by the test)
        self.handlers = {}  # command name ("LIST", "FETCH", "EXAMINE", ...) -> coroutine
        self.inject = {}  # command name -> [untagged lines without CRLF]
        self.drip = {}  # command name -> (bytes per write, seconds between writes, predicate(cmd_line) or None)
        # Dovecot replaces NUL bytes in BODY[] literals (IMAP forbids NUL there); only BINARY[] (literal8)
        # carries them
        self.nul_in_body = b"\x80"


class Conn:
    counter = 0

    def __init__(self, reader, writer, tls):
        Conn.counter += 1
        self.id = Conn.counter
        self.reader, self.writer, self.tls = reader, writer, tls
        self.folder = None
        self.authenticated = False

    async def send(self, data):
        # a gone client ends every (possibly endless) hostile answer here
        if self.writer.is_closing() or self.reader.at_eof():
            raise Closed()
        self.writer.write(data)
        await self.writer.drain()
        # drain() does not yield while the buffer is small: let the loop notice a lost connection
        await asyncio.sleep(0)


class Closed(Exception):
    pass


class BadCommand(Exception):
    pass


# ---------------------------------------------------------------- parsing client commands


def tokens(data):
    """Arguments of a command: atoms, quoted strings and literals as bytes, parenthesised lists as lists."""
    out, stack, i = [], [], 0
    cur = out
    while i < len(data):
        c = data[i : i + 1]
        if c in (b" ", b"\r", b"\n"):
            i += 1
        elif c == b"(":
            stack.append(cur)
            cur.append([])
            cur = cur[-1]
            i += 1
        elif c == b")":
            cur = stack.pop() if stack else out
            i += 1
        elif c == b'"':
            j, s = i + 1, bytearray()
            while j < len(data) and data[j : j + 1] != b'"':
                if data[j : j + 1] == b"\\":
                    j += 1
                s += data[j : j + 1]
                j += 1
            cur.append(bytes(s))
            i = j + 1
        elif c == b"{":
            m = re.match(rb"\{(\d+)\+?\}\r\n", data[i:])
            if not m:
                cur.append(data[i:])
                break
            n = int(m.group(1))
            start = i + m.end()
            cur.append(data[start : start + n])
            i = start + n
        else:
            m = re.match(rb"[^ ()\r\n]+", data[i:])
            cur.append(m.group(0))
            i += m.end()
    return out


def parse_set(s, uids):
    """A sequence/UID set over the sorted `uids` (what `n:*` means: up to the highest)."""
    top = max(uids, default=0)
    out = set()
    for piece in s.split(","):
        if ":" in piece:
            a, b = piece.split(":", 1)
            a = top if a == "*" else int(a)
            b = top if b == "*" else int(b)
            lo, hi = min(a, b), max(a, b)
            out.update(u for u in uids if lo <= u <= hi)
            if "*" in piece and top:
                out.add(top)
        else:
            v = top if piece == "*" else int(piece)
            if v in uids:
                out.add(v)
    return sorted(out)


FETCH_ITEM = re.compile(r"(BODY\.PEEK|BODY|BINARY\.PEEK|BINARY\.SIZE|BINARY)\[([^\]]*)\](?:<(\d+)\.(\d+)>)?|"
                        r"[A-Z0-9.]+", re.I)


# ---------------------------------------------------------------- the server


class FakeIMAP:
    def __init__(self, certdir, folders=(), behaviour=None):
        self.cert, self.key = make_cert(certdir) if not os.path.exists(os.path.join(certdir, "fake-cert.pem")) \
            else (os.path.join(certdir, "fake-cert.pem"), os.path.join(certdir, "fake-key.pem"))
        self.folders = list(folders)
        self.b = behaviour or Behaviour()
        self.lock = threading.Lock()
        self.received = []  # (connection id, command bytes with literals inline)
        self.auths = []  # (mechanism, user bytes, password bytes, how it was sent)
        self.plaintext_auths = 0  # LOGIN/AUTHENTICATE received before TLS (must stay 0)
        self.connections = 0
        self.bytes_sent = 0
        self.loop = None
        self.port = self.starttls_port = None

    # -- life cycle
    def start(self):
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True, name="fakeimap")
        self.thread.start()
        if not ready.wait(20) or self.port is None:
            raise RuntimeError("fake IMAP server did not start: %r" % getattr(self, "error", None))
        return self

    def _run(self, ready):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(self.cert, self.key)
            self.tls_server = self.loop.run_until_complete(asyncio.start_server(
                lambda r, w: self._serve(r, w, True), "127.0.0.1", 0, ssl=self.ctx, limit=1 << 20))
            self.plain_server = self.loop.run_until_complete(asyncio.start_server(
                lambda r, w: self._serve(r, w, False), "127.0.0.1", 0, limit=1 << 20))
            self.port = self.tls_server.sockets[0].getsockname()[1]
            self.starttls_port = self.plain_server.sockets[0].getsockname()[1]
        except Exception as e:  # reported by start()
            self.error = e
            ready.set()
            return
        ready.set()
        self.loop.run_forever()
        for t in asyncio.all_tasks(self.loop):
            t.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def stop(self):
        if self.loop is None or self.loop.is_closed():
            return

        def shut():
            self.tls_server.close()
            self.plain_server.close()
            for t in asyncio.all_tasks(self.loop):
                t.cancel()
            self.loop.call_later(0.05, self.loop.stop)

        try:
            self.loop.call_soon_threadsafe(shut)
        except RuntimeError:
            return
        self.thread.join(10)
        if self.thread.is_alive():
            raise RuntimeError("the fake IMAP server's thread did not stop")

    # -- what was received
    def record(self, conn, line):
        with self.lock:
            self.received.append((conn.id, line))

    def commands(self):
        """Received command names, uppercase (`UID FETCH` as `UID FETCH`)."""
        out = []
        with self.lock:
            for _, line in self.received:
                w = line.rstrip(b"\r\n").split(b" ", 3)
                if len(w) >= 2:
                    name = w[1].upper()
                    if name == b"UID" and len(w) >= 3:
                        name += b" " + w[2].upper()
                    out.append(name.decode("latin-1"))
        return out

    def lines(self):
        with self.lock:
            return [l for _, l in self.received]

    # -- one connection
    async def _serve(self, reader, writer, tls):
        conn = Conn(reader, writer, tls)
        with self.lock:
            self.connections += 1
        try:
            await self.greet(conn)
            while True:
                line = await self.read_command(conn)
                if line is None:
                    break
                self.record(conn, line)
                if not await self.dispatch(conn, line):
                    break
        except (Closed, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def greet(self, conn):
        g = self.b.greeting
        if callable(g):
            await g(self, conn)
            return
        if g is None:
            caps = self.b.caps_pre if conn.tls else self.b.caps_starttls
            g = b"* OK [CAPABILITY " + caps + b"] Dovecot ready.\r\n"
        await conn.send(g)

    async def read_command(self, conn):
        buf = b""
        while True:
            try:
                line = await conn.reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise Closed()
            except asyncio.IncompleteReadError:
                return None
            buf += line
            m = re.search(rb"\{(\d+)(\+?)\}\r?\n$", line)
            if not m:
                return buf
            if not m.group(2):
                await conn.send(b"+ OK\r\n")
            buf += await conn.reader.readexactly(int(m.group(1)))

    async def respond(self, conn, name, cmd, untagged, tagged):
        """Send untagged responses (bytes each, CRLF-terminated) and the tagged line, applying the
        behaviour's injections and drip for `name`."""
        inj = [l + b"\r\n" for l in self.b.inject.get(name, [])]
        if inj:
            untagged = inj + untagged[:1] + inj + untagged[1:]
        data = b"".join(untagged) + tagged
        drip = self.b.drip.get(name)
        if drip and (drip[2] is None or drip[2](cmd)):
            n, interval = drip[0], drip[1]
            for i in range(0, len(data), n):
                await conn.send(data[i : i + n])
                self.bytes_sent += n
                await asyncio.sleep(interval)
            return
        # one response at a time, so that a huge answer starts flowing at once
        for piece in untagged + [tagged]:
            self.bytes_sent += len(piece)
            await conn.send(piece)

    def folder(self, name):
        for f in self.folders:
            if f.name == name or (f.name.upper() == b"INBOX" and name.upper() == b"INBOX"):
                return f
        return None

    async def dispatch(self, conn, line):
        m = re.match(rb"([^ \r\n]+) ([A-Za-z]+)(?: (UID|uid)? ?([A-Za-z]*))?", line)
        if not m:
            await conn.send(b"* BAD Error in IMAP command received by server.\r\n")
            return True
        tag = m.group(1)
        name = m.group(2).upper().decode()
        if name == "UID":
            name = m.group(4).upper().decode() if m.group(4) else "UID"
            uid_cmd = True
            rest = line[m.end(4):] if m.group(4) else b""
        else:
            uid_cmd = False
            rest = line[len(tag) + 1 + len(m.group(2)) :]
        if name in ("LOGIN", "AUTHENTICATE") and not conn.tls:
            self.plaintext_auths += 1
        h = self.b.handlers.get(name)
        if h is not None and await h(self, conn, tag, line):
            return True
        ok = tag + b" OK "
        if name == "CAPABILITY":
            caps = self.b.caps_post if conn.authenticated else (
                (self.b.caps_after_starttls or self.b.caps_pre) if conn.tls else self.b.caps_starttls)
            await self.respond(conn, name, line, [b"* CAPABILITY " + caps + b"\r\n"], ok + b"Capability completed.\r\n")
        elif name == "NOOP" or name == "CHECK":
            await self.respond(conn, name, line, [], ok + b"NOOP completed.\r\n")
        elif name == "LOGOUT":
            await conn.send(b"* BYE Logging out\r\n" + ok + b"Logout completed.\r\n")
            return False
        elif name == "STARTTLS":
            if conn.tls:
                await conn.send(tag + b" BAD TLS is already active.\r\n")
            else:
                await conn.send(ok + b"Begin TLS negotiation now.\r\n")
                await conn.writer.start_tls(self.ctx)
                conn.tls = True
        elif name == "ID":
            await conn.send(b'* ID ("name" "Dovecot")\r\n' + ok + b"ID completed.\r\n")
        elif name == "ENABLE":
            await conn.send(b"* ENABLED\r\n" + ok + b"Enabled.\r\n")
        elif name == "LOGIN":
            args = tokens(rest)
            how = "literal" if re.search(rb"\{\d+\+?\}\r\n", rest) else ("quoted" if b'"' in rest else "atom")
            user = args[0] if args else b""
            pw = args[1] if len(args) > 1 else b""
            self.auths.append(("LOGIN", user, pw, how))
            if self.b.login_disabled:
                await conn.send(tag + b" NO [PRIVACYREQUIRED] Plaintext authentication disallowed.\r\n")
            else:
                await self.finish_auth(conn, tag, user, pw)
        elif name == "AUTHENTICATE":
            args = tokens(rest)
            mech = args[0].upper() if args else b""
            if mech != b"PLAIN":
                await conn.send(tag + b" NO Unsupported authentication mechanism.\r\n")
                return True
            if len(args) > 1:
                payload, how = args[1], "sasl-ir"
            else:
                await conn.send(b"+ \r\n")
                more = await conn.reader.readuntil(b"\n")
                self.record(conn, more)
                payload, how = more.strip(), "continuation"
            if payload == b"*":
                await conn.send(tag + b" BAD Authentication aborted.\r\n")
                return True
            try:
                _, user, pw = base64.b64decode(payload, validate=True).split(b"\0", 2)
            except Exception:
                await conn.send(tag + b" BAD Invalid base64 data in initial response.\r\n")
                return True
            self.auths.append(("AUTHENTICATE PLAIN", user, pw, how))
            await self.finish_auth(conn, tag, user, pw)
        elif not conn.authenticated:
            await conn.send(tag + b" BAD Error in IMAP command: not authenticated.\r\n")
        elif name == "LIST" or name == "LSUB":
            # LIST-EXTENDED / LIST-STATUS: `RETURN (... STATUS (items))` adds a STATUS after each folder
            ret = re.search(rb"RETURN \(.*STATUS \(([A-Za-z ]*)\)", rest)
            untagged = []
            for f in self.folders:
                untagged.append(b"* " + name.encode() + b" (" + f.attrs + (b"" if f.selectable else b" \\Noselect") +
                                b') "/" ' + f.wire_name() + b"\r\n")
                if ret and f.selectable:
                    untagged.append(self.status_line(f, ret.group(1).split()))
            await self.respond(conn, name, line, untagged, ok + b"List completed.\r\n")
        elif name in ("EXAMINE", "SELECT"):
            args = tokens(rest)
            f = self.folder(args[0]) if args else None
            if f is None or not f.selectable:
                conn.folder = None
                await conn.send(tag + b" NO [NONEXISTENT] Mailbox doesn't exist: " + (args[0] if args else b"")[:100]
                                .replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n")
                return True
            conn.folder = f
            untagged = [b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
                        b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n",
                        b"* %d EXISTS\r\n" % len(f.messages), b"* 0 RECENT\r\n",
                        b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % f.uidvalidity,
                        b"* OK [UIDNEXT %d] Predicted next UID\r\n" % f.uidnext()]
            mode = b"[READ-ONLY]" if name == "EXAMINE" else b"[READ-WRITE]"
            await self.respond(conn, name, line, untagged, ok + mode + b" Examine completed (0.001 + 0.000 secs).\r\n")
        elif name == "STATUS":
            args = tokens(rest)
            f = self.folder(args[0]) if args else None
            if f is None:
                await conn.send(tag + b" NO [NONEXISTENT] Mailbox doesn't exist.\r\n")
                return True
            items = args[1] if len(args) > 1 and isinstance(args[1], list) else []
            await self.respond(conn, name, line, [self.status_line(f, items)], ok + b"Status completed.\r\n")
        elif name == "SEARCH":
            f = conn.folder
            if f is None:
                await conn.send(tag + b" BAD No mailbox selected.\r\n")
                return True
            nums = [m.uid if uid_cmd else i + 1 for i, m in enumerate(f.messages)]
            crit = re.search(rb"\bUID ([0-9:*,]+)", rest)  # the only criterion besides ALL understood here
            if crit:
                keep = set(parse_set(crit.group(1).decode(), [m.uid for m in f.messages]))
                nums = [n for n, m in zip(nums, f.messages) if m.uid in keep]
            if re.match(rb" *RETURN \(", rest):  # ESEARCH (RFC 4731) answers RETURN options
                answer = b'* ESEARCH (TAG "' + tag + b'")' + (b" UID" if uid_cmd else b"")
                if nums:
                    answer += b" ALL " + b",".join(b"%d" % n for n in nums) + b" COUNT %d" % len(nums)
                answer += b"\r\n"
            else:
                answer = b"* SEARCH" + b"".join(b" %d" % n for n in nums) + b"\r\n"
            await self.respond(conn, name, line, [answer], ok + b"Search completed (0.001 + 0.000 secs).\r\n")
        elif name == "IDLE":
            await conn.send(b"+ idling\r\n")
            done = await conn.reader.readuntil(b"\n")
            self.record(conn, done)
            await conn.send(ok + b"Idle completed.\r\n")
        elif name == "FETCH":
            await self.fetch(conn, tag, line, rest, uid_cmd)
        else:
            await conn.send(tag + b" BAD Error in IMAP command " + name.encode() + b": Unknown command.\r\n")
        return True

    def status_line(self, f, items):
        vals = {b"MESSAGES": len(f.messages), b"UIDNEXT": f.uidnext(), b"UIDVALIDITY": f.uidvalidity,
                b"UNSEEN": 0, b"RECENT": 0, b"HIGHESTMODSEQ": 1}
        body = b" ".join(i.upper() + b" %d" % vals[i.upper()] for i in items if i.upper() in vals)
        return b"* STATUS " + f.wire_name() + b" (" + body + b")\r\n"

    async def finish_auth(self, conn, tag, user, pw):
        if user == self.b.user.encode() and pw == self.b.password.encode():
            conn.authenticated = True
            await conn.send(tag + b" OK [CAPABILITY " + self.b.caps_post + b"] Logged in\r\n")
        else:
            await asyncio.sleep(0.2)
            await conn.send(tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")

    def fetch_answers(self, f, setspec, items_text, uid_cmd):
        """The untagged FETCH responses for one command, as a list of bytes."""
        uids = [m.uid for m in f.messages]
        if uid_cmd:
            chosen = parse_set(setspec, uids)
        else:
            chosen = [f.messages[i - 1].uid for i in parse_set(setspec, list(range(1, len(uids) + 1)))]
        items = [m.group(0) for m in FETCH_ITEM.finditer(items_text)]
        out = []
        for seq, msg in enumerate(f.messages, 1):
            if msg.uid not in chosen:
                continue
            parts = [b"UID %d" % msg.uid] if uid_cmd else []
            for it in items:
                up = it.upper()
                if up == "UID":
                    if not uid_cmd:
                        parts.append(b"UID %d" % msg.uid)
                elif up == "FLAGS":
                    parts.append(b"FLAGS (" + " ".join(msg.flags).encode() + b")")
                elif up == "INTERNALDATE":
                    parts.append(b'INTERNALDATE "' + msg.date.encode() + b'"')
                elif up == "RFC822.SIZE":
                    parts.append(b"RFC822.SIZE %d" % len(msg.raw))
                elif up == "BODYSTRUCTURE":
                    parts.append(b"BODYSTRUCTURE " + msg.bodystructure())
                else:
                    m = FETCH_ITEM.fullmatch(it)
                    if not m or not m.group(1):
                        continue
                    kind, sec = m.group(1).upper(), m.group(2)
                    binary = kind.startswith("BINARY")
                    if binary and b"BINARY" not in self.b.caps_post.split():
                        raise BadCommand("BINARY is not advertised")
                    data = msg.section(sec, binary=binary)
                    if kind == "BINARY.SIZE":
                        parts.append(b"BINARY.SIZE[" + sec.encode() + b"] %d" % len(data or b""))
                        continue
                    data = data or b""
                    if not binary and self.b.nul_in_body is not None:
                        data = data.replace(b"\0", self.b.nul_in_body)
                    label = ("BINARY[" if binary else "BODY[") + sec.upper() + "]"
                    if m.group(3) is not None:
                        o, n = int(m.group(3)), int(m.group(4))
                        data = data[o : o + n]
                        label += "<%d>" % o
                    # Dovecot sends BINARY[] as literal8 when the bytes are not 7-bit text
                    lit = b"~{%d}" if binary and (b"\0" in data or not data.isascii()) else b"{%d}"
                    parts.append(label.encode() + b" " + lit % len(data) + b"\r\n" + data)
            out.append(b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n")
        return out

    async def fetch(self, conn, tag, line, rest, uid_cmd):
        f = conn.folder
        if f is None:
            await conn.send(tag + b" BAD No mailbox selected.\r\n")
            return
        m = re.match(rb" *([0-9:*,]+) +(.*)$", rest, re.S)
        if not m:
            await conn.send(tag + b" BAD Error in IMAP command FETCH: Invalid arguments.\r\n")
            return
        try:
            answers = self.fetch_answers(f, m.group(1).decode(), m.group(2).decode("latin-1"), uid_cmd)
        except BadCommand as e:
            await conn.send(tag + b" BAD Error in IMAP command FETCH: " + str(e).encode() + b"\r\n")
            return
        await self.respond(conn, "FETCH", line, answers, tag + b" OK Fetch completed (0.001 + 0.000 secs).\r\n")


# ---------------------------------------------------------------- ready-made hostile handlers


def forever_lines(line_fn, interval):
    """A handler that answers with untagged lines (line_fn(i) -> bytes) every `interval` s, never ending."""

    async def h(server, conn, tag, cmd):
        i = 0
        while True:
            data = line_fn(i)
            await conn.send(data)
            server.bytes_sent += len(data)
            i += 1
            if interval:
                await asyncio.sleep(interval)
            elif i % 64 == 0:
                await asyncio.sleep(0)

    return h


def forever_bytes(prefix, chunk=b"A" * 65536, interval=0.0):
    """A handler that sends `prefix` then `chunk` repeatedly, never ending the line."""

    async def h(server, conn, tag, cmd):
        await conn.send(prefix)
        while True:
            await conn.send(chunk)
            server.bytes_sent += len(chunk)
            await asyncio.sleep(interval)

    return h


def stall(prefix=b""):
    """A handler that sends `prefix` (maybe nothing) and then nothing, ever (until the client goes)."""

    async def h(server, conn, tag, cmd):
        if prefix:
            await conn.send(prefix)
        await conn.reader.read()  # until the client closes
        raise Closed()

    return h


def now():
    return time.monotonic()
