// TestHub (`/testhub`) of the interop-server driven by the official @microsoft/signalr client
// over WebSockets, with JSON and MessagePack, with negotiate and with skipNegotiation. The
// test bodies are in interop-hub-tests.mjs, shared with the other transports.
// Run with SIGNALR_SERVER_URL=http://127.0.0.1:PORT node --test interop-ws-hub.test.mjs
import { describe } from "node:test";

import { VARIANTS } from "./interop-common.mjs";
import { hubTests } from "./interop-hub-tests.mjs";

describe("TestHub over WebSockets", { concurrency: true }, () => {
  for (const v of VARIANTS) {
    // The four variants run side by side; the tests of one variant one after another.
    describe(v.name, { concurrency: 1 }, () => hubTests(v));
  }
});
