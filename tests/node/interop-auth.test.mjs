// Bearer tokens on the interop-server, driven by the official @microsoft/signalr client on
// every transport: `/authorizedhub` with `accessTokenFactory`, without a token and with a bad
// one; a token on `/testhub` sets the user, so `GetUserIdentifier`, `SendToUser` and
// `SendToUsers` work. Tokens come from `GET /generateJwtToken[/{name}]` (valid 5 s).
// Run with SIGNALR_SERVER_URL=http://127.0.0.1:PORT node --test interop-auth.test.mjs
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, test } from "node:test";

import {
  ALL_NEGOTIATING_VARIANTS,
  BASE_URL,
  TRANSPORT_VARIANTS,
  WS_BASE_URL,
  connect,
  errorOf,
  fetchToken,
  record,
  serverId,
  unique,
  withTimeout,
} from "./interop-common.mjs";

const require = createRequire(import.meta.url);
// `ws` as the client resolves it (it is a dependency of @microsoft/signalr).
const WebSocket = createRequire(require.resolve("@microsoft/signalr"))("ws");

const UNICODE = "你好，世界！";
const UNAUTHORIZED =
  "Failed to complete negotiation with the server: Error: Unauthorized: Status code '401'";

/** The same token with its signature changed: well-formed, but not signed by the server. */
function tamper(token) {
  const [header, payload, signature] = token.split(".");
  const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
  return `${header}.${payload}.${flipped}`;
}

/** The status of a WebSocket request to `url` with `headers`: 101 when it opened. */
function webSocketStatus(url, headers = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { headers });
      socket.once("open", () => {
        resolve(101);
        socket.terminate();
      });
      socket.once("unexpected-response", (_request, response) => {
        resolve(response.statusCode);
        socket.terminate();
      });
      socket.once("error", reject);
    }),
    5_000,
    `WebSocket ${url}`,
  );
}

describe("authentication", { concurrency: true }, () => {
  for (const v of ALL_NEGOTIATING_VARIANTS) {
    describe(`/authorizedhub, ${v.name}`, { concurrency: true }, () => {
      test("a token from accessTokenFactory: Echo works, the user is testuser", async (t) => {
        const token = await fetchToken();
        const { conn } = await connect(t, v, {
          path: "/authorizedhub",
          accessTokenFactory: () => token,
        });
        assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
        assert.equal(await conn.invoke("GetUserIdentifier"), "testuser");
      });

      test("an async accessTokenFactory that fetches the token itself", async (t) => {
        let calls = 0;
        const { conn } = await connect(t, v, {
          path: "/authorizedhub",
          accessTokenFactory: async () => {
            calls++;
            return fetchToken();
          },
        });
        assert.ok(calls >= 1, `the factory ran ${calls} times`);
        assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
        assert.equal(await conn.invoke("GetUserIdentifier"), "testuser");
      });

      test("without a token, start fails: negotiate answers 401", async (t) => {
        const { conn, http } = await connect(t, v, { path: "/authorizedhub", start: false });
        const e = await errorOf(conn.start());
        assert.equal(e.message, UNAUTHORIZED);
        assert.equal(e.errorType, "FailedToNegotiateWithServerError");
        assert.equal(http.length, 1, "negotiate only");
      });

      test("an invalid or wrongly signed token: 401", async (t) => {
        const good = await fetchToken();
        for (const token of ["not-a-jwt", "a.b.c", tamper(good)]) {
          const { conn } = await connect(t, v, {
            path: "/authorizedhub",
            accessTokenFactory: () => token,
            start: false,
          });
          const e = await errorOf(conn.start());
          assert.equal(e.message, UNAUTHORIZED, token);
        }
      });
    });
  }

  test("negotiate on /authorizedhub: 401 with an empty body without a token; header or query token", async () => {
    const url = `${BASE_URL}/authorizedhub/negotiate?negotiateVersion=1`;
    const none = await fetch(url, { method: "POST" });
    assert.equal(none.status, 401);
    assert.equal(none.statusText, "Unauthorized");
    assert.equal(await none.text(), "");
    const token = await fetchToken();
    const bearer = (t) => ({ method: "POST", headers: { Authorization: `Bearer ${t}` } });
    const header = await fetch(url, bearer(token));
    assert.equal(header.status, 200);
    assert.equal(typeof (await header.json()).connectionToken, "string");
    const query = await fetch(`${url}&access_token=${encodeURIComponent(token)}`, {
      method: "POST",
    });
    assert.equal(query.status, 200);
    assert.equal(typeof (await query.json()).connectionToken, "string");
    const bad = await fetch(url, bearer(tamper(token)));
    assert.equal(bad.status, 401);
    assert.equal(await bad.text(), "");
  });

  test("the transport requests of /authorizedhub need the token too", async () => {
    const token = await fetchToken();
    const auth = { Authorization: `Bearer ${token}` };
    const negotiate = await fetch(`${BASE_URL}/authorizedhub/negotiate?negotiateVersion=1`, {
      method: "POST",
      headers: auth,
    });
    const { connectionToken } = await negotiate.json();
    const url = `${BASE_URL}/authorizedhub?id=${encodeURIComponent(connectionToken)}`;
    const wsUrl = `${WS_BASE_URL}/authorizedhub?id=${encodeURIComponent(connectionToken)}`;
    // Without the token every transport is refused before the connection is touched.
    assert.equal(await webSocketStatus(wsUrl), 401, "WebSocket");
    const sse = await fetch(url, { headers: { Accept: "text/event-stream" } });
    assert.equal(sse.status, 401, "SSE");
    await sse.arrayBuffer();
    const poll = await fetch(url);
    assert.equal(poll.status, 401, "poll");
    await poll.arrayBuffer();
    const send = await fetch(url, {
      method: "POST",
      body: `{"protocol":"json","version":1}\u001e`,
    });
    assert.equal(send.status, 401, "send");
    await send.arrayBuffer();
    // With it, the first poll establishes the Long Polling transport.
    const first = await fetch(url, { headers: auth });
    assert.equal(first.status, 200);
    assert.equal(await first.text(), "");
    const deleted = await fetch(url, { method: "DELETE", headers: auth });
    assert.equal(deleted.status, 202);
  });

  for (const v of ALL_NEGOTIATING_VARIANTS) {
    test(`a token on /testhub sets the user: alice (${v.name})`, async (t) => {
      const token = await fetchToken("alice");
      const { conn } = await connect(t, v, { accessTokenFactory: () => token });
      assert.equal(await conn.invoke("GetUserIdentifier"), "alice");
      assert.equal(await conn.invoke("Echo", UNICODE), UNICODE);
    });
  }

  test("SendToUser and SendToUsers reach every connection of those users, on any transport", async (t) => {
    // Unique names, so that other tests' connections do not count.
    const alice = unique("alice");
    const bob = unique("bob");
    const [ws, sse, lp] = TRANSPORT_VARIANTS;
    const lpMessagePack = ALL_NEGOTIATING_VARIANTS.find(
      (v) => v.transport === "LongPolling" && v.protocol === "messagepack",
    );
    const as = async (user, v) => {
      if (user === null) return (await connect(t, v)).conn;
      const token = await fetchToken(user);
      return (await connect(t, v, { accessTokenFactory: () => token })).conn;
    };
    // Two connections of alice (WebSockets, Long Polling + MessagePack), bob on SSE, and an
    // anonymous connection on Long Polling.
    const conns = await Promise.all([
      as(alice, ws),
      as(alice, lpMessagePack),
      as(bob, sse),
      as(null, lp),
    ]);
    const users = await Promise.all(conns.map((c) => c.invoke("GetUserIdentifier")));
    assert.deepEqual(users, [alice, alice, bob, null]);
    const ids = await Promise.all(conns.map(serverId));
    const got = conns.map((c) => record(c, "UserMessage"));
    const direct = conns.map((c) => record(c, "DirectMessage"));
    // Who got `UserMessage(text)`? A DirectMessage marker sent to all afterwards arrives after
    // anything sent before it, so a missing message is really missing.
    const receivers = async (text) => {
      const marker = unique("marker");
      await conns[3].invoke("SendToConnections", ids, marker);
      await Promise.all(direct.map((d) => d.waitFor(([m]) => m === marker)));
      return got.map((g) => g.items.filter(([m]) => m === text).length);
    };

    await conns[2].invoke("SendToUser", alice, "to alice");
    assert.deepEqual(await receivers("to alice"), [1, 1, 0, 0], "SendToUser(alice)");

    await conns[0].invoke("SendToUser", bob, "to bob");
    assert.deepEqual(await receivers("to bob"), [0, 0, 1, 0], "SendToUser(bob)");

    await conns[3].invoke("SendToUsers", [alice, bob], "to both");
    assert.deepEqual(await receivers("to both"), [1, 1, 1, 0], "SendToUsers([alice, bob])");

    await conns[1].invoke("SendToUsers", [bob, unique("nobody")], "to bob and nobody");
    assert.deepEqual(
      await receivers("to bob and nobody"),
      [0, 0, 1, 0],
      "an unknown user is no error",
    );

    // Once one of alice's connections is gone, the other still gets her messages.
    await conns[0].stop();
    await conns[2].invoke("SendToUser", alice, "to alice again");
    await got[1].waitFor(([m]) => m === "to alice again");
    assert.deepEqual(
      got[0].items.map(([m]) => m),
      ["to alice", "to both"],
    );
  });

  test("an invalid token on /testhub, which needs none, leaves the connection anonymous", async (t) => {
    const { conn } = await connect(t, TRANSPORT_VARIANTS[0], {
      accessTokenFactory: () => "not-a-jwt",
    });
    assert.equal(await conn.invoke("GetUserIdentifier"), null);
  });
});
