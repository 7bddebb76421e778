//! x402 payments: decode the header, read payload and requirements, check the terms in the
//! SDK's order, build the EIP-712 digest, recover the signer, derive the replay key.

pub mod batch_verify;
pub mod digest;
pub mod header;
pub mod network;
pub mod payload;
pub mod payload_text;
pub mod replay;
pub mod verify;

pub use payload::{parse_requirements, requirements_error, Authorization, PaymentPayload, PaymentRequirements};
pub use replay::{NonceSpace, ReplayKey};
pub use verify::{finish, verify, verify_deferred, PayloadInput, PendingSignature, Scheme, SignedPayment, Verdict, VerifyConfig};
