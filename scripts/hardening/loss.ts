/**
 * `deno task harden loss`: files fetched through the proxy over lossy, slow
 * links in the lab (both links drop packets in both directions), once per
 * upstream transport, every body compared with the original's sha256.
 *
 * The host side writes the site and boots the lab; inside, for each
 * transport, a server runs in namespace `server`, a proxy with a fresh cache
 * in `proxy`, and curl (a peer we did not write) fetches every file through
 * the proxy from `client`, several at a time.
 *
 * @module
 */

import { join } from "node:path";
import { helpText, type OptionValues, parseOptions } from "../../cli/options.ts";
import { progress, REPO, sha256Hex, table } from "../bench/common.ts";
import { runInLab } from "../lab/lab.ts";
import { setSctpTimers } from "../lab/sctp_timers.ts";
import { makeFiles, type SiteFile, startProxy, startServer } from "./stack.ts";

const OPTIONS = {
  files: { kind: "integer", default: 500, min: 1, help: "files to fetch per transport" },
  maxBytes: { kind: "integer", default: 512 * 1024, min: 1024, help: "largest file (1 KiB up)" },
  loss: { kind: "string", default: "3%", help: "packet loss per direction on both links" },
  delay: { kind: "string", default: "20ms", help: "one-way delay on both links" },
  transports: {
    kind: "string",
    default: "kernel,usrsctp",
    help: "upstream transports, comma-separated (kernel, usrsctp, tcpmux)",
  },
  parallel: { kind: "integer", default: 8, min: 1, help: "fetches at once" },
  quick: {
    kind: "boolean",
    default: false,
    help: "60 files up to 64 KiB over kernel SCTP only: a smoke run",
  },
  labTimeout: {
    kind: "integer",
    default: 1500,
    min: 60,
    help: "seconds before the lab is stopped",
  },
  role: { kind: "string", default: "host", choices: ["host", "lab"], help: "(internal)" },
  site: { kind: "string", default: "", help: "(internal) the site written by the host side" },
} as const;

type Values = OptionValues<typeof OPTIONS>;

const USAGE = `Usage: deno task harden loss [options]

In the lab, with loss and delay on both links, fetches every file of a generated site through the
proxy (curl in the client namespace) once per upstream transport, and compares each body's sha256.`;

/** One transport's result. */
export interface LossResult {
  readonly transport: string;
  readonly files: number;
  readonly identical: number;
  /** Bodies that arrived with status 200 but differ from the file: must be 0. */
  readonly differing: number;
  /** Fetches that failed (status or curl error), by reason. */
  readonly failures: Record<string, number>;
  readonly seconds: number;
  readonly megabytes: number;
}

/** `deno task harden loss`. */
export async function main(args: string[]): Promise<void> {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) return console.log(helpText(USAGE, OPTIONS));
  const values = parsed.values;
  if (values.role === "lab") return await inLab(values);
  const count = values.quick ? 60 : values.files;
  const maxBytes = values.quick ? 64 * 1024 : values.maxBytes;
  // The lab's /tmp is its own: the site goes where both sides see it.
  await Deno.mkdir(join(REPO, ".lab"), { recursive: true });
  const site = await Deno.makeTempDir({ dir: join(REPO, ".lab"), prefix: "loss-site-" });
  try {
    await Deno.chmod(site, 0o755);
    const files = await makeFiles(join(site, "root"), count, { minBytes: 1024, maxBytes });
    await Deno.writeTextFile(join(site, "files.json"), JSON.stringify(files));
    const shape = `delay=${values.delay},loss=${values.loss}`;
    progress("loss", `${count} files up to ${maxBytes >> 10} KiB; both links ${shape}`);
    const lab = await runInLab({
      command: [
        Deno.execPath(),
        "run",
        "--no-check",
        `--config=${join(REPO, "deno.json")}`,
        "-P=harden",
        join(REPO, "scripts", "hardening", "main.ts"),
        "loss",
        "--role=lab",
        `--site=${site}`,
        `--transports=${values.quick ? "kernel" : values.transports}`,
        `--parallel=${values.parallel}`,
      ],
      links: [`cp:${shape}`, `ps:${shape}`],
      cwd: REPO,
      output: "inherit",
      timeoutSeconds: values.labTimeout,
    });
    if (lab.code !== 0) {
      Deno.exitCode = 1;
      throw new Error(`the lab run failed (exit code ${lab.code})`);
    }
  } finally {
    await Deno.remove(site, { recursive: true });
  }
}

async function inLab(values: Values) {
  await setSctpTimers();
  const files: SiteFile[] = JSON.parse(await Deno.readTextFile(join(values.site, "files.json")));
  const results: LossResult[] = [];
  for (const transport of values.transports.split(",")) {
    results.push(await fetchAll(transport.trim(), files, values));
  }
  console.log(table(
    ["transport", "files", "identical", "differing", "failed", "seconds", "MB"],
    results.map((r) => [
      r.transport,
      r.files,
      r.identical,
      r.differing,
      Object.entries(r.failures).map(([why, n]) => `${n} ${why}`).join(", ") || "0",
      r.seconds,
      r.megabytes,
    ]),
  ));
  const passed = results.every((r) => r.identical === r.files);
  console.log(passed ? "PASS" : "FAIL");
  if (!passed) Deno.exitCode = 1;
}

async function fetchAll(transport: string, files: SiteFile[], values: Values): Promise<LossResult> {
  const serverIp = Deno.env.get("LAB_SERVER_IP")!;
  const proxyIp = Deno.env.get("LAB_PROXY_IP")!;
  const out = await Deno.makeTempDir({ prefix: `loss-${transport}-` });
  const server = await startServer({
    root: join(values.site, "root"),
    transport,
    host: serverIp,
    port: 9000,
    netns: "server",
  });
  try {
    const proxy = await startProxy({
      listen: `${proxyIp}:8080`,
      upstream: `${transport}://${serverIp}:9000`,
      cache: join(out, "cache"),
      netns: "proxy",
      // usrsctp's timers back off to seconds at 3% loss (its RTO.min is 1 s): a
      // probe must not call a slow server dead.
      args: ["--no-prefetch", "--probe-timeout=30000"],
    });
    try {
      const args = [
        "netns",
        "exec",
        "client",
        "curl",
        "--silent",
        "--parallel",
        "--parallel-max",
        String(values.parallel),
        "--max-time",
        "300",
        "--write-out",
        "%{http_code} %{filename_effective} %{errormsg}\\n",
      ];
      files.forEach((file, i) => args.push("-o", join(out, `body-${i}`), proxy.base + file.path));
      progress("loss", `${transport}: fetching ${files.length} files through the proxy`);
      const started = performance.now();
      const curl = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" })
        .output();
      const seconds = Math.round((performance.now() - started) / 100) / 10;
      // curl reports transfers as they end: key them by output file.
      const statusOf = new Map<string, string>();
      for (const line of new TextDecoder().decode(curl.stdout).split("\n")) {
        const [status, filename, ...message] = line.split(" ");
        if (filename) statusOf.set(filename, status === "000" ? message.join(" ") : status);
      }
      const failures: Record<string, number> = {};
      let identical = 0, differing = 0, megabytes = 0;
      for (const [i, file] of files.entries()) {
        const path = join(out, `body-${i}`);
        const status = statusOf.get(path) ?? "no report from curl";
        if (status !== "200") {
          const why = /^\d+$/.test(status) ? `status ${status}` : status;
          failures[why] = (failures[why] ?? 0) + 1;
          continue;
        }
        const body = await Deno.readFile(path);
        megabytes += body.byteLength / 1e6;
        if (sha256Hex(body) === file.sha256) identical++;
        else differing++;
      }
      progress("loss", `${transport}: ${identical}/${files.length} identical in ${seconds} s`);
      return {
        transport,
        files: files.length,
        identical,
        differing,
        failures,
        seconds,
        megabytes: Math.round(megabytes * 10) / 10,
      };
    } finally {
      await proxy.service.stop("SIGTERM");
    }
  } finally {
    await server.stop("SIGTERM");
    await Deno.remove(out, { recursive: true });
  }
}
