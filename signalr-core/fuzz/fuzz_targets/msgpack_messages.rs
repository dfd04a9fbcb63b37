//! `MessageReader<MessagePackHubProtocol>` on arbitrary bytes in arbitrary chunks, with a
//! round trip through the writer for every message parsed. Input layout: see
//! `signalr_core_fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr_core::{HubMessage, JsonHubProtocol, MessagePackHubProtocol};
use signalr_core_fuzz::Expected;

/// What parsing the MessagePack writer's output must give back.
fn normalize(message: &HubMessage) -> Expected {
    let mut message = message.clone();
    // Intended: a Close's empty error is written as nil, as ASP.NET Core writes it
    // (`string.IsNullOrEmpty(message.Error)`), so it comes back as no error.
    if let HubMessage::Close(m) = &mut message {
        if m.error.as_deref() == Some("") {
            m.error = None;
        }
    }
    Expected::Message(message)
}

fuzz_target!(|data: &[u8]| {
    signalr_core_fuzz::fuzz_messages(
        MessagePackHubProtocol::new(),
        JsonHubProtocol::new(),
        data,
        normalize,
    );
});
