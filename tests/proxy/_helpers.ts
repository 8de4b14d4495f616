/** Helpers of the proxy tests: curl, subprocess servers and proxies, hashes, polling. */

import { createHash } from "node:crypto";

export { freeUdpPort } from "../../scripts/hardening/stack.ts";
import { Service } from "../../scripts/hardening/stack.ts";

/** Hex sha256 of bytes. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Runs curl; returns its exit code, stdout and stderr. */
export async function curl(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command("curl", { args, stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Polls `condition` until it holds or `timeoutMs` passes. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A Deno subprocess whose log a test waits on: a `Service` named after its entry module. */
export class Child extends Service {
  /** Runs deno with `args`, inside network namespace `netns` if given (the lab). */
  constructor(args: string[], netns?: string) {
    super(args.find((arg) => arg.endsWith(".ts")) ?? "deno", args, netns);
  }

  /** Kills the process (SIGKILL by default) and waits for it. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    await this.stop(signal);
  }
}

/** Starts `server/main.ts` in a subprocess (usrsctp unless told); resolves once it listens. */
export async function spawnServer(
  options: {
    root: string;
    port: number;
    udpPort: number;
    streams?: number;
    transport?: string;
    host?: string;
    netns?: string;
  },
): Promise<Child> {
  const child = new Child([
    "run",
    "-P=server",
    "--no-code-cache",
    "--no-check",
    "server/main.ts",
    "--transport",
    options.transport ?? "usrsctp",
    "--host",
    options.host ?? "127.0.0.1",
    "--port",
    String(options.port),
    "--udp-port",
    String(options.udpPort),
    "--root",
    options.root,
    "--streams",
    String(options.streams ?? 4),
  ], options.netns);
  await child.waitForLine(`"listening"`);
  return child;
}

/**
 * Starts `proxy/main.ts` in a subprocess (listening on 127.0.0.1:0 unless
 * `args` say otherwise); resolves with it and its port once it listens.
 */
export async function spawnProxy(
  args: string[],
  netns?: string,
): Promise<{ child: Child; port: number }> {
  const child = new Child([
    "run",
    "-P=proxy",
    "--no-code-cache",
    "--no-check",
    "proxy/main.ts",
    "--listen",
    "127.0.0.1:0",
    "--log-level",
    "info",
    ...args,
  ], netns);
  const line = await child.waitForLine(`"listening"`);
  const port = Number(/"listen":"[^"]*:(\d+)"/.exec(line)?.[1]);
  return { child, port };
}
