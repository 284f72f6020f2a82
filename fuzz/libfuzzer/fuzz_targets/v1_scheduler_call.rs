#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel_fuzz::run("v1_scheduler_call", data));
