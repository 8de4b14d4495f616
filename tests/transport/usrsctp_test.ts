import { localUdpPort } from "../../mod.ts";
import { conformanceSuite } from "./_conformance.ts";

// One process holds both ends: the listener starts the stack on udpPort, and
// the client's remote encapsulation port is that same port.
conformanceSuite({
  transport: "usrsctp",
  options: { udpPort: localUdpPort() },
  // No nonblocking channel: every usrsctp association runs in Workers.
  connectsOnEventLoop: false,
});
