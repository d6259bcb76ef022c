//! Detects a tool walking one file name through many messages — `grep x Folder/*/1` reads `1` of
//! every message in the shell's (lexical) name order, `find` and `ls` go in directory (UID)
//! order — and names the messages whose copy of that file to fetch ahead, in one batch, so a
//! walk costs a round trip per window instead of one per message.

use std::cmp::Ordering;

/// Messages fetched ahead at once.
pub const WINDOW: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Numeric,
    Lexical,
}

#[derive(Default)]
pub struct Walk {
    name: String,
    last: u32,
    /// Where the current window of fetched-ahead messages ends, in which order.
    ahead: Option<(Order, usize)>,
    /// UIDs in lexical order, with the listing they were made from (its length and last UID).
    lexical: Option<(usize, u32, Vec<u32>)>,
}

/// Compare two UIDs as decimal strings, the way `sort` and shell globs order names.
fn lexical_cmp(a: u32, b: u32) -> Ordering {
    let (mut x, mut y) = ([0u8; 10], [0u8; 10]);
    let (xa, yb) = (decimal(a, &mut x), decimal(b, &mut y));
    xa.cmp(yb)
}

fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

impl Walk {
    /// Note a read of the start of file `name` of message `uid` in a folder whose UIDs (ascending)
    /// are `uids`. Returns the messages, starting with `uid`, whose `name` to fetch now: empty
    /// unless this read continues a walk past what was already fetched ahead.
    pub fn note(&mut self, name: &str, uid: u32, uids: &[u32]) -> Vec<u32> {
        let continuing = self.name == name;
        let prev = self.last;
        self.name = name.to_string();
        self.last = uid;
        if !continuing {
            self.ahead = None;
            return Vec::new();
        }
        let Ok(num_pos) = uids.binary_search(&uid) else {
            return Vec::new();
        };
        // The walk's own order first: a lexical walk has numerically adjacent steps too
        // (1000 → 1001) that must not switch it over.
        let numeric = matches!(uids.binary_search(&prev),
            Ok(p) if (1..=2).contains(&num_pos.wrapping_sub(p)));
        let current = self.ahead.map(|(o, _)| o);
        let mut lexical = || {
            let lex = self.lexical_order(uids);
            let pos = |u: u32| lex.binary_search_by(|x| lexical_cmp(*x, u)).ok();
            matches!((pos(prev), pos(uid)), (Some(a), Some(b)) if (1..=2).contains(&b.wrapping_sub(a)))
        };
        let order = match current {
            Some(Order::Lexical) if lexical() => Some(Order::Lexical),
            _ if numeric => Some(Order::Numeric),
            _ if lexical() => Some(Order::Lexical),
            _ => None,
        };
        let Some(order) = order else {
            self.ahead = None;
            return Vec::new();
        };
        let ahead = self.ahead;
        let seq: &[u32] = match order {
            Order::Numeric => uids,
            Order::Lexical => self.lexical_order(uids),
        };
        let pos = match order {
            Order::Numeric => num_pos,
            Order::Lexical => seq.binary_search_by(|x| lexical_cmp(*x, uid)).unwrap_or(0),
        };
        if matches!(ahead, Some((o, until)) if o == order && pos < until) {
            return Vec::new();
        }
        let end = (pos + WINDOW).min(seq.len());
        let targets = seq[pos..end].to_vec();
        self.ahead = Some((order, end));
        targets
    }

    fn lexical_order(&mut self, uids: &[u32]) -> &[u32] {
        let key = (uids.len(), uids.last().copied().unwrap_or(0));
        let stale = !matches!(&self.lexical, Some((n, last, _)) if (*n, *last) == key);
        if stale {
            let mut v = uids.to_vec();
            v.sort_by(|a, b| lexical_cmp(*a, *b));
            self.lexical = Some((key.0, key.1, v));
        }
        self.lexical
            .as_ref()
            .map(|(_, _, v)| v.as_slice())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_order_is_string_order() {
        let mut v = vec![1, 10, 2, 100, 1000, 11, 9];
        v.sort_by(|a, b| lexical_cmp(*a, *b));
        assert_eq!(v, [1, 10, 100, 1000, 11, 2, 9]);
    }

    #[test]
    fn numeric_walk_fetches_a_window_at_a_time() {
        let uids: Vec<u32> = (1..=200).collect();
        let mut w = Walk::default();
        assert!(w.note("1", 1, &uids).is_empty(), "one read is no walk");
        let first = w.note("1", 2, &uids);
        assert_eq!(first, (2..2 + WINDOW as u32).collect::<Vec<_>>());
        for uid in 3..2 + WINDOW as u32 {
            assert!(w.note("1", uid, &uids).is_empty(), "inside the window");
        }
        let next = w.note("1", 2 + WINDOW as u32, &uids);
        assert_eq!(next.first(), Some(&(2 + WINDOW as u32)));
        assert_eq!(next.len(), WINDOW);
    }

    #[test]
    fn glob_order_walk_is_recognised() {
        let uids: Vec<u32> = (1..=150).collect();
        let mut lex = uids.clone();
        lex.sort_by(|a, b| lexical_cmp(*a, *b));
        let mut w = Walk::default();
        let mut fetched = Vec::new();
        for &u in &lex {
            fetched.extend(w.note("1", u, &uids));
        }
        // Everything after the first message is fetched ahead, each once.
        assert_eq!(fetched.len(), lex.len() - 1);
        assert_eq!(fetched, lex[1..]);
    }

    #[test]
    fn random_access_and_other_names_fetch_nothing() {
        let uids: Vec<u32> = (1..=100).collect();
        let mut w = Walk::default();
        for uid in [50, 7, 93, 12, 61] {
            assert!(w.note("1", uid, &uids).is_empty());
        }
        w.note("1", 20, &uids);
        assert!(
            w.note("2", 21, &uids).is_empty(),
            "another file name breaks the walk"
        );
    }
}
