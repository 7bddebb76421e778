//! Running one function over a batch on a chosen number of threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

/// Upper bound on `threads`, so a typo cannot spawn thousands of OS threads.
pub const MAX_THREADS: usize = 256;

/// Below this many items per task, splitting costs more than it saves.
const MIN_ITEMS_PER_TASK: usize = 8;

fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    // Building a pool costs a thread spawn per worker; pools are kept per size and reused.
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = pools.get(&threads) {
        return Some(p.clone());
    }
    let p = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("x402-verify-{i}")).build().ok()?);
    pools.insert(threads, p.clone());
    Some(p)
}

/// Maps `f` over `items`, keeping order. `threads`: `None` uses every core, `Some(1)` runs on
/// the calling thread, `Some(n)` caps the work at n worker threads.
pub fn map<T: Sync, R: Send>(items: &[T], threads: Option<usize>, f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    let threads = threads.map(|t| t.clamp(1, MAX_THREADS));
    if threads == Some(1) || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let run = || items.par_iter().with_min_len(MIN_ITEMS_PER_TASK).map(&f).collect();
    match threads {
        None => run(),
        Some(n) => match pool(n) {
            Some(p) => p.install(run),
            // The OS refused threads: do the work here rather than fail the batch.
            None => items.iter().map(&f).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_is_kept_on_any_thread_count() {
        let items: Vec<u32> = (0..1000).collect();
        for t in [None, Some(1), Some(2), Some(3)] {
            assert_eq!(super::map(&items, t, |x| x * 2), items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }
}
