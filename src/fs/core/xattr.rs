//! Extended attributes for desktop tools (`getfattr`, file managers): the media type and
//! charset of part files (freedesktop's `user.mime_type`, `user.charset`), and a message
//! directory's flags, UID and INTERNALDATE. Built from what the layout already holds (the
//! structure, the listing, the folder's flags), never from content.

use crate::fs::inodes::Node;
use crate::fs::{FsError, FsResult};
use crate::mime::header::one_line;
use crate::mime::NodeInfo;

use super::super::layout::Extra;
use super::summary::iso_date;
use super::MailFs;

pub const MIME_TYPE: &str = "user.mime_type";
pub const CHARSET: &str = "user.charset";
pub const FLAGS: &str = "user.imap.flags";
pub const UID: &str = "user.imap.uid";
pub const INTERNALDATE: &str = "user.imap.internaldate";
/// Every name the mount may show.
pub const XATTR_NAMES: [&str; 5] = [MIME_TYPE, CHARSET, FLAGS, UID, INTERNALDATE];

/// Longer values are not a media type or charset: left out rather than passed on.
const MAX_VALUE: usize = 255;

/// The media type of a file that is not a MIME part: the header blocks and the body as stored
/// are text, the whole message is a message.
fn media_type_of_file(name: &str) -> &'static str {
    match name {
        "RFC822" => "message/rfc822",
        _ => "text/plain",
    }
}

/// A value from the server made one clean line, or `None` when empty or absurdly long.
fn clean(v: &str) -> Option<String> {
    let v = one_line(v.trim()).to_ascii_lowercase();
    (!v.is_empty() && v.len() <= MAX_VALUE).then_some(v)
}

/// The outline node whose part file is `section`.
fn node_of<'a>(nodes: &'a [NodeInfo], section: &str) -> Option<&'a NodeInfo> {
    nodes.iter().find(|n| n.file.as_deref() == Some(section))
}

impl MailFs {
    /// The media type and charset of a file of a message directory (part file or `.utf8`).
    fn file_types(&self, ino: u64) -> FsResult<(Option<String>, Option<String>)> {
        // (folder, UIDVALIDITY, UID, part file index or generated entry index)
        let (folder, uidvalidity, uid, which) = match self.node(ino)? {
            Node::File {
                folder,
                uidvalidity,
                uid,
                file,
            } => (folder, uidvalidity, uid, Ok(file)),
            Node::Extra {
                folder,
                uidvalidity,
                uid,
                item,
            } => (folder, uidvalidity, uid, Err(item)),
            _ => return Ok((None, None)),
        };
        let (fs, extras) = self.extras_of(folder, uidvalidity, uid)?;
        let types = |n: &NodeInfo| (clean(&n.media_type), n.charset.as_deref().and_then(clean));
        Ok(match which {
            Ok(file) => {
                let info = self.message_info(&fs, uidvalidity, uid)?;
                let name = &info.files.get(file as usize).ok_or(FsError::NotFound)?.name;
                match node_of(&extras.nodes, name) {
                    Some(n) => types(n),
                    None => (Some(media_type_of_file(name).into()), None),
                }
            }
            Err(item) => match extras.items.get(item as usize) {
                Some((_, Extra::Utf8 { section, .. })) => (
                    node_of(&extras.nodes, section).and_then(|n| types(n).0),
                    Some("utf-8".into()),
                ),
                _ => (None, None),
            },
        })
    }

    /// The names of the extended attributes node `ino` has.
    pub fn xattr_names(&self, ino: u64) -> FsResult<Vec<&'static str>> {
        if let Node::Message { .. } = self.node(ino)? {
            return Ok(vec![FLAGS, INTERNALDATE, UID]);
        }
        let (mime, charset) = self.file_types(ino)?;
        Ok([(MIME_TYPE, mime.is_some()), (CHARSET, charset.is_some())]
            .into_iter()
            .filter_map(|(n, has)| has.then_some(n))
            .collect())
    }

    /// `listxattr`: the names, each followed by NUL.
    pub fn xattr_list(&self, ino: u64) -> FsResult<Vec<u8>> {
        let mut out = Vec::new();
        for n in self.xattr_names(ino)? {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// The value of extended attribute `name` of `ino`; `None` when it has no such attribute.
    /// Outside the `user.` namespace the answer is [`FsError::NotSupported`]: `ls -l` asks for
    /// `security.selinux` and `system.posix_acl_*` of every entry, and stops asking for the
    /// whole filesystem after the first "not supported" (coreutils remembers it per device),
    /// where "no such attribute" would cost a round trip per entry and name.
    pub fn xattr(&self, ino: u64, name: &str) -> FsResult<Option<Vec<u8>>> {
        if !name.starts_with("user.") {
            return Err(FsError::NotSupported);
        }
        if !XATTR_NAMES.contains(&name) {
            return Ok(None);
        }
        let node = self.node(ino)?;
        let Node::Message {
            folder,
            uidvalidity,
            uid,
        } = node
        else {
            let (mime, charset) = self.file_types(ino)?;
            let v = match name {
                MIME_TYPE => mime,
                CHARSET => charset,
                _ => None,
            };
            return Ok(v.map(String::into_bytes));
        };
        let (fs, summary) = self.summary(folder, uidvalidity, uid)?;
        Ok(Some(match name {
            UID => uid.to_string().into_bytes(),
            INTERNALDATE => iso_date(summary.internal_date, 0).into_bytes(),
            FLAGS => {
                let listing = self.listing(&fs)?;
                if listing.data.uidvalidity != uidvalidity {
                    return Err(FsError::Stale);
                }
                let flags = self.folder_flags(&fs, &listing)?;
                flags.of(uid).ok_or(FsError::NotFound)?.as_bytes().to_vec()
            }
            _ => return Ok(None),
        }))
    }
}
