//! A bound on the content pieces being fetched and decoded at once, over all reads and
//! read-ahead: each holds its encoded response, the decoded bytes and their copies in the
//! cache for a moment (about 4 MiB for a 1 MiB piece), so this bound, not the number of
//! threads asking, decides how far memory goes beyond the cache.

use std::sync::{Condvar, Mutex};

pub struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

/// One piece's permission to fetch; given back on drop.
pub struct Permit<'a>(&'a Permits);

impl Permits {
    pub fn new(n: usize) -> Permits {
        Permits {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    pub fn acquire(&self) -> Permit<'_> {
        let mut free = crate::sync::lock(&self.free);
        while *free == 0 {
            free = crate::sync::wait(&self.cv, free);
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *crate::sync::lock(&self.0.free) += 1;
        self.0.cv.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_more_than_n_at_once() {
        let permits = Permits::new(3);
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let _p = permits.acquire();
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert_eq!(*permits.free.lock().unwrap(), 3, "all given back");
    }
}
