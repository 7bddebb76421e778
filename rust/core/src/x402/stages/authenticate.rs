//! Stage 3, authenticate: the prepared signatures of a batch, all at once. With a payer-key
//! cache (`crate::authenticate::Authenticator`) the ones whose signer is known are checked
//! together; without, each is recovered. Either way each item gets what recovery would give.

use std::sync::Arc;

use alloy_primitives::Address;

use super::{Context, Item, Stage};
use crate::authenticate::{Authenticator, SigItem};
use crate::batch;
use crate::error::Result;

/// Fewer pending signatures than this per thread are not worth a thread of their own.
const MIN_PER_THREAD: usize = 256;

/// The authenticate stage.
#[derive(Clone, Debug)]
pub struct Authenticate {
    auth: Option<Arc<Authenticator>>,
}

impl Authenticate {
    /// Per-item recovery, no cache.
    pub fn recovery() -> Self {
        Authenticate { auth: None }
    }

    /// Through `auth` (its key cache and counters, shared with whoever else holds it).
    pub fn with(auth: Arc<Authenticator>) -> Self {
        Authenticate { auth: Some(auth) }
    }
}

/// Completes an item with what authenticating its signature gave.
fn conclude(item: &mut Item, recovered: Result<Address>) {
    let Some(p) = item.prepared.as_mut() else { return };
    match recovered {
        Ok(signer) if signer == p.claimed => {
            p.payer = signer;
            item.verdict.payer = Some(signer);
            item.authenticated = true;
        }
        Ok(signer) => {
            let message = format!("the signature recovers to {signer}, not the payer {}", p.claimed);
            item.verdict.fail(p.code, message);
        }
        Err(e) => item.verdict.fail(p.code, format!("{}: {}", e.code, e.message)),
    }
}

impl Stage for Authenticate {
    fn name(&self) -> &'static str {
        "authenticate"
    }

    fn run(&self, items: &mut [Item], cx: &Context) {
        let picked: Vec<usize> = (0..items.len()).filter(|&i| items[i].is_live() && !items[i].authenticated).collect();
        let sigs: Vec<SigItem> = picked.iter().filter_map(|&i| items[i].prepared.map(|p| p.sig_item())).collect();
        let results: Vec<Result<Address>> = match &self.auth {
            Some(auth) => {
                let workers = cx.threads.unwrap_or_else(rayon::current_num_threads).clamp(1, batch::MAX_THREADS);
                let per = sigs.len().div_ceil(workers).max(MIN_PER_THREAD);
                let chunks: Vec<&[SigItem]> = sigs.chunks(per).collect();
                batch::map(&chunks, cx.threads, |c| auth.authenticate(c)).into_iter().flatten().collect()
            }
            None => batch::map(&sigs, cx.threads, |s| s.signature.recover_address_from_prehash(&s.digest)),
        };
        for (i, r) in picked.into_iter().zip(results) {
            conclude(&mut items[i], r);
        }
    }
}
