//! Running one function over a batch on a chosen number of threads.
//!
//! Every batch runs on one shared pool, sized to the machine's cores and built once: `threads`
//! caps how many tasks a batch spreads over, it never builds threads of its own. (A pool per
//! distinct `threads` value, kept for reuse, grew the process by thousands of OS threads when
//! callers varied it.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use rayon::prelude::*;

/// Upper bound on `threads`, so a typo is refused rather than silently capped.
pub const MAX_THREADS: usize = 256;

/// Below this many items per task, splitting costs more than it saves.
const MIN_ITEMS_PER_TASK: usize = 8;

/// The shared pool, or `None` when the OS refused its threads (batches then run inline).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| rayon::ThreadPoolBuilder::new().thread_name(|i| format!("x402-verify-{i}")).build().ok()).as_ref()
}

/// Threads in the shared pool (1 when it could not be built).
pub fn pool_threads() -> usize {
    pool().map_or(1, rayon::ThreadPool::current_num_threads)
}

/// Maps `f` over `items`, keeping order. `threads`: `None` uses every core, `Some(1)` runs on
/// the calling thread, `Some(n)` spreads the work over at most n tasks of the shared pool.
pub fn map<T: Sync, R: Send>(items: &[T], threads: Option<usize>, f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    let threads = threads.map(|t| t.clamp(1, MAX_THREADS));
    let Some(pool) = pool() else {
        // The OS refused threads: do the work here rather than fail the batch.
        return items.iter().map(f).collect();
    };
    let tasks = threads.unwrap_or(usize::MAX).min(pool.current_num_threads()).min(items.len().div_ceil(MIN_ITEMS_PER_TASK));
    if tasks <= 1 {
        return items.iter().map(f).collect();
    }
    if threads.is_none() || tasks == pool.current_num_threads() {
        return pool.install(|| items.par_iter().with_min_len(MIN_ITEMS_PER_TASK).map(&f).collect());
    }
    // Fewer tasks than the pool has threads: `tasks` workers take blocks of items from a shared
    // counter (so one slow block does not leave the others idle), then the blocks are put back
    // in order.
    let next = AtomicUsize::new(0);
    let block = (items.len() / (tasks * 8)).max(MIN_ITEMS_PER_TASK);
    let mut blocks: Vec<(usize, Vec<R>)> = pool.install(|| {
        (0..tasks)
            .into_par_iter()
            .with_max_len(1)
            .flat_map_iter(|_| {
                let mut done = Vec::new();
                loop {
                    let start = next.fetch_add(block, Ordering::Relaxed);
                    if start >= items.len() {
                        break done;
                    }
                    let end = (start + block).min(items.len());
                    done.push((start, items[start..end].iter().map(&f).collect()));
                }
            })
            .collect()
    });
    blocks.sort_unstable_by_key(|(start, _)| *start);
    blocks.into_iter().flat_map(|(_, out)| out).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    #[test]
    fn order_is_kept_on_any_thread_count() {
        for len in [0, 1, 7, 9, 100, 1000, 1003] {
            let items: Vec<u32> = (0..len).collect();
            for t in [None, Some(1), Some(2), Some(3), Some(64), Some(super::MAX_THREADS)] {
                assert_eq!(super::map(&items, t, |x| x * 2), items.iter().map(|x| x * 2).collect::<Vec<_>>(), "len {len}, threads {t:?}");
            }
        }
    }

    #[test]
    fn work_never_spreads_over_more_threads_than_asked() {
        let items: Vec<u32> = (0..4000).collect();
        for t in 1..=4 {
            let seen = Mutex::new(HashSet::new());
            super::map(&items, Some(t), |x| {
                seen.lock().unwrap().insert(std::thread::current().id());
                x + 1
            });
            let used = seen.into_inner().unwrap().len();
            assert!(used <= t, "threads={t} ran on {used} threads");
        }
    }
}
