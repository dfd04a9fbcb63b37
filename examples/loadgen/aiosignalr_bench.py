"""The benchmark hub on aiosignalr (a third-party Python SignalR server), the baseline that
`loadgen suite` measures beside signalr-server:

    python aiosignalr_bench.py --port 0

serves /bench with the methods the scenarios call (Echo, Broadcast -> Receive to all,
JoinGroup, SendToGroup -> Receive to the group), prints `listening on 127.0.0.1:PORT` once it
accepts connections, and runs until killed. Default options otherwise (one invocation at a
time per connection, as signalr-server's default).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from aiosignalr.server import Hub, SignalRServer


class BenchHub(Hub):
    async def Echo(self, value: Any) -> Any:
        return value

    async def Broadcast(self, text: str) -> None:
        await self.clients.all_.send("Receive", text)

    async def JoinGroup(self, group: str) -> None:
        await self.groups.add(group)

    async def SendToGroup(self, group: str, text: str) -> None:
        await self.clients.group(group).send("Receive", text)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    server = SignalRServer(BenchHub)
    host, port = await server.serve("127.0.0.1", args.port, path="/bench")
    print(f"listening on {host}:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
