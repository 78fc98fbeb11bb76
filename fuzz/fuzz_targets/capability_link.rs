#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::capability_link(data));
