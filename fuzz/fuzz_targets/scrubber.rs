//! libFuzzer entry for [`airlock_fuzz_checks::scrubber`]; the check and what it
//! asserts are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock_fuzz_checks::scrubber(data));
