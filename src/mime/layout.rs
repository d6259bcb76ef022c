//! The line layout of a base64 part, inferred from its head and tail only, so that its decoded
//! size and any decoded range are known without downloading the whole part.
//!
//! The model: `full_lines` lines of `line_chars` base64 characters, each followed by the same
//! `terminator` (`[ \t]*\r?\n`); then a last line of `last_chars` (1..=line_chars) characters,
//! up to two `=`, and whitespace to the end. A part without line breaks is a single last line.
//! Every byte of the head and the tail is checked against the model; the middle cannot be seen,
//! so [`Base64Layout::decode`] checks the fetched bytes again and refuses any that deviate.

use super::base64::{self, is_alphabet};
use super::RangePlan;

/// A base64 body's line layout: every line but the last holds the same base64 characters and
/// the same terminator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base64Layout {
    encoded_size: u64,
    line_chars: u64,
    terminator: Vec<u8>,
    full_lines: u64,
    last_chars: u64,
    padding: u64,
    decoded_size: u64,
}

/// What the model expects at one byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Alpha,
    Exactly(u8),
    Pad,
    Space,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl Expect {
    fn admits(self, b: u8) -> bool {
        match self {
            Expect::Alpha => is_alphabet(b),
            Expect::Exactly(t) => b == t,
            Expect::Pad => b == b'=',
            Expect::Space => is_space(b),
        }
    }
}

/// Decoded bytes of `chars` base64 characters (a trailing partial quantum counts; a lone
/// character does not).
fn decoded_len(chars: u64) -> u64 {
    chars / 4 * 3 + [0, 0, 1, 2][(chars % 4) as usize]
}

/// A line terminator at the start of `bytes`: optional spaces/tabs, optional CR, then LF.
fn terminator_at(bytes: &[u8]) -> Option<&[u8]> {
    let ws = bytes
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = bytes.get(ws..)?;
    let len = match rest {
        [b'\r', b'\n', ..] => ws + 2,
        [b'\n', ..] => ws + 1,
        _ => return None,
    };
    bytes.get(..len)
}

impl Base64Layout {
    fn period(&self) -> u64 {
        self.line_chars + self.terminator.len() as u64
    }

    fn last_start(&self) -> u64 {
        self.full_lines * self.period()
    }

    fn total_chars(&self) -> u64 {
        self.full_lines * self.line_chars + self.last_chars
    }

    pub fn decoded_size(&self) -> u64 {
        self.decoded_size
    }

    pub fn encoded_size(&self) -> u64 {
        self.encoded_size
    }

    /// Base64 characters per full line (the whole content for a single-line part).
    pub fn line_chars(&self) -> u64 {
        self.line_chars
    }

    fn expect(&self, offset: u64) -> Expect {
        let last_start = self.last_start();
        if offset < last_start {
            let col = offset % self.period();
            match col.checked_sub(self.line_chars) {
                None => Expect::Alpha,
                Some(i) => match self.terminator.get(i as usize) {
                    Some(&t) => Expect::Exactly(t),
                    None => Expect::Space,
                },
            }
        } else {
            let r = offset - last_start;
            if r < self.last_chars {
                Expect::Alpha
            } else if r < self.last_chars + self.padding {
                Expect::Pad
            } else {
                Expect::Space
            }
        }
    }

    fn admits(&self, start: u64, bytes: &[u8]) -> bool {
        (start..).zip(bytes).all(|(o, &b)| self.expect(o).admits(b))
    }

    /// Base64 characters before byte `offset`.
    fn chars_before(&self, offset: u64) -> u64 {
        let last_start = self.last_start();
        if offset < last_start {
            let p = self.period();
            offset / p * self.line_chars + (offset % p).min(self.line_chars)
        } else {
            self.full_lines * self.line_chars + (offset - last_start).min(self.last_chars)
        }
    }

    /// (line, is a full line) of base64 character `c`.
    fn line_of(&self, c: u64) -> (u64, bool) {
        let full = self.full_lines * self.line_chars;
        if c < full {
            (c / self.line_chars, true)
        } else {
            (self.full_lines, false)
        }
    }

    /// Whole lines around characters `[4⌊a/3⌋, 4⌈b/3⌉)`, plus the terminator before them, so
    /// that `decode` can check the line breaks on both sides of the range.
    pub(crate) fn plan(&self, start: u64, end: u64) -> RangePlan {
        let end = end.min(self.decoded_size);
        let start = start.min(end);
        let c0 = start / 3 * 4;
        let c1 = end.div_ceil(3).saturating_mul(4).min(self.total_chars());
        if c0 >= c1 {
            return RangePlan {
                enc_start: 0,
                enc_end: 0,
                dec_start: start,
            };
        }
        let (first, _) = self.line_of(c0);
        let enc_start = (first * self.period()).saturating_sub(self.terminator.len() as u64);
        let enc_end = match self.line_of(c1 - 1) {
            (line, true) => (line + 1) * self.period(),
            (_, false) => self.last_start() + self.last_chars,
        };
        RangePlan {
            enc_start,
            enc_end: enc_end.min(self.encoded_size),
            dec_start: c0 / 4 * 3,
        }
    }

    /// Decode a window planned by [`Base64Layout::plan`]; `None` if the bytes break the layout.
    pub(crate) fn decode(&self, plan: &RangePlan, fetched: &[u8]) -> Option<Vec<u8>> {
        if plan.enc_end > self.encoded_size
            || plan.enc_end.checked_sub(plan.enc_start)? != fetched.len() as u64
            || !self.admits(plan.enc_start, fetched)
        {
            return None;
        }
        let chars: Vec<u8> = fetched
            .iter()
            .copied()
            .filter(|&b| is_alphabet(b))
            .collect();
        let first = self.chars_before(plan.enc_start);
        let c0 = plan.dec_start / 3 * 4;
        let skip = c0.checked_sub(first)?;
        let avail = (chars.len() as u64).checked_sub(skip)?;
        // Stop at a quantum boundary unless the part's characters end in this window.
        let take = if first + chars.len() as u64 == self.total_chars() {
            avail
        } else {
            avail / 4 * 4
        };
        let slice = chars.get(skip as usize..(skip + take) as usize)?;
        Some(base64::decode(slice))
    }
}

/// Infer the layout of a base64 part from its first and last bytes and its encoded size.
pub(crate) fn infer(head: &[u8], tail: &[u8], encoded_size: u64) -> Option<Base64Layout> {
    let (head_len, tail_len) = (head.len() as u64, tail.len() as u64);
    if head.is_empty() || tail.is_empty() || head_len > encoded_size || tail_len > encoded_size {
        return None;
    }
    let tail_start = encoded_size - tail_len;

    // Read the tail backwards: whitespace, padding, then the last line's characters.
    let content_end = tail.len() - tail.iter().rev().take_while(|&&b| is_space(b)).count();
    let before_space = tail.get(..content_end)?;
    let padding = before_space
        .iter()
        .rev()
        .take_while(|&&b| b == b'=')
        .count();
    let chars_end = content_end - padding;
    let before_pad = tail.get(..chars_end)?;
    let chars_start = chars_end
        - before_pad
            .iter()
            .rev()
            .take_while(|&&b| is_alphabet(b))
            .count();
    if padding > 2 || chars_start == chars_end {
        return None;
    }
    // Where the last line starts; when it starts before the tail, only a single line fits.
    let last_start = if chars_start > 0 || tail_start == 0 {
        tail_start + chars_start as u64
    } else {
        0
    };
    let last_chars = tail_start + chars_end as u64 - last_start;

    let layout = if last_start == 0 {
        Base64Layout {
            encoded_size,
            line_chars: last_chars,
            terminator: Vec::new(),
            full_lines: 0,
            last_chars,
            padding: padding as u64,
            decoded_size: 0,
        }
    } else {
        let line_chars = head.iter().take_while(|&&b| is_alphabet(b)).count();
        let terminator = terminator_at(head.get(line_chars..)?)?.to_vec();
        let line_chars = line_chars as u64;
        let period = line_chars + terminator.len() as u64;
        if line_chars == 0 || last_start % period != 0 || last_chars > line_chars {
            return None;
        }
        Base64Layout {
            encoded_size,
            line_chars,
            terminator,
            full_lines: last_start / period,
            last_chars,
            padding: padding as u64,
            decoded_size: 0,
        }
    };
    let chars = layout.total_chars();
    let padding_fits = match layout.padding {
        0 => chars % 4 != 1,
        p => (chars + p) % 4 == 0,
    };
    if !padding_fits || !layout.admits(0, head) || !layout.admits(tail_start, tail) {
        return None;
    }
    Some(Base64Layout {
        decoded_size: decoded_len(chars),
        ..layout
    })
}
