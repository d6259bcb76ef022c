//! [`Locator`]: one interface over the three ways of reaching a decoded range.

use super::{Locator, RangePlan};

impl Locator {
    pub fn decoded_size(&self) -> u64 {
        match self {
            Locator::Identity { size } => *size,
            Locator::Layout(l) => l.decoded_size(),
            Locator::Index(i) => i.decoded_size(),
        }
    }

    /// The fetch that covers decoded `[start, end)` (end ≤ decoded_size, start < end).
    /// Out-of-range arguments are clamped, never a panic.
    pub fn plan(&self, start: u64, end: u64) -> RangePlan {
        match self {
            Locator::Identity { size } => {
                let end = end.min(*size);
                let start = start.min(end);
                RangePlan {
                    enc_start: start,
                    enc_end: end,
                    dec_start: start,
                }
            }
            Locator::Layout(l) => l.plan(start, end),
            Locator::Index(i) => i.plan(start, end),
        }
    }

    /// Decode the fetched bytes of `plan`; the result starts at `plan.dec_start` and covers at
    /// least the planned range (it may run on past `end`, up to the next restart point or line
    /// end). `None` when the bytes contradict the locator: a Layout guess that was wrong, or a
    /// fetch shorter or longer than planned (the part is not what its size said).
    pub fn decode(&self, plan: &RangePlan, fetched: &[u8]) -> Option<Vec<u8>> {
        match self {
            Locator::Identity { .. } => {
                let want = plan.enc_end.checked_sub(plan.enc_start)?;
                (want == fetched.len() as u64).then(|| fetched.to_vec())
            }
            Locator::Layout(l) => l.decode(plan, fetched),
            Locator::Index(i) => i.decode(plan, fetched),
        }
    }
}

#[cfg(test)]
mod tests;
