// Shared helpers for the interop tests (`*.test.mjs`): the server URL, the
// protocol/negotiation matrix, building and starting hub connections with the official
// client, recording client events, a tap on every message the client parses, and timeouts.
import { createRequire } from "node:module";

import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

export { signalR };

const require = createRequire(import.meta.url);
/** The client's own `[header name, value]` for its user agent (a private helper of the package). */
export const { getUserAgentHeader } = require("@microsoft/signalr/dist/cjs/Utils.js");

/** Base URL of the running interop-server, e.g. `http://127.0.0.1:1234`, without a trailing slash. */
export const BASE_URL = (() => {
  const url = process.env.SIGNALR_SERVER_URL;
  if (!url) {
    throw new Error(
      "SIGNALR_SERVER_URL is not set: start interop-server and set it to its base URL, e.g. http://127.0.0.1:PORT",
    );
  }
  return url.replace(/\/+$/, "");
})();

/** The same base as a WebSocket URL (`ws://...`). */
export const WS_BASE_URL = BASE_URL.replace(/^http/, "ws");

/**
 * The WebSockets matrix: both hub protocols, with negotiate and with `skipNegotiation`.
 * `name` is used in the test titles.
 */
export const VARIANTS = [
  { name: "json over WebSockets", protocol: "json", skipNegotiation: false },
  { name: "json over WebSockets, skipNegotiation", protocol: "json", skipNegotiation: true },
  { name: "messagepack over WebSockets", protocol: "messagepack", skipNegotiation: false },
  {
    name: "messagepack over WebSockets, skipNegotiation",
    protocol: "messagepack",
    skipNegotiation: true,
  },
];

/** The variants that negotiate (one per protocol). */
export const NEGOTIATING_VARIANTS = VARIANTS.filter((v) => !v.skipNegotiation);

/** A logger that keeps every line in memory; set `SIGNALR_TEST_LOG=1` to also print them. */
export class MemoryLogger {
  constructor(label) {
    this.label = label;
    this.lines = [];
  }

  log(level, message) {
    const line = `${new Date().toISOString()} [${signalR.LogLevel[level]}] ${this.label}: ${message}`;
    this.lines.push(line);
    if (process.env.SIGNALR_TEST_LOG === "1") {
      process.stderr.write(line + "\n");
    }
  }
}

let connectionCounter = 0;

/**
 * Builds (and, unless `start: false`, starts) a hub connection for `variant`, stopped again
 * when test `t` ends. Returns `{ conn, tap, logger }`; `tap` lists every hub message the
 * client parsed (after the handshake), in arrival order.
 *
 * Options: `path` (default `/testhub`), `url` (a full URL instead of BASE_URL + path),
 * `headers`, `reconnect` (true, or an array of delays, for `withAutomaticReconnect`),
 * `start` (default true).
 */
export async function connect(t, variant, options = {}) {
  const { path = "/testhub", url, headers, reconnect, start = true } = options;
  const logger = new MemoryLogger(`${variant.name} #${++connectionCounter}`);
  const httpOptions = {
    transport: signalR.HttpTransportType.WebSockets,
    skipNegotiation: variant.skipNegotiation,
    logger,
  };
  if (headers) httpOptions.headers = headers;
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(url ?? BASE_URL + path, httpOptions)
    .configureLogging(logger);
  if (variant.protocol === "messagepack") {
    builder = builder.withHubProtocol(new MessagePackHubProtocol());
  }
  if (reconnect) {
    builder = Array.isArray(reconnect)
      ? builder.withAutomaticReconnect(reconnect)
      : builder.withAutomaticReconnect();
  }
  const conn = builder.build();
  const tap = tapMessages(conn);
  t.after(() => conn.stop());
  if (start) {
    await withTimeout(conn.start(), 10_000, "start()");
  }
  return { conn, tap, logger };
}

/** Records every message `conn`'s protocol parses (the client's private `_protocol`). */
export function tapMessages(conn) {
  const messages = [];
  const protocol = conn._protocol;
  const parse = protocol.parseMessages.bind(protocol);
  protocol.parseMessages = (input, logger) => {
    const parsed = parse(input, logger);
    messages.push(...parsed);
    return parsed;
  };
  return messages;
}

/**
 * Registers a handler for client method `name` on `conn` and records the argument lists it
 * is called with. `waitFor(predicate)` resolves with the first recorded (or future) argument
 * list the predicate accepts.
 */
export function record(conn, name) {
  const items = [];
  const waiters = [];
  conn.on(name, (...args) => {
    items.push(args);
    for (const waiter of [...waiters]) {
      if (waiter.predicate(args)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(args);
      }
    }
  });
  return {
    items,
    waitFor(predicate = () => true, ms = 5_000) {
      const found = items.find(predicate);
      if (found) return Promise.resolve(found);
      return withTimeout(
        new Promise((resolve) => waiters.push({ predicate, resolve })),
        ms,
        `event '${name}'`,
      );
    },
  };
}

/** A promise that fires with the error passed to `conn`'s next `onclose`. */
export function nextClose(conn) {
  return new Promise((resolve) => conn.onclose((error) => resolve(error)));
}

/** Rejects if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what = "operation") {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms`. */
export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A fresh name, unique in this process and across processes, for groups and messages. */
export function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The server-side connection id of `conn` (works with skipNegotiation too). */
export function serverId(conn) {
  return conn.invoke("GetCallerConnectionId");
}

/** Collects a server-to-client stream into an array. */
export function collect(streamResult, ms = 10_000) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const items = [];
      streamResult.subscribe({
        next: (item) => items.push(item),
        complete: () => resolve(items),
        error: reject,
      });
    }),
    ms,
    "stream",
  );
}

/** Rejects with the error of `promise`, or fails if it resolves. */
export async function errorOf(promise) {
  try {
    const value = await promise;
    throw new UnexpectedSuccess(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (e) {
    if (e instanceof UnexpectedSuccess) throw e;
    return e;
  }
}

class UnexpectedSuccess extends Error {}
