#!/usr/bin/env bash
# A throwaway Dovecot IMAP server on 127.0.0.1 for imapfs tests and demos.
#
#   scripts/test-server.sh start DIR [--no-starttls] [--capability "CAPS"] [--quota STORAGE[,MESSAGES]]
#                                    [--trash-special-use NAME]
#                                                      start (or reuse) a server whose state lives in DIR
#       --capability "IMAP4rev1 LITERAL+"  advertise only these capabilities (imap_capability, before and
#                                          after login; AUTH=/STARTTLS are still added before login): a
#                                          cut-down server to exercise every client fallback
#       --quota 10M[,500]                  a per-user quota (Dovecot's quota plugin, count driver, QUOTA in
#                                          CAPABILITY): storage limit (Dovecot size: 10M, 512k, ...) and
#                                          optionally a message limit
#       --oauth2-introspection URL         also accept OAuth2 logins (AUTH=OAUTHBEARER, AUTH=XOAUTH2): Dovecot's
#                                          oauth2 passdb POSTs token=... to URL (RFC 7662) and wants a JSON
#                                          {"active": true, "username": USER}; PLAIN/LOGIN with the password
#                                          still work
#       --trash-special-use NAME           the folder NAME (created at login when missing) is marked \Trash
#                                          (SPECIAL-USE, RFC 6154) in LIST; by default no folder is
#   scripts/test-server.sh stop DIR                    stop it (only the dovecot started from DIR)
#   scripts/test-server.sh status DIR                  exit 0 when it is running
#
# After `start`, DIR/env is shell-sourceable:
#   IMAP_HOST=127.0.0.1 IMAPS_PORT IMAP_PORT IMAP_USER IMAP_PASS CA_FILE DOVECOT_CONF
#   WRONG_NAME_HOST=127.0.0.2  (same ports; presents a certificate, signed by CA_FILE, for another name)
#   OTHER_CA_FILE              (an unrelated CA: verifying the server against it fails)
#   STARTTLS=yes|no            (no with --no-starttls: the imap port then offers no STARTTLS)
# Mail is a maildir with LAYOUT=fs under DIR/home, so the hierarchy delimiter is "/".
# Byte counts: `doveadm -c "$DOVECOT_CONF" stats dump` has the metric `imap_bytes` (sum of bytes_out/bytes_in
# of finished IMAP commands) and DIR/log/dovecot.log has one logout line per session with in=/out=.
# Nothing outside DIR is written (besides installing packages when missing).
set -euo pipefail
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

die() { echo "test-server.sh: $*" >&2; exit 1; }

need_pkgs() {
    # shellcheck source=scripts/lib/packages.sh
    . "$SCRIPTS/lib/packages.sh"
    install_missing /usr/lib/dovecot/imap=dovecot-imapd dovecot=dovecot-imapd openssl=openssl \
        python3=python3 || die "could not install the packages it needs"
}


master_pid() { # pid of the dovecot master of DIR, if alive
    local pidf="$1/run/master.pid" pid
    [ -f "$pidf" ] || return 1
    pid=$(cat "$pidf" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # make sure the pid is really our dovecot (pid reuse)
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1/dovecot.conf" || return 1
    echo "$pid"
}


# shellcheck source=scripts/lib/testservers.sh
. "$SCRIPTS/lib/testservers.sh"

cmd_start() {
    local dir="$1" starttls=yes caps= quota= oauth2_url= trash=
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --no-starttls) starttls=no ;;
            --capability) [ $# -ge 2 ] || die "--capability needs a value"; caps=$2; shift ;;
            --capability=*) caps=${1#--capability=} ;;
            --quota) [ $# -ge 2 ] || die "--quota needs a value"; quota=$2; shift ;;
            --quota=*) quota=${1#--quota=} ;;
            --trash-special-use) [ $# -ge 2 ] || die "--trash-special-use needs a folder name"; trash=$2; shift ;;
            --oauth2-introspection) [ $# -ge 2 ] || die "--oauth2-introspection needs a URL"; oauth2_url=$2; shift ;;
            *) die "unknown option $1" ;;
        esac
        shift
    done
    case "$caps" in *[!A-Za-z0-9\ +=.-]*) die "--capability: unexpected characters in '$caps'" ;; esac
    case "$quota" in *[!A-Za-z0-9,]*) die "--quota: expected STORAGE[,MESSAGES], got '$quota'" ;; esac
    case "$trash" in *[!A-Za-z0-9\ ._-]*) die "--trash-special-use: unexpected characters in '$trash'" ;; esac
    case "$oauth2_url" in *[!A-Za-z0-9:/._-]*) die "--oauth2-introspection: unexpected characters in '$oauth2_url'" ;; esac
    need_pkgs
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if master_pid "$dir" >/dev/null; then
        # already running: keep it if the options match
        if grep -q "^STARTTLS=$starttls\$" "$dir/env" 2>/dev/null \
            && [ "$(sed -n "s/^CAPABILITY=//p" "$dir/env" | tr -d "'")" = "$caps" ] \
            && [ "$(sed -n "s/^QUOTA=//p" "$dir/env" | tr -d "'")" = "$quota" ] \
            && [ "$(sed -n "s/^OAUTH2_INTROSPECTION=//p" "$dir/env" | tr -d "'")" = "$oauth2_url" ] \
            && [ "$(sed -n "s/^TRASH_SPECIAL_USE=//p" "$dir/env" | tr -d "'")" = "$trash" ]; then
            echo "test-server.sh: already running ($dir)" >&2
            return 0
        fi
        cmd_stop "$dir"
    fi
    mkdir -p "$dir/run" "$dir/state" "$dir/log" "$dir/home"
    make_certs "$dir"

    local user pass imaps_port imap_port
    if [ -f "$dir/env" ]; then
        # keep user/password (and the mail) across restarts
        user=$(sed -n 's/^IMAP_USER=//p' "$dir/env" | tr -d "'")
        pass=$(sed -n 's/^IMAP_PASS=//p' "$dir/env" | tr -d "'")
    fi
    user=${user:-tester}
    pass=${pass:-$(openssl rand -hex 12)}
    read -r imaps_port imap_port < <(free_ports 2)

    # Dovecot never accesses mail as root: as root, mail belongs to "nobody" (DIR and its ancestors must be
    # searchable by it; the tests create DIR with mode 0711), otherwise to the calling user.
    local uid gid
    uid=$(id -u); gid=$(id -g)
    if [ "$uid" = 0 ]; then
        uid=$(id -u nobody); gid=$(id -g nobody)
        chmod o+x "$dir"
        local p="$dir"
        while [ "$p" != / ]; do
            p=$(dirname "$p")
            [ "$(stat -c %A "$p" | cut -c10)" = x ] || [ "$(stat -c %A "$p" | cut -c10)" = t ] \
                || die "$p is not searchable by 'nobody' (chmod o+x it, or use a DIR elsewhere)"
        done
        mkdir -p "$dir/home"
        chown "$uid:$gid" "$dir/home"
    fi
    local me; me=$(id -un)
    local grp; grp=$(id -gn)
    # login processes refuse to run as root
    local login_user=nobody
    id dovenull >/dev/null 2>&1 && login_user=dovenull
    umask 077
    printf '%s:{PLAIN}%s\n' "$user" "$pass" >"$dir/passwd"

    cat >"$dir/dovecot.conf" <<EOF
# generated by scripts/test-server.sh; standalone (does not include /etc/dovecot)
instance_name = imapfs-test-$$
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/log/dovecot.log
info_log_path = $dir/log/dovecot.log
debug_log_path = $dir/log/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = $me
default_internal_group = $grp
default_login_user = $login_user
first_valid_uid = $uid
first_valid_gid = $gid
mail_uid = $uid
mail_gid = $gid
ssl = yes
ssl_cert = <$dir/tls/server.pem
ssl_key = <$dir/tls/server.key
ssl_dh = </usr/share/dovecot/dh.pem
local 127.0.0.2 {
  ssl_cert = <$dir/tls/wrongname.pem
  ssl_key = <$dir/tls/wrongname.key
}
disable_plaintext_auth = yes
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/home/%u allow_all_users=yes
}
mail_location = maildir:~/Maildir:LAYOUT=fs
mail_max_userip_connections = 20
namespace inbox {
  inbox = yes
  separator = /
}
imap_logout_format = in=%i out=%o deleted=%{deleted} expunged=%{expunged} body_bytes=%{fetch_body_bytes}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1 127.0.0.2
    port = $imap_port
  }
  inet_listener imaps {
    address = 127.0.0.1 127.0.0.2
    port = $imaps_port
    ssl = yes
  }
}
# no growing auth penalty for 127.0.0.1 after the tests' deliberate failed logins (the usual 2 s delay of
# a failed login stays); login_trusted_networks would also do it but would allow plaintext logins
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0600
  }
}
metric imap_bytes {
  filter = event=imap_command_finished
  fields = bytes_in bytes_out
}
metric imap_bytes_by_cmd {
  filter = event=imap_command_finished
  fields = bytes_in bytes_out
  group_by = cmd_name
}
EOF
    if [ "$starttls" = no ]; then
        # Dovecot has no per-port STARTTLS switch: this variant is a server without TLS at all
        # (no imaps listener; the imap port offers no STARTTLS) that even accepts plaintext logins,
        # so a client that wrongly goes on without TLS would visibly succeed.
        python3 - "$dir/dovecot.conf" <<'PY'
import re, sys
p = sys.argv[1]; s = open(p).read()
s = s.replace("ssl = yes\n", "ssl = no\n", 1)
s = s.replace("disable_plaintext_auth = yes", "disable_plaintext_auth = no")
s = re.sub(r"local 127.0.0.2 \{.*?\n\}\n", "", s, flags=re.S)
s = re.sub(r"ssl_(cert|key|dh) = .*\n", "", s)
s = re.sub(r"  inet_listener imaps \{.*?\n  \}\n", "", s, flags=re.S)
open(p, "w").write(s)
PY
        imaps_port=
    fi
    if [ -n "$caps" ]; then
        # imap_capability replaces the list advertised before and after login (imap-login still adds
        # AUTH= and STARTTLS); no plugin that adds one (quota, zlib) is loaded in this config anyway
        printf 'imap_capability = %s\n' "$caps" >>"$dir/dovecot.conf"
    fi
    if [ -n "$quota" ]; then
        # Dovecot's quota plugin with the count driver (needs quota_vsizes); imap_quota answers
        # GETQUOTAROOT and adds QUOTA to the capabilities after login
        local rule="*:storage=${quota%%,*}"
        case "$quota" in *,*) rule="$rule:messages=${quota#*,}" ;; esac
        cat >>"$dir/dovecot.conf" <<EOF
mail_plugins = \$mail_plugins quota
protocol imap {
  mail_plugins = \$mail_plugins imap_quota
}
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = $rule
}
EOF
    fi
    if [ -n "$trash" ]; then
        # a folder marked \Trash whatever its name (the namespace's mailbox settings)
        TRASH="$trash" python3 - "$dir/dovecot.conf" <<'PY'
import os, sys
p = sys.argv[1]; s = open(p).read()
box = '  mailbox "%s" {\n    auto = create\n    special_use = \\Trash\n  }\n' % os.environ["TRASH"]
s = s.replace("  separator = /\n}\n", "  separator = /\n" + box + "}\n", 1)
open(p, "w").write(s)
PY
    fi
    if [ -n "$oauth2_url" ]; then
        # OAuth2 logins checked at an introspection endpoint (the caller runs it); the passwd-file passdb
        # is kept for PLAIN/LOGIN only, so a token is never compared with the password
        sed -i 's/^auth_mechanisms = plain login$/auth_mechanisms = plain login oauthbearer xoauth2/' "$dir/dovecot.conf"
        sed -i 's/^  driver = passwd-file$/  driver = passwd-file\n  mechanisms = plain login/' "$dir/dovecot.conf"
        cat >"$dir/dovecot-oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = $oauth2_url
username_attribute = username
active_attribute = active
active_value = true
EOF
        cat >>"$dir/dovecot.conf" <<EOF
passdb {
  driver = oauth2
  mechanisms = oauthbearer xoauth2
  args = $dir/dovecot-oauth2.conf.ext
}
EOF
    fi
    cat >"$dir/env" <<EOF
IMAP_HOST=127.0.0.1
IMAPS_PORT=$imaps_port
IMAP_PORT=$imap_port
IMAP_USER='$user'
IMAP_PASS='$pass'
CA_FILE='$dir/tls/ca.pem'
OTHER_CA_FILE='$dir/tls/other-ca.pem'
WRONG_NAME_HOST=127.0.0.2
DOVECOT_CONF='$dir/dovecot.conf'
STARTTLS=$starttls
SERVER=dovecot
CAPABILITY='$caps'
QUOTA='$quota'
OAUTH2_INTROSPECTION='$oauth2_url'
TRASH_SPECIAL_USE='$trash'
EOF
    : >"$dir/log/dovecot.log"
    dovecot -c "$dir/dovecot.conf" 2>>"$dir/log/dovecot.log" || { tail -20 "$dir/log/dovecot.log" >&2; die "dovecot failed to start"; }
    if { [ -n "$imaps_port" ] && ! wait_ready 127.0.0.1 "$imaps_port" 1 "$dir/tls/ca.pem" 8; } \
        || ! wait_ready 127.0.0.1 "$imap_port" 0 - 8; then
        tail -20 "$dir/log/dovecot.log" >&2
        cmd_stop "$dir"
        die "dovecot did not open its ports"
    fi
    echo "test-server.sh: dovecot up in $dir (imaps $imaps_port, imap $imap_port, user $user)" >&2
}

cmd_stop() {
    local dir="$1" pid i
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    pid=$(master_pid "$dir") || return 0
    # the master runs in its own session (sid == its pid): those processes are this instance, and only it
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 10); do
        kill -0 "$pid" 2>/dev/null || break
        # its stats process lingers ~2 s on shutdown; nothing of value is lost by not waiting for it
        [ "$i" -ge 4 ] && break
        sleep 0.05
    done
    for i in $(seq 1 40); do
        local left
        # zombies (waiting for init to reap them) do not count
        left=$(ps -o pid=,stat= -s "$pid" 2>/dev/null | awk '$2 !~ /^Z/ {printf "%s ", $1}')
        # a master not reaped yet still answers kill -0: its pid file would make the next start
        # refuse ("Dovecot is already running")
        [ -z "${left// /}" ] && { rm -f "$dir/run/master.pid"; return 0; }
        [ "$i" -ge 4 ] && kill -KILL $left 2>/dev/null || true
        sleep 0.05
    done
    echo "test-server.sh: dovecot processes of $dir still there: $left" >&2
    return 1
}

cmd_status() {
    local dir="$1"
    [ -d "$dir" ] || return 1
    dir=$(cd "$dir" && pwd)
    master_pid "$dir" >/dev/null
}

case "${1:-}" in
    start) [ $# -ge 2 ] || die "usage: $0 start DIR [--no-starttls] [--capability CAPS] [--quota Q] [--trash-special-use NAME] [--oauth2-introspection URL]"; d=$2; shift 2; cmd_start "$d" "$@" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
    status) [ $# -eq 2 ] || die "usage: $0 status DIR"; cmd_status "$2" ;;
    *) die "usage: $0 start DIR [--no-starttls] [--capability CAPS] [--quota Q] [--trash-special-use NAME] [--oauth2-introspection URL] | stop DIR | status DIR" ;;
esac
