//! One streaming decoder over the three encodings, as used by full decodes, the index builder
//! and ranged decodes alike (so all three agree byte for byte).

use super::base64::Base64Decoder;
use super::qp::QpDecoder;
use super::Encoding;

#[derive(Clone, Debug)]
pub(crate) enum StreamDecoder {
    Identity,
    Base64(Base64Decoder),
    Qp(QpDecoder),
}

impl StreamDecoder {
    pub(crate) fn new(enc: Encoding) -> Self {
        match enc {
            Encoding::Identity => StreamDecoder::Identity,
            Encoding::Base64 => StreamDecoder::Base64(Base64Decoder::new()),
            Encoding::QuotedPrintable => StreamDecoder::Qp(QpDecoder::new()),
        }
    }

    /// True when nothing is held back: a fresh decoder started at the next input byte produces
    /// exactly the rest of this decoder's output.
    pub(crate) fn is_clean(&self) -> bool {
        match self {
            StreamDecoder::Identity => true,
            StreamDecoder::Base64(d) => d.is_clean(),
            StreamDecoder::Qp(d) => d.is_clean(),
        }
    }

    pub(crate) fn push(&mut self, b: u8, out: &mut Vec<u8>) {
        match self {
            StreamDecoder::Identity => out.push(b),
            StreamDecoder::Base64(d) => d.push(b, out),
            StreamDecoder::Qp(d) => d.push(b, out),
        }
    }

    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self {
            StreamDecoder::Identity => out.extend_from_slice(input),
            StreamDecoder::Base64(d) => d.feed(input, out),
            StreamDecoder::Qp(d) => d.feed(input, out),
        }
    }

    /// The end of the part: flush what is pending.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamDecoder::Identity => {}
            StreamDecoder::Base64(d) => d.flush(out),
            StreamDecoder::Qp(d) => d.finish(out),
        }
    }
}

pub(crate) fn decode_all(enc: Encoding, input: &[u8]) -> Vec<u8> {
    let mut d = StreamDecoder::new(enc);
    let mut out = Vec::with_capacity(input.len());
    d.feed(input, &mut out);
    d.finish(&mut out);
    out
}
