// Conduit's dashboard in a real browser (Debian's chromium, driven by playwright-core): enter
// a key, connect to every hub, start tasks from the page and watch their progress bars
// reach completion, a webhook's deliveries, live spend and a budget alert, a provider
// health change; then the server stops and the status turns to reconnecting, then, once
// automatic reconnect gives up, disconnected; and, when the test may restart the server,
// back to connected (the page's own restart loop) with a task followed on the new server.
//
// Environment: CONDUIT_URL, CONDUIT_MASTER_KEY, CONDUIT_PID (the server, stopped by this
// test), optionally CONDUIT_BIN and CONDUIT_ARGS (a JSON array; to restart it on the same
// address), CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default /tmp).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";

import { chromium } from "playwright-core";

import { BASE_URL, MASTER_KEY, api, createKey } from "./common.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || "/tmp";
const SERVER_PID = Number(process.env.CONDUIT_PID || 0);

const cleanups = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch {
      // best effort
    }
  }
});

async function launch() {
  const userDataDir = mkdtempSync(join(tmpdir(), "conduit-chromium-"));
  cleanups.push(() => rmSync(userDataDir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 1000 },
  });
  cleanups.push(() => context.close());
  return context;
}

/** Waits until `#connection-status` reads one of `states`. */
async function waitForStatus(page, states, timeout = 20000) {
  await page.waitForFunction(
    (wanted) => wanted.includes(document.getElementById("connection-status")?.textContent),
    states,
    { timeout },
  );
  return page.textContent("#connection-status");
}

/** Clicks `button`, waits for the new task row, then for its bar to reach 100 and `completed`. */
async function runTaskFromPage(page, button) {
  const before = await page.$$eval(".task", (rows) => rows.map((r) => r.dataset.taskId));
  await page.click(button);
  const handle = await page.waitForFunction(
    (known) => [...document.querySelectorAll(".task")].map((r) => r.dataset.taskId).find((id) => !known.includes(id)),
    before,
    { timeout: 15000 },
  );
  const taskId = await handle.jsonValue();
  const row = `.task[data-task-id="${taskId}"]`;
  await page.waitForFunction(
    (selector) => {
      const r = document.querySelector(selector);
      return r && r.dataset.status === "completed" && r.querySelector(".progress").dataset.progress === "100";
    },
    row,
    { timeout: 30000 },
  );
  const width = await page.$eval(`${row} .progress .fill`, (el) => el.style.width);
  assert.equal(width, "100%");
  return taskId;
}

/** Starts the server again with the same arguments; resolves once it listens. */
function restartServer() {
  const args = JSON.parse(process.env.CONDUIT_ARGS || "[]");
  const child = spawn(process.env.CONDUIT_BIN, args, { stdio: ["ignore", "pipe", "ignore"] });
  cleanups.push(() => child.kill("SIGKILL"));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the restarted server did not listen within 30 s")), 30000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.startsWith("conduit listening on ")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on("exit", (code) => reject(new Error(`the restarted server exited (${code})`)));
  });
}

test("the dashboard follows a key live, and shows the server going away", { timeout: 180000 }, async () => {
  const alice = await createKey({ name: "dashboard", budget: 10 });
  const context = await launch();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));

  // Automatic reconnect gives up after 3 s here, so the restart loop is exercised too.
  const response = await page.goto(`${BASE_URL}/?giveUpMs=3000`);
  assert.equal(response.status(), 200);
  assert.match(await page.title(), /Conduit/);
  assert.equal(await page.textContent("#connection-status"), "disconnected");
  assert.equal(await page.evaluate(() => typeof signalR.HubConnectionBuilder), "function");

  // An unknown key is refused, and said so.
  await page.fill("#key-input", "condt_" + "0".repeat(32));
  await page.click("#connect-button");
  await page.waitForSelector("#key-error:not([hidden])", { timeout: 10000 });
  assert.match(await page.textContent("#key-error"), /401/);
  assert.equal(await page.textContent("#connection-status"), "disconnected");

  // Connect with the key; it is kept in sessionStorage.
  await page.fill("#key-input", alice.key);
  await page.click("#connect-button");
  await waitForStatus(page, ["connected"]);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("conduit.key")), alice.key);
  assert.equal(await page.isHidden("#key-error"), true);

  // A reload connects again with the key from sessionStorage.
  await page.reload();
  await waitForStatus(page, ["connected"]);
  assert.equal(await page.inputValue("#key-input"), alice.key);

  // The snapshot from the HTTP API: budget and provider health before any event.
  await page.waitForSelector('.provider[data-provider-id="1"][data-status="Healthy"]', { timeout: 10000 });
  assert.equal(await page.$eval("#spend-budget", (el) => el.dataset.budget), "10");

  // A webhook added on the page shows its deliveries.
  const receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end("ok"));
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => receiver.close(resolve)));
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
  await page.fill("#webhook-url", hookUrl);
  await page.click("#add-webhook");
  await page.waitForSelector(`.webhook[data-url="${hookUrl}"]`, { timeout: 10000 });

  // Tasks started from the page run to completion.
  const taskId = await runTaskFromPage(page, "#start-task");
  assert.match(taskId, /^task_/);
  const imageId = await runTaskFromPage(page, "#start-image");
  assert.match(imageId, /^img_/);
  await page.waitForSelector(`.webhook[data-url="${hookUrl}"] .delivery[data-status="succeeded"]`, { timeout: 15000 });

  // Live spend and a budget alert.
  await page.fill("#spend-amount", "8");
  await page.click("#spend-button");
  await page.waitForFunction(() => document.getElementById("spend-total").dataset.total === "8", null, { timeout: 10000 });
  await page.waitForSelector(".budget-alert", { timeout: 10000 });
  assert.equal(await page.$eval("#spend-budget", (el) => el.dataset.budget), "10");

  // A provider health change reaches the indicator.
  const health = await api("PUT", "/api/providers/2/health", MASTER_KEY, { status: "Unhealthy", responseTimeMs: 900 });
  assert.equal(health.status, 200);
  await page.waitForSelector('.provider[data-provider-id="2"][data-status="Unhealthy"]', { timeout: 10000 });

  await page.screenshot({ path: join(SCREENSHOT_DIR, "conduit-dashboard.png"), fullPage: true });

  // The server goes away: the page says so.
  assert.ok(SERVER_PID > 0, "CONDUIT_PID is not set");
  process.kill(SERVER_PID, "SIGKILL");
  const status = await waitForStatus(page, ["reconnecting", "disconnected"], 15000);
  assert.ok(["reconnecting", "disconnected"].includes(status));
  await page.screenshot({ path: join(SCREENSHOT_DIR, "conduit-dashboard-down.png"), fullPage: true });

  // Back on the same address (with the same key: keys live in memory), the page
  // reconnects by itself and follows a new task.
  if (process.env.CONDUIT_BIN) {
    // Automatic reconnect gives up; the page keeps starting the connections again.
    await waitForStatus(page, ["disconnected"], 30000);
    await restartServer();
    const again = await api("POST", "/api/keys", MASTER_KEY, { name: "dashboard", budget: 10, key: alice.key });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    await waitForStatus(page, ["connected"], 45000);
    await runTaskFromPage(page, "#start-task");
  }

  assert.deepEqual(errors, [], `page errors: ${errors.join("; ")}`);
});
