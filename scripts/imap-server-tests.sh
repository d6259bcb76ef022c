#!/usr/bin/env bash
# The IMAP layer's real-server tests (src/imap/tests.rs): against a throwaway Dovecot seeded
# with the project's generated messages. Extra cargo test arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d /tmp/imapfs-rs-XXXXXX)
chmod 711 "$dir"
cleanup() { scripts/test-server.sh stop "$dir/server" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

scripts/test-server.sh start "$dir/server" >/dev/null
# shellcheck disable=SC1091
. "$dir/server/env"
python3 tests/integration/gen_messages.py "$dir/msgs" --no-big >/dev/null
python3 scripts/seed.py --env "$dir/server/env" -q INBOX="$dir/msgs/inbox" Broken="$dir/msgs/broken"

export IMAPFS_TEST_SERVER="$IMAP_HOST:$IMAPS_PORT,$IMAP_USER,$IMAP_PASS,$CA_FILE,$IMAP_PORT"
export IMAPFS_TEST_LIMIT=1
# They are #[ignore]d without a server, so a plain `cargo test` reports them as ignored.
cargo test --release --lib imap::tests "$@" -- --test-threads=1 --ignored
