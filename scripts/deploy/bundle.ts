/**
 * `deno task bundle --target aarch64|x86_64`: one self-contained archive
 * (`dist/flowsched-<version>-<arch>.tar.gz`) that runs flowsched on a machine
 * of that architecture with nothing fetched at run time. It holds the
 * target's Deno (the version package-lock.json pins), the program with its
 * npm packages, the target's .debs of libsctp1 and libusrsctp2, launchers
 * (`bin/flowsched-server`, `-proxy`, `-get`), systemd units, example
 * configuration and an INSTALL text. Unlike `deno task compile` it needs no
 * `denort`, only npm and apt (downloads are cached in `.cache/deploy/`).
 *
 * @module
 */

import { cp } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ConfigError, helpText, parseOptions } from "../../cli/options.ts";
import { debs, denoBinary, pinnedDeno, type Progress } from "./downloads.ts";
import { DeployError, run } from "./exec.ts";
import { programFiles } from "./program.ts";
import {
  COMMANDS,
  parseTarget,
  REPO_ROOT,
  RUNTIME_DEBS,
  type Target,
  TARGET_NAMES,
} from "./targets.ts";

const OPTIONS = {
  target: {
    kind: "string",
    default: "aarch64",
    short: "t",
    choices: TARGET_NAMES,
    help: "CPU architecture of the machine that will run it (aarch64: Raspberry Pi, 64-bit OS)",
  },
  out: { kind: "string", default: "dist", short: "o", help: "directory the archive is written to" },
} as const;

const USAGE = `Usage: deno task bundle --target aarch64|x86_64 [--out dist]

Builds one self-contained archive, <out>/flowsched-<version>-<arch>.tar.gz, that runs the
server, the proxy and the get client on a Linux machine of that architecture, offline. It
holds that architecture's Deno (the version package-lock.json pins, from npm), the program
with its npm packages, the .debs of libsctp1 and libusrsctp2 (apt-get download; for arm64,
apt needs 'dpkg --add-architecture arm64', which scripts/bootstrap.sh does), launchers
bin/flowsched-{server,proxy,get,ipvs}, systemd units and an INSTALL text. Downloads are cached
in .cache/deploy/. Install on the target: INSTALL in the archive, or docs/DEPLOY.md.`;

/** Options of {@link bundle}. */
export interface BundleOptions {
  /** The architecture to build for. */
  target: Target;
  /** Directory the archive is written to (created if missing). */
  out: string;
  /** Where progress lines go. */
  progress: Progress;
}

/**
 * Builds the archive and returns its path. On failure nothing is left in
 * `out`: the archive is written under a temporary name and renamed when
 * complete.
 */
export async function bundle(options: BundleOptions): Promise<string> {
  const { target, out, progress } = options;
  const config = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json")));
  const name = `flowsched-${config.version}-${target.arch}`;
  const archive = join(out, `${name}.tar.gz`);
  const staging = await Deno.makeTempDir({ prefix: "flowsched-bundle-" });
  const partial = join(out, `.${name}.tar.gz.partial-${Deno.pid}`);
  try {
    const root = join(staging, name);
    progress(`collecting the program's modules and npm packages`);
    const files = await programFiles(Deno.execPath());
    await copyProgram(root, files.modules, files.packages);
    await writeAppConfig(root, config, files.dependencies);

    const deno = await denoBinary(target, progress);
    await Deno.mkdir(join(root, "lib"), { recursive: true });
    await Deno.copyFile(deno, join(root, "lib/deno"));
    await Deno.chmod(join(root, "lib/deno"), 0o755);

    const packages = await debs(RUNTIME_DEBS, target.debArch, progress);
    await Deno.mkdir(join(root, "debs"));
    for (const deb of packages) await Deno.copyFile(deb, join(root, "debs", basename(deb)));

    const { version: denoVersion } = await pinnedDeno(target);
    await writeDeployFiles(root, {
      ARCH: target.arch,
      DEB_ARCH: target.debArch,
      DENO_VERSION: denoVersion,
      DIR: name,
      VERSION: config.version,
    });

    progress(`writing ${archive}`);
    await Deno.mkdir(out, { recursive: true });
    await run("tar", ["-C", staging, "--owner=0", "--group=0", "-czf", partial, name]);
    await Deno.rename(partial, archive);
  } finally {
    await Deno.remove(partial).catch(() => {});
    await Deno.remove(staging, { recursive: true });
  }
  return archive;
}

async function copyProgram(root: string, modules: string[], packages: string[]) {
  for (const module of modules) {
    await Deno.mkdir(join(root, "app", dirname(module)), { recursive: true });
    await Deno.copyFile(join(REPO_ROOT, module), join(root, "app", module));
  }
  for (const dir of packages) {
    await cp(join(REPO_ROOT, dir), join(root, "app", dir), { recursive: true, dereference: true });
  }
}

/** The program's deno.json (the commands' permission sets) and package.json (its npm deps). */
async function writeAppConfig(
  root: string,
  config: { version: string; permissions?: Record<string, unknown> },
  dependencies: Record<string, string>,
) {
  const permissions: Record<string, unknown> = {};
  for (const command of COMMANDS) {
    const set = config.permissions?.[command.permissions];
    if (!set) {
      throw new DeployError(`deno.json has no permission set "${command.permissions}"`);
    }
    permissions[command.permissions] = set;
  }
  const json = (value: unknown) => JSON.stringify(value, null, 2) + "\n";
  await Deno.writeTextFile(
    join(root, "app/deno.json"),
    json({ version: config.version, nodeModulesDir: "manual", permissions }),
  );
  await Deno.writeTextFile(
    join(root, "app/package.json"),
    json({ name: "flowsched", version: config.version, private: true, dependencies }),
  );
}

/** Launchers, systemd units, example configuration and INSTALL, from deploy/. */
async function writeDeployFiles(root: string, values: Record<string, string>) {
  const deploy = join(REPO_ROOT, "deploy");
  await Deno.mkdir(join(root, "bin"));
  const launcher = await Deno.readTextFile(join(deploy, "launcher.sh"));
  for (const command of COMMANDS) {
    const file = join(root, "bin", `flowsched-${command.name}`);
    await Deno.writeTextFile(
      file,
      render(launcher, {
        ...values,
        NAME: command.name,
        SUMMARY: command.summary,
        ENTRY: command.entry,
        PERMISSIONS: command.permissions,
      }),
    );
    await Deno.chmod(file, 0o755);
  }
  for (const dir of ["systemd", "etc"]) {
    await cp(join(deploy, dir), join(root, dir), { recursive: true });
  }
  await Deno.writeTextFile(
    join(root, "INSTALL"),
    render(await Deno.readTextFile(join(deploy, "INSTALL")), values),
  );
}

/** Replaces each `@KEY@` of `template`; a key without a value is a bug in the template. */
function render(template: string, values: Record<string, string>): string {
  return template.replace(/@([A-Z_]+)@/g, (_, key: string) => {
    if (!(key in values)) throw new DeployError(`deploy template uses unknown @${key}@`);
    return values[key];
  });
}

if (import.meta.main) {
  try {
    const parsed = await parseOptions(Deno.args, OPTIONS);
    if (!parsed) {
      console.log(helpText(USAGE, OPTIONS));
      Deno.exit(0);
    }
    if (parsed.positionals.length > 0) {
      throw new ConfigError(`unexpected argument "${parsed.positionals[0]}"; see --help`);
    }
    const archive = await bundle({
      target: parseTarget(parsed.values.target),
      out: parsed.values.out,
      progress: (line) => console.error(`bundle: ${line}`),
    });
    const size = (await Deno.stat(archive)).size;
    console.error(`bundle: done: ${archive} (${(size / 1e6).toFixed(1)} MB)`);
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof DeployError)) throw error;
    console.error(`bundle: ${error.message}`);
    Deno.exit(error instanceof ConfigError ? 2 : 1);
  }
}
