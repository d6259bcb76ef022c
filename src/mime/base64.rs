//! Lenient streaming base64 decoder (RFC 2045 §6.8), matching Dovecot's output on valid input.
//!
//! Rules: bytes outside the alphabet (whitespace, garbage) are skipped; `=` ends the current
//! quantum, emitting its complete bytes, and decoding continues with a fresh quantum; at the end
//! a pending 2- or 3-char quantum yields 1 or 2 bytes and a lone char yields nothing.

/// Marks a byte outside the alphabet in [`SEXTETS`].
const INVALID: u8 = 0xFF;

/// Sextet value of every byte, INVALID outside the alphabet: one lookup per byte on the hot path.
static SEXTETS: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'/' as usize] = 63;
    t
};

/// The sextet value of a base64 alphabet byte.
pub(crate) fn sextet(b: u8) -> Option<u8> {
    match SEXTETS[b as usize] {
        INVALID => None,
        s => Some(s),
    }
}

pub(crate) fn is_alphabet(b: u8) -> bool {
    SEXTETS[b as usize] != INVALID
}

/// Decode leading whole quanta of four alphabet bytes; returns how many input bytes were used.
/// Stops at the first quantum holding anything else (whitespace, padding, garbage).
fn decode_clean_quanta(input: &[u8], out: &mut Vec<u8>) -> usize {
    // In blocks, written in place: a block is sized before its quanta are known to be clean,
    // and a line break ends the run after a few quanta (do not size for the whole input).
    const BLOCK: usize = 32;
    let mut used = 0;
    loop {
        let block = &input[used..];
        let take = (block.len() / 4).min(BLOCK);
        if take == 0 {
            return used;
        }
        let start = out.len();
        out.resize(start + take * 3, 0);
        let mut done = 0;
        for (q, dst) in block.chunks_exact(4).zip(out[start..].chunks_exact_mut(3)) {
            let (a, b, c, d) = (
                SEXTETS[q[0] as usize],
                SEXTETS[q[1] as usize],
                SEXTETS[q[2] as usize],
                SEXTETS[q[3] as usize],
            );
            if (a | b | c | d) & 0xC0 != 0 {
                break;
            }
            dst.copy_from_slice(&[(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d]);
            done += 1;
        }
        out.truncate(start + done * 3);
        used += done * 4;
        if done < take {
            return used;
        }
    }
}

/// Decoder state: the sextets of the quantum in progress.
#[derive(Clone, Debug, Default)]
pub(crate) struct Base64Decoder {
    quantum: [u8; 4],
    pending: usize,
}

impl Base64Decoder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// True between quanta: a fresh decoder started here continues the output exactly.
    pub(crate) fn is_clean(&self) -> bool {
        self.pending == 0
    }

    pub(crate) fn push(&mut self, b: u8, out: &mut Vec<u8>) {
        if let Some(s) = sextet(b) {
            if let Some(slot) = self.quantum.get_mut(self.pending) {
                *slot = s;
            }
            self.pending += 1;
            if self.pending == 4 {
                self.flush(out);
            }
        } else if b == b'=' {
            self.flush(out);
        }
    }

    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() / 4 * 3 + 3);
        let mut i = 0;
        while i < input.len() {
            // Between quanta, runs of clean quanta (the bulk of any line) go four at a time.
            if self.pending == 0 {
                i += decode_clean_quanta(&input[i..], out);
                if i >= input.len() {
                    break;
                }
            }
            self.push(input[i], out);
            i += 1;
        }
    }

    /// Emit what the pending sextets decode to (3 bytes for 4, 2 for 3, 1 for 2, none for 1).
    pub(crate) fn flush(&mut self, out: &mut Vec<u8>) {
        let [a, b, c, d] = self.quantum;
        let bytes = [(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d];
        let n = self.pending.saturating_sub(1).min(3);
        out.extend_from_slice(bytes.get(..n).unwrap_or(&[]));
        self.quantum = [0; 4];
        self.pending = 0;
    }
}

/// Strict decoding of base64 symbols (alphabet bytes only: no whitespace, no padding) handed
/// over in pieces of any length, as they sit between line breaks.
#[derive(Default)]
pub(crate) struct SymbolDecoder {
    pending: [u8; 4],
    n: usize,
    bad: bool,
}

impl SymbolDecoder {
    pub(crate) fn feed(&mut self, mut symbols: &[u8], out: &mut Vec<u8>) {
        if self.bad {
            return;
        }
        // Complete a quantum left over from the last piece.
        while self.n > 0 && !symbols.is_empty() {
            self.pending[self.n] = symbols[0];
            self.n += 1;
            symbols = &symbols[1..];
            if self.n == 4 {
                let quantum = self.pending;
                self.n = 0;
                if decode_clean_quanta(&quantum, out) != 4 {
                    self.bad = true;
                    return;
                }
            }
        }
        if self.n > 0 {
            return; // the piece ended inside that quantum
        }
        let used = decode_clean_quanta(symbols, out);
        let rest = &symbols[used..];
        if rest.len() >= 4 {
            // A quantum holding something outside the alphabet.
            self.bad = true;
            return;
        }
        self.pending[..rest.len()].copy_from_slice(rest);
        self.n = rest.len();
    }

    /// Decode a trailing partial quantum (as [`decode`] would); false if anything fed was
    /// not a symbol.
    pub(crate) fn finish(self, out: &mut Vec<u8>) -> bool {
        let rest = &self.pending[..self.n];
        if self.bad || !rest.iter().all(|&b| is_alphabet(b)) {
            return false;
        }
        let mut d = Base64Decoder::new();
        d.feed(rest, out);
        d.flush(out);
        true
    }
}

/// Decode `symbols` (alphabet bytes only) in one go; `None` if any is not a symbol.
#[cfg(test)]
pub(crate) fn decode_symbols(symbols: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut d = SymbolDecoder::default();
    d.feed(symbols, &mut out);
    d.finish(&mut out).then_some(out)
}

/// Lenient decoding of a whole input (the reference the streaming paths are tested against).
#[cfg(test)]
pub(crate) fn decode(input: &[u8]) -> Vec<u8> {
    let mut d = Base64Decoder::new();
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    d.feed(input, &mut out);
    d.flush(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::base64::Engine;
    use proptest::prelude::*;

    #[test]
    fn symbols_only_decode_strictly() {
        let enc = ::base64::engine::general_purpose::STANDARD_NO_PAD.encode(b"hello world!?");
        assert_eq!(decode_symbols(enc.as_bytes()).unwrap(), b"hello world!?");
        assert_eq!(decode_symbols(b"").unwrap(), b"");
        // Anything else anywhere (whitespace, padding, garbage) is refused.
        assert_eq!(decode_symbols(b"aGVs bG8="), None);
        assert_eq!(decode_symbols(b"aGVsbG8="), None);
        assert_eq!(decode_symbols(b"aGVs!G8"), None);
        assert_eq!(decode_symbols(b"aGV"), Some(b"he".to_vec()));
    }

    proptest! {
        /// Fed in pieces of any lengths (as between line breaks), the output is the same.
        #[test]
        fn symbols_in_pieces(data in proptest::collection::vec(any::<u8>(), 0..400), cuts in proptest::collection::vec(0usize..400, 0..12)) {
            let enc = ::base64::engine::general_purpose::STANDARD_NO_PAD.encode(&data);
            let bytes = enc.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort();
            let mut out = Vec::new();
            let mut d = SymbolDecoder::default();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                d.feed(&bytes[at..c], &mut out);
                at = c;
            }
            prop_assert!(d.finish(&mut out));
            prop_assert_eq!(out, data);
        }
    }

    #[test]
    fn vectors() {
        assert_eq!(decode(b""), b"");
        assert_eq!(decode(b"Zm9v"), b"foo");
        assert_eq!(decode(b"Zm9vYg=="), b"foob");
        assert_eq!(decode(b"Zm9vYmE="), b"fooba");
        assert_eq!(decode(b"Zm9vYg"), b"foob");
        assert_eq!(decode(b"Zm9vYmE"), b"fooba");
        assert_eq!(decode(b"Zm9vY"), b"foo");
        assert_eq!(decode(b"Zm\r\n9v\tYm E=\r\n"), b"fooba");
        assert_eq!(decode(b"Zm!9v*"), b"foo");
        // Data after padding starts a new quantum.
        assert_eq!(decode(b"Zg==Zm9v"), b"ffoo");
        assert_eq!(decode(b"=Zm9v=="), b"foo");
    }

    fn wrap(enc: &str, line: usize, term: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in enc.as_bytes().chunks(line.max(1)) {
            out.extend_from_slice(chunk);
            out.extend_from_slice(term.as_bytes());
        }
        out
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..600),
                             line in 1usize..100,
                             term in prop_oneof![Just("\r\n"), Just("\n"), Just(" \r\n"), Just("\t\n"), Just("")]) {
            let enc = ::base64::engine::general_purpose::STANDARD.encode(&data);
            prop_assert_eq!(decode(&wrap(&enc, line, term)), data);
        }

        #[test]
        fn never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let out = decode(&input);
            prop_assert!(out.len() <= input.len());
        }
    }
}
