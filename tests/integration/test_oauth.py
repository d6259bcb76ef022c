"""OAuth2 logins (--oauth2-token-command) against a throwaway Dovecot whose oauth2 passdb asks a small HTTP
introspection endpoint (RFC 7662) run by this test on 127.0.0.1. Run via run.py (tier `oauth`)."""
import imaplib
import json
import os
import secrets
import ssl
import subprocess
import threading
import time
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import Mount, is_mounted, log, pids_for, read_file, run, world

MESSAGES = [
    b"From: a@example.org\r\nTo: tester@example.org\r\nSubject: oauth one\r\n"
    b"Message-ID: <oauth-1@example.org>\r\n\r\nThe first message, read with a token.\r\n",
    b"From: b@example.org\r\nTo: tester@example.org\r\nSubject: oauth two\r\n"
    b"Message-ID: <oauth-2@example.org>\r\n\r\nThe second message, read after a reconnect.\r\n",
]


class Introspection:
    """POST /introspect token=T -> {"active": true, "username": USER} when T is in `valid`, else
    {"active": false}. Every token asked about is recorded in `seen`."""

    def __init__(self, user):
        self.user = user
        self.valid = set()
        self.seen = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                token = (form.get("token") or [""])[0]
                with outer.lock:
                    outer.seen.append(token)
                    ok = token in outer.valid
                body = json.dumps({"active": True, "username": outer.user} if ok else {"active": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/introspect" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class O_OAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = world()
        # the endpoint must exist before Dovecot's config names it (its port is chosen now)
        cls.idp = Introspection("tester")
        cls.env = cls.w.start_extra_server("--oauth2-introspection", cls.idp.url)
        cls.idp.user = cls.env["IMAP_USER"]
        ctx = ssl.create_default_context(cafile=cls.env["CA_FILE"])
        c = imaplib.IMAP4_SSL(cls.env["IMAP_HOST"], int(cls.env["IMAPS_PORT"]), ssl_context=ctx)
        c.login(cls.env["IMAP_USER"], cls.env["IMAP_PASS"])
        for m in MESSAGES:
            typ, _ = c.append("INBOX", None, None, m)
            assert typ == "OK", typ
        c.logout()

    @classmethod
    def tearDownClass(cls):
        cls.idp.close()

    def token_command(self):
        """A script printing PREFIX-N on its Nth run (N kept in a file): the prefix, the script, the count file."""
        prefix = "tok%s" % secrets.token_hex(12)
        d = self.w.newdir("oauth-cmd")
        count = os.path.join(d, "runs")
        script = os.path.join(d, "token.sh")
        with open(script, "w") as f:
            f.write('n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; echo %s-$n\n'
                    % (count, count, prefix))
        return prefix, "sh " + script, count

    @staticmethod
    def runs(count):
        try:
            with open(count) as f:
                return int(f.read().strip())
        except OSError:
            return 0

    def mount(self, cmd, name):
        url = "imaps://%s@%s:%s" % (self.env["IMAP_USER"], self.env["IMAP_HOST"], self.env["IMAPS_PORT"])
        return Mount(self.w, args=["-d", "--poll-interval", "1", "--oauth2-token-command", cmd], url=url,
                     password=None, name=name, ca_file=self.env["CA_FILE"])

    def assert_not_leaked(self, m, prefix):
        text = m.log_text()
        self.assertNotIn(prefix, text, "a token in imapfs's log")
        if m.proc is not None and m.proc.poll() is None:
            for what in ("cmdline", "environ"):
                with open("/proc/%d/%s" % (m.proc.pid, what), "rb") as f:
                    self.assertNotIn(prefix.encode(), f.read(), "a token in /proc/PID/%s" % what)

    def dovecot_log(self):
        with open(os.path.join(os.path.dirname(self.env["DOVECOT_CONF"]), "log", "dovecot.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def test_valid_token_mounts_and_reads(self):
        prefix, cmd, count = self.token_command()
        self.idp.valid = {prefix + "-1"}
        with self.mount(cmd, "oauth-ok") as m:
            got = read_file(os.path.join(m.path, "INBOX", "1", "RFC822"))
            self.assertEqual(got, MESSAGES[0])
            self.assertEqual(self.runs(count), 1, "a valid token was asked for again")
            self.assert_not_leaked(m, prefix)
        self.assertIn("method=OAUTHBEARER", self.dovecot_log(), "OAUTHBEARER is offered and preferred")

    def test_refused_token_runs_the_command_again(self):
        prefix, cmd, count = self.token_command()
        self.idp.valid = {prefix + "-2"}  # the first token is "expired"
        with self.mount(cmd, "oauth-renew") as m:
            self.assertEqual(read_file(os.path.join(m.path, "INBOX", "1", "RFC822")), MESSAGES[0])
            self.assertEqual(self.runs(count), 2, "the command runs once more after the refusal, no more")
            self.assertEqual([t for t in self.idp.seen if t.startswith(prefix)][:2],
                             [prefix + "-1", prefix + "-2"])
            self.assert_not_leaked(m, prefix)

    def test_reconnect_gets_a_new_token(self):
        prefix, cmd, count = self.token_command()
        self.idp.valid = {prefix + "-1"}
        with self.mount(cmd, "oauth-reconnect") as m:
            self.assertEqual(read_file(os.path.join(m.path, "INBOX", "1", "RFC822")), MESSAGES[0])
            # the token "expires" and the server drops every session: new logins need a new token
            self.idp.valid = {prefix + "-2"}
            r = run(["doveadm", "-c", self.env["DOVECOT_CONF"], "kick", self.env["IMAP_USER"]], timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            deadline = time.time() + 30
            while True:
                try:
                    got = read_file(os.path.join(m.path, "INBOX", "2", "RFC822"))
                    break
                except OSError as e:
                    if time.time() > deadline:
                        self.fail("no read after the reconnect: %s; log: %s" % (e, m.log_text()[-2000:]))
                    time.sleep(0.5)
            self.assertEqual(got, MESSAGES[1])
            self.assertEqual(self.runs(count), 2)
            self.assert_not_leaked(m, prefix)

    def attempt(self, cmd):
        """imapfs in the background: must fail with one line on stderr and mount nothing."""
        m = self.mount(cmd, "oauth-err")
        m.foreground = False
        m.args.remove("-d")
        t0 = time.time()
        try:
            r = run(m.argv(), env=m.env, stdin=subprocess.DEVNULL, timeout=90)
        finally:
            mounted = is_mounted(m.path)
            for pid in pids_for(m.path):
                os.kill(pid, 9)
            if mounted:
                run(["fusermount3", "-uz", m.path], timeout=10)
        err = r.stderr.decode("utf-8", "replace")
        lines = err.splitlines()
        log("%s -> exit %d in %.2fs: %s" % (self._testMethodName, r.returncode, time.time() - t0, err.strip()))
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(mounted)
        self.assertEqual(len(lines), 1, "want one line on stderr: %r" % err)
        return lines[0]

    def test_always_refused_token_fails_with_one_line(self):
        prefix, cmd, count = self.token_command()
        self.idp.valid = set()
        line = self.attempt(cmd)
        self.assertIn("login failed for %s@" % self.env["IMAP_USER"], line)
        self.assertNotIn(prefix, line)
        self.assertEqual(self.runs(count), 2, "one retry with a new token, then give up")

    def test_failing_token_command(self):
        line = self.attempt("exit 3")
        self.assertEqual(line, "imapfs: --oauth2-token-command failed (exit status: 3)")

    def test_silent_token_command(self):
        line = self.attempt("true")
        self.assertEqual(line, "imapfs: --oauth2-token-command: its first line is empty")

    def test_xoauth2_when_oauthbearer_is_not_offered(self):
        conf = self.env["DOVECOT_CONF"]
        with open(conf) as f:
            orig = f.read()
        want = "auth_mechanisms = plain login oauthbearer xoauth2\n"
        self.assertIn(want, orig)
        try:
            with open(conf, "w") as f:
                f.write(orig.replace(want, "auth_mechanisms = plain login xoauth2\n"))
            r = run(["doveadm", "-c", conf, "reload"], timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            time.sleep(0.5)
            before = self.dovecot_log().count("method=XOAUTH2")
            prefix, cmd, count = self.token_command()
            self.idp.valid = {prefix + "-1"}
            with self.mount(cmd, "oauth-xoauth2") as m:
                self.assertEqual(read_file(os.path.join(m.path, "INBOX", "1", "RFC822")), MESSAGES[0])
                self.assert_not_leaked(m, prefix)
            self.assertGreater(self.dovecot_log().count("method=XOAUTH2"), before)
        finally:
            with open(conf, "w") as f:
                f.write(orig)
            run(["doveadm", "-c", conf, "reload"], timeout=30)
            time.sleep(0.5)
