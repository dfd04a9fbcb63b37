//! `SseDecoder` on arbitrary bytes in arbitrary chunks, with a round trip of every event
//! through `write_sse_event`. Input layout: see `signalr_core_fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    signalr_core_fuzz::fuzz_sse(data);
});
