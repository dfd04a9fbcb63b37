// Scale-out checks with real processes: several `interop-server --redis URL` on one Redis,
// official JS clients (JSON and MessagePack, over several transports) spread across them.
// Not a `*.test.mjs`, so the single-server harness does not pick it up; run it with
//
//   SIGNALR_SERVER_URLS=http://127.0.0.1:A,http://127.0.0.1:B,http://127.0.0.1:C \
//     node --test tests/node/scaleout.mjs
//
// (examples/interop-server/tests/scale_out.rs does). With `SCALEOUT_FAULT=1` and run as a
// plain script (`node scaleout.mjs`), it is instead the client side of the Redis-outage
// scenario, driven over stdin/stdout by that harness (see `faultScenario` below).
import assert from "node:assert/strict";
import { createInterface } from "node:readline";
import { test } from "node:test";

const URLS = (process.env.SIGNALR_SERVER_URLS ?? "")
  .split(",")
  .map((u) => u.trim().replace(/\/+$/, ""))
  .filter(Boolean);
if (URLS.length < 2) {
  throw new Error("SIGNALR_SERVER_URLS must list at least two server base URLs, comma-separated");
}
// interop-common.mjs wants a single server URL; give it the first one (every connection here
// passes its full URL anyway). A dynamic import, so that this runs first.
process.env.SIGNALR_SERVER_URL ??= URLS[0];
const { connect, record, withTimeout, unique, delay } = await import("./interop-common.mjs");

const JSON_WS = { name: "json/ws", protocol: "json", transport: "WebSockets" };
const MSGPACK_WS = { name: "msgpack/ws", protocol: "messagepack", transport: "WebSockets" };
const MSGPACK_WS_SKIP = {
  name: "msgpack/ws-skip",
  protocol: "messagepack",
  transport: "WebSockets",
  skipNegotiation: true,
};
const JSON_SSE = { name: "json/sse", protocol: "json", transport: "ServerSentEvents" };
const JSON_LP = { name: "json/lp", protocol: "json", transport: "LongPolling" };
const MSGPACK_LP = { name: "msgpack/lp", protocol: "messagepack", transport: "LongPolling" };

const EVENTS = ["Broadcast", "GroupMessage", "UserMessage", "DirectMessage"];

/** The server index for the `i`-th of three roles (A, B, C), with only two servers: C = A. */
function server(i) {
  return URLS[i % URLS.length];
}

/**
 * A client on server `s` (an index into URLS) with `variant`, recording every event of
 * EVENTS by its message text. `counts(event, text)` says how often `text` arrived.
 */
async function client(t, name, s, variant, options = {}) {
  const url = `${server(s)}/testhub`;
  const { conn } = await connect(t, { ...variant, name: `${name}@${s} ${variant.name}` }, {
    url,
    ...options,
  });
  const recorded = Object.fromEntries(EVENTS.map((e) => [e, record(conn, e)]));
  const id = await conn.invoke("GetCallerConnectionId");
  // The message text is the last argument of every event (GroupMessage is (group, text)).
  const texts = (event) => recorded[event].items.map((args) => args[args.length - 1]);
  return {
    name: `${name}@${s}`,
    conn,
    id,
    server: s,
    recorded,
    count: (event, text) => texts(event).filter((x) => x === text).length,
    waitFor: (event, text, ms = 5_000) =>
      recorded[event].waitFor((args) => args[args.length - 1] === text, ms),
  };
}

/** Six clients, two per server (A = 0, B = 1, C = 2), mixing protocols and transports. */
async function cluster(t) {
  const a0 = await client(t, "a0", 0, JSON_WS);
  const a1 = await client(t, "a1", 0, MSGPACK_WS);
  const b0 = await client(t, "b0", 1, MSGPACK_WS_SKIP);
  const b1 = await client(t, "b1", 1, JSON_LP);
  const c0 = await client(t, "c0", 2, JSON_SSE);
  const c1 = await client(t, "c1", 2, MSGPACK_LP);
  return { a0, a1, b0, b1, c0, c1, all: [a0, a1, b0, b1, c0, c1] };
}

/**
 * Proves that nothing else is on its way: each sender broadcasts a fresh marker (through
 * Redis, after everything it published before), and every client must see every marker.
 * Since each server receives a publisher's messages in order, whatever a sender published
 * earlier has arrived by then.
 */
async function flush(senders, clients) {
  for (const sender of senders) {
    const marker = unique(`flush-${sender.name}`);
    await sender.conn.invoke("SendToAll", marker);
    await Promise.all(clients.map((c) => c.waitFor("Broadcast", marker)));
    for (const c of clients) {
      assert.equal(c.count("Broadcast", marker), 1, `${c.name} got flush marker once`);
    }
  }
}

/** Asserts that exactly `expected` of `clients` got `text` on `event`, each once. */
function assertDelivered(clients, event, text, expected) {
  const names = new Set(expected.map((c) => c.name));
  for (const c of clients) {
    assert.equal(
      c.count(event, text),
      names.has(c.name) ? 1 : 0,
      `${c.name}: ${event} '${text}' ${names.has(c.name) ? "exactly once" : "never"}`,
    );
  }
}

async function waitAll(clients, event, text) {
  await Promise.all(clients.map((c) => c.waitFor(event, text)));
}

async function fetchText(url) {
  const response = await withTimeout(fetch(url), 20_000, `GET ${url}`);
  return { status: response.status, text: await response.text() };
}

if (process.env.SCALEOUT_FAULT === "1") {
  await faultScenario();
} else {
  tests();
}

function tests() {
  test(`${URLS.length} servers: all, others, all-except`, async (t) => {
    const cl = await cluster(t);
    const { a0, a1, b0, b1, c0, all } = cl;

    const m1 = unique("all");
    await a0.conn.invoke("SendToAll", m1);
    await waitAll(all, "Broadcast", m1);

    const m2 = unique("others");
    await b1.conn.invoke("SendToOthers", m2);
    const others = all.filter((c) => c !== b1);
    await waitAll(others, "Broadcast", m2);

    const m3 = unique("all-except");
    await c0.conn.invoke("SendToAllExcept", m3, [a1.id, b0.id]);
    const notExcluded = all.filter((c) => c !== a1 && c !== b0);
    await waitAll(notExcluded, "Broadcast", m3);

    await flush([a0, b1, c0], all);
    assertDelivered(all, "Broadcast", m1, all);
    assertDelivered(all, "Broadcast", m2, others);
    assertDelivered(all, "Broadcast", m3, notExcluded);
  });

  test("connection and connections across servers", async (t) => {
    const { a0, a1, b0, b1, c0, c1, all } = await cluster(t);

    const m1 = unique("conn");
    await a0.conn.invoke("SendToConnection", c1.id, m1);
    await c1.waitFor("DirectMessage", m1);

    // A mix: local (a1), and on both other servers.
    const m2 = unique("conns");
    const targets = [a1, b0, c0];
    await a0.conn.invoke("SendToConnections", targets.map((c) => c.id), m2);
    await waitAll(targets, "DirectMessage", m2);

    // From B to a connection on A, and to one on B itself.
    const m3 = unique("conn-b");
    await b1.conn.invoke("SendToConnections", [a0.id, b0.id], m3);
    await waitAll([a0, b0], "DirectMessage", m3);

    // An unknown connection: the send succeeds (nobody gets it), as with ASP.NET Core.
    await b1.conn.invoke("SendToConnection", "no-such-connection", unique("nobody"));

    await flush([a0, b1], all);
    assertDelivered(all, "DirectMessage", m1, [c1]);
    assertDelivered(all, "DirectMessage", m2, targets);
    assertDelivered(all, "DirectMessage", m3, [a0, b0]);
  });

  test("groups across servers: group, group-except, others-in-group, leave", async (t) => {
    const { a0, a1, b0, b1, c0, c1, all } = await cluster(t);
    const g = unique("group");
    // Two members on A, one on B, one on C.
    for (const c of [a0, a1, b1, c1]) await c.conn.invoke("JoinGroup", g);

    const m1 = unique("g");
    await b0.conn.invoke("SendToGroup", g, m1); // b0 is not a member
    await waitAll([a0, a1, b1, c1], "GroupMessage", m1);

    const m2 = unique("g-except");
    await c0.conn.invoke("SendToGroupExcept", g, m2, [b1.id, a1.id]);
    await waitAll([a0, c1], "GroupMessage", m2);

    const m3 = unique("g-others");
    await c1.conn.invoke("SendToOthersInGroup", g, m3);
    await waitAll([a0, a1, b1], "GroupMessage", m3);

    // B's last member leaves (B no longer needs the group's channel), one of A's too.
    await b1.conn.invoke("LeaveGroup", g);
    await a1.conn.invoke("LeaveGroup", g);
    const m4 = unique("g-after-leave");
    await a0.conn.invoke("SendToGroup", g, m4);
    await waitAll([a0, c1], "GroupMessage", m4);

    // And another connection on B joins again.
    await b0.conn.invoke("JoinGroup", g);
    const m5 = unique("g-rejoin");
    await c0.conn.invoke("SendToGroup", g, m5);
    await waitAll([a0, b0, c1], "GroupMessage", m5);

    // A group nobody is in.
    await c0.conn.invoke("SendToGroup", unique("empty-group"), unique("nobody"));

    await flush([b0, c0, c1, a0], all);
    assertDelivered(all, "GroupMessage", m1, [a0, a1, b1, c1]);
    assertDelivered(all, "GroupMessage", m2, [a0, c1]);
    assertDelivered(all, "GroupMessage", m3, [a0, a1, b1]);
    assertDelivered(all, "GroupMessage", m4, [a0, c1]);
    assertDelivered(all, "GroupMessage", m5, [a0, b0, c1]);
    for (const c of all) {
      for (const args of c.recorded.GroupMessage.items) {
        if (args[1].startsWith("g")) assert.equal(args[0], g, `${c.name}: group name argument`);
      }
    }
  });

  test("group add/remove on server A of a connection on B, sent from C", async (t) => {
    const { a0, a1, b0, b1, c0, c1, all } = await cluster(t);
    const g = unique("remote-group");

    // On A, for connections on B and C.
    await a0.conn.invoke("AddConnectionToGroup", b0.id, g);
    await a0.conn.invoke("AddConnectionToGroup", c1.id, g);
    const m1 = unique("remote-add");
    await c0.conn.invoke("SendToGroup", g, m1);
    await waitAll([b0, c1], "GroupMessage", m1);

    // Adding again changes nothing.
    await a1.conn.invoke("AddConnectionToGroup", b0.id, g);
    const m2 = unique("remote-add-twice");
    await c0.conn.invoke("SendToGroup", g, m2);
    await waitAll([b0, c1], "GroupMessage", m2);

    // Removed on A (for the connection on B); C still sends.
    await a0.conn.invoke("RemoveConnectionFromGroup", b0.id, g);
    const m3 = unique("remote-removed");
    await c0.conn.invoke("SendToGroup", g, m3);
    await c1.waitFor("GroupMessage", m3);

    // Removed on B (for the connection on C), by a client on B; sent from A.
    await b1.conn.invoke("RemoveConnectionFromGroup", c1.id, g);
    await b1.conn.invoke("AddConnectionToGroup", a1.id, g);
    const m4 = unique("remote-removed-2");
    await a0.conn.invoke("SendToGroup", g, m4);
    await a1.waitFor("GroupMessage", m4);

    await flush([c0, a0], all);
    assertDelivered(all, "GroupMessage", m1, [b0, c1]);
    assertDelivered(all, "GroupMessage", m2, [b0, c1]);
    assertDelivered(all, "GroupMessage", m3, [c1]);
    assertDelivered(all, "GroupMessage", m4, [a1]);
  });

  test("user connected to several servers: user and users", async (t) => {
    // Each server signs tokens with its own key: ask each for its own.
    const as = (s, user) => ({
      accessTokenFactory: async () =>
        (await fetchText(`${server(s)}/generateJwtToken/${user}`)).text,
    });
    const aliceA = await client(t, "aliceA", 0, JSON_WS, as(0, "alice"));
    const aliceB = await client(t, "aliceB", 1, MSGPACK_WS, as(1, "alice"));
    const aliceB2 = await client(t, "aliceB2", 1, JSON_LP, as(1, "alice"));
    const bobC = await client(t, "bobC", 2, MSGPACK_LP, as(2, "bob"));
    const carolA = await client(t, "carolA", 0, JSON_SSE, as(0, "carol"));
    const anon = await client(t, "anon", 2, JSON_WS);
    const all = [aliceA, aliceB, aliceB2, bobC, carolA, anon];
    assert.equal(await aliceB.conn.invoke("GetUserIdentifier"), "alice");
    assert.equal(await bobC.conn.invoke("GetUserIdentifier"), "bob");
    assert.equal(await anon.conn.invoke("GetUserIdentifier"), null);

    const m1 = unique("user");
    await anon.conn.invoke("SendToUser", "alice", m1); // from C
    const alices = [aliceA, aliceB, aliceB2];
    await waitAll(alices, "UserMessage", m1);

    const m2 = unique("users");
    await carolA.conn.invoke("SendToUsers", ["alice", "bob"], m2); // from A
    await waitAll([...alices, bobC], "UserMessage", m2);

    const m3 = unique("user-self");
    await bobC.conn.invoke("SendToUser", "carol", m3);
    await carolA.waitFor("UserMessage", m3);

    await anon.conn.invoke("SendToUser", "nobody-at-all", unique("nobody"));

    await flush([anon, carolA, bobC], all);
    assertDelivered(all, "UserMessage", m1, alices);
    assertDelivered(all, "UserMessage", m2, [...alices, bobC]);
    assertDelivered(all, "UserMessage", m3, [carolA]);
  });

  test("concurrent broadcasts from three servers: each once, in each sender's order", async (t) => {
    const { a1, b0, c1, all } = await cluster(t);
    const senders = [a1, b0, c1];
    const N = 25;
    const prefix = unique("burst");
    // The three senders at once, each invoking one after the other.
    await Promise.all(
      senders.map(async (s) => {
        for (let i = 0; i < N; i++) await s.conn.invoke("SendToAll", `${prefix}-${s.name}-${i}`);
      }),
    );
    await flush(senders, all);
    for (const c of all) {
      const got = c.recorded.Broadcast.items.map((a) => a[0]).filter((x) => x.startsWith(prefix));
      assert.equal(got.length, senders.length * N, `${c.name} got every message once`);
      assert.equal(new Set(got).size, got.length, `${c.name}: no duplicates`);
      for (const s of senders) {
        const mine = got.filter((x) => x.startsWith(`${prefix}-${s.name}-`));
        assert.deepEqual(
          mine,
          Array.from({ length: N }, (_, i) => `${prefix}-${s.name}-${i}`),
          `${c.name}: ${s.name}'s messages in order`,
        );
      }
    }
  });

  test("one connection in a group through two servers gets a group message once", async (t) => {
    const { a0, b0, c0, all } = await cluster(t);
    const g = unique("double-join");
    await b0.conn.invoke("JoinGroup", g); // on its own server
    await a0.conn.invoke("AddConnectionToGroup", b0.id, g); // again, from A
    await c0.conn.invoke("AddConnectionToGroup", b0.id, g); // and from C
    const m = unique("double-join-msg");
    await c0.conn.invoke("SendToGroup", g, m);
    await b0.waitFor("GroupMessage", m);
    await flush([c0], all);
    assertDelivered(all, "GroupMessage", m, [b0]);
    // One removal (from A) is enough.
    await a0.conn.invoke("RemoveConnectionFromGroup", b0.id, g);
    const m2 = unique("double-join-removed");
    await c0.conn.invoke("SendToGroup", g, m2);
    await flush([c0], all);
    assertDelivered(all, "GroupMessage", m2, []);
  });

  test("TestHub's other paths (stateful, no WebSockets) share its channels", async (t) => {
    const a = await client(t, "a", 0, JSON_WS);
    const aStateful = await client(t, "aStateful", 0, MSGPACK_WS, {
      url: `${server(0)}/testhub-stateful`,
      statefulReconnect: true,
    });
    const bStateful = await client(t, "bStateful", 1, JSON_WS, {
      url: `${server(1)}/testhub-stateful`,
      statefulReconnect: true,
    });
    const cLp = await client(t, "cLp", 2, MSGPACK_LP, { url: `${server(2)}/testhub-nowebsockets` });
    const all = [a, aStateful, bStateful, cLp];

    const m1 = unique("paths-all");
    await a.conn.invoke("SendToAll", m1);
    await waitAll(all, "Broadcast", m1);

    // A connection of another hub path in the same process, and ones on other servers.
    const m2 = unique("paths-conn");
    await a.conn.invoke("SendToConnections", [aStateful.id, bStateful.id, cLp.id], m2);
    await waitAll([aStateful, bStateful, cLp], "DirectMessage", m2);

    const g = unique("paths-group");
    await a.conn.invoke("AddConnectionToGroup", aStateful.id, g);
    await a.conn.invoke("AddConnectionToGroup", cLp.id, g);
    const m3 = unique("paths-group-msg");
    await bStateful.conn.invoke("SendToGroup", g, m3);
    await waitAll([aStateful, cLp], "GroupMessage", m3);

    aStateful.conn.on("Result", () => 10);
    cLp.conn.on("Result", () => 10);
    for (const [s, c] of [[0, aStateful], [1, cLp]]) {
      const r = await fetchText(`${server(s)}/clientresult/${encodeURIComponent(c.id)}`);
      assert.deepEqual(r, { status: 200, text: "10" }, `/clientresult on ${s} for ${c.name}`);
    }

    await flush([a, bStateful], all);
    assertDelivered(all, "Broadcast", m1, all);
    assertDelivered(all, "DirectMessage", m2, [aStateful, bStateful, cLp]);
    assertDelivered(all, "GroupMessage", m3, [aStateful, cLp]);
  });

  test("client results across servers", async (t) => {
    const { a0, b0, b1, c1 } = await cluster(t);
    a0.conn.on("Result", () => 10);
    b0.conn.on("Result", () => 10); // MessagePack on B
    b1.conn.on("Result", () => 10); // JSON over Long Polling on B
    c1.conn.on("Result", () => 10); // MessagePack over Long Polling on C
    const ask = (s, c) => fetchText(`${server(s)}/clientresult/${encodeURIComponent(c.id)}`);

    assert.deepEqual(await ask(0, a0), { status: 200, text: "10" }, "local");
    assert.deepEqual(await ask(0, b0), { status: 200, text: "10" }, "A asks b0 on B");
    assert.deepEqual(await ask(0, b1), { status: 200, text: "10" }, "A asks b1 on B");
    assert.deepEqual(await ask(1, c1), { status: 200, text: "10" }, "B asks c1 on C");
    assert.deepEqual(await ask(2, a0), { status: 200, text: "10" }, "C asks a0 on A");

    // Several at once, crossing each other.
    const many = await Promise.all([
      ask(0, b0), ask(1, a0), ask(2, b1), ask(0, c1), ask(1, c1), ask(2, a0),
    ]);
    for (const r of many) assert.deepEqual(r, { status: 200, text: "10" });

    // A connection without a handler on another server: the client's error comes back.
    const noHandler = await client(t, "c0-nohandler", 2, JSON_WS);
    const none = await ask(0, noHandler);
    assert.equal(none.status, 200);
    assert.equal(none.text, "Client didn't provide a result.");

    // An id no server has.
    const unknown = await fetchText(`${server(1)}/clientresult/no-such-connection`);
    assert.equal(unknown.status, 200);
    assert.notEqual(unknown.text, "10");
    assert.equal(unknown.text, "Connection 'no-such-connection' does not exist.");
  });

  test("a connection on B closes while A waits for its client result", async (t) => {
    const b = await client(t, "b-pending", 1, MSGPACK_WS);
    const a = await client(t, "a-sender", 0, JSON_WS);
    const g = unique("closing-group");
    await b.conn.invoke("JoinGroup", g);
    let asked;
    const askedPromise = new Promise((resolve) => (asked = resolve));
    b.conn.on("Result", () => {
      asked();
      return new Promise(() => {}); // never answers
    });
    const pending = fetchText(`${server(0)}/clientresult/${encodeURIComponent(b.id)}`);
    await withTimeout(askedPromise, 5_000, "Result() reaching the client on B");
    await b.conn.stop();
    assert.deepEqual(await pending, { status: 200, text: `Connection '${b.id}' disconnected.` });
    // Gone everywhere: no client result, and sends to it or its group go nowhere.
    const after = await fetchText(`${server(2)}/clientresult/${encodeURIComponent(b.id)}`);
    assert.equal(after.text, `Connection '${b.id}' does not exist.`);
    await a.conn.invoke("SendToConnection", b.id, unique("to-closed"));
    await a.conn.invoke("SendToGroup", g, unique("to-closed-group"));
    await flush([a], [a]);
  });
}

/**
 * The client side of the Redis-outage scenario, as a line protocol with the harness:
 * it prints `READY` once its clients are up and cross-server delivery works, then waits for
 * `STOPPED` on stdin (Redis killed); meanwhile and afterwards, a client on A and one on B each
 * invoke every 50 ms a local send (SendToConnection to its own connection: no Redis
 * needed) and a broadcast (SendToAll). After a second it prints `START`, the harness
 * restarts Redis and answers `STARTED`; the clients keep going until cross-server delivery
 * is back both ways, then half a second more, and it prints `RESULT {json}` (`problems`
 * lists duplicates, and broadcasts sent after the recovery that did not arrive exactly once;
 * `missing` the broadcasts that were published but missed by a server that had not
 * resubscribed yet).
 */
async function faultScenario() {
  const lines = createInterface({ input: process.stdin });
  const queue = [];
  const waiters = [];
  lines.on("line", (line) => {
    const waiter = waiters.shift();
    if (waiter) waiter(line.trim());
    else queue.push(line.trim());
  });
  const expect = async (wanted) => {
    const line = queue.length
      ? queue.shift()
      : await withTimeout(new Promise((r) => waiters.push(r)), 20_000, `'${wanted}' from harness`);
    if (line !== wanted) throw new Error(`expected '${wanted}' from the harness, got '${line}'`);
  };
  const t = { after() {} };
  const a = await client(t, "a", 0, JSON_WS);
  const b = await client(t, "b", 1, MSGPACK_WS);
  const clients = [a, b];
  await flush(clients, clients);

  const stats = {
    local: { sent: 0, failed: 0 },
    broadcast: { sent: 0, failed: 0, failedDuringOutage: 0, errors: {} },
    probeFailed: 0,
  };
  const bcasts = []; // { text, sender, ok }
  let phase = "before";
  let running = true;
  const pump = async (c) => {
    let n = 0;
    while (running) {
      n += 1;
      const local = `local-${c.name}-${n}`;
      try {
        await withTimeout(c.conn.invoke("SendToConnection", c.id, local), 5_000, "local send");
        stats.local.sent += 1;
      } catch (e) {
        stats.local.failed += 1;
        stats.local.lastError = `${phase}: ${e.message}`;
      }
      const text = `bcast-${c.name}-${n}`;
      const entry = { text, sender: c.name, phase, ok: false };
      bcasts.push(entry);
      try {
        await withTimeout(c.conn.invoke("SendToAll", text), 5_000, "broadcast");
        entry.ok = true;
        stats.broadcast.sent += 1;
      } catch (e) {
        stats.broadcast.failed += 1;
        if (phase === "outage") stats.broadcast.failedDuringOutage += 1;
        const key = e.message.slice(0, 160);
        stats.broadcast.errors[key] = (stats.broadcast.errors[key] ?? 0) + 1;
      }
      await delay(50);
    }
  };
  const pumps = clients.map(pump);
  await delay(300);
  process.stdout.write("READY\n");
  await expect("STOPPED");
  phase = "outage";
  const outageStart = Date.now();
  // During the outage, on server B: a group change of a local connection, and a new
  // connection with a user (token from B itself). Both must work at once, and their
  // subscriptions be made when Redis is back.
  const problems = [];
  const g = unique("outage-group");
  const outageOps = {};
  try {
    await withTimeout(b.conn.invoke("JoinGroup", g), 5_000, "JoinGroup during the outage");
    outageOps.joinGroup = "ok";
  } catch (e) {
    outageOps.joinGroup = e.message;
    problems.push(`JoinGroup during the outage failed: ${e.message}`);
  }
  let late;
  try {
    const token = async () => (await fetchText(`${server(1)}/generateJwtToken/dave`)).text;
    late = await client(t, "late", 1, JSON_LP, { accessTokenFactory: token });
    late.conn.on("Result", () => 10);
    outageOps.connect = "ok";
  } catch (e) {
    outageOps.connect = e.message;
    problems.push(`connecting during the outage failed: ${e.message}`);
  }
  const remaining = 1_000 - (Date.now() - outageStart);
  if (remaining > 0) await delay(remaining);
  phase = "restarting";
  process.stdout.write("START\n");
  await expect("STARTED");
  const restarted = Date.now();
  phase = "after";
  // Cross-server delivery is back once a fresh broadcast from each side reaches the other.
  const recovered = async () => {
    for (;;) {
      const m1 = unique("probe-a");
      const m2 = unique("probe-b");
      try {
        await a.conn.invoke("SendToAll", m1);
        await b.conn.invoke("SendToAll", m2);
      } catch {
        stats.probeFailed += 1; // one of them, the other was not sent
        await delay(100);
        continue;
      }
      try {
        await b.waitFor("Broadcast", m1, 300);
        await a.waitFor("Broadcast", m2, 300);
        return Date.now();
      } catch {
        // Sent, not received yet (the other server not resubscribed yet): try again.
      }
    }
  };
  const recoveredAt = await withTimeout(recovered(), 15_000, "cross-server recovery");
  phase = "recovered";
  // What was set up during the outage works across servers now.
  const afterRecovery = {};
  const check = async (name, f) => {
    try {
      await f();
      afterRecovery[name] = "ok";
    } catch (e) {
      afterRecovery[name] = e.message;
      problems.push(`after recovery, ${name}: ${e.message}`);
    }
  };
  await check("group joined during the outage", async () => {
    const m = unique("outage-group-msg");
    await a.conn.invoke("SendToGroup", g, m);
    await b.waitFor("GroupMessage", m);
  });
  if (late) {
    await check("connection made during the outage", async () => {
      const m = unique("late-conn");
      await a.conn.invoke("SendToConnection", late.id, m);
      await late.waitFor("DirectMessage", m);
    });
    await check("user connected during the outage", async () => {
      const m = unique("late-user");
      await a.conn.invoke("SendToUser", "dave", m);
      await late.waitFor("UserMessage", m);
    });
    await check("client result across servers", async () => {
      const r = await fetchText(`${server(0)}/clientresult/${encodeURIComponent(late.id)}`);
      assert.equal(r.text, "10");
    });
  }
  await delay(500);
  running = false;
  await Promise.all(pumps);
  await flush(clients, clients);

  // Every local send that succeeded arrived; every broadcast that succeeded arrived on both
  // sides once; none arrived twice.
  for (const c of clients) {
    let n = 0;
    for (;;) {
      n += 1;
      const text = `local-${c.name}-${n}`;
      if (n > stats.local.sent + stats.local.failed + 5) break;
      const got = c.count("DirectMessage", text);
      if (got > 1) problems.push(`${c.name} got ${text} ${got} times`);
    }
  }
  const localReceived = clients.reduce(
    (sum, c) =>
      sum +
      c.recorded.DirectMessage.items.filter((x) => String(x[0]).startsWith("local-")).length,
    0,
  );
  let okButMissing = 0;
  let failedButArrived = 0;
  const missing = [];
  for (const e of bcasts) {
    for (const c of clients) {
      const got = c.count("Broadcast", e.text);
      if (got > 1) problems.push(`${c.name} got ${e.text} ${got} times`);
      if (e.ok && got === 0) {
        okButMissing += 1;
        missing.push(`${c.name} missed ${e.text} (${e.phase})`);
      }
      // (A PUBLISH cut off by the kill may have been delivered: only later phases count.)
      if (!e.ok && got > 0 && e.phase !== "before") failedButArrived += 1;
      // Once both servers were seen delivering each other's broadcasts, nothing is lost.
      if (e.phase === "recovered" && got !== 1) {
        problems.push(`${c.name} got ${e.text} ${got} times after recovery (sent: ${e.ok})`);
      }
    }
  }
  const result = {
    ...stats,
    localReceived,
    broadcastAttempts: bcasts.length,
    broadcastsDuringOutage: bcasts.filter((e) => e.phase === "outage").length,
    broadcastsLost: bcasts.filter((e) => !e.ok).length,
    lostByPhase: Object.fromEntries(
      ["before", "outage", "restarting", "after", "recovered"].map((p) => [
        p,
        bcasts.filter((e) => !e.ok && e.phase === p).length,
      ]),
    ),
    okButMissing,
    missing,
    failedButArrived,
    broadcastsAfterRecovery: bcasts.filter((e) => e.phase === "recovered").length,
    outageMs: restarted - outageStart,
    recoveryMs: recoveredAt - restarted,
    outageOps,
    afterRecovery,
    problems,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  await Promise.all([...clients, ...(late ? [late] : [])].map((c) => c.conn.stop()));
  process.exit(0);
}
