//! imapfs: mount an IMAP account read-only. See README.md.

use std::ffi::OsStr;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clap::Parser;

use fuser::INodeNo;
use imapfs::cli::{parse_url, Args};
use imapfs::fs::{FsOptions, Invalidation, MailFs};
use imapfs::fuse::FuseAdapter;
use imapfs::imap::{ImapStore, ServerConfig};
use imapfs::mount::{self, Daemon};
use imapfs::password;

/// How long one IDLE lasts before it is renewed (and retargeted to the folder in use).
const IDLE_CYCLE: Duration = Duration::from_secs(20);

/// How long after unmounting on a signal the process waits for running requests to end.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// A folder counts as in use (and is polled) this long after its last access.
const IN_USE: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    // First, while single-threaded: take the password out of the environment.
    let env_password = password::take_from_env();
    limit_malloc_arenas();
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

/// glibc gives every thread that allocates its own arena, and freed memory stays in them: with a
/// dozen FUSE and fetch threads the process would hold several times its cache size. Two
/// arenas keep the footprint near what is actually in use.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        // A fixed, low threshold: cache chunks (128 KiB) and response buffers are mapped and
        // unmapped on their own, so freed ones go back to the system. In glibc's heaps (which
        // also raise the threshold after the first free) the churn of evicted and new chunks
        // fragmented memory: peak RSS reading 1 GiB with a 64 MiB cache 104 -> 90 MiB.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
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
    let mut config = mount::config(&args.options, &fsname)?;
    if args.read_write {
        // Only --read-write lifts the kernel's read-only mount (`-o rw` does not).
        config
            .mount_options
            .retain(|o| *o != fuser::MountOption::RO);
        config.mount_options.push(fuser::MountOption::RW);
    }
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
    let unmounter: Arc<OnceLock<Mutex<fuser::SessionUnmounter>>> = Arc::new(OnceLock::new());
    let core_cell: Arc<OnceLock<Arc<MailFs>>> = Arc::new(OnceLock::new());
    let (to_unmount, to_refresh) = (unmounter.clone(), core_cell.clone());
    let mountpoint = args.mountpoint.clone();
    mount::handle_signals(
        move |sig| {
            log::info!("signal {sig}: unmounting");
            match to_unmount.get() {
                Some(u) => {
                    if let Err(e) = u.lock().unwrap_or_else(|e| e.into_inner()).unmount() {
                        // Busy: a process sits in the mount, perhaps in a request that waits
                        // on the server. Detach it anyway rather than leave a dead mount.
                        log::warn!("unmount failed ({e}); detaching the mount lazily");
                        if let Err(e) = mount::lazy_unmount(&mountpoint) {
                            log::error!("unmount failed: {e}");
                            std::process::exit(1);
                        }
                    }
                }
                None => std::process::exit(1),
            }
            // The session ends once its requests are answered; one still waiting on the server
            // must not keep the process alive.
            std::thread::sleep(EXIT_GRACE);
            log::warn!("requests still running {EXIT_GRACE:?} after unmounting: exiting");
            std::process::exit(0);
        },
        move || {
            // SIGUSR1: forget every listing's age and ask the server now.
            if let Some(core) = to_refresh.get() {
                core.expire_all();
                core.poll(Duration::MAX);
            }
        },
    );

    let store = match ImapStore::connect(server) {
        Ok(s) => s,
        Err(e) => {
            let msg = e.to_string();
            daemon.report(Err(&msg));
            return Err(msg);
        }
    };
    // The rest of the pool logs in now, all at once (one login's time), so the first reads
    // after mounting neither wait for logins nor compete with them.
    store.open_all();
    store.set_read_write(args.read_write);
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let core = Arc::new(MailFs::new(
        Arc::new(store),
        FsOptions {
            poll_interval: Duration::from_secs(args.poll_interval),
            cache_size: args.cache_size,
            uid,
            gid,
            parallel_fetches: args.connections as usize,
            max_message_infos: imapfs::fs::MAX_MESSAGE_INFOS,
        },
    ));
    core.set_read_write(args.read_write);
    if args.read_write {
        log::warn!("--read-write: changes made here reach the server");
    }
    let _ = core_cell.set(core.clone());
    core.start_readahead(args.connections as usize);
    let adapter = FuseAdapter::new(core.clone());
    let mut session = match fuser::Session::new(adapter, &args.mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("cannot mount on {}: {e}", args.mountpoint.display());
            daemon.report(Err(&msg));
            return Err(msg);
        }
    };
    let _ = unmounter.set(Mutex::new(session.unmount_callable()));
    start_invalidator(&core, session.notifier());
    start_poller(&core, Duration::from_secs(args.poll_interval));
    start_watcher(&core);
    log::info!("mounted on {}", args.mountpoint.display());
    daemon.report(Ok(()));
    session
        .run()
        .map_err(|e| format!("FUSE session ended with an error: {e}"))
}

/// Carry the core's invalidations to the kernel from a thread of their own (notifying from
/// inside a request handler can deadlock).
fn start_invalidator(core: &MailFs, notifier: fuser::Notifier) {
    let (tx, rx) = std::sync::mpsc::channel::<Invalidation>();
    core.set_invalidator(tx);
    std::thread::spawn(move || {
        for inv in rx {
            let result = match &inv {
                Invalidation::Entry { parent, name } => {
                    notifier.inval_entry(INodeNo(*parent), OsStr::new(name))
                }
                Invalidation::Inode(ino) => notifier.inval_inode(INodeNo(*ino), 0, 0),
            };
            // ENOENT only means the kernel had already forgotten it.
            if let Err(e) = result {
                log::debug!("invalidate {inv:?}: {e}");
            }
        }
    });
}

/// Let the server push changes to the folder in use (IMAP IDLE), re-issued every IDLE_CYCLE so
/// a switch to another folder is followed soon (and well before servers' 29-minute limit).
fn start_watcher(core: &Arc<MailFs>) {
    let core = Arc::downgrade(core);
    std::thread::spawn(move || loop {
        match core.upgrade() {
            Some(core) => {
                core.watch_once(IDLE_CYCLE);
            }
            None => return,
        }
    });
}

/// Keep folders in use fresh, so other clients' changes show up within the poll interval.
fn start_poller(core: &Arc<MailFs>, interval: Duration) {
    let core = Arc::downgrade(core);
    std::thread::spawn(move || loop {
        std::thread::sleep(interval);
        match core.upgrade() {
            Some(core) => core.poll(IN_USE),
            None => return,
        }
    });
}
