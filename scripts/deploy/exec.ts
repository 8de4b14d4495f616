/**
 * Running the build's helper programs (npm, apt-get, tar, deno) with errors
 * that say which program failed, what it printed, and what to do.
 *
 * @module
 */

/** A build step that cannot go on; the message says what failed and the fix. */
export class DeployError extends Error {
  override name = "DeployError";
}

/** Options of {@link run}. */
export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Appended to the error when the program fails, e.g. the command that fixes it. */
  hint?: string;
}

/**
 * Runs `program` with `args` and returns its stdout. A program that is not
 * installed or exits non-zero throws a {@link DeployError} with its stderr.
 */
export async function run(program: string, args: string[], options: RunOptions = {}) {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(program, {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new DeployError(`${program} is not installed${hint(options)}`);
    }
    throw error;
  }
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-8).join("\n");
    throw new DeployError(
      `${program} ${args.join(" ")} failed (exit ${output.code})${stderr ? `:\n${stderr}` : ""}${
        hint(options)
      }`,
    );
  }
  return new TextDecoder().decode(output.stdout);
}

function hint(options: RunOptions): string {
  return options.hint ? `\n${options.hint}` : "";
}
