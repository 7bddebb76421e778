//! The verifier as explicit stages with types between them:
//!
//! `read` (text -> `PaymentPayload`) -> `terms` (-> `Prepared`: digest, parsed signature,
//! claimed signer, replay key, token, payer, amount, expiry) -> then every `Stage` of the
//! `Pipeline`'s list over the whole batch: `authenticate` (a slice of prepared items: recovery,
//! or batch verification over cached payer keys), a chain stage (optional), `reserve` (a
//! `Reservation` record per item) -> the `Verdict`.
//!
//! A stage is added by adding it to the list (`Pipeline::with_stage`), never by editing the
//! pipeline: each sees every item, skips the ones already refused (`Item::is_live`), and may
//! refuse more.

pub mod authenticate;
pub mod read;
pub mod recall;
pub mod reserve;
pub mod terms;

use alloy_primitives::{Address, U256};

pub use authenticate::Authenticate;
pub use read::{read_payload, PayloadInput};
pub use recall::{Recall, RecallStats, Remember};
pub use reserve::{Outcome, Reservation, ReserveInMemory};

use super::config::VerifyConfig;
use super::payload::PaymentRequirements;
use super::replay::ReplayKey;
use super::verdict::{Scheme, Verdict};
use crate::authenticate::{Session, SigItem};
use crate::error::{Code, Error, Result};
use crate::primitives::Digest;
use crate::signature::Signature;
use terms::Clock;

/// A payment whose terms all passed: what authentication, chain reads and the reservation need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The payment flow.
    pub scheme: Scheme,
    /// The EIP-712 digest the payer signed.
    pub digest: Digest,
    /// The signature, parsed under the scheme's policy.
    pub signature: Signature,
    /// The signer the payment claims (`authorization.from`).
    pub claimed: Address,
    /// The canonical replay key (chain, contract, signer, nonce) and its deadline.
    pub replay: ReplayKey,
    /// The requirements' asset.
    pub token: Address,
    /// The payer: the claimed signer until authentication says otherwise.
    pub payer: Address,
    /// The signed amount (upto: the cap).
    pub amount: U256,
    /// validBefore / deadline, clamped to u64.
    pub expiry: u64,
    /// The clock of the verification and the deadline, for the session cache.
    pub session: Session,
    /// The terms that read the clock (checked again when a remembered verdict is reused).
    pub clock: Clock,
    /// The reason a bad signature is refused with (per scheme).
    pub code: Code,
}

impl Prepared {
    /// The signature to authenticate.
    pub fn sig_item(&self) -> SigItem {
        SigItem { digest: self.digest, signature: self.signature, claimed: self.claimed, session: Some(self.session) }
    }
}

/// One payment on its way through the stages.
#[derive(Clone, Debug)]
pub struct Item {
    /// The verdict so far.
    pub verdict: Verdict,
    /// Set while the payment passed every term check (kept for the later stages).
    pub prepared: Option<Prepared>,
    /// Whether a stage authenticated the signature.
    pub authenticated: bool,
    /// The caller's idempotency id: a retry bringing the same id is the same reservation.
    pub idempotency_id: Option<String>,
    /// The reservation the reserve stage made (or tried to make) for it.
    pub reservation: Option<Reservation>,
    /// What the `Remember` stage needs to keep this item's verdict (set when the item was not
    /// in the verdict cache and passed its terms).
    pub recall: Option<Box<recall::Pending>>,
}

impl Item {
    /// An item refused before it could be read.
    pub fn from_error(e: &Error) -> Self {
        Item::from_verdict(Verdict::from_error(e))
    }

    /// An item with a verdict from elsewhere (a response handed back for reservation).
    pub fn from_verdict(verdict: Verdict) -> Self {
        Item { verdict, prepared: None, authenticated: false, idempotency_id: None, reservation: None, recall: None }
    }

    /// Still valid and still carrying its prepared payment: later stages work on it.
    pub fn is_live(&self) -> bool {
        self.verdict.is_valid() && self.prepared.is_some()
    }
}

/// What every stage of one run shares.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    /// Unix seconds of the verification.
    pub now: u64,
    /// Most worker threads (as `batch::map`).
    pub threads: Option<usize>,
}

/// A step over the whole batch, after the terms.
pub trait Stage: Send + Sync {
    /// A name, for diagnostics.
    fn name(&self) -> &'static str;
    /// Works on `items` (skipping the ones not `is_live`, unless it says otherwise).
    fn run(&self, items: &mut [Item], cx: &Context);
}

/// The verifier: a configuration, the read and terms stages per item, then a list of stages.
pub struct Pipeline {
    cfg: VerifyConfig,
    stages: Vec<Box<dyn Stage>>,
    recall: Option<std::sync::Arc<Recall>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("stages", &self.stages.iter().map(|s| s.name()).collect::<Vec<_>>()).finish()
    }
}

impl Pipeline {
    /// A pipeline of read and terms only.
    pub fn new(cfg: VerifyConfig) -> Self {
        Pipeline { cfg, stages: Vec::new(), recall: None }
    }

    /// The same pipeline reading verdicts from `recall` before the read and terms stages (the
    /// `Remember` stage in the list is what fills it).
    pub fn with_recall(mut self, recall: std::sync::Arc<Recall>) -> Self {
        self.recall = Some(recall);
        self
    }

    /// The verdict cache, when there is one.
    pub fn recall(&self) -> Option<&Recall> {
        self.recall.as_deref()
    }

    /// The same pipeline with `stage` appended to its list.
    pub fn with_stage(mut self, stage: impl Stage + 'static) -> Self {
        self.stages.push(Box::new(stage));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &VerifyConfig {
        &self.cfg
    }

    /// The names of the stages after the terms, in order.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// The read and terms stages for one payment; with a verdict cache, a payment whose exact
    /// bytes were verified before under the same requirements takes its remembered verdict
    /// instead, with only the time terms checked again.
    pub fn prepare(&self, input: &PayloadInput<'_>, requirements: &Result<PaymentRequirements>, now: u64) -> Item {
        let (Some(recall), PayloadInput::Text(bytes), Ok(req)) = (&self.recall, input, requirements) else {
            return self.read_and_check(input, requirements, now);
        };
        let key = recall.key(bytes, req);
        if let Some(item) = recall.get(key, bytes, req, now, &self.cfg) {
            return item;
        }
        let mut item = self.read_and_check(input, requirements, now);
        if item.is_live() {
            item.recall = recall.pending(key, bytes, req);
        }
        item
    }

    fn read_and_check(&self, input: &PayloadInput<'_>, requirements: &Result<PaymentRequirements>, now: u64) -> Item {
        match read_payload(input, &self.cfg) {
            Ok(p) => {
                let (verdict, prepared) = terms::check_terms(&p, requirements, now, &self.cfg);
                Item { verdict, prepared, authenticated: false, idempotency_id: None, reservation: None, recall: None }
            }
            Err(e) => Item::from_error(&e),
        }
    }

    /// Every stage of the list, in order, over `items`.
    pub fn finish(&self, items: &mut [Item], cx: &Context) {
        for stage in &self.stages {
            stage.run(items, cx);
        }
    }

    /// The whole pipeline over `inputs`: read and terms per item (in parallel), then the list.
    pub fn run<T: Sync>(&self, inputs: &[T], cx: &Context, prepare: impl Fn(&Self, &T) -> Item + Sync + Send) -> Vec<Item> {
        let mut items = crate::batch::map(inputs, cx.threads, |t| prepare(self, t));
        self.finish(&mut items, cx);
        items
    }
}

/// Verifies one payment by recovery: read, terms, authenticate (no key cache, no store).
pub fn verify(input: &PayloadInput<'_>, requirements: &Result<PaymentRequirements>, now: u64, cfg: &VerifyConfig) -> Verdict {
    let pipeline = Pipeline::new(cfg.clone());
    let mut items = [pipeline.prepare(input, requirements, now)];
    Authenticate::recovery().run(&mut items, &Context { now, threads: Some(1) });
    let [item] = items;
    item.verdict
}
