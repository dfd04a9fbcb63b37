// The interop-server's other endpoints over WebSockets, driven by the official
// @microsoft/signalr client (and by `ws`, the WebSocket package the client itself uses):
// negotiate, `/echo`, `/redirect`, `/bad-negotiate`, `/uncreatable`, case-insensitive routes.
// Run with SIGNALR_SERVER_URL=http://127.0.0.1:PORT node --test interop-ws-endpoints.test.mjs
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, test } from "node:test";

import {
  BASE_URL,
  MemoryLogger,
  NEGOTIATING_VARIANTS,
  VARIANTS,
  WS_BASE_URL,
  connect,
  delay,
  errorOf,
  nextClose,
  serverId,
  signalR,
  withTimeout,
} from "./interop-common.mjs";

const require = createRequire(import.meta.url);
// `ws` as the client resolves it (it is a dependency of @microsoft/signalr).
const WebSocket = createRequire(require.resolve("@microsoft/signalr"))("ws");
// The raw connection the hub connection is built on; the package does not export it.
const { HttpConnection } = require("@microsoft/signalr/dist/cjs/HttpConnection.js");

const UNICODE = "你好，世界！";

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

/** POSTs a negotiate request, version 1, and returns the parsed body. */
async function negotiate(path) {
  const response = await fetch(`${BASE_URL}${path}/negotiate?negotiateVersion=1`, {
    method: "POST",
  });
  assert.equal(response.status, 200);
  return response.json();
}

describe("endpoints over WebSockets", { concurrency: true }, () => {
  test("negotiate on /testhub", async () => {
    const response = await fetch(`${BASE_URL}/testhub/negotiate?negotiateVersion=1`, {
      method: "POST",
    });
    assert.equal(response.status, 200);
    const cookies = response.headers.getSetCookie();
    assert.ok(cookies.some((c) => c.startsWith("testCookie=testValue")), cookies.join(" | "));
    assert.ok(cookies.some((c) => c.startsWith("testCookie2=testValue2")), cookies.join(" | "));
    assert.ok(cookies.some((c) => c.startsWith("expiredCookie=doesntmatter")), cookies.join(" | "));
    const body = await response.json();
    assert.equal(body.negotiateVersion, 1);
    assert.equal(typeof body.connectionId, "string");
    assert.equal(typeof body.connectionToken, "string");
    assert.notEqual(body.connectionId, body.connectionToken);
    assert.equal(body.useStatefulReconnect, undefined, "no stateful reconnect unless asked for");
    const ws = body.availableTransports.find((t) => t.transport === "WebSockets");
    assert.deepEqual(ws?.transferFormats, ["Text", "Binary"]);
  });

  test("the WebSocket request needs the connection token, not the connection id", async (t) => {
    const body = await negotiate("/testhub");
    const refused = await errorOf(
      openWebSocket(`${WS_BASE_URL}/testhub?id=${encodeURIComponent(body.connectionId)}`),
    );
    assert.equal(refused.message, "HTTP 404");
    const socket = await openWebSocket(
      `${WS_BASE_URL}/testhub?id=${encodeURIComponent(body.connectionToken)}`,
    );
    t.after(() => socket.terminate());
    const reply = new Promise((resolve) => socket.once("message", resolve));
    socket.send('{"protocol":"json","version":1}\u001e');
    assert.equal(String(await withTimeout(reply, 5_000, "handshake response")), "{}\u001e");
    // The hub answers the WebSocket close handshake.
    const closed = new Promise((resolve) => (socket.onclose = resolve));
    socket.close(1000);
    const event = await withTimeout(closed, 5_000, "close");
    assert.equal(event.code, 1000);
    assert.equal(event.wasClean, true);
  });

  test("hub routes match case-insensitively", async (t) => {
    for (const v of VARIANTS) {
      const { conn } = await connect(t, v, { path: "/TestHub" });
      assert.equal(await conn.invoke("Echo", UNICODE), UNICODE, v.name);
      await conn.stop();
    }
  });

  test("raw /echo WebSocket without negotiate: a text frame is echoed once, as text", async (t) => {
    const socket = await openWebSocket(`${WS_BASE_URL}/echo`);
    // Also when an assertion fails: an open socket would keep this file's process alive.
    t.after(() => socket.terminate());
    const messages = [];
    let arrived = () => {};
    socket.on("message", (data) => {
      messages.push(data);
      arrived();
    });
    const nextEcho = () =>
      withTimeout(new Promise((resolve) => (arrived = resolve)), 5_000, "echo");
    let echoed = nextEcho();
    socket.send("message");
    await echoed;
    // ws 7 hands text frames over as strings and binary frames as Buffers.
    assert.equal(typeof messages[0], "string", "a text frame");
    assert.equal(messages[0], "message");
    echoed = nextEcho();
    socket.send(UNICODE);
    await echoed;
    await delay(100);
    assert.deepEqual(messages, ["message", UNICODE], "each echoed exactly once");
  });

  test("raw /echo WebSocket without negotiate: clean close 1000", async (t) => {
    const socket = await openWebSocket(`${WS_BASE_URL}/echo`);
    t.after(() => socket.terminate());
    const echoed = new Promise((resolve) => socket.once("message", resolve));
    socket.send("message");
    assert.equal(await withTimeout(echoed, 5_000, "echo"), "message");
    const closed = new Promise((resolve) => (socket.onclose = resolve));
    socket.close(1000);
    const event = await withTimeout(closed, 5_000, "close");
    assert.equal(event.code, 1000);
    assert.equal(event.wasClean, true);
  });

  for (const skipNegotiation of [false, true]) {
    test(`/echo through HttpConnection over WebSockets${skipNegotiation ? ", skipNegotiation" : ""}`, async (t) => {
      const logger = new MemoryLogger("echo");
      const connection = new HttpConnection(`${BASE_URL}/echo`, {
        transport: signalR.HttpTransportType.WebSockets,
        skipNegotiation,
        logger,
      });
      t.after(() => connection.stop());
      const received = [];
      let gotOne;
      const one = new Promise((resolve) => (gotOne = resolve));
      connection.onreceive = (data) => {
        received.push(data);
        gotOne();
      };
      const closed = new Promise((resolve) => (connection.onclose = resolve));
      await withTimeout(connection.start(signalR.TransferFormat.Text), 5_000, "start");
      await connection.send(UNICODE);
      await withTimeout(one, 5_000, "echo");
      await delay(100);
      assert.deepEqual(received, [UNICODE], "echoed once");
      await connection.stop();
      assert.equal(await closed, undefined);
    });
  }

  for (const v of NEGOTIATING_VARIANTS) {
    test(`/bad-negotiate: the error text (${v.protocol})`, async (t) => {
      const { conn } = await connect(t, v, { path: "/bad-negotiate", start: false });
      const e = await errorOf(conn.start());
      assert.equal(
        e.message,
        "Failed to complete negotiation with the server: Error: Some response from server: Status code '400'",
      );
      assert.equal(e.errorType, "FailedToNegotiateWithServerError");
    });
  }

  for (const v of VARIANTS) {
    test(`/uncreatable: start fails with the server's close error (${v.name})`, async (t) => {
      const { conn } = await connect(t, v, { path: "/uncreatable", start: false });
      const closed = nextClose(conn);
      let error;
      try {
        await conn.start();
        // The Close may also land after start() resolved: then onclose reports it.
        error = await withTimeout(closed, 5_000, "onclose");
      } catch (e) {
        error = e;
      }
      assert.equal(
        error?.message,
        "Server returned an error on close: Connection closed with an error. InvalidOperationException: Unable to resolve service for type 'System.Object' while attempting to activate 'FunctionalTests.UncreatableHub'.",
      );
      assert.equal(conn.state, signalR.HubConnectionState.Disconnected);
    });
  }

  for (const v of NEGOTIATING_VARIANTS) {
    test(`negotiate redirect through /redirect, then reconnect (${v.protocol})`, async (t) => {
      const url = `${BASE_URL}/redirect?baseUrl=${encodeURIComponent(BASE_URL)}`;
      const { conn } = await connect(t, v, { url, reconnect: true });
      const redirectsBefore = await conn.invoke("GetNumRedirects");
      assert.ok(redirectsBefore >= 1, `GetNumRedirects: ${redirectsBefore}`);
      assert.equal(conn.connectionId, await serverId(conn));
      assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
      assert.equal(await conn.invoke("GetCookie", "testCookie"), "testValue");

      // A reconnect goes back to the /redirect URL, which bumps the counter.
      const idBefore = conn.connectionId;
      const reconnected = new Promise((resolve) => conn.onreconnected(resolve));
      conn.serverTimeout();
      const newId = await withTimeout(reconnected, 10_000, "onreconnected");
      assert.notEqual(newId, idBefore);
      assert.equal(newId, conn.connectionId);
      assert.equal(await serverId(conn), newId);
      const redirectsAfter = await conn.invoke("GetNumRedirects");
      assert.ok(redirectsAfter > redirectsBefore, `${redirectsAfter} > ${redirectsBefore}`);
      assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);

      await conn.stop();
      assert.equal(conn.connectionId, null);
    });
  }

  test("GetNumRedirects is 0 without a redirect", async (t) => {
    const { conn } = await connect(t, VARIANTS[0]);
    assert.equal(await conn.invoke("GetNumRedirects"), 0);
  });
});
