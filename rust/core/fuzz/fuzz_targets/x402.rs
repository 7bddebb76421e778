#![no_main]
//! Fuzz target `x402`: bytes as a payment header / payload JSON (decode, parse, verify against
//! fixed requirements at several clocks) and as requirements JSON; see `check_x402` in
//! rust/core/tests/common/fuzz_checks.rs for the invariants.

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::check_x402(data));
