#!/usr/bin/env bash
# imapfs benchmarks: one command, results in docs/benchmarks.md.
#
#   scripts/bench.sh [--quick] [--scenarios cat,head,ls,find,grep,par,warm,rss,huge,index,folders,search,
#                    rwmove,rwflags,cpu,findwarm,remount-cat,remount-ls,remount-grep,clock] [--links loopback,proxy]
#                    [--delay-ms 10] [--repeat 3] [--out docs/benchmarks.md] [--keep] [size options]
#   scripts/bench.sh --help
#
# Builds the release binary, starts a throwaway Dovecot (scripts/test-server.sh) in a temp dir, writes
# deterministic messages straight into its maildir (scripts/bench/gen.py), then runs every scenario over
# loopback and through scripts/netproxy.py (added latency), imapfs against a peer (curl or Python imaplib,
# scripts/bench/peer.py), and prints/writes a Markdown table (scripts/bench/bench.py does the work).
# Whatever is left on exit (mounts, imapfs and proxy processes, the server, the temp dir) is cleaned up
# here. BENCH_WORK=DIR uses DIR as the work dir (with --keep, a later run reuses its generated mail).
# Cold runs drop the page cache (needs root; otherwise noted in the report).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

KEEP=0
for arg in "$@"; do
    case "$arg" in
        -h|--help) exec python3 scripts/bench/bench.py --help ;;
        --keep) KEEP=1 ;;
    esac
done

# shellcheck source=scripts/lib/packages.sh
. "$REPO/scripts/lib/packages.sh"
install_missing fusermount3=fuse3 curl=curl python3=python3

WORK=${BENCH_WORK:-}
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d /tmp/imapfs-bench.XXXXXX)
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
chmod 711 "$WORK" # as root, Dovecot reads the mail as "nobody"

mounted() { grep -q " $1 " /proc/self/mountinfo; }

cleanup() {
    local rc=$? m pf pid left=0
    trap - EXIT INT TERM
    for m in "$WORK"/mnt*; do
        [ -d "$m" ] || continue
        if mounted "$m"; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
        fi
    done
    for pf in "$WORK"/pids/*; do
        [ -e "$pf" ] || continue
        pid=${pf##*/}
        # only our own children: imapfs (its argv names a mount point under WORK) or the proxy
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq "$WORK|netproxy.py"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
        rm -f "$pf"
    done
    for m in "$WORK"/mnt*; do
        [ -d "$m" ] && mounted "$m" && { fusermount3 -uz "$m" 2>/dev/null || true; left=1; }
    done
    scripts/test-server.sh stop "$WORK/srv" >/dev/null 2>&1 || true
    if [ "$KEEP" = 1 ] || [ "$left" = 1 ]; then
        echo "bench.sh: work dir kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "bench.sh: cargo build --release" >&2
cargo build --release -q

BENCH_WORK=$WORK BENCH_KEEP=$KEEP python3 scripts/bench/bench.py "$@"
