// Conduit with the official JavaScript client: tasks started over HTTP and followed on the
// TaskHub and the image and video hubs to completion (JSON and MessagePack), task types,
// failures, refusals, and isolation between virtual keys.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import {
  MessagePackHubProtocol,
  TASK_EVENTS,
  api,
  connect,
  createKey,
  record,
  sleep,
  startTask,
  waitFor,
} from "./common.mjs";

const open = [];
after(async () => {
  await Promise.allSettled(open.map((c) => c.stop()));
});

async function hub(name, key, options) {
  const connection = await connect(name, key, options);
  open.push(connection);
  return connection;
}

/** The progress values of `taskId`'s TaskProgress events, checked for shape and order. */
function progressValues(log, taskId) {
  const values = log.events
    .filter((e) => e.name === "TaskProgress" && e.args[0] === taskId)
    .map((e) => {
      assert.equal(e.args.length, 3, `TaskProgress has 3 arguments: ${JSON.stringify(e.args)}`);
      const [, progress, message] = e.args;
      assert.equal(typeof progress, "number");
      assert.ok(progress >= 0 && progress <= 100, `progress ${progress}`);
      assert.ok(message === null || typeof message === "string", `message ${JSON.stringify(message)}`);
      return progress;
    });
  for (let i = 1; i < values.length; i++) {
    assert.ok(values[i] >= values[i - 1], `progress goes down: ${values}`);
  }
  return values;
}

const PROTOCOLS = ["json", ...(MessagePackHubProtocol ? ["messagepack"] : [])];

describe("TaskHub", () => {
  for (const protocol of PROTOCOLS) {
    test(`a generic task, followed to completion (${protocol})`, async () => {
      const { key } = await createKey();
      const connection = await hub("tasks", key, { protocol });
      const log = record(connection, TASK_EVENTS);
      const taskId = await startTask(key, { taskType: "batch_embedding", items: 40 });
      assert.match(taskId, /^task_[0-9a-f-]{36}$/);
      await connection.invoke("SubscribeToTask", taskId);

      const completed = await waitFor(log, (e) => e.name === "TaskCompleted" && e.args[0] === taskId, 30000, "TaskCompleted");
      assert.equal(completed.args.length, 2);
      const values = progressValues(log, taskId);
      assert.ok(values.length >= 1, "at least one TaskProgress before TaskCompleted");
      assert.ok(
        log.events.indexOf(completed) > log.events.findIndex((e) => e.name === "TaskProgress"),
        "TaskCompleted comes after the progress",
      );
      assert.ok(!log.events.some((e) => e.name === "TaskFailed"), "no TaskFailed");

      const { status, body } = await api("GET", `/api/tasks/${taskId}`, key);
      assert.equal(status, 200);
      assert.equal(body.taskId, taskId);
      assert.equal(body.taskType, "batch_embedding");
      assert.equal(body.status, "completed");
      assert.equal(body.progress, 100);
    });
  }

  test("a failing task reports TaskFailed(taskId, error, isRetryable)", async () => {
    const { key } = await createKey();
    const connection = await hub("tasks", key);
    const log = record(connection, TASK_EVENTS);
    const taskId = await startTask(key, { taskType: "batch_embedding", items: 40, fail: true });
    await connection.invoke("SubscribeToTask", taskId);
    const failed = await waitFor(log, (e) => e.name === "TaskFailed" && e.args[0] === taskId, 30000, "TaskFailed");
    assert.equal(failed.args.length, 3);
    assert.equal(typeof failed.args[1], "string");
    assert.ok(failed.args[1].length > 0);
    assert.equal(typeof failed.args[2], "boolean");
    assert.ok(!log.events.some((e) => e.name === "TaskCompleted" && e.args[0] === taskId));
    const { body } = await api("GET", `/api/tasks/${taskId}`, key);
    assert.equal(body.status, "failed");
  });

  test("SubscribeToTaskType announces the key's new tasks of that type", async () => {
    const { key } = await createKey();
    const connection = await hub("tasks", key);
    const log = record(connection, TASK_EVENTS);
    await connection.invoke("SubscribeToTaskType", "video_transcode");
    const taskId = await startTask(key, { taskType: "video_transcode", items: 5 });
    const started = await waitFor(log, (e) => e.name === "TaskStarted" && e.args[0] === taskId, 15000, "TaskStarted");
    assert.equal(started.args.length, 3);
    assert.equal(started.args[1], "video_transcode");
    // Another type is not announced.
    await startTask(key, { taskType: "batch_embedding", items: 5 });
    await sleep(500);
    assert.deepEqual(
      log.events.filter((e) => e.name === "TaskStarted").map((e) => e.args[1]),
      ["video_transcode"],
    );
  });

  test("refusals: blank id, unknown task", async () => {
    const { key } = await createKey();
    const connection = await hub("tasks", key);
    await assert.rejects(connection.invoke("SubscribeToTask", ""), /Invalid task ID/);
    await assert.rejects(
      connection.invoke("SubscribeToTask", "task_00000000-0000-0000-0000-000000000000"),
      /Task not found/,
    );
  });
});

describe("media hubs", () => {
  test("an image generation, followed on /hubs/image-generation", async () => {
    const { key } = await createKey();
    const connection = await hub("image-generation", key);
    const log = record(connection, [
      "ImageGenerationStarted",
      "ImageGenerationProgress",
      "ImageGenerationCompleted",
      "ImageGenerationFailed",
    ]);
    const { status, body } = await api("POST", "/api/images/generations", key, {
      prompt: "a cat",
      n: 2,
      size: "1024x1024",
      model: "dall-e-3",
    });
    assert.equal(status, 202);
    assert.match(body.taskId, /^img_/);
    await connection.invoke("SubscribeToTask", body.taskId);
    const done = await waitFor(
      log,
      (e) => e.name === "ImageGenerationCompleted" && e.args[0]?.taskId === body.taskId,
      30000,
      "ImageGenerationCompleted",
    );
    assert.equal(done.args.length, 1, "one object argument");
    assert.ok(Array.isArray(done.args[0].imageUrls), JSON.stringify(done.args[0]));
    assert.equal(done.args[0].imageUrls.length, 2);
    const progress = log.events.filter((e) => e.name === "ImageGenerationProgress");
    assert.ok(progress.length >= 1, "at least one ImageGenerationProgress");
    for (const e of progress) {
      assert.equal(e.args[0].taskId, body.taskId);
      assert.equal(typeof e.args[0].progressPercentage, "number");
    }
  });

  test("a video generation, followed on /hubs/video-generation", async () => {
    const { key } = await createKey();
    const connection = await hub("video-generation", key);
    const log = record(connection, ["VideoGenerationStarted", "VideoGenerationProgress", "VideoGenerationCompleted", "VideoGenerationFailed"]);
    const { status, body } = await api("POST", "/api/videos/generations", key, {
      prompt: "waves",
      model: "video-01",
      duration: 6,
    });
    assert.equal(status, 202);
    assert.match(body.taskId, /^vid_/);
    assert.match(body.ephemeralKey, /^ek_/);
    await connection.invoke("SubscribeToTask", body.taskId);
    const done = await waitFor(
      log,
      (e) => e.name === "VideoGenerationCompleted" && e.args[0]?.taskId === body.taskId,
      30000,
      "VideoGenerationCompleted",
    );
    assert.equal(typeof done.args[0].videoUrl, "string");
  });
});

describe("isolation between virtual keys", () => {
  test("another key cannot follow, read or hear a key's tasks and spend", async () => {
    const alice = await createKey({ budget: 10 });
    const bob = await createKey();
    const aliceTasks = await hub("tasks", alice.key);
    const bobTasks = await hub("tasks", bob.key);
    const aliceSpend = await hub("spend", alice.key);
    const bobSpend = await hub("spend", bob.key);
    const aliceLog = record(aliceTasks, TASK_EVENTS);
    const bobLog = record(bobTasks, TASK_EVENTS);
    const aliceSpendLog = record(aliceSpend, ["SpendUpdate", "BudgetAlert"]);
    const bobSpendLog = record(bobSpend, ["SpendUpdate", "BudgetAlert"]);

    // Both subscribe to the same task type; only the owner hears of the task.
    await aliceTasks.invoke("SubscribeToTaskType", "batch_embedding");
    await bobTasks.invoke("SubscribeToTaskType", "batch_embedding");
    const taskId = await startTask(alice.key, { taskType: "batch_embedding", items: 40 });
    await waitFor(aliceLog, (e) => e.name === "TaskStarted" && e.args[0] === taskId, 15000, "TaskStarted");

    await assert.rejects(bobTasks.invoke("SubscribeToTask", taskId), /Unauthorized access to task/);
    const read = await api("GET", `/api/tasks/${taskId}`, bob.key);
    assert.equal(read.status, 404);
    const cancel = await api("POST", `/api/tasks/${taskId}/cancel`, bob.key);
    assert.ok([403, 404].includes(cancel.status), `bob cancels alice's task: ${cancel.status}`);

    await aliceTasks.invoke("SubscribeToTask", taskId);
    await waitFor(aliceLog, (e) => e.name === "TaskCompleted" && e.args[0] === taskId, 30000, "TaskCompleted");

    // Spend goes to the key's own connections only.
    const spent = await api("POST", "/api/spend", alice.key, { amount: 8, model: "gpt-4o", provider: "openai" });
    assert.equal(spent.status, 200);
    const update = await waitFor(aliceSpendLog, (e) => e.name === "SpendUpdate", 10000, "SpendUpdate");
    assert.equal(update.args[0].totalSpend, 8);
    await waitFor(aliceSpendLog, (e) => e.name === "BudgetAlert", 10000, "BudgetAlert");
    await sleep(500);
    assert.deepEqual(bobLog.events, [], `bob heard: ${JSON.stringify(bobLog.events)}`);
    assert.deepEqual(bobSpendLog.events, [], `bob heard: ${JSON.stringify(bobSpendLog.events)}`);
  });

  test("an unknown key is refused at negotiate and on the API", async () => {
    const unknown = "condt_" + "x".repeat(32);
    await assert.rejects(connect("tasks", unknown), /401/);
    const { status, body } = await api("POST", "/api/tasks", unknown, { taskType: "batch_embedding" });
    assert.equal(status, 401);
    assert.equal(typeof body.error, "string");
  });
});
