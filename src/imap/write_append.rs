//! APPEND of a spooled new message (`cp message.eml INBOX/` on a read-write mount). Never
//! retried blindly: when a cut leaves unknown whether the server filed it, the folder is
//! searched (Message-ID when the message has one, and RFC822.SIZE among the UIDs at or above
//! the UIDNEXT seen before the APPEND); it is appended again only when not found. A duplicate
//! is thus possible (a concurrent identical message, or a second cut), a loss is not.

use std::fs::File;
use std::io::{Read, Seek};

use super::parse::{status_item, status_response, untagged_values};
use super::search::search_uids;
use super::session::Conn;
use super::store::ImapStore;
use super::wire::{self, Cmd, Status};
use crate::names;
use crate::store::{Appended, Result, StoreError};

/// How far into the message its Message-ID is looked for.
const HEADER_SCAN: u64 = 64 * 1024;

/// The Message-ID header's value (unfolded, trimmed), when the header has one.
pub(super) fn message_id(head: &[u8]) -> Option<String> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| head.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(head.len());
    let text = String::from_utf8_lossy(&head[..end]);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("Message-ID") {
            continue;
        }
        let mut v = value.trim().to_string();
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            v.push_str(next.trim());
        }
        let v = v.trim().to_string();
        return (!v.is_empty() && v.len() < 1000).then_some(v);
    }
    None
}

/// `[APPENDUID uidvalidity uid] ...` → (uidvalidity, uid).
pub(super) fn appenduid(text: &str) -> Option<(u32, u32)> {
    let inner = text.trim_start().strip_prefix('[')?;
    let (code, _) = inner.split_once(']')?;
    let mut words = code.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("APPENDUID") {
        return None;
    }
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// `APPENDLIMIT=n` among the capabilities.
fn append_limit(c: &Conn) -> Option<u64> {
    c.caps.value("APPENDLIMIT")?.parse().ok()
}

/// `* n FETCH (UID u RFC822.SIZE s)` → (u, s).
fn uid_size(frame: &[u8]) -> Option<(u32, u64)> {
    let v = untagged_values(frame).ok()?;
    let items = v.get(2)?.as_list()?;
    let find = |name: &str| {
        let i = items
            .iter()
            .position(|x| x.as_text().is_some_and(|t| t.eq_ignore_ascii_case(name)))?;
        items.get(i + 1)?.as_u64()
    };
    Some((u32::try_from(find("UID")?).ok()?, find("RFC822.SIZE")?))
}

impl ImapStore {
    pub(super) fn write_append(
        &self,
        folder: &str,
        file: &mut File,
        size: u64,
    ) -> Result<Appended> {
        let mut head = Vec::new();
        file.rewind()
            .and_then(|_| {
                (&mut *file)
                    .take(HEADER_SCAN.min(size))
                    .read_to_end(&mut head)
            })
            .map_err(|e| StoreError::Connection(format!("spool: {e}")))?;
        let id = message_id(&head);
        let mut before: Option<u32> = None;
        let mut sent = false;
        let first = self.append_once(folder, file, size, &mut before, &mut sent);
        match first {
            Err(StoreError::Connection(e)) if sent => {
                log::warn!("{folder}: APPEND {size} bytes cut ({e}): looking for the message");
                let found = self.find_appended(folder, before, id.as_deref(), size)?;
                if let Some(found) = found {
                    return Ok(Appended {
                        uid: Some(found),
                        recovered: true,
                    });
                }
                log::warn!("{folder}: the message is not there: appending it again");
                let (mut b, mut s) = (None, false);
                let a = self.append_once(folder, file, size, &mut b, &mut s)?;
                Ok(Appended {
                    recovered: true,
                    ..a
                })
            }
            // Cut before APPEND was sent: nothing can have been filed; once more.
            Err(StoreError::Connection(e)) => {
                log::warn!("{folder}: cut before APPEND ({e}): once more");
                let (mut b, mut s) = (None, false);
                self.append_once(folder, file, size, &mut b, &mut s)
            }
            other => other,
        }
    }

    /// One APPEND on one connection, the folder's UIDNEXT noted first (`before`).
    fn append_once(
        &self,
        folder: &str,
        file: &mut File,
        size: u64,
        before: &mut Option<u32>,
        sent: &mut bool,
    ) -> Result<Appended> {
        file.rewind()
            .map_err(|e| StoreError::Connection(format!("spool: {e}")))?;
        self.once(None, |c| {
            if let Some(limit) = append_limit(c) {
                if size > limit {
                    return Err(StoreError::TooBig(format!(
                        "{folder}: {size} bytes > the server's APPENDLIMIT {limit}"
                    )));
                }
            }
            let raw = names::raw_bytes(folder);
            let status = Cmd::text("STATUS ").string(&raw).t(" (UIDNEXT)");
            let mut on = |d: Vec<u8>| {
                if let Some((_, items)) = status_response(&d) {
                    *before = status_item(&items, "UIDNEXT").and_then(|n| u32::try_from(n).ok());
                }
                Ok(())
            };
            c.run_one(status, &wire::CONTROL, &mut on)?;
            let mut head = Cmd::text("APPEND ").string(&raw).t(" ");
            if head.pieces.len() != 1 {
                return Err(StoreError::NotPermitted(format!(
                    "{folder}: a folder name sent as a literal cannot precede the message"
                )));
            }
            let what = format!("APPEND {folder} ({size} bytes)");
            let Some(wire::Piece::Text(line)) = head.pieces.pop() else {
                return Err(StoreError::Parse(what));
            };
            log::debug!("[imap {}] {what}", c.id);
            let mut on = |_d: Vec<u8>| Ok(());
            let r = c
                .wire
                .run_streamed(&line, file, size, &wire::CONTROL, &mut on, sent);
            match r {
                Ok((Status::Ok, text)) => Ok(Appended {
                    uid: appenduid(&text),
                    recovered: false,
                }),
                Ok((Status::No, text)) if text.trim_start().starts_with("[TOOBIG]") => {
                    Err(StoreError::TooBig(format!("{what}: {text}")))
                }
                Ok((s, text)) => Err(StoreError::Server(format!("{what}: {s} {text}"))),
                Err(e) => Err(c.fail(e, &what)),
            }
        })
    }

    /// After a cut APPEND: the message's (UIDVALIDITY, UID) if the folder has it, among UIDs at
    /// or above `since` (all without it), with the same size and Message-ID (when it has one).
    fn find_appended(
        &self,
        folder: &str,
        since: Option<u32>,
        id: Option<&str>,
        size: u64,
    ) -> Result<Option<(u32, u32)>> {
        if since.is_none() && id.is_none() {
            // Any message of the same size would match: appending again risks a duplicate,
            // taking another message for ours would risk a loss.
            return Ok(None);
        }
        self.with_conn(Some(folder), None, |c| {
            let uidvalidity = c.examine(folder)?.uidvalidity;
            let mut cmd = Cmd::text(&format!("UID SEARCH UID {}:*", since.unwrap_or(1)));
            if let Some(id) = id {
                cmd = cmd.t(" HEADER Message-ID ").string(id.as_bytes());
            }
            let mut uids: Vec<u32> = Vec::new();
            let mut on = |d: Vec<u8>| {
                search_uids(&d, &mut uids);
                Ok(())
            };
            c.run_one(cmd, &wire::SEARCH, &mut on)?;
            // `n:*` always names the last message, even below n.
            uids.retain(|&u| since.is_none_or(|s| u >= s));
            uids.truncate(10_000);
            if uids.is_empty() {
                return Ok(None);
            }
            let set: Vec<String> = uids.iter().map(u32::to_string).collect();
            let cmd = Cmd::text(&format!("UID FETCH {} (RFC822.SIZE)", set.join(",")));
            let mut found = None;
            let mut on = |d: Vec<u8>| {
                if let Some((u, s)) = uid_size(&d) {
                    if s == size && uids.contains(&u) && found.is_none() {
                        found = Some(u);
                    }
                }
                Ok(())
            };
            c.run_one(cmd, &wire::CONTROL, &mut on)?;
            Ok(found.map(|u| (uidvalidity, u)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_headers() {
        assert_eq!(
            appenduid("[APPENDUID 38505 3955] APPEND completed"),
            Some((38505, 3955))
        );
        assert_eq!(appenduid("APPEND completed"), None);
        assert_eq!(
            message_id(b"Subject: x\r\nmessage-id:\r\n <a@b>\r\n\r\nMessage-ID: <no>\r\n"),
            Some("<a@b>".into())
        );
        assert_eq!(message_id(b"Subject: x\r\n\r\nbody"), None);
        assert_eq!(message_id(b"not a message at all"), None);
        assert_eq!(
            uid_size(b"* 3 FETCH (UID 7 RFC822.SIZE 120)\r\n"),
            Some((7, 120))
        );
    }
}
