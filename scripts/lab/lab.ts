/**
 * The lab: a User-Mode Linux (UML) kernel booted with the host filesystem as
 * its root, where kernel SCTP, veth, netem and tbf work even though the host
 * kernel has none of them. Inside, network namespaces play the hosts:
 *
 *     client 10.10.1.1 --link cp-- 10.10.1.2 proxy 10.10.2.1 --link ps-- 10.10.2.2 server
 *                                                  10.10.3.1 --link ps2- 10.10.3.2 server2
 *                                                  ... (with `servers` > 1)
 *
 * The proxy forwards IP, so the client reaches the servers too. A command runs
 * in the UML root namespace, in the host's working directory, and starts its
 * processes in the namespaces itself (`ip netns exec server ...`).
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";

/**
 * A link of the lab: cp joins client and proxy, ps joins proxy and server,
 * psK (K = 2, 3, ...) joins proxy and serverK.
 */
export type LinkName = "cp" | "ps" | `ps${number}`;

/** The most server namespaces a lab may have. */
export const MAX_SERVERS = 8;

/** A link's WAN emulation, applied on both ends, i.e. to each direction. */
export interface LinkShape {
  /** One-way delay, e.g. "25ms": a round trip over the link takes twice as long. */
  delay?: string;
  /** Random variation of the delay, e.g. "5ms" (needs delay). */
  jitter?: string;
  /** Random packet loss per direction, e.g. "1%". */
  loss?: string;
  /** Bottleneck rate (tbf), e.g. "10mbit"; units bit, kbit, mbit, gbit. */
  rate?: string;
  /** Longest a packet may wait in the rate bottleneck's queue (needs rate). Default "50ms". */
  queue?: string;
}

/** Options of {@link runInLab}. Only `command` is required. */
export interface LabOptions {
  /** The command: an argv array, or one string run by `sh -c`. */
  command: string[] | string;
  /**
   * Link specs as given to `--link`, e.g. "cp:delay=25ms,jitter=5ms,loss=1%,rate=10mbit".
   * Default: none (plain veth links).
   */
  links?: string[];
  /**
   * Server namespaces behind the proxy, each on its own link: `server` (link ps),
   * `server2` (link ps2), ... up to {@link MAX_SERVERS}. Default 1.
   */
  servers?: number;
  /** Working directory of the command. Default: `Deno.cwd()`. */
  cwd?: string;
  /** Environment of the command (LAB_* variables are added). Default: the host's environment. */
  env?: Record<string, string>;
  /** Seconds before the lab is killed and the run gives code 124. Default 600. */
  timeoutSeconds?: number;
  /** Aborting kills the lab; the run then gives code 130. */
  signal?: AbortSignal;
  /** "inherit" streams the command's output to ours; "piped" returns it. Default "inherit". */
  output?: "inherit" | "piped";
  /** Memory of the UML kernel. Default "2G". */
  memory?: string;
  /** The UML kernel. Default "/usr/bin/linux". */
  kernel?: string;
  /** Directory for per-run directories. Default: `<repo>/.lab`. */
  workDir?: string;
  /** Keep the run directory (console.log, generated scripts) for inspection. Default false. */
  keep?: boolean;
}

/** What {@link runInLab} returns. */
export interface LabResult {
  /** The command's exit code; 124 on timeout, 130 when aborted. */
  code: number;
  /** True when the lab was killed because `timeoutSeconds` ran out. */
  timedOut: boolean;
  /** The command's stdout, with `output: "piped"`. */
  stdout?: string;
  /** The command's stderr, with `output: "piped"`. */
  stderr?: string;
}

/** The lab could not run the command: bad options, UML missing, or a failed boot. */
export class LabError extends Error {
  override name = "LabError";
}

/** Addresses of the lab's hosts, as exported to the command. */
export const LAB_ADDRESSES = {
  LAB_CLIENT_IP: "10.10.1.1",
  LAB_PROXY_IP: "10.10.1.2",
  LAB_PROXY_UPSTREAM_IP: "10.10.2.1",
  LAB_SERVER_IP: "10.10.2.2",
} as const;

/**
 * argv that turns off the SCTP checksum and segmentation offload of a lab
 * veth. With it on, the kernel sends SCTP-in-UDP packets whose CRC32c nobody
 * ever computes: kernel peers trust the offload flag, usrsctp peers drop them
 * (docs/DEPLOY.md, "Why usrsctp ↔ kernel was slow").
 */
export function sctpOffloadOff(device: string): string[] {
  return [
    "ethtool",
    "-K",
    device,
    "tx-checksum-sctp",
    "off",
    "tx-sctp-segmentation",
    "off",
    "gso",
    "off",
  ];
}

/** Namespace of server `k` (1-based): `server`, `server2`, `server3`, ... */
export function serverNamespace(k: number): string {
  return k === 1 ? "server" : `server${k}`;
}

/** Address of server `k` (1-based): 10.10.2.2, 10.10.3.2, ... */
export function serverAddress(k: number): string {
  return `10.10.${k + 1}.2`;
}

/** The proxy's address on the link to server `k` (1-based): 10.10.2.1, 10.10.3.1, ... */
export function proxyAddressTowards(k: number): string {
  return `10.10.${k + 1}.1`;
}

const SHAPE_KEYS: Record<keyof LinkShape, RegExp> = {
  delay: /^\d+(\.\d+)?(us|ms|s)$/,
  jitter: /^\d+(\.\d+)?(us|ms|s)$/,
  loss: /^\d+(\.\d+)?%$/,
  rate: /^\d+(\.\d+)?(bit|kbit|mbit|gbit)$/,
  queue: /^\d+(\.\d+)?(us|ms|s)$/,
};
const KEY_EXAMPLES: Record<keyof LinkShape, string> = {
  delay: "25ms",
  jitter: "5ms",
  loss: "1%",
  rate: "10mbit",
  queue: "50ms",
};
const UNIT_BITS: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

/** The links of a lab with `servers` servers: cp, ps, ps2, ... */
export function linkNames(servers: number): LinkName[] {
  const links: LinkName[] = ["cp", "ps"];
  for (let k = 2; k <= servers; k++) links.push(`ps${k}`);
  return links;
}

/**
 * Parses a `--link` spec "LINK:key=value,..." (LINK is cp, ps, or psK for
 * server K when the lab has `servers` of them; keys are those of
 * {@link LinkShape}). Throws a {@link LabError} naming the bad part.
 */
export function parseLinkSpec(
  spec: string,
  servers = 1,
): { link: LinkName; shape: LinkShape } {
  const bad = (why: string) => new LabError(`bad --link "${spec}": ${why}`);
  const colon = spec.indexOf(":");
  const link = (colon < 0 ? spec : spec.slice(0, colon)) as LinkName;
  if (!linkNames(servers).includes(link)) {
    const more = servers > 1 ? `, ps2..ps${servers} = proxy-server2..${servers}` : "";
    const hint = /^ps\d+$/.test(link) && servers === 1 ? "; more servers need --servers N" : "";
    throw bad(`unknown link "${link}" (links: cp = client-proxy, ps = proxy-server${more}${hint})`);
  }
  const shape: LinkShape = {};
  const body = colon < 0 ? "" : spec.slice(colon + 1);
  if (body === "") throw bad(`no settings (e.g. ${link}:delay=25ms,rate=10mbit)`);
  for (const part of body.split(",")) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)) as keyof LinkShape;
    const value = eq < 0 ? "" : part.slice(eq + 1);
    if (!Object.hasOwn(SHAPE_KEYS, key)) {
      throw bad(`unknown key "${key}" (keys: ${Object.keys(SHAPE_KEYS).join(", ")})`);
    }
    if (shape[key] !== undefined) throw bad(`key "${key}" given twice`);
    if (!SHAPE_KEYS[key].test(value)) {
      throw bad(`bad value "${value}" for key "${key}" (e.g. ${key}=${KEY_EXAMPLES[key]})`);
    }
    if (key === "loss" && parseFloat(value) > 100) throw bad(`loss "${value}" is over 100%`);
    shape[key] = value;
  }
  if (shape.jitter && !shape.delay) throw bad(`key "jitter" needs "delay"`);
  if (shape.queue && !shape.rate) throw bad(`key "queue" needs "rate"`);
  return { link, shape };
}

/**
 * Parses several `--link` specs (at most one per link) for a lab with
 * `servers` servers; throws a {@link LabError} on a bad one.
 */
export function parseLinks(specs: string[], servers = 1): Map<LinkName, LinkShape> {
  const shapes = new Map<LinkName, LinkShape>();
  for (const spec of specs) {
    const { link, shape } = parseLinkSpec(spec, servers);
    if (shapes.has(link)) throw new LabError(`bad --link "${spec}": link ${link} given twice`);
    shapes.set(link, shape);
  }
  return shapes;
}

/** The `netem` and `tbf` arguments for a shape (tbf empty without a rate). */
export function tcArgs(shape: LinkShape): { netem: string; tbf: string } {
  const netem = [
    shape.delay ? `delay ${shape.delay}${shape.jitter ? ` ${shape.jitter}` : ""}` : "",
    shape.loss ? `loss ${shape.loss}` : "",
  ].filter(Boolean).join(" ");
  let tbf = "";
  if (shape.rate) {
    const [, num, unit] = shape.rate.match(/^([\d.]+)(\w+)$/)!;
    // tbf needs a bucket of at least rate/HZ bytes (UML: HZ 100) and above the MTU.
    const burst = Math.max(Math.ceil((parseFloat(num) * UNIT_BITS[unit]) / 8 / 100), 3200);
    tbf = `rate ${shape.rate} burst ${burst} latency ${shape.queue ?? "50ms"}`;
  }
  return { netem, tbf };
}

/**
 * Runs UML ("$@", console on fd 3 = file "$1", library "$2" preloaded unless
 * empty) in a process group of its own, so the terminal's Ctrl-C reaches only
 * us, and kills that whole group on SIGTERM: UML's helper processes outlive a
 * killed main process and would keep our pipes open. `setpriv --pdeathsig
 * TERM` sends that SIGTERM if we die. LD_PRELOAD is set here because Deno
 * lets only an unrestricted `--allow-run` pass it to a child.
 */
const SUPERVISOR = `ulimit -c 0
exec 3>"$1"
[ -n "$2" ] && export LD_PRELOAD="$2"
shift 2
pid=
trap '[ -n "$pid" ] && env kill -s KILL -- "-$pid"; exit 143' TERM INT HUP
setsid "$@" &
pid=$!
wait "$pid"`;

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Removes run directories left by killed runs: those past their deadline. */
async function removeStaleRunDirs(workDir: string): Promise<void> {
  for await (const entry of Deno.readDir(workDir)) {
    if (!entry.isDirectory || !entry.name.startsWith("run-")) continue;
    const dir = join(workDir, entry.name);
    const deadline = Number(await Deno.readTextFile(join(dir, "deadline")).catch(() => ""));
    if (deadline > 0 && deadline < Date.now()) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Fails with what to install when the UML kernel or its modules are missing. */
async function checkLabInstalled(kernel: string): Promise<void> {
  if (!(await exists(kernel))) {
    throw new LabError(`no UML kernel at ${kernel}: apt-get install user-mode-linux`);
  }
  if (!(await exists("/usr/lib/uml/modules"))) {
    throw new LabError(
      "no UML kernel modules at /usr/lib/uml/modules: apt-get install user-mode-linux",
    );
  }
}

/**
 * Builds the C file `source` with gcc (`-O2`, then `flags` after the source)
 * into `output` (creating its directory), unless it was built from the
 * current source already; returns `output`. Written under a temporary name and renamed, so processes
 * started together never run a half-written file.
 */
export async function compileC(source: string, output: string, flags: string[]): Promise<string> {
  const built = await Deno.stat(output).catch(() => undefined);
  if (built && built.mtime! >= (await Deno.stat(source)).mtime!) return output;
  await Deno.mkdir(dirname(output), { recursive: true });
  const partial = `${output}.${Deno.pid}.tmp`;
  let gcc: Deno.CommandOutput;
  try {
    gcc = await new Deno.Command("gcc", {
      args: ["-O2", "-o", partial, source, ...flags],
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (error) {
    throw new LabError(
      `cannot run gcc to build ${source} (sh scripts/bootstrap.sh installs it): ${error}`,
    );
  }
  if (!gcc.success) {
    throw new LabError(
      `cannot build ${source} (scripts/bootstrap.sh installs gcc and the -dev packages): ` +
        new TextDecoder().decode(gcc.stderr),
    );
  }
  await Deno.rename(partial, output);
  return output;
}

/** Checks a server count; throws a {@link LabError} saying what is allowed. */
export function checkServers(servers: number): void {
  if (!Number.isInteger(servers) || servers < 1 || servers > MAX_SERVERS) {
    throw new LabError(`bad server count ${servers}: give 1 to ${MAX_SERVERS}`);
  }
}

/** The command's environment inside the lab: the host's, plus where things are. */
function labEnvironment(
  options: LabOptions,
  cwd: string,
  servers: number,
): Record<string, string> {
  const env = { ...(options.env ?? Deno.env.toObject()) };
  for (const k of ["PWD", "OLDPWD", "SHLVL", "_"]) delete env[k];
  const home = env.HOME ?? "/root";
  env.DENO_DIR ??= join(env.XDG_CACHE_HOME ?? join(home, ".cache"), "deno");
  const path = env.PATH ?? "/usr/local/bin:/usr/bin:/bin";
  // `deno` inside is the Deno that runs the lab.
  env.PATH = `${dirname(Deno.execPath())}:${path}:/usr/local/sbin:/usr/sbin:/sbin`;
  const ks = Array.from({ length: servers }, (_, i) => i + 1);
  Object.assign(env, LAB_ADDRESSES, {
    LAB_SERVERS: String(servers),
    LAB_SERVER_IPS: ks.map(serverAddress).join(" "),
    LAB_SERVER_NAMESPACES: ks.map(serverNamespace).join(" "),
    LAB: "1",
    LAB_CWD: cwd,
    LAB_DENO_DIR: dirname(Deno.execPath()),
  });
  // Inside, stdout is a tty (tty1): without this, tools would color output meant for a pipe.
  if (options.output === "piped" || !Deno.stdout.isTerminal()) env.NO_COLOR ??= "1";
  return env;
}

/** Writes what init.sh reads from the run directory: env.sh, links.sh and cmd.sh. */
async function writeRunFiles(
  runDir: string,
  env: Record<string, string>,
  shapes: Map<LinkName, LinkShape>,
  command: string[] | string,
): Promise<void> {
  const exports = Object.entries(env)
    .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
    .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`);
  await Deno.writeTextFile(join(runDir, "env.sh"), exports.join(""), { mode: 0o600 });
  const links = [...shapes].map(([link, shape]) => {
    const { netem, tbf } = tcArgs(shape);
    return `shape ${link} ${shellQuote(netem)} ${shellQuote(tbf)}\n`;
  });
  await Deno.writeTextFile(join(runDir, "links.sh"), links.join(""));
  const script = typeof command === "string"
    ? command
    : `exec ${command.map(shellQuote).join(" ")}`;
  await Deno.writeTextFile(join(runDir, "cmd.sh"), script + "\n");
}

/** Boots the UML kernel (under the supervisor script) for the run in `runDir`. */
function bootLab(
  runDir: string,
  kernel: string,
  memory: string,
  consoleLog: string,
  preload: string | undefined,
): Deno.ChildProcess {
  const init = fileURLToPath(new URL("./init.sh", import.meta.url));
  const kernelArgs = [
    `mem=${memory}`,
    "root=/dev/root",
    "rootfstype=hostfs",
    "rootflags=/",
    "rw",
    `init=${init}`,
    // Console (boot and init messages) to fd 3, i.e. console.log; the
    // command's stdout and stderr come out of tty1 and tty2.
    "con=null",
    "con0=null,fd:3",
    "con1=null,fd:1",
    "con2=null,fd:2",
    "ssl=null",
    "quiet",
    "loglevel=1", // still shows a panic
    "--",
    runDir,
  ];
  return new Deno.Command("setpriv", {
    args: [
      ...["--pdeathsig", "TERM", "sh", "-c", SUPERVISOR, "sh", consoleLog, preload ?? ""],
      ...[kernel, ...kernelArgs],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Waits for the lab to end, killing it on timeout or abort; streams or
 * collects its output.
 */
async function superviseLab(
  child: Deno.ChildProcess,
  timeoutSeconds: number,
  output: "inherit" | "piped",
  signal: AbortSignal | undefined,
) {
  let timedOut = false;
  let aborted = false;
  const killLab = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killLab();
  }, timeoutSeconds * 1000);
  const onAbort = () => {
    aborted = true;
    killLab();
  };
  if (signal?.aborted) onAbort();
  signal?.addEventListener("abort", onAbort);
  const collect = async (
    stream: ReadableStream<Uint8Array>,
    sink: { writable: WritableStream<Uint8Array> },
  ) => {
    if (output === "inherit") {
      await stream.pipeTo(sink.writable, { preventClose: true });
      return undefined;
    }
    return await new Response(stream).text();
  };
  try {
    const [stdout, stderr, status] = await Promise.all([
      collect(child.stdout, Deno.stdout),
      collect(child.stderr, Deno.stderr),
      child.status,
    ]);
    return { stdout, stderr, status, timedOut, aborted };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Boots the lab, runs `options.command` in it and returns its exit code.
 * Throws a {@link LabError} when the lab cannot run the command (bad link spec,
 * UML not installed, boot failure: the message has the last console lines).
 */
export async function runInLab(options: LabOptions): Promise<LabResult> {
  const servers = options.servers ?? 1;
  checkServers(servers);
  const shapes = parseLinks(options.links ?? [], servers);
  const argv = typeof options.command === "string" ? [options.command] : options.command;
  if (argv.length === 0 || argv[0] === "") throw new LabError("no command given");
  const kernel = options.kernel ?? "/usr/bin/linux";
  const cwd = resolve(options.cwd ?? Deno.cwd());
  const workDir = resolve(options.workDir ?? fileURLToPath(new URL("../../.lab", import.meta.url)));
  const timeoutSeconds = options.timeoutSeconds ?? 600;
  const output = options.output ?? "inherit";
  await checkLabInstalled(kernel);
  if (/\s/.test(workDir)) throw new LabError(`work directory "${workDir}" must not contain spaces`);

  await Deno.mkdir(workDir, { recursive: true });
  await removeStaleRunDirs(workDir);
  const runDir = await Deno.makeTempDir({ dir: workDir, prefix: "run-" });
  // Every run ends by its timeout: a run directory older than that was left by a killed run.
  const deadline = Date.now() + timeoutSeconds * 1000 + 60_000;
  await Deno.writeTextFile(join(runDir, "deadline"), String(deadline));
  const consoleLog = join(runDir, "console.log");
  try {
    await writeRunFiles(runDir, labEnvironment(options, cwd, servers), shapes, options.command);
    // The preload (see xstate_preload.c) wraps ptrace's x86 XSAVE calls; other hosts need nothing.
    const preload = Deno.build.arch === "x86_64"
      ? await compileC(
        fileURLToPath(new URL("./xstate_preload.c", import.meta.url)),
        join(workDir, "xstate_preload.so"),
        ["-shared", "-fPIC", "-ldl"],
      )
      : undefined;
    const child = bootLab(runDir, kernel, options.memory ?? "2G", consoleLog, preload);
    const run = await superviseLab(child, timeoutSeconds, output, options.signal);
    const { stdout, stderr, status, timedOut } = run;
    if (timedOut || run.aborted) return { code: timedOut ? 124 : 130, timedOut, stdout, stderr };
    let exitText: string;
    try {
      exitText = await Deno.readTextFile(join(runDir, "exit"));
    } catch {
      const log = await Deno.readTextFile(consoleLog).catch(() => "");
      const how = status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
      const own = output === "piped" ? tail(`${stdout}${stderr}`, 10) : "";
      throw new LabError(
        `the lab kernel stopped (${how}) before the command finished; last console lines:\n` +
          (tail(log, 25) || "(console empty)") + (own ? `\nUML said:\n${own}` : ""),
      );
    }
    return { code: parseInt(exitText, 10), timedOut, stdout, stderr };
  } finally {
    if (!options.keep) await Deno.remove(runDir, { recursive: true }).catch(() => {});
  }
}
