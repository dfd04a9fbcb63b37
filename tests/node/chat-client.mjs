// Drives examples/chat with two official JavaScript clients (negotiate + WebSockets, JSON):
// a broadcast message, rooms (join, send, leave), the user count, and a few items of the
// Clock stream before cancelling it. Prints one JSON object of what each client saw.
import * as signalR from "@microsoft/signalr";

const url = new URL("/chat", process.argv[2]).href;

async function connect(name) {
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(url)
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  const seen = { messages: [], room: [], counts: [] };
  // Handlers return nothing: a value returned for a plain send makes the client log
  // "Result given for ... method but server is not expecting a result."
  connection.on("ReceiveMessage", (user, text, timestamp) => {
    seen.messages.push({ user, text, timestamp });
  });
  connection.on("ReceiveRoomMessage", (room, user, text, timestamp) => {
    seen.room.push({ room, user, text, timestamp });
  });
  connection.on("UserCount", (n) => {
    seen.counts.push(n);
  });
  await connection.start();
  return { name, connection, seen };
}

async function until(what, predicate, timeoutMs = 5000) {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const alice = await connect("alice");
await until("alice's count of 1", () => alice.seen.counts.includes(1));
const bob = await connect("bob");
await until("both counts of 2", () => alice.seen.counts.includes(2) && bob.seen.counts.includes(2));

// A broadcast reaches everyone, the sender too.
await alice.connection.invoke("SendMessage", "alice", "hello everyone");
await until("the broadcast", () => alice.seen.messages.length === 1 && bob.seen.messages.length === 1);

// Only the room's members get room messages; leaving stops them.
await bob.connection.invoke("JoinRoom", "rust");
await alice.connection.invoke("SendToRoom", "rust", "alice", "only bob hears this");
await alice.connection.invoke("JoinRoom", "rust");
await bob.connection.invoke("SendToRoom", "rust", "bob", "both hear this");
await until("bob's room messages", () => bob.seen.room.length === 2);
await bob.connection.invoke("LeaveRoom", "rust");
await alice.connection.invoke("SendToRoom", "rust", "alice", "only alice hears this");
await until("alice's room messages", () => alice.seen.room.length === 2);
// Each connection gets its messages in order: once bob sees this later broadcast, a room
// message meant for him would already have arrived.
await bob.connection.invoke("SendMessage", "bob", "done");
await until("the last broadcast", () => bob.seen.messages.length === 2 && alice.seen.messages.length === 2);

// The Clock stream: take three items, then cancel.
const clock = [];
await new Promise((resolve, reject) => {
  const subscription = alice.connection.stream("Clock", 100).subscribe({
    next: (timestamp) => {
      clock.push(timestamp);
      if (clock.length === 3) {
        subscription.dispose();
        resolve();
      }
    },
    error: reject,
    complete: () => reject(new Error("the clock stream completed on its own")),
  });
});
// The connection still works after the cancel.
const afterCancel = await alice.connection.invoke("SendMessage", "alice", "still here").then(() => "ok");

// Bob leaves: alice sees the count drop.
await bob.connection.stop();
await until("alice's count back to 1", () => alice.seen.counts.at(-1) === 1);
await alice.connection.stop();

console.log(JSON.stringify({
  alice: alice.seen,
  bob: bob.seen,
  clock,
  clockMs: clock.map((t) => Date.parse(t)),
  afterCancel,
  now: new Date().toISOString(),
}));
