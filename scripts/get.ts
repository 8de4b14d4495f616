/**
 * `deno task get <transport>://host:port/path [more paths...]`: fetch over
 * one association, like curl. Several paths are requested concurrently.
 *
 * @module
 */

import { ConfigError, helpText, parseOptions } from "../cli/options.ts";
import { FlowClient, parseServerUrl } from "../protocol/client.ts";

const OPTIONS = {
  output: {
    kind: "string",
    default: "-",
    short: "o",
    help: "write the body here (- for stdout; with several paths, a directory)",
  },
  head: { kind: "boolean", default: false, short: "I", help: "send HEAD instead of GET" },
  include: {
    kind: "boolean",
    default: false,
    short: "i",
    help: "print status line and headers to stderr",
  },
  streams: { kind: "integer", default: 8, min: 1, max: 65535, help: "streams to ask for" },
  udpPort: {
    kind: "integer",
    default: 9899,
    min: 1,
    max: 65535,
    help: "usrsctp: the server's UDP encapsulation port",
  },
} as const;

const USAGE = `Usage: deno task get <transport>://host:port/path [/more/paths ...] [options]

Fetches files from a flowsched server over one association (transports: kernel, usrsctp, tcpmux).
Exit status: 0 if every response was 2xx/3xx, 1 otherwise, 2 for bad arguments.`;

/** Fetches `paths` and writes them out; returns the number of failed responses. */
export async function get(
  url: string,
  paths: string[],
  options: { output: string; head: boolean; include: boolean; streams: number; udpPort: number },
): Promise<number> {
  const address = parseServerUrl(url);
  await using client = await FlowClient.connect(address, {
    streams: options.streams,
    udpPort: options.udpPort,
  });
  const targets = [address.path, ...paths];
  if (targets.length > 1 && options.output !== "-") {
    await Deno.mkdir(options.output, { recursive: true });
  }
  const results = await Promise.all(targets.map(async (target) => {
    const response = await client.request(target, { method: options.head ? "HEAD" : "GET" });
    if (options.include || options.head) {
      console.error(`${target}: ${response.status} (stream ${response.stream})`);
      for (const [name, value] of response.headers) console.error(`  ${name}: ${value}`);
    }
    const body = await response.bytes();
    if (options.output === "-") await Deno.stdout.write(body);
    else if (targets.length === 1) await Deno.writeFile(options.output, body);
    else await Deno.writeFile(`${options.output}/${encodeURIComponent(target)}`, body);
    return response.status < 400;
  }));
  return results.filter((ok) => !ok).length;
}

if (import.meta.main) {
  try {
    const parsed = await parseOptions(Deno.args, OPTIONS);
    if (!parsed) {
      console.log(helpText(USAGE, OPTIONS));
      Deno.exit(0);
    }
    const [url, ...paths] = parsed.positionals;
    if (!url) throw new ConfigError("missing URL; see --help");
    Deno.exit((await get(url, paths, parsed.values)) > 0 ? 1 : 0);
  } catch (error) {
    console.error(`get: ${(error as Error).message}`);
    Deno.exit(error instanceof ConfigError || error instanceof TypeError ? 2 : 1);
  }
}
