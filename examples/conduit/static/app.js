// Conduit's real-time dashboard: one official SignalR client connection per hub for the
// virtual key typed in (kept in sessionStorage), with live spend and budget alerts, task
// progress, provider health, webhook deliveries and a connection status indicator.
//
// Reconnects: withAutomaticReconnect with a backoff policy (1 s doubling to 30 s, giving up
// after 60 s, or ?giveUpMs=N), then, once a connection has given up, start() again with the same backoff
// until it works. After either, every subscription is made again (the server forgets a
// connection's groups when it comes back with a new connection id).
//
// Stable hooks for tests: #connection-status (text and data-state: connected, reconnecting,
// disconnected), .task[data-task-id] with data-status and .progress[data-progress],
// #spend-total[data-total], .budget-alert[data-alert-type], .provider[data-status],
// .webhook[data-url] .delivery[data-status].

"use strict";

(function () {
  const KEY_STORAGE = "conduit.key";
  const HUBS = ["tasks", "image-generation", "video-generation", "notifications", "spend", "webhooks"];
  const HEALTH = ["Healthy", "Degraded", "Unhealthy"];
  const MAX_LOG = 60;

  const $ = (id) => document.getElementById(id);
  const state = {
    key: null,
    generation: 0, // bumps on each connect/disconnect, so stale loops stop
    connections: {}, // hub -> HubConnection
    hubState: {}, // hub -> connected | reconnecting | disconnected
    tasks: new Map(), // taskId -> { hub, status }
    webhooks: new Set(),
  };

  // ---------------------------------------------------------------- backoff

  function backoffDelay(retryCount) {
    return Math.min(1000 * 2 ** Math.min(retryCount, 10), 30000);
  }

  // How long automatic reconnect tries before giving up (then restartLoop takes over);
  // `?giveUpMs=N` in the page's URL changes it (tests use a short one).
  const GIVE_UP_MS = Number(new URLSearchParams(location.search).get("giveUpMs")) || 60000;

  const retryPolicy = {
    nextRetryDelayInMilliseconds(context) {
      if (context.elapsedMilliseconds >= GIVE_UP_MS) return null;
      return backoffDelay(context.previousRetryCount);
    },
  };

  // ---------------------------------------------------------------- status

  function setHubState(hub, value) {
    state.hubState[hub] = value;
    renderStatus();
  }

  function overallStatus() {
    const states = Object.values(state.hubState);
    if (states.length === 0) return "disconnected";
    if (states.every((s) => s === "connected")) return "connected";
    if (states.some((s) => s === "reconnecting")) return "reconnecting";
    return "disconnected";
  }

  function renderStatus() {
    const status = overallStatus();
    const el = $("connection-status");
    el.textContent = status;
    el.dataset.state = status;
    $("connection-dot").dataset.state = status;
    const states = Object.entries(state.hubState);
    const up = states.filter(([, s]) => s === "connected").length;
    $("connection-detail").textContent = states.length ? `${up}/${states.length} hubs` : "";
    document.body.dataset.connection = status;
  }

  // ---------------------------------------------------------------- log

  function log(text, kind) {
    const list = $("event-log");
    const item = document.createElement("li");
    const time = new Date().toISOString().slice(11, 19);
    item.textContent = `${time} ${text}`;
    if (kind) item.className = kind;
    list.prepend(item);
    while (list.children.length > MAX_LOG) list.lastChild.remove();
  }

  function short(value) {
    const text = JSON.stringify(value);
    return text.length > 160 ? text.slice(0, 157) + "…" : text;
  }

  // ---------------------------------------------------------------- HTTP API

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.key}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: text };
    }
    if (!response.ok) {
      throw new Error((data && data.error) || `HTTP ${response.status}`);
    }
    return data;
  }

  // ---------------------------------------------------------------- tasks

  function hubForTask(taskId) {
    if (taskId.startsWith("img_")) return "image-generation";
    if (taskId.startsWith("vid_")) return "video-generation";
    return "tasks";
  }

  function taskRow(taskId, kind) {
    let row = document.querySelector(`.task[data-task-id="${CSS.escape(taskId)}"]`);
    if (row) return row;
    row = document.createElement("li");
    row.className = "task";
    row.dataset.taskId = taskId;
    row.dataset.status = "pending";
    const head = document.createElement("div");
    head.className = "task-head";
    const name = document.createElement("span");
    name.className = "task-kind";
    name.textContent = kind || hubForTask(taskId);
    const id = document.createElement("code");
    id.className = "task-id";
    id.textContent = taskId;
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = "pending";
    head.append(name, id, status);
    const bar = document.createElement("div");
    bar.className = "bar";
    const progress = document.createElement("div");
    progress.className = "progress";
    progress.dataset.progress = "0";
    progress.setAttribute("role", "progressbar");
    progress.setAttribute("aria-valuemin", "0");
    progress.setAttribute("aria-valuemax", "100");
    const fill = document.createElement("div");
    fill.className = "fill";
    progress.append(fill);
    bar.append(progress);
    const message = document.createElement("div");
    message.className = "message muted";
    row.append(head, bar, message);
    $("tasks").prepend(row);
    $("tasks-empty").hidden = true;
    return row;
  }

  function updateTask(taskId, { progress, status, message }) {
    const row = taskRow(taskId);
    const done = ["completed", "failed", "cancelled", "timed_out"].includes(row.dataset.status);
    if (done && status === undefined) return; // late progress after the end
    if (typeof progress === "number" && Number.isFinite(progress)) {
      const value = Math.max(0, Math.min(100, Math.round(progress)));
      const bar = row.querySelector(".progress");
      if (value >= Number(bar.dataset.progress) || status) {
        bar.dataset.progress = String(value);
        bar.setAttribute("aria-valuenow", String(value));
        bar.querySelector(".fill").style.width = `${value}%`;
      }
    }
    if (status && !done) {
      row.dataset.status = status;
      row.querySelector(".status").textContent = status;
      const entry = state.tasks.get(taskId);
      if (entry) entry.status = status;
    }
    if (message) row.querySelector(".message").textContent = message;
  }

  async function subscribeTask(taskId) {
    const hub = state.tasks.get(taskId)?.hub || hubForTask(taskId);
    const connection = state.connections[hub];
    if (!connection || connection.state !== signalR.HubConnectionState.Connected) return;
    try {
      await connection.invoke("SubscribeToTask", taskId);
      log(`subscribed ${hub} ${taskId}`);
    } catch (err) {
      log(`subscribe ${taskId} failed: ${err.message}`, "error");
      return;
    }
    // Catch up on what happened before the subscription (or while disconnected).
    try {
      const status = await api("GET", `/api/tasks/${encodeURIComponent(taskId)}`);
      if (status && typeof status.progress === "number") {
        const final = ["completed", "failed", "cancelled"].includes(status.status);
        updateTask(taskId, {
          progress: status.status === "completed" ? 100 : status.progress,
          status: final || status.status === "running" ? status.status : undefined,
        });
      }
    } catch {
      // The events will tell.
    }
  }

  async function startTask(kind) {
    const prompt = $("task-prompt").value || "a test";
    let path;
    let body;
    if (kind === "image") {
      path = "/api/images/generations";
      body = { prompt, n: 2, size: "1024x1024", model: "dall-e-3" };
    } else if (kind === "video") {
      path = "/api/videos/generations";
      body = { prompt, model: "video-01", duration: 6 };
    } else {
      path = "/api/tasks";
      body = { taskType: $("task-type").value || "batch_embedding", items: 20, fail: false };
    }
    try {
      const { taskId } = await api("POST", path, body);
      state.tasks.set(taskId, { hub: hubForTask(taskId), status: "pending" });
      taskRow(taskId, kind === "task" ? body.taskType : kind);
      log(`started ${kind} ${taskId}`);
      await subscribeTask(taskId);
    } catch (err) {
      log(`start ${kind} failed: ${err.message}`, "error");
    }
  }

  // ---------------------------------------------------------------- events

  function onTaskEvent(name, args) {
    const [taskId] = args;
    switch (name) {
      case "TaskStarted":
        updateTask(taskId, { status: "running" });
        break;
      case "TaskProgress":
        updateTask(taskId, { progress: args[1], status: "running", message: args[2] || "" });
        break;
      case "TaskCompleted":
        updateTask(taskId, { progress: 100, status: "completed", message: "completed" });
        break;
      case "TaskFailed":
        updateTask(taskId, { status: "failed", message: args[1] || "failed" });
        break;
      case "TaskCancelled":
        updateTask(taskId, { status: "cancelled", message: args[1] || "cancelled" });
        break;
      case "TaskTimedOut":
        updateTask(taskId, { status: "timed_out", message: `timed out after ${args[1]} s` });
        break;
      default:
        break;
    }
  }

  function onMediaEvent(name, event) {
    if (!event || !event.taskId) return;
    const kind = name.replace(/^(Image|Video)Generation/, "");
    switch (kind) {
      case "Started":
        updateTask(event.taskId, { status: "running" });
        break;
      case "Progress":
        updateTask(event.taskId, {
          progress: event.progressPercentage ?? event.progress,
          status: "running",
          message: event.message || event.status || "",
        });
        break;
      case "Completed": {
        const urls = event.imageUrls || (event.videoUrl ? [event.videoUrl] : []);
        updateTask(event.taskId, {
          progress: 100,
          status: "completed",
          message: urls.length ? urls.join(" ") : "completed",
        });
        break;
      }
      case "Failed":
        updateTask(event.taskId, { status: "failed", message: event.error || "failed" });
        break;
      case "Cancelled":
        updateTask(event.taskId, { status: "cancelled", message: event.reason || "cancelled" });
        break;
      default:
        break;
    }
  }

  function money(value) {
    return typeof value === "number" ? `$${value.toFixed(4)}` : "—";
  }

  function onSpendUpdate(update) {
    if (!update) return;
    const total = $("spend-total");
    total.textContent = money(update.totalSpend);
    total.dataset.total = String(update.totalSpend);
    const budget = $("spend-budget");
    if (typeof update.budget === "number" && update.budget > 0) {
      budget.textContent = money(update.budget);
      budget.dataset.budget = String(update.budget);
      const percent = Math.min(100, (update.totalSpend / update.budget) * 100);
      const bar = $("budget-bar").querySelector(".progress");
      bar.dataset.progress = String(Math.round(percent));
      bar.querySelector(".fill").style.width = `${percent}%`;
      bar.dataset.level = percent >= 90 ? "critical" : percent >= 75 ? "warning" : "ok";
    } else {
      budget.textContent = "no budget";
      budget.dataset.budget = "";
    }
  }

  function onBudgetAlert(alert) {
    if (!alert) return;
    const item = document.createElement("li");
    item.className = "budget-alert";
    item.dataset.alertType = alert.alertType || "";
    item.dataset.severity = alert.severity || "info";
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = alert.severity || "info";
    const text = document.createElement("span");
    text.textContent = alert.message || alert.alertType;
    item.append(badge, text);
    $("budget-alerts").prepend(item);
  }

  function onProviderHealth(event) {
    if (!event) return;
    const status = typeof event.status === "number" ? HEALTH[event.status] || String(event.status) : String(event.status);
    let row = document.querySelector(`.provider[data-provider-id="${CSS.escape(String(event.providerId))}"]`);
    if (!row) {
      row = document.createElement("li");
      row.className = "provider";
      row.dataset.providerId = String(event.providerId);
      const indicator = document.createElement("span");
      indicator.className = "indicator";
      const name = document.createElement("span");
      name.className = "name";
      const st = document.createElement("span");
      st.className = "state";
      row.append(indicator, name, st);
      $("providers").append(row);
    }
    if (event.providerName) row.querySelector(".name").textContent = event.providerName;
    row.dataset.status = status;
    const ms = typeof event.responseTimeMs === "number" ? ` · ${event.responseTimeMs} ms` : "";
    row.querySelector(".state").textContent = `${status}${ms}`;
  }

  function onNotification(name, event) {
    if (name === "OnProviderHealthChanged") onProviderHealth(event);
    const item = document.createElement("li");
    item.className = "notification";
    item.dataset.type = (event && event.type) || name;
    const text =
      (event && (event.message || event.reason || event.service || event.modelAlias || event.providerName)) || "";
    item.textContent = `${name}${text ? ": " + text : ""}`;
    const list = $("notifications");
    list.prepend(item);
    while (list.children.length > 20) list.lastChild.remove();
  }

  function webhookRow(url) {
    let row = document.querySelector(`.webhook[data-url="${CSS.escape(url)}"]`);
    if (row) return row;
    row = document.createElement("li");
    row.className = "webhook";
    row.dataset.url = url;
    const code = document.createElement("code");
    code.textContent = url;
    const delivery = document.createElement("span");
    delivery.className = "delivery";
    delivery.dataset.status = "none";
    delivery.textContent = "no deliveries yet";
    row.append(code, delivery);
    $("webhooks").append(row);
    return row;
  }

  function onDelivery(name, event) {
    if (!event || !event.url) return;
    const status = {
      DeliveryAttempted: "attempted",
      DeliverySucceeded: "succeeded",
      DeliveryFailed: "failed",
      RetryScheduled: "retrying",
    }[name] || name;
    const delivery = webhookRow(event.url).querySelector(".delivery");
    delivery.dataset.status = status;
    const attempt = event.attemptCount ?? event.attemptNumber ?? event.nextAttemptNumber;
    const code = event.statusCode ? ` HTTP ${event.statusCode}` : "";
    delivery.textContent = `${status}${code}${attempt ? ` (attempt ${attempt})` : ""}`;
  }

  const EVENTS = {
    tasks: ["TaskStarted", "TaskProgress", "TaskCompleted", "TaskFailed", "TaskCancelled", "TaskTimedOut",
      "BatchOperationStarted", "BatchOperationProgress", "BatchOperationCompleted"],
    "image-generation": ["ImageGenerationStarted", "ImageGenerationProgress", "ImageGenerationCompleted",
      "ImageGenerationFailed", "ImageGenerationCancelled"],
    "video-generation": ["VideoGenerationStarted", "VideoGenerationProgress", "VideoGenerationCompleted",
      "VideoGenerationFailed", "VideoGenerationCancelled"],
    notifications: ["OnProviderHealthChanged", "OnModelMappingChanged", "OnModelAvailabilityChanged",
      "OnModelsDiscovered", "RateLimitWarning", "SystemAnnouncement", "ServiceDegraded", "ServiceRestored",
      "PreferencesUpdated"],
    spend: ["SpendUpdate", "BudgetAlert", "UnusualSpendingDetected", "SpendSummary"],
    webhooks: ["DeliveryAttempted", "DeliverySucceeded", "DeliveryFailed", "RetryScheduled"],
  };

  function handle(hub, name, args) {
    log(`${hub} ${name} ${short(args)}`);
    switch (hub) {
      case "tasks":
        if (name.startsWith("Task")) onTaskEvent(name, args);
        else if (name === "BatchOperationProgress" && args[0]) {
          updateTask(args[0].operationId, { progress: args[0].progressPercentage, status: "running" });
        }
        break;
      case "image-generation":
      case "video-generation":
        onMediaEvent(name, args[0]);
        break;
      case "spend":
        if (name === "SpendUpdate") onSpendUpdate(args[0]);
        else if (name === "BudgetAlert") onBudgetAlert(args[0]);
        break;
      case "notifications":
        if (name !== "PreferencesUpdated") onNotification(name, args[0]);
        break;
      case "webhooks":
        onDelivery(name, args[0]);
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- snapshot

  // What the events will only update: the key's spend and budget, provider health and the
  // key's webhooks, from the HTTP API (endpoints a server may lack are skipped).
  async function loadSnapshot() {
    const [me, providers, webhooks] = await Promise.allSettled([
      api("GET", "/api/me"),
      api("GET", "/api/providers"),
      api("GET", "/api/webhooks"),
    ]);
    if (me.status === "fulfilled" && me.value && typeof me.value.spend === "number") {
      onSpendUpdate({ totalSpend: me.value.spend, budget: me.value.budget });
    }
    if (providers.status === "fulfilled" && Array.isArray(providers.value)) {
      providers.value.forEach(onProviderHealth);
    }
    if (webhooks.status === "fulfilled" && Array.isArray(webhooks.value)) {
      for (const hook of webhooks.value) {
        if (hook && hook.url) {
          state.webhooks.add(hook.url);
          webhookRow(hook.url);
        }
      }
    }
  }

  // ---------------------------------------------------------------- connections

  async function resubscribe(hub) {
    if (hub === "spend") await loadSnapshot();
    const finished = ["completed", "failed", "cancelled", "timed_out"];
    for (const [taskId, entry] of state.tasks) {
      if (entry.hub === hub && !finished.includes(entry.status)) await subscribeTask(taskId);
    }
    if (hub === "webhooks" && state.webhooks.size) {
      try {
        await state.connections.webhooks.invoke("SubscribeToWebhooks", [...state.webhooks]);
      } catch (err) {
        log(`webhooks resubscribe failed: ${err.message}`, "error");
      }
    }
  }

  function buildConnection(hub) {
    const connection = new signalR.HubConnectionBuilder()
      .withUrl(`/hubs/${hub}`, { accessTokenFactory: () => state.key })
      .withAutomaticReconnect(retryPolicy)
      .configureLogging(signalR.LogLevel.None)
      .build();
    for (const name of EVENTS[hub]) {
      connection.on(name, (...args) => handle(hub, name, args));
    }
    const generation = state.generation;
    connection.onreconnecting((err) => {
      setHubState(hub, "reconnecting");
      log(`${hub} reconnecting${err ? ": " + err.message : ""}`, "warn");
    });
    connection.onreconnected(async () => {
      setHubState(hub, "connected");
      log(`${hub} reconnected`);
      await resubscribe(hub);
    });
    connection.onclose((err) => {
      if (generation !== state.generation) return; // we disconnected on purpose
      setHubState(hub, "disconnected");
      log(`${hub} closed${err ? ": " + err.message : ""}`, "warn");
      restartLoop(hub, connection, generation);
    });
    return connection;
  }

  // After automatic reconnect gave up (or the server closed the connection): start again
  // with the same backoff, until it works or the key changes.
  async function restartLoop(hub, connection, generation) {
    for (let attempt = 0; generation === state.generation; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt)));
      if (generation !== state.generation) return;
      try {
        await connection.start();
        setHubState(hub, "connected");
        log(`${hub} connected again`);
        await resubscribe(hub);
        return;
      } catch (err) {
        setHubState(hub, "disconnected");
      }
    }
  }

  async function connect(key) {
    await disconnect();
    state.key = key;
    const generation = state.generation;
    $("key-error").hidden = true;
    for (const hub of HUBS) {
      state.connections[hub] = buildConnection(hub);
      state.hubState[hub] = "disconnected";
    }
    renderStatus();
    await loadSnapshot();
    if (generation !== state.generation) return;
    const results = await Promise.allSettled(
      HUBS.map(async (hub) => {
        await state.connections[hub].start();
        setHubState(hub, "connected");
        await resubscribe(hub);
      }),
    );
    if (generation !== state.generation) return;
    const failures = results.filter((r) => r.status === "rejected");
    if (failures.length) {
      const message = failures[0].reason?.message || String(failures[0].reason);
      const unauthorized = /401|Unauthorized/i.test(message);
      const error = $("key-error");
      error.textContent = unauthorized ? "The key was refused (401)." : `Could not connect: ${message}`;
      error.hidden = false;
      if (unauthorized) {
        await disconnect();
        return;
      }
      HUBS.forEach((hub, i) => {
        if (results[i].status === "rejected") restartLoop(hub, state.connections[hub], generation);
      });
    } else {
      log(`connected to ${HUBS.length} hubs`);
    }
  }

  async function disconnect() {
    state.generation += 1;
    const connections = Object.values(state.connections);
    state.connections = {};
    state.hubState = {};
    renderStatus();
    await Promise.allSettled(connections.map((c) => c.stop()));
  }

  // ---------------------------------------------------------------- page

  function init() {
    renderStatus();
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      connect(key);
    });
    $("forget-button").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORAGE);
      $("key-input").value = "";
      disconnect();
    });
    $("start-image").addEventListener("click", () => startTask("image"));
    $("start-video").addEventListener("click", () => startTask("video"));
    $("start-task").addEventListener("click", () => startTask("task"));
    $("spend-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api("POST", "/api/spend", { amount: Number($("spend-amount").value), model: "gpt-4o", provider: "openai" });
      } catch (err) {
        log(`spend failed: ${err.message}`, "error");
      }
    });
    $("webhook-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const url = $("webhook-url").value.trim();
      if (!url) return;
      try {
        await api("POST", "/api/webhooks", { url });
        state.webhooks.add(url);
        webhookRow(url);
        const connection = state.connections.webhooks;
        if (connection && connection.state === signalR.HubConnectionState.Connected) {
          await connection.invoke("SubscribeToWebhooks", [url]);
        }
        log(`webhook ${url} added`);
      } catch (err) {
        log(`webhook failed: ${err.message}`, "error");
      }
    });
    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) {
      $("key-input").value = saved;
      connect(saved);
    }
  }

  // For tests and the console.
  window.conduitDashboard = { state, connect, disconnect, overallStatus };
  init();
})();
