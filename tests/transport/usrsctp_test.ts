import { createSocket } from "node:dgram";
import { conformanceSuite } from "./_conformance.ts";

/** A UDP port free right now, so the test stack does not collide with a real one on 9899. */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "0.0.0.0", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

// One process holds both ends: the listener starts the stack on udpPort, and
// the client's remote encapsulation port is that same port.
conformanceSuite({ transport: "usrsctp", options: { udpPort: await freeUdpPort() } });
