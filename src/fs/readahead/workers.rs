//! The background workers that fetch ahead, and the jobs they take.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use super::MetaAhead;
use crate::sync::lock;

/// Work for the background workers.
pub enum Background {
    Content(ReadAhead),
    Meta(MetaAhead),
}

/// A window of a file to fetch in the background.
#[derive(Clone, Copy, Debug)]
pub struct ReadAhead {
    pub folder: u32,
    pub uidvalidity: u32,
    pub uid: u32,
    pub file: u32,
    pub from: u64,
    pub to: u64,
}

/// Threads that take [`Background`] jobs from one queue.
pub struct Workers {
    tx: Mutex<Sender<Background>>,
}

impl Workers {
    /// Start `n` (at least one) threads running `run` on each job; a thread ends when `run`
    /// returns false (its owner is gone) or the [`Workers`] are dropped.
    pub fn start(n: usize, run: impl Fn(Background) -> bool + Send + Sync + 'static) -> Workers {
        let (tx, rx) = channel::<Background>();
        let rx = Arc::new(Mutex::new(rx));
        let run = Arc::new(run);
        for _ in 0..n.max(1) {
            let (rx, run) = (rx.clone(), run.clone());
            std::thread::spawn(move || loop {
                let job = match lock(&rx).recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                if !run(job) {
                    return;
                }
            });
        }
        Workers { tx: Mutex::new(tx) }
    }

    /// Queue `job`; gives it back if the workers are gone.
    pub fn queue(&self, job: Background) -> Result<(), Background> {
        lock(&self.tx).send(job).map_err(|e| e.0)
    }
}
