#![no_main]
//! Fuzz target `request_frame`: the harness is cairn_fuzz::request_frame, shared with the regression replay test.

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        cairn_fuzz::install_panic_hook();
    },
    |data: &[u8]| {
        cairn_fuzz::request_frame(data);
    }
);
