//! What a verifier accepts, and the protocol's default values: defined here once, exported to
//! Python by the bindings (`x402_verify._core`), never written out again.

use std::collections::HashMap;

use alloy_primitives::{address, Address};

use super::network::default_names;
use crate::signature::SignaturePolicy;

/// x402's `x402ExactPermit2Proxy`.
pub const EXACT_PERMIT2_PROXY: Address = address!("402085c248EeA27D92E8b30b2C58ed07f9E20001");
/// x402's `x402UptoPermit2Proxy`.
pub const UPTO_PERMIT2_PROXY: Address = address!("4020A4f3b7b90ccA423B9fabCc0CE57C6C240002");
/// The SDK's buffer on deadlines (about three blocks).
pub const DEFAULT_TIME_BUFFER: u64 = 6;
/// Default allowance for a client clock running ahead of ours, on top of the requirements'
/// `maxTimeoutSeconds`: the x402 SDK clients sign validAfter = their now - 600, so a payment
/// from a clock up to 600 s ahead passes the validAfter check; its validBefore / deadline
/// (their now + maxTimeoutSeconds) passes the window check under the same allowance.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 600;
/// Largest decoded payment JSON accepted by default.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// ERC-6492 wraps counterfactual-wallet signatures and ends them with this 32-byte marker.
pub(crate) const ERC6492_SUFFIX: [u8; 32] = [
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
];

/// What a verifier accepts. Built once, shared by every call.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// v1 network names and their chain ids.
    pub network_names: HashMap<String, u64>,
    /// Chain ids this verifier takes payments on; `None` takes any.
    pub allowed_chain_ids: Option<Vec<u64>>,
    /// Spenders accepted for exact Permit2 payments.
    pub exact_permit2_proxies: Vec<Address>,
    /// Spenders accepted for upto Permit2 payments.
    pub upto_permit2_proxies: Vec<Address>,
    /// Addresses an upto witness may name as facilitator; when empty, the requirements'
    /// `extra.facilitatorAddress` is the only one accepted.
    pub facilitator_addresses: Vec<Address>,
    /// Seconds a validBefore / deadline must lie ahead of now.
    pub time_buffer: u64,
    /// A validBefore/deadline later than now + the requirements' `maxTimeoutSeconds` + this is
    /// refused (`authorization_window_too_long`), so every reservation has a bounded life.
    pub clock_skew_seconds: u64,
    /// When set, a validBefore/deadline further than this many seconds ahead is refused too.
    pub max_validity_seconds: Option<u64>,
    /// Bound on a decoded payload (and on requirements read from a dict), checked before parsing.
    pub max_payload_bytes: usize,
    /// Signature rules for EIP-3009 payments.
    pub eip3009_policy: SignaturePolicy,
    /// Signature rules for Permit2 payments.
    pub permit2_policy: SignaturePolicy,
}

impl VerifyConfig {
    /// The x402 SDK's settings (every default above): what `x402_verify.Verifier()` builds when
    /// given no options. Tests, benches and fuzz targets start from it.
    pub fn sdk_defaults() -> Self {
        VerifyConfig {
            network_names: default_names(),
            allowed_chain_ids: None,
            exact_permit2_proxies: vec![EXACT_PERMIT2_PROXY],
            upto_permit2_proxies: vec![UPTO_PERMIT2_PROXY],
            facilitator_addresses: Vec::new(),
            time_buffer: DEFAULT_TIME_BUFFER,
            clock_skew_seconds: DEFAULT_CLOCK_SKEW_SECONDS,
            max_validity_seconds: None,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            eip3009_policy: SignaturePolicy::eip3009(),
            permit2_policy: SignaturePolicy::permit2(),
        }
    }
}
