/**
 * Lets a narrow permission set, such as `deno test --allow-ffi`, skip the
 * tests it cannot run instead of failing them: a test declares what it needs
 * with `Deno.test(name, { ignore: needs("read", "run") }, fn)`, and a file
 * that ignored tests ends with one line naming what was missing and the
 * command that runs everything (`deno task test`).
 *
 * @module
 */

const missing = new Set<Deno.PermissionName>();

function granted(name: Deno.PermissionName): boolean {
  return Deno.permissions.querySync({ name } as Deno.PermissionDescriptor).state === "granted";
}

function reportOnUnload(): void {
  globalThis.addEventListener("unload", () => {
    const flags = [...missing].map((name) => `--allow-${name}`).join(" ");
    console.error(`ignored tests here need ${flags}; \`deno task test\` runs them all`);
  });
}

/** True, so the test is ignored, unless every named permission is granted. */
export function needs(...names: Deno.PermissionName[]): boolean {
  const lacking = names.filter((name) => !granted(name));
  if (lacking.length > 0 && missing.size === 0) reportOnUnload();
  for (const name of lacking) missing.add(name);
  return lacking.length > 0;
}
