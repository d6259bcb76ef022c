//! Restart points of a fully scanned part, so that any decoded range can later be reached by a
//! partial fetch of the encoded bytes around it.

use super::decoder::StreamDecoder;
use super::{Encoding, RangePlan};

/// Restart points of a fully scanned part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeIndex {
    encoding: Encoding,
    /// `(decoded offset, encoded offset)` pairs, strictly increasing, starting with `(0, 0)`,
    /// each at a place where a fresh decoder continues the output exactly.
    points: Vec<(u64, u64)>,
    decoded_size: u64,
    encoded_size: u64,
}

/// Builds a [`DecodeIndex`] from a part's encoded bytes fed in order, producing the decoded
/// bytes on the way (so the caller can cache them).
pub struct IndexBuilder {
    encoding: Encoding,
    decoder: StreamDecoder,
    spacing: u64,
    points: Vec<(u64, u64)>,
    decoded: u64,
    encoded: u64,
}

impl IndexBuilder {
    /// `spacing`: roughly how many decoded bytes between restart points. `encoded_size` is only
    /// a capacity hint: the index describes the bytes actually fed.
    pub fn new(enc: Encoding, encoded_size: u64, spacing: u64) -> IndexBuilder {
        let spacing = spacing.max(1);
        let expected = usize::try_from(encoded_size / spacing).unwrap_or(0);
        let mut points = Vec::with_capacity(expected.clamp(1, 4096));
        points.push((0, 0));
        IndexBuilder {
            encoding: enc,
            decoder: StreamDecoder::new(enc),
            spacing,
            points,
            decoded: 0,
            encoded: 0,
        }
    }

    /// Feed the next encoded bytes; append what they decode to `out`.
    pub fn feed(&mut self, encoded: &[u8], out: &mut Vec<u8>) {
        if self.encoding == Encoding::Identity {
            // Every offset is a restart point: nothing to record.
            out.extend_from_slice(encoded);
            self.encoded += encoded.len() as u64;
            self.decoded += encoded.len() as u64;
            return;
        }
        let last = self.points.last().map_or(0, |p| p.0);
        let mut next_at = last.saturating_add(self.spacing);
        for &b in encoded {
            let before = out.len();
            self.decoder.push(b, out);
            self.decoded += (out.len() - before) as u64;
            self.encoded += 1;
            if self.decoded >= next_at && self.decoder.is_clean() {
                self.points.push((self.decoded, self.encoded));
                next_at = self.decoded.saturating_add(self.spacing);
            }
        }
    }

    /// After the whole part was fed: flush pending output into `out` and return the index.
    pub fn finish(mut self, out: &mut Vec<u8>) -> DecodeIndex {
        let before = out.len();
        self.decoder.finish(out);
        self.decoded += (out.len() - before) as u64;
        self.points.shrink_to_fit();
        DecodeIndex {
            encoding: self.encoding,
            points: self.points,
            decoded_size: self.decoded,
            encoded_size: self.encoded,
        }
    }
}

impl DecodeIndex {
    pub fn decoded_size(&self) -> u64 {
        self.decoded_size
    }

    /// From the last restart point at or before `start` to the first at or after `end` (or the
    /// part's end).
    pub(crate) fn plan(&self, start: u64, end: u64) -> RangePlan {
        let end = end.min(self.decoded_size);
        let start = start.min(end);
        if self.encoding == Encoding::Identity {
            return RangePlan {
                enc_start: start,
                enc_end: end,
                dec_start: start,
            };
        }
        let i = self.points.partition_point(|p| p.0 <= start);
        let (dec_start, enc_start) = self
            .points
            .get(i.saturating_sub(1))
            .copied()
            .unwrap_or((0, 0));
        let j = self.points.partition_point(|p| p.0 < end);
        let enc_end = self.points.get(j).map_or(self.encoded_size, |p| p.1);
        RangePlan {
            enc_start,
            enc_end: enc_end.max(enc_start),
            dec_start,
        }
    }

    pub(crate) fn decode(&self, plan: &RangePlan, fetched: &[u8]) -> Option<Vec<u8>> {
        if plan.enc_end > self.encoded_size
            || plan.enc_end.checked_sub(plan.enc_start)? != fetched.len() as u64
        {
            return None;
        }
        let mut d = StreamDecoder::new(self.encoding);
        let mut out = Vec::with_capacity(fetched.len());
        d.feed(fetched, &mut out);
        // Restart points are clean, so this only emits something at the part's real end.
        d.finish(&mut out);
        Some(out)
    }
}
