// Drives examples/echo-server with the official JavaScript client over WebSockets without
// negotiation, once per hub protocol, and prints one JSON object of results.
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const url = process.argv[2];
const results = {};

for (const name of ["json", "messagepack"]) {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(url, { skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.Warning);
  if (name === "messagepack") builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  await connection.start();
  const r = {};
  r.echo = await connection.invoke("Echo", { text: "héllo \u001e", n: [1, 2.5, null] });
  r.add = await connection.invoke("add", 40, 2);
  r.countdown = [];
  await new Promise((resolve, reject) => {
    connection.stream("Countdown", 3).subscribe({
      next: (item) => r.countdown.push(item),
      complete: resolve,
      error: reject,
    });
  });
  try {
    await connection.invoke("Missing");
    r.missing = "no error";
  } catch (e) {
    r.missing = e.message;
  }
  await connection.stop();
  results[name] = r;
}
console.log(JSON.stringify(results));
