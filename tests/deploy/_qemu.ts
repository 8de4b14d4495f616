/**
 * Running aarch64 programs on an x86_64 host under qemu-user, for the tests
 * of the Raspberry Pi build: what is missing (so a test can be skipped with
 * the reason), and the command line that runs an aarch64 program with the
 * arm64 C library of Debian's cross packages.
 */

import { existsSync } from "node:fs";

/** Where Debian's libc6-arm64-cross puts the arm64 dynamic loader and C library. */
export const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";

function onPath(program: string): boolean {
  return new Deno.Command("sh", {
    args: ["-c", `command -v ${program}`],
    stdout: "null",
    stderr: "null",
  }).outputSync().success;
}

/**
 * Why aarch64 programs cannot run here (with the Debian packages that fix
 * it), or undefined when they can. With `compiler`, the cross-compiler is
 * needed too.
 */
export function emulationMissing(options: { compiler?: boolean } = {}): string | undefined {
  const lacking: string[] = [];
  if (!onPath("qemu-aarch64")) lacking.push("qemu-user (qemu-aarch64)");
  if (!existsSync(`${ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1`)) {
    lacking.push("libc6-arm64-cross and libgcc-s1-arm64-cross");
  }
  if (options.compiler && !onPath("aarch64-linux-gnu-gcc")) lacking.push("gcc-aarch64-linux-gnu");
  if (lacking.length === 0) return undefined;
  return `missing ${lacking.join(", ")}; sh scripts/bootstrap.sh installs them`;
}

/** Reports a skip reason once per test file, and returns whether to skip. */
export function skipWithReason(what: string, reason: string | undefined): boolean {
  if (reason) console.error(`${what} skipped: ${reason}`);
  return reason !== undefined;
}

/**
 * The command line that runs an aarch64 program here: qemu with the arm64
 * C library, and `libraryPath` (e.g. the lib directory of unpacked arm64
 * .debs) on the program's LD_LIBRARY_PATH only, not qemu's.
 */
export function qemuCommand(libraryPath?: string): string[] {
  return [
    "qemu-aarch64",
    "-L",
    ARM64_SYSROOT,
    ...(libraryPath ? ["-E", `LD_LIBRARY_PATH=${libraryPath}`] : []),
  ];
}
