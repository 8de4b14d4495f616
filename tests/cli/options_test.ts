import assert from "node:assert/strict";
import { ConfigError, helpText, type OptionTable, parseOptions } from "../../cli/options.ts";
import { SERVER_OPTIONS } from "../../server/config.ts";
import { POLICY_NAMES } from "../../server/policies/mod.ts";
import { SERVER_TRANSPORTS } from "../../server/transports.ts";
import { needs } from "../_permissions.ts";

// The config-file tests write the file and read it back.
const ignore = needs("read", "write");

async function configFile(content: unknown): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

Deno.test("server options default to the documented values", async () => {
  const parsed = await parseOptions([], SERVER_OPTIONS);
  assert.equal(parsed?.values.transport, "usrsctp");
  assert.equal(parsed?.values.policy, "scf");
  assert.equal(parsed?.values.streams, navigator.hardwareConcurrency);
  assert.equal(parsed?.values.chunkSize, 65536);
});

Deno.test("flags override the config file, which overrides the defaults", { ignore }, async () => {
  const path = await configFile({ policy: "rr", port: 9100, chunkSize: 4096 });
  const parsed = await parseOptions(["--config", path, "--port", "9200"], SERVER_OPTIONS);
  assert.equal(parsed?.values.policy, "rr");
  assert.equal(parsed?.values.port, 9200);
  assert.equal(parsed?.values.chunkSize, 4096);
});

Deno.test(
  "an unknown config key is refused with its name and the known keys",
  { ignore },
  async () => {
    const path = await configFile({ polcy: "rr" });
    await assert.rejects(parseOptions(["--config", path], SERVER_OPTIONS), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /unknown key "polcy"/);
      assert.match(error.message, /policy/);
      return true;
    });
  },
);

Deno.test("a bad value names the key and what is allowed", { ignore }, async () => {
  const path = await configFile({ transport: "quic" });
  await assert.rejects(
    parseOptions(["--config", path], SERVER_OPTIONS),
    /key "transport": "quic" is not valid; expected one of kernel, usrsctp, tcpmux, tcp$/,
  );
  await assert.rejects(
    parseOptions(["--port", "70000"], SERVER_OPTIONS),
    /"--port": "70000" is not valid; expected an integer >= 0 <= 65535/,
  );
  await assert.rejects(parseOptions(["--streams", "two"], SERVER_OPTIONS), /--streams/);
  await assert.rejects(
    parseOptions(["--colour"], SERVER_OPTIONS),
    /Unknown option '--colour'; see --help/,
  );
});

Deno.test(
  "a config file that is not a JSON object is refused with the file's name",
  { ignore },
  async () => {
    const path = await configFile("[1, 2]");
    await assert.rejects(
      parseOptions(["--config", path], SERVER_OPTIONS),
      new RegExp(`${path} must hold a JSON object`),
    );
    await assert.rejects(
      parseOptions(["--config", "/nonexistent.json"], SERVER_OPTIONS),
      /cannot read config file \/nonexistent.json/,
    );
  },
);

Deno.test("--help lists every option with its default", async () => {
  assert.equal(await parseOptions(["--help"], SERVER_OPTIONS), null);
  const help = helpText("Usage: server", SERVER_OPTIONS);
  for (
    const flag of [
      "--transport",
      "--port",
      "--root",
      "--policy",
      "--streams",
      "--chunk-size",
      "--no-keep-alive",
      "--log-level",
    ]
  ) {
    assert.match(help, new RegExp(flag));
  }
  assert.ok(help.includes(`(${SERVER_TRANSPORTS.join(" | ")}) [default: "usrsctp"]`), help);
  assert.ok(SERVER_TRANSPORTS.includes("tcp"));
  assert.ok(help.includes(`(${POLICY_NAMES.join(" | ")}) [default: "scf"]`), help);
});

const LIST_OPTIONS = {
  upstream: {
    kind: "strings",
    default: ["usrsctp://127.0.0.1:9000"],
    help: "a server",
    short: "u",
  },
} as const satisfies OptionTable;

Deno.test("a repeated flag gives every value in order, and replaces the config file's", {
  ignore,
}, async () => {
  const defaults = await parseOptions([], LIST_OPTIONS);
  assert.deepEqual(defaults?.values.upstream, ["usrsctp://127.0.0.1:9000"]);
  const flags = await parseOptions(
    ["--upstream", "tcpmux://127.0.0.1:9001", "-u", "tcpmux://127.0.0.1:9002"],
    LIST_OPTIONS,
  );
  assert.deepEqual(flags?.values.upstream, ["tcpmux://127.0.0.1:9001", "tcpmux://127.0.0.1:9002"]);
  const list = await configFile({ upstream: ["kernel://10.0.0.2:9000", "kernel://10.0.0.3:9000"] });
  assert.deepEqual(
    (await parseOptions(["--config", list], LIST_OPTIONS))?.values.upstream,
    ["kernel://10.0.0.2:9000", "kernel://10.0.0.3:9000"],
  );
  const one = await configFile({ upstream: "kernel://10.0.0.2:9000" });
  assert.deepEqual(
    (await parseOptions(["--config", one], LIST_OPTIONS))?.values.upstream,
    ["kernel://10.0.0.2:9000"],
  );
  assert.deepEqual(
    (await parseOptions(["--config", list, "--upstream", "tcpmux://127.0.0.1:9001"], LIST_OPTIONS))
      ?.values.upstream,
    ["tcpmux://127.0.0.1:9001"],
  );
});

Deno.test("a list option refuses a bad element by its index, and an empty list", {
  ignore,
}, async () => {
  const badElement = await configFile({ upstream: ["tcpmux://127.0.0.1:9001", 9002] });
  await assert.rejects(
    parseOptions(["--config", badElement], LIST_OPTIONS),
    /key "upstream", element 1: 9002 is not valid; expected a string$/,
  );
  for (const value of [[], 9001, { url: "tcpmux://127.0.0.1:9001" }]) {
    const path = await configFile({ upstream: value });
    await assert.rejects(
      parseOptions(["--config", path], LIST_OPTIONS),
      /key "upstream": .* is not valid; expected a string or a non-empty array of strings$/,
    );
  }
});

Deno.test("--help says that a list option's flag may be repeated", () => {
  const help = helpText("Usage: command", LIST_OPTIONS);
  const line = help.split("\n").find((row) => row.includes("--upstream"));
  assert.match(line ?? "", /may be repeated/);
  assert.match(line ?? "", /\[default: \["usrsctp:\/\/127\.0\.0\.1:9000"\]\]$/);
});

Deno.test("the server command exits 2 with the message for a bad flag, and 0 for --help", {
  ignore: needs("run"),
}, async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-P=server", "--no-check", "server/main.ts", ...args],
      cwd: new URL("../..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
  const bad = await run(["--policy", "lifo"]);
  assert.equal(bad.code, 2);
  assert.match(
    new TextDecoder().decode(bad.stderr),
    /server: flag "--policy": "lifo" is not valid; expected one of scf, rr/,
  );
  const missingRoot = await run([
    "--root",
    "/nonexistent-root",
    "--transport",
    "tcpmux",
    "--port",
    "0",
  ]);
  assert.equal(missingRoot.code, 1);
  assert.match(new TextDecoder().decode(missingRoot.stderr), /server: .*nonexistent-root/);
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(new TextDecoder().decode(help.stdout), /Usage: deno task server/);
  assert.match(new TextDecoder().decode(help.stdout), /tcpmux \| tcp\)/);
});
