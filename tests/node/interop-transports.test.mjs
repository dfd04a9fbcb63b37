// Transport-level behaviour of the interop-server, driven by the official @microsoft/signalr
// client and by plain `fetch`: transport selection on `/testhub-nowebsockets`, Long Polling
// specifics (DELETE ends the outstanding poll, large and queued messages), `/echo` on every
// transport, `/echoredirect` (307) and CORS.
// Run with SIGNALR_SERVER_URL=http://127.0.0.1:PORT node --test interop-transports.test.mjs
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, test } from "node:test";

import {
  BASE_URL,
  HTTP_VARIANTS,
  MemoryLogger,
  WS_BASE_URL,
  connect,
  delay,
  errorOf,
  record,
  signalR,
  withTimeout,
} from "./interop-common.mjs";

const require = createRequire(import.meta.url);
// `ws` as the client resolves it (it is a dependency of @microsoft/signalr).
const WebSocket = createRequire(require.resolve("@microsoft/signalr"))("ws");
// The raw connection the hub connection is built on; the package does not export it.
const { HttpConnection } = require("@microsoft/signalr/dist/cjs/HttpConnection.js");

const UNICODE = "你好，世界！";
const RS = "\u001e";
const { HttpTransportType, MessageType } = signalR;
const JSON_VARIANT = { name: "json", protocol: "json" };
const MSGPACK_VARIANT = { name: "messagepack", protocol: "messagepack" };
const LONG_POLLING_VARIANTS = HTTP_VARIANTS.filter((v) => v.transport === "LongPolling");

/** POSTs a negotiate request, version 1, and returns the parsed body. */
async function negotiate(path) {
  const response = await fetch(`${BASE_URL}${path}/negotiate?negotiateVersion=1`, {
    method: "POST",
  });
  assert.equal(response.status, 200);
  return response.json();
}

/**
 * A hand-driven JSON Long Polling connection to `/testhub`: negotiate, the first poll (which
 * only establishes the transport), the handshake. `url` is the transport URL.
 */
async function rawLongPolling() {
  const { connectionToken } = await negotiate("/testhub");
  const url = `${BASE_URL}/testhub?id=${encodeURIComponent(connectionToken)}`;
  const first = await fetch(url);
  assert.equal(first.status, 200);
  assert.equal(await first.text(), "", "the first poll returns at once, empty");
  const handshake = await fetch(url, {
    method: "POST",
    body: `{"protocol":"json","version":1}${RS}`,
  });
  assert.equal(handshake.status, 200);
  await handshake.arrayBuffer();
  const answer = await fetch(url);
  assert.equal(await answer.text(), `{}${RS}`);
  return {
    url,
    async post(message) {
      const response = await fetch(url, { method: "POST", body: JSON.stringify(message) + RS });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
    },
    /** One poll: `{ status, body, messages }` (a 200 body split into parsed messages). */
    async poll() {
      const response = await fetch(url);
      const body = await response.text();
      const messages =
        response.status === 200
          ? body
              .split(RS)
              .filter((part) => part !== "")
              .map((part) => JSON.parse(part))
          : [];
      return { status: response.status, body, messages };
    },
  };
}

/** Opens a plain WebSocket; resolves with it once open, rejects with the HTTP status if refused. */
function openWebSocket(url) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.once("open", () => resolve(socket));
      socket.once("unexpected-response", (_request, response) => {
        reject(new Error(`HTTP ${response.statusCode}`));
        socket.terminate();
      });
      socket.once("error", reject);
    }),
    5_000,
    `WebSocket ${url}`,
  );
}

/**
 * Starts an HttpConnection (the raw connection under a hub connection) to `url`; resolves
 * with `{ connection, received, next, closed, logger }`, where `next()` waits for the next
 * received message.
 */
async function startRawConnection(t, url, transport, format = signalR.TransferFormat.Text) {
  const logger = new MemoryLogger(`raw ${url}`);
  const connection = new HttpConnection(url, { transport, logger });
  const received = [];
  const waiting = [];
  connection.onreceive = (data) => {
    received.push(data);
    waiting.shift()?.();
  };
  const closed = new Promise((resolve) => (connection.onclose = resolve));
  t.after(() => connection.stop());
  await withTimeout(connection.start(format), 10_000, "start");
  const next = () =>
    withTimeout(new Promise((resolve) => waiting.push(resolve)), 5_000, "an echo");
  return { connection, received, next, closed, logger };
}

describe("transports", { concurrency: true }, () => {
  describe("transport selection on /testhub-nowebsockets", { concurrency: true }, () => {
    test("negotiate lists Server-Sent Events (text) and Long Polling only", async () => {
      const body = await negotiate("/testhub-nowebsockets");
      assert.deepEqual(body.availableTransports, [
        { transport: "ServerSentEvents", transferFormats: ["Text"] },
        { transport: "LongPolling", transferFormats: ["Text", "Binary"] },
      ]);
    });

    test("JSON picks Server-Sent Events", async (t) => {
      const { conn } = await connect(t, JSON_VARIANT, {
        path: "/testhub-nowebsockets",
        transport: null,
      });
      assert.equal(await conn.invoke("GetActiveTransportName"), "ServerSentEvents");
      assert.equal(conn.connection.transport.constructor.name, "ServerSentEventsTransport");
      assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
    });

    test("MessagePack skips Server-Sent Events (text only) and picks Long Polling", async (t) => {
      const { conn, logger } = await connect(t, MSGPACK_VARIANT, {
        path: "/testhub-nowebsockets",
        transport: null,
      });
      assert.equal(await conn.invoke("GetActiveTransportName"), "LongPolling");
      assert.equal(conn.connection.transport.constructor.name, "LongPollingTransport");
      assert.ok(
        logger.lines.some((l) =>
          l.includes(
            "Skipping transport 'ServerSentEvents' because it does not support the requested transfer format 'Binary'.",
          ),
        ),
      );
      assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
    });

    test("without a transport option, /testhub picks WebSockets for both protocols", async (t) => {
      for (const v of [JSON_VARIANT, MSGPACK_VARIANT]) {
        const { conn } = await connect(t, v, { transport: null });
        assert.equal(await conn.invoke("GetActiveTransportName"), "WebSockets", v.name);
        await conn.stop();
      }
    });

    test("requesting WebSockets fails with the client's transport error", async (t) => {
      const { conn } = await connect(t, JSON_VARIANT, {
        path: "/testhub-nowebsockets",
        start: false,
      });
      const e = await errorOf(conn.start());
      assert.equal(
        e.message,
        "Unable to connect to the server with any of the available transports. ServerSentEvents failed: Error: 'ServerSentEvents' is disabled by the client. LongPolling failed: Error: 'LongPolling' is disabled by the client.",
      );
      assert.equal(conn.state, signalR.HubConnectionState.Disconnected);
    });

    test("WebSockets with skipNegotiation is refused", async (t) => {
      const { conn } = await connect(
        t,
        { ...JSON_VARIANT, skipNegotiation: true },
        { path: "/testhub-nowebsockets", start: false },
      );
      const e = await errorOf(conn.start());
      assert.equal(
        e.message,
        "WebSocket failed to connect. The connection could not be found on the server, either the endpoint may not be a SignalR endpoint, the connection ID is not present on the server, or there is a proxy blocking WebSockets. If you have multiple servers check that sticky sessions are enabled.",
      );
    });

    test("a WebSocket request is answered 404, with a negotiated token too", async () => {
      const refused = await errorOf(openWebSocket(`${WS_BASE_URL}/testhub-nowebsockets`));
      assert.equal(refused.message, "HTTP 404");
      const { connectionToken } = await negotiate("/testhub-nowebsockets");
      const url = `${WS_BASE_URL}/testhub-nowebsockets?id=${encodeURIComponent(connectionToken)}`;
      const withToken = await errorOf(openWebSocket(url));
      assert.equal(withToken.message, "HTTP 404");
    });
  });

  describe("Long Polling", { concurrency: true }, () => {
    for (const v of LONG_POLLING_VARIANTS) {
      test(`stop() sends DELETE and the outstanding poll ends at once (${v.protocol})`, async (t) => {
        const { conn, http } = await connect(t, v);
        assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
        // Let the next poll reach the server and wait there. (The client aborts its own poll
        // on stop; that the server ends it on DELETE is checked with plain fetch below.)
        await delay(200);
        const polls = () => http.filter((r) => r.method === "GET");
        const outstanding = polls().at(-1);
        assert.equal(outstanding.end, undefined, "a poll is outstanding");
        const started = Date.now();
        await withTimeout(conn.stop(), 5_000, "stop()");
        const elapsed = Date.now() - started;
        assert.ok(elapsed < 2_000, `stop() took ${elapsed} ms (the poll timeout is 90 s)`);
        assert.ok(outstanding.end !== undefined, "the outstanding poll finished");
        const deletes = http.filter((r) => r.method === "DELETE");
        assert.equal(deletes.length, 1, JSON.stringify(http.map((r) => [r.method, r.status])));
        // 202, or 404 when the Close message the client POSTs first already ended the
        // connection on the server (the client accepts both).
        const deleted = deletes[0].status ?? deletes[0].error?.statusCode;
        assert.ok(deleted === 202 || deleted === 404, `DELETE: ${deleted} ${deletes[0].error}`);
        assert.ok(deletes[0].url.includes("id="), deletes[0].url);
        assert.ok(polls().every((r) => r.end !== undefined), "no poll left running");
      });
    }

    test("DELETE ends an outstanding poll with 204 at once; the connection is then gone", async () => {
      const lp = await rawLongPolling();
      const started = Date.now();
      const outstanding = fetch(lp.url).then(async (r) => ({
        status: r.status,
        body: await r.text(),
        after: Date.now() - started,
      }));
      await delay(200);
      const deleted = await fetch(lp.url, { method: "DELETE" });
      assert.equal(deleted.status, 202);
      await deleted.arrayBuffer();
      const poll = await withTimeout(outstanding, 5_000, "the outstanding poll");
      assert.equal(poll.status, 204);
      assert.equal(poll.body, "");
      assert.ok(poll.after < 2_000, `the poll ended after ${poll.after} ms`);
      const after = await fetch(lp.url);
      assert.equal(after.status, 404);
      assert.equal(await after.text(), "No Connection with that ID");
    });

    test("messages queued between polls arrive together, in order, in the next poll", async (t) => {
      const lp = await rawLongPolling();
      await lp.post({ type: 1, invocationId: "1", target: "SendSequence", arguments: [500] });
      // No poll is outstanding: the server queues the events (and the completion).
      await delay(500);
      const messages = [];
      const sizes = [];
      while (!messages.some((m) => m.type === MessageType.Completion)) {
        const poll = await withTimeout(lp.poll(), 5_000, "poll");
        assert.equal(poll.status, 200);
        messages.push(...poll.messages);
        sizes.push(poll.messages.length);
      }
      t.diagnostic(`messages per poll: ${sizes.join(", ")}`);
      assert.ok(sizes[0] > 100, `the first poll took what was queued: ${sizes.join(", ")}`);
      assert.deepEqual(
        messages.filter((m) => m.target === "Seq").map((m) => m.arguments[0]),
        Array.from({ length: 500 }, (_, i) => i),
      );
      assert.deepEqual(messages.at(-1), { type: MessageType.Completion, invocationId: "1" });
      assert.equal(messages.length, 501);
      const deleted = await fetch(lp.url, { method: "DELETE" });
      assert.equal(deleted.status, 202);
    });

    for (const [what, message, close] of [
      [
        "a message over 32 KiB",
        { type: 1, target: "Echo", arguments: ["x".repeat(40 * 1024)] },
        {
          type: MessageType.Close,
          error:
            "Connection closed with an error. InvalidDataException: The maximum message size of 32768B was exceeded. The message size can be configured in AddHubOptions.",
          allowReconnect: true,
        },
      ],
      [
        "Abort()",
        { type: 1, invocationId: "1", target: "Abort", arguments: [] },
        { type: MessageType.Close },
      ],
    ]) {
      test(`the Close message after ${what} waits for the next poll`, async () => {
        const lp = await rawLongPolling();
        // No poll is outstanding when the server closes the connection.
        await lp.post(message);
        await delay(300);
        const poll = await withTimeout(lp.poll(), 5_000, "poll");
        assert.equal(poll.status, 200, `the next poll: ${poll.status} ${poll.body}`);
        const closes = poll.messages.filter((m) => m.type === MessageType.Close);
        assert.equal(closes.length, 1, JSON.stringify(poll.messages));
        assert.deepEqual(closes[0], close);
        const last = await withTimeout(lp.poll(), 5_000, "poll");
        assert.equal(last.status, 204);
      });
    }

    for (const v of LONG_POLLING_VARIANTS) {
      test(`messages far larger than a poll body's buffers arrive whole (${v.protocol})`, async (t) => {
        const { conn } = await connect(t, v);
        for (const n of [100_000, 1_000_000, 4_000_000]) {
          const text = await withTimeout(conn.invoke("EchoLength", n), 10_000, `EchoLength(${n})`);
          assert.equal(text.length, n);
          assert.ok(/^x*$/.test(text), "only x");
        }
        // Events and a large result back to back.
        const seq = record(conn, "Seq");
        const [, big] = await Promise.all([
          conn.invoke("SendSequence", 100),
          conn.invoke("EchoLength", 500_000),
        ]);
        assert.equal(big.length, 500_000);
        assert.deepEqual(
          seq.items.map(([i]) => i),
          Array.from({ length: 100 }, (_, i) => i),
        );
      });

      test(`2,000 events in order through the client (${v.protocol})`, async (t) => {
        const { conn } = await connect(t, v);
        const seq = record(conn, "Seq");
        await withTimeout(conn.invoke("SendSequence", 2_000), 10_000, "SendSequence");
        assert.deepEqual(
          seq.items.map(([i]) => i),
          Array.from({ length: 2_000 }, (_, i) => i),
        );
      });
    }
  });

  describe("/echo on every transport and /echoredirect", { concurrency: true }, () => {
    for (const transport of ["ServerSentEvents", "LongPolling"]) {
      test(`/echo through HttpConnection over ${transport}: echoed once`, async (t) => {
        const raw = await startRawConnection(t, `${BASE_URL}/echo`, HttpTransportType[transport]);
        assert.equal(raw.connection.transport.constructor.name, `${transport}Transport`);
        const echoed = raw.next();
        await raw.connection.send(UNICODE);
        await echoed;
        await delay(100);
        assert.deepEqual(raw.received, [UNICODE], "echoed once");
        await raw.connection.stop();
        assert.equal(await raw.closed, undefined);
      });
    }

    test("/echo through HttpConnection over Long Polling, binary", async (t) => {
      const raw = await startRawConnection(
        t,
        `${BASE_URL}/echo`,
        HttpTransportType.LongPolling,
        signalR.TransferFormat.Binary,
      );
      const bytes = new Uint8Array([0, 1, 2, 0x1e, 0xff, 0x80]);
      const echoed = raw.next();
      await raw.connection.send(bytes);
      await echoed;
      assert.equal(raw.received.length, 1);
      assert.deepEqual([...new Uint8Array(raw.received[0])], [...bytes]);
    });

    test("/echoredirect (307) with WebSockets or Long Polling: falls back to Long Polling", async (t) => {
      const raw = await startRawConnection(
        t,
        `${BASE_URL}/echoredirect`,
        HttpTransportType.WebSockets | HttpTransportType.LongPolling,
      );
      // The WebSocket request gets the 307, which a WebSocket cannot follow; fetch follows
      // it for negotiate, the polls, the sends and the DELETE.
      assert.equal(raw.connection.transport.constructor.name, "LongPollingTransport");
      assert.ok(
        raw.logger.lines.some((l) => l.includes("Failed to start the transport 'WebSockets'")),
        "WebSockets was tried first",
      );
      assert.equal(raw.connection.baseUrl, `${BASE_URL}/echoredirect`);
      const echoed = raw.next();
      await raw.connection.send(UNICODE);
      await echoed;
      await delay(100);
      assert.deepEqual(raw.received, [UNICODE], "echoed once");
      await raw.connection.stop();
      assert.equal(await raw.closed, undefined);
    });

    test("/echoredirect answers 307 to /echo, keeping the query", async () => {
      const response = await fetch(`${BASE_URL}/echoredirect/negotiate?negotiateVersion=1&x=%20y`, {
        method: "POST",
        redirect: "manual",
      });
      assert.equal(response.status, 307);
      assert.equal(response.headers.get("location"), "/echo/negotiate?negotiateVersion=1&x=%20y");
    });
  });

  describe("CORS", { concurrency: true }, () => {
    const ORIGIN = "http://example.test";

    test("a request with Origin gets it echoed, with credentials allowed", async () => {
      const response = await fetch(`${BASE_URL}/testhub/negotiate?negotiateVersion=1`, {
        method: "POST",
        headers: { Origin: ORIGIN },
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("access-control-allow-origin"), ORIGIN);
      assert.equal(response.headers.get("access-control-allow-credentials"), "true");
      assert.equal(typeof (await response.json()).connectionId, "string");
    });

    test("a preflight echoes the requested method and headers and answers 204", async () => {
      for (const path of ["/testhub/negotiate?negotiateVersion=1", "/authorizedhub/negotiate"]) {
        const response = await fetch(`${BASE_URL}${path}`, {
          method: "OPTIONS",
          headers: {
            Origin: ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-requested-with,x-signalr-user-agent,authorization",
          },
        });
        assert.equal(response.status, 204, path);
        assert.equal(response.headers.get("access-control-allow-origin"), ORIGIN, path);
        assert.equal(response.headers.get("access-control-allow-credentials"), "true", path);
        assert.equal(response.headers.get("access-control-allow-methods"), "POST", path);
        assert.equal(
          response.headers.get("access-control-allow-headers"),
          "x-requested-with,x-signalr-user-agent,authorization",
          path,
        );
        assert.equal(await response.text(), "", path);
      }
    });

    test("a plain OPTIONS, anywhere, answers 204", async () => {
      for (const path of ["/testhub/negotiate", "/testhub", "/echo", "/no/such/path"]) {
        const response = await fetch(`${BASE_URL}${path}`, { method: "OPTIONS" });
        assert.equal(response.status, 204, path);
        assert.equal(response.headers.get("access-control-allow-origin"), null, path);
        assert.equal(await response.text(), "", path);
      }
    });

    test("a transport request (DELETE) with Origin gets the CORS headers too", async () => {
      const lp = await rawLongPolling();
      const response = await fetch(`${lp.url}`, {
        method: "DELETE",
        headers: { Origin: ORIGIN },
      });
      assert.equal(response.status, 202);
      assert.equal(response.headers.get("access-control-allow-origin"), ORIGIN);
      assert.equal(response.headers.get("access-control-allow-credentials"), "true");
    });
  });
});
