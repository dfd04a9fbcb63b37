// Conduit's other hubs and limits with the official JavaScript client, against
// examples/conduit/CONTRACT.md: webhook deliveries (success, retries, ownership),
// notification preferences and provider health, the public video hub with an ephemeral
// key, methods meant only for the server, cancelling, disabling a key, connection and
// invocation limits, an exhausted budget, and the admin metrics stream.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import {
  BASE_URL,
  MASTER_KEY,
  TASK_EVENTS,
  api,
  connect,
  createKey,
  record,
  signalR,
  sleep,
  startTask,
  waitFor,
} from "./common.mjs";

const open = [];
async function hub(name, key, options) {
  const connection = await connect(name, key, options);
  open.push(connection);
  return connection;
}

// A webhook receiver on loopback: `/ok` answers 200, `/fail` 500.
const received = [];
let receiver;
let hookBase;
before(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      let json = null;
      try {
        json = JSON.parse(body);
      } catch {
        // not JSON
      }
      received.push({ path: req.url, method: req.method, body: json });
      res.writeHead(req.url.startsWith("/fail") ? 500 : 200, { "Content-Type": "text/plain" });
      res.end("ok");
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  hookBase = `http://127.0.0.1:${receiver.address().port}`;
});

after(async () => {
  await Promise.allSettled(open.map((c) => c.stop()));
  await new Promise((resolve) => receiver.close(resolve));
});

const WEBHOOK_EVENTS = ["DeliveryAttempted", "DeliverySucceeded", "DeliveryFailed", "RetryScheduled"];

describe("webhooks", () => {
  test("a completed task is delivered to the key's webhook, and reported on /hubs/webhooks", async () => {
    const { key } = await createKey();
    const url = `${hookBase}/ok/${Date.now()}`;
    const created = await api("POST", "/api/webhooks", key, { url });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.body.webhookId, /^wh_/);
    assert.equal(created.body.url, url);

    const connection = await hub("webhooks", key);
    const log = record(connection, WEBHOOK_EVENTS);
    await connection.invoke("SubscribeToWebhooks", [url]);
    const taskId = await startTask(key, { taskType: "batch_embedding", items: 5 });
    const succeeded = await waitFor(log, (e) => e.name === "DeliverySucceeded", 20000, "DeliverySucceeded");
    assert.equal(succeeded.args.length, 1);
    assert.equal(succeeded.args[0].url, url);
    assert.equal(succeeded.args[0].statusCode, 200);
    const delivered = received.filter((r) => r.path === new URL(url).pathname);
    assert.equal(delivered.length, 1, JSON.stringify(delivered));
    assert.equal(delivered[0].method, "POST");
    assert.ok(JSON.stringify(delivered[0].body).includes(taskId), JSON.stringify(delivered[0].body));
  });

  test("a failing webhook is retried with backoff, at most 5 attempts, then DeliveryFailed", async () => {
    const { key } = await createKey();
    const url = `${hookBase}/fail/${Date.now()}`;
    assert.equal((await api("POST", "/api/webhooks", key, { url })).status, 201);
    const connection = await hub("webhooks", key);
    const log = record(connection, WEBHOOK_EVENTS);
    await connection.invoke("SubscribeToWebhooks", [url]);
    await startTask(key, { taskType: "batch_embedding", items: 5 });
    await waitFor(log, (e) => e.name === "RetryScheduled", 20000, "RetryScheduled");
    await waitFor(
      log,
      (e) => e.name === "DeliveryFailed" && (e.args[0].isFinal === true || e.args[0].isPermanentFailure === true),
      30000,
      "final DeliveryFailed",
    );
    const attempts = received.filter((r) => r.path === new URL(url).pathname).length;
    assert.ok(attempts >= 2 && attempts <= 5, `${attempts} attempts`);
  });

  test("another key cannot watch a key's webhook", async () => {
    const alice = await createKey();
    const bob = await createKey();
    const url = `${hookBase}/ok/private-${Date.now()}`;
    assert.equal((await api("POST", "/api/webhooks", alice.key, { url })).status, 201);
    const connection = await hub("webhooks", bob.key);
    await assert.rejects(connection.invoke("SubscribeToWebhooks", [url]), /Unauthorized access to webhook/);
  });
});

describe("notifications", () => {
  test("preferences filter what a connection receives; provider health reaches it", async () => {
    const { key } = await createKey();
    const health = await hub("notifications", key);
    const healthLog = record(health, ["PreferencesUpdated", "OnProviderHealthChanged", "SystemAnnouncement"]);
    const preferences = { enabledTypes: ["provider_health"], minimumPriority: 0 };
    await health.invoke("UpdatePreferences", preferences);
    const updated = await waitFor(healthLog, (e) => e.name === "PreferencesUpdated", 5000, "PreferencesUpdated");
    assert.deepEqual(updated.args[0].enabledTypes, ["provider_health"]);

    const everything = await hub("notifications", key);
    const everythingLog = record(everything, ["SystemAnnouncement"]);

    const put = await api("PUT", "/api/providers/3/health", MASTER_KEY, { status: "Degraded", responseTimeMs: 450 });
    assert.equal(put.status, 200);
    const changed = await waitFor(healthLog, (e) => e.name === "OnProviderHealthChanged", 10000, "OnProviderHealthChanged");
    const n = changed.args[0];
    assert.equal(n.type, "provider_health");
    assert.equal(n.providerId, 3);
    for (const field of ["id", "timestamp", "priority"]) assert.ok(field in n, `${field} in ${JSON.stringify(n)}`);

    const announced = await api("POST", "/api/announcements", MASTER_KEY, { message: "maintenance at noon", priority: 1 });
    assert.equal(announced.status, 200);
    const announcement = await waitFor(everythingLog, (e) => e.name === "SystemAnnouncement", 10000, "SystemAnnouncement");
    assert.equal(announcement.args[0].message, "maintenance at noon");
    await sleep(300);
    assert.ok(!healthLog.events.some((e) => e.name === "SystemAnnouncement"), "filtered out by the preferences");
  });
});

describe("public video hub", () => {
  test("an ephemeral key subscribes without a virtual key, and is reusable", async () => {
    const { key } = await createKey();
    const { body } = await api("POST", "/api/videos/generations", key, { prompt: "rain", model: "video-01", duration: 6 });
    const connect = async () => {
      const connection = new signalR.HubConnectionBuilder()
        .withUrl(`${BASE_URL}/hubs/public/video-generation`, { transport: signalR.HttpTransportType.WebSockets })
        .configureLogging(signalR.LogLevel.None)
        .build();
      const log = record(connection, ["taskSubscribed", "VideoGenerationProgress", "VideoGenerationCompleted"]);
      await connection.start();
      open.push(connection);
      return { connection, log };
    };
    const first = await connect();
    await assert.rejects(first.connection.invoke("SubscribeToTask", body.taskId, "ek_wrong"));
    await first.connection.invoke("SubscribeToTask", body.taskId, body.ephemeralKey);
    const subscribed = await waitFor(first.log, (e) => e.name === "taskSubscribed", 5000, "taskSubscribed");
    assert.equal(subscribed.args[0].taskId, body.taskId);
    assert.equal(typeof subscribed.args[0].message, "string");
    const second = await connect();
    await second.connection.invoke("SubscribeToTask", body.taskId, body.ephemeralKey);
    for (const { log } of [first, second]) {
      const done = await waitFor(log, (e) => e.name === "VideoGenerationCompleted", 30000, "VideoGenerationCompleted");
      assert.equal(done.args[0].taskId, body.taskId);
    }
  });
});

describe("server-only methods and task control", () => {
  test("event names are not hub methods", async () => {
    const { key } = await createKey();
    const tasks = await hub("tasks", key);
    await assert.rejects(tasks.invoke("TaskProgress", "task_x", 50, "x"), /Unknown hub method|does not exist/i);
    await assert.rejects(tasks.invoke("TaskCompleted", "task_x", null), /Unknown hub method|does not exist/i);
    const spend = await hub("spend", key);
    await assert.rejects(spend.invoke("SendSpendUpdate", 1, {}), /Unknown hub method|does not exist/i);
  });

  test("the owner cancels a task: TaskCancelled", async () => {
    const { key } = await createKey();
    const connection = await hub("tasks", key);
    const log = record(connection, TASK_EVENTS);
    const taskId = await startTask(key, { taskType: "batch_embedding", items: 400 });
    await connection.invoke("SubscribeToTask", taskId);
    await waitFor(log, (e) => e.name === "TaskProgress", 10000, "TaskProgress");
    const cancel = await api("POST", `/api/tasks/${taskId}/cancel`, key);
    assert.equal(cancel.status, 202);
    const cancelled = await waitFor(log, (e) => e.name === "TaskCancelled" && e.args[0] === taskId, 10000, "TaskCancelled");
    assert.equal(cancelled.args.length, 2);
    assert.ok(!log.events.some((e) => e.name === "TaskCompleted"));
    assert.equal((await api("GET", `/api/tasks/${taskId}`, key)).body.status, "cancelled");
  });
});

describe("keys and limits", () => {
  test("disabling a key closes its connections and refuses it afterwards", async () => {
    const created = await createKey();
    const connection = await hub("tasks", created.key);
    const closed = new Promise((resolve) => connection.onclose(resolve));
    const patched = await api("PATCH", `/api/keys/${created.id}`, MASTER_KEY, { enabled: false });
    assert.equal(patched.status, 200);
    await Promise.race([closed, sleep(5000).then(() => assert.fail("the connection stayed open"))]);
    await assert.rejects(connect("tasks", created.key), /401/);
  });

  test("a key at maxConnections cannot open another", async () => {
    const { key } = await createKey({ maxConnections: 2 });
    await hub("spend", key);
    await hub("spend", key);
    let refused = false;
    try {
      const third = await connect("spend", key);
      open.push(third);
      // Or the server closes it with an error.
      refused = await Promise.race([
        new Promise((resolve) => third.onclose(() => resolve(true))),
        sleep(3000).then(() => false),
      ]);
    } catch (err) {
      refused = /429|Too Many|limit/i.test(err.message);
      assert.ok(refused, err.message);
    }
    assert.ok(refused, "a third connection was accepted");
  });

  test("hub invocations beyond the key's rate limit fail", async () => {
    const { key } = await createKey({ rateLimitPerMinute: 5 });
    const connection = await hub("tasks", key);
    const results = [];
    for (let i = 0; i < 7; i++) {
      results.push(
        await connection.invoke("SubscribeToTaskType", `type_${i}`).then(
          () => "ok",
          (err) => err.message,
        ),
      );
    }
    assert.deepEqual(results.slice(0, 5), ["ok", "ok", "ok", "ok", "ok"]);
    assert.match(results[6], /Rate limit exceeded/);
  });

  test("an exhausted budget refuses the key", async () => {
    const { key } = await createKey({ budget: 1 });
    assert.equal((await api("POST", "/api/spend", key, { amount: 1.5, model: "gpt-4o", provider: "openai" })).status, 200);
    const refused = await api("POST", "/api/tasks", key, { taskType: "batch_embedding" });
    assert.equal(refused.status, 401);
    await assert.rejects(connect("tasks", key), /401/);
  });
});

describe("metrics hub", () => {
  test("the master key streams MetricsSnapshot; a plain key is refused", async () => {
    const connection = await hub("metrics", MASTER_KEY);
    const snapshot = await new Promise((resolve, reject) => {
      const subscription = connection.stream("StreamMetrics", 1).subscribe({
        next: (item) => {
          subscription.dispose();
          resolve(item);
        },
        error: reject,
        complete: () => reject(new Error("the stream ended without an item")),
      });
    });
    assert.equal(typeof snapshot.activeConnections, "object");
    assert.ok("timestamp" in snapshot);

    const { key } = await createKey();
    let refused = false;
    try {
      const plain = await connect("metrics", key);
      open.push(plain);
      await plain.invoke("GetMetricsSnapshot");
    } catch {
      refused = true;
    }
    assert.ok(refused, "a non-admin key read the metrics");
  });
});
