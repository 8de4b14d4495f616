/**
 * `deno task bench udp [--quick]`: SCTP over UDP (RFC 6951) against native
 * kernel SCTP, in one lab boot. A client in namespace `client` fetches
 * `--files` files of 64 KiB over one association (8 streams, 16 requests in
 * flight) from a server in namespace `server`, for each pairing:
 *
 * - kernel → kernel, native SCTP;
 * - kernel → kernel over UDP (`?udp=9899`, the server with `--udp-encapsulation`);
 * - usrsctp → kernel over UDP;
 * - kernel → usrsctp over UDP (a usrsctp server on UDP 9898);
 * - usrsctp → usrsctp.
 *
 * MB/s is body bytes over the time from the first request to the last body,
 * the association already up; every body is checked against its file. Rounds
 * are interleaved; the table gives medians and ratios to native kernel SCTP.
 * The veths' SCTP checksum offload is off (see docs/DEPLOY.md: with it on,
 * the kernel sends usrsctp peers packets without a CRC32c).
 *
 * @module
 */

import { join } from "node:path";
import { helpText, parseOptions } from "../../cli/options.ts";
import { FlowClient } from "../../protocol/client.ts";
import { LAB_ADDRESSES, runInLab, sctpOffloadOff } from "../lab/lab.ts";
import {
  denoArgv,
  labOutFile,
  median,
  progress,
  REPO,
  repoDenoArgv,
  retry,
  round,
  runMain,
  sha256Hex,
  table,
  writeResults,
} from "./common.ts";

const OPTIONS = {
  quick: { kind: "boolean", default: false, help: "one round of 32 files (a smoke run)" },
  files: { kind: "integer", default: 400, min: 1, help: "files of 64 KiB per round" },
  repeat: { kind: "integer", default: 3, min: 1, help: "rounds per pairing (median)" },
  labTimeout: { kind: "integer", default: 1200, min: 60, help: "seconds before the lab is killed" },
  // Internal: how the script re-invokes itself.
  insideLab: { kind: "boolean", default: false, help: "(internal) run the lab part here" },
  labOut: { kind: "string", default: "", help: "(internal) file for the lab's rounds" },
  client: { kind: "string", default: "", help: "(internal) fetch from this URL and print MB/s" },
} as const;

const USAGE = `Usage: deno task bench udp [options]

SCTP over UDP against native kernel SCTP, in one lab boot: 64 KiB files over one association
from namespace client to namespace server, for kernel → kernel (native and over UDP),
usrsctp → kernel, kernel → usrsctp and usrsctp → usrsctp. Prints MB/s and ratios to native
kernel SCTP measured in the same boot; writes results/bench/udp-<timestamp>.json.`;

type Values = NonNullable<Awaited<ReturnType<typeof parseOptions<typeof OPTIONS>>>>["values"];

const SIZE = 64 * 1024;
const SERVER = LAB_ADDRESSES.LAB_SERVER_IP;

/** The pairings: client URL (the path is added) and the server that answers it. */
const PAIRINGS = [
  { name: "kernel → kernel, native", url: `kernel://${SERVER}:9000/` },
  { name: "kernel → kernel, UDP", url: `kernel://${SERVER}:9000/?udp=9899` },
  { name: "usrsctp → kernel, UDP", url: `usrsctp://${SERVER}:9000/?udp=9899` },
  { name: "kernel → usrsctp, UDP", url: `kernel://${SERVER}:9001/?udp=9898` },
  { name: "usrsctp → usrsctp", url: `usrsctp://${SERVER}:9001/?udp=9898` },
] as const;

/** One timed round as the lab reports it. */
interface UdpRound {
  pairing: string;
  round: number;
  mbPerSecond: number;
}

/** Client role (in namespace client): fetches every file, checks it, prints MB/s. */
async function fetchAll(url: string, files: number) {
  const digests: string[] = JSON.parse(await Deno.readTextFile(join(REPO, ".lab", "udp-digests")));
  await using client = await FlowClient.connect(url, { streams: 8 });
  const started = performance.now();
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    for (let i = next++; i < files; i = next++) {
      const response = await client.request(`/f${i % digests.length}.bin`);
      const body = await response.bytes();
      if (response.status !== 200 || sha256Hex(body) !== digests[i % digests.length]) {
        throw new Error(`f${i % digests.length}.bin: status ${response.status}, wrong bytes`);
      }
      bytes += body.byteLength;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  console.log(bytes / 1e6 / ((performance.now() - started) / 1000));
}

function inNamespace(netns: string, argv: string[], stdout: "null" | "piped" = "null") {
  return new Deno.Command("ip", {
    args: ["netns", "exec", netns, ...argv],
    cwd: REPO,
    stdin: "null",
    stdout,
    stderr: "inherit",
  });
}

/** Lab side: both servers, then every pairing in turn; the rounds go to `--lab-out`. */
async function inLab(values: Values) {
  const root = "/tmp/udp-site";
  await Deno.mkdir(root, { recursive: true });
  const digests: string[] = [];
  for (let i = 0; i < 64; i++) {
    const body = crypto.getRandomValues(new Uint8Array(SIZE));
    await Deno.writeFile(join(root, `f${i}.bin`), body);
    digests.push(sha256Hex(body));
  }
  await Deno.writeTextFile(join(REPO, ".lab", "udp-digests"), JSON.stringify(digests));
  const setup = [
    ["server", "sysctl", "-qw", "net.sctp.udp_port=9899", "net.sctp.encap_port=0"],
    ["client", "sysctl", "-qw", "net.sctp.udp_port=9899", "net.sctp.encap_port=0"],
    ["server", ...sctpOffloadOff("ps-server")],
    ["client", ...sctpOffloadOff("cp-client")],
  ];
  for (const [netns, ...argv] of setup) {
    const { success } = await inNamespace(netns, argv).output();
    if (!success) throw new Error(`${argv.join(" ")} failed in namespace ${netns}`);
  }
  // A usrsctp stack run as root also opens a raw SCTP socket and answers every native INIT
  // for a port it does not serve with an ABORT, so the kernel server beside it would refuse
  // native associations: the usrsctp server runs without CAP_NET_RAW.
  const server = (transport: string, port: number, udpPort: number) =>
    inNamespace(
      "server",
      [
        ...(transport === "usrsctp" ? ["setpriv", "--bounding-set=-net_raw", "--"] : []),
        ...repoDenoArgv("server/main.ts", [
          `--transport=${transport}`,
          `--host=${SERVER}`,
          `--port=${port}`,
          `--udp-port=${udpPort}`,
          ...(transport === "kernel" ? ["--udp-encapsulation"] : []),
          `--root=${root}`,
          "--streams=8",
          "--log-level=warn",
        ], "server"),
      ],
    ).spawn();
  const servers = [server("kernel", 9000, 9899), server("usrsctp", 9001, 9898)];
  const files = values.quick ? 32 : values.files;
  const client = async (url: string) => {
    const output = await inNamespace(
      "client",
      denoArgv("udp.ts", [`--client=${url}`, `--files=${files}`]),
      "piped",
    ).output();
    if (!output.success) throw new Error(`the client of ${url} failed`);
    return Number(new TextDecoder().decode(output.stdout));
  };
  const rounds: UdpRound[] = [];
  try {
    for (const { url } of PAIRINGS) await retry(() => client(url), 60);
    for (let r = 0; r < (values.quick ? 1 : values.repeat); r++) {
      for (const { name, url } of PAIRINGS) {
        const mbPerSecond = await client(url);
        rounds.push({ pairing: name, round: r, mbPerSecond });
        progress("udp", `round ${r + 1}: ${name}: ${mbPerSecond.toFixed(2)} MB/s`);
      }
    }
  } finally {
    for (const p of servers) {
      p.kill("SIGTERM");
      await p.status;
    }
  }
  await Deno.writeTextFile(values.labOut, JSON.stringify(rounds));
}

export async function main(args: string[]) {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) {
    console.log(helpText(USAGE, OPTIONS));
    return;
  }
  const { values } = parsed;
  if (values.client) return await fetchAll(values.client, values.files);
  if (values.insideLab) return await inLab(values);
  const out = await labOutFile("udp");
  const result = await runInLab({
    command: denoArgv("udp.ts", [
      "--inside-lab",
      `--lab-out=${out}`,
      `--files=${values.files}`,
      `--repeat=${values.repeat}`,
      ...(values.quick ? ["--quick"] : []),
    ]),
    cwd: REPO,
    output: "inherit",
    timeoutSeconds: values.labTimeout,
  });
  if (result.code !== 0) throw new Error(`the lab run failed (exit code ${result.code})`);
  const rounds: UdpRound[] = JSON.parse(await Deno.readTextFile(out));
  await Deno.remove(out);
  const of = (name: string) =>
    median(rounds.filter((r) => r.pairing === name).map((r) => r.mbPerSecond));
  const native = of(PAIRINGS[0].name);
  const rows = PAIRINGS.map(({ name }) => [
    name,
    round(of(name), 2),
    round(of(name) / native, 2),
    rounds.filter((r) => r.pairing === name).map((r) => r.mbPerSecond.toFixed(2)).join(" "),
  ]);
  const path = await writeResults("udp", { options: values, rounds });
  console.log(
    `\n64 KiB files over one association in the lab, median of ${values.quick ? 1 : values.repeat}`,
  );
  console.log(table(["pairing", "MB/s", "× native", "rounds"], rows));
  console.log(`\nresults: ${path}`);
}

if (import.meta.main) await runMain("udp", main);
