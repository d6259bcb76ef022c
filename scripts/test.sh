#!/usr/bin/env bash
# Everything CI checks: formatting, clippy, unit + property tests, release build, integration tests.
# Installs what is missing (Debian packages; rustfmt/clippy components). Exits non-zero on any failure.
#   scripts/test.sh                 all steps
#   SKIP_INTEGRATION=1 scripts/test.sh   Rust checks only
# The integration steps run against Dovecot (all tiers), then against a cut-down Dovecot, Cyrus and
# Courier (scripts/servers/; their .debs are downloaded once into /var/cache/imapfs-test-debs).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------- prerequisites
# shellcheck source=scripts/lib/packages.sh
. scripts/lib/packages.sh
install_missing fusermount3=fuse3 /usr/lib/dovecot/imap=dovecot-imapd dovecot=dovecot-imapd \
    openssl=openssl python3=python3 pkg-config=pkg-config /usr/include/openssl/ssl.h=libssl-dev \
    mountpoint=util-linux strace=strace
for comp in rustfmt clippy; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$comp" >/dev/null 2>&1 || echo "warning: could not add $comp" >&2
    fi
done

# ---------------------------------------------------------------- steps
declare -a names=() results=() secs=()
failed=0
LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT
step() { # name command...   (output is shown and kept in $LOGDIR/<n>.log)
    local name=$1 t0 rc
    shift
    echo
    echo "== $name: $*"
    t0=$(date +%s)
    set +e
    "$@" 2>&1 | tee "$LOGDIR/${#names[@]}.log"
    rc=${PIPESTATUS[0]}
    set -e
    names+=("$name"); secs+=($(( $(date +%s) - t0 )))
    if [ $rc -eq 0 ]; then results+=(ok); else results+=("FAILED ($rc)"); failed=$((failed + 1)); fi
    return 0
}

step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets -- -D warnings
# Release mode throughout: one dependency build serves the tests, the binary and the benchmarks.
step "cargo test" cargo test --release
step "cargo build --release" cargo build --release
if [ -z "${SKIP_INTEGRATION:-}" ]; then
    step "imap vs Dovecot" timeout --kill-after=30 600 scripts/imap-server-tests.sh
    if [ -x target/release/imapfs ]; then
        step "integration" timeout --kill-after=30 1800 python3 tests/integration/run.py
        # the content, live and faults tiers against other servers (scripts/servers/): a Dovecot advertising
        # only IMAP4rev1 LITERAL+ (every client fallback), then Cyrus IMAP and Courier-IMAP run from their
        # unpacked Debian packages (README "Servers tested")
        # (the cut-down Dovecot also runs the extensions tier: what imapfs sends, from Dovecot's rawlog)
        for srv in dovecot-min cyrus courier; do
            tiers=content,live,faults
            [ "$srv" = dovecot-min ] && tiers+=,extensions
            step "integration $srv" timeout --kill-after=30 600 \
                python3 tests/integration/run.py --server "$srv" --tier "$tiers"
        done
    else
        echo "== integration: no target/release/imapfs (release build failed)"
        names+=(integration); results+=("FAILED (no binary)"); secs+=(0); failed=$((failed + 1))
    fi
fi

echo
echo "== summary"
for i in "${!names[@]}"; do
    printf '  %-24s %-14s %4ss\n' "${names[$i]}" "${results[$i]}" "${secs[$i]}"
done
# test counts: cargo's "test result:" lines and the integration runner's last line
counts=$(cat "$LOGDIR"/*.log 2>/dev/null | sed -n \
    -e 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' \
    -e 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' \
    | awk '{p += $1; f += $2} END {print p + 0, f + 0}')
read -r tp tf <<<"$counts"
ok=$(( ${#names[@]} - failed ))
echo "  steps: $ok ok, $failed failed"
# every failed step whose log shows no failing test (fmt, clippy, build, a test binary that did not compile
# or crashed) adds one failure to the count
extra=0
for i in "${!names[@]}"; do
    [ "${results[$i]}" = ok ] && continue
    n=$(sed -n -e 's/^test result: [A-Za-z]*\. [0-9]* passed; \([0-9]*\) failed.*/\1/p' \
        -e 's/^integration: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$LOGDIR/$i.log" 2>/dev/null \
        | awk '{f += $1} END {print f + 0}')
    [ "$n" -gt 0 ] || extra=$((extra + 1))
done
echo "tests: $tp passed, $((tf + extra)) failed"
[ "$failed" -eq 0 ]
