//! What a server's certificate says about itself, for error messages: its names (subjectAltName
//! DNS names and IP addresses, else the subject CN), its issuer's CN and when it expires. A small
//! DER reader that gives up (None) on anything unexpected; never used to decide trust.

use std::net::IpAddr;

/// The parts of a certificate a user needs to see.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub cn: Option<String>,
    pub issuer_cn: Option<String>,
    /// `YYYYMMDDHHMMSS` (UTC).
    pub not_after: Option<String>,
}

/// One DER element: (tag, contents, what follows).
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*data.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    (end <= data.len()).then(|| (tag, &data[head..end], &data[end..]))
}

/// The elements of a SEQUENCE's or SET's contents.
fn items(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, content, rest) = tlv(data)?;
        data = rest;
        Some((tag, content))
    })
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Printable ASCII only, at most 100 bytes: names a server chose go into one-line messages.
fn shown(bytes: &[u8]) -> Option<String> {
    let ok = !bytes.is_empty()
        && bytes.len() <= 100
        && bytes
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) || b == b' ');
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// The common name of a Name (SEQUENCE OF SET OF (OID, value)).
fn common_name(name: &[u8]) -> Option<String> {
    for (_, set) in items(name) {
        for (_, pair) in items(set) {
            let mut it = items(pair);
            if let (Some((0x06, oid)), Some((_, value))) = (it.next(), it.next()) {
                if oid == OID_CN {
                    return shown(value);
                }
            }
        }
    }
    None
}

/// UTCTime or GeneralizedTime as `YYYYMMDDHHMMSS`.
fn time(tag: u8, v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match (tag, s.len()) {
        // RFC 5280: two-digit years 50..99 are 19xx.
        (0x17, 12) => Some(format!("{}{s}", if &s[..2] >= "50" { "19" } else { "20" })),
        (0x18, 14) => Some(s.to_string()),
        _ => None,
    }
}

pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut fields = items(tbs).peekable();
    if fields.peek()?.0 == 0xa0 {
        fields.next(); // version
    }
    let _serial = fields.next()?;
    let _algorithm = fields.next()?;
    let issuer = fields.next()?.1;
    let validity = fields.next()?.1;
    let subject = fields.next()?.1;
    let _key = fields.next()?;
    let mut info = CertInfo {
        cn: common_name(subject),
        issuer_cn: common_name(issuer),
        not_after: items(validity).nth(1).and_then(|(t, v)| time(t, v)),
        ..CertInfo::default()
    };
    for (tag, exts) in fields {
        if tag != 0xa3 {
            continue;
        }
        let Some((0x30, exts, _)) = tlv(exts) else {
            continue;
        };
        for (_, ext) in items(exts) {
            let mut it = items(ext);
            let Some((0x06, oid)) = it.next() else {
                continue;
            };
            // extnValue is the last element (after an optional `critical` BOOLEAN).
            let Some((0x04, value)) = it.last() else {
                continue;
            };
            if oid != OID_SAN {
                continue;
            }
            let Some((0x30, names, _)) = tlv(value) else {
                continue;
            };
            for (tag, v) in items(names) {
                match (tag, v.len()) {
                    (0x82, _) => info.dns.extend(shown(v)),
                    (0x87, 4) => info.ips.push(IpAddr::from(<[u8; 4]>::try_from(v).ok()?)),
                    (0x87, 16) => info.ips.push(IpAddr::from(<[u8; 16]>::try_from(v).ok()?)),
                    _ => {}
                }
            }
        }
    }
    Some(info)
}

impl CertInfo {
    /// Would a client asking for `host` accept these names (as OpenSSL checks them: an IP only
    /// against IP addresses; a DNS name against the DNS names, one leading `*` label allowed, or
    /// the CN when there are none)?
    pub fn matches(&self, host: &str) -> bool {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let one = |name: &str| {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(rest) => host.split_once('.').is_some_and(|(_, h)| h == rest),
                None => name == host,
            }
        };
        if self.dns.is_empty() {
            return self.cn.as_deref().is_some_and(one);
        }
        self.dns.iter().any(|n| one(n))
    }

    /// The names, for a message: `localhost, 127.0.0.1` (at most 8), or `CN=...`, or `no name`.
    pub fn names(&self) -> String {
        let mut all: Vec<String> = self.dns.clone();
        all.extend(self.ips.iter().map(|ip| ip.to_string()));
        if all.is_empty() {
            return match &self.cn {
                Some(cn) => format!("CN={cn}"),
                None => "no name".into(),
            };
        }
        let more = all.len().saturating_sub(8);
        all.truncate(8);
        let mut s = all.join(", ");
        if more > 0 {
            s.push_str(&format!(" and {more} more"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::header::base64_strict;

    fn fake_der() -> Vec<u8> {
        let pem = super::super::fake::CERT;
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        base64_strict(&body).unwrap()
    }

    #[test]
    fn the_fake_servers_certificate() {
        // openssl x509 -noout -subject -issuer -enddate -ext subjectAltName says:
        // CN = localhost; issuer CN = localhost; Nov  1 22:53:15 2126 GMT; IP 127.0.0.1, DNS localhost
        let info = parse(&fake_der()).unwrap();
        assert_eq!(info.dns, ["localhost"]);
        assert_eq!(info.ips, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(info.cn.as_deref(), Some("localhost"));
        assert_eq!(info.issuer_cn.as_deref(), Some("localhost"));
        assert_eq!(info.not_after.as_deref(), Some("21261101225315"));
        assert!(
            info.matches("localhost") && info.matches("LOCALHOST.") && info.matches("127.0.0.1")
        );
        assert!(!info.matches("127.0.0.2") && !info.matches("mail.localhost"));
        assert_eq!(info.names(), "localhost, 127.0.0.1");
    }

    #[test]
    fn wildcards_and_cn() {
        let w = CertInfo {
            dns: vec!["*.example.org".into()],
            ..CertInfo::default()
        };
        assert!(w.matches("imap.example.org"));
        assert!(!w.matches("example.org") && !w.matches("a.b.example.org"));
        let cn = CertInfo {
            cn: Some("mail.example.org".into()),
            ..CertInfo::default()
        };
        assert!(cn.matches("mail.example.org"));
        assert_eq!(cn.names(), "CN=mail.example.org");
    }

    #[test]
    fn garbage_is_none() {
        let der = fake_der();
        for cut in [0, 1, 2, 10, der.len() / 2] {
            assert_eq!(parse(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
    }
}
