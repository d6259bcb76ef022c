//! BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) → a tree of [`Part`]s with IMAP section
//! numbers (RFC 3501 §6.4.5) and what a person wants to know of each part (charset, disposition,
//! file name). The filesystem sees only the [`Part`] tree: the response syntax stays in `imap`.

use super::sexp::Value;
use crate::mime::header::param;
use crate::mime::{Encoding, Part, PartKind, StructureError};

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

pub(super) fn parse(v: &Value) -> Result<Part, StructureError> {
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
        let mut subtype = None;
        let mut ext = None;
        for (k, v) in list.iter().enumerate() {
            if matches!(v, Value::List(_)) {
                let s = child_section(&section, children.len() + 1);
                children.push(self.body(v, s, depth + 1)?);
            } else {
                subtype = token(Some(v));
                ext = Some(k + 1);
                break;
            }
        }
        // Extension data after the subtype: parameters, then disposition.
        let (params, dsp) = match ext {
            Some(k) => (list.get(k), list.get(k + 1)),
            None => (None, None),
        };
        let about = About::read(params, dsp);
        Ok(Part {
            section,
            kind: PartKind::Multipart,
            media_type: format!("multipart/{}", subtype.as_deref().unwrap_or("mixed")),
            encoding: Encoding::Identity,
            eight_bit: false,
            encoded_size: 0,
            size_known: true,
            children,
            charset: about.charset,
            disposition: about.disposition,
            filename: about.filename,
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
        // The disposition follows the body's type-specific fields (RFC 3501 body-ext-1part).
        let dsp_at = match (ty.as_str(), sub.as_str()) {
            ("text", _) => 9,
            ("message", "rfc822" | "global") => 11,
            _ => 8,
        };
        let about = About::read(list.get(2), list.get(dsp_at));
        let mut part = Part {
            section,
            kind: PartKind::Leaf,
            media_type,
            encoding,
            eight_bit,
            encoded_size: size.unwrap_or(0),
            size_known: size.is_some(),
            children: Vec::new(),
            charset: about.charset,
            disposition: about.disposition,
            filename: about.filename,
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

/// A part's charset, disposition and file name, from its parameters and disposition.
struct About {
    charset: Option<String>,
    disposition: Option<String>,
    filename: Option<String>,
}

impl About {
    fn read(params: Option<&Value>, dsp: Option<&Value>) -> About {
        let params = pairs(params);
        let (disposition, dsp_params) = match dsp.and_then(Value::as_list) {
            Some([kind, rest @ ..]) => (
                kind.as_text().map(|k| k.trim().to_ascii_lowercase()),
                pairs(rest.first()),
            ),
            _ => (None, Vec::new()),
        };
        let filename = param(&dsp_params, "filename").or_else(|| param(&params, "name"));
        About {
            charset: param(&params, "charset").filter(|c| !c.trim().is_empty()),
            disposition: disposition.filter(|d| !d.is_empty()),
            filename: filename.filter(|f| !f.is_empty()),
        }
    }
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
mod outline_tests;
#[cfg(test)]
mod tests;
