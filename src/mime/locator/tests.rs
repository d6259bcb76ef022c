//! The invariant: for any part and any decoded range, plan + fetch + decode gives exactly the
//! same bytes as decoding the whole part.

use crate::mime::{
    decode_all, infer_base64_layout, Encoding, IndexBuilder, Locator, LAYOUT_SAMPLE,
};
use ::base64::Engine;
use proptest::prelude::*;

/// Serve `[a, b)` through `loc` from the encoded part; `None` if the locator refused the bytes.
fn read(loc: &Locator, encoded: &[u8], a: u64, b: u64) -> Option<Vec<u8>> {
    let plan = loc.plan(a, b);
    assert!(plan.dec_start <= a, "{plan:?} for {a}..{b}");
    assert!(
        plan.enc_start <= plan.enc_end && plan.enc_end <= encoded.len() as u64,
        "{plan:?}"
    );
    let fetched = &encoded[plan.enc_start as usize..plan.enc_end as usize];
    let d = loc.decode(&plan, fetched)?;
    let from = (a - plan.dec_start) as usize;
    let to = (b - plan.dec_start) as usize;
    assert!(
        d.len() >= to,
        "short decode {} < {to} for {a}..{b} {plan:?}",
        d.len()
    );
    Some(d[from..to].to_vec())
}

/// Ranges to try: all of them for small parts, else edges plus a sample from `seeds`.
fn ranges(size: u64, seeds: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if size == 0 {
        return out;
    }
    if size <= 40 {
        for a in 0..size {
            for b in a + 1..=size {
                out.push((a, b));
            }
        }
        return out;
    }
    out.extend([
        (0, 1),
        (0, size),
        (size - 1, size),
        (size / 2, size / 2 + 1),
    ]);
    for &(x, y) in seeds {
        let a = x % size;
        let b = a + 1 + y % (size - a);
        out.push((a, b));
        let short = a + 1 + y % 7;
        out.push((a, short.min(size)));
    }
    out
}

fn assert_locator_exact(loc: &Locator, encoded: &[u8], full: &[u8], seeds: &[(u64, u64)]) {
    assert_eq!(loc.decoded_size(), full.len() as u64);
    for (a, b) in ranges(full.len() as u64, seeds) {
        let got = read(loc, encoded, a, b).unwrap_or_else(|| panic!("refused {a}..{b}"));
        assert_eq!(got, &full[a as usize..b as usize], "range {a}..{b}");
    }
}

fn index_of(enc: Encoding, encoded: &[u8], pieces: &[usize], spacing: u64) -> (Locator, Vec<u8>) {
    let mut b = IndexBuilder::new(enc, encoded.len() as u64, spacing);
    let mut out = Vec::new();
    let mut rest = encoded;
    let mut i = 0;
    while !rest.is_empty() {
        let n = pieces
            .get(i % pieces.len().max(1))
            .copied()
            .unwrap_or(1)
            .clamp(1, rest.len());
        b.feed(&rest[..n], &mut out);
        rest = &rest[n..];
        i += 1;
    }
    let idx = b.finish(&mut out);
    (Locator::Index(idx), out)
}

fn sample(encoded: &[u8]) -> (&[u8], &[u8]) {
    let n = (LAYOUT_SAMPLE as usize).min(encoded.len());
    (&encoded[..n], &encoded[encoded.len() - n..])
}

/// A base64 part as mail software writes it.
#[derive(Clone, Debug)]
struct B64Part {
    data: Vec<u8>,
    line: usize,
    term: &'static str,
    trailer: &'static str,
    unpadded: bool,
    single_line: bool,
}

impl B64Part {
    fn encode(&self) -> Vec<u8> {
        let mut enc = ::base64::engine::general_purpose::STANDARD.encode(&self.data);
        if self.unpadded {
            enc = enc.trim_end_matches('=').to_string();
        }
        let mut out = Vec::new();
        if self.single_line {
            out.extend_from_slice(enc.as_bytes());
        } else {
            let chunks: Vec<&[u8]> = enc.as_bytes().chunks(self.line).collect();
            for (i, c) in chunks.iter().enumerate() {
                out.extend_from_slice(c);
                if i + 1 < chunks.len() {
                    out.extend_from_slice(self.term.as_bytes());
                }
            }
        }
        out.extend_from_slice(self.trailer.as_bytes());
        out
    }
}

fn b64_part(max: usize) -> impl Strategy<Value = B64Part> {
    (
        proptest::collection::vec(any::<u8>(), 1..max),
        prop_oneof![
            4 => prop::sample::select(vec![60usize, 64, 72, 76, 77]),
            3 => 1usize..200,
        ],
        prop::sample::select(vec!["\r\n", "\n", " \r\n", "  \n", "\t\r\n", " \t \r\n"]),
        prop::sample::select(vec![
            "",
            "\r\n",
            "\n",
            "\r\n\r\n",
            "  ",
            "\r\n  \r\n",
            " \n\n\n",
        ]),
        any::<bool>(),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(data, line, term, trailer, unpadded, single_line)| B64Part {
                data,
                line,
                term,
                trailer,
                unpadded,
                single_line,
            },
        )
}

/// Quoted-printable text with every feature: escapes, soft breaks, trailing whitespace, CRLF and
/// LF, invalid sequences, bare CRs, raw bytes.
fn qp_part() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        6 => "[a-zA-Z0-9 .,]{1,12}".prop_map(|s| s.into_bytes()),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(b, lower)| {
            let s = format!("={b:02X}");
            (if lower { s.to_lowercase() } else { s }).into_bytes()
        }),
        2 => prop::sample::select(vec!["=\r\n", "=\n", "= \r\n", "=\t \n", "= "])
            .prop_map(|s| s.as_bytes().to_vec()),
        3 => prop::sample::select(vec!["\r\n", "\n", "  \r\n", " \t\n", "\t", " "])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::sample::select(vec!["=G1", "=", "=A", "\r", "==", "=\r", "=A\r\n"])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(token, 0..120).prop_map(|t| t.concat())
}

fn seeds() -> impl Strategy<Value = Vec<(u64, u64)>> {
    proptest::collection::vec((any::<u64>(), any::<u64>()), 12)
}

fn pieces() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..300, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn index_qp(encoded in qp_part(), pieces in pieces(), spacing in 1u64..100, seeds in seeds()) {
        let full = decode_all(Encoding::QuotedPrintable, &encoded);
        let (loc, out) = index_of(Encoding::QuotedPrintable, &encoded, &pieces, spacing);
        prop_assert_eq!(&out, &full);
        assert_locator_exact(&loc, &encoded, &full, &seeds);
    }

    #[test]
    fn index_qp_small_alphabet(
        encoded in proptest::collection::vec(prop::sample::select(b"a= \t\r\n0Af".to_vec()), 0..150),
        pieces in pieces(), spacing in 1u64..20, seeds in seeds(),
    ) {
        let full = decode_all(Encoding::QuotedPrintable, &encoded);
        let (loc, out) = index_of(Encoding::QuotedPrintable, &encoded, &pieces, spacing);
        prop_assert_eq!(&out, &full);
        assert_locator_exact(&loc, &encoded, &full, &seeds);
    }

    #[test]
    fn index_base64(part in b64_part(2000), pieces in pieces(), spacing in 1u64..400, seeds in seeds()) {
        let encoded = part.encode();
        let full = decode_all(Encoding::Base64, &encoded);
        prop_assert_eq!(&full, &part.data);
        let (loc, out) = index_of(Encoding::Base64, &encoded, &pieces, spacing);
        prop_assert_eq!(&out, &full);
        assert_locator_exact(&loc, &encoded, &full, &seeds);
    }

    #[test]
    fn index_base64_garbage(
        encoded in proptest::collection::vec(prop::sample::select(b"QUJD+/=\r\n *a".to_vec()), 0..300),
        pieces in pieces(), spacing in 1u64..30, seeds in seeds(),
    ) {
        let full = decode_all(Encoding::Base64, &encoded);
        let (loc, out) = index_of(Encoding::Base64, &encoded, &pieces, spacing);
        prop_assert_eq!(&out, &full);
        assert_locator_exact(&loc, &encoded, &full, &seeds);
    }

    #[test]
    fn index_identity(encoded in proptest::collection::vec(any::<u8>(), 0..500), pieces in pieces(), seeds in seeds()) {
        let (loc, out) = index_of(Encoding::Identity, &encoded, &pieces, 7);
        prop_assert_eq!(&out, &encoded);
        assert_locator_exact(&loc, &encoded, &encoded, &seeds);
        let id = Locator::Identity { size: encoded.len() as u64 };
        assert_locator_exact(&id, &encoded, &encoded, &seeds);
    }

    #[test]
    fn layout_regular(part in b64_part(6000), seeds in seeds()) {
        let encoded = part.encode();
        let full = decode_all(Encoding::Base64, &encoded);
        let (head, tail) = sample(&encoded);
        let layout = infer_base64_layout(head, tail, encoded.len() as u64);
        if part.single_line && encoded.len() > 2 * LAYOUT_SAMPLE as usize {
            prop_assert!(layout.is_none(), "an unseen long line");
            return Ok(());
        }
        prop_assert!(layout.is_some(), "no layout for {:?}", part);
        let loc = Locator::Layout(layout.unwrap());
        assert_locator_exact(&loc, &encoded, &full, &seeds);
    }

    /// Bytes inserted or removed in the unseen middle shift the tail off the line grid.
    #[test]
    fn layout_shifted_middle(
        part in b64_part(8000), at in any::<u64>(), del in 0usize..200,
        ins in proptest::collection::vec(prop::sample::select(b"QUJD+/=\r\n *".to_vec()), 0..200),
    ) {
        let mut encoded = part.encode();
        let n = encoded.len();
        let lo = LAYOUT_SAMPLE as usize;
        prop_assume!(n > 2 * lo + 1);
        let at = lo + (at as usize) % (n - 2 * lo);
        let del = del.min(n - lo - at);
        encoded.splice(at..at + del, ins.iter().copied());
        let (head, tail) = sample(&encoded);
        if let Some(l) = infer_base64_layout(head, tail, encoded.len() as u64) {
            let period = (part.line + part.term.len()) as i64;
            let shift = ins.len() as i64 - del as i64;
            if part.single_line || shift % period != 0 {
                prop_assert_eq!(l.decoded_size(), decode_all(Encoding::Base64, &encoded).len() as u64);
            }
        }
    }

    /// Any change in the head or tail is seen: either no layout, or a right one.
    #[test]
    fn layout_mutated_ends(
        part in b64_part(4000), pos in any::<u64>(), in_tail in any::<bool>(), kind in 0u8..3,
        byte in prop::sample::select(b"QUJD+/=\r\n \t*-".to_vec()), seeds in seeds(),
    ) {
        let mut encoded = part.encode();
        let n = encoded.len();
        let w = (LAYOUT_SAMPLE as usize).min(n);
        let at = if in_tail { n - w + (pos as usize) % w } else { (pos as usize) % w };
        match kind {
            0 => encoded[at] = byte,
            1 => encoded.insert(at, byte),
            _ => { encoded.remove(at); }
        }
        let full = decode_all(Encoding::Base64, &encoded);
        let (head, tail) = sample(&encoded);
        if let Some(l) = infer_base64_layout(head, tail, encoded.len() as u64) {
            // The tail's line breaks pin the line length; so a model that admits both ends
            // also describes the untouched middle.
            assert_locator_exact(&Locator::Layout(l), &encoded, &full, &seeds);
        }
    }

    /// A changed byte in the unseen middle is caught by any read whose fetch covers it, and
    /// reads before it are exact.
    #[test]
    fn layout_middle_change_is_caught(
        part in b64_part(8000), pos in any::<u64>(),
        byte in prop::sample::select(b"=\r\n \t*-.".to_vec()), seeds in seeds(),
    ) {
        let original = part.encode();
        let n = original.len();
        let lo = LAYOUT_SAMPLE as usize;
        prop_assume!(n > 2 * lo + 1);
        let at = lo + (pos as usize) % (n - 2 * lo);
        let mut encoded = original.clone();
        encoded[at] = byte;
        prop_assume!(encoded[at] != original[at]);
        let full = decode_all(Encoding::Base64, &original);
        let (head, tail) = sample(&encoded);
        let l = infer_base64_layout(head, tail, n as u64);
        if l.is_none() {
            prop_assert!(part.single_line, "the ends are regular");
            return Ok(());
        }
        let loc = Locator::Layout(l.unwrap());
        for (a, b) in ranges(full.len() as u64, &seeds) {
            let plan = loc.plan(a, b);
            let covers = (plan.enc_start as usize..plan.enc_end as usize).contains(&at);
            let got = read(&loc, &encoded, a, b);
            if covers {
                prop_assert!(got.is_none(), "{a}..{b} {plan:?} not caught");
            } else if (plan.enc_end as usize) <= at {
                prop_assert_eq!(got.as_deref(), Some(&full[a as usize..b as usize]));
            }
        }
    }

    #[test]
    fn layout_garbage(
        encoded in proptest::collection::vec(prop::sample::select(b"QUJD+/=\r\n *".to_vec()), 1..3000),
        seeds in seeds(),
    ) {
        let (head, tail) = sample(&encoded);
        if let Some(l) = infer_base64_layout(head, tail, encoded.len() as u64) {
            let full = decode_all(Encoding::Base64, &encoded);
            if encoded.len() <= LAYOUT_SAMPLE as usize {
                assert_locator_exact(&Locator::Layout(l), &encoded, &full, &seeds);
            }
        }
    }
}
