//! The one catalogue of stable, snake_case error and reason codes.
//!
//! Every failure the core can report carries one of these codes. The strings are a public
//! contract (users match on them and Python lists them through `error_codes()`), so a code is
//! never renamed; new ones are appended.

use std::fmt;

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $slug:literal, $kind:ident, $desc:literal; )*) => {
        /// A stable failure code. `as_str()` is the wire form.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code { $( $(#[$doc])* #[doc = $desc] $variant, )* }

        impl Code {
            /// Every code, in catalogue order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The stable snake_case string of this code.
            pub const fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $slug, )* }
            }

            /// Which family the code belongs to; the Python layer picks the exception class from it.
            pub const fn kind(self) -> Kind {
                match self { $( Code::$variant => Kind::$kind, )* }
            }

            /// One sentence saying what the code means.
            pub const fn description(self) -> &'static str {
                match self { $( Code::$variant => $desc, )* }
            }

            /// Looks a code up by its string.
            pub fn from_slug(s: &str) -> Option<Code> {
                match s { $( $slug => Some(Code::$variant), )* _ => None }
            }
        }
    };
}

/// The family of a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The input could not be read as the typed data it claims to be.
    TypedData,
    /// The signature bytes, or the digest handed with them, are unusable.
    Signature,
    /// An x402 invalid reason: the payment is bad (returned as data, never raised).
    Payment,
    /// A replay-protection outcome from a nonce store.
    Replay,
}

codes! {
    // --- input framing -------------------------------------------------------------------------
    PayloadTooLarge = "payload_too_large", TypedData, "the input is larger than the configured limit; nothing was parsed";
    InvalidJson = "invalid_json", TypedData, "the input is not well-formed UTF-8 JSON";
    DuplicateKey = "duplicate_key", TypedData, "a JSON object names the same key twice";
    InvalidInputType = "invalid_input_type", TypedData, "a Python value has a type this function does not take (a set, an arbitrary object, a non-pair batch item)";
    InvalidJsonNumber = "invalid_json_number", TypedData, "a JSON number is a float, an exponent, NaN, Infinity or -0 (in payment JSON also an integer outside 64 bits, which typed data reads exactly)";
    LimitExceeded = "limit_exceeded", TypedData, "the document has more types, fields, elements or nesting than the limits allow";
    // --- typed-data structure ------------------------------------------------------------------
    InvalidTypedData = "invalid_typed_data", TypedData, "the document lacks types, primaryType, domain or message, or one of them has the wrong shape";
    InvalidTypeName = "invalid_type_name", TypedData, "a type or field name is not a valid identifier, or a type string cannot be parsed";
    InvalidTypeDefinition = "invalid_type_definition", TypedData, "a struct definition repeats a field name or redefines an atomic type";
    UndeclaredType = "undeclared_type", TypedData, "a field or the primaryType refers to a struct type that is not declared";
    CyclicType = "cyclic_type", TypedData, "struct types refer to each other in a cycle no finite value can fill";
    MissingField = "missing_field", TypedData, "a field declared by the type is absent from the value";
    UnknownField = "unknown_field", TypedData, "the value has a field its type does not declare";
    InvalidValueType = "invalid_value_type", TypedData, "a value has the wrong JSON kind for its EIP-712 type";
    // --- atomic values ---------------------------------------------------------------------------
    NonCanonicalNumber = "non_canonical_number", TypedData, "a number string is neither canonical ASCII decimal (no +, spaces, underscores, exponents or leading zeros) nor, in typed data, 0x and hex digits (no sign)";
    NumberOutOfRange = "number_out_of_range", TypedData, "an integer does not fit its intN or uintN type";
    NegativeUnsigned = "negative_unsigned", TypedData, "a negative value was given for an unsigned type";
    InvalidAddress = "invalid_address", TypedData, "an address is not 0x followed by 40 hex digits";
    InvalidAddressChecksum = "invalid_address_checksum", TypedData, "a mixed-case address fails its EIP-55 checksum";
    InvalidBytes = "invalid_bytes", TypedData, "a bytes value is not 0x-prefixed, even-length hex";
    InvalidBytesLength = "invalid_bytes_length", TypedData, "a bytesN value does not have exactly N bytes";
    InvalidArrayLength = "invalid_array_length", TypedData, "a fixed-size array value has the wrong number of elements";
    // --- signatures ----------------------------------------------------------------------------
    InvalidDigest = "invalid_digest", Signature, "the digest is not exactly 32 bytes";
    InvalidSignatureEncoding = "invalid_signature_encoding", Signature, "the signature is not bytes or 0x-prefixed even-length hex";
    InvalidSignatureLength = "invalid_signature_length", Signature, "the signature length is not one the policy accepts (65, or 64 for EIP-2098)";
    InvalidSignatureV = "invalid_signature_v", Signature, "the recovery byte v is not 27 or 28 (or 0/1 where the policy allows it)";
    InvalidSignatureR = "invalid_signature_r", Signature, "r is zero or not below the curve order";
    InvalidSignatureS = "invalid_signature_s", Signature, "s is zero or not below the curve order";
    SignatureHighS = "signature_high_s", Signature, "s is above n/2 and the policy requires low-s (EIP-2 / USDC / OpenZeppelin)";
    SignatureRecoveryFailed = "signature_recovery_failed", Signature, "no public key can be recovered from this signature and digest";
    // --- x402 framing (ours; the SDKs have no code for these) ------------------------------------
    InvalidBase64 = "invalid_base64", Payment, "the payment header is not standard base64 (RFC 4648, + and /, = padding)";
    InvalidX402Version = "invalid_x402_version", Payment, "x402Version is missing or not 1 or 2";
    InvalidPayload = "invalid_payload", Payment, "the payment payload does not have the x402 shape for its version and scheme";
    InvalidPaymentRequirements = "invalid_payment_requirements", Payment, "the payment requirements break the x402 schema: a required member missing or of the wrong type (the message names it)";
    InvalidNetwork = "invalid_network", Payment, "the network is not one this verifier accepts";
    UnsupportedPayloadType = "unsupported_payload_type", Payment, "the payload's authorization kind does not fit the scheme or the requirements' assetTransferMethod";
    AmbiguousPayload = "ambiguous_payload", Payment, "the payload carries both an EIP-3009 authorization and a Permit2 authorization";
    AuthorizationWindowTooLong = "authorization_window_too_long", Payment, "validBefore / deadline lies further ahead than maxTimeoutSeconds plus the clock-skew allowance (or max_validity_seconds)";
    NeedsChainCheck = "needs_chain_check", Payment, "the signature is a smart-wallet form (ERC-6492 wrapper or a length ECDSA cannot have); only a chain check can decide it";
    // --- x402 Python SDK 2.25 reasons, same strings --------------------------------------------
    UnsupportedScheme = "unsupported_scheme", Payment, "the scheme is not exact (SDK: ERR_UNSUPPORTED_SCHEME)";
    NetworkMismatch = "network_mismatch", Payment, "accepted.network differs from the requirements' network";
    FailedToGetNetworkConfig = "invalid_exact_evm_failed_to_get_network_config", Payment, "the network is not eip155:<chainId> (or a known v1 name)";
    MissingEip712Domain = "missing_eip712_domain", Payment, "requirements.extra lacks the token's EIP-712 name or version";
    RecipientMismatch = "invalid_exact_evm_payload_recipient_mismatch", Payment, "authorization.to differs from payTo";
    AuthorizationValueMismatch = "invalid_exact_evm_payload_authorization_value_mismatch", Payment, "authorization.value differs from the required amount";
    ValidBeforeExpired = "invalid_exact_evm_payload_authorization_valid_before", Payment, "validBefore is earlier than now plus the time buffer";
    ValidAfterFuture = "invalid_exact_evm_payload_authorization_valid_after", Payment, "validAfter is later than now";
    InvalidExactSignature = "invalid_exact_evm_payload_signature", Payment, "the EIP-3009 signature is malformed, breaks the USDC rules or does not recover to authorization.from";
    Permit2InvalidSpender = "invalid_permit2_spender", Payment, "permit2Authorization.spender is not the x402 Permit2 proxy for the scheme";
    Permit2RecipientMismatch = "invalid_permit2_recipient_mismatch", Payment, "witness.to differs from payTo";
    Permit2DeadlineExpired = "permit2_deadline_expired", Payment, "deadline is earlier than now plus the time buffer";
    Permit2NotYetValid = "permit2_not_yet_valid", Payment, "witness.validAfter is later than now";
    Permit2AmountMismatch = "permit2_amount_mismatch", Payment, "permitted.amount differs from the required amount";
    Permit2TokenMismatch = "permit2_token_mismatch", Payment, "permitted.token differs from the required asset";
    Permit2InvalidAmount = "permit2_invalid_amount", Payment, "the exact Permit2 proxy reverts on a zero amount (InvalidAmount)";
    Permit2InvalidDestination = "permit2_invalid_destination", Payment, "the Permit2 proxy reverts on a zero recipient (InvalidDestination)";
    InvalidPermit2Signature = "invalid_permit2_signature", Payment, "the Permit2 signature is malformed or does not recover to permit2Authorization.from";
    UptoInvalidScheme = "invalid_upto_evm_scheme", Payment, "payload or requirements scheme is not upto";
    UptoNetworkMismatch = "invalid_upto_evm_network_mismatch", Payment, "accepted.network differs from the requirements' network (upto)";
    UptoFailedToGetNetworkConfig = "invalid_upto_evm_failed_to_get_network_config", Payment, "the network is not eip155:<chainId> (upto)";
    UptoFacilitatorMismatch = "upto_facilitator_mismatch", Payment, "witness.facilitator is not one of this verifier's facilitator addresses";
    UptoSettlementExceedsAmount = "invalid_upto_evm_payload_settlement_exceeds_amount", Payment, "an upto charge would exceed the permitted maximum";
    // --- chain checks (x402_verify.chain): the SDK's strings where it has the check -------------
    AssetNotDeployedContract = "asset_not_deployed_contract", Payment, "the asset has no code on the payment's chain";
    Permit2ProxyNotDeployed = "permit2_proxy_not_deployed", Payment, "Permit2 or the x402 Permit2 proxy named as spender has no code on the payment's chain";
    InsufficientBalance = "invalid_exact_evm_insufficient_balance", Payment, "the payer's token balance is below the amount (EIP-3009)";
    Permit2InsufficientBalance = "permit2_insufficient_balance", Payment, "the payer's token balance is below the amount (Permit2)";
    Permit2AllowanceRequired = "permit2_allowance_required", Payment, "the payer's ERC-20 allowance to Permit2 is below the amount";
    UndeployedSmartWallet = "invalid_exact_evm_payload_undeployed_smart_wallet", Payment, "a smart-wallet signature from an address with no code and no ERC-6492 deployment data";
    Eip3009NotSupported = "invalid_exact_evm_eip3009_not_supported", Payment, "the asset's authorizationState reverts: it is not an EIP-3009 token";
    PayerExposureExceeded = "payer_exposure_exceeded", Payment, "the payer's balance (Permit2: and allowance) does not cover this amount on top of its reserved, unsettled payments";
    ChainReadFailed = "chain_read_failed", Payment, "the chain could not be read for this payment (RPC down, timing out, answering garbage, wrong chain, no reader); refused, never accepted";
    // --- replay protection ----------------------------------------------------------------------
    Eip3009NonceAlreadyUsed = "invalid_exact_evm_nonce_already_used", Replay, "this EIP-3009 (chain, token, from, nonce) is already reserved or settled";
    Permit2NonceAlreadyUsed = "permit2_nonce_already_used", Replay, "this Permit2 (chain, owner, nonce) is already reserved or settled";
    ReservationNotFound = "reservation_not_found", Replay, "no live reservation under this key (never made, released or expired)";
    ReservationNotOwner = "reservation_not_owner", Replay, "the reservation belongs to another owner token";
    ReservationClosed = "reservation_closed", Replay, "the reservation is settled; it cannot be released or charged";
    ReservationNotUpto = "reservation_not_upto", Replay, "only upto reservations carry a session to charge";
    NonceStoreUnavailable = "nonce_store_unavailable", Replay, "the nonce store could not answer (down, timing out or full); the payment is refused, never accepted";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of the path to the offending field: `message.permitted.amount`, `message.items[3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PathSeg {
    Key(String),
    Index(usize),
}

/// A failure with a stable code, a human message and, for typed data, where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What went wrong, from the catalogue.
    pub code: Code,
    /// For a person: what was found and what was expected (never secret material).
    pub message: String,
    /// Innermost segment last once `finish_path` ran; built in reverse while unwinding.
    path: Vec<PathSeg>,
}

impl Error {
    /// An error at the root of the input (no path yet).
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), path: Vec::new() }
    }

    /// Adds the enclosing key while the error travels outwards (called innermost first).
    #[must_use]
    pub fn at_key(mut self, key: &str) -> Self {
        self.path.push(PathSeg::Key(key.to_owned()));
        self
    }

    /// Adds the enclosing array index while the error travels outwards.
    #[must_use]
    pub fn at_index(mut self, index: usize) -> Self {
        self.path.push(PathSeg::Index(index));
        self
    }

    /// The dotted path of the offending field (`message.permitted.amount`), empty at the root.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                PathSeg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathSeg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if path.is_empty() {
            write!(f, "{}: {}", self.code, self.message)
        } else {
            write!(f, "{} at {}: {}", self.code, path, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for `Err(Error::new(..))`.
pub fn fail<T>(code: Code, message: impl Into<String>) -> Result<T> {
    Err(Error::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{s}");
            assert_eq!(Code::from_slug(s), Some(c));
            assert!(!c.description().is_empty());
        }
    }

    #[test]
    fn path_is_built_outwards() {
        let e = Error::new(Code::NonCanonicalNumber, "x").at_key("amount").at_key("permitted").at_key("message");
        assert_eq!(e.path(), "message.permitted.amount");
        let e = Error::new(Code::MissingField, "x").at_key("to").at_index(3).at_key("items").at_key("message");
        assert_eq!(e.path(), "message.items[3].to");
    }
}
