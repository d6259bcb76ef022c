//! The files a message directory shows for a MIME tree (the tree itself is read from
//! BODYSTRUCTURE by `imap`).

use super::{Encoding, FileKind, FilePart, Part, PartKind};

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
