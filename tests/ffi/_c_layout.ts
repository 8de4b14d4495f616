/**
 * Compiles a tiny C program against the real headers and returns what the C
 * compiler says of each declared struct (size, field offsets) and constant,
 * so that tests can compare it with the TypeScript declarations.
 */

import assert from "node:assert/strict";
import type { StructLayout } from "../../ffi/struct.ts";

/** What to check: headers to include, layouts, and named integer constants. */
export interface LayoutCheck {
  /** e.g. `["<netinet/sctp.h>"]` */
  headers: string[];
  layouts: StructLayout[];
  constants?: Record<string, number>;
  /** Extra C declarations before main(), e.g. a `#define` needed by a header. */
  prelude?: string;
}

/** Compiles and runs the probe, then asserts every size, offset and constant. */
export async function assertLayoutsMatchHeaders(check: LayoutCheck): Promise<void> {
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
    const cc = await new Deno.Command("gcc", {
      args: ["-o", `${dir}/probe`, `${dir}/probe.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, `gcc failed:\n${new TextDecoder().decode(cc.stderr)}`);
    const run = await new Deno.Command(`${dir}/probe`, { stdout: "piped" }).output();
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
