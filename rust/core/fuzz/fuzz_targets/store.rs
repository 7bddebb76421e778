#![no_main]
//! Fuzz target `store`: bytes as a program of reserve/settle/release/charge/sweep/clock steps
//! run against `MemoryStore` and a model; see `check_store` in
//! rust/core/tests/common/fuzz_checks.rs for the invariants.

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::check_store(data));
