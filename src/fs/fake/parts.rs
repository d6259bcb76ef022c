//! MIME trees for the fake store, built the way a server's BODYSTRUCTURE would be read: the
//! core's tests never see IMAP syntax. Sections are numbered when the store serves the tree.

use crate::mime::{Encoding, Part, PartKind};

fn part(kind: PartKind, media_type: String, enc: &str, size: Option<usize>) -> Part {
    let cte = enc.trim();
    Part {
        section: String::new(),
        kind,
        media_type,
        encoding: Encoding::from_cte(Some(cte)),
        eight_bit: cte.eq_ignore_ascii_case("8bit") || cte.eq_ignore_ascii_case("binary"),
        encoded_size: size.unwrap_or(0) as u64,
        size_known: size.is_some(),
        children: Vec::new(),
        charset: None,
        disposition: None,
        filename: None,
    }
}

/// A leaf `ty/sub` of `size` bytes as stored, in transfer encoding `enc`.
pub fn leaf(ty: &str, sub: &str, enc: &str, size: usize) -> Part {
    part(PartKind::Leaf, media(ty, sub), enc, Some(size))
}

/// A leaf whose size BODYSTRUCTURE did not give (NIL, or too large to believe).
pub fn leaf_of_unknown_size(ty: &str, sub: &str, enc: &str) -> Part {
    part(PartKind::Leaf, media(ty, sub), enc, None)
}

pub fn multipart(children: Vec<Part>, sub: &str) -> Part {
    let mut p = part(PartKind::Multipart, media("multipart", sub), "", Some(0));
    p.children = children;
    p
}

/// A message/rfc822 part of `size` bytes holding `body`.
pub fn message(body: Part, size: usize) -> Part {
    let mut p = part(
        PartKind::Message,
        media("message", "rfc822"),
        "7bit",
        Some(size),
    );
    p.children = vec![body];
    p
}

fn media(ty: &str, sub: &str) -> String {
    format!("{ty}/{sub}").to_ascii_lowercase()
}

/// Give every part its IMAP section (RFC 3501 §6.4.5), as the BODYSTRUCTURE reader does.
pub fn numbered(mut root: Part) -> Part {
    let top = if root.kind == PartKind::Multipart {
        ""
    } else {
        "1"
    };
    number(&mut root, top.to_string());
    root
}

fn number(p: &mut Part, section: String) {
    match p.kind {
        PartKind::Multipart => {
            for (i, c) in p.children.iter_mut().enumerate() {
                let s = if section.is_empty() {
                    (i + 1).to_string()
                } else {
                    format!("{section}.{}", i + 1)
                };
                number(c, s);
            }
        }
        PartKind::Message => {
            for c in &mut p.children {
                let s = if c.kind == PartKind::Multipart {
                    section.clone()
                } else {
                    format!("{section}.1")
                };
                number(c, s);
            }
        }
        PartKind::Leaf => {}
    }
    p.section = section;
}

#[test]
fn numbered_like_the_bodystructure_reader() {
    let inner = multipart(
        vec![
            leaf("text", "plain", "7bit", 1),
            leaf("text", "html", "7bit", 1),
        ],
        "alternative",
    );
    let root = numbered(multipart(
        vec![
            leaf("text", "plain", "7bit", 1),
            message(inner, 10),
            message(leaf("text", "plain", "7bit", 1), 5),
        ],
        "mixed",
    ));
    let files: Vec<String> = crate::mime::files_of(&root)
        .iter()
        .map(|f| f.file_name())
        .collect();
    assert_eq!(
        files,
        ["1", "2", "2.HEADER", "2.1", "2.2", "3", "3.HEADER", "3.1"]
    );
    assert_eq!(numbered(leaf("text", "plain", "7bit", 1)).section, "1");
}
