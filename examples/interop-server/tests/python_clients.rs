//! Two independent Python SignalR clients, `pysignalr` and `signalrcore` (exact versions in
//! `tests/python/requirements.txt`), against interop-server: runs the pytest suite in
//! `tests/python` with the interpreter of a virtual environment kept in
//! `target/python-venv` (made, and the requirements installed, when missing or stale), the
//! server binary in `INTEROP_SERVER_BIN`. The suite starts the server itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use signalr_tests::{output_with_timeout, python_venv, require};

/// The whole pytest run; the suite itself takes well under a minute.
const PYTEST_TIMEOUT: Duration = Duration::from_secs(180);

fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

#[test]
fn python_clients_against_interop_server() {
    let root = workspace_root();
    let requirements = root.join("tests/python/requirements.txt");
    let Some(python) = require(python_venv(&root.join("target/python-venv"), &requirements)) else {
        return;
    };

    let output = output_with_timeout(
        Command::new(&python)
            .args(["-m", "pytest", "-q", "--tb=native", "tests/python"])
            .current_dir(&root)
            .env("INTEROP_SERVER_BIN", env!("CARGO_BIN_EXE_interop-server"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "pytest tests/python",
        PYTEST_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Any non-zero exit fails, 5 (no tests collected) included.
    assert!(
        output.status.success(),
        "pytest failed ({}; exit code 5 means no test was collected):\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );

    // The closing line, such as `76 passed, 5 xfailed in 7.04s`.
    let summary = stdout
        .lines()
        .rev()
        .find(|line| line.contains(" passed") && line.contains(" in "))
        .unwrap_or_else(|| panic!("no pytest summary line:\n{stdout}"));
    let passed: u32 = summary
        .split(" passed")
        .next()
        .and_then(|head| head.rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed > 0, "pytest passed no test:\n{stdout}");
    // Strict xfails are known server bugs and client limitations: show them.
    for line in stdout.lines().filter(|line| line.starts_with("XFAIL")) {
        eprintln!("known: {line}");
    }
    eprintln!("pytest: {}", summary.trim_matches(|c| c == '=' || c == ' '));
}
