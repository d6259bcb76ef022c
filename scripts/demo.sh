#!/usr/bin/env bash
# A two-minute tour: build imapfs, start a throwaway Dovecot, seed a few friendly messages, mount the
# account in the background and look around with ordinary tools; everything is cleaned up on exit.
#   scripts/demo.sh            (env: IMAPFS_BIN to use a prebuilt binary, KEEP=1 to keep the temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=scripts/lib/packages.sh
. "$REPO/scripts/lib/packages.sh"
install_missing fusermount3=fuse3 /usr/lib/dovecot/imap=dovecot-imapd dovecot=dovecot-imapd \
    openssl=openssl python3=python3 file=file

BIN=${IMAPFS_BIN:-$REPO/target/release/imapfs}
if [ -z "${IMAPFS_BIN:-}" ]; then
    echo "== cargo build --release"
    cargo build --release 2>&1 | tail -2
fi

TMP=$(mktemp -d /tmp/imapfs-demo.XXXXXX)
chmod 711 "$TMP"   # the test server's mail user must traverse it
SERVER=$TMP/server
MNT=$TMP/mail
cleanup() {
    set +e
    if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"; fi
    bash "$REPO/scripts/test-server.sh" stop "$SERVER"
    if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; elif ! mountpoint -q "$MNT" 2>/dev/null; then rm -rf "$TMP"; fi
}
trap cleanup EXIT

show() { echo; echo "\$ $*"; "$@"; }

echo "== starting a throwaway Dovecot"
bash scripts/test-server.sh start "$SERVER"
# shellcheck disable=SC1091
. "$SERVER/env"

echo "== writing sample messages"
python3 - "$TMP/samples" <<'EOF'
import base64, os, sys, random
out = sys.argv[1]
rng = random.Random(7)
def w(folder, name, data):
    os.makedirs(os.path.join(out, folder), exist_ok=True)
    with open(os.path.join(out, folder, name), "wb") as f:
        f.write(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
def b64(b):
    e = base64.b64encode(b)
    return b"\n".join(e[i:i + 76] for i in range(0, len(e), 76)) + b"\n"

w("inbox", "1-letter.eml", """From: Grandma Rose <rose@example.org>
To: You <you@example.net>
Subject: Thank you for the flowers
Date: Mon, 04 Mar 2024 10:15:00 +0100
Message-ID: <letter@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Dear you,

the tulips arrived this morning and they are lovely. The garden is waking up;
come by for coffee and cake on Sunday.

Love,
Rose
""".encode())

html = b"<html><body><h1>Spring news</h1><p>Our caf&eacute; opens a second shop!</p></body></html>\n"
w("inbox", "2-newsletter.eml", b"""From: Corner Cafe <news@cafe.example>
To: you@example.net
Subject: Spring newsletter
Date: Tue, 05 Mar 2024 08:00:00 +0000
Message-ID: <news-2024-03@cafe.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Spring news: our caf=C3=A9 opens a second shop! Come and try the new =
cinnamon rolls.
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

""" + b64(html) + b"""--alt--
""")

pdf = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
       + bytes(rng.getrandbits(8) for _ in range(3000)) + b"\ntrailer << /Root 1 0 R >>\n%%EOF\n")
with open(os.path.join(out, "invoice.pdf"), "wb") as f:
    f.write(pdf)
w("inbox", "3-invoice.eml", b"""From: Hardware Store <billing@store.example>
To: you@example.net
Subject: Invoice 2024-0317
Date: Sun, 17 Mar 2024 16:45:00 +0100
Message-ID: <inv-2024-0317@store.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain; charset=us-ascii

Please find your invoice attached. Total due: 42.00 EUR.
--mix
Content-Type: application/pdf; name="invoice-2024-0317.pdf"
Content-Disposition: attachment; filename="invoice-2024-0317.pdf"
Content-Transfer-Encoding: base64

""" + b64(pdf) + b"""--mix--
""")

w("inbox", "4-forward.eml", b"""From: Sam <sam@example.com>
To: you@example.net
Subject: Fwd: Thank you for the flowers
Date: Wed, 20 Mar 2024 12:00:00 +0100
Message-ID: <fwd@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd"

--fwd
Content-Type: text/plain

Look what Rose wrote!
--fwd
Content-Type: message/rfc822

From: Grandma Rose <rose@example.org>
To: Sam <sam@example.com>
Subject: Thank you for the flowers
Date: Mon, 04 Mar 2024 10:20:00 +0100
Message-ID: <letter2@example.org>

The tulips arrived and they are lovely.
--fwd--
""")

w("drafts", "1-entwurf.eml", """From: You <you@example.net>
To: Jürgen <juergen@example.de>
Subject: Grüße aus dem Garten
Date: Thu, 21 Mar 2024 19:30:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Lieber Jürgen, die Tulpen blühen schon!
""".encode())
EOF
python3 scripts/seed.py --env "$SERVER/env" --flags none INBOX="$TMP/samples/inbox" "Entwürfe=$TMP/samples/drafts" \
    "Archive/2023=$TMP/samples/drafts"

echo "== mounting $IMAP_USER@127.0.0.1 at $MNT (background mode)"
mkdir -p "$MNT"
t0=$(date +%s.%N)
IMAPFS_PASSWORD="$IMAP_PASS" "$BIN" --ca-file "$CA_FILE" "imaps://$IMAP_USER@$IMAP_HOST:$IMAPS_PORT" "$MNT"
echo "(mounted in $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s)"

cd "$MNT"
show ls
show ls -l INBOX
show ls -l INBOX/3
show cat INBOX/1/HEADER
show cat INBOX/1/1
show cat INBOX/2/1
show cp INBOX/3/2 "$TMP/invoice-copy.pdf"
show file "$TMP/invoice-copy.pdf"
echo
echo "\$ sha256sum $TMP/samples/invoice.pdf $TMP/invoice-copy.pdf"
sha256sum "$TMP/samples/invoice.pdf" "$TMP/invoice-copy.pdf"
if cmp -s "$TMP/samples/invoice.pdf" "$TMP/invoice-copy.pdf"; then echo "(identical)"; else echo "(DIFFERENT!)"; exit 1; fi
show cat INBOX/4/2.HEADER
echo; echo '$ grep -l tulips INBOX/*/1 INBOX/*/2.1'
grep -l tulips INBOX/*/1 INBOX/*/2.1
show ls Entwürfe
show cat Entwürfe/1/1
show ls Archive
echo; echo "\$ find . -type f | head"
find . -type f | head
cd /

echo
echo "== unmounting"
fusermount3 -u "$MNT"
echo "done."
