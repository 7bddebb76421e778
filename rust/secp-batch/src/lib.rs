//! Randomized batch verification of secp256k1 ECDSA signatures against known public keys, in the
//! exact sense of Ethereum's `ecrecover`: a batch holds only if every signature would recover
//! to its key.
//!
//! For a signature (r, s, parity) over digest z, recovery lifts R = (r, y of that parity) and
//! returns Q = r⁻¹(s·R − z·G). So recovery yields a given key Q exactly when
//! R = (z/s)·G + (r/s)·Q, an equation between points that fixes R's y, not only its x: a
//! signature whose v was flipped fails it even though a plain ECDSA verify would pass. For a
//! batch, with independent uniform 128-bit aᵢ drawn from the OS for every call,
//!
//! ```text
//! Σ aᵢ·Rᵢ − (Σ aᵢ·zᵢ/sᵢ)·G − Σⱼ (Σ_{i of key j} aᵢ·rᵢ/sᵢ)·Qⱼ = O
//! ```
//!
//! holds for sure when every item's equation holds, and, when some item's does not, with
//! probability at most 2⁻¹¹⁸ over aᵢ uniform in [1, 2¹¹⁸) (the group has prime order; fixing
//! all other aᵢ, at most one value of a bad item's aᵢ zeroes the sum).
//!
//! A failed check can also name its one bad item (`locate`): the same sum with weights
//! (i+1)·aᵢ, P', equals (b+1)·P when b is the only bad item, and equals k·P for no k ≤ n when
//! two or more are bad, except with probability at most n·2⁻¹¹⁸ (≤ 2⁻¹⁰⁸ for n ≤ 1024). That is
//! why the aᵢ have 118 bits: (i+1)·aᵢ stays below 2¹²⁸, one Pippenger entry per item.
//!
//! The arithmetic is libsecp256k1's own (field, scalar, group, and the Pippenger bucket method
//! of `ecmult_multi_var`), compiled from the headers secp256k1-sys ships (vendored in
//! `depend/`) behind a small C shim (`csrc/shim.c`) whose symbols are prefixed `x402b_`. The
//! shim's driver feeds the 128-bit randomizers on the Rᵢ to Pippenger unsplit, and splits only
//! the full-size scalars of G and the keys with the library's endomorphism: a repeat payer's
//! item then costs one bucket entry instead of two (about 1.7x less work at 256 items).
//!
//! # Safety invariants (the only `unsafe` of x402-verify lives here)
//! - The C functions read and write only through the pointers and lengths passed, never keep a
//!   pointer past the call, and touch no global state except the constant G tables; so they are
//!   safe to call from any thread at once.
//! - Every type crossing the boundary is `#[repr(C)]` of byte arrays (and one byte), alignment 1,
//!   no padding; the sizes are checked at compile time below against the C structs' layout.
//! - Every slice handed over has exactly the length passed with it: `prepare` writes `n` outputs
//!   and `n` flags into buffers allocated here with that length; `check` reads `n` items, `n` key
//!   indices, `16n` randomizer bytes and `64·n_keys` key bytes from slices of those lengths.
//! - The C side re-validates its inputs (points on the curve, scalars below n, key indices below
//!   `n_keys`) and reports a malformed input as an error instead of computing with it, so a bug
//!   on this side can make a batch fail, never read out of bounds or pass.

use std::fmt;

/// One signature to prepare: r, s and the digest z as 32-byte big-endian integers, and the
/// y parity that v (27/28, or EIP-2098's top bit) carries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInput {
    /// r, big-endian.
    pub r: [u8; 32],
    /// s, big-endian.
    pub s: [u8; 32],
    /// The digest z, big-endian (read mod n, as recovery reads it).
    pub z: [u8; 32],
    /// Whether R's y is odd (v = 28).
    pub y_odd: bool,
}

/// A signature ready for batching: R as affine x || y, u1 = z/s and u2 = r/s mod n.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
    rx: [u8; 32],
    ry: [u8; 32],
    u1: [u8; 32],
    u2: [u8; 32],
}

/// A point on the curve, as 64 bytes x || y (the uncompressed key without its 0x04).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 64]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl PublicKey {
    /// `None` unless x and y are below p and the point is on the curve.
    pub fn from_xy(xy: &[u8; 64]) -> Option<Self> {
        // SAFETY: the C function reads exactly 64 bytes from the pointer, which `xy` provides.
        let valid = unsafe { ffi::x402b_point_valid(xy.as_ptr()) };
        (valid == 1).then_some(PublicKey(*xy))
    }

    /// The 64 bytes x || y.
    pub fn as_xy(&self) -> &[u8; 64] {
        &self.0
    }
}

/// Why a batch could not be checked (never a verdict on its signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The OS random source failed: no randomizers, so no batch check.
    Randomness(String),
    /// libsecp256k1 could not allocate its working memory.
    OutOfMemory,
    /// An input failed the C side's re-validation (a bug on the Rust side of this crate).
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Randomness(e) => write!(f, "the OS random source failed: {e}"),
            Error::OutOfMemory => f.write_str("out of memory in the batch check"),
            Error::Malformed => f.write_str("malformed input to the batch check"),
        }
    }
}

impl std::error::Error for Error {}

/// The outcome of one randomized check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Every item recovers to its key (up to the 2⁻¹¹⁸ chance above).
    pub holds: bool,
    /// Points multiplied: items + keys used + G, for each sum computed (two when locating).
    pub points: usize,
    /// When asked to locate and the check failed: the index of the one bad item, if exactly
    /// one is bad (up to the n·2⁻¹¹⁸ chance above); `None` when two or more are.
    pub bad: Option<usize>,
}

/// The most items `check` can locate a bad one among.
pub const MAX_LOCATE: usize = 1024;

/// Prepares signatures for `check`: `None` for one whose r or s is not in [1, n-1] or whose r
/// is the x of no curve point (recovery fails on those too). One shared inversion serves every
/// 1/s.
pub fn prepare(sigs: &[SigInput]) -> Result<Vec<Option<Prepared>>, Error> {
    prepare_with(sigs, true)
}

/// True when this CPU computes the lifts' square roots with the AVX-512 IFMA kernel (each
/// candidate checked by libsecp256k1 before use, so results never depend on it).
pub fn vector_roots() -> bool {
    // SAFETY: takes no arguments; reads the CPU's feature flags only.
    unsafe { ffi::x402b_vsqrt_available() == 1 }
}

/// `prepare`, with the vector square roots allowed or not (the tests compare the two).
fn prepare_with(sigs: &[SigInput], vector: bool) -> Result<Vec<Option<Prepared>>, Error> {
    let n = sigs.len();
    let mut out = vec![Prepared { rx: [0; 32], ry: [0; 32], u1: [0; 32], u2: [0; 32] }; n];
    let mut ok = vec![0u8; n];
    // SAFETY: `sigs`, `out` and `ok` each hold exactly n elements of the C layouts (see the
    // layout assertions); the C function writes only out[..n] and ok[..n].
    let done = unsafe { ffi::x402b_prepare_with(sigs.as_ptr(), n, out.as_mut_ptr(), ok.as_mut_ptr(), i32::from(vector)) };
    if done != 1 {
        return Err(Error::OutOfMemory);
    }
    Ok(out.into_iter().zip(ok).map(|(p, ok)| (ok == 1).then_some(p)).collect())
}

/// Checks the randomized batch equation for `items`, item i against `keys[key_of[i]]`, with
/// fresh OS randomizers; with `locate`, a failed check also names its one bad item (see the
/// crate docs). An empty batch holds.
///
/// # Panics
/// If `key_of` is not as long as `items`, names a key outside `keys`, or `locate` is asked for
/// more than `MAX_LOCATE` items (caller bugs).
pub fn check(items: &[Prepared], key_of: &[u32], keys: &[PublicKey], locate: bool) -> Result<Outcome, Error> {
    let mut a = vec![0u8; 16 * items.len()];
    getrandom::fill(&mut a).map_err(|e| Error::Randomness(e.to_string()))?;
    for w in a.chunks_exact_mut(16) {
        // Uniform in [1, 2^118): the top 10 of 128 bits cleared; a zero weight would drop its
        // item from the sum (2^-118 likely, but free to rule out).
        w[0] = 0;
        w[1] &= 0x3f;
        if w.iter().all(|&b| b == 0) {
            w[15] = 1;
        }
    }
    check_with(items, key_of, keys, locate, &a)
}

/// A uniform random u64 from the OS source the randomizers come from (for callers choosing
/// which items to check first, so that an adversary cannot place bad items around them).
pub fn random_u64() -> Result<u64, Error> {
    getrandom::u64().map_err(|e| Error::Randomness(e.to_string()))
}

/// `check` with caller-chosen randomizers: only for this crate's tests, which show what fixed
/// (predictable) randomizers would let through.
#[cfg(test)]
fn check_fixed(items: &[Prepared], key_of: &[u32], keys: &[PublicKey], a: &[u8]) -> Result<Outcome, Error> {
    check_with(items, key_of, keys, false, a)
}

fn check_with(items: &[Prepared], key_of: &[u32], keys: &[PublicKey], locate: bool, a: &[u8]) -> Result<Outcome, Error> {
    assert_eq!(items.len(), key_of.len(), "one key index per item");
    assert!(key_of.iter().all(|&k| (k as usize) < keys.len()), "key index out of range");
    assert!(!locate || items.len() <= MAX_LOCATE, "locate takes at most MAX_LOCATE items");
    assert_eq!(a.len(), 16 * items.len());
    if items.is_empty() {
        return Ok(Outcome { holds: true, points: 0, bad: None });
    }
    let key_bytes: Vec<u8> = keys.iter().flat_map(|k| k.0).collect();
    let mut points = 0usize;
    let mut bad = -1i64;
    // SAFETY: `items` and `key_of` hold n elements, `a` 16n bytes, `key_bytes` 64·keys.len()
    // bytes (asserted above); the C function reads only those and writes only `points`, `bad`.
    let r = unsafe {
        ffi::x402b_check(items.as_ptr(), key_of.as_ptr(), a.as_ptr(), items.len(), key_bytes.as_ptr(), keys.len(), i32::from(locate), &mut points, &mut bad)
    };
    let bad = usize::try_from(bad).ok().filter(|&b| b < items.len());
    match r {
        1 => Ok(Outcome { holds: true, points, bad: None }),
        0 => Ok(Outcome { holds: false, points, bad }),
        -2 => Err(Error::OutOfMemory),
        _ => Err(Error::Malformed),
    }
}

// The C structs are byte arrays only: these sizes are their layouts.
const _: () = assert!(size_of::<SigInput>() == 97 && align_of::<SigInput>() == 1);
const _: () = assert!(size_of::<Prepared>() == 128 && align_of::<Prepared>() == 1);

mod ffi {
    use super::{Prepared, SigInput};

    extern "C" {
        pub fn x402b_point_valid(xy64: *const u8) -> i32;
        pub fn x402b_prepare_with(sigs: *const SigInput, n: usize, out: *mut Prepared, ok: *mut u8, vector: i32) -> i32;
        pub fn x402b_vsqrt_available() -> i32;
        #[cfg(test)]
        pub fn x402b_vsqrt_mismatches(groups: usize) -> i32;
        pub fn x402b_check(
            items: *const Prepared,
            key: *const u32,
            a16: *const u8,
            n: usize,
            keys64: *const u8,
            n_keys: usize,
            locate: i32,
            points: *mut usize,
            bad: *mut i64,
        ) -> i32;
        pub fn x402b_selftest() -> i32;
    }
}

/// True when the shim's constant tables hold G and 2¹²⁸·G (a check of the build, for tests).
pub fn selftest() -> bool {
    // SAFETY: takes no arguments and reads only the shim's constant tables.
    unsafe { ffi::x402b_selftest() == 1 }
}

#[cfg(test)]
mod tests;
