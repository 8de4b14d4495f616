/**
 * The build's downloads, each kept in the cache (`.cache/deploy/`) so the
 * next build and CI need no network: a target's Deno binary from npm (the
 * very package and version package-lock.json pins, integrity checked), and
 * Debian packages for a target architecture (`apt-get download`).
 *
 * A download lands in a temporary directory inside the cache and is renamed
 * into place when complete, so an interrupted or concurrent build never sees
 * half a file.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { DeployError, run } from "./exec.ts";
import { CACHE_DIR, REPO_ROOT, type Target } from "./targets.ts";

/** Reports one progress line. */
export type Progress = (line: string) => void;

/** The version and integrity package-lock.json pins for a target's Deno package. */
export async function pinnedDeno(target: Target): Promise<{ version: string; integrity: string }> {
  const lock = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "package-lock.json")));
  const entry = lock.packages?.[`node_modules/${target.denoPackage}`];
  if (!entry?.version || !entry?.integrity) {
    throw new DeployError(
      `package-lock.json pins no ${target.denoPackage}; it comes with the npm package "deno" ` +
        `(run npm install deno@<version> to pin one)`,
    );
  }
  return { version: entry.version, integrity: entry.integrity };
}

/**
 * The path of the target's Deno binary, the version package-lock.json pins:
 * the one `npm ci` installed when the target is this machine's architecture,
 * else fetched with `npm pack` on first use and checked against the lock's
 * integrity.
 */
export async function denoBinary(target: Target, progress: Progress): Promise<string> {
  const { version, integrity } = await pinnedDeno(target);
  const installed = join(REPO_ROOT, "node_modules", target.denoPackage);
  if (await exists(join(installed, "deno"))) {
    const manifest = JSON.parse(await Deno.readTextFile(join(installed, "package.json")));
    if (manifest.version === version) return join(installed, "deno");
  }
  const dir = join(CACHE_DIR, "deno", version, target.arch);
  const binary = join(dir, "deno");
  if (await exists(binary)) return binary;
  const spec = `${target.denoPackage}@${version}`;
  progress(`downloading ${spec} from npm (about 40 MB, kept in ${dir})`);
  await withTempDir(async (tmp) => {
    const packed = JSON.parse(
      await run("npm", ["pack", spec, "--pack-destination", tmp, "--json", "--silent"], {
        hint: "check that the npm registry is reachable (npm config get registry)",
      }),
    );
    const tarball = join(tmp, packed[0].filename);
    const [algorithm, expected] = integrity.split(/-(.*)/s);
    const actual = createHash(algorithm).update(await Deno.readFile(tarball)).digest("base64");
    if (actual !== expected) {
      throw new DeployError(
        `${spec} from npm does not match the integrity package-lock.json records ` +
          `(${integrity}, got ${algorithm}-${actual})`,
      );
    }
    await run("tar", ["xzf", tarball, "-C", tmp, "package/deno"]);
    await Deno.chmod(join(tmp, "package/deno"), 0o755);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.rename(join(tmp, "package/deno"), binary);
  });
  return binary;
}

/**
 * Paths of the `.deb` files of `packages` for the Debian architecture
 * `debArch` (e.g. `arm64`), fetched with `apt-get download` on first use.
 */
export async function debs(
  packages: readonly string[],
  debArch: string,
  progress: Progress,
): Promise<string[]> {
  const dir = join(CACHE_DIR, "debs", debArch);
  const found = new Map<string, string>();
  const cached = async () => {
    for await (const entry of readDirIfAny(dir)) {
      const name = entry.name.split("_")[0];
      if (packages.includes(name) && entry.name.endsWith(`_${debArch}.deb`)) {
        found.set(name, join(dir, entry.name));
      }
    }
  };
  await cached();
  const missing = packages.filter((name) => !found.has(name));
  if (missing.length > 0) {
    progress(`downloading ${missing.map((p) => `${p}:${debArch}`).join(" ")} (kept in ${dir})`);
    await withTempDir(async (tmp) => {
      await run("apt-get", ["download", ...missing.map((name) => `${name}:${debArch}`)], {
        cwd: tmp,
        hint: `apt must know the architecture ${debArch}: run (as root) ` +
          `dpkg --add-architecture ${debArch} && apt-get update, or sh scripts/bootstrap.sh`,
      });
      await Deno.mkdir(dir, { recursive: true });
      for await (const entry of Deno.readDir(tmp)) {
        await Deno.rename(join(tmp, entry.name), join(dir, entry.name));
      }
    });
    await cached();
  }
  return packages.map((name) => found.get(name)!);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function* readDirIfAny(dir: string): AsyncIterable<Deno.DirEntry> {
  try {
    yield* Deno.readDir(dir);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  await Deno.mkdir(CACHE_DIR, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: CACHE_DIR, prefix: ".download-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
