# Sourced by scripts/servers/*.sh: what every second-server script needs.
# shellcheck shell=bash

SERVERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# where downloaded .debs are kept between runs (apt-get download is skipped when a .deb is there)
DEB_CACHE=${IMAPFS_DEB_CACHE:-/var/cache/imapfs-test-debs}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }



need_pkgs() { # CHECK=PACKAGE ... (scripts/lib/packages.sh)
    # shellcheck source=scripts/lib/packages.sh
    . "$SERVERS_DIR/../lib/packages.sh"
    install_missing "$@" || die "could not install the packages it needs"
}

need_libs() { # PACKAGE...: install the (library) packages that are not installed (apt-get update if needed)
    local missing=() p arch
    arch=$(dpkg --print-architecture)
    for p in "$@"; do
        [ -e "/var/lib/dpkg/info/$p.list" ] || [ -e "/var/lib/dpkg/info/$p:$arch.list" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
        || die "could not install ${missing[*]}"
}

fetch_debs() { # PACKAGE...: make sure DEB_CACHE holds a .deb of each (apt-get download, never install)
    local missing=() p
    mkdir -p "$DEB_CACHE"
    for p in "$@"; do
        compgen -G "$DEB_CACHE/${p}_*.deb" >/dev/null || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "downloading ${missing[*]} into $DEB_CACHE" >&2
    # apt's sandbox user may not write there: that only gives a warning
    ( cd "$DEB_CACHE" && apt-get download -q "${missing[@]}" >/dev/null 2>&1 ) \
        || ( cd "$DEB_CACHE" && apt-get update -q >/dev/null 2>&1 && apt-get download -q "${missing[@]}" >/dev/null ) \
        || die "apt-get download ${missing[*]} failed"
}

extract_debs() { # ROOT PACKAGE...: dpkg -x the cached .debs into ROOT (once; newest .deb of each)
    local root=$1 p deb
    shift
    [ -f "$root/.extracted" ] && [ "$(cat "$root/.extracted")" = "$*" ] && return 0
    rm -rf "$root"
    mkdir -p "$root"
    for p in "$@"; do
        deb=$(ls -1 "$DEB_CACHE/${p}"_*.deb | sort -V | tail -1)
        dpkg -x "$deb" "$root" || die "dpkg -x $deb failed"
    done
    echo "$*" >"$root/.extracted"
}

# shellcheck source=scripts/lib/testservers.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/testservers.sh"

keep_credentials() { # DIR: print "USER PASS" (kept from DIR/env across restarts, else new ones)
    local user="" pass=""
    if [ -f "$1/env" ]; then
        user=$(sed -n 's/^IMAP_USER=//p' "$1/env" | tr -d "'")
        pass=$(sed -n 's/^IMAP_PASS=//p' "$1/env" | tr -d "'")
    fi
    echo "${user:-tester} ${pass:-$(openssl rand -hex 12)}"
}

write_env() { # DIR SERVER IMAPS_PORT IMAP_PORT USER PASS: DIR/env in the format of scripts/test-server.sh
    cat >"$1/env" <<ENV
IMAP_HOST=127.0.0.1
IMAPS_PORT=$3
IMAP_PORT=$4
IMAP_USER='$5'
IMAP_PASS='$6'
CA_FILE='$1/tls/ca.pem'
OTHER_CA_FILE='$1/tls/other-ca.pem'
WRONG_NAME_HOST=127.0.0.2
STARTTLS=yes
SERVER=$2
ENV
}

pid_alive_with() { # PIDFILE NEEDLE: print the pid if alive and its command line contains NEEDLE
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
    echo "$pid"
}

stop_session() { # PID: TERM the process, then KILL what is left of its session (it ran under setsid)
    local pid=$1 i left
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 60); do
        left=$(ps -o pid=,stat= -s "$pid" 2>/dev/null | awk '$2 !~ /^Z/ {printf "%s ", $1}')
        [ -z "${left// /}" ] && return 0
        [ "$i" -eq 20 ] && kill -TERM $left 2>/dev/null
        [ "$i" -ge 40 ] && kill -KILL $left 2>/dev/null
        sleep 0.05
    done
    echo "$(basename "$0"): processes still there: $left" >&2
    return 1
}
