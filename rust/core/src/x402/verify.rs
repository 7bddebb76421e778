//! The verification cascade: cheap checks first, in the x402 Python SDK's order, then the
//! EIP-712 digest and signature recovery. Every outcome is a `Verdict`; nothing here fails.

use std::collections::HashMap;

use alloy_primitives::{address, Address, U256};

use super::digest::{eip3009_digest, eip3009_domain_separator, permit2_domain_separator, permit2_witness_digest};
use super::network::{default_names, parse_caip2};
use super::payload::{parse_payload, Authorization, PaymentPayload, PaymentRequirements};
use super::replay::{replay_key, ReplayKey};
use crate::authenticate::{Session, SigItem};
use crate::error::{Code, Error, Result};
use crate::json::Value;
use crate::primitives::{parse_hex_prefixed, Digest};
use crate::signature::{Signature, SignaturePolicy};

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
const ERC6492_SUFFIX: [u8; 32] = [
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
    pub time_buffer: u64,
    /// A validBefore/deadline later than now + the requirements' `maxTimeoutSeconds` + this is
    /// refused (`authorization_window_too_long`), so every reservation has a bounded life.
    pub clock_skew_seconds: u64,
    /// When set, a validBefore/deadline further than this many seconds ahead is refused too.
    pub max_validity_seconds: Option<u64>,
    pub max_payload_bytes: usize,
    pub eip3009_policy: SignaturePolicy,
    pub permit2_policy: SignaturePolicy,
}

impl Default for VerifyConfig {
    fn default() -> Self {
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

/// Which x402 payment flow a payload follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    ExactEip3009,
    ExactPermit2,
    UptoPermit2,
}

impl Scheme {
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::ExactEip3009 => "exact_eip3009",
            Scheme::ExactPermit2 => "exact_permit2",
            Scheme::UptoPermit2 => "upto_permit2",
        }
    }
}

/// The outcome of verifying one payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `None` when the payment is valid.
    pub reason: Option<Code>,
    pub message: String,
    /// The claimed payer (`from`), or the recovered signer once it matched.
    pub payer: Option<Address>,
    pub x402_version: Option<u8>,
    pub scheme: Option<Scheme>,
    pub chain_id: Option<u64>,
    pub authorization: Option<Authorization>,
    /// Set whenever the authorization was read and its chain is known.
    pub replay: Option<ReplayKey>,
    /// What a chain check needs once the cascade reached the signature step (every other
    /// check passed): the requirements' asset, the EIP-712 digest and the signature bytes.
    pub signed: Option<SignedPayment>,
}

/// The signed digest of a payment and its signature, for checks only the chain can make
/// (ERC-1271 / ERC-6492 wallets, EIP-7702 delegated accounts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPayment {
    pub asset: Address,
    pub digest: Digest,
    pub signature: Vec<u8>,
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        self.reason.is_none()
    }

    fn invalid(code: Code, message: impl Into<String>) -> Self {
        Verdict {
            reason: Some(code),
            message: message.into(),
            payer: None,
            x402_version: None,
            scheme: None,
            chain_id: None,
            authorization: None,
            replay: None,
            signed: None,
        }
    }

    /// The verdict for input that could not be read at all.
    pub fn from_error(e: &Error) -> Self {
        let path = e.path();
        let message = if path.is_empty() { e.message.clone() } else { format!("{path}: {}", e.message) };
        Verdict::invalid(e.code, message)
    }
}

/// A payment payload as handed in: header text / JSON bytes, or an already-built value.
pub enum PayloadInput<'a> {
    Text(&'a [u8]),
    Value(&'a Value),
}

/// Decodes and reads a payload, bounding its size first.
pub fn read_payload(input: &PayloadInput<'_>, cfg: &VerifyConfig) -> Result<PaymentPayload> {
    match input {
        PayloadInput::Text(bytes) => {
            let text = super::header::json_text(bytes, cfg.max_payload_bytes)?;
            // Well-formed payloads are read straight from the text; anything else takes the
            // strict model, whose errors say precisely what is wrong.
            if let Some(p) = std::str::from_utf8(&text).ok().and_then(super::payload_text::read) {
                return Ok(p);
            }
            parse_payload(&crate::json::parse(&text)?)
        }
        PayloadInput::Value(v) => parse_payload(v),
    }
}

/// Verifies one payment against already-read requirements at unix time `now`.
pub fn verify(input: &PayloadInput<'_>, requirements: &Result<PaymentRequirements>, now: u64, cfg: &VerifyConfig) -> Verdict {
    let (mut v, pending) = verify_deferred(input, requirements, now, cfg);
    if let Some(p) = pending {
        let recovered = p.item.signature.recover_address_from_prehash(&p.item.digest);
        finish(&mut v, &p, recovered);
    }
    v
}

/// A payment that passed every check before the signature's: what is left is to authenticate
/// `item` (recovery, or `authenticate::Authenticator` for many at once) and `finish`.
#[derive(Clone, Copy, Debug)]
pub struct PendingSignature {
    pub item: SigItem,
    code: Code,
}

/// `verify` up to the signature: the verdict so far, and the signature still to authenticate
/// when every other check passed (the verdict is then valid until `finish` says otherwise).
pub fn verify_deferred(
    input: &PayloadInput<'_>,
    requirements: &Result<PaymentRequirements>,
    now: u64,
    cfg: &VerifyConfig,
) -> (Verdict, Option<PendingSignature>) {
    let payload = match read_payload(input, cfg) {
        Ok(p) => p,
        Err(e) => return (Verdict::from_error(&e), None),
    };
    let v = Verdict {
        reason: None,
        message: String::new(),
        payer: Some(payload.authorization.payer()),
        x402_version: Some(payload.x402_version),
        scheme: None,
        chain_id: None,
        authorization: Some(payload.authorization.clone()),
        replay: None,
        signed: None,
    };
    let req = match requirements {
        Ok(r) => r,
        Err(e) => return (fill(v, Err(fail_with(e.code, &Verdict::from_error(e).message))), None),
    };
    let mut v = v;
    match cascade(&payload, req, now, cfg, &mut v) {
        Ok(pending) => (v, Some(pending)),
        Err(e) => (fill(v, Err(e)), None),
    }
}

/// Completes a verdict from `verify_deferred` with what authenticating its signature gave:
/// exactly what `verify` does with the recovered address.
pub fn finish(v: &mut Verdict, p: &PendingSignature, recovered: Result<Address>) {
    let outcome = recovered.map_err(|e| (p.code, format!("{}: {}", e.code, e.message))).and_then(|signer| {
        check(signer == p.item.claimed, p.code, || format!("the signature recovers to {signer}, not the payer {}", p.item.claimed))?;
        v.payer = Some(signer);
        Ok(())
    });
    if let Err((code, message)) = outcome {
        v.reason = Some(code);
        v.message = message;
    }
}

fn fill(mut v: Verdict, outcome: std::result::Result<(), (Code, String)>) -> Verdict {
    if let Err((code, message)) = outcome {
        v.reason = Some(code);
        v.message = message;
    }
    v
}

fn fail_with(code: Code, message: &str) -> (Code, String) {
    (code, message.to_owned())
}

type Step = std::result::Result<(), (Code, String)>;
/// The cascade's end: every check passed, the signature is still to authenticate.
type Signed = std::result::Result<PendingSignature, (Code, String)>;

fn check(ok: bool, code: Code, message: impl FnOnce() -> String) -> Step {
    if ok {
        Ok(())
    } else {
        Err((code, message()))
    }
}

fn cascade(p: &PaymentPayload, req: &PaymentRequirements, now: u64, cfg: &VerifyConfig, v: &mut Verdict) -> Signed {
    let scheme = match (req.scheme.as_str(), &p.authorization) {
        ("upto", Authorization::Permit2(_)) => Scheme::UptoPermit2,
        ("upto", Authorization::Eip3009(_)) => return Err(fail_with(Code::UnsupportedPayloadType, "upto payments are Permit2 authorizations")),
        ("exact", Authorization::Eip3009(_)) => Scheme::ExactEip3009,
        ("exact", Authorization::Permit2(_)) => Scheme::ExactPermit2,
        (other, _) => return Err((Code::UnsupportedScheme, format!("scheme {other:?} is not exact or upto"))),
    };
    v.scheme = Some(scheme);
    // The server's requirements, not the payload's shape, choose the transfer method.
    if let Some(method) = &req.asset_transfer_method {
        let fits = matches!((method.as_str(), scheme), ("permit2", Scheme::ExactPermit2 | Scheme::UptoPermit2) | ("eip3009", Scheme::ExactEip3009));
        check(fits, Code::UnsupportedPayloadType, || format!("requirements ask for assetTransferMethod {method:?}"))?;
    }
    match (&p.authorization, scheme) {
        (Authorization::Eip3009(a), _) => exact_eip3009(p, a, req, now, cfg, v),
        (Authorization::Permit2(a), s) => permit2(p, a, s == Scheme::UptoPermit2, req, now, cfg, v),
    }
}

/// Chain id of the requirements' network: CAIP-2 always, v1 names for v1 payloads.
fn chain_id(network: &str, x402_version: u8, cfg: &VerifyConfig) -> Option<u64> {
    parse_caip2(network).or_else(|| if x402_version == 1 { cfg.network_names.get(network).copied() } else { None })
}

fn network_allowed(chain: u64, cfg: &VerifyConfig) -> Step {
    let ok = cfg.allowed_chain_ids.as_ref().is_none_or(|ids| ids.contains(&chain));
    check(ok, Code::InvalidNetwork, || format!("chain {chain} is not among this verifier's networks"))
}

/// How far ahead an authorization may stay valid: a client signs validBefore / deadline =
/// its now + maxTimeoutSeconds, so later than that (plus its clock's allowance) is an
/// authorization that would hold a reservation longer than the route ever needs, and a free
/// way to fill the store (signing costs nothing).
fn window(valid_until: &U256, now: u64, req: &PaymentRequirements, cfg: &VerifyConfig) -> Step {
    let bound = U256::from(now) + U256::from(req.max_timeout_seconds) + U256::from(cfg.clock_skew_seconds);
    check(*valid_until <= bound, Code::AuthorizationWindowTooLong, || {
        format!(
            "authorization is valid until {valid_until}, more than maxTimeoutSeconds ({}) + {} s of clock skew after now ({now})",
            req.max_timeout_seconds, cfg.clock_skew_seconds
        )
    })?;
    match cfg.max_validity_seconds {
        Some(max) => check(*valid_until <= U256::from(now) + U256::from(max), Code::AuthorizationWindowTooLong, || {
            format!("authorization is valid until {valid_until}, more than {max} s after now ({now})")
        }),
        None => Ok(()),
    }
}

fn exact_eip3009(
    p: &PaymentPayload,
    a: &super::payload::Eip3009Authorization,
    req: &PaymentRequirements,
    now: u64,
    cfg: &VerifyConfig,
    v: &mut Verdict,
) -> Signed {
    check(p.scheme == "exact", Code::UnsupportedScheme, || format!("payload scheme {:?} is not exact", p.scheme))?;
    check(p.network == req.network, Code::NetworkMismatch, || format!("payload network {:?} differs from {:?}", p.network, req.network))?;
    let chain = chain_id(&req.network, p.x402_version, cfg).ok_or_else(|| (Code::FailedToGetNetworkConfig, format!("unknown network {:?}", req.network)))?;
    v.chain_id = Some(chain);
    network_allowed(chain, cfg)?;
    let (Some(name), Some(version)) = (&req.extra_name, &req.extra_version) else {
        return Err(fail_with(Code::MissingEip712Domain, "requirements.extra needs the token's EIP-712 name and version"));
    };
    v.replay = Some(replay_key(chain, &req.asset, &p.authorization));
    check(a.to == req.pay_to, Code::RecipientMismatch, || format!("authorization.to {} is not payTo {}", a.to, req.pay_to))?;
    check(a.value == req.amount, Code::AuthorizationValueMismatch, || format!("authorization.value {} is not the required {}", a.value, req.amount))?;
    // USDC needs now < validBefore even when the buffer is configured to 0.
    let fresh = a.valid_before >= U256::from(now) + U256::from(cfg.time_buffer) && a.valid_before > U256::from(now);
    check(fresh, Code::ValidBeforeExpired, || format!("validBefore {} is before now + {} s ({now})", a.valid_before, cfg.time_buffer))?;
    check(a.valid_after <= U256::from(now), Code::ValidAfterFuture, || format!("validAfter {} is after now ({now})", a.valid_after))?;
    window(&a.valid_before, now, req, cfg)?;
    let domain = eip3009_domain_separator(name, version, chain, &req.asset);
    let digest = eip3009_digest(&domain, a);
    let session = Session { now, expires: a.valid_before.saturating_to() };
    signature_item(&p.signature, &digest, req.asset, a.from, &cfg.eip3009_policy, Code::InvalidExactSignature, session, v)
}

#[allow(clippy::too_many_arguments)]
fn permit2(
    p: &PaymentPayload,
    a: &super::payload::Permit2Authorization,
    upto: bool,
    req: &PaymentRequirements,
    now: u64,
    cfg: &VerifyConfig,
    v: &mut Verdict,
) -> Signed {
    let (scheme_code, network_code, config_code, proxies) = if upto {
        (Code::UptoInvalidScheme, Code::UptoNetworkMismatch, Code::UptoFailedToGetNetworkConfig, &cfg.upto_permit2_proxies)
    } else {
        (Code::UnsupportedScheme, Code::NetworkMismatch, Code::FailedToGetNetworkConfig, &cfg.exact_permit2_proxies)
    };
    let want = if upto { "upto" } else { "exact" };
    check(p.scheme == want, scheme_code, || format!("payload scheme {:?} is not {want}", p.scheme))?;
    check(p.network == req.network, network_code, || format!("payload network {:?} differs from {:?}", p.network, req.network))?;
    let chain = chain_id(&req.network, p.x402_version, cfg).ok_or_else(|| (config_code, format!("unknown network {:?}", req.network)))?;
    v.chain_id = Some(chain);
    network_allowed(chain, cfg)?;
    v.replay = Some(replay_key(chain, &req.asset, &p.authorization));
    check(proxies.contains(&a.spender), Code::Permit2InvalidSpender, || format!("spender {} is not the x402 {want} Permit2 proxy", a.spender))?;
    check(a.to == req.pay_to, Code::Permit2RecipientMismatch, || format!("witness.to {} is not payTo {}", a.to, req.pay_to))?;
    if upto {
        let allowed: &[Address] = if cfg.facilitator_addresses.is_empty() { req.facilitator_address.as_slice() } else { &cfg.facilitator_addresses };
        let named = a.facilitator.is_some_and(|f| allowed.contains(&f));
        check(named, Code::UptoFacilitatorMismatch, || match a.facilitator {
            Some(f) => format!("witness.facilitator {f} is not an accepted facilitator"),
            None => "the upto witness names no facilitator".to_owned(),
        })?;
    } else {
        // The exact witness has no facilitator member; signing one means another type string.
        check(a.facilitator.is_none(), Code::UnknownField, || {
            "payload.permit2Authorization.witness.facilitator: the exact witness has no facilitator".to_owned()
        })?;
    }
    check(a.deadline >= U256::from(now) + U256::from(cfg.time_buffer), Code::Permit2DeadlineExpired, || {
        format!("deadline {} is before now + {} s ({now})", a.deadline, cfg.time_buffer)
    })?;
    check(a.valid_after <= U256::from(now), Code::Permit2NotYetValid, || format!("witness.validAfter {} is after now ({now})", a.valid_after))?;
    check(a.amount == req.amount, Code::Permit2AmountMismatch, || format!("permitted.amount {} is not the required {}", a.amount, req.amount))?;
    check(a.token == req.asset, Code::Permit2TokenMismatch, || format!("permitted.token {} is not the asset {}", a.token, req.asset))?;
    // x402BasePermit2Proxy reverts on these at settle time (InvalidAmount, InvalidDestination);
    // an upto session may settle 0 (the facilitator then sends nothing).
    check(upto || !a.amount.is_zero(), Code::Permit2InvalidAmount, || "the exact Permit2 proxy cannot settle an amount of 0".to_owned())?;
    check(!a.to.is_zero(), Code::Permit2InvalidDestination, || "witness.to is the zero address".to_owned())?;
    window(&a.deadline, now, req, cfg)?;
    let digest = permit2_witness_digest(&permit2_domain_separator(chain), a);
    let session = Session { now, expires: a.deadline.saturating_to() };
    signature_item(&p.signature, &digest, req.asset, a.from, &cfg.permit2_policy, Code::InvalidPermit2Signature, session, v)
}

/// The signature step, up to authentication: smart-wallet forms are sent to a chain check,
/// never recovered as EOA signatures; everything else must parse under the policy, and then
/// recover to the claimed payer (`finish`).
#[allow(clippy::too_many_arguments)]
fn signature_item(
    text: &str,
    digest: &Digest,
    asset: Address,
    claimed: Address,
    policy: &SignaturePolicy,
    code: Code,
    session: Session,
    v: &mut Verdict,
) -> Signed {
    if text.is_empty() || text == "0x" {
        return Err(fail_with(code, "the payload has no signature"));
    }
    let bytes = parse_hex_prefixed(text, Code::InvalidSignatureEncoding).map_err(|e| (code, e.message))?;
    v.signed = Some(SignedPayment { asset, digest: *digest, signature: bytes.clone() });
    let ecdsa_len = bytes.len() == 65 || (policy.allow_compact && bytes.len() == 64);
    // Any other length (and the ERC-6492 wrapper) can only be a contract wallet's signature:
    // ERC-1271 accepts whatever the wallet accepts, so only the chain can decide.
    if !ecdsa_len || bytes.ends_with(&ERC6492_SUFFIX) {
        return Err((
            Code::NeedsChainCheck,
            format!("a {}-byte signature is not an EOA signature the settling contract takes; check it on-chain (ERC-1271 / ERC-6492)", bytes.len()),
        ));
    }
    let sig = Signature::parse(&bytes, policy).map_err(|e| (code, format!("{}: {}", e.code, e.message)))?;
    Ok(PendingSignature { item: SigItem { digest: *digest, signature: sig, claimed, session: Some(session) }, code })
}
