// Keep-alive of the interop-server (every 15 s, as ASP.NET Core), seen by the official
// @microsoft/signalr client with its default settings: a Ping (type 6) arrives over
// WebSockets and Server-Sent Events; Long Polling, whose polls keep the connection alive,
// gets none. The three connections wait side by side (about 16 s in all), on
// `/testhub-stateful` (without stateful reconnect), where no other test broadcasts: ASP.NET
// Core pings only when nothing else was sent for the interval.
// Run with SIGNALR_SERVER_URL=http://127.0.0.1:PORT node --test interop-keepalive.test.mjs
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { TRANSPORT_VARIANTS, connect, delay, signalR } from "./interop-common.mjs";

const { MessageType } = signalR;
/** The server's keep-alive interval, and how long past it a ping may take. */
const KEEP_ALIVE_MS = 15_000;
const SLACK_MS = 1_500;

describe("keep-alive", { concurrency: true }, () => {
  for (const v of TRANSPORT_VARIANTS) {
    const pings = v.transport !== "LongPolling";
    const title = pings
      ? `${v.name}: the server pings within ${(KEEP_ALIVE_MS + SLACK_MS) / 1000} s`
      : `${v.name}: no pings (the polls keep the connection alive)`;
    test(title, async (t) => {
      const { conn, tap } = await connect(t, v, { path: "/testhub-stateful" });
      const started = Date.now();
      const isPing = (m) => m.type === MessageType.Ping;
      while (!tap.some(isPing) && Date.now() - started < KEEP_ALIVE_MS + SLACK_MS) {
        await delay(100);
      }
      const elapsed = Date.now() - started;
      if (pings) {
        assert.ok(tap.some(isPing), `no ping within ${elapsed} ms`);
        // Nothing else was sent, so the first ping is the keep-alive, not an early one.
        assert.ok(elapsed >= KEEP_ALIVE_MS - SLACK_MS, `a ping after only ${elapsed} ms`);
        t.diagnostic(`first ping after ${elapsed} ms`);
      } else {
        assert.deepEqual(tap.filter(isPing), [], `pings after ${elapsed} ms`);
      }
      assert.equal(conn.state, signalR.HubConnectionState.Connected);
      assert.equal(await conn.invoke("Echo", "still there"), "still there");
    });
  }
});
