#!/usr/bin/env python3
"""Seed the throwaway Dovecot (scripts/test-server.sh) over IMAP.

usage: scripts/seed.py --env DIR/env [--flags none|mixed] [--starttls] FOLDER=PATH ... [FOLDER= ...]

FOLDER is a Unicode folder path with "/" as the hierarchy delimiter (the test server uses maildir
LAYOUT=fs, so "/" is Dovecot's delimiter); it is encoded to modified UTF-7 here. Missing folders are
created, with their parents. PATH is a message file or a directory (all regular files below it, sorted
by relative path, become messages in that order). "FOLDER=" with no path creates an empty folder.

Each message is APPENDed with an INTERNALDATE taken from its Date: header (or a fixed date plus its
index when there is none), so UIDs and dates are deterministic. Flags: with --flags mixed (default)
message i (0-based, per folder) gets () if i%3==0, (\\Seen) if i%3==1, (\\Flagged) if i%3==2.

\\Noselect parents: with LAYOUT=fs, creating "Parent/Child" without creating "Parent" leaves "Parent" a
plain directory, which Dovecot LISTs as (\\Noselect \\HasChildren). So to get a \\Noselect parent, just
seed a nested folder and never seed its parent. (Also measured: CREATE Parent, CREATE Parent/Child,
DELETE Parent leaves Parent listed as \\Noselect \\HasChildren.)

imaplib's APPEND turns every line end into CRLF, as IMAP requires (the server would anyway).
"""
import argparse
import email.utils
import os
import sys
import time
import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from imapcommon import check, connect, imap_quote, load_env, mutf7_encode  # noqa: E402

FALLBACK_DATE = datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)


def message_files(path):
    if os.path.isfile(path):
        return [path]
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            if os.path.isfile(p):
                out.append(p)
    out.sort(key=lambda p: os.path.relpath(p, path))
    return out


def internaldate_of(raw, index):
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\n"):
        if line.lower().startswith(b"date:"):
            try:
                d = email.utils.parsedate_to_datetime(line[5:].decode("ascii", "replace").strip())
                if d.tzinfo is None:
                    d = d.replace(tzinfo=datetime.timezone.utc)
                if 1971 <= d.year <= 2100:
                    return d
            except (TypeError, ValueError, IndexError):
                pass
            break
    return FALLBACK_DATE + datetime.timedelta(hours=index)


def flags_for(i, mode):
    if mode == "none":
        return None
    return [None, "(\\Seen)", "(\\Flagged)"][i % 3]


def ensure_folder(conn, folder, existing):
    parts = folder.split("/")
    # create only the leaf: Dovecot (LAYOUT=fs) makes the parents as \Noselect directories
    name = mutf7_encode(folder)
    if name in existing or folder.upper() == "INBOX":
        return name
    check(conn.create(imap_quote(name)), "CREATE %s" % name)
    existing.add(name)
    for k in range(1, len(parts)):
        existing.add(mutf7_encode("/".join(parts[:k])))
    return name


def list_names(conn):
    names = set()
    for line in check(conn.list('""', "*"), "LIST"):
        if line is None:
            continue
        if isinstance(line, tuple):  # name sent as literal
            names.add(line[1].decode())
            continue
        rest = line.decode().split(") ", 1)[1]
        delim, name = rest.split(" ", 1)
        names.add(name.strip('"'))
    return names


def seed(env, specs, flag_mode="mixed", starttls=False, quiet=False):
    """specs: list of (folder, path-or-None). Returns {folder: [(file, internaldate, flags), ...]}."""
    conn = connect(env, starttls=starttls, timeout=120)
    done = {}
    try:
        existing = list_names(conn)
        for folder, path in specs:
            name = ensure_folder(conn, folder, existing)
            files = message_files(path) if path else []
            t0 = time.time()
            entries = done.setdefault(folder, [])
            for raw_path in files:
                with open(raw_path, "rb") as f:
                    raw = f.read()
                i = len(entries)
                date = internaldate_of(raw, i)
                fl = flags_for(i, flag_mode)
                check(conn.append(imap_quote(name), fl, date, raw), "APPEND %s to %s" % (raw_path, folder))
                entries.append((raw_path, date, fl))
            if not quiet:
                print("seed: %s <- %d message(s) in %.2fs" % (folder, len(files), time.time() - t0), file=sys.stderr)
    finally:
        try:
            conn.logout()
        except Exception:
            pass
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", required=True, help="DIR/env written by test-server.sh")
    ap.add_argument("--flags", choices=["none", "mixed"], default="mixed")
    ap.add_argument("--starttls", action="store_true", help="use the STARTTLS port instead of imaps")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("specs", nargs="+", metavar="FOLDER=PATH")
    a = ap.parse_args()
    specs = []
    for s in a.specs:
        if "=" not in s:
            ap.error("expected FOLDER=PATH, got %r" % s)
        folder, path = s.split("=", 1)
        if path and not os.path.exists(path):
            ap.error("no such file or directory: %s" % path)
        specs.append((folder, path or None))
    seed(load_env(a.env), specs, a.flags, a.starttls, a.quiet)


if __name__ == "__main__":
    main()
