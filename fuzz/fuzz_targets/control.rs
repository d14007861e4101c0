//! The control socket's request line: any line gives a request or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = vipd::daemon::control::parse(line);
    }
});
