"""Search directories (README "Searching") against Dovecot's own UID SEARCH answers: a table of criteria
(flags, dates, FROM/SUBJECT/TEXT with quotes and non-ASCII, OR/NOT/parentheses, UID ranges,
LARGER/SMALLER), links that resolve to the right message directories, INDEX lines, malformed criteria
refused with a log line and no SEARCH sent, results refreshed after APPEND and a flag change by another
connection, the root search across folders, and no flag changed by searching."""
import datetime
import imaplib
import os
import time
import unittest

from harness import SERVER, Mount, Watchdog, read_file, run, world
from imapcommon import check, connect, imap_quote

FOLDER = "Searching"  # a folder of our own: other tests' counts stay as they are


def message(frm, subject, body, pad=0):
    head = "From: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" \
           "Content-Transfer-Encoding: 8bit\r\n\r\n" % (frm, subject)
    return (head + body + "\r\n" + "x" * pad + "\r\n").encode("utf-8")


def date(day, month):
    return imaplib.Time2Internaldate(datetime.datetime(2024, month, day, 12, 0, tzinfo=datetime.timezone.utc))


MESSAGES = [
    (r"(\Seen)", date(10, 2), message("Alice <alice@example.org>", "quarterly report", "numbers inside")),
    (None, date(1, 3), message("Bob <bob@example.org>", 'say "hi" to all', "a needle in here", pad=3000)),
    (r"(\Flagged)", date(15, 3), message("Jörg Müller <joerg@example.org>", "Grüße aus Köln", "kölsch needle")),
    (r"(\Seen \Flagged)", date(20, 4), message("alice@example.org", "invoice a/b", "pay now", pad=5000)),
    (None, date(5, 5), message("Carol <carol@example.org>", "lunch", "nothing here")),
]

# (name in the path, criteria as sent to the server by the test; a bytes tail goes as a UTF-8 literal)
CRITERIA = [
    ("ALL", "ALL"),
    ("UNSEEN", "UNSEEN"),
    ("FLAGGED", "FLAGGED"),
    ("SEEN NOT FLAGGED", "SEEN NOT FLAGGED"),
    ("FROM alice", "FROM alice"),
    ('SUBJECT "quarterly report"', 'SUBJECT "quarterly report"'),
    (r'SUBJECT "say \"hi\""', r'SUBJECT "say \"hi\""'),
    ("SUBJECT a%2Fb", 'SUBJECT "a/b"'),
    ("TEXT needle", "TEXT needle"),
    ("BODY numbers", "BODY numbers"),
    ("FROM Jörg", ("FROM", "Jörg".encode())),
    ("SUBJECT Grüße", ("SUBJECT", "Grüße".encode())),
    ("TEXT kölsch", ("TEXT", "kölsch".encode())),
    ("OR FROM bob FROM carol", "OR FROM bob FROM carol"),
    ("NOT (SEEN)", "NOT (SEEN)"),
    ("(FROM alice SEEN) OR FLAGGED UNSEEN", "(FROM alice SEEN) OR FLAGGED UNSEEN"),
    ("UID 2:4", "UID 2:4"),
    ("UID 3:*", "UID 3:*"),
    ("LARGER 2000", "LARGER 2000"),
    ("SMALLER 2000", "SMALLER 2000"),
    ("SINCE 1-Mar-2024", "SINCE 1-Mar-2024"),
    ("BEFORE 1-Mar-2024", "BEFORE 1-Mar-2024"),
    ("ON 15-Mar-2024", "ON 15-Mar-2024"),
    ("SINCE 1-Mar-2024 BEFORE 1-May-2024 NOT FLAGGED", "SINCE 1-Mar-2024 BEFORE 1-May-2024 NOT FLAGGED"),
]

MALFORMED = [
    "SUBJECT a%0D%0AX DELETE INBOX",  # CR LF
    'SUBJECT "unbalanced',
    "(UNSEEN",
    "UNSEEN)",
    "FROBNICATE",
    "UID 1..3",
    "SUBJECT 100%",  # a bad % escape
    "SUBJECT %zz",
]


def uids_of(names):
    return sorted(int(n) for n in names if n != "INDEX")


class S_Search(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = world()
        cls.c = connect(cls.w.env)
        c = cls.c
        c.create(imap_quote(FOLDER))
        for flags, when, raw in MESSAGES:
            check(c.append(imap_quote(FOLDER), flags, when, raw), "APPEND")
        cls.m = Mount(cls.w, args=["--poll-interval", "1"], name="search")
        cls.m.start()
        cls.root = cls.m.path
        cls.dir = os.path.join(cls.root, FOLDER, "SEARCH")

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        try:
            cls.c.delete(imap_quote(FOLDER))
        finally:
            cls.c.logout()

    def tearDown(self):
        d = self.m.died()
        if d:
            self.fail(d)

    def server_search(self, criteria):
        c = self.c
        c.select(imap_quote(FOLDER), readonly=True)
        if isinstance(criteria, tuple):
            key, lit = criteria
            c.literal = lit
            res = c.uid("SEARCH", "CHARSET", "UTF-8", key)
        else:
            res = c.uid("SEARCH", criteria)
        data = check(res, "UID SEARCH %r" % (criteria,))
        return sorted(int(u) for u in b" ".join(d for d in data if d).split())

    def flags(self):
        self.c.select(imap_quote(FOLDER), readonly=True)
        data = check(self.c.uid("FETCH", "1:*", "(FLAGS)"), "FETCH FLAGS")
        return sorted(d.decode() if isinstance(d, bytes) else d[0].decode() for d in data if d)

    def searches_sent(self):
        """UID SEARCH commands the server finished, from its stats (grouped by command name)."""
        if SERVER not in ("dovecot", "dovecot-min"):
            raise unittest.SkipTest("command counts are Dovecot's stats")
        r = run(["doveadm", "-c", self.w.env["DOVECOT_CONF"], "stats", "dump"], timeout=20)
        n = 0
        for line in r.stdout.decode().splitlines():
            f = line.split("\t")
            if len(f) > 3 and f[0].startswith("imap_bytes_by_cmd") and "search" in f[0].lower() \
                    and f[1] == "bytes_out":
                n += int(f[2])
        return n

    def test_01_results_equal_the_servers_uid_search(self):
        before = self.flags()
        with Watchdog(self.w, 120, "search table"):
            for name, criteria in CRITERIA:
                want = self.server_search(criteria)
                self.assertTrue(want, "the table's criteria each match something: %s" % name)
                got = uids_of(os.listdir(os.path.join(self.dir, name)))
                self.assertEqual(got, want, name)
        self.assertGreater(len(self.server_search("ALL")), 0)
        self.assertEqual(self.flags(), before, "searching changed flags")

    def test_02_links_resolve_to_the_message_directories(self):
        before = self.flags()
        d = os.path.join(self.dir, "UNSEEN")
        uids = uids_of(os.listdir(d))
        self.assertEqual(uids, self.server_search("UNSEEN"))
        self.assertTrue(uids)
        for uid in uids:
            link = os.path.join(d, str(uid))
            self.assertTrue(os.path.islink(link))
            self.assertEqual(os.readlink(link), "../../%d" % uid)
            self.assertEqual(os.path.realpath(link), os.path.realpath(os.path.join(self.root, FOLDER, str(uid))))
            self.assertEqual(read_file(os.path.join(link, "HEADER")),
                             read_file(os.path.join(self.root, FOLDER, str(uid), "HEADER")))
        # the shell's way: cat .../SEARCH/UNSEEN/*/HEADER
        r = run(["sh", "-c", 'cat "$1"/*/HEADER', "sh", d], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(b"\r\n\r\n"), len(uids))
        self.assertEqual(self.flags(), before, "reading through links changed flags")

    def test_03_index_has_the_folders_lines_of_the_matches(self):
        d = os.path.join(self.dir, "FLAGGED")
        uids = uids_of(os.listdir(d))
        index = read_file(os.path.join(self.root, FOLDER, "INDEX")).decode()
        want = [line for line in index.splitlines() if int(line.split("\t")[0]) in uids]
        got = read_file(os.path.join(d, "INDEX")).decode()
        self.assertEqual(got.splitlines(), want)
        self.assertEqual(os.stat(os.path.join(d, "INDEX")).st_size, len(got.encode()))
        self.assertEqual(len(want), len(uids))

    def test_04_malformed_criteria_are_refused_and_send_nothing(self):
        os.listdir(os.path.join(self.root, FOLDER))  # the listing is in memory: nothing else to ask
        sent = self.searches_sent()
        for name in MALFORMED:
            with self.assertRaises(FileNotFoundError, msg=name):
                os.stat(os.path.join(self.dir, name))
        self.assertEqual(self.searches_sent(), sent, "a SEARCH went out for malformed criteria")
        log = self.m.log_text()
        self.assertIn("refused", log)
        self.assertGreaterEqual(log.count("refused"), len(MALFORMED))
        self.assertNotIn("\r", log.split("refused")[1].splitlines()[0])
        # the valid ones in the table did send searches (the counter works)
        os.listdir(os.path.join(self.dir, "SUBJECT lunch"))
        self.assertGreater(self.searches_sent(), sent)

    def test_05_results_follow_append_and_flag_changes(self):
        d = os.path.join(self.dir, "UNSEEN")
        first = uids_of(os.listdir(d))
        other = connect(self.w.env)
        try:
            check(other.append(imap_quote(FOLDER), None, date(1, 6), message("Dan <d@x>", "fresh", "new")), "APPEND")
            want = self.server_search("UNSEEN")
            self.assertEqual(len(want), len(first) + 1)
            self.assertEqual(self.until(d, want), want, "after APPEND")
            other.select(imap_quote(FOLDER))
            check(other.uid("STORE", str(first[0]), "+FLAGS.SILENT", r"(\Seen)"), "STORE")
            want = self.server_search("UNSEEN")
            self.assertNotIn(first[0], want)
            self.assertEqual(self.until(d, want), want, "after a flag change")
            self.assertFalse(os.path.exists(os.path.join(d, str(first[0]))))
            check(other.uid("STORE", str(first[0]), "-FLAGS.SILENT", r"(\Seen)"), "STORE")
        finally:
            other.logout()

    def until(self, d, want, seconds=15):
        deadline = time.time() + seconds
        while True:
            got = uids_of(os.listdir(d))
            if got == want or time.time() > deadline:
                return got
            time.sleep(0.3)

    def test_06_recent_searches_newest_first(self):
        for name in ("FROM bob", "FROM carol", "FROM bob"):
            os.listdir(os.path.join(self.dir, name))
        got = os.listdir(self.dir)
        self.assertEqual(got[:2], ["FROM bob", "FROM carol"])
        self.assertLessEqual(len(got), 32)
        self.assertNotIn("FROBNICATE", got)

    def test_07_root_search_across_folders(self):
        d = os.path.join(self.root, "SEARCH", 'SUBJECT "quarterly report"')
        got = os.listdir(d)
        self.assertIn(FOLDER, got)
        want = self.server_search('SUBJECT "quarterly report"')
        sub = os.path.join(d, FOLDER)
        self.assertEqual(uids_of(os.listdir(sub)), want)
        link = os.path.join(sub, str(want[0]))
        self.assertEqual(os.readlink(link), "../../../%s/%d" % (FOLDER, want[0]))
        self.assertEqual(read_file(os.path.join(link, "HEADER")),
                         read_file(os.path.join(self.root, FOLDER, str(want[0]), "HEADER")))
        # every listed folder's links match that folder's own search
        for name in got:
            inside = os.listdir(os.path.join(d, name))
            self.assertTrue(inside, name)
            for uid in inside:
                self.assertTrue(os.path.isdir(os.path.join(d, name, uid)), (name, uid))

    def test_08_idle_change_refreshes_at_once(self):
        """With a poll interval far longer than the wait, only IDLE can bring the change in time."""
        m = Mount(self.w, args=["--poll-interval", "120"], name="search-idle")
        m.start()
        other = connect(self.w.env)
        try:
            d = os.path.join(m.path, FOLDER, "SEARCH", "SUBJECT idle-marker")
            self.assertEqual(uids_of(os.listdir(d)), [])
            time.sleep(1)  # let the watcher settle into IDLE on the folder
            check(other.append(imap_quote(FOLDER), None, date(2, 6),
                               message("Eve <e@x>", "idle-marker", "pushed")), "APPEND")
            want = self.server_search("SUBJECT idle-marker")
            self.assertEqual(len(want), 1)
            self.assertEqual(self.until(d, want, seconds=10), want, "after APPEND, with IDLE")
            other.select(imap_quote(FOLDER))
            check(other.uid("STORE", str(want[0]), "+FLAGS.SILENT", r"(\Flagged)"), "STORE")
            d2 = os.path.join(m.path, FOLDER, "SEARCH", "SUBJECT idle-marker FLAGGED")
            self.assertEqual(uids_of(os.listdir(d2)), want)
            check(other.uid("STORE", str(want[0]), "-FLAGS.SILENT", r"(\Flagged)"), "STORE")
            self.assertEqual(self.until(d2, [], seconds=10), [], "after a flag change, with IDLE")
        finally:
            other.logout()
            m.stop()
