import { conformanceSuite } from "./_conformance.ts";

conformanceSuite({ transport: "tcpmux" });
