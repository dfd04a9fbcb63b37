//! `MessageReader<JsonHubProtocol>` on arbitrary bytes in arbitrary chunks, with a round trip
//! through the writer for every message parsed. Input layout: see `signalr_core_fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr_core::{CompletionResult, HubMessage, JsonHubProtocol, MessagePackHubProtocol};
use signalr_core_fuzz::Expected;

/// What parsing the JSON writer's output must give back.
fn normalize(message: &HubMessage) -> Expected {
    let mut message = message.clone();
    match &mut message {
        // Intended: an empty error is no error. The writer omits it, as ASP.NET Core's does
        // (`!string.IsNullOrEmpty(message.Error)`), so the completion comes back void.
        HubMessage::Completion(m) if matches!(&m.result, CompletionResult::Error(e) if e.is_empty()) =>
        {
            m.result = CompletionResult::Void;
        }
        _ => {}
    }
    Expected::Message(message)
}

fuzz_target!(|data: &[u8]| {
    signalr_core_fuzz::fuzz_messages(
        JsonHubProtocol::new(),
        MessagePackHubProtocol::new(),
        data,
        normalize,
    );
});
