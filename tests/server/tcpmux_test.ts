import { serverSuite } from "./_server_suite.ts";

serverSuite({ transport: "tcpmux" });
