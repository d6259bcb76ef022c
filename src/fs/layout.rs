//! Every name the mount shows, in one place: the summary files beside folders and messages,
//! the files of a message directory beyond its parts, attachment links, and the escaping that
//! keeps folder names from colliding with any of them.
//!
//! | where | names |
//! |---|---|
//! | root | `FOLDERS`, then the top-level folders |
//! | folder | `INDEX` (selectable folders), subfolders, one directory per UID |
//! | message | `HEADER`, part files (`1`, `2.1`, `3.HEADER`), `TEXT`, `RFC822`, `FLAGS`, `BODYSTRUCTURE`, `N.MIME`, `N.utf8`, attachment links |
//!
//! `SEARCH` is reserved too (for search directories to come). A subfolder whose name is a
//! reserved name is shown with its first letter percent-escaped (`INDEX` → `%49NDEX`), the same
//! rule that keeps a numeric subfolder from hiding a message (`2024` → `%32024`).

use std::collections::HashSet;

use crate::mime::header::{fit, is_utf8_compatible, safe_file_name, MAX_NAME};
use crate::mime::NodeInfo;
use crate::names::component_beside_uid;

/// At the root: one line per folder with its counts and flags.
pub const FOLDERS: &str = "FOLDERS";
/// In a selectable folder: one line per message.
pub const INDEX: &str = "INDEX";
/// Reserved for search directories.
pub const SEARCH: &str = "SEARCH";
/// Names the mount itself uses in folder directories and at the root; subfolders never take them.
pub const RESERVED: [&str; 3] = [FOLDERS, INDEX, SEARCH];

/// Message directory files beyond the parts.
pub const HEADER: &str = "HEADER";
pub const TEXT: &str = "TEXT";
pub const RFC822: &str = "RFC822";
pub const FLAGS: &str = "FLAGS";
pub const BODYSTRUCTURE: &str = "BODYSTRUCTURE";
/// Text parts bigger than this (as stored) get no `.utf8` copy: it is built in memory.
pub const MAX_UTF8_SOURCE: u64 = 8 << 20;

/// The name a subfolder shows under: reserved names and (when a message of the parent has
/// that UID) numeric names get their first character percent-escaped.
pub fn subfolder_name(component: &str, beside_uid: bool) -> String {
    if RESERVED.contains(&component) {
        let mut chars = component.chars();
        let first = chars.next().map_or(0, |c| c as u32);
        return format!("%{first:02X}{}", chars.as_str());
    }
    match beside_uid {
        true => component_beside_uid(component),
        false => component.to_string(),
    }
}

/// The folder component a shown name stands for when it is an escaped reserved name
/// (`%49NDEX` → `INDEX`); `None` otherwise.
pub fn reserved_component(name: &str) -> Option<&'static str> {
    let rest = name.strip_prefix('%')?;
    let first = u8::from_str_radix(rest.get(..2)?, 16).ok()?;
    RESERVED
        .into_iter()
        .find(|r| r.as_bytes()[0] == first && r.get(1..) == rest.get(2..))
}

/// The name of the section file holding a part's MIME header.
pub fn mime_file(section: &str) -> String {
    format!("{section}.MIME")
}

/// The UTF-8 copy of a text part.
pub fn utf8_file(section: &str) -> String {
    format!("{section}.utf8")
}

/// A generated entry of a message directory (the section files are listed apart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extra {
    Flags,
    Outline,
    /// The part file `section` converted from `charset` to UTF-8.
    Utf8 {
        section: String,
        charset: &'static encoding_rs::Encoding,
    },
    /// A symbolic link to the part file `target`.
    Link {
        target: String,
    },
}

/// The generated entries of a message directory whose section files are named `files`, for a
/// MIME tree `nodes` (empty when the structure is unreadable). `encoded_size` gives a section
/// file's size as stored. Order: FLAGS, BODYSTRUCTURE, `.utf8` files, attachment links.
///
/// Attachment names: the decoded file name made a safe component. When it equals a file of
/// the directory or an earlier attachment's name, the part's section is put before the
/// extension (`invoice.pdf` → `invoice~3.pdf`), then a counter (`invoice~3~2.pdf`) until free.
pub fn message_extras(
    files: &[&str],
    nodes: &[NodeInfo],
    encoded_size: impl Fn(&str) -> Option<u64>,
) -> Vec<(String, Extra)> {
    let mut out = vec![(FLAGS.to_string(), Extra::Flags)];
    if !nodes.is_empty() {
        out.push((BODYSTRUCTURE.to_string(), Extra::Outline));
    }
    let mut taken: HashSet<String> = files.iter().map(|f| f.to_string()).collect();
    taken.extend(out.iter().map(|(n, _)| n.clone()));
    for n in nodes {
        let Some(section) = &n.file else { continue };
        let Some(cs) = n.charset.as_deref() else {
            continue;
        };
        if !n.media_type.starts_with("text/") || is_utf8_compatible(cs) {
            continue;
        }
        let Some(charset) = crate::mime::header::charset(cs) else {
            log::debug!("part {section}: unknown charset {cs:?}, no .utf8 copy");
            continue;
        };
        if charset == encoding_rs::UTF_8
            || encoded_size(section).is_none_or(|s| s > MAX_UTF8_SOURCE)
        {
            continue;
        }
        let name = utf8_file(section);
        taken.insert(name.clone());
        out.push((
            name,
            Extra::Utf8 {
                section: section.clone(),
                charset,
            },
        ));
    }
    for n in nodes {
        let (Some(section), Some(raw)) = (&n.file, &n.filename) else {
            continue;
        };
        let Some(name) = safe_file_name(raw) else {
            continue;
        };
        let name = free_name(&name, section, &taken);
        taken.insert(name.clone());
        out.push((
            name,
            Extra::Link {
                target: section.clone(),
            },
        ));
    }
    out
}

/// `name`, or the first of `stem~SECTION.ext`, `stem~SECTION~2.ext`, … not in `taken`.
fn free_name(name: &str, section: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(name) {
        return name.to_string();
    }
    let mut k = 1u32;
    loop {
        let suffix = match k {
            1 => format!("~{section}"),
            k => format!("~{section}~{k}"),
        };
        let candidate = fit(name, &suffix, MAX_NAME);
        if !taken.contains(&candidate) {
            return candidate;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(file: &str, ty: &str, charset: Option<&str>, filename: Option<&str>) -> NodeInfo {
        NodeInfo {
            label: file.into(),
            file: Some(file.into()),
            depth: 1,
            media_type: ty.into(),
            charset: charset.map(Into::into),
            disposition: None,
            filename: filename.map(Into::into),
            in_multipart: true,
        }
    }

    #[test]
    fn reserved_subfolders_are_escaped_and_found_again() {
        assert_eq!(subfolder_name("INDEX", false), "%49NDEX");
        assert_eq!(subfolder_name("FOLDERS", true), "%46OLDERS");
        assert_eq!(subfolder_name("SEARCH", false), "%53EARCH");
        assert_eq!(subfolder_name("2024", true), "%32024");
        assert_eq!(subfolder_name("2024", false), "2024");
        assert_eq!(subfolder_name("Index", false), "Index");
        for r in RESERVED {
            assert_eq!(reserved_component(&subfolder_name(r, false)), Some(r));
        }
        assert_eq!(reserved_component("%49NDEXX"), None);
        assert_eq!(reserved_component("%32024"), None);
        assert_eq!(reserved_component("%4"), None);
    }

    #[test]
    fn extras_utf8_and_links_with_disambiguation() {
        let files = ["HEADER", "1", "2", "3", "4", "5", "TEXT", "RFC822"];
        let nodes = vec![
            node("1", "text/plain", Some("iso-8859-1"), None),
            node("2", "text/plain", Some("UTF-8"), Some("a.txt")),
            node("3", "text/html", Some("x-unknown"), Some("a.txt")),
            node("4", "application/pdf", None, Some("FLAGS")),
            node("5", "application/pdf", None, Some("a~3.txt")),
        ];
        let extras = message_extras(&files, &nodes, |_| Some(100));
        let names: Vec<&str> = extras.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "FLAGS",
                "BODYSTRUCTURE",
                "1.utf8",
                "a.txt",
                "a~3.txt",
                "FLAGS~4",
                "a~3~5.txt"
            ]
        );
        assert_eq!(extras[3].1, Extra::Link { target: "2".into() });
        // Too big for a copy in memory.
        let extras = message_extras(&files, &nodes[..1], |_| Some(MAX_UTF8_SOURCE + 1));
        assert_eq!(extras.len(), 2);
        // Unreadable structure: only FLAGS.
        assert_eq!(message_extras(&files, &[], |_| None).len(), 1);
    }
}
