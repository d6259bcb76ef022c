"""Extensions tier: imapfs sends nothing beyond what the server advertises. Run against the Dovecot that
advertises only IMAP4rev1 LITERAL+ (run.py --server dovecot-min --tier extensions): that Dovecot still
implements IDLE, BINARY, CONDSTORE, ... when a client sends them anyway, so the other tiers pass even if
imapfs ignores CAPABILITY; this one reads what imapfs really sent (Dovecot's rawlog of every session) while
it lists, reads every file of INBOX and waits for new mail with --poll-interval 60."""
import os
import re
import subprocess
import time
import unittest

from harness import SERVER, Mount, Watchdog, folder_path, log, read_file, run, world

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
                uids = sorted(int(n) for n in os.listdir(d))
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
                while time.time() < t_end and len(os.listdir(d)) == len(uids):
                    time.sleep(0.2)
        sent = imapfs_commands(rawlog, since - 1)
        log("extensions: %d files read; imapfs sent %d lines in %d sessions" % (
            n, len(sent), len({s for s, _ in sent})))
        self.assertTrue(sent, "no imapfs session found in the rawlog %s" % rawlog)
        bad = violations(sent)
        self.assertFalse(bad, "imapfs sent commands or items the server does not advertise (CAPABILITY: "
                         "IMAP4rev1 LITERAL+):\n  " + "\n  ".join(bad[:20]))
