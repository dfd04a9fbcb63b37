//! `client-cli`: a small command-line SignalR client built on `signalr-client`.
//!
//! ```text
//! client-cli URL METHOD [JSON_ARGS...] [--stream] [--on EVENT]... [--messagepack]
//!            [--transport websockets|sse|longpolling] [--token TOKEN] [--wait SECONDS]
//! ```
//!
//! It connects, prints `EVENT <json args>` for each server call to an `--on` event, invokes
//! `METHOD` with the JSON arguments and prints its result as JSON (or, with `--stream`,
//! streams it and prints each item as a JSON line), waits `--wait` seconds for more events,
//! and stops. Errors go to stderr, with exit code 1.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use signalr_client::{ConnectionEvent, HubConnection, HubConnectionBuilder, TransportType};
use signalr_core::{Binary, Encoding, RawValue, Timestamp};

const USAGE: &str = "\
usage: client-cli URL METHOD [JSON_ARGS...] [options]

Connects to the hub at URL, invokes METHOD with the arguments (each one JSON: 42, '\"text\"',
'{\"Name\":\"x\"}') and prints the result as JSON.

options:
  --stream              stream METHOD instead: print each item as a JSON line
  --on EVENT            print `EVENT <json args>` for each server call to EVENT (repeatable)
  --messagepack         use the MessagePack protocol (default: JSON)
  --transport T         websockets, sse or longpolling (default: the best the server offers)
  --token TOKEN         bearer token for every request
  --wait SECONDS        after the call, keep printing events this long (default: 0)
  -h, --help            this help";

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    url: String,
    method: String,
    args: Vec<serde_json::Value>,
    stream: bool,
    events: Vec<String>,
    messagepack: bool,
    transport: Option<TransportType>,
    token: Option<String>,
    wait: Duration,
}

/// Parses the arguments after the program name; `Ok(None)` asks for the help.
fn parse(argv: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut argv = argv.into_iter();
    let mut positional = Vec::new();
    let mut options = Options {
        url: String::new(),
        method: String::new(),
        args: Vec::new(),
        stream: false,
        events: Vec::new(),
        messagepack: false,
        transport: None,
        token: None,
        wait: Duration::ZERO,
    };
    let value = |argv: &mut dyn Iterator<Item = String>, name: &str| {
        argv.next().ok_or_else(|| format!("{name} needs a value"))
    };
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--stream" => options.stream = true,
            "--messagepack" => options.messagepack = true,
            "--on" => options.events.push(value(&mut argv, "--on")?),
            "--token" => options.token = Some(value(&mut argv, "--token")?),
            "--transport" => {
                let name = value(&mut argv, "--transport")?;
                options.transport = Some(match name.to_ascii_lowercase().as_str() {
                    "websockets" | "ws" => TransportType::WebSockets,
                    "sse" | "serversentevents" => TransportType::ServerSentEvents,
                    "longpolling" | "lp" => TransportType::LongPolling,
                    _ => {
                        return Err(format!(
                            "unknown transport '{name}' (websockets, sse or longpolling)"
                        ));
                    }
                });
            }
            "--wait" => {
                let text = value(&mut argv, "--wait")?;
                options.wait = text
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("--wait: '{text}' is not a number of seconds"))?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let (Some(url), Some(method)) = (positional.next(), positional.next()) else {
        return Err("URL and METHOD are required".into());
    };
    options.url = url;
    options.method = method;
    for (i, text) in positional.enumerate() {
        let value = serde_json::from_str(&text)
            .map_err(|e| format!("argument {} is not JSON ({e}): {text}", i + 1))?;
        options.args.push(value);
    }
    Ok(Some(options))
}

/// Any value from the server, as JSON. MessagePack `bin` becomes a base64 string and the
/// timestamp extension an ISO 8601 string, as the JSON protocol carries them.
struct Json(serde_json::Value);

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(Json)
    }
}

/// A value through the JSON protocol's eyes.
fn as_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, String> {
    RawValue::encode(Encoding::Json, value)
        .and_then(|raw| raw.deserialize_owned())
        .map_err(|e| e.to_string())
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        as_json(&Binary(v.to_vec())).map_err(E::custom)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(d).map(|j| j.0)
    }
    /// MessagePack extensions: the timestamp (-1) as a date, others as `[type, base64]`.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let (tag, Binary(data)): (i8, Binary) = Deserialize::deserialize(d)?;
        if tag == -1 {
            let mut packed = match data.len() {
                4 => vec![0xd6],
                8 => vec![0xd7],
                n => vec![0xc7, u8::try_from(n).map_err(de::Error::custom)?],
            };
            packed.push(0xff);
            packed.extend_from_slice(&data);
            let timestamp: Timestamp = RawValue::from_msgpack(packed)
                .and_then(|raw| raw.deserialize_owned())
                .map_err(de::Error::custom)?;
            return as_json(&timestamp).map_err(de::Error::custom);
        }
        let data = as_json(&Binary(data)).map_err(de::Error::custom)?;
        Ok(serde_json::Value::Array(vec![tag.into(), data]))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Json(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some((Json(key), Json(value))) = map.next_entry()? {
            let key = match key {
                serde_json::Value::String(key) => key,
                other => other.to_string(),
            };
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Prints `EVENT [args...]` for each call to `event` (up to eight arguments; trailing
/// nulls are left out, since a handler cannot tell them from missing arguments).
fn print_event(connection: &HubConnection, event: &str) {
    let name = event.to_owned();
    #[allow(clippy::too_many_arguments)]
    let handler = move |a: Json, b: Json, c: Json, d: Json, e: Json, f: Json, g: Json, h: Json| {
        let mut args: Vec<serde_json::Value> = [a, b, c, d, e, f, g, h].map(|j| j.0).into();
        while args.last().is_some_and(serde_json::Value::is_null) {
            args.pop();
        }
        println!("{name} {}", serde_json::Value::Array(args));
        async {}
    };
    connection.on(event, handler);
}

async fn run(options: Options) -> Result<(), String> {
    let mut builder = HubConnectionBuilder::new(&options.url);
    if options.messagepack {
        builder = builder.messagepack();
    }
    if let Some(transport) = options.transport {
        builder = builder.transports([transport]);
    }
    if let Some(token) = options.token.clone() {
        builder = builder.access_token_provider(move || {
            let token = token.clone();
            async move { Ok(token) }
        });
    }
    let connection = builder.build().map_err(|e| e.to_string())?;
    for event in &options.events {
        print_event(&connection, event);
    }
    let mut lifecycle = connection.events();
    connection.start().await.map_err(|e| e.to_string())?;
    let outcome = call(&connection, &options).await;
    let outcome = match outcome {
        Ok(()) => wait(&mut lifecycle, options.wait).await,
        Err(err) => Err(err),
    };
    connection.stop().await;
    outcome
}

/// Invokes or streams the method, printing what comes back.
async fn call(connection: &HubConnection, options: &Options) -> Result<(), String> {
    let args = options
        .args
        .iter()
        .map(|value| RawValue::encode(Encoding::Json, value))
        .collect::<Result<Vec<RawValue>, _>>()
        .map_err(|e| e.to_string())?;
    if options.stream {
        let mut items = connection
            .stream::<Json, _>(&options.method, args)
            .await
            .map_err(|e| e.to_string())?;
        while let Some(item) = items.next().await {
            let Json(item) = item.map_err(|e| e.to_string())?;
            println!("{item}");
        }
    } else {
        let Json(result) = connection
            .invoke(&options.method, args)
            .await
            .map_err(|e| e.to_string())?;
        println!("{result}");
    }
    Ok(())
}

/// Keeps the connection (and its event printing) for `duration`, unless it closes or
/// Ctrl-C comes first.
async fn wait(
    lifecycle: &mut tokio::sync::broadcast::Receiver<ConnectionEvent>,
    duration: Duration,
) -> Result<(), String> {
    if duration.is_zero() {
        return Ok(());
    }
    let closed = async {
        loop {
            match lifecycle.recv().await {
                Ok(ConnectionEvent::Closed(error)) => return error,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    };
    tokio::select! {
        () = tokio::time::sleep(duration) => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
        error = closed => match error {
            Some(error) => Err(format!("the connection closed: {error}")),
            None => Ok(()),
        },
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("error: {err}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_everything() {
        let options = parse(args(&[
            "http://h/hub",
            "Add",
            "1",
            "-2",
            "--on",
            "A",
            "--stream",
            "--on",
            "B",
            "--messagepack",
            "--transport",
            "sse",
            "--token",
            "t",
            "--wait",
            "1.5",
            "{\"Name\":\"x\"}",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(options.url, "http://h/hub");
        assert_eq!(options.method, "Add");
        assert_eq!(
            options.args,
            [1.into(), (-2).into(), serde_json::json!({"Name": "x"})]
        );
        assert_eq!(options.events, ["A", "B"]);
        assert!(options.stream && options.messagepack);
        assert_eq!(options.transport, Some(TransportType::ServerSentEvents));
        assert_eq!(options.token.as_deref(), Some("t"));
        assert_eq!(options.wait, Duration::from_millis(1500));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(args(&["http://h/hub"])).is_err());
        assert!(parse(args(&["http://h/hub", "M", "not json"])).is_err());
        assert!(
            parse(args(&[
                "http://h/hub",
                "M",
                "--transport",
                "carrier-pigeon"
            ]))
            .is_err()
        );
        assert!(parse(args(&["http://h/hub", "M", "--wait", "-1"])).is_err());
        assert!(parse(args(&["http://h/hub", "M", "--bogus"])).is_err());
        assert!(parse(args(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn messagepack_values_read_as_json() {
        let value = serde_json::json!({"a": [1, "x", null, true, 1.5]});
        let packed = RawValue::encode(Encoding::MessagePack, &value).unwrap();
        assert_eq!(packed.deserialize_owned::<Json>().unwrap().0, value);
        let bytes = RawValue::encode(Encoding::MessagePack, &Binary(vec![1, 2, 3])).unwrap();
        assert_eq!(bytes.deserialize_owned::<Json>().unwrap().0, "AQID");
        for (seconds, nanos, text) in [
            (946_684_800, 0, "2000-01-01T00:00:00Z"),
            (1_700_000_000, 500_000_000, "2023-11-14T22:13:20.5Z"),
            (-1, 0, "1969-12-31T23:59:59Z"),
        ] {
            let t = Timestamp::from_unix(seconds, nanos).unwrap();
            let packed = RawValue::encode(Encoding::MessagePack, &t).unwrap();
            assert_eq!(packed.deserialize_owned::<Json>().unwrap().0, text);
        }
    }
}
