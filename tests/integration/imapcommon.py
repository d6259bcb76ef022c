"""Shared helpers for the imapfs integration tests (python3 stdlib only).

- modified UTF-7 (RFC 3501 section 5.1.3) encode/decode of mailbox names
- reading the shell-sourceable env file written by scripts/test-server.sh
- opening an authenticated imaplib connection (implicit TLS or STARTTLS, verified against CA_FILE)
"""
import base64
import imaplib
import shlex
import ssl

# ---------------------------------------------------------------- modified UTF-7


def _b64_utf16(chunk):
    return base64.b64encode(chunk.encode("utf-16-be")).rstrip(b"=").replace(b"/", b",").decode("ascii")


def mutf7_encode(name):
    """Encode a Unicode mailbox name to IMAP modified UTF-7."""
    out = []
    pending = []

    def flush():
        if pending:
            out.append("&" + _b64_utf16("".join(pending)) + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(name):
    """Decode an IMAP modified UTF-7 mailbox name (str or bytes) to Unicode."""
    if isinstance(name, bytes):
        name = name.decode("ascii")
    out = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        j = name.index("-", i + 1)
        if j == i + 1:
            out.append("&")
        else:
            b = name[i + 1 : j].replace(",", "/")
            b += "=" * (-len(b) % 4)
            out.append(base64.b64decode(b).decode("utf-16-be"))
        i = j + 1
    return "".join(out)


def imap_quote(s):
    """Quote an ASCII string as an IMAP quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- server env


def load_env(path):
    """Parse DIR/env (KEY=VALUE lines, values possibly single-quoted)."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            parts = shlex.split(v)
            env[k] = parts[0] if parts else ""
    return env


def connect(env, starttls=False, timeout=60, host=None):
    """An authenticated imaplib connection to the test server."""
    ctx = ssl.create_default_context(cafile=env["CA_FILE"])
    host = host or env["IMAP_HOST"]
    if starttls:
        c = imaplib.IMAP4(host, int(env["IMAP_PORT"]), timeout=timeout)
        c.starttls(ctx)
    else:
        c = imaplib.IMAP4_SSL(host, int(env["IMAPS_PORT"]), ssl_context=ctx, timeout=timeout)
    c.login(env["IMAP_USER"], env["IMAP_PASS"])
    return c


def check(res, what):
    typ, data = res
    if typ != "OK":
        raise RuntimeError("%s failed: %s %r" % (what, typ, data))
    return data
