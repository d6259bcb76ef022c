//! The line layout of a base64 part, inferred from its head and tail only, so that its decoded
//! size and any decoded range are known without downloading the whole part.
//!
//! The model: the part's symbols (base64 characters, then up to two `=`) fill `full_lines` lines
//! of `line_syms` symbols, each followed by the same `terminator` (`[ \t]*\r?\n`); a last line
//! holds the remaining `last_syms` (1..=line_syms) symbols; whitespace follows to the end. Every
//! byte of the head and the tail is checked against the model. The middle cannot be seen, so
//! [`Base64Layout::decode`] checks the fetched bytes again and refuses any that deviate; bytes
//! added or removed in the middle move the tail off the line grid and are refused up front. A
//! part without line breaks is accepted only when head and tail cover all of it: with no grid,
//! nothing else would reveal a stray line break in the middle.

use super::base64::{is_alphabet, SymbolDecoder};
use super::RangePlan;

/// A base64 body's line layout: every line but the last holds the same base64 characters and
/// the same terminator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base64Layout {
    encoded_size: u64,
    /// Symbols (characters and padding) on each full line.
    line_syms: u64,
    terminator: Vec<u8>,
    full_lines: u64,
    /// Symbols on the last line.
    last_syms: u64,
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
        self.line_syms + self.terminator.len() as u64
    }

    fn last_start(&self) -> u64 {
        self.full_lines * self.period()
    }

    fn total_syms(&self) -> u64 {
        self.full_lines * self.line_syms + self.last_syms
    }

    fn total_chars(&self) -> u64 {
        self.total_syms().saturating_sub(self.padding)
    }

    pub fn decoded_size(&self) -> u64 {
        self.decoded_size
    }

    fn symbol(&self, index: u64) -> Expect {
        if index < self.total_chars() {
            Expect::Alpha
        } else {
            Expect::Pad
        }
    }

    fn expect(&self, offset: u64) -> Expect {
        let last_start = self.last_start();
        if offset < last_start {
            let (line, col) = (offset / self.period(), offset % self.period());
            match col.checked_sub(self.line_syms) {
                None => self.symbol(line * self.line_syms + col),
                Some(i) => match self.terminator.get(i as usize) {
                    Some(&t) => Expect::Exactly(t),
                    None => Expect::Space,
                },
            }
        } else {
            let r = offset - last_start;
            if r < self.last_syms {
                self.symbol(self.full_lines * self.line_syms + r)
            } else {
                Expect::Space
            }
        }
    }

    fn admits(&self, start: u64, bytes: &[u8]) -> bool {
        self.visit_symbols(start, bytes, true, |_| {})
    }

    /// Check that `bytes` (at encoded offset `start`) fit the layout, handing their base64
    /// symbols to `visit` in order. Whole runs of symbols inside full lines go in bulk (checked
    /// here only with `check_runs`: a strict decoder checks them anyway); everything else
    /// (terminators, the last line, padding) is checked byte by byte.
    fn visit_symbols(
        &self,
        start: u64,
        bytes: &[u8],
        check_runs: bool,
        mut visit: impl FnMut(&[u8]),
    ) -> bool {
        let period = self.period();
        let last_start = self.last_start();
        let mut i = 0usize;
        while i < bytes.len() {
            let o = start + i as u64;
            if o < last_start {
                let col = o % period;
                if col < self.line_syms {
                    let line = o / period;
                    let run_end = (self.line_syms - col) as usize;
                    let n = run_end.min(bytes.len() - i);
                    // A run is all alphabet unless padding starts inside it.
                    let first_sym = line * self.line_syms + col;
                    if first_sym + n as u64 <= self.total_chars() {
                        let run = &bytes[i..i + n];
                        if check_runs && !run.iter().all(|&b| is_alphabet(b)) {
                            return false;
                        }
                        visit(run);
                        i += n;
                        continue;
                    }
                } else {
                    // A line's terminator (or what is left of it) in one comparison.
                    let t = (col - self.line_syms) as usize;
                    let want = &self.terminator[t.min(self.terminator.len())..];
                    let n = want.len().min(bytes.len() - i);
                    if n > 0 {
                        if bytes[i..i + n] != want[..n] {
                            return false;
                        }
                        i += n;
                        continue;
                    }
                }
            }
            let b = bytes[i];
            if !self.expect(o).admits(b) {
                return false;
            }
            if is_alphabet(b) {
                visit(&bytes[i..i + 1]);
            }
            i += 1;
        }
        true
    }

    /// Base64 characters before byte `offset`.
    fn chars_before(&self, offset: u64) -> u64 {
        let last_start = self.last_start();
        let syms = if offset < last_start {
            let p = self.period();
            offset / p * self.line_syms + (offset % p).min(self.line_syms)
        } else {
            self.full_lines * self.line_syms + (offset - last_start).min(self.last_syms)
        };
        syms.min(self.total_chars())
    }

    /// (line, is a full line) of symbol `c`.
    fn line_of(&self, c: u64) -> (u64, bool) {
        if c < self.full_lines * self.line_syms {
            (c / self.line_syms, true)
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
            (_, false) => self.last_start() + self.last_syms,
        };
        RangePlan {
            enc_start,
            enc_end: enc_end.min(self.encoded_size),
            dec_start: c0 / 4 * 3,
        }
    }

    /// Decode a window planned by [`Base64Layout::plan`]; `None` if the bytes break the layout.
    pub(crate) fn decode(&self, plan: &RangePlan, fetched: &[u8]) -> Option<Vec<u8>> {
        if plan.enc_start == plan.enc_end && fetched.is_empty() {
            return Some(Vec::new());
        }
        if plan.enc_end > self.encoded_size
            || plan.enc_end.checked_sub(plan.enc_start)? != fetched.len() as u64
        {
            return None;
        }
        let first = self.chars_before(plan.enc_start);
        let in_window = self.chars_before(plan.enc_end).checked_sub(first)?;
        let c0 = plan.dec_start / 3 * 4;
        let skip = c0.checked_sub(first)?;
        let avail = in_window.checked_sub(skip)?;
        // Stop at a quantum boundary unless the part's characters end in this window.
        let take = if first + in_window == self.total_chars() {
            avail
        } else {
            avail / 4 * 4
        };
        let (from, to) = (skip, skip + take);
        // Decoded straight from the fetched lines (no copy of the symbols): the wanted ones
        // strictly, the ones fetched around them only checked.
        let mut out = Vec::with_capacity((take / 4 * 3 + 2) as usize);
        let mut decoder = SymbolDecoder::default();
        let (mut seen, mut around_ok) = (0u64, true);
        let fits = self.visit_symbols(plan.enc_start, fetched, false, |run| {
            let (lo, hi) = (seen, seen + run.len() as u64);
            seen = hi;
            let a = (from.clamp(lo, hi) - lo) as usize;
            let b = (to.clamp(lo, hi) - lo) as usize;
            if !run[..a].iter().chain(&run[b..]).all(|&x| is_alphabet(x)) {
                around_ok = false;
            }
            decoder.feed(&run[a..b], &mut out);
        });
        if !fits || !around_ok || seen != in_window || !decoder.finish(&mut out) {
            return None;
        }
        Some(out)
    }
}

/// Infer the layout of a base64 part from its first and last bytes and its encoded size.
pub(crate) fn infer(head: &[u8], tail: &[u8], encoded_size: u64) -> Option<Base64Layout> {
    let (head_len, tail_len) = (head.len() as u64, tail.len() as u64);
    if head.is_empty() || tail.is_empty() || head_len > encoded_size || tail_len > encoded_size {
        return None;
    }
    let tail_start = encoded_size - tail_len;
    let is_symbol = |b: &u8| is_alphabet(*b) || *b == b'=';

    // Read the tail backwards: trailing whitespace, then the last line's symbols.
    let syms_end = tail.len() - tail.iter().rev().take_while(|&&b| is_space(b)).count();
    let before_space = tail.get(..syms_end)?;
    let syms_start = syms_end
        - before_space
            .iter()
            .rev()
            .take_while(|b| is_symbol(b))
            .count();
    // Padding sits at the very end; the model check below rejects `=` anywhere else.
    let padding = before_space.iter().filter(|&&b| b == b'=').count() as u64;
    if padding > 2 || syms_start == syms_end {
        return None;
    }
    let last_start = if syms_start > 0 || tail_start == 0 {
        tail_start + syms_start as u64
    } else if head_len + tail_len >= encoded_size {
        0
    } else {
        // One line longer than the samples: nothing would reveal a line break in the middle.
        return None;
    };
    let last_syms = tail_start + syms_end as u64 - last_start;

    let layout = if last_start == 0 {
        Base64Layout {
            encoded_size,
            line_syms: last_syms,
            terminator: Vec::new(),
            full_lines: 0,
            last_syms,
            padding,
            decoded_size: 0,
        }
    } else {
        let line_syms = head.iter().take_while(|b| is_symbol(b)).count();
        let terminator = terminator_at(head.get(line_syms..)?)?.to_vec();
        let line_syms = line_syms as u64;
        let period = line_syms + terminator.len() as u64;
        if line_syms == 0 || last_start % period != 0 || last_syms > line_syms {
            return None;
        }
        Base64Layout {
            encoded_size,
            line_syms,
            terminator,
            full_lines: last_start / period,
            last_syms,
            padding,
            decoded_size: 0,
        }
    };
    let chars = layout.total_chars();
    let padding_fits = match padding {
        0 => chars % 4 != 1,
        p => (chars + p) % 4 == 0,
    };
    if chars == 0 || !padding_fits || !layout.admits(0, head) || !layout.admits(tail_start, tail) {
        return None;
    }
    Some(Base64Layout {
        decoded_size: decoded_len(chars),
        ..layout
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::base64::Engine;

    fn wrapped(data_len: usize, line: usize, term: &str, trailer: &str) -> Vec<u8> {
        let data: Vec<u8> = (0..data_len).map(|i| (i * 7 + i / 13) as u8).collect();
        let enc = ::base64::engine::general_purpose::STANDARD.encode(&data);
        let lines: Vec<&[u8]> = enc.as_bytes().chunks(line).collect();
        let mut out = lines.join(term.as_bytes());
        out.extend_from_slice(trailer.as_bytes());
        out
    }

    fn infer_all(enc: &[u8]) -> Option<Base64Layout> {
        let n = enc.len().min(1024);
        infer(&enc[..n], &enc[enc.len() - n..], enc.len() as u64)
    }

    #[test]
    fn regular_layouts_are_found() {
        for line in [60, 64, 72, 76, 77, 4, 1, 200] {
            for term in ["\r\n", "\n", "  \r\n", "\t\n"] {
                for len in [1, 2, 3, 57, 100, 1000, 5000, 123_457] {
                    let enc = wrapped(len, line, term, "\r\n");
                    let l = infer_all(&enc).unwrap_or_else(|| panic!("{line} {term:?} {len}"));
                    assert_eq!(l.decoded_size(), len as u64, "{line} {term:?} {len}");
                }
            }
        }
    }

    #[test]
    fn padding_alone_on_the_last_line() {
        // 452 symbols in lines of 10: the last line is just "==".
        let enc = wrapped(337, 10, "\r\n", "");
        assert!(enc.ends_with(b"\r\n=="));
        assert_eq!(infer_all(&enc).map(|l| l.decoded_size()), Some(337));
    }

    #[test]
    fn irregular_layouts_are_refused() {
        let good = wrapped(5000, 76, "\r\n", "\r\n");
        assert!(infer_all(&good).is_some());
        let refuse = |enc: &[u8], why: &str| assert!(infer_all(enc).is_none(), "{why}");
        let mut e = good.clone();
        e[100] = b'=';
        refuse(&e, "= in the head");
        let mut e = good.clone();
        e.splice(78..80, *b"\n");
        refuse(&e, "mixed terminators");
        let mut e = good.clone();
        e.splice(156..156, *b"\r\n");
        refuse(&e, "blank line in the head");
        let mut e = good.clone();
        e.extend_from_slice(b"-- \r\nsignature\r\n");
        refuse(&e, "text after the data");
        let mut e = good.clone();
        e.splice(3000..3000, *b"\r\n");
        refuse(&e, "blank line in the middle");
        let mut e = good.clone();
        e.splice(3000..3001, []);
        refuse(&e, "short line in the middle");
        refuse(
            &wrapped(5000, 3000, "\r\n", ""),
            "lines longer than the samples",
        );
        refuse(&wrapped(5000, 10_000, "\r\n", ""), "one unseen long line");
        refuse(b"\r\n\r\n", "no data");
        refuse(b"====", "only padding");
        refuse(b"QUJDR", "a lone character left over");
    }

    #[test]
    fn small_single_line() {
        let l = infer(b"QUJD", b"QUJD", 4).unwrap();
        assert_eq!(l.decoded_size(), 3);
        let l = infer(b"QUI=\r\n", b"QUI=\r\n", 6).unwrap();
        assert_eq!(l.decoded_size(), 2);
        let l = infer(b"QUI", b"QUI", 3).unwrap();
        assert_eq!(l.decoded_size(), 2);
    }

    #[test]
    fn bad_arguments_give_none() {
        assert!(infer(b"", b"", 0).is_none());
        assert!(infer(b"QUJD", b"QUJD", 2).is_none());
        assert!(infer(b"QUJD", b"QUJD", u64::MAX).is_none());
    }
}
