#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| registry_core::fuzzing::chart(data));
