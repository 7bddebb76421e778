//! x402 payments: decode the header, read payload and requirements, then the stages
//! (`stages`): read -> terms -> authenticate -> (chain) -> reserve -> verdict.

pub mod config;
pub mod digest;
pub mod envelope;
pub mod header;
pub mod network;
pub mod payload;
pub mod payload_text;
pub mod replay;
pub mod stages;
pub mod verdict;

pub use config::{VerifyConfig, DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_TIME_BUFFER, EXACT_PERMIT2_PROXY, UPTO_PERMIT2_PROXY};
pub use payload::{parse_requirements, requirements_error, Authorization, PaymentPayload, PaymentRequirements};
pub use replay::{NonceSpace, ReplayKey};
pub use stages::{verify, Context, Item, PayloadInput, Pipeline, Prepared, Stage};
pub use verdict::{Scheme, SignedPayment, Verdict};
