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
