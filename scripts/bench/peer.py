#!/usr/bin/env python3
"""The imaplib peers of scripts/bench.sh (stdlib only). Prints one JSON line:
{"seconds": wall time from before the TCP connect to the last answer (connect, TLS, LOGIN, EXAMINE and
the work; not LOGOUT, not interpreter start-up), "items": count, "bytes": payload bytes received}.

usage: peer.py MODE HOST PORT CA USER FOLDER     (password in $IMAP_PASS)
  listing    UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE)
  structure  UID FETCH 1:* (BODYSTRUCTURE)
  grep       UID SEARCH ALL, then UID FETCH <uid> (BODY.PEEK[1]) one message at a time (one round trip
             each), counting the texts that contain "needle" (quoted-printable decoded when needed)
  index      UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]):
             the browser's one-round-trip folder summary
  folders    LIST "" "*", then STATUS (MESSAGES UNSEEN) of every folder in turn (FOLDER is ignored)
  search     UID SEARCH TEXT needle (items: matches)
  search-all LIST "" "*", then EXAMINE and UID SEARCH UNSEEN in every selectable folder in turn
             (items: folders with matches; FOLDER is ignored)
  move       SELECT, UID SEARCH ALL, then UID MOVE <uid> RwArchive one message at a time (--read-write's peer)
  seen       SELECT, UID SEARCH ALL, then UID STORE <uid> +FLAGS.SILENT (\\Seen) one message at a time
  warm       everything imapfs asks the server for (listing items, BODYSTRUCTURE, BODY.PEEK[HEADER]),
             so Dovecot has indexed the folder and cached those fields before anything is timed
"""
import imaplib
import json
import os
import quopri
import ssl
import sys
import time


def main():
    mode, host, port, ca, user, folder = sys.argv[1:7]
    ctx = ssl.create_default_context(cafile=ca)
    t0 = time.perf_counter()
    c = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    c._mode_utf8 = False
    typ, _ = c.login(user, os.environ["IMAP_PASS"])
    assert typ == "OK"
    items = nbytes = 0
    if mode in ("folders", "search-all"):
        typ, data = c.list('""', "*")
        assert typ == "OK"
        for line in data:
            if isinstance(line, tuple):  # a name sent as a literal
                line = line[0] + line[1]
            nbytes += len(line)
            flags = line[line.index(b"(") + 1:line.index(b")")]
            if b"\\noselect" in flags.lower() or b"\\nonexistent" in flags.lower():
                items += mode == "folders"  # a FOLDERS line with "-" counts
                continue
            name = line.rsplit(b" ", 1)[1] if not line.endswith(b'"') else b'"' + line.rsplit(b' "', 1)[1]
            if mode == "search-all":
                typ, _ = c.select(name.decode(), readonly=True)
                assert typ == "OK", name
                typ, data = c.uid("SEARCH", None, "UNSEEN")
                assert typ == "OK"
                nbytes += len(data[0] or b"")
                items += bool(data[0].split())
                continue
            typ, st = c.status(name.decode(), "(MESSAGES UNSEEN)")
            assert typ == "OK", (name, st)
            nbytes += sum(len(x) for x in st if isinstance(x, bytes))
            items += 1
        print(json.dumps({"seconds": time.perf_counter() - t0, "items": items, "bytes": nbytes}))
        return
    typ, _ = c.select('"%s"' % folder, readonly=True)
    assert typ == "OK", "EXAMINE %s failed" % folder
    if mode in ("listing", "structure", "warm", "warm-listing"):
        what = {"listing": "(UID RFC822.SIZE INTERNALDATE)", "structure": "(BODYSTRUCTURE)",
                "warm-listing": "(UID RFC822.SIZE INTERNALDATE)",
                "warm": "(UID RFC822.SIZE INTERNALDATE BODYSTRUCTURE BODY.PEEK[HEADER])"}[mode]
        typ, data = c.uid("FETCH", "1:*", what)
        assert typ == "OK"
        for d in data:
            if isinstance(d, tuple):
                nbytes += len(d[0]) + len(d[1])
                items += 1
            elif d and d != b")":
                nbytes += len(d)
                items += 1
    elif mode == "index":
        typ, data = c.uid("FETCH", "1:*",
                          "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")
        assert typ == "OK"
        for d in data:
            if isinstance(d, tuple):
                nbytes += len(d[0]) + len(d[1])
                items += 1
    elif mode == "search":
        typ, data = c.uid("SEARCH", None, "TEXT", "needle")
        assert typ == "OK"
        nbytes = len(data[0] or b"")
        items = len(data[0].split())
    elif mode == "grep":
        typ, data = c.uid("SEARCH", None, "ALL")
        assert typ == "OK"
        for uid in data[0].split():
            typ, d = c.uid("FETCH", uid.decode(), "(BODY.PEEK[1])")
            assert typ == "OK"
            body = b"".join(x[1] for x in d if isinstance(x, tuple))
            nbytes += len(body)
            if b"needle" in body or b"needle" in quopri.decodestring(body):
                items += 1
    elif mode in ("move", "seen"):
        typ, _ = c.select(folder)
        assert typ == "OK"
        typ, data = c.uid("SEARCH", None, "ALL")
        assert typ == "OK"
        for uid in data[0].split():
            if mode == "move":
                typ, d = c.uid("MOVE", uid.decode(), "RwArchive")
            else:
                typ, d = c.uid("STORE", uid.decode(), "+FLAGS.SILENT", "(\\Seen)")
            assert typ == "OK", d
            items += 1
    else:
        sys.exit("unknown mode " + mode)
    secs = time.perf_counter() - t0
    try:
        c.logout()
    except Exception:
        pass
    print(json.dumps({"seconds": secs, "items": items, "bytes": nbytes}))


if __name__ == "__main__":
    main()
