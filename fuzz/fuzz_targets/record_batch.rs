#![no_main]
//! Fuzz target `record_batch`: the harness is cairn_fuzz::record_batch, shared with the regression replay test.

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        cairn_fuzz::install_panic_hook();
    },
    |data: &[u8]| {
        cairn_fuzz::record_batch(data);
    }
);
