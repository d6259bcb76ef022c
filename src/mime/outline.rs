//! What a person wants to know about each MIME node beside its section and type: charset,
//! disposition and file name, as the [`Part`] tree carries them.

use super::{Part, PartKind};

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

/// Every node of `root` in pre-order.
pub fn outline(root: &Part) -> Vec<NodeInfo> {
    let mut out = Vec::new();
    if root.kind == PartKind::Multipart {
        walk(root, 0, "TEXT".to_string(), false, &mut out);
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
    walk(root, 1, root.section.clone(), false, &mut out);
    out
}

fn walk(part: &Part, depth: usize, label: String, in_multipart: bool, out: &mut Vec<NodeInfo>) {
    out.push(NodeInfo {
        label,
        file: (part.kind != PartKind::Multipart).then(|| part.section.clone()),
        depth,
        media_type: part.media_type.clone(),
        charset: part.charset.clone(),
        disposition: part.disposition.clone(),
        filename: part.filename.clone(),
        in_multipart,
    });
    match part.kind {
        PartKind::Multipart => {
            for child in &part.children {
                walk(child, depth + 1, child.section.clone(), true, out);
            }
        }
        PartKind::Message => {
            for child in &part.children {
                let label = match child.kind {
                    PartKind::Multipart => format!("{}.TEXT", part.section),
                    _ => child.section.clone(),
                };
                walk(child, depth + 1, label, false, out);
            }
        }
        PartKind::Leaf => {}
    }
}
