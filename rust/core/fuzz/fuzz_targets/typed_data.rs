#![no_main]
//! Fuzz target `typed_data`: see `check_typed_data` in rust/core/tests/common/fuzz_checks.rs for the invariants.

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::check_typed_data(data));
