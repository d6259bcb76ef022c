//! What a person wants to know about each MIME node beside its section and type: charset,
//! disposition and file name, read from the same BODYSTRUCTURE the [`Part`] tree came from.

use super::header::param;
use super::{Part, PartKind};
use crate::sexp::Value;

/// One node of a message's MIME tree, for outlines and attachment names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// How the outline names the node: `TEXT` for the top, `3.TEXT` for the multipart body of
    /// message part 3, else the section number (which is also the part file's name).
    pub label: String,
    /// The section of the part file holding the node's bytes; `None` for multiparts.
    pub file: Option<String>,
    pub depth: usize,
    pub media_type: String,
    pub charset: Option<String>,
    /// Lower-case disposition type (`attachment`, `inline`).
    pub disposition: Option<String>,
    /// Content-Disposition `filename`, else Content-Type `name`, decoded (RFC 2231, RFC 2047).
    pub filename: Option<String>,
    /// The node is a child of a multipart (so its own header is section `<file>.MIME`).
    pub in_multipart: bool,
}

/// Every node of `root` (parsed from `v`) in pre-order.
pub fn outline(v: &Value, root: &Part) -> Vec<NodeInfo> {
    let mut out = Vec::new();
    if root.kind == PartKind::Multipart {
        walk(Some(v), root, 0, "TEXT".to_string(), false, &mut out);
        return out;
    }
    // A single-part message: its body (TEXT) is part 1, whose file is decoded.
    out.push(NodeInfo {
        label: "TEXT".into(),
        file: None,
        depth: 0,
        media_type: root.media_type.clone(),
        charset: None,
        disposition: None,
        filename: None,
        in_multipart: false,
    });
    walk(Some(v), root, 1, root.section.clone(), false, &mut out);
    out
}

fn walk(
    v: Option<&Value>,
    part: &Part,
    depth: usize,
    label: String,
    in_multipart: bool,
    out: &mut Vec<NodeInfo>,
) {
    let list = v.and_then(Value::as_list).unwrap_or(&[]);
    let (params, dsp) = match part.kind {
        PartKind::Multipart => {
            let sub = list.iter().position(|x| !matches!(x, Value::List(_)));
            match sub {
                Some(k) => (list.get(k + 1), list.get(k + 2)),
                None => (None, None),
            }
        }
        _ => {
            let ty = text_of(list.first());
            let sub = text_of(list.get(1));
            let at = match (ty.as_str(), sub.as_str()) {
                ("text", _) => 9,
                ("message", "rfc822" | "global") => 11,
                _ => 8,
            };
            (list.get(2), list.get(at))
        }
    };
    let params = pairs(params);
    let (disposition, dsp_params) = match dsp.and_then(Value::as_list) {
        Some([kind, rest @ ..]) => (
            kind.as_text().map(|k| k.trim().to_ascii_lowercase()),
            pairs(rest.first()),
        ),
        _ => (None, Vec::new()),
    };
    let filename = param(&dsp_params, "filename").or_else(|| param(&params, "name"));
    out.push(NodeInfo {
        label,
        file: (part.kind != PartKind::Multipart).then(|| part.section.clone()),
        depth,
        media_type: part.media_type.clone(),
        charset: param(&params, "charset").filter(|c| !c.trim().is_empty()),
        disposition: disposition.filter(|d| !d.is_empty()),
        filename: filename.filter(|f| !f.is_empty()),
        in_multipart,
    });
    match part.kind {
        PartKind::Multipart => {
            let kids = list.iter().filter(|x| matches!(x, Value::List(_)));
            let mut kids = kids.map(Some).chain(std::iter::repeat(None));
            for child in &part.children {
                let cv = kids.next().flatten();
                walk(cv, child, depth + 1, child.section.clone(), true, out);
            }
        }
        PartKind::Message => {
            for child in &part.children {
                let label = match child.kind {
                    PartKind::Multipart => format!("{}.TEXT", part.section),
                    _ => child.section.clone(),
                };
                walk(list.get(8), child, depth + 1, label, false, out);
            }
        }
        PartKind::Leaf => {}
    }
}

fn text_of(v: Option<&Value>) -> String {
    v.and_then(Value::as_text)
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A parameter list `("name" "value" ...)` as pairs; anything else is no parameters.
fn pairs(v: Option<&Value>) -> Vec<(String, Vec<u8>)> {
    let Some(list) = v.and_then(Value::as_list) else {
        return Vec::new();
    };
    list.chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((k.as_text()?, v.as_bytes()?.to_vec())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse_bodystructure;

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
        let root = parse_bodystructure(&bs).unwrap();
        let nodes = outline(&bs, &root);
        let labels: Vec<(&str, usize)> =
            nodes.iter().map(|n| (n.label.as_str(), n.depth)).collect();
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
        let root = parse_bodystructure(&bs).unwrap();
        let nodes = outline(&bs, &root);
        let got: Vec<_> = nodes
            .iter()
            .map(|n| (n.label.as_str(), n.file.as_deref(), n.depth))
            .collect();
        assert_eq!(got, [("TEXT", None, 0), ("1", Some("1"), 1)]);
    }
}
