"""Shared fixtures for the Python interop tests: one interop-server process for the session.

The server binary is `$INTEROP_SERVER_BIN`, else `target/debug/interop-server` under the
workspace root. Building it is not this suite's job: a missing binary fails with a message
that says how to build it. The server binds 127.0.0.1:0, prints `listening on http://...`,
and is killed by its pid when the session ends.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

import pytest

WORKSPACE_ROOT = Path(__file__).resolve().parents[2]
LISTENING_PREFIX = "listening on "
STARTUP_TIMEOUT_S = 20.0


def _server_binary() -> Path:
    configured = os.environ.get("INTEROP_SERVER_BIN")
    path = Path(configured) if configured else WORKSPACE_ROOT / "target" / "debug" / "interop-server"
    if not path.is_file():
        pytest.fail(
            f"interop-server binary not found at {path}: build it with "
            "`cargo build -p interop-server` or set INTEROP_SERVER_BIN",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`http://127.0.0.1:PORT` of an interop-server started for this session."""
    binary = _server_binary()
    log_path = tmp_path_factory.mktemp("interop-server") / "stderr.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [str(binary), "--bind", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        encoding="utf-8",
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdout() -> None:
        # Keeps reading after the first line so the server never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read_stdout, name="interop-server stdout", daemon=True).start()

    def stop() -> None:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        log.close()

    url = None
    try:
        while url is None:
            line = lines.get(timeout=STARTUP_TIMEOUT_S)
            if line is None:
                break
            if line.startswith(LISTENING_PREFIX):
                url = line[len(LISTENING_PREFIX) :].strip()
    except queue.Empty:
        pass
    if url is None:
        stop()
        pytest.fail(
            f"{binary} printed no '{LISTENING_PREFIX}...' line within {STARTUP_TIMEOUT_S} s; "
            f"stderr:\n{log_path.read_text(errors='replace')}",
            pytrace=False,
        )
    assert url.startswith("http://127.0.0.1:"), url
    try:
        yield url
    finally:
        stop()

