//! Stage 2, terms: the payload against the requirements, in the x402 Python SDK's order, up to
//! the signature. What passes becomes a `Prepared` item (digest, parsed signature, claimed
//! signer, replay key, token, payer, amount, expiry); what fails, a verdict with its reason.
//! Nothing here touches the curve: that is the authenticate stage's.

use alloy_primitives::{Address, U256};

use super::super::config::{VerifyConfig, ERC6492_SUFFIX};
use super::super::digest::{eip3009_digest, eip3009_domain_separator, permit2_domain_separator, permit2_witness_digest};
use super::super::network::parse_caip2;
use super::super::payload::{Authorization, Eip3009Authorization, PaymentPayload, PaymentRequirements, Permit2Authorization};
use super::super::replay::replay_key;
use super::super::verdict::{error_message, Scheme, SignedPayment, Verdict};
use super::Prepared;
use crate::authenticate::Session;
use crate::error::{Code, Result};
use crate::primitives::{parse_hex_prefixed, Digest};
use crate::signature::{Signature, SignaturePolicy};

/// A failed check: its code and message.
pub(crate) type Refusal = (Code, String);
pub(crate) type Step = std::result::Result<(), Refusal>;

fn check(ok: bool, code: Code, message: impl FnOnce() -> String) -> Step {
    if ok {
        Ok(())
    } else {
        Err((code, message()))
    }
}

fn refuse(code: Code, message: &str) -> Refusal {
    (code, message.to_owned())
}

/// The terms stage for one read payload: the verdict so far, and the prepared item when every
/// check before the signature's passed (the verdict is then valid until authentication says
/// otherwise).
pub(crate) fn check_terms(payload: &PaymentPayload, requirements: &Result<PaymentRequirements>, now: u64, cfg: &VerifyConfig) -> (Verdict, Option<Prepared>) {
    let mut v = Verdict {
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
    let outcome = match requirements {
        Ok(req) => cascade(payload, req, now, cfg, &mut v),
        Err(e) => Err((e.code, error_message(e))),
    };
    match outcome {
        Ok(p) => (v, Some(p)),
        Err((code, message)) => {
            v.fail(code, message);
            (v, None)
        }
    }
}

fn cascade(p: &PaymentPayload, req: &PaymentRequirements, now: u64, cfg: &VerifyConfig, v: &mut Verdict) -> std::result::Result<Prepared, Refusal> {
    let scheme = match (req.scheme.as_str(), &p.authorization) {
        ("upto", Authorization::Permit2(_)) => Scheme::UptoPermit2,
        ("upto", Authorization::Eip3009(_)) => return Err(refuse(Code::UnsupportedPayloadType, "upto payments are Permit2 authorizations")),
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
    let unsigned = match (&p.authorization, scheme) {
        (Authorization::Eip3009(a), _) => exact_eip3009(p, a, req, now, cfg, v)?,
        (Authorization::Permit2(a), s) => permit2(p, a, s == Scheme::UptoPermit2, req, now, cfg, v)?,
    };
    signature_step(&p.signature, unsigned, req.asset, scheme, v)
}

/// Chain id of the requirements' network: CAIP-2 always, v1 names for v1 payloads.
fn chain_id(network: &str, x402_version: u8, cfg: &VerifyConfig) -> Option<u64> {
    parse_caip2(network).or_else(|| if x402_version == 1 { cfg.network_names.get(network).copied() } else { None })
}

fn network_allowed(chain: u64, cfg: &VerifyConfig) -> Step {
    let ok = cfg.allowed_chain_ids.as_ref().is_none_or(|ids| ids.contains(&chain));
    check(ok, Code::InvalidNetwork, || format!("chain {chain} is not among this verifier's networks"))
}

/// The terms of an authorization that depend on the clock: everything else in its verdict is
/// a function of the payload, the requirements and the configuration alone, which is what lets
/// a verdict be remembered (`recall`) and only these be checked again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// The flow, which names the codes.
    pub scheme: Scheme,
    /// validAfter (EIP-3009) / witness.validAfter (Permit2).
    pub valid_after: U256,
    /// validBefore (EIP-3009) / deadline (Permit2).
    pub valid_until: U256,
}

impl Clock {
    /// Every time check, in the order the terms stage makes them (the checks between them
    /// there do not read the clock, so for a payment that passed them the first failure is
    /// the same).
    pub(crate) fn check(&self, now: u64, req: &PaymentRequirements, cfg: &VerifyConfig) -> Step {
        self.fresh(now, cfg)?;
        self.started(now)?;
        self.window(now, req, cfg)
    }

    /// Still valid at now + the time buffer.
    fn fresh(&self, now: u64, cfg: &VerifyConfig) -> Step {
        let until = self.valid_until;
        let margin = U256::from(now) + U256::from(cfg.time_buffer);
        if self.scheme == Scheme::ExactEip3009 {
            // USDC needs now < validBefore even when the buffer is configured to 0.
            check(until >= margin && until > U256::from(now), Code::ValidBeforeExpired, || {
                format!("validBefore {until} is before now + {} s ({now})", cfg.time_buffer)
            })
        } else {
            check(until >= margin, Code::Permit2DeadlineExpired, || format!("deadline {until} is before now + {} s ({now})", cfg.time_buffer))
        }
    }

    /// Already valid at now.
    fn started(&self, now: u64) -> Step {
        let after = self.valid_after;
        if self.scheme == Scheme::ExactEip3009 {
            check(after <= U256::from(now), Code::ValidAfterFuture, || format!("validAfter {after} is after now ({now})"))
        } else {
            check(after <= U256::from(now), Code::Permit2NotYetValid, || format!("witness.validAfter {after} is after now ({now})"))
        }
    }

    /// How far ahead an authorization may stay valid: a client signs validBefore / deadline =
    /// its now + maxTimeoutSeconds, so later than that (plus its clock's allowance) is an
    /// authorization that would hold a reservation longer than the route ever needs, and a
    /// free way to fill the store (signing costs nothing).
    fn window(&self, now: u64, req: &PaymentRequirements, cfg: &VerifyConfig) -> Step {
        let valid_until = self.valid_until;
        let bound = U256::from(now) + U256::from(req.max_timeout_seconds) + U256::from(cfg.clock_skew_seconds);
        check(valid_until <= bound, Code::AuthorizationWindowTooLong, || {
            format!(
                "authorization is valid until {valid_until}, more than maxTimeoutSeconds ({}) + {} s of clock skew after now ({now})",
                req.max_timeout_seconds, cfg.clock_skew_seconds
            )
        })?;
        match cfg.max_validity_seconds {
            Some(max) => check(valid_until <= U256::from(now) + U256::from(max), Code::AuthorizationWindowTooLong, || {
                format!("authorization is valid until {valid_until}, more than {max} s after now ({now})")
            }),
            None => Ok(()),
        }
    }
}

/// What the scheme's checks leave for the signature step.
struct Unsigned<'c> {
    digest: Digest,
    claimed: Address,
    amount: U256,
    policy: &'c SignaturePolicy,
    code: Code,
    session: Session,
    clock: Clock,
}

fn exact_eip3009<'c>(
    p: &PaymentPayload,
    a: &Eip3009Authorization,
    req: &PaymentRequirements,
    now: u64,
    cfg: &'c VerifyConfig,
    v: &mut Verdict,
) -> std::result::Result<Unsigned<'c>, Refusal> {
    check(p.scheme == "exact", Code::UnsupportedScheme, || format!("payload scheme {:?} is not exact", p.scheme))?;
    check(p.network == req.network, Code::NetworkMismatch, || format!("payload network {:?} differs from {:?}", p.network, req.network))?;
    let chain = chain_id(&req.network, p.x402_version, cfg).ok_or_else(|| (Code::FailedToGetNetworkConfig, format!("unknown network {:?}", req.network)))?;
    v.chain_id = Some(chain);
    network_allowed(chain, cfg)?;
    let (Some(name), Some(version)) = (&req.extra_name, &req.extra_version) else {
        return Err(refuse(Code::MissingEip712Domain, "requirements.extra needs the token's EIP-712 name and version"));
    };
    v.replay = Some(replay_key(chain, &req.asset, &p.authorization));
    check(a.to == req.pay_to, Code::RecipientMismatch, || format!("authorization.to {} is not payTo {}", a.to, req.pay_to))?;
    check(a.value == req.amount, Code::AuthorizationValueMismatch, || format!("authorization.value {} is not the required {}", a.value, req.amount))?;
    let clock = Clock { scheme: Scheme::ExactEip3009, valid_after: a.valid_after, valid_until: a.valid_before };
    clock.fresh(now, cfg)?;
    clock.started(now)?;
    clock.window(now, req, cfg)?;
    let domain = eip3009_domain_separator(name, version, chain, &req.asset);
    Ok(Unsigned {
        digest: eip3009_digest(&domain, a),
        claimed: a.from,
        amount: a.value,
        policy: &cfg.eip3009_policy,
        code: Code::InvalidExactSignature,
        session: Session { now, expires: a.valid_before.saturating_to() },
        clock,
    })
}

fn permit2<'c>(
    p: &PaymentPayload,
    a: &Permit2Authorization,
    upto: bool,
    req: &PaymentRequirements,
    now: u64,
    cfg: &'c VerifyConfig,
    v: &mut Verdict,
) -> std::result::Result<Unsigned<'c>, Refusal> {
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
    let clock = Clock { scheme: if upto { Scheme::UptoPermit2 } else { Scheme::ExactPermit2 }, valid_after: a.valid_after, valid_until: a.deadline };
    clock.fresh(now, cfg)?;
    clock.started(now)?;
    check(a.amount == req.amount, Code::Permit2AmountMismatch, || format!("permitted.amount {} is not the required {}", a.amount, req.amount))?;
    check(a.token == req.asset, Code::Permit2TokenMismatch, || format!("permitted.token {} is not the asset {}", a.token, req.asset))?;
    // x402BasePermit2Proxy reverts on these at settle time (InvalidAmount, InvalidDestination);
    // an upto session may settle 0 (the facilitator then sends nothing).
    check(upto || !a.amount.is_zero(), Code::Permit2InvalidAmount, || "the exact Permit2 proxy cannot settle an amount of 0".to_owned())?;
    check(!a.to.is_zero(), Code::Permit2InvalidDestination, || "witness.to is the zero address".to_owned())?;
    clock.window(now, req, cfg)?;
    Ok(Unsigned {
        digest: permit2_witness_digest(&permit2_domain_separator(chain), a),
        claimed: a.from,
        amount: a.amount,
        policy: &cfg.permit2_policy,
        code: Code::InvalidPermit2Signature,
        session: Session { now, expires: a.deadline.saturating_to() },
        clock,
    })
}

/// The signature step, up to authentication: smart-wallet forms are sent to a chain check,
/// never recovered as EOA signatures; everything else must parse under the policy, and is
/// then left to the authenticate stage to show it recovers to the claimed payer.
fn signature_step(text: &str, u: Unsigned<'_>, asset: Address, scheme: Scheme, v: &mut Verdict) -> std::result::Result<Prepared, Refusal> {
    if text.is_empty() || text == "0x" {
        return Err(refuse(u.code, "the payload has no signature"));
    }
    let bytes = parse_hex_prefixed(text, Code::InvalidSignatureEncoding).map_err(|e| (u.code, e.message))?;
    let ecdsa_len = bytes.len() == 65 || (u.policy.allow_compact && bytes.len() == 64);
    let chain_only = !ecdsa_len || bytes.ends_with(&ERC6492_SUFFIX);
    v.signed = Some(SignedPayment { asset, digest: u.digest, signature: bytes });
    // Any other length (and the ERC-6492 wrapper) can only be a contract wallet's signature:
    // ERC-1271 accepts whatever the wallet accepts, so only the chain can decide.
    if chain_only {
        let len = v.signed.as_ref().map_or(0, |s| s.signature.len());
        return Err((
            Code::NeedsChainCheck,
            format!("a {len}-byte signature is not an EOA signature the settling contract takes; check it on-chain (ERC-1271 / ERC-6492)"),
        ));
    }
    let raw = v.signed.as_ref().map(|s| s.signature.as_slice()).unwrap_or_default();
    let signature = Signature::parse(raw, u.policy).map_err(|e| (u.code, format!("{}: {}", e.code, e.message)))?;
    let replay = v.replay.ok_or_else(|| refuse(Code::InvalidPayload, "no replay key"))?;
    Ok(Prepared {
        scheme,
        digest: u.digest,
        signature,
        claimed: u.claimed,
        replay,
        token: asset,
        payer: u.claimed,
        amount: u.amount,
        expiry: u.session.expires,
        session: u.session,
        clock: u.clock,
        code: u.code,
    })
}
