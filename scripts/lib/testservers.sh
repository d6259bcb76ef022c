# What every throwaway server script needs (scripts/test-server.sh, scripts/servers/*.sh): free
# ports, a wait for the greeting, test certificates.
# shellcheck shell=bash

free_ports() { # print N distinct free TCP ports on 127.0.0.1
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
EOF
}

wait_ready() { # host port tls(0/1) ca_file deadline_seconds: wait for an "* OK" greeting
    python3 - "$@" <<'EOF'
import socket, ssl, sys, time
host, port, tls, ca, deadline = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], time.time() + float(sys.argv[5])
while True:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            if tls:
                ctx = ssl.create_default_context(cafile=ca)
                s = ctx.wrap_socket(s, server_hostname=host)
            s.settimeout(2)
            if s.recv(256).startswith(b"* OK"):
                sys.exit(0)
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit(1)
    time.sleep(0.05)
EOF
}

make_certs() { # DIR: DIR/tls/{ca,server,wrongname,other-ca}.{pem,key}: our CA, a certificate for
    # 127.0.0.1/localhost and one for another name (both signed by it), and an unrelated CA
    local d="$1/tls"
    mkdir -p "$d"
    [ -f "$d/server.pem" ] && [ -f "$d/wrongname.pem" ] && [ -f "$d/other-ca.pem" ] && return 0
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    # our CA
    openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.pem" -days 3650 \
        -subj "/CN=imapfs test CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    # server cert for 127.0.0.1 / localhost, and one for another name, both signed by our CA
    local name san
    for name in server wrongname; do
        if [ "$name" = server ]; then san="subjectAltName=IP:127.0.0.1,DNS:localhost"
        else san="subjectAltName=DNS:wrong.invalid"; fi
        openssl req "${ec[@]}" -keyout "$d/$name.key" -out "$d/$name.csr" -subj "/CN=${name}" 2>/dev/null
        printf '%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
            "$san" >"$d/$name.ext"
        openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
            -days 3650 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
    done
    # an unrelated CA (for "certificate not trusted" tests)
    openssl req -x509 "${ec[@]}" -keyout "$d/other-ca.key" -out "$d/other-ca.pem" -days 3650 \
        -subj "/CN=unrelated CA" 2>/dev/null
    chmod 600 "$d"/*.key
}
