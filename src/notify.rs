//! systemd readiness notification (sd_notify's protocol, no library needed): one datagram such as
//! `READY=1` to the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket).

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;

/// Where to notify, taken out of the environment so that commands we run (the password
/// command) do not notify in our name. Call while single-threaded.
pub fn take_from_env() -> Option<OsString> {
    let socket = std::env::var_os("NOTIFY_SOCKET")?;
    // SAFETY (of the precondition): no other thread reads the environment yet.
    std::env::remove_var("NOTIFY_SOCKET");
    Some(socket)
}

/// Send `state` (newline-separated `KEY=VALUE` lines) to `socket`.
pub fn notify(socket: &OsString, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}

/// Notify if there is a socket; a failure is logged, never fatal.
pub fn tell(socket: Option<&OsString>, state: &str) {
    if let Some(socket) = socket {
        if let Err(e) = notify(socket, state) {
            log::warn!("NOTIFY_SOCKET: cannot notify {state:?}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify(&path.clone().into_os_string(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("imapfs-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify(&format!("@{name}").into(), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(notify(&dir.path().join("none").into_os_string(), "READY=1").is_err());
    }
}
