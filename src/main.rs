//! imapfs: mount an IMAP account read-only. See README.md.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clap::{CommandFactory, Parser};

use fuser::INodeNo;
use imapfs::cli::{parse_url, Args};
use imapfs::fs::{FsOptions, Invalidation, MailFs};
use imapfs::fuse::FuseAdapter;
use imapfs::imap::{ImapStore, ServerConfig};
use imapfs::mount::{self, Daemon};
use imapfs::token::TokenSource;
use imapfs::{autounmount, logging, mountopts, notify, password};

/// How long one IDLE lasts before it is renewed (and retargeted to the folder in use).
const IDLE_CYCLE: Duration = Duration::from_secs(20);

/// How long after unmounting on a signal the process waits for running requests to end.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// A folder counts as in use (and is polled) this long after its last access.
const IN_USE: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    // First, while single-threaded: take the password out of the environment.
    let env_password = password::take_from_env();
    let notify_socket = notify::take_from_env();
    limit_malloc_arenas();
    // `-o name=value` for every option (fstab, mount(8)); a wrong one is a usage error.
    let argv = match mountopts::translate(std::env::args_os().collect(), &Args::command()) {
        Ok(argv) => argv,
        Err(msg) => {
            eprintln!("imapfs: {msg}");
            return ExitCode::from(2);
        }
    };
    let args = Args::parse_from(argv);
    logging::init(args.debug);
    match run(args, env_password, notify_socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            if !logging::on_stderr() {
                log::error!("{msg}");
            }
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

fn run(
    args: Args,
    env_password: Option<imapfs::secret::Secret>,
    notify_socket: Option<OsString>,
) -> Result<(), String> {
    let url = parse_url(&args.url)?;
    let fsname = format!("imapfs:{}@{}", url.user, url.host);
    let mut plan = mountopts::config(&args.options, &fsname)?;
    mount::check_mountpoint(&args.mountpoint, plan.nonempty)?;
    if args.read_write {
        // Only --read-write lifts the kernel's read-only mount (`-o rw` does not).
        plan.config
            .mount_options
            .retain(|o| *o != fuser::MountOption::RO);
        plan.config.mount_options.push(fuser::MountOption::RW);
    }
    if let Some(file) = &args.log_file {
        logging::to_file(file)?;
    }
    if args.insecure {
        log::warn!("--insecure: the server's certificate is not verified");
        eprintln!("imapfs: warning: --insecure: the server's certificate is not verified");
    }
    // OAuth2: the token command runs once now, so that its failure shows before the mount.
    let oauth2 = (args.oauth2_token_command.clone()).map(|c| Arc::new(TokenSource::new(c)));
    if let Some(src) = &oauth2 {
        src.get()?;
    }
    let password = match &oauth2 {
        Some(_) => imapfs::secret::Secret::new(String::new()),
        None => password::obtain(
            env_password,
            args.password_command.as_deref(),
            args.password_file.as_deref(),
            &format!("Password for {}@{}: ", url.user, url.host),
        )?,
    };

    let daemon = if args.foreground {
        Daemon::Foreground
    } else {
        let syslog = args.log_file.is_none() && logging::syslog_available();
        if args.log_file.is_none() && !syslog {
            // No syslog (a container, a minimal system): a file in the user's state directory.
            logging::to_state_file();
        }
        let daemon = mount::background()?;
        if syslog {
            logging::to_syslog();
        }
        daemon
    };
    let auto_unmount = if plan.auto_unmount {
        match autounmount::spawn(&args.mountpoint) {
            Ok(watcher) => Some(watcher),
            Err(msg) => {
                daemon.report(Err(&msg));
                return Err(msg);
            }
        }
    } else {
        None
    };
    let serve = Serve {
        config: plan.config,
        daemon,
        notify_socket,
        auto_unmount,
    };
    mount_and_serve(&args, url, password, oauth2, serve)
}

/// How to mount and whom to tell.
struct Serve {
    config: fuser::Config,
    daemon: Daemon,
    notify_socket: Option<OsString>,
    auto_unmount: Option<autounmount::Watcher>,
}

fn mount_and_serve(
    args: &Args,
    url: imapfs::cli::ServerUrl,
    password: imapfs::secret::Secret,
    oauth2: Option<Arc<TokenSource>>,
    serve: Serve,
) -> Result<(), String> {
    let Serve {
        config,
        daemon,
        notify_socket,
        mut auto_unmount,
    } = serve;
    let server = ServerConfig {
        host: url.host,
        port: url.port,
        user: url.user,
        password,
        oauth2,
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
    let stop_notify = notify_socket.clone();
    mount::handle_signals(
        move |sig| {
            log::info!("signal {sig}: unmounting");
            notify::tell(stop_notify.as_ref(), "STOPPING=1");
            match to_unmount.get() {
                Some(u) => {
                    if let Err(e) = imapfs::sync::lock(u).unmount() {
                        // Busy: a process sits in the mount (a file held open, or a request
                        // waiting on the server). Detach it anyway rather than leave a dead mount.
                        log::warn!(
                            "signal {sig}: {} is busy ({e}): detached it lazily; files still open there fail once imapfs exits",
                            mountpoint.display()
                        );
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
    if let Some(watcher) = &mut auto_unmount {
        watcher.mounted(&args.mountpoint);
    }
    let _ = unmounter.set(Mutex::new(session.unmount_callable()));
    start_invalidator(&core, session.notifier());
    start_poller(&core, Duration::from_secs(args.poll_interval));
    start_watcher(&core);
    log::info!("mounted on {}", args.mountpoint.display());
    daemon.report(Ok(()));
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    notify::tell(
        notify_socket.as_ref(),
        &format!(
            "READY=1\nMAINPID={pid}\nSTATUS=mounted on {}",
            args.mountpoint.display()
        ),
    );
    let result = session
        .run()
        .map_err(|e| format!("FUSE session ended with an error: {e}"));
    log::info!("unmounted {}", args.mountpoint.display());
    notify::tell(notify_socket.as_ref(), "STOPPING=1");
    result
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
