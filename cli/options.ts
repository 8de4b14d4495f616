/**
 * One table per command describes its options: type, default, allowed values
 * and help. From it come `--help`, flag parsing (`node:util` parseArgs), and
 * validation of a JSON config file, with errors that name the bad key and
 * what is allowed. Flags override the config file; the file overrides
 * defaults.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One option: its kind decides parsing and validation. */
export type OptionSpec =
  & { help: string; short?: string }
  & (
    | { kind: "string"; default: string; choices?: readonly string[] }
    | { kind: "integer"; default: number; min?: number; max?: number }
    | { kind: "boolean"; default: boolean }
    /** A bit rate such as `10mbit` (units bit, kbit, mbit, gbit), parsed to bytes per second. */
    | { kind: "rate"; default: string }
    /**
     * One or more strings: the flag may be repeated (the values keep their
     * order, and replace the config file's), the config key holds a string or
     * a non-empty array of strings.
     */
    | { kind: "strings"; default: readonly string[] }
  );

/** An option table: option name (camelCase, as in the config file) → spec. */
export type OptionTable = Record<string, OptionSpec>;

/** The parsed values of a table. */
export type OptionValues<T extends OptionTable> = {
  -readonly [K in keyof T]: T[K]["kind"] extends "integer" | "rate" ? number
    : T[K]["kind"] extends "boolean" ? boolean
    : T[K]["kind"] extends "strings" ? string[]
    : string;
};

/** A bad flag, config key or value; the message says which and what is allowed. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function describe(spec: OptionSpec): string {
  switch (spec.kind) {
    case "string":
      return spec.choices ? `one of ${spec.choices.join(", ")}` : "a string";
    case "integer":
      return `an integer${spec.min !== undefined ? ` >= ${spec.min}` : ""}${
        spec.max !== undefined ? ` <= ${spec.max}` : ""
      }`;
    case "boolean":
      return "true or false";
    case "rate":
      return "a rate like 10mbit (units bit, kbit, mbit, gbit), or 0";
    case "strings":
      return "a string or a non-empty array of strings";
  }
}

const BITS_PER_UNIT: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

/** Bytes per second of a rate such as `10mbit`; `undefined` if it is not one. */
export function parseRate(text: string): number | undefined {
  if (text.trim() === "0") return 0;
  const match = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$/.exec(text.trim());
  return match ? Number(match[1]) * BITS_PER_UNIT[match[2]] / 8 : undefined;
}

function validate(
  name: string,
  spec: OptionSpec,
  value: unknown,
  where: string,
): string | number | boolean | string[] {
  const fail = () =>
    new ConfigError(
      `${where} "${name}": ${JSON.stringify(value)} is not valid; expected ${describe(spec)}`,
    );
  switch (spec.kind) {
    case "string":
      if (typeof value !== "string" || (spec.choices && !spec.choices.includes(value))) {
        throw fail();
      }
      return value;
    case "integer": {
      const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isInteger(n)) throw fail();
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw fail();
      }
      return n;
    }
    case "boolean":
      if (typeof value === "boolean") return value;
      if (value === "true" || value === "false") return value === "true";
      throw fail();
    case "rate": {
      const rate = parseRate(String(value));
      if (rate === undefined || (typeof value !== "string" && value !== 0)) throw fail();
      return rate;
    }
    case "strings": {
      if (typeof value === "string") return [value];
      if (!Array.isArray(value) || value.length === 0) throw fail();
      const bad = value.findIndex((item) => typeof item !== "string");
      if (bad >= 0) {
        throw new ConfigError(
          `${where} "${name}", element ${bad}: ${
            JSON.stringify(value[bad])
          } is not valid; expected a string`,
        );
      }
      return [...value];
    }
  }
}

/** The `--help` text for a command. */
export function helpText(usage: string, table: OptionTable): string {
  const rows = Object.entries(table).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${kebab(name)}${
      spec.kind === "boolean" ? "" : ` <${spec.kind === "integer" ? "n" : "value"}>`
    }`;
    const extra = spec.kind === "string" && spec.choices
      ? ` (${spec.choices.join(" | ")})`
      : spec.kind === "strings"
      ? " (may be repeated; in the config file a string or an array of strings)"
      : "";
    return `  ${flag.padEnd(34)} ${spec.help}${extra} [default: ${JSON.stringify(spec.default)}]`;
  });
  return `${usage}\n\nOptions:\n  -h, --help${
    " ".repeat(24)
  } show this help\n      --config <file>${
    " ".repeat(15)
  } JSON file with any of the options below (camelCase keys)\n${rows.join("\n")}\n`;
}

/**
 * Parses `args` (and the JSON file named by `--config`, if any) against
 * `table`. Returns `null` when `--help` was asked for. Throws ConfigError.
 */
export async function parseOptions<T extends OptionTable>(
  args: string[],
  table: T,
): Promise<{ values: OptionValues<T>; positionals: string[] } | null> {
  const flagOptions: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {
    help: { type: "boolean", short: "h" },
    config: { type: "string" },
  };
  for (const [name, spec] of Object.entries(table)) {
    flagOptions[kebab(name)] = {
      type: spec.kind === "boolean" ? "boolean" : "string",
      multiple: spec.kind === "strings",
    };
    if (spec.short) flagOptions[kebab(name)].short = spec.short;
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options: flagOptions, allowPositionals: true, strict: true });
  } catch (error) {
    // Node's hint about positionals after "--" does not apply to our commands.
    const message = (error as Error).message.replace(/\. To specify a positional.*$/s, "");
    throw new ConfigError(`${message}; see --help`);
  }
  if (parsed.values.help) return null;
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    values[name] = spec.kind === "rate"
      ? parseRate(spec.default)
      : spec.kind === "strings"
      ? [...spec.default]
      : spec.default;
  }
  const configPath = parsed.values.config as string | undefined;
  if (configPath) {
    let config: unknown;
    try {
      config = JSON.parse(await Deno.readTextFile(configPath));
    } catch (error) {
      throw new ConfigError(`cannot read config file ${configPath}: ${(error as Error).message}`);
    }
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      throw new ConfigError(`config file ${configPath} must hold a JSON object`);
    }
    for (const [key, value] of Object.entries(config)) {
      // Own keys only: "constructor" or "toString" must not find Object.prototype's.
      const spec = Object.hasOwn(table, key) ? table[key] : undefined;
      if (!spec) {
        throw new ConfigError(
          `config file ${configPath}: unknown key "${key}"; known keys: ${
            Object.keys(table).join(", ")
          }`,
        );
      }
      values[key] = validate(key, spec, value, `config file ${configPath}: key`);
    }
  }
  for (const [name, spec] of Object.entries(table)) {
    const flag = parsed.values[kebab(name)];
    if (flag !== undefined) values[name] = validate(`--${kebab(name)}`, spec, flag, "flag");
  }
  return { values: values as OptionValues<T>, positionals: parsed.positionals };
}
