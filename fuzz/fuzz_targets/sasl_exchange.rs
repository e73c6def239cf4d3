#![no_main]
//! Fuzz target `sasl_exchange`: the harness is cairn_fuzz::sasl_exchange, shared with the regression replay test.

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        cairn_fuzz::install_panic_hook();
    },
    |data: &[u8]| {
        cairn_fuzz::sasl_exchange(data);
    }
);
