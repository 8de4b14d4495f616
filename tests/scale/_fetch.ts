/**
 * A client for the scale-out lab tests, run in the client namespace:
 * `deno run -P=client tests/scale/_fetch.ts <url> <manifest.json> <associations>`.
 * It opens that many associations to `url` (each a new one, so IPVS places
 * each), says "connected" on stderr, fetches every file of the manifest
 * once, spread over them, and
 * prints what came back as JSON: complete and sha256-identical (`ok`), a
 * different body (`mismatched`, never allowed), or an error (`failed`).
 */

import { FlowClient } from "../../protocol/client.ts";
import { sha256Hex } from "../../scripts/bench/common.ts";
import type { SiteFile } from "../../scripts/hardening/stack.ts";

/** What the client prints. */
export interface FetchReport {
  ok: number;
  mismatched: number;
  failed: number;
  errors: string[];
}

async function connect(url: string): Promise<FlowClient | Error> {
  try {
    return await FlowClient.connect(url, { streams: 4 });
  } catch (error) {
    return error as Error;
  }
}

async function fetchShare(client: FlowClient | Error, files: SiteFile[], report: FetchReport) {
  if (client instanceof Error) {
    report.failed += files.length;
    report.errors.push(`connect: ${client.message}`);
    return;
  }
  try {
    // Four requests at a time, one per stream.
    for (let at = 0; at < files.length; at += 4) {
      await Promise.all(
        files.slice(at, at + 4).map(async (file) => {
          try {
            const response = await client.request(file.path);
            const body = await response.bytes();
            if (response.status === 200 && sha256Hex(body) === file.sha256) report.ok++;
            else report.mismatched++;
          } catch (error) {
            report.failed++;
            if (report.errors.length < 5) report.errors.push((error as Error).message);
          }
        }),
      );
    }
  } finally {
    await client.close().catch(() => {});
  }
}

if (import.meta.main) {
  const [url, manifest, associations] = Deno.args;
  const files: SiteFile[] = JSON.parse(await Deno.readTextFile(manifest));
  const n = Number(associations);
  const report: FetchReport = { ok: 0, mismatched: 0, failed: 0, errors: [] };
  const clients = await Promise.all(Array.from({ length: n }, () => connect(url)));
  // The test waits for this line before it kills a server under the fetches.
  console.error("connected");
  await Promise.all(
    clients.map((client, a) => fetchShare(client, files.filter((_, i) => i % n === a), report)),
  );
  console.log(JSON.stringify(report));
}
