/**
 * Compiles a tiny C program against the real headers and returns what the C
 * compiler says of each declared struct (size, field offsets) and constant,
 * so that tests can compare it with the TypeScript declarations.
 *
 * For aarch64 (the Raspberry Pi) the probe is built by the cross-compiler
 * (gcc-aarch64-linux-gnu) against the arm64 -dev packages' headers and run
 * under qemu-aarch64. The TypeScript tables are plain constants (nothing in
 * ffi/ asks which machine it runs on; the aarch64 probe checks that), so the
 * values evaluated here are the ones an aarch64 Deno gets.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { StructLayout } from "../../ffi/struct.ts";
import { debs } from "../../scripts/deploy/downloads.ts";
import { REPO_ROOT } from "../../scripts/deploy/targets.ts";
import { emulationMissing, qemuCommand } from "../deploy/_qemu.ts";

/** What to check: headers to include, layouts, and named integer constants. */
export interface LayoutCheck {
  /** e.g. `["<netinet/sctp.h>"]` */
  headers: string[];
  layouts: StructLayout[];
  constants?: Record<string, number>;
  /** Extra C declarations before main(), e.g. a `#define` needed by a header. */
  prelude?: string;
}

/** The machine a probe is built for and run on. */
export type ProbeArch = "x86_64" | "aarch64";

/** Why the aarch64 probes cannot run here, or undefined when they can. */
export const aarch64ProbeMissing = () => emulationMissing({ compiler: true });

let arm64Headers: Promise<string> | undefined;

/**
 * A directory with the arm64 headers of libsctp-dev and libusrsctp-dev
 * (`apt-get download`, cached, unpacked once per test file).
 */
function arm64DevHeaders(): Promise<string> {
  arm64Headers ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-arm64-dev-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
    for (const deb of await debs(["libsctp-dev", "libusrsctp-dev"], "arm64", () => {})) {
      const x = await new Deno.Command("dpkg-deb", { args: ["-x", deb, root] }).output();
      assert.equal(x.code, 0, `dpkg-deb -x ${deb}`);
    }
    return join(root, "usr/include");
  })();
  return arm64Headers;
}

/** Fails if a module of ffi/ decides anything by the machine it runs on. */
async function assertFfiTablesArchIndependent(): Promise<void> {
  for await (const entry of Deno.readDir(join(REPO_ROOT, "ffi"))) {
    const text = await Deno.readTextFile(join(REPO_ROOT, "ffi", entry.name));
    assert.ok(
      !/Deno\.build|process\.arch|os\.arch/.test(text),
      `ffi/${entry.name} depends on the machine: evaluate its tables under the aarch64 Deno`,
    );
  }
}

/**
 * Compiles and runs the probe for `arch` (default x86_64, the host), then
 * asserts every size, offset and constant.
 */
export async function assertLayoutsMatchHeaders(
  check: LayoutCheck,
  arch: ProbeArch = "x86_64",
): Promise<void> {
  const lines: string[] = [];
  for (const layout of check.layouts) {
    const t = `struct ${layout.cName}`;
    lines.push(`printf("size ${layout.cName} %zu\\n", sizeof(${t}));`);
    for (const field of Object.keys(layout.fields)) {
      lines.push(
        `printf("offset ${layout.cName}.${field} %zu %zu\\n", offsetof(${t}, ${field}), sizeof(((${t}*)0)->${field}));`,
      );
    }
  }
  for (const name of Object.keys(check.constants ?? {})) {
    lines.push(`printf("const ${name} %lld\\n", (long long)(${name}));`);
  }
  const source = [
    check.prelude ?? "",
    "#include <stdio.h>",
    "#include <stddef.h>",
    ...check.headers.map((h) => `#include ${h}`),
    "int main(void) {",
    ...lines,
    "return 0; }",
  ].join("\n");

  const dir = await Deno.makeTempDir({ prefix: "flowsched-layout-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.c`, source);
    const [compiler, extra] = arch === "aarch64"
      ? ["aarch64-linux-gnu-gcc", ["-isystem", await arm64DevHeaders()]]
      : ["gcc", []];
    if (arch === "aarch64") await assertFfiTablesArchIndependent();
    const cc = await new Deno.Command(compiler, {
      args: [...extra, "-o", `${dir}/probe`, `${dir}/probe.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, `${compiler} failed:\n${new TextDecoder().decode(cc.stderr)}`);
    const [program, ...args] = arch === "aarch64"
      ? [...qemuCommand(), `${dir}/probe`]
      : [`${dir}/probe`];
    const run = await new Deno.Command(program, { args, stdout: "piped" }).output();
    assert.equal(run.code, 0, `${program} ${args.join(" ")} failed`);
    const facts = new Map<string, number[]>();
    for (const line of new TextDecoder().decode(run.stdout).trim().split("\n")) {
      const [kind, name, ...values] = line.split(" ");
      facts.set(`${kind} ${name}`, values.map(Number));
    }
    for (const layout of check.layouts) {
      assert.equal(
        layout.size,
        facts.get(`size ${layout.cName}`)?.[0],
        `sizeof(struct ${layout.cName})`,
      );
      for (const [name, field] of Object.entries(layout.fields)) {
        const [offset, width] = facts.get(`offset ${layout.cName}.${name}`)!;
        assert.equal(field.offset, offset, `offsetof(struct ${layout.cName}, ${name})`);
        const expectedWidth = field.type === "bytes"
          ? field.length
          : { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8 }[field.type];
        assert.equal(expectedWidth, width, `sizeof(struct ${layout.cName}.${name})`);
      }
    }
    for (const [name, value] of Object.entries(check.constants ?? {})) {
      assert.equal(value, facts.get(`const ${name}`)?.[0], `constant ${name}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
