//! Work spread over a few threads, taken in order: the first items start first (a reader's
//! next bytes, the oldest commands), and no worker waits for the others between items.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Run `job` on each of `items`, on up to `workers` threads; results in item order. The first
/// error (in time) is returned and the workers stop at their next item; a worker that panics
/// counts as the error `panicked()`.
pub fn in_order<T, R, E>(
    items: &[T],
    workers: usize,
    job: impl Fn(&T) -> Result<R, E> + Sync,
    panicked: impl Fn() -> E,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let workers = workers.min(items.len());
    if workers <= 1 {
        return items.iter().map(job).collect();
    }
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<E>> = Mutex::new(None);
    let fail = |e: E| {
        crate::sync::lock(&failure).get_or_insert(e);
        // Let the other workers stop at their next item.
        next.store(items.len(), Ordering::Relaxed);
    };
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        match job(item) {
                            Ok(r) => done.push((i, r)),
                            Err(e) => {
                                fail(e);
                                break;
                            }
                        }
                    }
                    done
                })
            })
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for h in handles {
            match h.join() {
                Ok(d) => all.extend(d),
                Err(_) => fail(panicked()),
            }
        }
        all
    });
    if let Some(e) = crate::sync::into_inner(failure) {
        return Err(e);
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn results_in_item_order() {
        let items: Vec<u32> = (0..50).collect();
        for workers in [0, 1, 3, 8, 100] {
            let got = in_order(&items, workers, |&x| Ok::<_, ()>(x * 2), || ()).unwrap();
            assert_eq!(got, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn an_error_stops_the_rest() {
        let items: Vec<u32> = (0..1000).collect();
        let ran = AtomicUsize::new(0);
        let got = in_order(
            &items,
            4,
            |&x| {
                ran.fetch_add(1, Ordering::Relaxed);
                if x == 10 {
                    Err(format!("item {x}"))
                } else {
                    Ok(x)
                }
            },
            || "panicked".to_string(),
        );
        assert_eq!(got, Err("item 10".to_string()));
        assert!(ran.load(Ordering::Relaxed) < 1000, "workers stopped early");
    }

    #[test]
    fn a_panic_is_an_error() {
        let items = [1, 2, 3];
        let got = in_order(
            &items,
            3,
            |&x| {
                if x == 2 {
                    panic!("boom");
                }
                Ok(x)
            },
            || "worker panicked",
        );
        assert_eq!(got, Err("worker panicked"));
    }
}
