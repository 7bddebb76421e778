//! Finishing many verdicts at once: the signatures that `verify_deferred` left pending are
//! authenticated together (`authenticate::Authenticator`, which batches the ones whose payer
//! key is cached), then each verdict is finished exactly as `verify` would finish it.

use super::verify::{finish, PendingSignature, Verdict};
use crate::authenticate::{Authenticator, SigItem};
use crate::batch;

/// Fewer pending signatures than this per thread are not worth a thread of their own.
const MIN_PER_THREAD: usize = 256;

/// Authenticates the pending signatures of `staged` and finishes their verdicts, in order.
/// `threads` as in `batch::map`; each thread's share is one batch.
pub fn finish_all(staged: Vec<(Verdict, Option<PendingSignature>)>, auth: &Authenticator, threads: Option<usize>) -> Vec<Verdict> {
    let pending: Vec<SigItem> = staged.iter().filter_map(|(_, p)| p.map(|p| p.item)).collect();
    let workers = threads.unwrap_or_else(rayon::current_num_threads).clamp(1, batch::MAX_THREADS);
    let per = pending.len().div_ceil(workers).max(MIN_PER_THREAD);
    let chunks: Vec<&[SigItem]> = pending.chunks(per).collect();
    let results = batch::map(&chunks, threads, |c| auth.authenticate(c));
    let mut results = results.into_iter().flatten();
    staged
        .into_iter()
        .map(|(mut v, p)| {
            if let Some(p) = p {
                finish(&mut v, &p, results.next().expect("one result per pending signature"));
            }
            v
        })
        .collect()
}
