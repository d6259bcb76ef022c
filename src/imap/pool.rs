//! A bounded pool of logged-in connections. Checkout prefers an idle connection that already
//! has the wanted folder EXAMINEd, then any idle one, then opens a new one under the limit, and
//! otherwise waits (up to the timeout). Dead connections are dropped on return, never reused.
//! A `[LIMIT]` answer to a login lowers the pool's size for good; a connection closed before its
//! greeting while others work lowers it until the pool starts over from no connection.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::caps::Caps;
use super::connect::{self, FailKind};
use super::session::Conn;
use super::ServerConfig;
use crate::store::StoreError;

/// How long not to try new connections after one failed to open while others live.
const NO_NEW_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Idle connections unused for this long are closed instead of reused: servers log out idle
/// clients (Dovecot after 30 minutes), and a NAT may forget them sooner.
const MAX_IDLE: Duration = Duration::from_secs(5 * 60);

struct State {
    idle: Vec<Conn>,
    /// Connections alive: idle plus checked out plus being opened.
    open: usize,
    /// Current most connections (lowered on `[LIMIT]`).
    limit: usize,
    limit_logged: bool,
    /// The limit was lowered on connections closed without a word ([`FailKind::Closed`]),
    /// which a server going down looks like too: the configured size comes back once the
    /// pool starts over from no connection.
    limit_guessed: bool,
    /// After a failed connect while other connections live, new ones are not tried before this:
    /// requests wait for the live ones instead of failing.
    no_new_until: Option<Instant>,
    /// Requests waiting for a connection, oldest first: served in that order, so the pieces of
    /// a sequential read (asked for in order) arrive in order, not the latest first.
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

pub struct Pool {
    cfg: ServerConfig,
    tls: native_tls::TlsConnector,
    state: Mutex<State>,
    cv: Condvar,
    next_id: AtomicU64,
    /// What the server offers, as the first connection learnt after login.
    caps: OnceLock<Caps>,
    /// When the pool was made (the first login began).
    created: Instant,
}

/// A checked-out connection; returned to the pool on drop (or dropped if dead).
pub struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Deref for Lease<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("lease holds a connection until dropped")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("lease holds a connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.give_back(c);
        }
    }
}

impl Pool {
    /// Open and log in the first connection (errors as [`connect::ConnectFailure`]).
    pub fn connect(cfg: ServerConfig) -> Result<Pool, connect::ConnectFailure> {
        let limit = cfg.connections.max(1);
        let tls = connect::connector(&cfg)?;
        let pool = Pool {
            cfg,
            tls,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                limit,
                limit_logged: false,
                limit_guessed: false,
                no_new_until: None,
                waiting: VecDeque::new(),
                next_ticket: 0,
            }),
            cv: Condvar::new(),
            next_id: AtomicU64::new(1),
            caps: OnceLock::new(),
            created: Instant::now(),
        };
        let first = pool.open_conn()?;
        let _ = pool.caps.set(first.caps.clone());
        let mut st = pool.lock();
        st.open = 1;
        st.idle.push(first);
        drop(st);
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Open and log in one connection within three timeouts (or by `until`, if sooner).
    fn open_conn_by(&self, until: Option<Instant>) -> Result<Conn, connect::ConnectFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut hard = Instant::now() + 3 * self.cfg.timeout;
        if let Some(u) = until {
            hard = hard.min(u);
        }
        let opened = connect::open(&self.cfg, &self.tls, hard)?;
        log::debug!(
            "[imap {id}] connected to {}:{} as {}",
            self.cfg.host,
            self.cfg.port,
            self.cfg.user
        );
        Ok(Conn::new(id, opened))
    }

    fn open_conn(&self) -> Result<Conn, connect::ConnectFailure> {
        self.open_conn_by(None)
    }

    /// A connection outside the pool (for IDLE), not counted against its size.
    pub fn open_dedicated(&self) -> Result<Conn, StoreError> {
        self.open_conn().map_err(|f| match f.kind {
            FailKind::Auth => StoreError::Auth(f.msg),
            _ => StoreError::Connection(f.msg),
        })
    }

    /// What the server offers (after login).
    pub fn caps(&self) -> &Caps {
        static NONE: OnceLock<Caps> = OnceLock::new();
        self.caps
            .get()
            .unwrap_or_else(|| NONE.get_or_init(Caps::default))
    }

    /// The configured timeout: also the time budget of one operation with its retries.
    pub fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    /// The effective most connections (after any `[LIMIT]`).
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// A connection, preferring one that has `folder` EXAMINEd.
    pub fn checkout(&self, folder: Option<&str>) -> Result<Lease<'_>, StoreError> {
        let ticket = {
            let mut st = self.lock();
            let t = st.next_ticket;
            st.next_ticket += 1;
            st.waiting.push_back(t);
            t
        };
        let got = self.checkout_in_turn(folder, ticket);
        let mut st = self.lock();
        st.waiting.retain(|&t| t != ticket);
        drop(st);
        self.cv.notify_all();
        got
    }

    /// The body of [`Pool::checkout`]: waits until `ticket` is the oldest request.
    fn checkout_in_turn(&self, folder: Option<&str>, ticket: u64) -> Result<Lease<'_>, StoreError> {
        let deadline = Instant::now() + self.cfg.timeout;
        let mut st = self.lock();
        loop {
            // Retire connections idle for too long.
            let now = Instant::now();
            let mut stale = Vec::new();
            let mut k = 0;
            while k < st.idle.len() {
                if now.duration_since(st.idle[k].last_used) > MAX_IDLE {
                    stale.push(st.idle.swap_remove(k));
                } else {
                    k += 1;
                }
            }
            if !stale.is_empty() {
                st.open -= stale.len();
                drop(st);
                for c in stale {
                    log::debug!("[imap {}] closing idle connection", c.id);
                    c.logout();
                }
                st = self.lock();
                continue;
            }

            let my_turn = st.waiting.front() == Some(&ticket);
            if let (true, Some(f)) = (my_turn, folder) {
                if let Some(k) = st
                    .idle
                    .iter()
                    .position(|c| c.examined.as_ref().is_some_and(|(n, _)| n == f))
                {
                    let c = st.idle.swap_remove(k);
                    return Ok(self.lease(c));
                }
            }
            if my_turn {
                if let Some(c) = st.idle.pop() {
                    return Ok(self.lease(c));
                }
            }
            let may_open = st.open == 0 || st.no_new_until.is_none_or(|t| Instant::now() >= t);
            if my_turn && st.open < st.limit && may_open {
                let starting_over = st.open == 0;
                st.open += 1;
                // Let the next request go on while this connection is being opened (several
                // open at once), and keep this one first in line should the open fail.
                st.waiting.pop_front();
                drop(st);
                self.cv.notify_all();
                let opened = self.open_conn();
                st = self.lock();
                if opened.is_err() {
                    st.waiting.push_front(ticket);
                }
                match opened {
                    Ok(c) => {
                        if starting_over && st.limit_guessed {
                            st.limit = self.cfg.connections.max(1);
                            st.limit_guessed = false;
                            st.limit_logged = false;
                        }
                        return Ok(self.lease(c));
                    }
                    Err(f) => {
                        st.open -= 1;
                        self.cv.notify_all();
                        match f.kind {
                            FailKind::Limit | FailKind::Closed if st.open > 0 => {
                                lower_limit(&mut st, &f);
                                continue;
                            }
                            FailKind::Auth => return Err(StoreError::Auth(f.msg)),
                            // Others still work: wait for one of them rather than fail.
                            _ if st.open > 0 => {
                                log::warn!(
                                    "cannot open another IMAP connection ({}); \
                                     using the {} open",
                                    f.msg,
                                    st.open
                                );
                                st.no_new_until = Some(Instant::now() + NO_NEW_AFTER_FAILURE);
                            }
                            _ => return Err(StoreError::Connection(f.msg)),
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Connection(format!(
                    "all {} IMAP connections stayed busy for {:.1}s",
                    st.limit,
                    self.cfg.timeout.as_secs_f64()
                )));
            }
            // Wake up by the deadline, or when new connections may be tried again.
            let wake = match st.no_new_until {
                Some(t) if t > now => t.min(deadline),
                _ => deadline,
            };
            st = crate::sync::wait_timeout(&self.cv, st, wake - now);
        }
    }

    /// Open the connections not open yet, all at once, so that the first big read does not
    /// wait for their logins. A failure only means fewer connections for now (a `[LIMIT]`
    /// lowers the pool's size as in `checkout`).
    pub fn fill(&self) {
        // The mount waits for this: together with the first login, about three timeouts.
        let now = Instant::now();
        let until = (self.created + 3 * self.cfg.timeout).max(now + self.cfg.timeout);
        std::thread::scope(|scope| loop {
            let mut st = self.lock();
            let blocked = st.no_new_until.is_some_and(|t| Instant::now() < t);
            if st.open >= st.limit || blocked {
                return;
            }
            st.open += 1;
            drop(st);
            scope.spawn(move || match self.open_conn_by(Some(until)) {
                Ok(c) => self.give_back(c),
                Err(f) => {
                    let mut st = self.lock();
                    st.open -= 1;
                    match f.kind {
                        FailKind::Limit | FailKind::Closed if st.open > 0 => {
                            lower_limit(&mut st, &f)
                        }
                        _ => log::debug!("cannot open another IMAP connection yet: {}", f.msg),
                    }
                    st.no_new_until = Some(Instant::now() + NO_NEW_AFTER_FAILURE);
                    drop(st);
                    self.cv.notify_all();
                }
            });
        });
    }

    fn lease(&self, c: Conn) -> Lease<'_> {
        Lease {
            pool: self,
            conn: Some(c),
        }
    }

    fn give_back(&self, c: Conn) {
        let mut st = self.lock();
        if c.dead {
            st.open -= 1;
            drop(st);
            log::debug!("[imap {}] dropping broken connection", c.id);
            drop(c);
        } else {
            st.idle.push(c);
            drop(st);
        }
        // All: the oldest waiter must be among those woken.
        self.cv.notify_all();
    }

    /// Close every idle connection (after a transient failure they are suspect too).
    pub fn flush_idle(&self) {
        let mut st = self.lock();
        let idle = std::mem::take(&mut st.idle);
        st.open -= idle.len();
        drop(st);
        self.cv.notify_all();
        drop(idle);
    }
}

/// After a `[LIMIT]` refusal (or a connection closed without a word while others work): use
/// at most the connections open now (logged once).
fn lower_limit(st: &mut State, f: &connect::ConnectFailure) {
    let msg = &f.msg;
    st.limit = st.open.max(1);
    st.limit_guessed |= f.kind == FailKind::Closed;
    if !st.limit_logged {
        st.limit_logged = true;
        log::warn!(
            "IMAP server refuses more connections ({msg}); using at most {}",
            st.limit
        );
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        for c in idle {
            c.logout();
        }
    }
}
