/**
 * The files a deployed flowsched needs to run: the local modules reachable
 * from the commands' entries and the Worker modules (`deno info`), and the
 * npm packages they import with every package those depend on (walked
 * through the `dependencies` of each package.json, as Node resolves them).
 * Type-only packages (`@types/*`) and everything only the benchmarks use
 * (e.g. vega) stay out.
 *
 * @module
 */

import { basename, dirname, join, relative } from "node:path";
import { DeployError, run } from "./exec.ts";
import { COMMANDS, REPO_ROOT, WORKER_MODULES } from "./targets.ts";

/** What to copy, relative to the repository root. */
export interface ProgramFiles {
  /** Local modules, e.g. `server/main.ts`. */
  modules: string[];
  /** Package directories, e.g. `node_modules/mime-types`. */
  packages: string[];
  /** The npm packages the modules import directly, with the versions package.json asks for. */
  dependencies: Record<string, string>;
}

interface InfoModule {
  kind: string;
  specifier: string;
  local?: string;
  error?: string;
}

/** Lists the program's files; `deno` is the Deno used for `deno info`. */
export async function programFiles(deno: string): Promise<ProgramFiles> {
  const modules = new Set<string>();
  const imported = new Set<string>();
  for (const entry of [...COMMANDS.map((c) => c.entry), ...WORKER_MODULES]) {
    const info = JSON.parse(
      await run(deno, ["info", "--json", join(REPO_ROOT, entry)], { cwd: REPO_ROOT }),
    );
    for (const module of info.modules as InfoModule[]) {
      if (module.error) throw new DeployError(`${entry}: ${module.specifier}: ${module.error}`);
      if (!module.local) continue;
      const packageName = npmPackageOf(module.local);
      if (packageName) imported.add(packageName);
      else modules.add(relative(REPO_ROOT, module.local));
    }
  }
  const manifest = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "package.json")));
  const wanted = { ...manifest.devDependencies, ...manifest.dependencies };
  const dependencies: Record<string, string> = {};
  const packages = new Set<string>();
  for (const name of [...imported].filter((name) => !name.startsWith("@types/")).sort()) {
    if (!wanted[name]) throw new DeployError(`${name} is imported but not in package.json`);
    dependencies[name] = wanted[name];
    await addWithDependencies(join("node_modules", name), packages);
  }
  return { modules: [...modules].sort(), packages: [...packages].sort(), dependencies };
}

/** The npm package name of a file inside a node_modules directory, if it is in one. */
function npmPackageOf(path: string): string | undefined {
  const match = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
  return match?.[1];
}

/**
 * Adds the package at `dir` (relative to the repository root) and, resolved
 * as Node does (the nearest node_modules up the tree), its dependencies.
 * Only top-level packages are listed: nested ones are copied with theirs.
 */
async function addWithDependencies(
  dir: string,
  packages: Set<string>,
  seen = new Set<string>(),
): Promise<void> {
  if (seen.has(dir)) return;
  seen.add(dir);
  if (!dir.includes("/node_modules/")) packages.add(dir);
  const manifest = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, dir, "package.json")));
  for (const dependency of Object.keys(manifest.dependencies ?? {})) {
    const found = await resolvePackage(dir, dependency);
    if (!found) {
      throw new DeployError(`${dir} needs ${dependency}, which is not installed (run npm ci)`);
    }
    await addWithDependencies(found, packages, seen);
  }
}

/** Where Node finds `name` from the package at `dir`: its node_modules, then each one above. */
async function resolvePackage(dir: string, name: string): Promise<string | undefined> {
  for (let at = dir; at !== "."; at = dirname(at)) {
    if (basename(at) === "node_modules") continue;
    const candidate = join(at, "node_modules", name);
    if (await isDirectory(join(REPO_ROOT, candidate))) return candidate;
  }
  const top = join("node_modules", name);
  return await isDirectory(join(REPO_ROOT, top)) ? top : undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
