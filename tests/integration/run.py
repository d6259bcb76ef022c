#!/usr/bin/env python3
"""Run the imapfs integration tests; the last line is `integration: N passed, M failed[, K skipped]`.

usage: tests/integration/run.py [--long] [--server NAME] [--tier T,...] [-k PATTERN]
       (env: IMAPFS_BIN, IMAPFS_CORPUS, KEEP_TMP=1, IMAPFS_SOAK_SECONDS, IMAPFS_TEST_SERVER)
  --long         a several-minute load test (IMAPFS_SOAK_SECONDS=300 unless set)
  --server NAME  the IMAP server the tests run against: dovecot (default), dovecot-min (Dovecot advertising
                 only IMAP4rev1 LITERAL+), cyrus, courier (both from unpacked Debian packages); sets
                 IMAPFS_TEST_SERVER (see harness.py)
  --tier T,...   only these tiers (default: all): content (A_Content B_PartialRead BB_Reads Y_Corpus),
                 live (BC_Live V_ServerQuirks), faults (E_Faults F_Load), errors (C_Errors), lifecycle (D_Lifecycle),
                 extensions (X_Extensions: what imapfs sends to --server dovecot-min; only when named),
                 hostile (H_Hostile: a scripted hostile server, tests/integration/fakeimap.py),
                 desktop (DK_Desktop DK_SystemdUnit W_Desktop: fstab and mount(8), systemd readiness, logs, lifecycle,
                 df with a quota, extended attributes);
                 oauth (O_OAuth: OAuth2 logins against a Dovecot with an oauth2 passdb);
                 readwrite (RW_ReadWrite: --read-write, and the read-only default's EROFS);
                 the read-only check Z_FlagsUnchanged always runs last
"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
TIERS = {
    "content": ["A_Content", "B_PartialRead", "BB_Reads", "Y_Corpus"],
    "live": ["BC_Live", "V_ServerQuirks"],
    "faults": ["E_Faults", "F_Load"],
    "errors": ["C_Errors"],
    "lifecycle": ["D_Lifecycle"],
    "browse": ["X_Browse"],
    "search": ["S_Search"],
    "extensions": ["X_Extensions"],  # only when asked for; needs --server dovecot-min
    "hostile": ["H_Hostile", "H_ContentHostile"],  # a fake server (test_hostile.py) and Dovecot
    "desktop": ["DK_Desktop", "DK_SystemdUnit", "W_Desktop"],  # fstab/mount(8), systemd, logs, lifecycle (test_desktop.py); df, xattrs (test_desktop_fs.py)
    "oauth": ["O_OAuth"],  # OAuth2 logins: a Dovecot with an oauth2 passdb (test_oauth.py)
    "readwrite": ["RW_ReadWrite"],  # --read-write on folders of its own (test_readwrite.py)
}


class TimedResult(unittest.TextTestResult):
    durations = []

    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def stopTest(self, test):
        TimedResult.durations.append((time.time() - self._t0, test.id().split(".", 1)[1]))
        super().stopTest(test)


def main():
    pattern = None
    tiers = None
    args = sys.argv[1:]
    while args[:1] and args[0] in ("--long", "--server", "--tier"):
        if args[0] == "--long":
            args = args[1:]
            os.environ.setdefault("IMAPFS_SOAK_SECONDS", "300")
            continue
        if len(args) < 2:
            print(__doc__, file=sys.stderr)
            return 2
        if args[0] == "--server":
            os.environ["IMAPFS_TEST_SERVER"] = args[1]
        else:
            tiers = [t for t in args[1].split(",") if t]
            if not tiers or any(t not in TIERS for t in tiers):
                print("unknown tier in %r (known: %s)" % (args[1], ", ".join(TIERS)), file=sys.stderr)
                return 2
        args = args[2:]
    # imported only now: the harness reads IMAPFS_TEST_SERVER when it is loaded
    global harness
    import harness  # noqa: E402
    import test_browse  # noqa: E402
    import test_content_hostile  # noqa: E402
    import test_corpus  # noqa: E402
    import test_desktop  # noqa: E402
    import test_desktop_fs  # noqa: E402
    import test_faults  # noqa: E402
    import test_hostile  # noqa: E402
    import test_mount  # noqa: E402
    import test_oauth  # noqa: E402
    import test_readwrite  # noqa: E402
    import test_search  # noqa: E402
    import test_servers  # noqa: E402
    if len(args) == 2 and args[0] == "-k":
        pattern = args[1]
    elif len(args) != 0:
        print(__doc__, file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = ["*%s*" % pattern]
    # explicit order: content first, the flags check last
    classes = [test_mount.A_Content, test_mount.B_PartialRead, test_mount.BB_Reads,
               test_content_hostile.H_ContentHostile, test_mount.BC_Live, test_servers.V_ServerQuirks, test_mount.C_Errors, test_mount.D_Lifecycle,
               test_desktop.DK_Desktop, test_desktop.DK_SystemdUnit,
               test_faults.E_Faults, test_faults.F_Load, test_hostile.H_Hostile, test_browse.X_Browse, test_search.S_Search,
               test_desktop_fs.W_Desktop, test_oauth.O_OAuth, test_corpus.Y_Corpus, test_readwrite.RW_ReadWrite, test_mount.Z_FlagsUnchanged]
    if tiers is not None:
        if "extensions" in tiers:
            classes.insert(-1, test_servers.X_Extensions)
        wanted = {n for t in tiers for n in TIERS[t]} | {"Z_FlagsUnchanged"}
        classes = [c for c in classes if c.__name__ in wanted]
    print("integration: server %s%s" % (harness.SERVER, ", tiers " + ",".join(tiers) if tiers else ""), flush=True)
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in classes)
    t0 = time.time()
    result = None
    try:
        result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=TimedResult).run(suite)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        w = harness._world
        timings = dict(w.timings) if w else {}
        notes = list(w.notes) if w else []
        harness.teardown_world()
    elapsed = time.time() - t0
    for k, v in timings.items():
        print("  %-55s %s" % (k, ("%.2fs" % v) if isinstance(v, float) else v))
    print("  slowest tests:")
    for d, name in sorted(TimedResult.durations, reverse=True)[:8]:
        print("    %6.2fs  %s" % (d, name))
    for n in notes:
        print(n)
    print("  integration tests took %.1fs" % elapsed)
    if result is None:
        print("integration: 0 passed, 1 failed")
        return 1
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped - len(result.expectedFailures)
    line = "integration: %d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
