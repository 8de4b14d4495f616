/**
 * What `deno task compile` and `deno task bundle` build: the targets (CPU
 * architectures), the commands with their entry modules and permission sets,
 * and the Worker modules that are loaded by URL at run time (so a module
 * graph walk from the entries does not find them).
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The repository's root directory. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A CPU architecture flowsched is built for. */
export interface Target {
  /** `uname -m` on that machine, and the name in file names. */
  readonly arch: string;
  /** Rust target triple, as `deno compile --target` takes it. */
  readonly triple: string;
  /** The npm package holding that architecture's Deno binary (an optional dependency of `deno`). */
  readonly denoPackage: string;
  /** Debian's name of the architecture (`apt-get download name:<debArch>`). */
  readonly debArch: string;
  /** Debian's multiarch library directory name (`/usr/lib/<multiarch>`). */
  readonly multiarch: string;
}

/** The targets by name: x86_64 (PCs, servers) and aarch64 (the Raspberry Pi, 64-bit OS). */
export const TARGETS = {
  x86_64: {
    arch: "x86_64",
    triple: "x86_64-unknown-linux-gnu",
    denoPackage: "@deno/linux-x64-glibc",
    debArch: "amd64",
    multiarch: "x86_64-linux-gnu",
  },
  aarch64: {
    arch: "aarch64",
    triple: "aarch64-unknown-linux-gnu",
    denoPackage: "@deno/linux-arm64-glibc",
    debArch: "arm64",
    multiarch: "aarch64-linux-gnu",
  },
} as const satisfies Record<string, Target>;

/** A target's name: `x86_64` or `aarch64`. */
export type TargetName = keyof typeof TARGETS;

/** Every target name, in build order. */
export const TARGET_NAMES = Object.keys(TARGETS) as TargetName[];

/** One deployable command. */
export interface DeployCommand {
  /** Installed as `flowsched-<name>`. */
  readonly name: string;
  /** Entry module, relative to the repository root. */
  readonly entry: string;
  /** The permission set of deno.json baked in (`-P=<set>`): the least each command needs. */
  readonly permissions: string;
  /** One line for the launcher's header and the INSTALL text. */
  readonly summary: string;
}

/** The commands built for deployment. */
export const COMMANDS: readonly DeployCommand[] = [
  {
    name: "server",
    entry: "server/main.ts",
    permissions: "server",
    summary: "serves a directory over SCTP (kernel, usrsctp) or tcpmux",
  },
  {
    name: "proxy",
    entry: "proxy/main.ts",
    permissions: "proxy-release",
    summary: "HTTP/1.1 over TCP in front of associations to one or more servers",
  },
  {
    name: "get",
    entry: "scripts/get.ts",
    permissions: "client",
    summary: "fetches files from a server over one association, like curl",
  },
  {
    name: "ipvs",
    entry: "scripts/ipvs.ts",
    permissions: "ipvs",
    summary: "Linux IPVS in front of several servers, health-checked (needs root and ipvsadm)",
  },
];

/**
 * Modules started as Workers (`new Worker(new URL(...))`): `deno compile`
 * needs them named with `--include`, and the bundle copies them with the
 * modules they import.
 */
export const WORKER_MODULES: readonly string[] = ["transport/io_worker.ts"];

/** The Debian packages of the C libraries the transports open (kernel SCTP, usrsctp). */
export const RUNTIME_DEBS: readonly string[] = ["libsctp1", "libusrsctp2"];

/** Where downloads (Deno binaries, .debs) are kept between builds; gitignored. */
export const CACHE_DIR = `${REPO_ROOT}.cache/deploy`;

/** Parses a `--target` value; throws a message listing the valid names. */
export function parseTarget(name: string): Target {
  if (!(name in TARGETS)) {
    throw new Error(`unknown target "${name}"; use one of: ${TARGET_NAMES.join(", ")}`);
  }
  return TARGETS[name as TargetName];
}
