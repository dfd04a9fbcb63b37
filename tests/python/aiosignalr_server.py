"""A SignalR server written with aiosignalr (a third-party Python implementation), for the
Rust client's interop tests (signalr-client/tests/aiosignalr.rs).

    python aiosignalr_server.py --port 0 [--fix-messagepack-headers]

serves the hub below at http://127.0.0.1:PORT/hub over WebSockets, Server-Sent Events and
Long Polling, with JSON and MessagePack and stateful reconnect allowed, and prints
`listening on http://127.0.0.1:PORT` once it accepts connections. It runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from aiosignalr.errors import HubException
from aiosignalr.server import Hub, IncomingStream, ServerOptions, SignalRServer

SERVER: SignalRServer | None = None

# Infinite(key) streams that started, and those whose invocation was cancelled.
STARTED: set[str] = set()
CANCELLED: set[str] = set()
TOKENS: dict[str, asyncio.Event] = {}


class TestHub(Hub):
    """The methods the Rust tests call. A method returns a value to the caller only when it
    has a return annotation: aiosignalr completes the others without a result."""

    async def Echo(self, value: Any) -> Any:
        return value

    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Fail(self, message: str) -> Any:
        # A HubException's text reaches the client as it is.
        raise HubException(message)

    async def Crash(self) -> Any:
        # Any other exception: a generic text, as ASP.NET Core without detailed errors.
        raise ValueError("secret detail")

    async def SendEvent(self, text: str) -> str:
        # An event to the caller, before the invocation completes.
        await self.clients.caller.send("Event", text, len(text), {"text": text, "tags": ["a", "b"]})
        return "sent"

    async def Broadcast(self, text: str) -> None:
        await self.clients.all_.send("Broadcast", text)

    async def JoinGroup(self, group: str) -> None:
        await self.groups.add(group)

    async def SendToGroup(self, group: str, text: str) -> None:
        await self.clients.group(group).send("GroupMessage", group, text)

    async def Counter(self, count: int, delay_ms: int = 0):
        for i in range(count):
            yield i
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)

    async def FailingStream(self, count: int):
        for i in range(count):
            yield i
        raise HubException("stream failed")

    async def Infinite(self, key: str, cancellation_token):
        TOKENS[key] = cancellation_token
        STARTED.add(key)
        i = 0
        try:
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            CANCELLED.add(key)
            raise

    async def WasStarted(self, key: str) -> bool:
        return key in STARTED

    async def WasCancelled(self, key: str) -> bool:
        token = TOKENS.get(key)
        return key in CANCELLED or (token is not None and token.is_set())

    async def Sum(self, source: IncomingStream) -> int:
        total = 0
        async for item in source:
            total += item
        return total

    async def Collect(self, source: IncomingStream) -> list:
        return [item async for item in source]

    async def Doubler(self, source: IncomingStream):
        async for item in source:
            yield item * 2

    async def AskClient(self, method: str, value: Any = None) -> Any:
        # A client result: invoke `method` on the caller and return its answer.
        if value is None:
            return await self.clients.caller.invoke(method)
        return await self.clients.caller.invoke(method, value)

    async def ConnectionId(self) -> str:
        return self.context.connection_id

    async def DropTransport(self, text: str) -> str:
        """Sends an event, then cuts the TCP connection under the transport (no close frame),
        as a network failure would, and returns `text`: with stateful reconnect both arrive
        after the client reconnects, replayed from the server's buffer."""
        await self.clients.caller.send("Event", "before drop", 0, {"text": "before drop", "tags": []})
        assert SERVER is not None
        ctx = SERVER.get_connection(self.context.connection_id)
        transport = getattr(ctx, "_transport", None)
        socket = getattr(transport, "_socket", None)
        ws = getattr(socket, "_ws", None)
        request = getattr(ws, "_req", None)
        tcp = getattr(request, "transport", None)
        if tcp is None:
            raise HubException("not a WebSocket connection")
        tcp.abort()
        await asyncio.sleep(0.05)
        await self.clients.caller.send("Event", "after drop", 1, {"text": "after drop", "tags": []})
        return text


async def main() -> None:
    global SERVER
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--fix-messagepack-headers",
        action="store_true",
        help="work around an aiosignalr 0.1.1 bug: it writes the headers of StreamItem, "
        "Completion and CancelInvocation as the integer 128 (0xcc 0x80) instead of an empty "
        "map (0x80), which ASP.NET Core's MessagePack reader (and the Rust client's) rejects",
    )
    args = parser.parse_args()
    if args.fix_messagepack_headers:
        from aiosignalr.protocol import messagepack_protocol

        messagepack_protocol._EMPTY_HEADERS = {}
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    SERVER = SignalRServer(
        TestHub,
        options=ServerOptions(
            allow_stateful_reconnects=True,
            maximum_parallel_invocations=4,
            keep_alive_interval=5.0,
        ),
    )
    host, port = await SERVER.serve("127.0.0.1", args.port, path="/hub")
    print(f"listening on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
