//! Compact UID sets for commands: `1:5,9,12:20`.

/// The UIDs as a compact IMAP sequence set (sorted, duplicates dropped); empty for no UIDs.
pub fn compact(uids: &[u32]) -> String {
    let mut v: Vec<u32> = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = String::new();
    let mut k = 0;
    while k < v.len() {
        let start = v[k];
        let mut end = start;
        while k + 1 < v.len() && v[k + 1] == end.wrapping_add(1) && end != u32::MAX {
            k += 1;
            end = v[k];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn compaction() {
        assert_eq!(compact(&[]), "");
        assert_eq!(compact(&[7]), "7");
        assert_eq!(compact(&[1, 2, 3, 4, 5, 9, 12, 13, 14]), "1:5,9,12:14");
        assert_eq!(compact(&[14, 12, 13, 9, 9, 5, 1, 2, 3, 4]), "1:5,9,12:14");
        assert_eq!(compact(&[1, 3, 5]), "1,3,5");
        assert_eq!(
            compact(&[u32::MAX - 1, u32::MAX, 0]),
            "0,4294967294:4294967295"
        );
    }
}
