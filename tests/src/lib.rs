//! Test harness shared by the workspace's interop tests: finding Node and the official
//! client, starting and stopping server processes on loopback, and skipping with a printed
//! reason when a prerequisite is missing (or failing instead, when `SIGNALR_REQUIRE_ALL=1`,
//! as `.ci/run` sets it).

// Test support: failing loudly is the point here.
#![allow(clippy::print_stderr, clippy::panic, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The folder holding `package.json` and the Node scripts.
pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// Returns `Some(value)`, or skips: prints the reason and returns `None`. When the
/// environment has `SIGNALR_REQUIRE_ALL=1`, a missing prerequisite fails the test instead.
pub fn require<T>(prerequisite: Result<T, String>) -> Option<T> {
    match prerequisite {
        Ok(value) => Some(value),
        Err(reason) => {
            if std::env::var("SIGNALR_REQUIRE_ALL").is_ok_and(|v| v == "1") {
                panic!("required test prerequisite missing: {reason}");
            }
            eprintln!("SKIPPED: {reason}");
            None
        }
    }
}

/// Node with the official client installed under `tests/node/node_modules`.
pub fn node() -> Result<PathBuf, String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node not found ({e})"))?;
    if !version.status.success() {
        return Err("node --version failed".into());
    }
    if !node_dir().join("node_modules/@microsoft/signalr").exists() {
        return Err(format!(
            "@microsoft/signalr is not installed: run `npm ci` in {}",
            node_dir().display()
        ));
    }
    Ok(PathBuf::from("node"))
}

/// A child process that is killed (by its own pid) when dropped.
#[derive(Debug)]
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Starts `command` with stdout and stderr inherited.
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        command.stdin(Stdio::null()).spawn().map(ChildGuard)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// The child's stderr, when it was piped (`Stdio::piped()` on the command) and not
    /// taken yet.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.0.stderr.take()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listened on {addr} within {timeout:?}"))
}

/// Runs a script from `tests/node` with arguments, failing after `timeout`.
pub fn run_node_script(script: &str, args: &[String], timeout: Duration) -> Result<Output, String> {
    let child = Command::new("node")
        .arg(node_dir().join(script))
        .args(args)
        .current_dir(node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn node: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.map_err(|e| format!("node: {e}")),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            Err(format!("node {script} did not finish within {timeout:?}"))
        }
    }
}

impl ChildGuard {
    /// Starts `command` with stdout piped, and waits at most `timeout` for a line starting
    /// with `prefix` (such as a server's `listening on http://...`). Returns the guard and
    /// the rest of that line, trimmed. Other stdout lines are copied to the test's stderr,
    /// so the child never blocks on a full pipe.
    pub fn spawn_until_line(
        command: &mut Command,
        prefix: &str,
        timeout: Duration,
    ) -> Result<(Self, String), String> {
        use std::io::BufRead as _;
        let mut guard = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map(ChildGuard)
            .map_err(|e| format!("spawn {command:?}: {e}"))?;
        let stdout = guard.0.stdout.take().expect("piped stdout");
        let wanted = prefix.to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = false;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix(&wanted) {
                    Some(rest) if !found => {
                        found = true;
                        let _ = tx.send(rest.trim().to_owned());
                    }
                    _ => eprintln!("{line}"),
                }
            }
        });
        match rx.recv_timeout(timeout) {
            Ok(rest) => Ok((guard, rest)),
            Err(_) => Err(format!(
                "{command:?} printed no line starting with {prefix:?} within {timeout:?}"
            )),
        }
    }
}

/// Waits at most `timeout` for `child` to exit and collects its output; kills it (by its
/// pid) on timeout.
fn output_within(child: Child, what: &str, timeout: Duration) -> Result<Output, String> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.map_err(|e| format!("{what}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            Err(format!("{what} did not finish within {timeout:?}"))
        }
    }
}

/// Runs `code` as an ES module with `node --input-type=module -e` (so top-level `await`
/// works) in `tests/node`, with `args` as `process.argv[1..]`, failing after `timeout`.
pub fn run_node_eval(code: &str, args: &[String], timeout: Duration) -> Result<Output, String> {
    let child = Command::new("node")
        .args(["--input-type=module", "-e", code])
        .args(args)
        .current_dir(node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn node: {e}"))?;
    output_within(child, "node -e", timeout)
}

/// An HTTP response as Node's `fetch` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, or empty.
    pub content_type: String,
    /// The body, as text.
    pub body: String,
}

/// `GET url` with Node's built-in `fetch`, as a browser would load a page or a script.
pub fn node_fetch(url: &str, timeout: Duration) -> Result<Fetched, String> {
    const FETCH: &str = r#"
        const response = await fetch(process.argv[1]);
        const body = await response.text();
        process.stdout.write(`${response.status}\n${response.headers.get("content-type") ?? ""}\n${body}`);
    "#;
    let output = run_node_eval(FETCH, &[url.to_owned()], timeout)?;
    if !output.status.success() {
        return Err(format!(
            "fetch {url} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8(output.stdout).map_err(|e| format!("fetch {url}: {e}"))?;
    let mut parts = text.splitn(3, '\n');
    let status = parts.next().and_then(|s| s.parse().ok());
    let (Some(status), Some(content_type), Some(body)) = (status, parts.next(), parts.next())
    else {
        return Err(format!("fetch {url}: unexpected output {text:?}"));
    };
    Ok(Fetched {
        status,
        content_type: content_type.to_owned(),
        body: body.to_owned(),
    })
}

/// Runs Node's built-in test runner, `node --test --test-reporter=tap FILES...`, in
/// `tests/node` with the extra environment variables `env`, failing after `timeout`.
///
/// The runner exits 0 when every test passed; tests marked `todo` may fail without failing
/// the run (TAP marks them `# TODO`). Node runs each file in a child process of its own, so
/// on Unix the runner gets a process group of its own and, on timeout, that whole group
/// (the runner and the children it started) is killed.
pub fn run_node_tests(
    files: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output, String> {
    run_node_tests_with_args(&[], files, env, timeout)
}

/// As [`run_node_tests`], with extra options for the runner before the files, such as
/// `--test-concurrency=N` (how many files run at once; Node's default is one less than the
/// number of CPUs, so a single file at a time on two).
pub fn run_node_tests_with_args(
    args: &[&str],
    files: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output, String> {
    let mut command = Command::new("node");
    command
        .arg("--test")
        .arg("--test-reporter=tap")
        .args(args)
        .args(files)
        .envs(env.iter().copied())
        .current_dir(node_dir());
    let what = format!("node --test {}", files.join(" "));
    output_with_timeout(&mut command, &what, timeout)
}

/// The Node test files in `tests/node` whose names end in `suffix` (such as `.test.mjs`),
/// sorted by name.
pub fn node_test_files(suffix: &str) -> Result<Vec<String>, String> {
    let dir = node_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", dir.display()))?;
        if let Some(name) = entry.file_name().to_str() {
            if name.ends_with(suffix) && entry.path().is_file() {
                files.push(name.to_owned());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A Redis for a test: a `redis-server` this harness started on a free loopback port (killed
/// by its pid when dropped), or, when the binary is missing, the one `REDIS_URL` names or
/// that answers on `127.0.0.1:6379`.
#[derive(Debug)]
pub struct RedisGuard {
    port: u16,
    url: String,
    child: Option<ChildGuard>,
    owned: bool,
}

impl RedisGuard {
    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this harness started the server, so [`stop`](Self::stop) and
    /// [`restart`](Self::restart) can be used.
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// Kills the server this harness started (by its pid) and waits for it to exit.
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), String> {
        if !self.owned {
            return Err("this Redis was not started by the test".into());
        }
        self.child = None;
        self.child = Some(start_redis_server(self.port)?);
        Ok(())
    }
}

fn start_redis_server(port: u16) -> Result<ChildGuard, String> {
    let child = ChildGuard::spawn(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .map_err(|e| format!("redis-server: {e}"))?;
    wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(10),
    )?;
    Ok(child)
}

/// A Redis for the test; see [`RedisGuard`]. Fails (for [`require`]) when no `redis-server`
/// binary exists and no running Redis answers.
pub fn redis_server() -> Result<RedisGuard, String> {
    let has_binary = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_binary {
        let port = free_addr().port();
        let child = start_redis_server(port)?;
        return Ok(RedisGuard {
            port,
            url: format!("redis://127.0.0.1:{port}/"),
            child: Some(child),
            owned: true,
        });
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let host_port = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let addr: SocketAddr = host_port
        .parse()
        .map_err(|_| format!("no redis-server binary, and cannot use REDIS_URL {url}"))?;
    TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(|e| format!("no redis-server binary, and nothing answers at {url} ({e})"))?;
    Ok(RedisGuard {
        port: addr.port(),
        url,
        child: None,
        owned: false,
    })
}

/// The interpreter of `venv` (`bin/python`, or `Scripts\python.exe` on Windows).
fn venv_python(venv: &std::path::Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// A Python 3 interpreter on `PATH`: `python3`, else `python`.
fn system_python() -> Result<&'static str, String> {
    for candidate in ["python3", "python"] {
        let Ok(output) = Command::new(candidate)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
        else {
            continue;
        };
        let version = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        if output.status.success() && version.trim_start().starts_with("Python 3") {
            return Ok(candidate);
        }
    }
    Err("no Python 3 found on PATH (tried python3 and python)".into())
}

/// Runs `command` with stdin closed and stdout and stderr collected, failing after
/// `timeout`. On Unix the child leads a process group of its own, and on timeout that whole
/// group (the child and whatever it started, such as a server) is killed, by the child's
/// pid; the error then carries what the child had printed.
pub fn output_with_timeout(
    command: &mut Command,
    what: &str,
    timeout: Duration,
) -> Result<Output, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(command, 0);
    let child = command.spawn().map_err(|e| format!("spawn {what}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.map_err(|e| format!("{what}: {e}")),
        Err(_) => {
            // On Unix the child leads its own process group: `-PID` names the group.
            let target = if cfg!(unix) {
                format!("-{pid}")
            } else {
                pid.to_string()
            };
            let _ = Command::new("kill").args(["-9", "--", &target]).status();
            let partial = rx
                .recv_timeout(Duration::from_secs(5))
                .ok()
                .and_then(Result::ok)
                .map(|o| {
                    format!(
                        "\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_default();
            Err(format!("{what} did not finish within {timeout:?}{partial}"))
        }
    }
}

/// A Python virtual environment at `venv` with the packages of the pip requirements file
/// `requirements` installed; returns the environment's interpreter.
///
/// The environment is made with `python3 -m venv` when it has no interpreter, and
/// `pip install -r requirements` runs when the environment is new, or when `requirements`
/// is newer than (or differs from) the copy kept as the stamp file
/// `VENV/requirements.stamp`, which is written only after a successful install. Otherwise
/// the environment is reused as it is, without touching the network. An `Err` (no Python 3,
/// no `venv` module, pip failing, for example without access to the package index) is meant
/// for [`require`].
pub fn python_venv(
    venv: &std::path::Path,
    requirements: &std::path::Path,
) -> Result<PathBuf, String> {
    let wanted =
        std::fs::read(requirements).map_err(|e| format!("read {}: {e}", requirements.display()))?;
    let python = venv_python(venv);
    let stamp = venv.join("requirements.stamp");
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified());
    let current = python.is_file()
        && std::fs::read(&stamp).is_ok_and(|installed| installed == wanted)
        && matches!(
            (modified(&stamp), modified(requirements)),
            (Ok(stamp_time), Ok(requirements_time)) if stamp_time >= requirements_time
        );
    if current {
        return Ok(python);
    }

    if !python.is_file() {
        let system = system_python()?;
        let output = output_with_timeout(
            Command::new(system).arg("-m").arg("venv").arg(venv),
            &format!("{system} -m venv {}", venv.display()),
            Duration::from_secs(120),
        )?;
        if !output.status.success() || !python.is_file() {
            return Err(format!(
                "{system} -m venv {} failed ({}): {}",
                venv.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }

    let _ = std::fs::remove_file(&stamp);
    eprintln!(
        "installing {} into {}",
        requirements.display(),
        venv.display()
    );
    let output = output_with_timeout(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--no-input", "--quiet", "--requirement"])
            .arg(requirements),
        "pip install",
        Duration::from_secs(600),
    )?;
    if !output.status.success() {
        return Err(format!(
            "pip install --requirement {} failed ({}):\n{}{}",
            requirements.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::write(&stamp, &wanted).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    Ok(python)
}
