/**
 * `deno task compile`: single-file binaries of the server, the proxy and the
 * get client for x86_64 and aarch64, `dist/flowsched-<command>-<arch>`, with
 * the Worker modules embedded (`--include`) and each command's permission
 * set baked in (`-P=<set>`).
 *
 * `deno compile` joins the program to `denort`, Deno's runtime for compiled
 * programs, which it downloads per target from dl.deno.land unless
 * `DENORT_BIN` names a local one. Before any type checking this command
 * makes sure each target's runtime can be had (DENORT_BIN, a copy in
 * DENO_DIR, or dl.deno.land answering within seconds); where it cannot, it
 * stops with a message pointing at `deno task bundle`, which needs no
 * denort. Binaries are built in a temporary directory and moved into the
 * output directory only when all of them are built: a failure leaves nothing
 * behind.
 *
 * @module
 */

import { join } from "node:path";
import { ConfigError, helpText, parseOptions } from "../../cli/options.ts";
import { DeployError } from "./exec.ts";
import {
  COMMANDS,
  type DeployCommand,
  parseTarget,
  REPO_ROOT,
  type Target,
  TARGET_NAMES,
  TARGETS,
  WORKER_MODULES,
} from "./targets.ts";

const OPTIONS = {
  target: {
    kind: "string",
    default: "all",
    short: "t",
    choices: ["all", ...TARGET_NAMES],
    help: "CPU architecture to build for",
  },
  command: {
    kind: "string",
    default: "all",
    short: "c",
    choices: ["all", ...COMMANDS.map((command) => command.name)],
    help: "command to build",
  },
  out: {
    kind: "string",
    default: "dist",
    short: "o",
    help: "directory the binaries are written to",
  },
  probeTimeout: {
    kind: "integer",
    default: 5000,
    min: 1,
    help: "ms to wait for dl.deno.land when checking that denort can be downloaded",
  },
} as const;

const USAGE =
  `Usage: deno task compile [--target all|x86_64|aarch64] [--command all|server|proxy|get]

Builds <out>/flowsched-{server,proxy,get,ipvs}-<arch> with deno compile: Worker modules embedded,
each command's permission set from deno.json baked in. deno compile needs denort, Deno's
runtime for compiled programs, for each target: DENORT_BIN (a local denort of the same Deno
version; one --target at a time), a copy in DENO_DIR (dl/release/v<version>/), or a download
from dl.deno.land. Where none of these works, it stops before building anything and says so;
'deno task bundle --target aarch64' then builds a self-contained archive that needs no denort.`;

/** Options of {@link compile}. */
export interface CompileOptions {
  /** The targets to build for. */
  targets: Target[];
  /** The commands to build. */
  commands: readonly DeployCommand[];
  /** Directory the binaries are written to (created if missing). */
  out: string;
  /** How long to wait for dl.deno.land, in ms. */
  probeTimeout: number;
  /** Where progress lines go. */
  progress: (line: string) => void;
}

/** Where `deno compile` keeps the denort archive of `target` once downloaded. */
function cachedDenortPath(target: Target): string {
  const home = Deno.env.get("HOME") ?? "";
  const denoDir = Deno.env.get("DENO_DIR") ||
    join(Deno.env.get("XDG_CACHE_HOME") || join(home, ".cache"), "deno");
  return join(denoDir, "dl", "release", `v${Deno.version.deno}`, denortArchive(target));
}

function denortArchive(target: Target): string {
  return `denort-${target.triple}.zip`;
}

/** Why denort cannot be had for `target`, or undefined when it can. */
async function denortProblem(target: Target, probeTimeout: number): Promise<string | undefined> {
  const cached = cachedDenortPath(target);
  if (await isFile(cached)) return undefined;
  const url = `https://dl.deno.land/release/v${Deno.version.deno}/${denortArchive(target)}`;
  try {
    const response = await fetch(url, {
      method: "HEAD",
      signal: AbortSignal.timeout(probeTimeout),
    });
    await response.body?.cancel();
    if (response.ok) return undefined;
    return `${url} answered ${response.status} ${response.statusText}; no copy at ${cached}`;
  } catch (error) {
    const reason = error instanceof DOMException && error.name === "TimeoutError"
      ? `no answer within ${probeTimeout} ms`
      : fetchFailure(error as Error);
    return `cannot reach ${url} (${reason}); no copy at ${cached}`;
  }
}

/** The useful part of a failed fetch, e.g. "dns error: ...", without the URL Deno repeats. */
function fetchFailure(error: Error): string {
  const cause = error.cause instanceof Error ? error.cause.message : error.message;
  return cause.replace(/^error sending request for url \([^)]*\): /, "");
}

/** Stops with a {@link DeployError} unless every target's denort can be had. */
async function checkRuntimes(options: CompileOptions): Promise<void> {
  const denortBin = Deno.env.get("DENORT_BIN");
  if (denortBin) {
    if (options.targets.length !== 1) {
      throw new ConfigError(
        `DENORT_BIN names one target's runtime; pass --target ${
          TARGET_NAMES.join(" or --target ")
        }`,
      );
    }
    if (!(await isFile(denortBin))) {
      throw new DeployError(`DENORT_BIN=${denortBin} is not a file; unset it or fix the path`);
    }
    return;
  }
  const problems = await Promise.all(
    options.targets.map((target) => denortProblem(target, options.probeTimeout)),
  );
  const missing = options.targets.filter((_, i) => problems[i] !== undefined);
  if (missing.length === 0) return;
  throw new DeployError(
    [
      `deno compile cannot get denort ${Deno.version.deno}, Deno's runtime for compiled programs:`,
      ...missing.map((target) => `  ${target.arch}: ${problems[options.targets.indexOf(target)]}`),
      "Nothing was built. Build the self-contained bundle instead, which needs no denort:",
      ...missing.map((target) => `  deno task bundle --target ${target.arch}`),
      "(docs/DEPLOY.md shows how to install it). Or copy the denort zip from a machine that",
      "can reach dl.deno.land to the path above, or set DENORT_BIN to an unzipped denort",
      `${Deno.version.deno} of one target and pass --target.`,
    ].join("\n"),
  );
}

/**
 * Builds every command for every target and returns the paths written. On
 * any failure nothing new is left in `out`.
 */
export async function compile(options: CompileOptions): Promise<string[]> {
  await checkRuntimes(options);
  await Deno.mkdir(options.out, { recursive: true });
  const staging = await Deno.makeTempDir({ dir: options.out, prefix: ".compile-" });
  const cleanUp = () => Deno.removeSync(staging, { recursive: true });
  const interrupted = () => {
    cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  try {
    const built: string[] = [];
    for (const target of options.targets) {
      for (const command of options.commands) {
        const name = `flowsched-${command.name}-${target.arch}`;
        options.progress(`${name} (${command.entry}, permissions "${command.permissions}")`);
        const { code } = await new Deno.Command(Deno.execPath(), {
          args: [
            "compile",
            `-P=${command.permissions}`,
            ...WORKER_MODULES.flatMap((module) => ["--include", module]),
            "--target",
            target.triple,
            "--output",
            join(staging, name),
            command.entry,
          ],
          cwd: REPO_ROOT,
          stdin: "null",
          stdout: "inherit",
          stderr: "inherit",
        }).output();
        if (code !== 0) throw new DeployError(`deno compile of ${name} failed (exit ${code})`);
        built.push(name);
      }
    }
    const written = [];
    for (const name of built) {
      await Deno.rename(join(staging, name), join(options.out, name));
      written.push(join(options.out, name));
    }
    return written;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupted);
    cleanUp();
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

if (import.meta.main) {
  try {
    const parsed = await parseOptions(Deno.args, OPTIONS);
    if (!parsed) {
      console.log(helpText(USAGE, OPTIONS));
      Deno.exit(0);
    }
    if (parsed.positionals.length > 0) {
      throw new ConfigError(`unexpected argument "${parsed.positionals[0]}"; see --help`);
    }
    const { target, command, out, probeTimeout } = parsed.values;
    const written = await compile({
      targets: target === "all" ? Object.values(TARGETS) : [parseTarget(target)],
      commands: COMMANDS.filter((c) => command === "all" || c.name === command),
      out,
      probeTimeout,
      progress: (line) => console.error(`compile: ${line}`),
    });
    for (const file of written) console.error(`compile: wrote ${file}`);
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof DeployError)) throw error;
    console.error(`compile: ${error.message}`);
    Deno.exit(error instanceof ConfigError ? 2 : 1);
  }
}
