//! The range planner: a batch of [`RangeRequest`]s as few `UID FETCH` commands as bounds allow
//! (per-command bytes and items, pipelined groups), and the answers taken back apart.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::items::{fetched_key, valid_section};
use super::response::FetchResponse;
use super::sexp::Value;
use super::uidset;
use crate::store::{RangeRequest, Result, StoreError};

/// Most body bytes asked for in one command (a literal larger than its range is refused, so
/// this also bounds one literal's buffer).
pub const MAX_COMMAND_BYTES: u64 = 16 << 20;
/// Most commands pipelined on one connection, and most body bytes they may ask for together.
const MAX_PIPELINE: usize = 64;
const PIPELINE_BYTES: u64 = 8 << 20;
/// Most FETCH items, or UIDs in a structure batch, per command.
pub const MAX_ITEMS: usize = 200;

/// Body sections received, by (UID, BINARY?, section, origin).
pub type Bodies = HashMap<(u32, bool, String, Option<u64>), Vec<u8>>;

/// One FETCH item: BINARY?, section, origin, length.
type Item = (bool, String, u64, u64);

/// One piece of a request: at most [`MAX_COMMAND_BYTES`] of one section of one message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Piece {
    uid: u32,
    binary: bool,
    section: String,
    offset: u64,
    len: u64,
}

/// The commands for a batch of range requests.
pub struct RangePlan {
    /// The pieces of each request, in order.
    pieces: Vec<Vec<Piece>>,
    commands: Vec<String>,
    /// The UIDs each command asks about.
    cmd_uids: HashMap<String, Vec<u32>>,
    /// The body bytes each command asks for, at most.
    cmd_bytes: HashMap<String, u64>,
}

impl RangePlan {
    pub fn new(reqs: &[RangeRequest]) -> Result<RangePlan> {
        // Split into pieces; dedupe by (uid, binary, section, offset) keeping the longest
        // length, since a response is keyed by section and origin only.
        let mut pieces = Vec::with_capacity(reqs.len());
        let mut wanted: BTreeMap<(u32, bool, String, u64), u64> = BTreeMap::new();
        for r in reqs {
            if !valid_section(&r.section) {
                return Err(StoreError::Server(format!(
                    "refusing to send an invalid section spec {:?}",
                    r.section
                )));
            }
            let section = r.section.to_ascii_uppercase();
            let mut ps = Vec::new();
            let mut off = r.offset;
            let end = r.offset.saturating_add(r.len);
            while off < end {
                let len = (end - off).min(MAX_COMMAND_BYTES);
                let e = wanted
                    .entry((r.uid, r.binary, section.clone(), off))
                    .or_insert(0);
                *e = (*e).max(len);
                ps.push(Piece {
                    uid: r.uid,
                    binary: r.binary,
                    section: section.clone(),
                    offset: off,
                    len,
                });
                off += len;
            }
            pieces.push(ps);
        }
        // Per UID, the item lists of its commands (bounded in bytes and items).
        let mut per_uid: BTreeMap<u32, Vec<Vec<Item>>> = BTreeMap::new();
        for ((uid, binary, section, off), len) in wanted {
            let cmds = per_uid.entry(uid).or_default();
            let fits = cmds.last().is_some_and(|items: &Vec<Item>| {
                let bytes: u64 = items.iter().map(|i| i.3).sum();
                items.len() < MAX_ITEMS && bytes + len <= MAX_COMMAND_BYTES
            });
            if !fits {
                cmds.push(Vec::new());
            }
            if let Some(items) = cmds.last_mut() {
                items.push((binary, section, off, len));
            }
        }
        // UIDs with identical item lists share a command (bounded in total bytes).
        let mut by_items: BTreeMap<Vec<Item>, Vec<u32>> = BTreeMap::new();
        for (uid, cmds) in per_uid {
            for items in cmds {
                by_items.entry(items).or_default().push(uid);
            }
        }
        let mut commands = Vec::new();
        let mut cmd_uids = HashMap::new();
        let mut cmd_bytes = HashMap::new();
        for (items, uids) in by_items {
            let bytes: u64 = items.iter().map(|i| i.3).sum::<u64>().max(1);
            let per_cmd = ((MAX_COMMAND_BYTES / bytes) as usize).clamp(1, MAX_ITEMS);
            let list: Vec<String> = items
                .iter()
                .map(|(b, s, o, n)| {
                    // BINARY (RFC 3516): the server decodes, and literal8 carries NUL bytes.
                    let kind = if *b { "BINARY" } else { "BODY" };
                    format!("{kind}.PEEK[{s}]<{o}.{n}>")
                })
                .collect();
            for group in uids.chunks(per_cmd) {
                let cmd = format!(
                    "UID FETCH {} (UID {})",
                    uidset::compact(group),
                    list.join(" ")
                );
                cmd_uids.insert(cmd.clone(), group.to_vec());
                cmd_bytes.insert(cmd.clone(), bytes.saturating_mul(group.len() as u64));
                commands.push(cmd);
            }
        }
        Ok(RangePlan {
            pieces,
            commands,
            cmd_uids,
            cmd_bytes,
        })
    }

    /// The commands in groups to pipeline (each group one round trip on one connection):
    /// small commands spread over `workers` groups, each group bounded in count and bytes; a big
    /// command goes alone.
    pub fn groups(&self, workers: usize) -> Vec<Vec<String>> {
        let bytes = |c: &String| self.cmd_bytes.get(c).copied().unwrap_or(MAX_COMMAND_BYTES);
        let (small, big): (Vec<&String>, Vec<&String>) = self
            .commands
            .iter()
            .partition(|c| bytes(c) < PIPELINE_BYTES / 8);
        let mut groups: Vec<Vec<String>> = big.into_iter().map(|c| vec![c.clone()]).collect();
        let per_group = small.len().div_ceil(workers.max(1)).clamp(1, MAX_PIPELINE);
        let mut current: Vec<String> = Vec::new();
        let mut current_bytes = 0;
        for c in small {
            if current.len() >= per_group || current_bytes + bytes(c) > PIPELINE_BYTES {
                groups.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
            current_bytes += bytes(c);
            current.push(c.clone());
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }

    pub fn uids_of(&self, cmd: &str) -> HashSet<u32> {
        self.cmd_uids
            .get(cmd)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn answers(&self, mut got: Bodies) -> Vec<Vec<u8>> {
        // A request answered by one item that no other request shares takes it as it is.
        let mut uses: HashMap<(u32, bool, &str, u64), usize> = HashMap::new();
        for p in self.pieces.iter().flatten() {
            *uses
                .entry((p.uid, p.binary, &p.section, p.offset))
                .or_default() += 1;
        }
        let mut out = Vec::with_capacity(self.pieces.len());
        for ps in &self.pieces {
            if let [p] = ps.as_slice() {
                let key = (p.uid, p.binary, p.section.clone(), Some(p.offset));
                let alone = uses.get(&(p.uid, p.binary, p.section.as_str(), p.offset)) == Some(&1);
                if alone && got.get(&key).is_some_and(|d| d.len() as u64 <= p.len) {
                    out.push(got.remove(&key).unwrap_or_default());
                    continue;
                }
            }
            let mut bytes = Vec::new();
            for p in ps {
                let data = piece_bytes(p, &got);
                let short = (data.len() as u64) < p.len;
                bytes.extend_from_slice(data);
                if short {
                    break; // end of the section
                }
            }
            out.push(bytes);
        }
        out
    }
}

/// The bytes answering one piece: the item with its origin, or (for servers that drop the
/// origin) an un-ranged item, cut to the range if it is the whole section.
fn piece_bytes<'g>(p: &Piece, got: &'g Bodies) -> &'g [u8] {
    let cut = |d: &'g [u8], from: u64| -> &'g [u8] {
        let start = (from as usize).min(d.len());
        let end = (start as u64).saturating_add(p.len).min(d.len() as u64) as usize;
        &d[start..end]
    };
    if let Some(d) = got.get(&(p.uid, p.binary, p.section.clone(), Some(p.offset))) {
        return cut(d, 0);
    }
    if let Some(d) = got.get(&(p.uid, p.binary, p.section.clone(), None)) {
        // Longer than asked: the server sent the whole section.
        if d.len() as u64 > p.len {
            return cut(d, p.offset);
        }
        return cut(d, 0);
    }
    &[]
}

pub fn collect_bodies(resps: Vec<FetchResponse>, uids: &HashSet<u32>, got: &mut Bodies) {
    for f in resps {
        let Some(uid) = f.uid() else { continue };
        if !uids.contains(&uid) {
            continue;
        }
        for (name, v) in f.items {
            if let Some((binary, section, origin)) = fetched_key(&name) {
                // Moved, not copied: these are the bulk of a read.
                let data = match v {
                    Value::Str(bytes) => bytes,
                    other => other.as_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
                };
                got.insert((uid, binary, section.to_string(), origin), data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::response::parse_fetches;

    fn req(uid: u32, section: &str, offset: u64, len: u64) -> RangeRequest {
        RangeRequest {
            uid,
            section: section.into(),
            offset,
            len,
            binary: false,
        }
    }

    #[test]
    fn plan_groups_and_answers() {
        let reqs = vec![
            req(5, "2", 0, 10),
            req(5, "2", 10, 10),
            req(5, "2", 0, 4), // same origin, shorter: shares the item
            req(6, "1", 0, 10),
            req(7, "1", 0, 10), // same item list as 6: one command for both
            req(8, "", 0, 0),   // empty: nothing sent
        ];
        let plan = RangePlan::new(&reqs).unwrap();
        assert_eq!(
            plan.commands,
            vec![
                "UID FETCH 6:7 (UID BODY.PEEK[1]<0.10>)".to_string(),
                "UID FETCH 5 (UID BODY.PEEK[2]<0.10> BODY.PEEK[2]<10.10>)".to_string(),
            ]
        );
        let raw = b"* 1 FETCH (UID 5 BODY[2]<0> {10}\r\n0123456789 BODY[2]<10> {3}\r\nabc)\r\n\
* 2 FETCH (UID 6 BODY[1]<0> \"hello\")\r\n* 9 FETCH (UID 99 FLAGS ())\r\n";
        let resps = parse_fetches(raw).unwrap();
        let mut got = HashMap::new();
        let uids: HashSet<u32> = plan.commands.iter().flat_map(|c| plan.uids_of(c)).collect();
        collect_bodies(resps, &uids, &mut got);
        let a = plan.answers(got);
        assert_eq!(a[0], b"0123456789");
        assert_eq!(a[1], b"abc");
        assert_eq!(a[2], b"0123");
        assert_eq!(a[3], b"hello");
        assert_eq!(a[4], b""); // UID 7 vanished
        assert_eq!(a[5], b"");
    }

    #[test]
    fn small_commands_are_pipelined_in_groups_per_connection() {
        // 100 messages each wanting its own tail: 100 commands.
        let mut reqs: Vec<RangeRequest> = (1..=100)
            .map(|u| req(u, "2", 1000 + u as u64, 100))
            .collect();
        reqs.push(req(500, "1", 0, 4 << 20));
        let plan = RangePlan::new(&reqs).unwrap();
        assert_eq!(plan.commands.len(), 101);
        let groups = plan.groups(4);
        let big: Vec<_> = groups
            .iter()
            .filter(|g| g.iter().any(|c| c.contains("<0.4194304>")))
            .collect();
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].len(), 1, "a big command goes alone");
        let small: Vec<usize> = groups
            .iter()
            .filter(|g| !big.contains(g))
            .map(Vec::len)
            .collect();
        assert_eq!(small, [25, 25, 25, 25]);
        let all: usize = groups.iter().map(Vec::len).sum();
        assert_eq!(all, 101, "every command once");
    }

    #[test]
    fn big_requests_are_split() {
        let reqs = vec![req(1, "1", 5, 2 * MAX_COMMAND_BYTES + 3)];
        let plan = RangePlan::new(&reqs).unwrap();
        assert_eq!(plan.commands.len(), 3);
        assert_eq!(plan.pieces[0].len(), 3);
        assert!(plan.commands[2].ends_with(&format!("<{}.3>)", 5 + 2 * MAX_COMMAND_BYTES)));
    }

    #[test]
    fn many_small_ranges_share_commands_up_to_the_item_limit() {
        // Our reader reads literals by length: no re-parse cost to spread out, only MAX_ITEMS.
        let reqs: Vec<RangeRequest> = (0..1000).map(|k| req(1, "2", k * 1000, 1000)).collect();
        let plan = RangePlan::new(&reqs).unwrap();
        assert_eq!(plan.commands.len(), 1000usize.div_ceil(MAX_ITEMS));
        // A few big chunks of one section still share a command.
        let reqs: Vec<RangeRequest> = (0..4).map(|k| req(1, "2", k << 17, 1 << 17)).collect();
        assert_eq!(RangePlan::new(&reqs).unwrap().commands.len(), 1);
    }

    #[test]
    fn binary_requests_use_binary_peek_and_match_binary_answers() {
        let mut b = req(3, "2", 0, 4);
        b.binary = true;
        let reqs = vec![b, req(3, "2", 0, 4)];
        let plan = RangePlan::new(&reqs).unwrap();
        assert_eq!(
            plan.commands,
            vec!["UID FETCH 3 (UID BODY.PEEK[2]<0.4> BINARY.PEEK[2]<0.4>)".to_string()]
        );
        let raw = b"* 1 FETCH (UID 3 BINARY[2]<0> ~{4}\r\n\0\x01\0\x02 BODY[2]<0> {4}\r\nAAEA)\r\n";
        let mut got = HashMap::new();
        collect_bodies(parse_fetches(raw).unwrap(), &HashSet::from([3]), &mut got);
        let a = plan.answers(got);
        assert_eq!(a[0], b"\0\x01\0\x02");
        assert_eq!(a[1], b"AAEA");
    }

    #[test]
    fn origin_less_answers() {
        let reqs = vec![req(1, "1", 2, 3)];
        let plan = RangePlan::new(&reqs).unwrap();
        let mut got = HashMap::new();
        got.insert((1, false, "1".to_string(), None), b"abcdefgh".to_vec());
        assert_eq!(plan.answers(got)[0], b"cde");
    }

    #[test]
    fn invalid_sections_are_refused() {
        assert!(RangePlan::new(&[req(1, "1]<0.1> BODY[2", 0, 1)]).is_err());
    }
}
