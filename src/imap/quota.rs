//! The account's quota (RFC 9208, RFC 2087): `GETQUOTAROOT INBOX` and its untagged `QUOTA`
//! answers, read under the control limits like every other short command.

use super::parse::untagged_values;
use super::session::{is_untagged, Conn};
use super::store::ImapStore;
use super::wire::{self, Cmd};
use crate::names;
use crate::store::{Quota, Result, StoreError};

/// The mailbox whose quota roots stand for the account.
const ACCOUNT_MAILBOX: &str = "INBOX";

/// Resources of one `* QUOTA root (NAME usage limit ...)` answer: (name upper-cased, usage,
/// limit); `None` for other or unreadable responses.
fn quota_response(frame: &[u8]) -> Option<Vec<(String, u64, u64)>> {
    let v = untagged_values(frame).ok()?;
    if !v.first()?.as_text()?.eq_ignore_ascii_case("QUOTA") {
        return None;
    }
    // The root (v[1]) may be any string, even empty: the list after it is what counts.
    let items = v.get(2)?.as_list()?;
    Some(
        items
            .chunks(3)
            .filter_map(|t| match t {
                [n, u, l] => Some((n.as_text()?.to_ascii_uppercase(), u.as_u64()?, l.as_u64()?)),
                _ => None,
            })
            .collect(),
    )
}

/// Of two (usage, limit) pairs, the one with less room left (several roots may apply).
fn tighter(a: Option<(u64, u64)>, b: (u64, u64)) -> Option<(u64, u64)> {
    let room = |(u, l): (u64, u64)| l.saturating_sub(u);
    Some(match a {
        Some(a) if room(a) <= room(b) => a,
        _ => b,
    })
}

/// Fold one answer's resources into `q`.
fn add_resources(q: &mut Quota, resources: &[(String, u64, u64)]) {
    for (name, usage, limit) in resources {
        match name.as_str() {
            "STORAGE" => q.storage = tighter(q.storage, (*usage, *limit)),
            "MESSAGE" => q.messages = tighter(q.messages, (*usage, *limit)),
            _ => {}
        }
    }
}

impl Conn {
    /// `GETQUOTAROOT mailbox`: the resources of every root that applies to it.
    pub fn quota_root(&mut self, mailbox: &str) -> Result<Quota> {
        let cmd = Cmd::text("GETQUOTAROOT ").string(&names::raw_bytes(mailbox));
        let mut q = Quota::default();
        let mut on = |d: Vec<u8>| {
            if is_untagged(&d, "QUOTA") {
                if let Some(r) = quota_response(&d) {
                    add_resources(&mut q, &r);
                }
            }
            Ok(())
        };
        self.run_one(cmd, &wire::CONTROL, &mut on)?;
        Ok(q)
    }
}

impl ImapStore {
    /// The account's quota when the server offers QUOTA (said after login); a refusal (no
    /// quota root for INBOX) is "no quota", a connection problem an error.
    pub(super) fn account_quota(&self) -> Result<Option<Quota>> {
        let caps = self.pool_caps();
        if !(caps.has("QUOTA") || caps.has("QUOTA=RES-STORAGE")) {
            return Ok(None);
        }
        match self.with_conn(None, None, |c| c.quota_root(ACCOUNT_MAILBOX)) {
            Ok(q) if q == Quota::default() => Ok(None),
            Ok(q) => Ok(Some(q)),
            Err(StoreError::Server(msg)) => {
                log::debug!("no quota: {msg}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_answers() {
        let r = quota_response(b"* QUOTA \"User quota\" (STORAGE 10 512 MESSAGE 1 100)\r\n");
        assert_eq!(
            r,
            Some(vec![
                ("STORAGE".into(), 10, 512),
                ("MESSAGE".into(), 1, 100)
            ])
        );
        assert_eq!(
            quota_response(b"* QUOTA \"\" (storage 3 9)\r\n"),
            Some(vec![("STORAGE".into(), 3, 9)])
        );
        // A literal root, a resource without numbers skipped.
        assert_eq!(
            quota_response(b"* QUOTA {3}\r\na b (STORAGE x 9 STORAGE 1 2)\r\n"),
            Some(vec![("STORAGE".into(), 1, 2)])
        );
        assert_eq!(quota_response(b"* QUOTAROOT INBOX \"\"\r\n"), None);
        assert_eq!(quota_response(b"* QUOTA \"\" STORAGE\r\n"), None);
        assert_eq!(quota_response(b"* QUOTA \"\" (STORAGE 1 2\r\n"), None);
    }

    use super::super::hostile_server::{caps_reply, greet, ok, start, starts, Reply};
    use crate::store::MailStore;
    use std::time::{Duration, Instant};

    /// A server advertising `caps` after login, answering GETQUOTAROOT with `answer`.
    fn server(
        caps: &'static str,
        answer: fn(&str) -> Reply,
    ) -> super::super::hostile_server::Server {
        start(greet(""), move |tag, cmd| {
            if starts(cmd, "GETQUOTAROOT") {
                return answer(tag);
            }
            if starts(cmd, "CAPABILITY") {
                return caps_reply(tag, caps);
            }
            ok(tag, b"")
        })
    }

    #[test]
    fn quota_of_the_account() {
        let f = server("QUOTA", |tag| {
            ok(
                tag,
                b"* QUOTAROOT INBOX \"\" Other\r\n* 3 EXISTS\r\n\
                  * QUOTA \"\" (STORAGE 512 10240)\r\n* QUOTA Other (STORAGE 9000 9100 MESSAGE 7 50)\r\n",
            )
        });
        let store = ImapStore::connect(f.cfg("pw")).unwrap();
        let q = store.quota().unwrap().unwrap();
        assert_eq!(q.storage, Some((9000, 9100)));
        assert_eq!(q.messages, Some((7, 50)));
        assert!(f
            .commands()
            .iter()
            .any(|c| c.as_slice() == b"GETQUOTAROOT \"INBOX\""));
    }

    #[test]
    fn no_quota() {
        // Not advertised: never asked.
        let f = server("IDLE", |tag| ok(tag, b"* QUOTA \"\" (STORAGE 1 2)\r\n"));
        let store = ImapStore::connect(f.cfg("pw")).unwrap();
        assert_eq!(store.quota(), Ok(None));
        assert!(!f.sent("GETQUOTAROOT"));
        // Refused (no quota root), or answered without a resource we know.
        for answer in [
            (|tag: &str| Reply::Now(format!("{tag} NO no quota root\r\n").into_bytes()))
                as fn(&str) -> Reply,
            |tag: &str| ok(tag, b"* QUOTAROOT INBOX\r\n* QUOTA \"\" (X-FILES 1 2)\r\n"),
        ] {
            let f = server("QUOTA", answer);
            let store = ImapStore::connect(f.cfg("pw")).unwrap();
            assert_eq!(store.quota(), Ok(None));
            assert!(f.sent("GETQUOTAROOT"));
        }
    }

    #[test]
    fn a_dripping_answer_is_bounded() {
        let f = server("QUOTA", |_| {
            Reply::Drip(
                b"* QUOTA \"\" (STORAGE 1 2)".to_vec(),
                Duration::from_millis(100),
            )
        });
        let store = ImapStore::connect(f.cfg("pw")).unwrap();
        let t0 = Instant::now();
        assert!(matches!(store.quota(), Err(StoreError::Connection(_))));
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn the_tightest_root_wins() {
        let mut q = Quota::default();
        add_resources(&mut q, &[("STORAGE".into(), 10, 100), ("X".into(), 1, 1)]);
        add_resources(
            &mut q,
            &[("STORAGE".into(), 50, 80), ("MESSAGE".into(), 3, 9)],
        );
        add_resources(&mut q, &[("STORAGE".into(), 0, 1000)]);
        assert_eq!(q.storage, Some((50, 80)));
        assert_eq!(q.messages, Some((3, 9)));
    }
}
