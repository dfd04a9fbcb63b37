// TestHub (`/testhub`) of the interop-server driven by the official @microsoft/signalr client
// over Server-Sent Events (JSON only: SSE carries text) and Long Polling (JSON and
// MessagePack): the same tests as over WebSockets (interop-hub-tests.mjs).
// Run with SIGNALR_SERVER_URL=http://127.0.0.1:PORT node --test interop-sse-lp-hub.test.mjs
import { describe } from "node:test";

import { HTTP_VARIANTS } from "./interop-common.mjs";
import { hubTests } from "./interop-hub-tests.mjs";

describe("TestHub over Server-Sent Events and Long Polling", { concurrency: true }, () => {
  for (const v of HTTP_VARIANTS) {
    // The three variants run side by side; the tests of one variant one after another.
    describe(v.name, { concurrency: 1 }, () => hubTests(v));
  }
});
