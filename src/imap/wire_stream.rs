//! A command whose last argument is a literal streamed from a reader in bounded chunks (APPEND
//! of a spooled message): never held in memory whole. With LITERAL+ the literal follows the
//! command line at once; otherwise after the server's `+`.

use std::io::Read;

use super::wire::{Frame, Limits, Status, Tally, Transport, Wire, WireError};

/// Bytes read from the source and written per step.
const CHUNK: usize = 64 * 1024;

impl<T: Transport> Wire<T> {
    /// Send `tag head{size}` and the `size` bytes of `src`, then read to the tagged status.
    /// `sent` turns true once the first literal byte may have reached the server (a cut after
    /// it leaves unknown whether the command was done).
    pub fn run_streamed(
        &mut self,
        head: &[u8],
        src: &mut dyn Read,
        size: u64,
        lim: &Limits,
        on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
        sent: &mut bool,
    ) -> Result<(Status, String), WireError> {
        let tag = self.new_tag();
        let plus = if self.literal_plus { "+" } else { "" };
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(head);
        line.extend_from_slice(format!("{{{size}{plus}}}\r\n").as_bytes());
        let mut tally = Tally::default();
        if self.literal_plus {
            *sent = true;
            self.io.write_all(&line)?;
        } else {
            self.send(&line)?;
            self.io.clock().begin_default();
            if let Some(refused) = self.await_continue(&tag, lim, &mut tally, on_untagged)? {
                return Ok(refused);
            }
            *sent = true;
        }
        let mut buf = vec![0u8; CHUNK];
        let mut left = size;
        while left > 0 {
            let want = (left.min(CHUNK as u64)) as usize;
            let n = src.read(&mut buf[..want])?;
            if n == 0 {
                // The literal announced cannot be completed: the connection must go.
                return Err(WireError::Protocol(
                    "the spooled message got shorter".into(),
                ));
            }
            self.io.write_all(&buf[..n])?;
            left -= n as u64;
        }
        self.send(b"\r\n")?;
        self.io.clock().begin_default();
        loop {
            match self.read_frame(lim, &mut tally)? {
                Frame::Untagged(d) => on_untagged(d)?,
                Frame::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => return Ok((status, text)),
                Frame::Tagged { tag: t, .. } => {
                    return Err(WireError::Protocol(format!(
                        "answer for unknown tag {t:.20}"
                    )))
                }
                Frame::Continue(_) => {
                    return Err(WireError::Protocol(
                        "unexpected continuation request".into(),
                    ))
                }
            }
        }
    }
}
