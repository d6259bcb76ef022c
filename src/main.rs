//! imapfs: mount an IMAP account read-only. See README.md.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use imapfs::cli::{parse_url, Args};
use imapfs::fs::{FsOptions, MailFs};
use imapfs::fuse::FuseAdapter;
use imapfs::imap::{ImapStore, ServerConfig};
use imapfs::mount::{self, Daemon};
use imapfs::password;

fn main() -> ExitCode {
    // First, while single-threaded: take the password out of the environment.
    let env_password = password::take_from_env();
    let args = Args::parse();
    init_logging(args.debug);
    match run(args, env_password) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("imapfs: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: bool) {
    let default = if debug { "imapfs=debug" } else { "imapfs=warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|buf, record| {
            writeln!(
                buf,
                "imapfs {} {}: {}",
                record.level(),
                record.target(),
                record.args()
            )
        })
        .init();
}

fn run(args: Args, env_password: Option<imapfs::secret::Secret>) -> Result<(), String> {
    let url = parse_url(&args.url)?;
    mount::check_mountpoint(&args.mountpoint)?;
    let fsname = format!("imapfs:{}@{}", url.user, url.host);
    let config = mount::config(&args.options, &fsname)?;
    if args.insecure {
        log::warn!("--insecure: the server's certificate is not verified");
        eprintln!("imapfs: warning: --insecure: the server's certificate is not verified");
    }
    let password = password::obtain(
        env_password,
        args.password_command.as_deref(),
        args.password_file.as_deref(),
        &format!("Password for {}@{}: ", url.user, url.host),
    )?;

    let daemon = if args.foreground {
        Daemon::Foreground
    } else {
        mount::background()?
    };
    mount_and_serve(&args, url, password, config, daemon)
}

fn mount_and_serve(
    args: &Args,
    url: imapfs::cli::ServerUrl,
    password: imapfs::secret::Secret,
    config: fuser::Config,
    daemon: Daemon,
) -> Result<(), String> {
    let server = ServerConfig {
        host: url.host,
        port: url.port,
        user: url.user,
        password,
        security: url.security,
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        timeout: Duration::from_secs(args.timeout),
        connections: args.connections as usize,
    };
    // Signals are blocked before any other thread starts, so only the waiter sees them.
    let (unmount_tx, unmount_rx) = std::sync::mpsc::channel::<fuser::SessionUnmounter>();
    mount::handle_signals(move |sig| {
        log::info!("signal {sig}: unmounting");
        match unmount_rx.recv_timeout(Duration::from_secs(1)) {
            Ok(mut unmounter) => {
                if let Err(e) = unmounter.unmount() {
                    log::error!("unmount failed: {e}");
                    std::process::exit(1);
                }
            }
            Err(_) => std::process::exit(1),
        }
    });

    let store = match ImapStore::connect(server) {
        Ok(s) => s,
        Err(e) => {
            let msg = e.to_string();
            daemon.report(Err(&msg));
            return Err(msg);
        }
    };
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let core = MailFs::new(
        Arc::new(store),
        FsOptions {
            poll_interval: Duration::from_secs(args.poll_interval),
            cache_size: args.cache_size,
            uid,
            gid,
            parallel_fetches: args.connections as usize,
        },
    );
    let adapter = FuseAdapter::new(Arc::new(core));
    let mut session = match fuser::Session::new(adapter, &args.mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("cannot mount on {}: {e}", args.mountpoint.display());
            daemon.report(Err(&msg));
            return Err(msg);
        }
    };
    let _ = unmount_tx.send(session.unmount_callable());
    log::info!("mounted on {}", args.mountpoint.display());
    daemon.report(Ok(()));
    session
        .run()
        .map_err(|e| format!("FUSE session ended with an error: {e}"))
}
