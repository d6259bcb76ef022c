#!/usr/bin/env bash
# The test Dovecot (scripts/test-server.sh) advertising only IMAP4rev1 + LITERAL+: no BINARY, IDLE,
# CONDSTORE, ESEARCH, SPECIAL-USE, LIST-STATUS, MOVE, UIDPLUS, QUOTA, ... so that every client fallback
# is exercised. Same arguments and DIR/env as scripts/test-server.sh (start DIR [opts] | stop DIR |
# status DIR); a restart with `start DIR` keeps the cut-down capabilities.
set -euo pipefail
TS="$(cd "$(dirname "$0")/.." && pwd)/test-server.sh"
CAPS=${IMAPFS_MIN_CAPABILITY:-IMAP4rev1 LITERAL+}
if [ "${1:-}" = start ] && [ $# -ge 2 ]; then
    exec bash "$TS" "$@" --capability "$CAPS"
fi
exec bash "$TS" "$@"
