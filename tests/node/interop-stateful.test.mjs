// Stateful reconnect on the interop-server's `/testhub-stateful`, driven by the official
// @microsoft/signalr client with `withStatefulReconnect()` (the client uses it over WebSockets
// only), JSON and MessagePack. `DropTransport()` makes the server drop the caller's transport
// abruptly; the client reconnects the same connection and both sides resend what the other
// did not acknowledge, so nothing is lost or doubled. Without stateful reconnect (on
// either side) a drop ends the connection.
// Run with SIGNALR_SERVER_URL=http://127.0.0.1:PORT node --test interop-stateful.test.mjs
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  BASE_URL,
  NEGOTIATING_VARIANTS,
  collect,
  connect,
  delay,
  nextClose,
  record,
  serverId,
  signalR,
  withTimeout,
} from "./interop-common.mjs";

const UNICODE = "你好，世界！";
const { MessageType } = signalR;
const DROPPED = "WebSocket closed with status code: 1006 (no reason given).";

const range = (n) => Array.from({ length: n }, (_, i) => i);

/** POSTs a negotiate request (version 1, `extra` appended to the query); returns the body. */
async function negotiate(path, extra = "") {
  const response = await fetch(`${BASE_URL}${path}/negotiate?negotiateVersion=1${extra}`, {
    method: "POST",
  });
  assert.equal(response.status, 200);
  return response.json();
}

/**
 * Connects to `/testhub-stateful` with `withStatefulReconnect()` and automatic reconnect (so
 * that a failed stateful reconnect would show as `onreconnecting`). Records what stateful
 * reconnect must keep hidden: `events.reconnecting`, `events.closed`. `handshakes` lists the
 * handshake requests the client sent.
 */
async function connectStateful(t, v, path = "/testhub-stateful") {
  const client = await connect(t, v, {
    path,
    statefulReconnect: true,
    reconnect: true,
    start: false,
  });
  const { conn } = client;
  const handshakes = [];
  const send = conn.connection.send.bind(conn.connection);
  conn.connection.send = (data) => {
    if (typeof data === "string" && data.includes('"protocol"')) handshakes.push(data);
    return send(data);
  };
  const events = { reconnecting: 0, closed: 0 };
  conn.onreconnecting(() => events.reconnecting++);
  conn.onclose(() => events.closed++);
  await withTimeout(conn.start(), 10_000, "start()");
  return { ...client, handshakes, events };
}

/** How many times the client opened a WebSocket (1 + the stateful reconnects). */
function webSocketsOpened(logger) {
  return logger.lines.filter((l) => l.includes("(WebSockets transport) Connecting.")).length;
}

describe("stateful reconnect", { concurrency: true }, () => {
  test("negotiate answers useStatefulReconnect only on /testhub-stateful, only when asked", async () => {
    const asked = await negotiate("/testhub-stateful", "&useStatefulReconnect=true");
    assert.equal(asked.useStatefulReconnect, true);
    const notAsked = await negotiate("/testhub-stateful");
    assert.equal(notAsked.useStatefulReconnect, undefined);
    const other = await negotiate("/testhub", "&useStatefulReconnect=true");
    assert.equal(other.useStatefulReconnect, undefined, "/testhub does not allow it");
  });

  for (const v of NEGOTIATING_VARIANTS) {
    describe(v.name, { concurrency: true }, () => {
      test("the client asks in negotiate, the server agrees, the handshake is version 2", async (t) => {
        const { conn, http, handshakes } = await connectStateful(t, v);
        assert.equal(http[0].method, "POST");
        assert.match(
          http[0].url,
          /\/testhub-stateful\/negotiate\?negotiateVersion=1&useStatefulReconnect=true$/,
        );
        assert.equal(JSON.parse(http[0].content).useStatefulReconnect, true);
        assert.equal(conn.connection.features.reconnect, true);
        assert.deepEqual(handshakes, [`{"protocol":"${v.protocol}","version":2}\u001e`]);
        assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
      });

      test("DropTransport amid SendSequence and a stream: every event once, in order, same connection", async (t) => {
        const { conn, tap, logger, events } = await connectStateful(t, v);
        const idBefore = conn.connectionId;
        const serverIdBefore = await serverId(conn);
        const seq = record(conn, "Seq");
        // A stream running across the drop (about 0.5 s), events queued before it, and
        // invocations in flight while the transport is gone.
        const stream = collect(conn.stream("StreamCount", 20, 25));
        await delay(50);
        const sequence = conn.invoke("SendSequence", 1_000);
        const dropped = conn.invoke("DropTransport");
        const echoed = conn.invoke("Echo", UNICODE);
        const add = conn.invoke("Add", 40, 2);
        await withTimeout(sequence, 10_000, "SendSequence");
        assert.equal(await withTimeout(dropped, 10_000, "DropTransport"), undefined);
        assert.equal(await withTimeout(echoed, 10_000, "Echo"), UNICODE);
        assert.equal(await withTimeout(add, 10_000, "Add"), 42);
        assert.deepEqual(await stream, range(20));
        assert.deepEqual(seq.items.map(([i]) => i), range(1_000));

        assert.equal(webSocketsOpened(logger), 2, "the transport was dropped and reopened once");
        assert.ok(
          tap.some((m) => m.type === MessageType.Sequence),
          "the server sent a Sequence message on the new transport",
        );
        assert.equal(conn.connectionId, idBefore);
        assert.equal(await serverId(conn), serverIdBefore);
        assert.deepEqual(
          events,
          { reconnecting: 0, closed: 0 },
          "stateful reconnect is transparent",
        );
        assert.equal(conn.state, signalR.HubConnectionState.Connected);
      });

      test("five drops in a row lose nothing", async (t) => {
        const { conn, logger, events } = await connectStateful(t, v);
        const idBefore = conn.connectionId;
        const seq = record(conn, "Seq");
        const stream = collect(conn.stream("StreamCount", 40, 25), 20_000);
        for (let i = 0; i < 5; i++) {
          const sent = conn.invoke("SendSequence", 200);
          await withTimeout(conn.invoke("DropTransport"), 10_000, `DropTransport #${i + 1}`);
          await withTimeout(sent, 10_000, `SendSequence #${i + 1}`);
        }
        assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
        assert.deepEqual(await stream, range(40));
        assert.deepEqual(
          seq.items.map(([i]) => i),
          [0, 1, 2, 3, 4].flatMap(() => range(200)),
        );
        assert.equal(webSocketsOpened(logger), 6);
        assert.equal(conn.connectionId, idBefore);
        assert.deepEqual(events, { reconnecting: 0, closed: 0 });
      });

      test("a drop while the server waits for Acks (100,000 bytes unacknowledged)", async (t) => {
        const { conn, events } = await connectStateful(t, v);
        const seq = record(conn, "Seq");
        // About 250 KB of events: after the first 100,000 bytes the server waits for the
        // client's Ack, which the client sends a second after the first event arrived; the
        // drop comes while the server waits.
        const n = v.protocol === "json" ? 5_000 : 20_000;
        const sent = conn.invoke("SendSequence", n);
        sent.catch(() => {}); // Still awaited below; rejected when the test gives up.
        // Wait for the first events (bounded: a loaded machine may take a while), then a
        // little more so that the server is waiting for an Ack.
        for (let i = 0; i < 100 && seq.items.length === 0; i++) await delay(50);
        await delay(300);
        const before = seq.items.length;
        assert.ok(before > 0 && before < n, `${before} events before the drop`);
        await withTimeout(conn.invoke("DropTransport"), 5_000, "DropTransport");
        await withTimeout(sent, 5_000, "SendSequence");
        assert.equal(await withTimeout(conn.invoke("Echo", "after"), 5_000, "Echo"), "after");
        assert.deepEqual(seq.items.map(([i]) => i), range(n));
        assert.deepEqual(events, { reconnecting: 0, closed: 0 });
      });

      test("without withStatefulReconnect(), DropTransport closes the connection", async (t) => {
        const { conn, http } = await connect(t, v, { path: "/testhub-stateful" });
        assert.equal(JSON.parse(http[0].content).useStatefulReconnect, undefined);
        const closed = nextClose(conn);
        conn.invoke("DropTransport").catch(() => {});
        await withTimeout(closed, 5_000, "onclose");
        assert.equal(conn.state, signalR.HubConnectionState.Disconnected);
      });

      test("without stateful reconnect, every drop is abrupt: onclose reports a 1006 close", async (t) => {
        // Counts of what the client saw, by outcome.
        const outcomes = {};
        for (let i = 0; i < 20; i++) {
          const { conn } = await connect(t, v, { path: "/testhub-stateful" });
          const closed = nextClose(conn);
          const invoked = conn.invoke("DropTransport").then(
            () => "completed",
            (e) => e.message,
          );
          const error = await withTimeout(closed, 5_000, "onclose");
          const outcome = `onclose: ${error?.message}; invoke: ${await invoked}`;
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }
        assert.deepEqual(outcomes, { [`onclose: ${DROPPED}; invoke: ${DROPPED}`]: 20 });
      });

      test("/testhub with withStatefulReconnect(): the server declines; a drop closes the connection", async (t) => {
        const { conn, http, handshakes, events } = await connectStateful(t, v, "/testhub");
        assert.match(http[0].url, /useStatefulReconnect=true/);
        assert.equal(JSON.parse(http[0].content).useStatefulReconnect, undefined);
        assert.equal(conn.connection.features.reconnect, false);
        assert.deepEqual(handshakes, [`{"protocol":"${v.protocol}","version":1}\u001e`]);
        assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
        // A drop is a plain disconnect here: automatic reconnect starts a new connection.
        const idBefore = conn.connectionId;
        const reconnected = new Promise((resolve) => conn.onreconnected(resolve));
        conn.invoke("DropTransport").catch(() => {});
        const newId = await withTimeout(reconnected, 10_000, "onreconnected");
        assert.equal(events.reconnecting, 1);
        assert.notEqual(newId, idBefore);
        assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
      });
    });
  }
});
