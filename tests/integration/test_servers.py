"""Extensions tier: imapfs sends nothing beyond what the server advertises. Run against the Dovecot that
advertises only IMAP4rev1 LITERAL+ (run.py --server dovecot-min --tier extensions): that Dovecot still
implements IDLE, BINARY, CONDSTORE, ... when a client sends them anyway, so the other tiers pass even if
imapfs ignores CAPABILITY; this one reads what imapfs really sent (Dovecot's rawlog of every session) while
it lists, reads every file of INBOX and waits for new mail with --poll-interval 60."""
import contextlib
import os
import re
import subprocess
import time
import unittest

from harness import SERVER, Mount, Watchdog, folder_path, log, read_file, run, uid_names, world

# RFC 3501 commands (UID takes FETCH/SEARCH/STORE/COPY); LITERAL+ only changes how literals are sent
RFC3501 = {"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "SELECT", "EXAMINE", "CREATE",
           "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "CHECK", "CLOSE",
           "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY"}
UID_SUB = {"FETCH", "SEARCH", "STORE", "COPY"}
# items of extensions that may hide inside an RFC 3501 command (BINARY, CONDSTORE/QRESYNC, ESEARCH,
# LIST-EXTENDED/LIST-STATUS/SPECIAL-USE)
EXT_WORDS = re.compile(rb"\b(BINARY(\.PEEK|\.SIZE)?\[|CHANGEDSINCE|MODSEQ|VANISHED|RETURN \(|HIGHESTMODSEQ)")
IMAPLIB_TAG = re.compile(rb"^[A-P]{4}\d+$")  # the tests' own imaplib sessions (imaplib's tag format)


def imapfs_commands(rawlog_dir, since):
    """[(session file, line)] of every line imapfs sent (rawlog .in files of sessions opened after `since`
    whose tags are not imaplib's)."""
    out = []
    for name in sorted(os.listdir(rawlog_dir)):
        p = os.path.join(rawlog_dir, name)
        if not name.endswith(".in") or os.stat(p).st_mtime < since:
            continue
        with open(p, "rb") as f:
            lines = [l.rstrip(b"\r\n").split(b" ", 1)[-1] for l in f]  # drop rawlog's timestamp
        if lines and IMAPLIB_TAG.match(lines[0].split(b" ", 1)[0]):  # (later lines may be APPEND literals)
            continue
        out += [(name, l) for l in lines]
    return out


def violations(lines):
    bad = []
    for name, line in lines:
        parts = line.split(b" ")
        if line.strip() == b"DONE" or len(parts) < 2:  # DONE ends an IDLE (which is reported itself)
            continue
        cmd = parts[1].upper().decode("ascii", "replace")
        ok = cmd in RFC3501 or (cmd == "UID" and len(parts) > 2 and parts[2].upper().decode() in UID_SUB)
        if not ok or EXT_WORDS.search(line.upper()):
            bad.append("%s: %s" % (name, line[:120].decode("ascii", "replace")))
    return bad


class X_Extensions(unittest.TestCase):
    def test_nothing_beyond_the_advertised_capabilities_is_sent(self):
        if SERVER != "dovecot-min":
            self.skipTest("needs --server dovecot-min (a server advertising only IMAP4rev1 LITERAL+)")
        import gen_messages
        import seed
        from imapcommon import connect, imap_quote
        w = world()
        env = w.start_extra_server()
        conf, rawlog = env["DOVECOT_CONF"], os.path.join(w.servers[-1], "rawlog")
        os.mkdir(rawlog)
        os.chown(rawlog, *[int(x) for x in run(["stat", "-c", "%u %g", os.path.join(w.servers[-1], "home")],
                                              timeout=10).stdout.split()])
        with open(conf, "a") as f:
            f.write("rawlog_dir = %s\n" % rawlog)
        r = run(["doveadm", "-c", conf, "reload"], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        inbox = os.path.join(w.tmp, "messages", w.manifest["folders"]["INBOX"]["dir"])
        seed.seed(env, [("INBOX", inbox)], "mixed", quiet=True)
        time.sleep(1.1)  # rawlog names and mtimes have 1 s resolution: sessions from here on are the mount's
        since = time.time()
        url = "imaps://%s@127.0.0.1:%s" % (env["IMAP_USER"], env["IMAPS_PORT"])
        with Mount(w, args=["--poll-interval", "60"], url=url, password=env["IMAP_PASS"], ca_file=env["CA_FILE"],
                   name="ext") as m:
            with Watchdog(w, 120, "reads on the cut-down server"):
                d = os.path.join(m.path, folder_path("INBOX"))
                uids = uid_names(d)
                n = 0
                for uid in uids:
                    for name in os.listdir(os.path.join(d, str(uid))):
                        try:
                            read_file(os.path.join(d, str(uid), name))
                            n += 1
                        except OSError:
                            pass
                # new mail while mounted: imapfs may wait for it (IDLE only if advertised) or poll
                c = connect(env)
                try:
                    c.append(imap_quote("INBOX"), None, None, gen_messages.message(
                        gen_messages.std_headers(997, "ext"), gen_messages.leaf("text/plain", b"x\r\n", "7bit")))
                finally:
                    c.logout()
                t_end = time.time() + 5
                while time.time() < t_end and len(uid_names(d)) == len(uids):
                    time.sleep(0.2)
        sent = imapfs_commands(rawlog, since - 1)
        log("extensions: %d files read; imapfs sent %d lines in %d sessions" % (
            n, len(sent), len({s for s, _ in sent})))
        self.assertTrue(sent, "no imapfs session found in the rawlog %s" % rawlog)
        bad = violations(sent)
        self.assertFalse(bad, "imapfs sent commands or items the server does not advertise (CAPABILITY: "
                         "IMAP4rev1 LITERAL+):\n  " + "\n  ".join(bad[:20]))


# ---------------------------------------------------------------- what a second server shows (issue 13)


def seeded_uid(w, folder, name):
    """The UID of the generated message `name` in `folder` (UIDs follow the accepted APPENDs), or None."""
    entries = [e for e in w.manifest["folders"][folder]["messages"] if e["name"] == name]
    want = os.path.join(w.tmp, "messages", entries[0]["file"])
    for i, entry in enumerate(w.seeded.get(folder, [])):
        if entry[0] == want:
            return i + 1, want
    return None, want


def body_of(path):
    """The body of a generated message file as stored (after the first empty line)."""
    with open(path, "rb") as f:
        return f.read().split(b"\r\n\r\n", 1)[1]


def server_dir_of(w, folder_raw):
    """The maildir of a folder of the world's server (Dovecot: LAYOUT=fs; Courier: Maildir++), or None."""
    home = os.path.join(w.server_dir, "home", w.env["IMAP_USER"], "Maildir")
    if SERVER == "courier":
        return os.path.join(home, "." + folder_raw[len("INBOX."):])
    if SERVER in ("dovecot", "dovecot-min"):
        return os.path.join(home, folder_raw)
    return None


def run_threads(ths):
    for t in ths:
        t.start()
    for t in ths:
        t.join()


class V_ServerQuirks(unittest.TestCase):
    """Issue 13, item 3: what Courier-IMAP showed, as tests every server runs. The expected bytes come from
    the generated message files, not from the server."""

    def refused_skip(self, w, uid, path):
        if uid is None:
            why = [r[2] for r in w.refused if r[1] == path]
            self.assertTrue(why, "%s was not seeded, and no refusal was recorded" % path)
            self.skipTest("%s refused the message at APPEND: %s" % (SERVER, why[0]))

    def test_toplevel_message_rfc822_part_is_the_whole_encapsulated_message(self):
        # Courier answers BODY[1] of such a message with the encapsulated message's body only
        w = world()
        uid, path = seeded_uid(w, "INBOX", "rfc822-toplevel")
        self.refused_skip(w, uid, path)
        want = body_of(path)  # 7bit: the encapsulated message as stored
        with Mount(w, name="rfc822top") as m:
            p = os.path.join(m.path, folder_path("INBOX"), str(uid), "1")
            with Watchdog(w, 30, "read a top-level message/rfc822"):
                self.assertEqual(os.stat(p).st_size, len(want))
                self.assertEqual(read_file(p), want)

    def test_multipart_without_boundary_is_readable(self):
        # the body of a multipart whose boundary parameter is missing: Courier reports one part of type
        # multipart/mixed (its body as stored must be the part file "1"), Dovecot an empty text/plain part
        from imapcommon import connect, imap_quote
        w = world()
        uid, path = seeded_uid(w, "Broken", "missing-boundary")
        self.refused_skip(w, uid, path)
        want = body_of(path)
        c = connect(w.env)
        try:
            c.select(imap_quote("Broken"), readonly=True)
            typ, data = c.uid("FETCH", str(uid), "(BODYSTRUCTURE)")
            typ, text = c.uid("FETCH", str(uid), "(BODY.PEEK[TEXT])")
        finally:
            c.logout()
        structure = b" ".join(d if isinstance(d, bytes) else b"".join(d) for d in data if d).upper()
        # Cyrus 3.6 loses this body: BODY[TEXT] is "" and the structure a 0-byte text/plain
        server_text = b"".join(d[1] for d in text if isinstance(d, tuple))
        one_multipart_part = b'BODYSTRUCTURE ("MULTIPART" "MIXED" ' in structure
        if SERVER == "courier":
            self.assertTrue(one_multipart_part, "Courier no longer reports it as one multipart part: %r" % structure)
        with Mount(w, name="noboundary") as m:
            d = os.path.join(m.path, folder_path("Broken"), str(uid))
            with Watchdog(w, 30, "read a multipart without boundary"):
                self.assertEqual(read_file(os.path.join(d, "RFC822")), read_file(path))
                if server_text == want:
                    self.assertEqual(read_file(os.path.join(d, "TEXT")), want)
                if one_multipart_part:
                    self.assertEqual(os.stat(os.path.join(d, "1")).st_size, len(want))
                    self.assertEqual(read_file(os.path.join(d, "1")), want)

    def test_new_mail_is_readable_as_soon_as_listed(self):
        # Courier does not tell a session that has the folder open about new mail until NOOP/EXAMINE: a
        # pooled connection that EXAMINEd the folder before the APPEND must not answer "no such message"
        import threading
        import gen_messages
        from imapcommon import connect, imap_quote
        w = world()
        folder = "Fresh"
        c = connect(w.env)
        try:
            c.create(imap_quote(folder))
            for i in range(4):
                c.append(imap_quote(folder), None, None, gen_messages.message(
                    gen_messages.std_headers(700 + i, "old %d" % i), gen_messages.leaf("text/plain", b"old\r\n", "7bit")))
            with Mount(w, args=["--poll-interval", "1", "--connections", "4"], name="fresh") as m:
                d = os.path.join(m.path, folder_path(folder))
                problems = []
                for round_ in range(4):
                    # every pooled connection has the folder open: four readers at once
                    olds = uid_names(d)
                    ths = [threading.Thread(target=lambda u=u: read_file(os.path.join(d, str(u), "1")))
                           for u in olds]
                    with Watchdog(w, 30, "read old messages"):
                        run_threads(ths)
                    if round_ % 2:
                        time.sleep(2)  # the sessions sit idle with the folder open for a while
                    body = b"fresh %d\r\n" % round_
                    c.append(imap_quote(folder), None, None, gen_messages.message(
                        gen_messages.std_headers(710 + round_, "fresh %d" % round_),
                        gen_messages.leaf("text/plain", body, "7bit")))
                    t0 = time.time()
                    while time.time() - t0 < 15 and len(uid_names(d)) == len(olds):
                        time.sleep(0.05)
                    new = sorted(set(uid_names(d)) - set(olds))
                    self.assertTrue(new, "round %d: the new message was not listed within 15 s" % round_)
                    got = {}

                    def reader(k, uid=new[0]):
                        try:
                            got[k] = read_file(os.path.join(d, str(uid), "1"))
                        except OSError as e:
                            got[k] = e
                    ths = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
                    with Watchdog(w, 30, "read the new message"):
                        run_threads(ths)
                    problems += ["round %d, reader %d: %r" % (round_, k, v) for k, v in sorted(got.items()) if v != body]
                self.assertFalse(problems, "a listed new message was not readable at once:\n  " + "\n  ".join(problems))
        finally:
            with contextlib.suppress(Exception):
                c.delete(imap_quote(folder))
            c.logout()

    def test_idle_only_when_advertised_and_polling_said_at_the_default_level(self):
        # the other half, IDLE used when advertised, is BC_Live's push test (new mail within seconds with
        # --poll-interval 60); X_Extensions checks on the cut-down Dovecot that no IDLE is sent
        from imapcommon import connect
        w = world()
        c = connect(w.env)
        try:
            idle = b"IDLE" in c.capability()[1][0].upper().split()  # after login (Cyrus says more then)
        finally:
            c.logout()
        with Mount(w, args=["--poll-interval", "60"], name="idlelog") as m:  # no -d: the default level
            with Watchdog(w, 30, "ls INBOX"):
                uid_names(os.path.join(m.path, folder_path("INBOX")))
            time.sleep(1.5)  # the watcher picks the folder in use within 250 ms
            lines = [l for l in m.log_text().splitlines() if "IDLE" in l]
        if idle:
            self.assertFalse([l for l in lines if "polling" in l], "IDLE is advertised, yet: %s" % lines)
        else:
            self.assertTrue([l for l in lines if "WARN" in l and "polling for changes only" in l],
                            "no warning that imapfs polls (the server does not offer IDLE); IDLE lines: %s" % lines)

    def test_refresh_of_a_big_folder_costs_little(self):
        """5,000 messages, --poll-interval 1: each refresh must not list the folder again (Courier's EXAMINE
        has no [UIDNEXT]; imapfs asks STATUS). Bytes through a counting proxy while nothing changes."""
        from imapcommon import connect, imap_quote
        from test_faults import Proxy
        w = world()
        folder = "Refresh5000"
        c = connect(w.env)
        c.create(imap_quote(folder))
        mdir = server_dir_of(w, "INBOX." + folder if SERVER == "courier" else folder)
        if mdir is None or not os.path.isdir(mdir):
            c.logout()
            self.skipTest("no maildir to fill quickly on %s (APPEND of 5,000 messages takes minutes)" % SERVER)
        st = os.stat(mdir)
        t0 = time.time()
        for i in range(5000):
            p = os.path.join(mdir, "cur", "%d.M%dP1.imapfs-test:2," % (1796000000 + i, i))
            with open(p, "wb") as f:
                f.write(b"From: a@example.org\r\nSubject: refresh %d\r\nMessage-ID: <r%d@imapfs.test>\r\n\r\n"
                        b"body %d\r\n" % (i, i, i))
            os.chown(p, st.st_uid, st.st_gid)
        c.select(imap_quote(folder), readonly=True)  # the server assigns the UIDs now
        c.logout()
        log("refresh: 5,000 messages written in %.2fs" % (time.time() - t0))
        proxy = Proxy(w, w.env["IMAPS_PORT"], name="refresh-proxy")
        try:
            url = "imaps://%s@127.0.0.1:%d" % (w.env["IMAP_USER"], proxy.port)
            with Mount(w, args=["--poll-interval", "1"], url=url, name="refresh") as m:
                d = os.path.join(m.path, folder_path(folder))
                with Watchdog(w, 60, "list 5,000 messages"):
                    self.assertEqual(len(uid_names(d)), 5000)
                time.sleep(2)

                def total():
                    s = proxy.stats()
                    return s.get("bytes_c2s", 0) + s.get("bytes_s2c", 0)
                b0, t0 = total(), time.monotonic()
                time.sleep(8)
                with Watchdog(w, 30, "list again"):
                    self.assertEqual(len(uid_names(d)), 5000)
                b1, secs = total(), time.monotonic() - t0
            per = (b1 - b0) / secs  # one refresh a second (--poll-interval 1)
            log("refresh: %s, 5,000 messages, --poll-interval 1: %.0f bytes per refresh (%d bytes in %.1fs)"
                % (SERVER, per, b1 - b0, secs))
            # a full listing of 5,000 messages is about 350 KB; a STATUS about 100 bytes each way
            self.assertLess(per, 5000, "each refresh of an unchanged folder moved %.0f bytes" % per)
        finally:
            proxy.stop()
            c = connect(w.env)
            try:
                c.delete(imap_quote(folder))
            finally:
                c.logout()
