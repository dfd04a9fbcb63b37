//! The `conduit` server: `conduit --bind 127.0.0.1:8080 [--redis URL] [--time-scale F] ...`
//! (see CONTRACT.md). Prints `conduit listening on http://ADDR` once it accepts
//! connections, and logs to stderr (`RUST_LOG` sets the level; default `info`).

use conduit::{Config, start};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err}");
            return std::process::ExitCode::from(2);
        }
    };
    let running = match start(config).await {
        Ok(running) => running,
        Err(err) => {
            tracing::error!(error = %err, "could not start");
            return std::process::ExitCode::FAILURE;
        }
    };
    announce(running.addr, running.demo_key.as_deref());
    match running.wait().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The only stdout output: the demo key (with `--seed-demo`) and the ready line tests wait
/// for.
#[allow(clippy::print_stdout)]
fn announce(addr: std::net::SocketAddr, demo_key: Option<&str>) {
    if let Some(key) = demo_key {
        println!("demo key: {key}");
    }
    println!("conduit listening on http://{addr}");
}
