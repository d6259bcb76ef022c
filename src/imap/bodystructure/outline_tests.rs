//! The outline of a parsed structure: charset, disposition and names read from BODYSTRUCTURE.

use super::parse;
use crate::imap::sexp::Value;
use crate::mime::outline;

fn s(x: &str) -> Value {
    Value::Str(x.as_bytes().to_vec())
}

fn l(v: Vec<Value>) -> Value {
    Value::List(v)
}

#[test]
fn nodes_with_charset_disposition_and_names() {
    let text = l(vec![
        s("text"),
        s("plain"),
        l(vec![s("charset"), s("iso-8859-1")]),
        Value::Nil,
        Value::Nil,
        s("quoted-printable"),
        s("10"),
        s("1"),
        Value::Nil,
        Value::Nil,
    ]);
    let pdf = l(vec![
        s("application"),
        s("pdf"),
        l(vec![s("name"), s("ignored.pdf")]),
        Value::Nil,
        Value::Nil,
        s("base64"),
        s("400"),
        Value::Nil,
        l(vec![
            s("ATTACHMENT"),
            l(vec![s("filename*"), s("utf-8''r%C3%A9sum%C3%A9.pdf")]),
        ]),
    ]);
    let inner = l(vec![
        s("text"),
        s("html"),
        Value::Nil,
        Value::Nil,
        Value::Nil,
        s("7bit"),
        s("5"),
        s("1"),
    ]);
    let msg = l(vec![
        s("message"),
        s("rfc822"),
        Value::Nil,
        Value::Nil,
        Value::Nil,
        s("7bit"),
        s("99"),
        l(vec![Value::Nil]),
        l(vec![inner.clone(), inner, s("alternative")]),
        s("4"),
    ]);
    let bs = l(vec![text, pdf, msg, s("mixed")]);
    let root = parse(&bs).unwrap();
    let nodes = outline(&root);
    let labels: Vec<(&str, usize)> = nodes.iter().map(|n| (n.label.as_str(), n.depth)).collect();
    assert_eq!(
        labels,
        [
            ("TEXT", 0),
            ("1", 1),
            ("2", 1),
            ("3", 1),
            ("3.TEXT", 2),
            ("3.1", 3),
            ("3.2", 3)
        ]
    );
    assert_eq!(nodes[0].file, None);
    assert_eq!(nodes[1].charset.as_deref(), Some("iso-8859-1"));
    assert_eq!(nodes[2].disposition.as_deref(), Some("attachment"));
    assert_eq!(nodes[2].filename.as_deref(), Some("résumé.pdf"));
    assert_eq!(nodes[5].file.as_deref(), Some("3.1"));
    let in_mp: Vec<bool> = nodes.iter().map(|n| n.in_multipart).collect();
    assert_eq!(in_mp, [false, true, true, true, false, true, true]);
}

#[test]
fn single_part_message_is_text_and_file_1() {
    let bs = l(vec![
        s("text"),
        s("plain"),
        Value::Nil,
        Value::Nil,
        Value::Nil,
        s("7bit"),
        s("3"),
        s("1"),
    ]);
    let root = parse(&bs).unwrap();
    let nodes = outline(&root);
    let got: Vec<_> = nodes
        .iter()
        .map(|n| (n.label.as_str(), n.file.as_deref(), n.depth))
        .collect();
    assert_eq!(got, [("TEXT", None, 0), ("1", Some("1"), 1)]);
}
