import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConfigError,
  type OptionSpec,
  type OptionTable,
  parseOptions,
  parseRate,
} from "../../cli/options.ts";
import { SERVER_OPTIONS } from "../../server/config.ts";
import { PROXY_OPTIONS } from "../../proxy/config.ts";
import { needs } from "../_permissions.ts";
import { fuzzRuns } from "./_runs.ts";

// Config files are written, then read back by parseOptions.
const ignore = needs("read", "write");

const TABLES: [string, OptionTable][] = [["server", SERVER_OPTIONS], ["proxy", PROXY_OPTIONS]];

/** Keys an object has without being given them, and keys near the real ones. */
const TRICKY_KEYS = [
  "constructor",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "__proto__",
  "__defineGetter__",
  "prototype",
  "",
  "Port",
  "log-level",
  "help",
  "config",
];

/** Values that fit each kind of option, so that objects load often enough to check them too. */
const fitting = fc.oneof(
  fc.constantFrom("usrsctp", "tcpmux", "kernel", "scf", "srpt", "info", "warn", "fcfs"),
  fc.constantFrom("10mbit", "0", "1.5gbit", "127.0.0.1:0", "usrsctp://127.0.0.1:9000"),
  fc.integer({ min: 0, max: 70000 }),
  fc.integer({ min: 0, max: 70000 }).map(String),
  fc.boolean(),
  fc.constantFrom("true", "false"),
  fc.array(fc.constantFrom("usrsctp://127.0.0.1:9000", "tcpmux://127.0.0.1:9001"), {
    maxLength: 3,
  }),
);

function configObject(table: OptionTable) {
  const key = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...Object.keys(table)) },
    { weight: 1, arbitrary: fc.constantFrom(...TRICKY_KEYS) },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  );
  const value = fc.oneof({ weight: 3, arbitrary: fitting }, {
    weight: 1,
    arbitrary: fc.jsonValue(),
  });
  return fc.dictionary(key, value, { maxKeys: 5 });
}

async function configFile(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "flowsched-fuzz-", suffix: ".json" });
  await Deno.writeTextFile(path, text);
  return path;
}

/** Loads `text` as the config file of `table`: the values, or the error. */
async function load(table: OptionTable, text: string) {
  const path = await configFile(text);
  try {
    return { values: (await parseOptions(["--config", path], table))!.values };
  } catch (error) {
    return { error };
  } finally {
    await Deno.remove(path);
  }
}

/** Whether a loaded value is one `spec` allows. */
function conforms(spec: OptionSpec, value: unknown): boolean {
  switch (spec.kind) {
    case "string":
      return typeof value === "string" && (!spec.choices || spec.choices.includes(value));
    case "integer":
      return Number.isInteger(value) && (spec.min === undefined || (value as number) >= spec.min) &&
        (spec.max === undefined || (value as number) <= spec.max);
    case "boolean":
      return typeof value === "boolean";
    case "rate":
      return typeof value === "number" && value >= 0 && Number.isFinite(value);
    case "strings":
      return Array.isArray(value) && value.length > 0 &&
        value.every((item) => typeof item === "string");
  }
}

for (const [command, table] of TABLES) {
  Deno.test(
    `a ${command} config object loads with valid values, or fails naming a key that is bad on its own`,
    { ignore },
    async () => {
      await fc.assert(
        fc.asyncProperty(configObject(table), async (config) => {
          const text = JSON.stringify(config);
          const result = await load(table, text);
          if ("values" in result) {
            const values = result.values as Record<string, unknown>;
            assert.deepEqual(Object.keys(values).sort(), Object.keys(table).sort());
            for (const [name, spec] of Object.entries(table)) {
              assert.ok(conforms(spec, values[name]), `${name}: ${JSON.stringify(values[name])}`);
            }
            for (const [key, value] of Object.entries(config)) {
              assert.ok(Object.hasOwn(table, key), `unknown key "${key}" was accepted`);
              const loaded = values[key];
              const spec = table[key];
              if (spec.kind === "rate") assert.equal(loaded, parseRate(String(value)));
              else if (spec.kind === "integer") assert.equal(loaded, Number(value));
              else if (spec.kind === "strings") assert.deepEqual(loaded, [value].flat());
              else if (spec.kind === "boolean") {
                assert.equal(loaded, value === true || value === "true");
              } else assert.equal(loaded, value);
            }
            return;
          }
          const { error } = result;
          assert.ok(error instanceof ConfigError, `${(error as Error)?.name}: ${error}`);
          const named = Object.keys(config).filter((key) => error.message.includes(`"${key}"`));
          assert.ok(named.length > 0, `no key of ${text} named in: ${error.message}`);
          // The key named is bad by itself: alone in a file, it is refused too.
          const alone = named[0];
          const single = await load(table, JSON.stringify({ [alone]: config[alone] }));
          assert.ok("error" in single, `"${alone}" alone loads: ${error.message}`);
        }),
        { numRuns: fuzzRuns(150) },
      );
    },
  );
}

Deno.test("a config file that is not a JSON object fails with a ConfigError that says so", {
  ignore,
}, async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.jsonValue().filter((v) => typeof v !== "object" || v === null || Array.isArray(v))
          .map((v) => JSON.stringify(v)),
        fc.string({ maxLength: 40 }).filter((text) => {
          try {
            JSON.parse(text);
            return false;
          } catch {
            return true;
          }
        }),
      ),
      async (text) => {
        const result = await load(SERVER_OPTIONS, text);
        assert.ok("error" in result && result.error instanceof ConfigError, text);
        assert.match(
          (result.error as Error).message,
          /must hold a JSON object|cannot read config file/,
        );
      },
    ),
    { numRuns: fuzzRuns(100) },
  );
});

Deno.test("keys every object has (constructor, toString, ...) are refused as unknown keys", {
  ignore,
}, async () => {
  for (const key of ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"]) {
    const result = await load(SERVER_OPTIONS, `{"${key}": 1}`);
    assert.ok("error" in result, `"${key}" was accepted`);
    assert.match((result.error as Error).message, new RegExp(`unknown key "${key}"`));
  }
});

Deno.test("any flags either parse or fail with a ConfigError", async () => {
  const flag = fc.oneof(
    fc.constantFrom(
      "--port",
      "-p",
      "--transport",
      "-t",
      "--help",
      "-h",
      "--",
      "-",
      "--pace",
      "--streams=",
      "--streams=2",
      "--no-prefetch",
      "--log-level",
      "--constructor",
      "--__proto__",
      "-pp",
      "9000",
      "usrsctp",
      "10mbit",
    ),
    fc.string({ maxLength: 10 }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(flag, { maxLength: 6 }),
      fc.constantFrom(...TABLES),
      async (args, [, table]) => {
        try {
          const parsed = await parseOptions(args.filter((arg) => arg !== "--config"), table);
          if (!parsed) return;
          for (const [name, spec] of Object.entries(table)) {
            assert.ok(conforms(spec, (parsed.values as Record<string, unknown>)[name]), name);
          }
        } catch (error) {
          assert.ok(error instanceof ConfigError, `${args.join(" ")}: ${error}`);
        }
      },
    ),
    { numRuns: fuzzRuns(1000) },
  );
});
