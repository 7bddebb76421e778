#![no_main]
//! Fuzz target `typed_data_gen`: bytes drive a generator of well-formed typed-data documents;
//! see `check_typed_data_gen` in rust/core/tests/common/fuzz_checks.rs for the invariants.

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::check_typed_data_gen(data));
