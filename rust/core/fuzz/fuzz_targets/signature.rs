#![no_main]
//! Fuzz target `signature`: see `check_signature` in rust/core/tests/common/fuzz_checks.rs for the invariants.

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::check_signature(data));
