use super::*;
use crate::imap::testutil::imap;
use crate::mime::{files_of, FileKind, FilePart};

fn sections(p: &Part) -> Vec<String> {
    files_of(p).iter().map(FilePart::file_name).collect()
}

fn parse_str(s: &str) -> Part {
    super::parse(&imap(s)).expect("parses")
}

const LEAF: &str = r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)"#;

#[test]
fn single_part_message_is_part_1() {
    let p = parse_str(
        r#"("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "QUOTED-PRINTABLE" 1234 30 NIL NIL NIL NIL)"#,
    );
    assert_eq!(p.section, "1");
    assert_eq!(p.kind, PartKind::Leaf);
    assert_eq!(p.media_type, "text/plain");
    assert_eq!(p.encoding, Encoding::QuotedPrintable);
    assert_eq!(p.encoded_size, 1234);
    let files = files_of(&p);
    assert_eq!(
        files,
        vec![FilePart {
            section: "1".into(),
            kind: FileKind::Content,
            encoding: Encoding::QuotedPrintable,
            eight_bit: false,
            encoded_size: 1234,
            size_known: true,
            text_section: None,
        }]
    );
}

#[test]
fn dovecot_mixed_with_alternative_and_message() {
    let s = r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2 NIL NIL NIL NIL)
        (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 120 4 NIL NIL NIL NIL)
         ("text" "html" ("charset" "utf-8") NIL NIL "base64" 300 5 NIL NIL NIL NIL)
         "alternative" ("boundary" "b2") NIL NIL NIL)
        ("message" "rfc822" NIL NIL NIL "7bit" 800
          ("Mon, 1 Jan 2024 00:00:00 +0000" "subj" NIL NIL NIL NIL NIL NIL NIL "<id@x>")
          (("text" "plain" NIL NIL NIL "7bit" 10 1 NIL NIL NIL NIL)
           ("image" "png" ("name" "a.png") NIL NIL "base64" 400 NIL ("attachment" ("filename" "a.png")) NIL NIL)
           "mixed" ("boundary" "b3") NIL NIL NIL)
          30 NIL NIL NIL NIL)
        "mixed" ("boundary" "b1") NIL NIL NIL)"#;
    let p = parse_str(s);
    assert_eq!(p.section, "");
    assert_eq!(p.kind, PartKind::Multipart);
    assert_eq!(p.media_type, "multipart/mixed");
    assert_eq!(p.children[1].section, "2");
    assert_eq!(p.children[1].media_type, "multipart/alternative");
    let msg = &p.children[2];
    assert_eq!((msg.kind, msg.section.as_str()), (PartKind::Message, "3"));
    assert_eq!(msg.children[0].section, "3");
    assert_eq!(msg.children[0].kind, PartKind::Multipart);
    assert_eq!(
        sections(&p),
        ["1", "2.1", "2.2", "3", "3.HEADER", "3.1", "3.2"]
    );
    let files = files_of(&p);
    assert_eq!(files[2].encoding, Encoding::Base64);
    assert_eq!(files[2].encoded_size, 300);
    assert_eq!(
        (files[4].kind, files[4].encoded_size, files[4].encoding),
        (FileKind::NestedHeader, 0, Encoding::Identity)
    );
    assert_eq!(files[4].fetch_section(), "3.HEADER");
    assert_eq!(files[3].encoded_size, 800);
}

#[test]
fn message_with_single_body() {
    let s = format!(
        r#"({LEAF} ("message" "rfc822" NIL NIL NIL "7bit" 300 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL)
            ("text" "plain" NIL NIL NIL "base64" 100 2) 10) "mixed")"#
    );
    let p = parse_str(&s);
    assert_eq!(sections(&p), ["1", "2", "2.HEADER", "2.1"]);
    assert_eq!(p.children[1].children[0].encoding, Encoding::Base64);
}

#[test]
fn message_inside_message() {
    let inner = r#"("message" "rfc822" NIL NIL NIL "7bit" 200 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
        ("text" "plain" NIL NIL NIL "7bit" 50 3) 12)"#;
    let s = format!(
        r#"({LEAF} ("message" "rfc822" NIL NIL NIL "7bit" 300 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            {inner} 20) "mixed")"#
    );
    assert_eq!(
        sections(&parse_str(&s)),
        ["1", "2", "2.HEADER", "2.1", "2.1.HEADER", "2.1.1"]
    );
    // The same with a multipart in the innermost message.
    let inner = format!(
        r#"("message" "global" NIL NIL NIL "8bit" 200 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
        ({LEAF} {LEAF} "mixed") 12)"#
    );
    let s = format!(
        r#"({LEAF} ("message" "rfc822" NIL NIL NIL "7bit" 300 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            {inner} 20) "mixed")"#
    );
    assert_eq!(
        sections(&parse_str(&s)),
        ["1", "2", "2.HEADER", "2.1", "2.1.HEADER", "2.1.1", "2.1.2"]
    );
}

#[test]
fn top_level_message() {
    let s = format!(
        r#"("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 300 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            ({LEAF} {LEAF} "MIXED") 20)"#
    );
    assert_eq!(sections(&parse_str(&s)), ["1", "1.HEADER", "1.1", "1.2"]);
    let s = r#"("message" "rfc822" NIL NIL NIL "7bit" 300 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            ("text" "plain" NIL NIL NIL "7bit" 5 1) 20)"#;
    assert_eq!(sections(&parse_str(s)), ["1", "1.HEADER", "1.1"]);
}

#[test]
fn odd_servers() {
    // Atoms for types, numbers as strings, CTE with spaces and odd case, no lines, no extensions.
    let s = r#"((TEXT PLAIN NIL NIL NIL " Base64 " "120")
        ("application" NIL NIL NIL NIL "Quoted-Printable" 7)
        (NIL NIL NIL NIL NIL NIL NIL)
        ("message" "rfc822" NIL NIL NIL "7bit" 99 NIL NIL 0)
        ("message" "rfc822" NIL NIL NIL "7bit" 98)
        ("message" "rfc822" NIL NIL NIL "7bit" 97 (NIL) "garbage" 3)
        ("text" "plain" NIL NIL NIL "x-uuencode" "abc" 1)
        ("text" NIL NIL NIL NIL "8bit" 5)
        ())"#;
    let p = parse_str(s);
    assert_eq!(p.media_type, "multipart/mixed");
    let c = &p.children;
    assert_eq!(c.len(), 9);
    assert_eq!(
        (c[0].encoding, c[0].encoded_size, c[0].media_type.as_str()),
        (Encoding::Base64, 120, "text/plain")
    );
    assert_eq!(c[1].encoding, Encoding::QuotedPrintable);
    assert_eq!(c[1].media_type, "application/octet-stream");
    assert_eq!(c[2].media_type, "application/octet-stream");
    assert_eq!((c[2].encoded_size, c[2].size_known), (0, false));
    for m in &c[3..6] {
        assert_eq!(m.kind, PartKind::Leaf, "{m:?}");
    }
    assert_eq!(c[6].encoding, Encoding::Identity);
    assert_eq!((c[6].encoded_size, c[6].size_known), (0, false));
    assert!(c[7].eight_bit && c[7].size_known);
    assert_eq!(c[7].media_type, "text/plain");
    assert_eq!(sections(&p), ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
}

#[test]
fn multipart_subtype_missing_or_nil_and_empty_multipart() {
    let p = parse_str(&format!("({LEAF} {LEAF})"));
    assert_eq!(p.media_type, "multipart/mixed");
    assert_eq!(sections(&p), ["1", "2"]);
    let p = parse_str(&format!("({LEAF} NIL (\"boundary\" \"x\"))"));
    assert_eq!(p.media_type, "multipart/mixed");
    // An empty multipart reported as one part is an (empty) part file.
    let p = parse_str(r#"(("multipart" "mixed" NIL NIL NIL "7bit" 0) "related")"#);
    assert_eq!(p.children[0].kind, PartKind::Leaf);
    assert_eq!(sections(&p), ["1"]);
    assert_eq!(files_of(&p)[0].encoded_size, 0);
}

fn fetches(p: &Part) -> Vec<(String, String, String)> {
    files_of(p)
        .iter()
        .map(|f| (f.file_name(), f.fetch_section(), f.binary_section()))
        .collect()
}

fn triples(t: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    t.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

/// Courier: a multipart whose boundary is never found is reported as one part of type
/// multipart/*. Its body as stored is a part file named by its section.
#[test]
fn boundaryless_multipart_is_a_part_file() {
    // Top level: fetched as TEXT (Courier answers BODY[1] of it with nothing).
    let p =
        parse_str(r#"("multipart" "mixed" ("boundary" "NOTHERE") NIL NIL "8bit" 36 NIL NIL NIL)"#);
    assert_eq!((p.kind, p.section.as_str()), (PartKind::Leaf, "1"));
    assert_eq!(p.media_type, "multipart/mixed");
    let f = &files_of(&p)[0];
    assert_eq!(
        (f.encoding, f.encoded_size, f.size_known),
        (Encoding::Identity, 36, true)
    );
    assert!(f.eight_bit);
    assert_eq!(fetches(&p), triples(&[("1", "TEXT", "1")]));
    // A Content-Transfer-Encoding still applies.
    let p = parse_str(r#"("multipart" "alternative" NIL NIL NIL "base64" 8 NIL)"#);
    assert_eq!(files_of(&p)[0].encoding, Encoding::Base64);
    // Inside a multipart: an ordinary part number.
    let p = parse_str(&format!(
        r#"({LEAF} ("multipart" "related" ("boundary" "z") NIL NIL "7bit" 5 NIL) "mixed")"#
    ));
    assert_eq!(fetches(&p), triples(&[("1", "1", "1"), ("2", "2", "2")]));
    // The body of an encapsulated message (Corpus/40/1.1): that message's TEXT.
    let p = parse_str(
        r#"(("message" "rfc822" NIL NIL NIL "8bit" 85 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
              ("multipart" "alternative" ("boundary" "ZZ") NIL NIL "8bit" 3 NIL NIL NIL) 4)
            {LEAF} "mixed")"#
            .replace("{LEAF}", LEAF)
            .as_str(),
    );
    assert_eq!(
        fetches(&p),
        triples(&[
            ("1", "1", "1"),
            ("1.HEADER", "1.HEADER", "1.HEADER"),
            ("1.1", "1.TEXT", "1.1"),
            ("2", "2", "2"),
        ])
    );
}

/// Courier answers BODY[1] of a top-level message/rfc822 with the encapsulated message's body,
/// and BODY[n.1] of an encapsulated message's single body wrongly too: such parts are fetched
/// by their message's TEXT (the same bytes by RFC 3501); BINARY keeps the part number.
#[test]
fn single_body_of_a_message_is_fetched_as_its_text() {
    let top = r#"("message" "rfc822" NIL NIL NIL "8bit" 46
        (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL)
        ("text" "plain" NIL NIL NIL "8bit" 16 0 NIL NIL NIL) 4 NIL NIL NIL)"#;
    let p = parse_str(top);
    assert_eq!(
        fetches(&p),
        triples(&[
            ("1", "TEXT", "1"),
            ("1.HEADER", "1.HEADER", "1.HEADER"),
            ("1.1", "1.TEXT", "1.1"),
        ])
    );
    // Nested, with a multipart body: its children keep their numbers; a message inside it
    // gets its own TEXT for its single body.
    let nested = format!(
        r#"({LEAF} ("message" "rfc822" NIL NIL NIL "7bit" 500 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
             ({LEAF} ("message" "rfc822" NIL NIL NIL "7bit" 90 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
                 {LEAF} 3) "mixed") 20) "mixed")"#
    );
    let p = parse_str(&nested);
    assert_eq!(
        fetches(&p),
        triples(&[
            ("1", "1", "1"),
            ("2", "2", "2"),
            ("2.HEADER", "2.HEADER", "2.HEADER"),
            ("2.1", "2.1", "2.1"),
            ("2.2", "2.2", "2.2"),
            ("2.2.HEADER", "2.2.HEADER", "2.2.HEADER"),
            ("2.2.1", "2.2.TEXT", "2.2.1"),
        ])
    );
    // A top-level message/rfc822 whose body is a multipart: its parts keep their numbers.
    let p = parse_str(&format!(
        r#"("message" "rfc822" NIL NIL NIL "7bit" 90 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)
            ({LEAF} {LEAF} "mixed") 3)"#
    ));
    assert_eq!(
        fetches(&p),
        triples(&[
            ("1", "TEXT", "1"),
            ("1.HEADER", "1.HEADER", "1.HEADER"),
            ("1.1", "1.1", "1.1"),
            ("1.2", "1.2", "1.2"),
        ])
    );
    // A plain single-part message keeps `1`.
    assert_eq!(fetches(&parse_str(LEAF)), triples(&[("1", "1", "1")]));
}

#[test]
fn not_a_list_is_an_error() {
    assert!(super::parse(&Value::Nil).is_err());
    assert!(super::parse(&Value::Atom("x".into())).is_err());
}

fn nested_multiparts(depth: usize) -> Value {
    let mut v = imap(LEAF);
    for _ in 0..depth {
        v = Value::List(vec![v, Value::Str(b"mixed".to_vec())]);
    }
    v
}

fn nested_messages(depth: usize) -> Value {
    let mut v = imap(LEAF);
    for _ in 0..depth {
        let mut m = match imap(r#"("message" "rfc822" NIL NIL NIL "7bit" 10 NIL)"#) {
            Value::List(l) => l,
            _ => unreachable!(),
        };
        m[7] = Value::List(vec![Value::Nil; 10]);
        m.push(v);
        m.push(Value::Atom("1".into()));
        v = Value::List(m);
    }
    v
}

#[test]
fn depth_is_bounded() {
    assert!(super::parse(&nested_multiparts(1_000)).is_err());
    assert!(super::parse(&nested_messages(1_000)).is_err());
    let p = super::parse(&nested_multiparts(50)).unwrap();
    assert_eq!(sections(&p), ["1".to_string() + &".1".repeat(49)]);
    let p = super::parse(&nested_messages(3)).unwrap();
    assert_eq!(
        sections(&p),
        [
            "1",
            "1.HEADER",
            "1.1",
            "1.1.HEADER",
            "1.1.1",
            "1.1.1.HEADER",
            "1.1.1.1"
        ]
    );
}

#[test]
fn part_count_is_bounded() {
    let leaf = imap(LEAF);
    let many = |n| Value::List(vec![leaf.clone(); n]);
    let p = super::parse(&many(1_999)).unwrap();
    assert_eq!(files_of(&p).len(), 1_999);
    assert_eq!(files_of(&p)[1_998].section, "1999");
    assert!(super::parse(&many(6_000)).is_err());
}

#[test]
fn cte_names() {
    use Encoding::*;
    for (s, e) in [
        (Some("base64"), Base64),
        (Some("BASE64"), Base64),
        (Some(" base64\r\n"), Base64),
        (Some("Quoted-Printable"), QuotedPrintable),
        (Some("7bit"), Identity),
        (Some("8BIT"), Identity),
        (Some("binary"), Identity),
        (Some("x-uuencode"), Identity),
        (Some(""), Identity),
        (None, Identity),
    ] {
        assert_eq!(Encoding::from_cte(s), e, "{s:?}");
    }
}

fn flat_multipart(leaves: usize) -> Value {
    let mut v: Vec<Value> = (0..leaves).map(|_| imap(LEAF)).collect();
    v.push(Value::Str(b"mixed".to_vec()));
    Value::List(v)
}

#[test]
fn the_part_limit_counts_leaves_and_refuses_only_beyond_5000() {
    let p = super::parse(&flat_multipart(5_000)).expect("exactly 5,000 leaves are fine");
    assert_eq!(files_of(&p).len(), 5_000);
    assert!(super::parse(&flat_multipart(5_001)).is_err());
    // Containers do not count as parts, but cannot pile up without bound either.
    let mut v: Vec<Value> = (0..100).map(|_| flat_multipart(1)).collect();
    v.push(Value::Str(b"mixed".to_vec()));
    assert_eq!(files_of(&super::parse(&Value::List(v)).unwrap()).len(), 100);
    let mut v: Vec<Value> = (0..20_001)
        .map(|_| imap(r#"("multipart" "mixed" NIL NIL NIL "7bit" 0)"#))
        .collect();
    v.push(Value::Str(b"mixed".to_vec()));
    assert!(super::parse(&Value::List(v)).is_err());
}

#[test]
fn nil_and_absurd_sizes_are_unknown_and_8bit_binary_are_marked() {
    let p = parse_str(r#"("application" "octet-stream" NIL NIL NIL "binary" NIL)"#);
    assert_eq!(
        (p.encoded_size, p.size_known, p.eight_bit),
        (0, false, true)
    );
    let p = parse_str(r#"("application" "octet-stream" NIL NIL NIL "base64" 99999999999999999)"#);
    assert_eq!((p.encoded_size, p.size_known), (0, false));
    let p = parse_str(r#"("text" "plain" NIL NIL NIL " 8BIT " 12 1)"#);
    assert_eq!(
        (p.encoded_size, p.size_known, p.eight_bit),
        (12, true, true)
    );
    let p = parse_str(r#"("text" "plain" NIL NIL NIL "7bit" 0 0)"#);
    assert_eq!(
        (p.encoded_size, p.size_known, p.eight_bit),
        (0, true, false)
    );
}
