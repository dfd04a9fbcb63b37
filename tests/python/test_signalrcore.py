"""signalrcore (PyPI `signalrcore`, pinned in requirements.txt) against interop-server.

What signalrcore 1.0.2 offers, read from its source:

- Transports: WebSockets, Server-Sent Events and Long Polling (`options={"transport": ...}`),
  each its own socket or urllib client running a receive thread.
- Protocols: JSON and MessagePack (`with_hub_protocol`). SSE is text-only, so there the
  library falls back to JSON (as it should); MessagePack is tested over WebSockets, and over
  Long Polling as an xfail.
- Invoke: `invoke(method, args, on_invocation, invocation_id)`. Every invocation carries an
  invocationId (`send` is a deprecated alias of `invoke`), so the library has no
  non-blocking send: not tested. Error completions go to the global `on_error` callback,
  not to `on_invocation`; the tests match them by invocationId.
- Server events: `on(name, cb)`.
- Server-to-client streams: `stream(method, args).subscribe({...})`. `stream()` sends the
  StreamInvocation before it returns the handle to subscribe on, so items that arrive first
  are dropped; the tests hold the receive thread (see `receiver_paused`) while subscribing.
  It has no cancel API, but the handle carries the invocationId and the library has
  `CancelInvocationMessage`: the cancel test sends that through the connection's transport.
- Client-to-server streams: `invoke(method, Subject())`. The invocation carries no
  invocationId, so the hub method's result never comes back; the tests check that the
  server takes the upload and keeps serving the connection.
- Auth: `access_token_factory` (header `Authorization: Bearer` on negotiate, the WebSocket
  upgrade, the SSE stream and sends).
- Skip negotiation: `options={"skip_negotiation": True}` (WebSockets only).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from interop_helpers import (
    ADD_ARGS_TEXT,
    STREAM_THROW_TEXT,
    THROW_TEXT,
    UNICODE_TEXT,
    fetch_token,
)
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.messages.cancel_invocation_message import CancelInvocationMessage
from signalrcore.subject import Subject
from signalrcore.types import HttpTransportType, HubProtocolEncoding

TIMEOUT = 5.0
TRANSPORTS = {
    "ws": HttpTransportType.web_sockets,
    "sse": HttpTransportType.server_sent_events,
    "lp": HttpTransportType.long_polling,
}
TRANSPORT_NAMES = {"ws": "WebSockets", "sse": "ServerSentEvents", "lp": "LongPolling"}
ENCODINGS = {"json": HubProtocolEncoding.text, "messagepack": HubProtocolEncoding.binary}

# Every transport and protocol pair that signalrcore supports and that works end to end;
# Long Polling has its own tests at the end.
WORKING = [("ws", "json"), ("ws", "messagepack"), ("sse", "json")]
configs = pytest.mark.parametrize(("transport", "encoding"), WORKING, ids=[f"{t}-{e}" for t, e in WORKING])



class ConnectionFailed(Exception):
    """The connection did not complete its handshake."""


class HubInvocationError(Exception):
    """An invocation or stream completed with an error; the text is in `args[0]`."""


class Hub:
    """A signalrcore connection with thread-safe waits on completions, errors and events."""

    def __init__(self, url: str, transport: str, encoding: str, **options: Any) -> None:
        options = {"transport": TRANSPORTS[transport], **options}
        self.connection = (
            HubConnectionBuilder()
            .with_url(url, options=options)
            .with_hub_protocol(ENCODINGS[encoding])
            .build()
        )
        self.opened = threading.Event()
        self.closed = threading.Event()
        self.unmatched_errors: list[Any] = []
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[threading.Event, dict[str, Any]]] = {}
        self._gates: dict[str, tuple[threading.Event, threading.Event]] = {}
        self.connection.on_open(self.opened.set)
        self.connection.on_close(self.closed.set)
        self.connection.on_error(self._on_error)
        self.connection.on("Echo", self._on_echo_event)

    def start(self) -> None:
        self.connection.start()  # negotiates; raises on an HTTP error
        deadline = time.monotonic() + TIMEOUT
        while not self.opened.wait(0.05):
            transport = self.connection.transport
            if transport is not None and transport.is_disconnected():
                raise ConnectionFailed("the transport closed before the handshake completed")
            if time.monotonic() > deadline:
                raise ConnectionFailed(f"no handshake within {TIMEOUT} s")

    def stop(self) -> None:
        # Client limitation worked around here: for WebSockets and SSE, stop() closes the
        # socket while the receive thread is blocked in recv(), which does not wake it on
        # Linux, and then joins that thread: it returns only when the server next sends
        # something (its keep-alive ping, up to 15 s later). Shutting the socket down through
        # a duplicate descriptor wakes the thread. stop() also joins threads: bound it.
        client = getattr(self.connection.transport, "_client", None)
        sock = getattr(client, "sock", None)
        twin = sock.dup() if sock is not None and sock.fileno() != -1 else None
        stopper = threading.Thread(target=self.connection.stop, name="signalrcore stop", daemon=True)
        stopper.start()
        if twin is not None:
            with suppress(OSError):
                twin.shutdown(socket.SHUT_RDWR)
            twin.close()
        stopper.join(TIMEOUT)
        assert not stopper.is_alive(), f"signalrcore stop() did not return within {TIMEOUT} s"

    def _on_error(self, message: Any) -> None:
        invocation_id = getattr(message, "invocation_id", None)
        with self._lock:
            pending = self._pending.get(invocation_id)
        if pending is None:
            self.unmatched_errors.append(message)
            return
        done, box = pending
        box["error"] = message.error
        done.set()

    def _wait(self, invocation_id: str, what: str, timeout: float) -> dict[str, Any]:
        with self._lock:
            done, box = self._pending[invocation_id]
        try:
            if not done.wait(timeout):
                raise TimeoutError(f"{what}: no completion within {timeout} s")
        finally:
            with self._lock:
                del self._pending[invocation_id]
        if "error" in box:
            raise HubInvocationError(box["error"])
        return box

    def invoke(self, method: str, args: list[Any], timeout: float = TIMEOUT) -> Any:
        """Invokes and returns the result, or raises HubInvocationError with the error text."""
        invocation_id = str(uuid.uuid4())
        done, box = threading.Event(), {}
        with self._lock:
            self._pending[invocation_id] = (done, box)

        def on_completion(message: Any) -> None:
            box["result"] = message.result
            done.set()

        self.connection.invoke(method, args, on_invocation=on_completion, invocation_id=invocation_id)
        return self._wait(invocation_id, method, timeout)["result"]

    def _on_echo_event(self, args: list[Any]) -> None:
        with self._lock:
            gate = self._gates.pop(args[0], None) if args else None
        if gate is not None:
            entered, release = gate
            entered.set()
            release.wait(TIMEOUT)

    @contextmanager
    def receiver_paused(self) -> Iterator[None]:
        """Holds the library's receive thread inside an event handler (the server's `Echo`
        event from `CallEcho`) until the block ends, so nothing is dispatched meanwhile."""
        token = str(uuid.uuid4())
        entered, release = threading.Event(), threading.Event()
        with self._lock:
            self._gates[token] = (entered, release)
        self.connection.invoke("CallEcho", [token])
        if not entered.wait(TIMEOUT):
            raise TimeoutError(f"the receive thread did not take the Echo event within {TIMEOUT} s")
        try:
            yield
        finally:
            release.set()

    def stream(self, method: str, args: list[Any], timeout: float = TIMEOUT) -> list[Any]:
        """Runs a server-to-client stream to its end and returns its items."""
        items: list[Any] = []
        done, box = threading.Event(), {}
        with self.receiver_paused():
            handle = self.connection.stream(method, args)
            handle.subscribe({"next": items.append, "complete": lambda _: done.set(), "error": lambda _: done.set()})
            with self._lock:
                self._pending[handle.invocation_id] = (done, box)
        try:
            self._wait(handle.invocation_id, method, timeout)
        except HubInvocationError as error:
            raise HubInvocationError(error.args[0], items) from None
        return items

    def next_event(self, name: str) -> tuple[threading.Event, list[list[Any]]]:
        """An event set on the next `name` event, and the list its arguments go to."""
        seen = threading.Event()
        received: list[list[Any]] = []

        def handler(args: list[Any]) -> None:
            received.append(args)
            seen.set()

        self.connection.on(name, handler)
        return seen, received


@contextmanager
def hub(url: str, transport: str = "ws", encoding: str = "json", **options: Any) -> Iterator[Hub]:
    connection = Hub(url, transport, encoding, **options)
    try:
        connection.start()
        yield connection
    finally:
        connection.stop()


# --- invoke -------------------------------------------------------------------------------


@configs
def test_invoke_echo_unicode(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        assert h.invoke("Echo", [UNICODE_TEXT]) == UNICODE_TEXT
        assert h.invoke("echo", ["lower"]) == "lower"


@configs
def test_invoke_add(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        assert h.invoke("Add", [40, 2]) == 42
        assert h.invoke("Add", [-7, 3]) == -4


@configs
def test_invoke_exception_text(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        with pytest.raises(HubInvocationError) as error:
            h.invoke("ThrowException", ["bad thing ✗"])
        assert error.value.args[0] == THROW_TEXT.format("bad thing ✗")
        assert h.invoke("HelloWorld", []) == "Hello World!"


@configs
def test_invoke_wrong_argument_count_text(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        with pytest.raises(HubInvocationError) as error:
            h.invoke("Add", [1])
        assert error.value.args[0] == ADD_ARGS_TEXT


@configs
def test_active_transport(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        assert h.invoke("GetActiveTransportName", []) == TRANSPORT_NAMES[transport]


# --- server events ----------------------------------------------------------------------------


@configs
def test_event_arrives_before_completion(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        seen, received = h.next_event("Message")
        assert h.invoke("InvokeWithString", [UNICODE_TEXT]) is None
        # One receive thread dispatches in arrival order: the event was handled first.
        assert seen.is_set()
        assert received == [[UNICODE_TEXT]]


@configs
def test_custom_object_event(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        seen, received = h.next_event("CustomObject")
        sent = {"Name": UNICODE_TEXT, "Value": 1234567890123}
        h.invoke("SendCustomObject", [sent])
        assert seen.wait(TIMEOUT)
        assert received == [[sent]]


# --- server-to-client streams ---------------------------------------------------------------


@configs
def test_stream_items(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        assert h.stream("Stream", []) == ["a", "b", "c"]


@configs
def test_stream_count(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        assert h.stream("StreamCount", [5, 10]) == [0, 1, 2, 3, 4]
        assert h.stream("EmptyStream", []) == []


@configs
def test_stream_error_text(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        with pytest.raises(HubInvocationError) as error:
            h.stream("StreamThrowException", ["stream broke"])
        assert error.value.args == (STREAM_THROW_TEXT.format("stream broke"), [])


@configs
def test_stream_cancel(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        cancelled, received = h.next_event("StreamCanceled")
        handle = h.connection.stream("InfiniteStream", [])
        h.connection.transport.send(CancelInvocationMessage(handle.invocation_id))
        assert cancelled.wait(TIMEOUT)
        assert received == [[]]
        assert h.invoke("Echo", ["after cancel"]) == "after cancel"


# --- client-to-server streams ---------------------------------------------------------------

UPLOAD_CONFIGS = [("ws", "json"), ("sse", "json")]


@pytest.mark.parametrize(
    ("transport", "encoding"), UPLOAD_CONFIGS, ids=[f"{t}-{e}" for t, e in UPLOAD_CONFIGS]
)
def test_client_stream_upload(server_url: str, transport: str, encoding: str) -> None:
    with hub(server_url + "/testhub", transport, encoding) as h:
        for target, items in [("UploadSum", list(range(1, 11))), ("StreamingConcat", ["a", UNICODE_TEXT])]:
            subject = Subject()
            h.connection.invoke(target, subject)
            for item in items:
                subject.next(item)
            subject.complete()
        assert h.invoke("Echo", ["after upload"]) == "after upload"
        assert not h.unmatched_errors


# Not run: after the server closes the connection on the malformed messages, the library's
# stop() can hang past the suite's 30 s per-test limit on a loaded machine (seen in CI), so
# the outcome depends on timing rather than on the server.
@pytest.mark.xfail(
    run=False,
    reason="client limitation: signalrcore's MessagePack encoder writes the upload invocation "
    "without its invocationId slot ([1, headers, target, args, streamIds]) and the stream's "
    "completion without a result kind ([3, headers, id]), so the server rejects the messages "
    "and closes the connection",
    strict=True,
)
def test_client_stream_upload_messagepack(server_url: str) -> None:
    with hub(server_url + "/testhub", "ws", "messagepack") as h:
        subject = Subject()
        h.connection.invoke("UploadSum", subject)
        for item in range(1, 11):
            subject.next(item)
        subject.complete()
        assert h.invoke("Echo", ["after upload"], timeout=2.0) == "after upload"


# --- skip negotiation -----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_skip_negotiation(server_url: str, encoding: str) -> None:
    with hub(server_url + "/testhub", "ws", encoding, skip_negotiation=True) as h:
        assert h.invoke("Echo", [UNICODE_TEXT]) == UNICODE_TEXT
        assert h.invoke("GetActiveTransportName", []) == "WebSockets"
        connection_id = h.invoke("GetCallerConnectionId", [])
        assert isinstance(connection_id, str) and connection_id


# --- auth -----------------------------------------------------------------------------------


@configs
def test_authorized_hub_with_access_token_factory(server_url: str, transport: str, encoding: str) -> None:
    token = fetch_token(server_url)
    with hub(server_url + "/authorizedhub", transport, encoding, access_token_factory=lambda: token) as h:
        assert h.invoke("GetUserIdentifier", []) == "testuser"
        assert h.invoke("Echo", [UNICODE_TEXT]) == UNICODE_TEXT


def test_authorized_hub_without_token_is_rejected(server_url: str) -> None:
    connection = Hub(server_url + "/authorizedhub", "ws", "json")
    with pytest.raises(urllib.error.HTTPError) as error:
        connection.connection.start()
    assert error.value.code == 401


def test_token_sets_user_on_test_hub(server_url: str) -> None:
    token = fetch_token(server_url, "someone")
    with hub(server_url + "/testhub", "ws", "json", access_token_factory=lambda: token) as h:
        assert h.invoke("GetUserIdentifier", []) == "someone"
    with hub(server_url + "/testhub", "ws", "json") as h:
        assert h.invoke("GetUserIdentifier", []) is None


# --- long polling ---------------------------------------------------------------------------

# The library's long polling thread dies with the 404 (a ValueError), which pytest reports as
# a warning: expected while the server bug stands.
thread_dies = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


def test_long_polling(server_url: str) -> None:
    # signalrcore POSTs the handshake before its first poll; the server keeps it for the
    # transport, as ASP.NET Core does.
    with hub(server_url + "/testhub", "lp", "json") as h:
        assert h.invoke("Echo", [UNICODE_TEXT]) == UNICODE_TEXT
        assert h.invoke("Add", [40, 2]) == 42
        with pytest.raises(HubInvocationError) as error:
            h.invoke("ThrowException", ["bad thing ✗"])
        assert error.value.args[0] == THROW_TEXT.format("bad thing ✗")
        assert h.invoke("GetActiveTransportName", []) == "LongPolling"


@thread_dies
@pytest.mark.xfail(
    reason="client limitation: signalrcore never passes is_binary to its long polling "
    "transport (and LongPollingBinaryClient.__init__ calls super() with the wrong class), so "
    "MessagePack polls are decoded as UTF-8 text split on 0x1E",
    strict=True,
)
def test_long_polling_messagepack(server_url: str) -> None:
    with hub(server_url + "/testhub", "lp", "messagepack") as h:
        assert h.invoke("Echo", [UNICODE_TEXT], timeout=2.0) == UNICODE_TEXT


@thread_dies
@pytest.mark.xfail(
    reason="client limitation: signalrcore's polls send only an Accept header, not the "
    "Authorization header, so /authorizedhub rejects them",
    strict=True,
)
def test_long_polling_authorized_hub(server_url: str) -> None:
    token = fetch_token(server_url)
    with hub(server_url + "/authorizedhub", "lp", "json", access_token_factory=lambda: token) as h:
        assert h.invoke("GetUserIdentifier", [], timeout=2.0) == "testuser"
