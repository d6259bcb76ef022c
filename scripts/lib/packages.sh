# Sourced by the scripts: install the Debian packages that are missing.
#
#   install_missing CHECK=PACKAGE ...
#
# CHECK is a command name, or a path (starting with /) that must exist. Runs apt-get update only
# when a package cannot be found without it. Debian starts a system Dovecot when it installs one;
# ours always run with their own config and ports, so that one is stopped again.
install_missing() {
    local missing=() spec check pkg
    for spec in "$@"; do
        check=${spec%%=*}
        pkg=${spec#*=}
        if [[ $check == /* ]]; then
            [ -e "$check" ] || missing+=("$pkg")
        else
            command -v "$check" >/dev/null 2>&1 || missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
        || { echo "could not install ${missing[*]}" >&2; return 1; }
    if [[ " ${missing[*]} " == *" dovecot-imapd "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now dovecot >/dev/null 2>&1 || true
    fi
}
