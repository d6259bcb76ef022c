//! BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) → a tree of [`Part`]s with IMAP section
//! numbers (RFC 3501 §6.4.5), and the files a message directory shows for it.

use super::{Encoding, FileKind, FilePart, Part, PartKind, StructureError};
use crate::sexp::Value;

/// Deeper nesting than any real mail; guards the recursion.
const MAX_DEPTH: usize = 100;
/// More leaf parts than any real mail; guards memory and listing size.
const MAX_PARTS: usize = 5_000;
/// Bodies of any kind (multiparts and message parts too), so that containers cannot pile up
/// without bound either.
const MAX_BODIES: usize = 4 * MAX_PARTS;
/// A part size beyond this (1 TiB) is not believed: the part's size is settled by reading it.
const MAX_PART_SIZE: u64 = 1 << 40;

enum Fail {
    /// The value does not look like a body; a message part falls back to a leaf.
    Malformed(&'static str),
    /// A bound was exceeded: the whole structure is refused.
    Limit(String),
}

pub(crate) fn parse(v: &Value) -> Result<Part, StructureError> {
    let list = v
        .as_list()
        .ok_or_else(|| StructureError("not a list".into()))?;
    // A top-level multipart has the empty section; a single body is part 1.
    let section = if is_multipart(list) { "" } else { "1" };
    let mut parser = Parser {
        leaves: 0,
        bodies: 0,
    };
    parser.body(v, section.to_string(), 1).map_err(|f| match f {
        Fail::Malformed(m) => StructureError(m.to_string()),
        Fail::Limit(m) => StructureError(m),
    })
}

fn is_multipart(list: &[Value]) -> bool {
    matches!(list.first(), Some(Value::List(_)))
}

fn child_section(parent: &str, n: usize) -> String {
    if parent.is_empty() {
        n.to_string()
    } else {
        format!("{parent}.{n}")
    }
}

/// A type or subtype: atom or string, trimmed and lower-cased; `None` for NIL or empty.
fn token(v: Option<&Value>) -> Option<String> {
    let t = v?.as_text()?.trim().to_ascii_lowercase();
    (!t.is_empty()).then_some(t)
}

struct Parser {
    /// Leaf parts so far: the README's "more than 5,000 parts" counts these.
    leaves: usize,
    bodies: usize,
}

impl Parser {
    fn body(&mut self, v: &Value, section: String, depth: usize) -> Result<Part, Fail> {
        if depth > MAX_DEPTH {
            return Err(Fail::Limit(format!("nested deeper than {MAX_DEPTH}")));
        }
        self.bodies += 1;
        if self.bodies > MAX_BODIES {
            return Err(Fail::Limit(format!("more than {MAX_BODIES} bodies")));
        }
        let list = v.as_list().ok_or(Fail::Malformed("body is not a list"))?;
        if is_multipart(list) {
            self.multipart(list, section, depth)
        } else {
            self.single(list, section, depth)
        }
    }

    /// `(child child ... subtype [extension data])`.
    fn multipart(&mut self, list: &[Value], section: String, depth: usize) -> Result<Part, Fail> {
        let mut children = Vec::new();
        let mut rest = list.iter();
        let mut subtype = None;
        for v in rest.by_ref() {
            if matches!(v, Value::List(_)) {
                let s = child_section(&section, children.len() + 1);
                children.push(self.body(v, s, depth + 1)?);
            } else {
                subtype = token(Some(v));
                break;
            }
        }
        Ok(Part {
            section,
            kind: PartKind::Multipart,
            media_type: format!("multipart/{}", subtype.as_deref().unwrap_or("mixed")),
            encoding: Encoding::Identity,
            eight_bit: false,
            encoded_size: 0,
            size_known: true,
            children,
        })
    }

    /// `(type subtype params id description encoding size [envelope body lines] [lines] ...)`.
    fn single(&mut self, list: &[Value], section: String, depth: usize) -> Result<Part, Fail> {
        let ty = token(list.first()).unwrap_or_else(|| "application".into());
        let sub = token(list.get(1)).unwrap_or_else(|| {
            if ty == "text" {
                "plain"
            } else {
                "octet-stream"
            }
            .into()
        });
        let media_type = format!("{ty}/{sub}");
        // A multipart reported as one part (Courier, when its boundary is never found) is a leaf:
        // its body as stored is all there is to show.
        let cte = list.get(5).and_then(Value::as_text);
        let encoding = Encoding::from_cte(cte.as_deref());
        let eight_bit = cte.is_some_and(|c| {
            let c = c.trim();
            c.eq_ignore_ascii_case("8bit") || c.eq_ignore_ascii_case("binary")
        });
        // NIL, not a number, or absurd: unknown, settled by reading the part (never shown as 0).
        let size = list
            .get(6)
            .and_then(Value::as_u64)
            .filter(|&n| n <= MAX_PART_SIZE);
        let mut part = Part {
            section,
            kind: PartKind::Leaf,
            media_type,
            encoding,
            eight_bit,
            encoded_size: size.unwrap_or(0),
            size_known: size.is_some(),
            children: Vec::new(),
        };
        if ty == "message" && (sub == "rfc822" || sub == "global") {
            // Without a usable envelope and body (Gmail, Exchange sometimes), it is a leaf.
            if let (Some(Value::List(_)), Some(body @ Value::List(b))) = (list.get(7), list.get(8))
            {
                if !b.is_empty() {
                    // An encapsulated multipart's children are n.1, n.2; a single body is n.1.
                    let s = if is_multipart(b) {
                        part.section.clone()
                    } else {
                        format!("{}.1", part.section)
                    };
                    match self.body(body, s, depth + 1) {
                        Ok(inner) => {
                            part.kind = PartKind::Message;
                            part.children.push(inner);
                        }
                        Err(Fail::Malformed(_)) => {}
                        Err(limit) => return Err(limit),
                    }
                }
            }
        }
        if part.kind == PartKind::Leaf {
            self.leaves += 1;
            if self.leaves > MAX_PARTS {
                return Err(Fail::Limit(format!("more than {MAX_PARTS} parts")));
            }
        }
        Ok(part)
    }
}

/// Depth-first pre-order; a message part's `.HEADER` right after its own content file.
pub(crate) fn files_of(root: &Part) -> Vec<FilePart> {
    let mut files = Vec::new();
    // The top-level body, when not a multipart, is the message's TEXT; only the cases where
    // a server was seen to answer BODY[1] wrongly are fetched that way (a plain single-part
    // message keeps `1`, the same bytes everywhere).
    let top_text = root.kind == PartKind::Message || root.media_type.starts_with("multipart/");
    let root_text = (root.kind != PartKind::Multipart && top_text).then(|| "TEXT".to_string());
    // An explicit stack: a hand-built Part tree may be arbitrarily deep.
    let mut stack = vec![(root, root_text)];
    while let Some((p, text_section)) = stack.pop() {
        let content = || FilePart {
            section: p.section.clone(),
            kind: FileKind::Content,
            encoding: p.encoding,
            eight_bit: p.eight_bit,
            encoded_size: p.encoded_size,
            size_known: p.size_known,
            text_section: text_section.clone(),
        };
        match p.kind {
            PartKind::Leaf => files.push(content()),
            PartKind::Message => {
                files.push(content());
                files.push(FilePart {
                    section: p.section.clone(),
                    kind: FileKind::NestedHeader,
                    encoding: Encoding::Identity,
                    eight_bit: false,
                    encoded_size: 0,
                    size_known: false,
                    text_section: None,
                });
            }
            PartKind::Multipart => {}
        }
        for c in p.children.iter().rev() {
            // The single non-multipart body of an encapsulated message is that message's TEXT.
            let text = (p.kind == PartKind::Message && c.kind != PartKind::Multipart)
                .then(|| format!("{}.TEXT", p.section));
            stack.push((c, text));
        }
    }
    files
}

#[cfg(test)]
mod tests;
