//! A scriptable TLS fake IMAP server for [`hostile`](super::hostile)'s tests: a greeting, then
//! a handler per command; literals (synchronizing or not) and AUTHENTICATE continuations are
//! read, IDLE waits for DONE, and every command is recorded.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fake::{CERT, KEY};
use super::{Security, ServerConfig};
use crate::secret::Secret;

/// What the server answers to one command.
pub(super) enum Reply {
    Now(Vec<u8>),
    /// Sent one byte at a time, this far apart.
    Drip(Vec<u8>, Duration),
}

/// (tag, command bytes after the tag, literals inline) → reply.
type Handler = dyn Fn(&str, &[u8]) -> Reply + Send + Sync;

pub(super) struct Server {
    port: u16,
    /// Every command received (after the tag), literals inline as `{n}\r\n<bytes>`.
    commands: Arc<Mutex<Vec<Vec<u8>>>>,
    _ca: tempfile::NamedTempFile,
    ca_path: PathBuf,
}

impl Server {
    pub(super) fn commands(&self) -> Vec<Vec<u8>> {
        self.commands.lock().unwrap().clone()
    }

    pub(super) fn sent(&self, prefix: &str) -> bool {
        self.commands()
            .iter()
            .any(|c| c.to_ascii_uppercase().starts_with(prefix.as_bytes()))
    }

    pub(super) fn cfg(&self, password: &str) -> ServerConfig {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "u".into(),
            password: Secret::new(password.into()),
            oauth2: None,
            security: Security::ImplicitTls,
            ca_file: Some(self.ca_path.clone()),
            insecure: false,
            timeout: Duration::from_millis(500),
            connections: 2,
        }
    }
}

fn send<S: Write>(s: &mut S, r: &Reply) -> bool {
    match r {
        Reply::Now(b) => s.write_all(b).is_ok(),
        Reply::Drip(b, gap) => {
            for byte in b {
                if s.write_all(&[*byte]).is_err() {
                    return false;
                }
                std::thread::sleep(*gap);
            }
            true
        }
    }
}

/// Start a server: `greeting` on connect, then `handler` for each command. Answers CAPABILITY
/// with `caps` and LOGOUT itself unless the handler is asked first (it is, for everything).
pub(super) fn start(
    greeting: Reply,
    handler: impl Fn(&str, &[u8]) -> Reply + Send + Sync + 'static,
) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let commands: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let id = native_tls::Identity::from_pkcs8(CERT.as_bytes(), KEY.as_bytes()).unwrap();
    let acceptor = Arc::new(native_tls::TlsAcceptor::new(id).unwrap());
    let handler: Arc<Handler> = Arc::new(handler);
    let greeting = Arc::new(greeting);
    let cmds = commands.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let (acceptor, handler, greeting, cmds) = (
                acceptor.clone(),
                handler.clone(),
                greeting.clone(),
                cmds.clone(),
            );
            std::thread::spawn(move || {
                let Ok(mut s) = acceptor.accept(s) else {
                    return;
                };
                if !send(&mut s, &greeting) {
                    return;
                }
                while let Some((tag, cmd)) = read_command(&mut s) {
                    cmds.lock().unwrap().push(cmd.clone());
                    if !send(&mut s, &handler(&tag, &cmd)) {
                        return;
                    }
                    if starts(&cmd, "IDLE") {
                        // Wait for DONE, then end the IDLE.
                        let Some(done) = read_line(&mut s) else {
                            return;
                        };
                        cmds.lock().unwrap().push(done[..done.len() - 2].to_vec());
                        let _ = s.write_all(format!("{tag} OK idle done\r\n").as_bytes());
                    }
                }
            });
        }
    });
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(CERT.as_bytes()).unwrap();
    let ca_path = ca.path().to_path_buf();
    Server {
        port,
        commands,
        _ca: ca,
        ca_path,
    }
}

fn read_line<S: Read>(s: &mut S) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        if s.read(&mut b).ok()? != 1 {
            return None;
        }
        line.push(b[0]);
    }
    Some(line)
}

/// One command with its literals (answering `+` to synchronizing ones), and for AUTHENTICATE
/// without an initial response, the client's answer to `+` appended after a space.
fn read_command<S: Read + Write>(s: &mut S) -> Option<(String, Vec<u8>)> {
    let mut all = Vec::new();
    loop {
        let line = read_line(s)?;
        all.extend_from_slice(&line);
        let Some(n) = super::wire::literal_len(&line) else {
            break;
        };
        if !line.ends_with(b"+}\r\n") {
            s.write_all(b"+ go ahead\r\n").ok()?;
        }
        let mut lit = vec![0u8; n as usize];
        s.read_exact(&mut lit).ok()?;
        all.extend_from_slice(&lit);
    }
    all.truncate(all.len() - 2);
    let sp = all.iter().position(|&b| b == b' ')?;
    let tag = String::from_utf8_lossy(&all[..sp]).into_owned();
    let mut cmd = all[sp + 1..].to_vec();
    if cmd.eq_ignore_ascii_case(b"AUTHENTICATE PLAIN") {
        s.write_all(b"+ \r\n").ok()?;
        let answer = read_line(s)?;
        cmd.push(b' ');
        cmd.extend_from_slice(&answer[..answer.len() - 2]);
    }
    Some((tag, cmd))
}

pub(super) fn ok(tag: &str, untagged: &[u8]) -> Reply {
    let mut v = untagged.to_vec();
    v.extend_from_slice(format!("{tag} OK done\r\n").as_bytes());
    Reply::Now(v)
}

pub(super) fn starts(cmd: &[u8], p: &str) -> bool {
    cmd.to_ascii_uppercase().starts_with(p.as_bytes())
}

/// The server's answer to CAPABILITY (asked again after login).
pub(super) fn caps_reply(tag: &str, caps: &str) -> Reply {
    ok(tag, format!("* CAPABILITY IMAP4rev1 {caps}\r\n").as_bytes())
}

pub(super) fn greet(caps: &str) -> Reply {
    Reply::Now(format!("* OK [CAPABILITY IMAP4rev1 {caps}] hostile ready\r\n").into_bytes())
}
