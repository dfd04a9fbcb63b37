// Helpers for the Conduit tests (`tests/node/conduit/*.test.mjs`), run against the
// `conduit` example server: its URL and master key from the environment, the HTTP API,
// official-client connections to its hubs, and waiting for events.
//
// Environment: CONDUIT_URL (base URL, e.g. http://127.0.0.1:PORT), CONDUIT_MASTER_KEY
// (default conduit-dev-master-key).
import * as signalR from "@microsoft/signalr";

export { signalR };

/** Base URL of the running conduit server, without a trailing slash. */
export const BASE_URL = (() => {
  const url = process.env.CONDUIT_URL;
  if (!url) {
    throw new Error("CONDUIT_URL is not set: start `conduit` and set it to its base URL, e.g. http://127.0.0.1:PORT");
  }
  return url.replace(/\/+$/, "");
})();

/** The admin key. */
export const MASTER_KEY = process.env.CONDUIT_MASTER_KEY || "conduit-dev-master-key";

/** The MessagePack protocol class, or null when the package is not installed. */
export const MessagePackHubProtocol = await import("@microsoft/signalr-protocol-msgpack")
  .then((m) => m.MessagePackHubProtocol)
  .catch(() => null);

/** Calls the HTTP API with a bearer key; returns `{status, body}` (body parsed as JSON when it is). */
export async function api(method, path, key, body) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: response.status, body: parsed };
}

let keyCounter = 0;

/** Creates a virtual key with the master key; returns `{id, key, name, budget, ...}`. */
export async function createKey(options = {}) {
  keyCounter += 1;
  const name = options.name || `node-${process.pid}-${keyCounter}`;
  const { status, body } = await api("POST", "/api/keys", MASTER_KEY, { name, ...options });
  if (status !== 201) throw new Error(`POST /api/keys: ${status} ${JSON.stringify(body)}`);
  if (!/^condt_[A-Za-z0-9]{32}$/.test(body.key)) throw new Error(`unexpected key ${JSON.stringify(body)}`);
  return body;
}

/** Starts a generic task (`POST /api/tasks`); returns its id. */
export async function startTask(key, body = { taskType: "batch_embedding", items: 20 }) {
  const { status, body: reply } = await api("POST", "/api/tasks", key, body);
  if (status !== 202) throw new Error(`POST /api/tasks: ${status} ${JSON.stringify(reply)}`);
  return reply.taskId;
}

/** A started connection to `/hubs/{hub}` with `key` as the access token. */
export async function connect(hub, key, { protocol = "json", reconnect = false } = {}) {
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(`${BASE_URL}/hubs/${hub}`, {
      accessTokenFactory: () => key,
      transport: signalR.HttpTransportType.WebSockets,
    })
    .configureLogging(signalR.LogLevel.None);
  if (protocol === "messagepack") {
    if (!MessagePackHubProtocol) throw new Error("@microsoft/signalr-protocol-msgpack is not installed");
    builder = builder.withHubProtocol(new MessagePackHubProtocol());
  }
  if (reconnect) builder = builder.withAutomaticReconnect();
  const connection = builder.build();
  await connection.start();
  return connection;
}

/** Records every call of each event in `names` on `connection`: `log.events` is `[{name, args}]`. */
export function record(connection, names) {
  const log = { events: [], waiters: [] };
  for (const name of names) {
    connection.on(name, (...args) => {
      log.events.push({ name, args });
      for (const waiter of [...log.waiters]) waiter();
    });
  }
  return log;
}

/** Resolves with the first recorded event satisfying `predicate`; rejects after `ms`. */
export function waitFor(log, predicate, ms = 15000, what = "event") {
  return new Promise((resolve, reject) => {
    const check = () => {
      const found = log.events.find(predicate);
      if (found) {
        cleanup();
        resolve(found);
        return true;
      }
      return false;
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${what} within ${ms} ms; saw ${JSON.stringify(log.events.map((e) => e.name))}`));
    }, ms);
    const waiter = () => check();
    function cleanup() {
      clearTimeout(timer);
      const i = log.waiters.indexOf(waiter);
      if (i >= 0) log.waiters.splice(i, 1);
    }
    if (!check()) log.waiters.push(waiter);
  });
}

/** Sleeps `ms`. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Task* event names of the TaskHub. */
export const TASK_EVENTS = ["TaskStarted", "TaskProgress", "TaskCompleted", "TaskFailed", "TaskCancelled", "TaskTimedOut"];
