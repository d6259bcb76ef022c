"""Corpus tier: every real-world message under ../shared/corpus/** (relative to the repo) was APPENDed into
the folder "Corpus" when the world was set up; each file imapfs shows must equal the reference. Skipped,
with a printed note, when the corpus is absent."""
import os
import time
import unittest

from harness import CORPUS_FOLDER, Mount, Watchdog, check_messages, check_stat_tool, corpus_root, log, world


def fmt(problems, limit=40):
    more = "\n  ... and %d more" % (len(problems) - limit) if len(problems) > limit else ""
    return "%d problem(s):\n  " % len(problems) + "\n  ".join(problems[:limit]) + more


class Y_Corpus(unittest.TestCase):
    def test_corpus_messages_match_reference(self):
        w = world()
        if w.corpus is None:
            note = "note: corpus not found at %s; skipping the corpus tier" % corpus_root()
            print(note, flush=True)
            self.skipTest(note)
        msgs = w.messages[CORPUS_FOLDER]
        self.assertEqual(len(msgs), len(w.seeded[CORPUS_FOLDER]), "not every corpus message was appended")
        with Mount(w, name="corpus") as m:
            with Watchdog(w, 300, "reading the corpus"):
                stats, t0 = {}, time.time()
                problems = check_messages(m.path, CORPUS_FOLDER, msgs, stats)
                problems += check_stat_tool(m.path, CORPUS_FOLDER, msgs)
        log("corpus: %d messages, %d files, %d bytes in %.2fs (%d without reference)" % (
            len(msgs), stats.get("files", 0), stats.get("bytes", 0), time.time() - t0, stats.get("no_reference", 0)))
        self.assertFalse(problems, fmt(problems))
