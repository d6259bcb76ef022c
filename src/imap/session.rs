//! Commands on one authenticated connection, with the `imap` crate's errors mapped onto
//! [`StoreError`] and a `dead` flag for connections that must not be reused.

use std::time::{Duration, Instant};

use super::connect::ImapSession;
use super::raw::{self, Outcome, SharedStream};
use super::response::{parse_fetches, FetchResponse};

use crate::store::{FolderEntry, FolderStatus, StoreError};

/// What EXAMINE reports about a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Examined {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub exists: u32,
}

/// One logged-in connection and the folder it has EXAMINEd.
pub struct Conn {
    pub id: u64,
    sess: ImapSession,
    /// The same stream, for FETCH commands read by [`raw`](super::raw) instead of the crate.
    raw: SharedStream,
    /// Tags of our own commands (`F1`, `F2`, ...): distinct from the crate's.
    raw_tag: u64,
    /// The folder currently EXAMINEd and its UIDVALIDITY.
    pub examined: Option<(String, u32)>,
    /// Set after an IO error, timeout, BYE, tag mismatch or unparsable response: the
    /// connection's state is unknown, so it must be dropped, never reused.
    pub dead: bool,
    pub last_used: Instant,
}

/// The text the `imap` crate puts in a `Bye` it makes up when imap-proto cannot parse a line.
const CRATE_PARSE_FAILURE: &str = "no explanation given";

/// Map an `imap` error to a store error; the bool says whether the connection is now dead.
pub fn classify(e: imap::Error, what: &str) -> (StoreError, bool) {
    use imap::Error as E;
    match e {
        E::No(n) => (
            StoreError::Server(format!("{what}: NO {}", n.information.trim())),
            false,
        ),
        E::Bad(b) => (
            StoreError::Server(format!("{what}: BAD {}", b.information.trim())),
            false,
        ),
        E::Bye(b) if b.code.is_none() && b.information == CRATE_PARSE_FAILURE => (
            StoreError::Parse(format!("{what}: the server's response could not be parsed")),
            true,
        ),
        E::Bye(b) => (
            StoreError::Connection(format!(
                "{what}: server closed the connection: {}",
                b.information.trim()
            )),
            true,
        ),
        E::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            (StoreError::Connection(format!("{what}: timed out")), true)
        }
        E::Io(io) => (StoreError::Connection(format!("{what}: {io}")), true),
        E::ConnectionLost => (
            StoreError::Connection(format!("{what}: connection closed by the server")),
            true,
        ),
        E::Parse(_) | E::Unexpected(_) => (
            StoreError::Parse(format!("{what}: unexpected response from the server")),
            true,
        ),
        E::TagMismatch(_) => (
            StoreError::Connection(format!("{what}: connection out of sync (tag mismatch)")),
            true,
        ),
        // Nothing was sent.
        E::Validate(v) => (StoreError::Server(format!("{what}: {v}")), false),
        other => (StoreError::Connection(format!("{what}: {other}")), true),
    }
}

/// Is a NO to EXAMINE a "no such folder"? `[NONEXISTENT]`, or no response code and words to
/// that effect, or no response code at all (RFC 3501's plain "NO - select failure").
fn no_means_missing(info: &str) -> bool {
    let t = info.trim_start().to_ascii_lowercase();
    if t.starts_with("[nonexistent]") {
        return true;
    }
    if t.starts_with('[') {
        return false; // [UNAVAILABLE], [SERVERBUG], [LIMIT], [NOPERM], ...
    }
    true
}

impl Conn {
    pub fn new(id: u64, sess: ImapSession, raw: SharedStream) -> Conn {
        Conn {
            id,
            sess,
            raw,
            raw_tag: 0,
            examined: None,
            dead: false,
            last_used: Instant::now(),
        }
    }

    fn fail(&mut self, e: imap::Error, what: &str) -> StoreError {
        let (err, dead) = classify(e, what);
        if dead {
            self.dead = true;
            self.examined = None;
        }
        err
    }

    /// EXAMINE (read-only) `folder`.
    pub fn examine(&mut self, folder: &str) -> Result<Examined, StoreError> {
        self.last_used = Instant::now();
        // A failed EXAMINE leaves no folder selected.
        self.examined = None;
        log::debug!("[imap {}] EXAMINE {:?}", self.id, folder);
        let r = self.sess.examine(folder);
        // Unsolicited responses are not used: do not let them pile up.
        self.sess.take_all_unsolicited().for_each(drop);
        match r {
            Ok(mb) => {
                let ex = Examined {
                    uidvalidity: mb.uid_validity.unwrap_or(0),
                    uidnext: mb.uid_next.unwrap_or(0),
                    exists: mb.exists,
                };
                self.examined = Some((folder.to_string(), ex.uidvalidity));
                Ok(ex)
            }
            Err(imap::Error::No(n)) if no_means_missing(&n.information) => {
                log::debug!(
                    "[imap {}] EXAMINE {:?}: NO {}",
                    self.id,
                    folder,
                    n.information
                );
                Err(StoreError::NoSuchFolder(folder.to_string()))
            }
            Err(imap::Error::Validate(_)) => Err(StoreError::NoSuchFolder(folder.to_string())),
            Err(e) => Err(self.fail(e, &format!("EXAMINE {folder}"))),
        }
    }

    /// STATUS `folder` (UIDVALIDITY UIDNEXT MESSAGES): whether it changed, without listing it.
    pub fn status(&mut self, folder: &str) -> Result<FolderStatus, StoreError> {
        self.last_used = Instant::now();
        if self
            .examined
            .as_ref()
            .is_some_and(|(name, _)| name == folder)
        {
            // Dovecot answers STATUS on the folder this session has open from the session's
            // view, which only catches up on other clients' changes at a command that syncs.
            log::debug!("[imap {}] NOOP", self.id);
            let r = self.sess.noop();
            self.sess.take_all_unsolicited().for_each(drop);
            r.map_err(|e| self.fail(e, "NOOP"))?;
        }
        log::debug!("[imap {}] STATUS {:?}", self.id, folder);
        let r = self.sess.status(folder, "(UIDVALIDITY UIDNEXT MESSAGES)");
        self.sess.take_all_unsolicited().for_each(drop);
        match r {
            Ok(mb) => Ok(FolderStatus {
                uidvalidity: mb.uid_validity.unwrap_or(0),
                uidnext: mb.uid_next.unwrap_or(0),
                messages: mb.exists,
            }),
            Err(imap::Error::No(n)) if no_means_missing(&n.information) => {
                Err(StoreError::NoSuchFolder(folder.to_string()))
            }
            Err(imap::Error::Validate(_)) => Err(StoreError::NoSuchFolder(folder.to_string())),
            Err(e) => Err(self.fail(e, &format!("STATUS {folder}"))),
        }
    }

    /// `UID SEARCH ALL` in the EXAMINEd folder, ascending.
    pub fn all_uids(&mut self) -> Result<Vec<u32>, StoreError> {
        self.last_used = Instant::now();
        log::debug!("[imap {}] UID SEARCH ALL", self.id);
        let r = self.sess.uid_search("ALL");
        self.sess.take_all_unsolicited().for_each(drop);
        let mut uids: Vec<u32> = r
            .map_err(|e| self.fail(e, "UID SEARCH ALL"))?
            .into_iter()
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// IDLE in the EXAMINEd folder for up to `max`: true when the server reported a change.
    pub fn idle(&mut self, max: Duration) -> Result<bool, StoreError> {
        self.last_used = Instant::now();
        log::debug!("[imap {}] IDLE up to {:?}", self.id, max);
        let mut handle = self.sess.idle();
        handle.timeout(max).keepalive(false);
        let r = handle.wait_while(imap::extensions::idle::stop_on_any);
        drop(handle); // sends DONE
        self.sess.take_all_unsolicited().for_each(drop);
        match r {
            Ok(imap::extensions::idle::WaitOutcome::MailboxChanged) => Ok(true),
            Ok(imap::extensions::idle::WaitOutcome::TimedOut) => Ok(false),
            Err(e) => Err(self.fail(e, "IDLE")),
        }
    }

    /// LIST "" "*".
    pub fn list(&mut self) -> Result<Vec<FolderEntry>, StoreError> {
        self.last_used = Instant::now();
        log::debug!("[imap {}] LIST \"\" \"*\"", self.id);
        let r = self.sess.list(Some(""), Some("*"));
        self.sess.take_all_unsolicited().for_each(drop);
        let names = r.map_err(|e| self.fail(e, "LIST"))?;
        Ok(names
            .iter()
            .map(|n| {
                // imap-proto's NameAttribute is not re-exported: go by its Debug form
                // (`NoSelect`, `Extension("\\NonExistent")`).
                let selectable = !n.attributes().iter().any(|a| {
                    let d = format!("{a:?}").to_ascii_lowercase();
                    d.contains("noselect") || d.contains("nonexistent")
                });
                FolderEntry {
                    name: n.name().to_string(),
                    delimiter: n.delimiter().and_then(|d| d.chars().next()),
                    selectable,
                }
            })
            .collect())
    }

    /// Run a FETCH-like command (without tag) and parse its untagged FETCH responses. Written
    /// and read here rather than by the crate: literals are read by length (see `raw`).
    pub fn fetch(&mut self, cmd: &str) -> Result<Vec<FetchResponse>, StoreError> {
        self.fetch_many(std::slice::from_ref(&cmd.to_string()))
    }

    /// Several FETCH-like commands pipelined: sent together, answered in one round trip. The
    /// untagged FETCH responses of all of them, in arrival order (the server may interleave
    /// them). Any refusal or unreadable answer fails the whole call.
    pub fn fetch_many(&mut self, cmds: &[String]) -> Result<Vec<FetchResponse>, StoreError> {
        self.last_used = Instant::now();
        let tagged: Vec<(String, String)> = cmds
            .iter()
            .map(|cmd| {
                self.raw_tag += 1;
                log::debug!("[imap {}] {}", self.id, cmd);
                (format!("F{}", self.raw_tag), cmd.clone())
            })
            .collect();
        let what = match cmds {
            [one] => short(one),
            [first, ..] => format!("{} (+{} pipelined)", short(first), cmds.len() - 1),
            [] => return Ok(Vec::new()),
        };
        let outcomes = match raw::run_many(&mut self.raw, &tagged) {
            Ok(o) => o,
            Err(e) => return Err(self.fail(imap::Error::Io(e), &what)),
        };
        let mut out = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Outcome::Ok(data) => match parse_fetches(&data) {
                    Ok(f) => out.extend(f),
                    Err(e) => {
                        // The response was read whole, but its state is doubtful.
                        self.dead = true;
                        self.examined = None;
                        return Err(StoreError::Parse(format!("{what}: {e}")));
                    }
                },
                Outcome::Refused(text) => {
                    return Err(StoreError::Server(format!("{what}: {text}")));
                }
            }
        }
        Ok(out)
    }

    /// Run one command (without tag) on our own reader and return its untagged response bytes
    /// (literals inline, as `{n}\r\n<bytes>`), for callers that parse answers themselves
    /// (STATUS, LIST ... RETURN, SEARCH). A NO/BAD is `StoreError::Server`.
    #[allow(dead_code)] // first callers: the browsing views
    pub fn run_raw(&mut self, cmd: &str) -> Result<Vec<u8>, StoreError> {
        self.last_used = Instant::now();
        self.raw_tag += 1;
        log::debug!("[imap {}] {}", self.id, short(cmd));
        let tagged = [(format!("F{}", self.raw_tag), cmd.to_string())];
        match raw::run_many(&mut self.raw, &tagged) {
            Ok(mut o) => match o.pop() {
                Some(Outcome::Ok(data)) => Ok(data),
                Some(Outcome::Refused(text)) => {
                    Err(StoreError::Server(format!("{}: {text}", short(cmd))))
                }
                None => Err(StoreError::Parse(format!("{}: no answer", short(cmd)))),
            },
            Err(e) => Err(self.fail(imap::Error::Io(e), &short(cmd))),
        }
    }

    /// LOGOUT, for a clean shutdown; errors ignored.
    pub fn logout(mut self) {
        if !self.dead {
            log::debug!("[imap {}] LOGOUT", self.id);
            let _ = self.sess.logout();
        }
    }
}

/// A command shortened for error messages.
fn short(cmd: &str) -> String {
    if cmd.len() <= 80 {
        cmd.to_string()
    } else {
        let mut k = 77;
        while !cmd.is_char_boundary(k) {
            k -= 1;
        }
        format!("{}...", &cmd[..k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_folder_detection() {
        assert!(no_means_missing("[NONEXISTENT] Mailbox doesn't exist: x"));
        assert!(no_means_missing("Mailbox doesn't exist: x"));
        assert!(!no_means_missing("[UNAVAILABLE] Temporary failure"));
        assert!(!no_means_missing("[SERVERBUG] Internal error"));
    }

    #[test]
    fn connection_loss_is_transient() {
        let (err, dead) = classify(imap::Error::ConnectionLost, "x");
        assert!(matches!(err, StoreError::Connection(_)));
        assert!(dead);
    }
}
