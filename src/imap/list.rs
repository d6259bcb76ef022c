//! LIST responses (RFC 3501 §7.2.2), parsed by our own code: `* LIST (attributes) delimiter
//! name`, the name quoted, an atom or a literal, in any bytes (see [`names::name_from_raw`]).

use super::parse::untagged_values;
use super::sexp::Value;
use crate::names;
use crate::store::FolderEntry;

/// One `* LIST ...` response as a folder; `None` when it is not readable as one.
pub fn parse_list(frame: &[u8]) -> Option<FolderEntry> {
    let v = untagged_values(frame).ok()?;
    if !v.first()?.as_text()?.eq_ignore_ascii_case("LIST") {
        return None;
    }
    let attributes: Vec<String> = v
        .get(1)?
        .as_list()?
        .iter()
        .filter_map(Value::as_text)
        .collect();
    let delimiter = match v.get(2)? {
        Value::Nil => None,
        d => {
            let b = d.as_bytes()?;
            // A quoted delimiter is one character; anything else is not a delimiter we can use.
            match b {
                [c] if c.is_ascii() => Some(char::from(*c)),
                _ => None,
            }
        }
    };
    let raw = match v.get(3)? {
        Value::Nil | Value::List(_) => return None,
        n => n.as_bytes()?,
    };
    let selectable = !attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
    Some(FolderEntry {
        name: names::name_from_raw(raw),
        delimiter,
        selectable,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let e = parse_list(b"* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n").unwrap();
        assert_eq!(e.name, "INBOX");
        assert_eq!(e.delimiter, Some('/'));
        assert!(e.selectable);
        assert_eq!(e.attributes, ["\\HasNoChildren"]);

        let e = parse_list(b"* list (\\NoSelect \\HasChildren) \".\" Archive\r\n").unwrap();
        assert_eq!(e.name, "Archive");
        assert!(!e.selectable);

        let e = parse_list(b"* LIST (\\NonExistent) NIL \"a \\\"q\\\" \\\\ b\"\r\n").unwrap();
        assert_eq!(e.name, "a \"q\" \\ b");
        assert_eq!(e.delimiter, None);
        assert!(!e.selectable);

        // Literal names with CR/LF and Latin-1 bytes; LIST-EXTENDED data after the name.
        let e = parse_list(
            b"* LIST () \"/\" {9}\r\nEntw\xfcrfe\r ((\"CHILDINFO\" (\"SUBSCRIBED\")))\r\n",
        );
        let e = e.unwrap();
        assert_eq!(names::raw_bytes(&e.name), b"Entw\xfcrfe\r");
        assert!(e.selectable);

        assert!(parse_list(b"* LIST \"/\" INBOX\r\n").is_none());
        assert!(parse_list(b"* LSUB () \"/\" INBOX\r\n").is_none());
        assert!(parse_list(b"* LIST () \"/\"\r\n").is_none());
    }
}
