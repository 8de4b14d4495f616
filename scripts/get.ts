/**
 * `deno task get <transport>://host:port/path [more paths...]`: fetch over
 * one association, like curl. Several paths are requested concurrently and,
 * into a directory, saved like `wget -x` saves them.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { ConfigError, helpText, parseOptions } from "../cli/options.ts";
import { FlowClient, parseServerUrl } from "../protocol/client.ts";
import { reasonPhrase } from "../protocol/http1.ts";

const OPTIONS = {
  output: {
    kind: "string",
    default: "-",
    short: "o",
    help: "write the body here (- for stdout); with several paths, or ending in /, " +
      "a directory under which each URL path is mirrored",
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
Into a directory (-o out/), each path is saved like wget -x saves it: /a/b.css as out/a/b.css,
/ and paths ending in / as index.html there, the query left out. A path that would leave the
directory once decoded (.., %2e%2e, %2f) is refused before anything is fetched.
Exit status: 0 if every response was 2xx/3xx, 1 otherwise, 2 for bad arguments.`;

/** Options of {@link get}; the defaults are those of the command. */
export interface GetOptions {
  /** A file, "-" for stdout, or a directory (with several paths, or ending in "/"). */
  output: string;
  /** Send HEAD instead of GET. */
  head: boolean;
  /** Print each status line and the headers to stderr. */
  include: boolean;
  /** Streams to ask for. */
  streams: number;
  /** usrsctp: the server's UDP encapsulation port. */
  udpPort: number;
}

/**
 * The file under `dir` for the request path `target`, named as `wget -x`
 * names it: `/a/b.css` is `dir/a/b.css`, `/` and `/a/` are `index.html` in
 * their directory; the query is not part of the name. Throws a
 * {@link ConfigError} for a path that would leave `dir` once decoded (`..`,
 * `%2e%2e`, an encoded `/`).
 */
export function mirrorPath(dir: string, target: string): string {
  const path = target.replace(/[?#].*$/s, "");
  const segments: string[] = [];
  for (const raw of path.split("/")) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      throw new ConfigError(`refusing "${target}": bad percent-encoding`);
    }
    if (segment === ".." || /[/\0]/.test(segment)) {
      throw new ConfigError(`refusing "${target}": it would be written outside ${dir}`);
    }
    if (segment !== "" && segment !== ".") segments.push(segment);
  }
  if (segments.length === 0 || path.endsWith("/")) segments.push("index.html");
  return join(dir, ...segments);
}

/** Where each target's body goes: a file, or undefined for stdout. */
function destinations(targets: string[], output: string): (string | undefined)[] {
  if (output === "-") return targets.map(() => undefined);
  if (targets.length === 1 && !output.endsWith("/")) return [output];
  return targets.map((target) => mirrorPath(output, target));
}

async function save(body: Uint8Array, file: string | undefined): Promise<void> {
  if (file === undefined) {
    for (let written = 0; written < body.length;) {
      written += await Deno.stdout.write(body.subarray(written));
    }
    return;
  }
  await Deno.mkdir(dirname(file), { recursive: true });
  await Deno.writeFile(file, body);
}

/**
 * Fetches the URL's path and `paths` over one association and writes them
 * out; returns the number of failed responses. Bad paths are refused (a
 * {@link ConfigError}) before connecting.
 */
export async function get(url: string, paths: string[], options: GetOptions): Promise<number> {
  const address = parseServerUrl(url);
  const targets = [address.path, ...paths];
  const files = destinations(targets, options.output);
  await using client = await FlowClient.connect(address, {
    streams: options.streams,
    udpPort: options.udpPort,
  });
  const results = await Promise.all(targets.map(async (target, i) => {
    const response = await client.request(target, { method: options.head ? "HEAD" : "GET" });
    if (options.include || options.head) {
      console.error(`${target}: ${response.status} (stream ${response.stream})`);
      for (const [name, value] of response.headers) console.error(`  ${name}: ${value}`);
    } else if (response.status >= 400) {
      console.error(`get: ${target}: ${response.status} ${reasonPhrase(response.status)}`);
    }
    await save(await response.bytes(), files[i]);
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
