#![no_main]
//! Fuzz target `segment_recovery`: the harness is cairn_fuzz::segment_recovery, shared with the regression replay test.

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        cairn_fuzz::install_panic_hook();
    },
    |data: &[u8]| {
        cairn_fuzz::segment_recovery(data);
    }
);
