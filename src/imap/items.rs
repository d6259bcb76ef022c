//! Interpreting FETCH items: INTERNALDATE, `BODY[section]<origin>` names, section specs.

use chrono::NaiveDate;

/// `25-Nov-2026 22:21:14 +0000` (day possibly space-padded) as seconds since the epoch.
pub fn parse_internal_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let mut parts = s.split_ascii_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let zone = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let mut d = date.split('-');
    let day: u32 = d.next()?.parse().ok()?;
    let mon = d.next()?;
    let year: i32 = d.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as u32 + 1;
    let mut t = time.split(':');
    let h: u32 = t.next()?.parse().ok()?;
    let mi: u32 = t.next()?.parse().ok()?;
    let se: u32 = t.next()?.parse().ok()?;
    let zb = zone.as_bytes();
    if zb.len() != 5 || !(zb[0] == b'+' || zb[0] == b'-') {
        return None;
    }
    let zh: i64 = zone.get(1..3)?.parse().ok()?;
    let zm: i64 = zone.get(3..5)?.parse().ok()?;
    let off = (zh * 3600 + zm * 60) * if zb[0] == b'-' { -1 } else { 1 };
    let local = NaiveDate::from_ymd_opt(year, month, day)?
        .and_hms_opt(h, mi, se.min(59))?
        .and_utc()
        .timestamp();
    Some(local - off)
}

/// `BODY[2.MIME]<1024>` → (`2.MIME`, Some(1024)); `BODY[]` → (``, None). Names are uppercase.
pub fn body_key(name: &str) -> Option<(&str, Option<u64>)> {
    section_key(name.strip_prefix("BODY[")?)
}

/// As [`body_key`], for `BODY[...]` (false) and `BINARY[...]` (true) items alike.
pub fn fetched_key(name: &str) -> Option<(bool, &str, Option<u64>)> {
    match name.strip_prefix("BINARY[") {
        Some(rest) => section_key(rest).map(|(s, o)| (true, s, o)),
        None => body_key(name).map(|(s, o)| (false, s, o)),
    }
}

/// `2.MIME]<1024>` → (`2.MIME`, Some(1024)).
fn section_key(rest: &str) -> Option<(&str, Option<u64>)> {
    let close = rest.rfind(']')?;
    let section = &rest[..close];
    let tail = &rest[close + 1..];
    if tail.is_empty() {
        return Some((section, None));
    }
    let origin = tail.strip_prefix('<')?.strip_suffix('>')?.parse().ok()?;
    Some((section, Some(origin)))
}

/// A section spec safe to put in a command: part numbers, `HEADER`, `TEXT`, `MIME`,
/// `HEADER.FIELDS (A B)` and the like; no brackets, quotes, or line ends.
pub fn valid_section(s: &str) -> bool {
    s.len() <= 1000
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b' ' | b'(' | b')' | b'-' | b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_dates() {
        assert_eq!(
            parse_internal_date("25-Nov-2026 22:21:14 +0000"),
            Some(1795645274)
        );
        assert_eq!(
            parse_internal_date(" 5-Nov-2026 22:21:14 +0100"),
            parse_internal_date("05-Nov-2026 21:21:14 +0000")
        );
        assert_eq!(
            parse_internal_date("01-Jan-1970 00:00:00 -0130"),
            Some(5400)
        );
        assert_eq!(parse_internal_date("garbage"), None);
        assert_eq!(parse_internal_date("31-Feb-2026 00:00:00 +0000"), None);
        assert_eq!(parse_internal_date("01-Jan-2026 00:00:00 +00"), None);
    }

    #[test]
    fn body_keys() {
        assert_eq!(body_key("BODY[2]<1024>"), Some(("2", Some(1024))));
        assert_eq!(body_key("BODY[]"), Some(("", None)));
        assert_eq!(
            body_key("BODY[HEADER.FIELDS (A B)]<0>"),
            Some(("HEADER.FIELDS (A B)", Some(0)))
        );
        assert_eq!(body_key("BODYSTRUCTURE"), None);
        assert_eq!(body_key("BODY[1]<x>"), None);
        assert_eq!(fetched_key("BINARY[2]<5>"), Some((true, "2", Some(5))));
        assert_eq!(fetched_key("BODY[2]"), Some((false, "2", None)));
        assert_eq!(fetched_key("BINARY.SIZE[2]"), None);
    }

    #[test]
    fn sections() {
        assert!(valid_section(""));
        assert!(valid_section("2.1.MIME"));
        assert!(valid_section("HEADER.FIELDS (FROM TO)"));
        assert!(!valid_section("1]<0.5> BODY[2"));
        assert!(!valid_section("1\r\na LOGOUT"));
    }
}
