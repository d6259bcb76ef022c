use super::*;

fn text_of(name: &str) -> String {
    let c = parse(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
    c.command_args()
        .iter()
        .map(|a| match a {
            Arg::Text(t) => t.clone(),
            Arg::Literal(b) => format!("<{}>", String::from_utf8_lossy(b)),
        })
        .collect()
}

#[test]
fn keys_as_a_user_types_them() {
    assert_eq!(
        text_of("FROM alice SINCE 1-Mar-2024"),
        "FROM \"alice\" SINCE 1-Mar-2024"
    );
    assert_eq!(text_of("unseen"), "UNSEEN");
    assert_eq!(
        text_of("SUBJECT \"quarterly report\""),
        "SUBJECT \"quarterly report\""
    );
    assert_eq!(
        text_of("OR FROM a (NOT SEEN FLAGGED)"),
        "OR FROM \"a\" (NOT SEEN FLAGGED)"
    );
    assert_eq!(text_of("UID 100:200,300"), "UID 100:200,300");
    assert_eq!(text_of("LARGER 1000 SMALLER 20"), "LARGER 1000 SMALLER 20");
    assert_eq!(
        text_of("HEADER X-Mailer \"Foo \\\"Bar\\\"\""),
        "HEADER \"X-Mailer\" \"Foo \\\"Bar\\\"\""
    );
    assert_eq!(text_of("keyword $Label1"), "KEYWORD $Label1");
    assert_eq!(text_of("on 01-mar-2024"), "ON 1-Mar-2024");
}

#[test]
fn percent_escapes_as_in_folder_names() {
    assert_eq!(text_of("BODY a%2Fb"), "BODY \"a/b\"");
    assert_eq!(text_of("BODY 100%25"), "BODY \"100%\"");
}

#[test]
fn non_ascii_strings_are_literals_with_utf8() {
    let c = parse("SUBJECT Grüße FROM bob").unwrap();
    assert!(c.needs_utf8());
    let args = c.command_args();
    assert_eq!(
        args,
        vec![
            Arg::Text("SUBJECT ".into()),
            Arg::Literal("Grüße".as_bytes().to_vec()),
            Arg::Text(" FROM \"bob\"".into()),
        ]
    );
    assert!(!parse("FROM bob").unwrap().needs_utf8());
}

#[test]
fn refused_with_a_reason() {
    for bad in [
        "",
        "   ",
        ".",
        "..",
        "FROM",
        "FROM \"alice",
        "(SEEN",
        "SEEN)",
        "()",
        "BOGUS x",
        "SINCE yesterday",
        "SINCE 32-Mar-2024",
        "LARGER -5",
        "UID 0:5",
        "UID abc",
        "BODY 100%",
        "BODY %zz",
        "BODY a%0D%0Ab",
        "BODY a%00",
        "HEADER \"\" x",
        "KEYWORD \\Seen",
        "\"just a string\"",
        "SUBJECT \"bad \\x escape\"",
        "BODY %FF",
        // message numbers: part files and globs such as Folder/*/1 must not find a search
        "1",
        "2:*",
        "1.MIME",
        "2.1",
        "TEXT",
        "HEADER",
        "FLAGS",
        "RFC822",
        "BODYSTRUCTURE",
        "INDEX",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} was accepted");
    }
    let long = "TEXT a ".repeat(2000);
    assert!(parse(&long).is_err());
    let deep = format!("{}SEEN{}", "(".repeat(40), ")".repeat(40));
    assert!(parse(&deep).is_err());
    assert!(parse("NOT ".repeat(40).as_str()).is_err());
}

#[test]
fn never_panics_on_odd_input() {
    for s in [
        "\"", "\\", "(((", ")))", "%", "%2", "OR", "OR SEEN", "NOT", "HEADER a",
    ] {
        let _ = parse(s);
    }
}
