import { localUdpPort } from "../../mod.ts";
import { serverSuite } from "./_server_suite.ts";

serverSuite({ transport: "usrsctp", options: { udpPort: localUdpPort() } });
