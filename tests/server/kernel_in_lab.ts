/**
 * The server suite over kernel SCTP; runs only inside the User-Mode Linux lab
 * (started by tests/transport/kernel_test.ts), so it is not named *_test.ts.
 */

import { serverSuite } from "./_server_suite.ts";

serverSuite({ transport: "kernel" });
