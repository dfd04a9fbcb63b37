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
 * `name` is used in the test titles; `transport` is a `signalR.HttpTransportType` name.
 */
export const VARIANTS = [
  {
    name: "json over WebSockets",
    protocol: "json",
    transport: "WebSockets",
    skipNegotiation: false,
  },
  {
    name: "json over WebSockets, skipNegotiation",
    protocol: "json",
    transport: "WebSockets",
    skipNegotiation: true,
  },
  {
    name: "messagepack over WebSockets",
    protocol: "messagepack",
    transport: "WebSockets",
    skipNegotiation: false,
  },
  {
    name: "messagepack over WebSockets, skipNegotiation",
    protocol: "messagepack",
    transport: "WebSockets",
    skipNegotiation: true,
  },
];

/** The variants that negotiate (one per protocol). */
export const NEGOTIATING_VARIANTS = VARIANTS.filter((v) => !v.skipNegotiation);

/**
 * The rest of the official functional tests' Node matrix: JSON over Server-Sent Events, JSON
 * and MessagePack over Long Polling. (MessagePack is binary and SSE carries text only.)
 */
export const HTTP_VARIANTS = [
  {
    name: "json over ServerSentEvents",
    protocol: "json",
    transport: "ServerSentEvents",
    skipNegotiation: false,
  },
  {
    name: "json over LongPolling",
    protocol: "json",
    transport: "LongPolling",
    skipNegotiation: false,
  },
  {
    name: "messagepack over LongPolling",
    protocol: "messagepack",
    transport: "LongPolling",
    skipNegotiation: false,
  },
];

/** The five negotiating transport/protocol combinations. */
export const ALL_NEGOTIATING_VARIANTS = [...NEGOTIATING_VARIANTS, ...HTTP_VARIANTS];

/** One JSON variant per transport: WebSockets, Server-Sent Events, Long Polling. */
export const TRANSPORT_VARIANTS = ALL_NEGOTIATING_VARIANTS.filter((v) => v.protocol === "json");

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
 * when test `t` ends. Returns `{ conn, tap, http, logger }`; `tap` lists every hub message the
 * client parsed (after the handshake), in arrival order; `http` every HTTP request the
 * client made through its HttpClient (see `tapHttp`).
 *
 * Options: `path` (default `/testhub`), `url` (a full URL instead of BASE_URL + path),
 * `headers`, `reconnect` (true, or an array of delays, for `withAutomaticReconnect`),
 * `start` (default true), `transport` (a `signalR.HttpTransportType` value, or a
 * combination, instead of the variant's; `null` lets the client pick from all),
 * `accessTokenFactory`, `statefulReconnect` (true for `withStatefulReconnect()`).
 */
export async function connect(t, variant, options = {}) {
  const {
    path = "/testhub",
    url,
    headers,
    reconnect,
    start = true,
    transport = signalR.HttpTransportType[variant.transport ?? "WebSockets"],
    accessTokenFactory,
    statefulReconnect,
  } = options;
  const logger = new MemoryLogger(`${variant.name} #${++connectionCounter}`);
  const httpOptions = {
    skipNegotiation: variant.skipNegotiation ?? false,
    logger,
  };
  if (transport !== null) httpOptions.transport = transport;
  if (headers) httpOptions.headers = headers;
  if (accessTokenFactory) httpOptions.accessTokenFactory = accessTokenFactory;
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
  if (statefulReconnect) {
    builder = builder.withStatefulReconnect();
  }
  const conn = builder.build();
  const tap = tapMessages(conn);
  const http = tapHttp(conn);
  t.after(() => conn.stop());
  if (start) {
    await withTimeout(conn.start(), 10_000, "start()");
  }
  return { conn, tap, http, logger };
}

/**
 * Records every HTTP request `conn` makes through its HttpClient (negotiate, polls, sends,
 * DELETE; not the WebSocket upgrade or the SSE GET, which bypass it), as
 * `{ method, url, start, end, status, content, error }` (times from `Date.now()`), in the
 * order they were made; `status` and `end` appear once the response did.
 */
export function tapHttp(conn) {
  const requests = [];
  const client = conn.connection._httpClient;
  const send = client.send.bind(client);
  client.send = async (request) => {
    const entry = { method: request.method, url: request.url, start: Date.now() };
    requests.push(entry);
    try {
      const response = await send(request);
      entry.status = response.statusCode;
      entry.content = response.content;
      return response;
    } catch (e) {
      entry.error = e;
      throw e;
    } finally {
      entry.end = Date.now();
    }
  };
  return requests;
}

/** The plain-text token `GET /generateJwtToken[/{user}]` returns (valid 5 s). */
export async function fetchToken(user) {
  const path = user ? `/generateJwtToken/${encodeURIComponent(user)}` : "/generateJwtToken";
  const response = await fetch(BASE_URL + path);
  if (response.status !== 200) {
    throw new Error(`GET /generateJwtToken: HTTP ${response.status}`);
  }
  return response.text();
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
