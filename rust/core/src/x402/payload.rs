//! Reading x402 payment payloads and requirements (v1 and v2) into typed structs.
//!
//! Payloads come from clients and are read strictly: unknown members are refused (a field the
//! payer saw but did not sign is a phishing vector), numbers must be canonical decimal strings,
//! addresses must carry a valid checksum when mixed-case. Requirements come from the server's
//! own configuration and are read for the members x402 defines; other members are ignored.

use alloy_primitives::{Address, B256, U256};

use crate::error::{fail, Code, Error, Result};
use crate::json::{Int, Object, Value};
use crate::primitives::{parse_address, parse_hex_prefixed, parse_uint_decimal, trunc};

/// An EIP-3009 `TransferWithAuthorization`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eip3009Authorization {
    /// The payer, whose signature must recover to this address.
    pub from: Address,
    /// The recipient; must be the route's `payTo`.
    pub to: Address,
    /// Token base units transferred (no decimals applied).
    pub value: U256,
    /// Unix seconds; the transfer may not be used before this time.
    pub valid_after: U256,
    /// Unix seconds; the transfer is invalid at or after this time.
    pub valid_before: U256,
    /// A random 32-byte nonce, spent on-chain per (token, from) once the transfer settles.
    pub nonce: B256,
}

/// A Permit2 `PermitWitnessTransferFrom` with x402's witness (`facilitator` only for upto).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permit2Authorization {
    /// The owner of the tokens, whose signature must recover to this address.
    pub from: Address,
    /// `permitted.token`: the token contract; must be the route's asset.
    pub token: Address,
    /// `permitted.amount` in token base units (upto: the maximum that may be charged).
    pub amount: U256,
    /// The x402 Permit2 proxy allowed to move the tokens.
    pub spender: Address,
    /// Permit2's unordered nonce, spent on-chain per owner.
    pub nonce: U256,
    /// Unix seconds after which the permit is dead on-chain.
    pub deadline: U256,
    /// `witness.to`: the recipient; must be the route's `payTo`.
    pub to: Address,
    /// `witness.validAfter`: unix seconds; the permit may not be used before this time.
    pub valid_after: U256,
    /// `witness.facilitator`: who may settle an upto payment; `None` for exact.
    pub facilitator: Option<Address>,
}

/// What the payer signed, by the contract that will settle it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// Settled by the token itself (`transferWithAuthorization`, e.g. USDC).
    Eip3009(Eip3009Authorization),
    /// Settled through Permit2 by an x402 proxy (any ERC-20 approved to Permit2).
    Permit2(Permit2Authorization),
}

impl Authorization {
    /// The address the authorization claims pays.
    pub fn payer(&self) -> Address {
        match self {
            Authorization::Eip3009(a) => a.from,
            Authorization::Permit2(a) => a.from,
        }
    }

    /// The signed amount: `value`, or Permit2's `permitted.amount` (upto: the maximum).
    pub fn amount(&self) -> U256 {
        match self {
            Authorization::Eip3009(a) => a.value,
            Authorization::Permit2(a) => a.amount,
        }
    }
}

/// A decoded payment payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentPayload {
    /// The protocol version the payload was read as: 1 or 2.
    pub x402_version: u8,
    /// `accepted.scheme` (v2) or `scheme` (v1).
    pub scheme: String,
    /// `accepted.network` (v2) or `network` (v1).
    pub network: String,
    /// The signed authorization, read from `payload.authorization` or `payload.permit2Authorization`.
    pub authorization: Authorization,
    /// The `signature` text as sent (decoded later, at the signature step, as the SDK does).
    pub signature: String,
}

/// The route's payment requirements.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PaymentRequirements {
    /// 2 when the requirements carry `amount`, 1 when they carry `maxAmountRequired`: the
    /// schema (x402 SDK `PaymentRequirements` / `PaymentRequirementsV1`) they are read by.
    pub x402_version: u8,
    /// `exact` or `upto`.
    pub scheme: String,
    /// The network name as configured (a CAIP-2 id for v2, a name such as `base` for v1).
    pub network: String,
    /// `amount` (v2) or `maxAmountRequired` (v1).
    pub amount: U256,
    /// The token contract the payment must be in.
    pub asset: Address,
    /// The address that must receive the payment.
    pub pay_to: Address,
    /// Required by both schemas; bounds how long a payment for this route may stay valid.
    pub max_timeout_seconds: u64,
    /// `extra.name`: the token's EIP-712 domain name (EIP-3009 needs it to build the digest).
    pub extra_name: Option<String>,
    /// `extra.version`: the token's EIP-712 domain version (EIP-3009 needs it too).
    pub extra_version: Option<String>,
    /// `extra.assetTransferMethod`: `eip3009` or `permit2`, which the payload must match;
    /// absent, the payload's own shape decides.
    pub asset_transfer_method: Option<String>,
    /// `extra.facilitatorAddress`: for upto, the facilitator the witness must name (when the
    /// verifier's config lists none of its own).
    pub facilitator_address: Option<Address>,
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Object> {
    v.as_object().ok_or_else(|| Error::new(Code::InvalidPayload, format!("{what} must be an object, got {}", v.kind())))
}

fn member<'a>(o: &'a Object, key: &str) -> Result<&'a Value> {
    o.get(key).ok_or_else(|| Error::new(Code::MissingField, format!("{key} is missing")).at_key(key))
}

fn string<'a>(o: &'a Object, key: &str) -> Result<&'a str> {
    match member(o, key)? {
        Value::Str(s) => Ok(s),
        v => Err(Error::new(Code::InvalidValueType, format!("{key} must be a string, got {}", v.kind())).at_key(key)),
    }
}

fn address(o: &Object, key: &str) -> Result<Address> {
    parse_address(string(o, key)?).map_err(|e| e.at_key(key))
}

/// A uint256 sent as a canonical decimal string (x402 sends every number as a string).
fn uint(o: &Object, key: &str) -> Result<U256> {
    parse_uint_decimal(string(o, key)?).map_err(|e| e.at_key(key))
}

fn only_keys(o: &Object, allowed: &[&str]) -> Result<()> {
    match o.keys().find(|k| !allowed.contains(k)) {
        Some(k) => Err(Error::new(Code::UnknownField, format!("unexpected member {:?}", trunc(k))).at_key(k)),
        None => Ok(()),
    }
}

fn eip3009(v: &Value) -> Result<Eip3009Authorization> {
    let o = obj(v, "authorization")?;
    only_keys(o, &["from", "to", "value", "validAfter", "validBefore", "nonce"])?;
    let nonce_text = string(o, "nonce")?;
    let nonce = parse_hex_prefixed(nonce_text, Code::InvalidBytes).map_err(|e| e.at_key("nonce"))?;
    let nonce: [u8; 32] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| Error::new(Code::InvalidBytesLength, format!("nonce is bytes32, got {} bytes", nonce.len())).at_key("nonce"))?;
    Ok(Eip3009Authorization {
        from: address(o, "from")?,
        to: address(o, "to")?,
        value: uint(o, "value")?,
        valid_after: uint(o, "validAfter")?,
        valid_before: uint(o, "validBefore")?,
        nonce: B256::from(nonce),
    })
}

fn permit2(v: &Value) -> Result<Permit2Authorization> {
    let o = obj(v, "permit2Authorization")?;
    only_keys(o, &["from", "permitted", "spender", "nonce", "deadline", "witness"])?;
    let permitted = obj(member(o, "permitted")?, "permitted").map_err(|e| e.at_key("permitted"))?;
    only_keys(permitted, &["token", "amount"]).map_err(|e| e.at_key("permitted"))?;
    let witness = obj(member(o, "witness")?, "witness").map_err(|e| e.at_key("witness"))?;
    only_keys(witness, &["to", "validAfter", "facilitator"]).map_err(|e| e.at_key("witness"))?;
    let facilitator = match witness.get("facilitator") {
        None => None,
        Some(_) => Some(address(witness, "facilitator").map_err(|e| e.at_key("witness"))?),
    };
    Ok(Permit2Authorization {
        from: address(o, "from")?,
        token: address(permitted, "token").map_err(|e| e.at_key("permitted"))?,
        amount: uint(permitted, "amount").map_err(|e| e.at_key("permitted"))?,
        spender: address(o, "spender")?,
        nonce: uint(o, "nonce")?,
        deadline: uint(o, "deadline")?,
        to: address(witness, "to").map_err(|e| e.at_key("witness"))?,
        valid_after: uint(witness, "validAfter").map_err(|e| e.at_key("witness"))?,
        facilitator,
    })
}

/// The scheme-specific `payload` member: a signature and exactly one kind of authorization.
fn inner_payload(v: &Value) -> Result<(Authorization, String)> {
    let o = obj(v, "payload")?;
    only_keys(o, &["signature", "authorization", "permit2Authorization"])?;
    let auth = match (o.get("authorization"), o.get("permit2Authorization")) {
        (Some(_), Some(_)) => return fail(Code::AmbiguousPayload, "payload has both authorization and permit2Authorization"),
        (Some(a), None) => Authorization::Eip3009(eip3009(a).map_err(|e| e.at_key("authorization"))?),
        (None, Some(a)) => Authorization::Permit2(permit2(a).map_err(|e| e.at_key("permit2Authorization"))?),
        (None, None) => return fail(Code::MissingField, "payload has neither authorization nor permit2Authorization"),
    };
    let signature = match o.get("signature") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Str(s)) => s.clone(),
        Some(v) => return Err(Error::new(Code::InvalidValueType, format!("signature must be a string, got {}", v.kind())).at_key("signature")),
    };
    Ok((auth, signature))
}

fn version(o: &Object) -> Result<u8> {
    match o.get("x402Version") {
        Some(Value::Int(Int { negative: false, mag: Some(m) })) if *m == U256::from(1) => Ok(1),
        Some(Value::Int(Int { negative: false, mag: Some(m) })) if *m == U256::from(2) => Ok(2),
        Some(_) => fail(Code::InvalidX402Version, "x402Version must be 1 or 2"),
        None => fail(Code::InvalidX402Version, "x402Version is missing"),
    }
}

/// Reads a decoded payment payload of either version.
pub fn parse_payload(v: &Value) -> Result<PaymentPayload> {
    let o = obj(v, "payment payload")?;
    let x402_version = version(o)?;
    let (scheme, network, inner) = if x402_version == 1 {
        only_keys(o, &["x402Version", "scheme", "network", "payload"])?;
        (string(o, "scheme")?.to_owned(), string(o, "network")?.to_owned(), member(o, "payload")?)
    } else {
        only_keys(o, &["x402Version", "accepted", "payload", "resource", "extensions"])?;
        let accepted = obj(member(o, "accepted")?, "accepted").map_err(|e| e.at_key("accepted"))?;
        let scheme = string(accepted, "scheme").map_err(|e| e.at_key("accepted"))?.to_owned();
        let network = string(accepted, "network").map_err(|e| e.at_key("accepted"))?.to_owned();
        (scheme, network, member(o, "payload")?)
    };
    let (authorization, signature) = inner_payload(inner).map_err(|e| e.at_key("payload"))?;
    Ok(PaymentPayload { x402_version, scheme, network, authorization, signature })
}

fn requirements_amount(o: &Object, key: &str) -> Result<U256> {
    match member(o, key)? {
        Value::Str(s) => parse_uint_decimal(s).map_err(|e| e.at_key(key)),
        // The server's own configuration: a JSON integer is read exactly (payloads must use strings).
        Value::Int(Int { negative: false, mag: Some(m) }) => Ok(*m),
        v => Err(Error::new(Code::InvalidValueType, format!("{key} must be a decimal string, got {}", v.kind())).at_key(key)),
    }
}

/// A member both schemas type as an optional string or object: absent, `null` or that kind.
fn optional_kind(o: &Object, key: &str, want: &str) -> Result<()> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Str(_)) if want == "string" => Ok(()),
        Some(Value::Object(_)) if want == "object" => Ok(()),
        Some(v) => Err(Error::new(Code::InvalidValueType, format!("{key} must be {want} or null, got {}", v.kind())).at_key(key)),
    }
}

fn timeout(o: &Object) -> Result<u64> {
    match member(o, "maxTimeoutSeconds")? {
        // Past u64 it is "for ever" all the same; the window check saturates.
        Value::Int(Int { negative: false, mag: Some(m) }) => Ok(u64::try_from(*m).unwrap_or(u64::MAX)),
        v => Err(Error::new(Code::InvalidValueType, format!("maxTimeoutSeconds must be a non-negative integer, got {}", v.kind())).at_key("maxTimeoutSeconds")),
    }
}

/// Reads payment requirements of either version, by the x402 SDK's schemas: v2
/// (`PaymentRequirements`: scheme, network, asset, amount, payTo, maxTimeoutSeconds; extra an
/// object) when they carry `amount`, v1 (`PaymentRequirementsV1`: scheme, network,
/// maxAmountRequired, resource, payTo, maxTimeoutSeconds, asset; description, mimeType,
/// outputSchema and extra optional, null allowed) when they carry `maxAmountRequired`. Every
/// required member, for every scheme, must be present and of its type; other members are ignored.
pub fn parse_requirements(v: &Value) -> Result<PaymentRequirements> {
    let inner = || -> Result<PaymentRequirements> {
        let o = obj(v, "payment requirements")?;
        let (x402_version, amount_key) = match (o.get("amount").is_some(), o.get("maxAmountRequired").is_some()) {
            (true, true) => return fail(Code::InvalidPayload, "requirements carry both amount (v2) and maxAmountRequired (v1)"),
            (false, true) => (1, "maxAmountRequired"),
            (true, false) => (2, "amount"),
            (false, false) => return fail(Code::MissingField, "amount (v2) or maxAmountRequired (v1) is missing"),
        };
        let scheme = string(o, "scheme")?.to_owned();
        let network = string(o, "network")?.to_owned();
        let amount = requirements_amount(o, amount_key)?;
        let asset = address(o, "asset")?;
        let pay_to = address(o, "payTo")?;
        let max_timeout_seconds = timeout(o)?;
        if x402_version == 1 {
            string(o, "resource")?;
            for (key, kind) in [("description", "string"), ("mimeType", "string"), ("outputSchema", "object")] {
                optional_kind(o, key, kind)?;
            }
        }
        let extra = match o.get("extra") {
            None => None,
            Some(Value::Null) if x402_version == 1 => None,
            Some(Value::Object(e)) => Some(e),
            Some(v) => return Err(Error::new(Code::InvalidValueType, format!("extra must be an object, got {}", v.kind())).at_key("extra")),
        };
        let extra_str = |k: &str| -> Result<Option<String>> {
            match extra.and_then(|e| e.get(k)) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Str(s)) => Ok(Some(s.clone())),
                Some(v) => Err(Error::new(Code::InvalidValueType, format!("extra.{k} must be a string, got {}", v.kind())).at_key(k).at_key("extra")),
            }
        };
        let facilitator_address = match extra_str("facilitatorAddress")? {
            Some(s) => Some(parse_address(&s).map_err(|e| e.at_key("facilitatorAddress").at_key("extra"))?),
            None => None,
        };
        Ok(PaymentRequirements {
            x402_version,
            scheme,
            network,
            amount,
            asset,
            pay_to,
            max_timeout_seconds,
            extra_name: extra_str("name")?,
            extra_version: extra_str("version")?,
            asset_transfer_method: extra_str("assetTransferMethod")?,
            facilitator_address,
        })
    };
    inner().map_err(requirements_error)
}

/// Whatever is wrong with the server's own requirements (including JSON that does not parse)
/// is reported as such, so a gateway can tell its configuration from a client's bad header;
/// the precise cause stays in the message and path.
pub fn requirements_error(e: Error) -> Error {
    if e.code == Code::InvalidPaymentRequirements {
        return e;
    }
    let path = e.path();
    let mut out = Error::new(Code::InvalidPaymentRequirements, format!("requirements: {}: {}", e.code, e.message));
    if !path.is_empty() {
        out = out.at_key(&path);
    }
    out
}
