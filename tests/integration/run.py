#!/usr/bin/env python3
"""Run the imapfs integration tests; the last line is `integration: N passed, M failed[, K skipped]`.

usage: tests/integration/run.py [--long] [-k PATTERN]   (env: IMAPFS_BIN, IMAPFS_CORPUS, KEEP_TMP=1,
                                                          IMAPFS_SOAK_SECONDS)
  --long   a several-minute load test (IMAPFS_SOAK_SECONDS=300 unless set)
"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_corpus  # noqa: E402
import test_faults  # noqa: E402
import test_hostile  # noqa: E402
import test_mount  # noqa: E402


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
    args = sys.argv[1:]
    if args[:1] == ["--long"]:
        args = args[1:]
        os.environ.setdefault("IMAPFS_SOAK_SECONDS", "300")
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
               test_mount.BC_Live, test_mount.C_Errors, test_mount.D_Lifecycle,
               test_faults.E_Faults, test_faults.F_Load, test_hostile.H_Hostile, test_corpus.Y_Corpus, test_mount.Z_FlagsUnchanged]
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
