import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LabError, parseLinkSpec, runInLab, tcArgs } from "../../scripts/lab/lab.ts";
import type { RttStats } from "../../scripts/lab/rtt.ts";
import { needs } from "../_permissions.ts";

const repo = fileURLToPath(new URL("../../", import.meta.url));
// The pyenv shim on PATH takes seconds to start inside the lab; Debian's python does not.
const PYTHON = "$(command -v /usr/bin/python3 || command -v python3)";
// runInLab boots User-Mode Linux.
const ignore = needs("read", "write", "env", "run");

Deno.test(
  "runInLab returns the command's exit code and exports the lab's addresses",
  { ignore },
  async () => {
    const failed = await runInLab({ command: "exit 7", cwd: repo, output: "piped" });
    assert.equal(failed.code, 7);
    assert.equal(failed.timedOut, false);

    const ok = await runInLab({
      command: [
        "sh",
        "-c",
        'echo "$LAB $LAB_CLIENT_IP $LAB_PROXY_IP $LAB_PROXY_UPSTREAM_IP $LAB_SERVER_IP $PWD"; echo err >&2',
      ],
      cwd: repo,
      output: "piped",
    });
    assert.equal(ok.code, 0);
    assert.equal(
      ok.stdout,
      `1 10.10.1.1 10.10.1.2 10.10.2.1 10.10.2.2 ${repo.replace(/\/$/, "")}\n`,
    );
    assert.equal(ok.stderr, "err\n");
  },
);

Deno.test(
  "a working directory under /tmp, with the run directories in it, is seen and written from inside the lab",
  { ignore },
  async () => {
    const cwd = await Deno.makeTempDir({ dir: "/tmp", prefix: "flowsched-lab-cwd-" });
    try {
      await Deno.writeTextFile(`${cwd}/from-host.txt`, "host\n");
      const result = await runInLab({
        command:
          "cat from-host.txt && echo lab >from-lab.txt && deno eval 'console.log(Deno.cwd())'",
        cwd,
        workDir: `${cwd}/.lab`,
        output: "piped",
        timeoutSeconds: 120,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `host\n${cwd}\n`);
      assert.equal(await Deno.readTextFile(`${cwd}/from-lab.txt`), "lab\n");
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  },
);

Deno.test(
  "an SCTP association carries a message from the client namespace to the server namespace through the proxy",
  { ignore },
  async () => {
    const server = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
s.bind(("10.10.2.2", 9000))
s.listen(1)
c, _ = s.accept()
c.sendall(c.recv(100).upper())
c.close()`;
    const client = `
import socket, time
for _ in range(200):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    try:
        s.connect(("10.10.2.2", 9000))
        break
    except ConnectionRefusedError:
        s.close()
        time.sleep(0.05)
s.sendall(b"hello over sctp")
print(s.recv(100).decode())`;
    const result = await runInLab({
      command: `PY=${PYTHON}
ip netns exec server "$PY" -c '${server}' &
ip netns exec client "$PY" -c '${client}' && wait $!`,
      cwd: repo,
      output: "piped",
      timeoutSeconds: 120,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "HELLO OVER SCTP\n");
  },
);

Deno.test(
  "a cp link with delay=50ms adds about 100 ms to the client-proxy round trip but not to proxy-server",
  { ignore },
  async () => {
    const rtt = "deno run --allow-net scripts/lab/rtt.ts";
    const result = await runInLab({
      command: `ip netns exec proxy ${rtt} serve 10.10.1.2 7000 &
ip netns exec server ${rtt} serve 10.10.2.2 7000 &
echo "cp $(ip netns exec client ${rtt} probe 10.10.1.2 7000 10)"
echo "ps $(ip netns exec proxy ${rtt} probe 10.10.2.2 7000 10)"`,
      links: ["cp:delay=50ms"],
      cwd: repo,
      output: "piped",
      timeoutSeconds: 120,
    });
    assert.equal(result.code, 0, result.stderr);
    const rtts = Object.fromEntries(
      result.stdout!.trim().split("\n").map((line) => {
        const [link, json] = line.split(" ");
        return [link, JSON.parse(json) as RttStats];
      }),
    );
    const added = rtts.cp.medianMs - rtts.ps.medianMs;
    assert.ok(rtts.ps.medianMs < 50, `proxy-server RTT ${rtts.ps.medianMs} ms should be undelayed`);
    assert.ok(added > 80 && added < 400, `delay=50ms added ${added} ms to the RTT, not ~100 ms`);
  },
);

Deno.test("a bad --link spec is rejected with an error naming the bad part, before booting", {
  ignore: needs("run"),
}, async () => {
  const cases: [string, RegExp][] = [
    ["cp:delya=50ms", /unknown key "delya"/],
    ["xy:delay=50ms", /unknown link "xy"/],
    ["cp:delay=50", /bad value "50" for key "delay"/],
    ["cp:loss=150%", /over 100%/],
    ["cp:jitter=5ms", /"jitter" needs "delay"/],
    ["cp", /no settings/],
    ["ps2:delay=5ms", /unknown link "ps2".*more servers need --servers N/],
  ];
  for (const [spec, message] of cases) {
    assert.throws(
      () => parseLinkSpec(spec),
      (e) => e instanceof LabError && message.test(e.message),
    );
  }
  await assert.rejects(
    runInLab({ command: "true", links: ["cp:delay=1ms", "cp:loss=1%"] }),
    /link cp given twice/,
  );
  assert.equal(parseLinkSpec("ps3:rate=10mbit", 3).link, "ps3");
  assert.throws(() => parseLinkSpec("ps4:rate=10mbit", 3), /ps2\.\.ps3 = proxy-server2\.\.3/);
  await assert.rejects(
    runInLab({ command: "true", servers: 9 }),
    /bad server count 9: give 1 to 8/,
  );

  const cli = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=lab", "scripts/lab.ts", "--link", "ps:rate=fast", "--", "true"],
    cwd: repo,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(cli.code, 2);
  assert.match(
    new TextDecoder().decode(cli.stderr),
    /bad --link "ps:rate=fast": bad value "fast" for key "rate"/,
  );
});

Deno.test(
  "--servers 3 gives three server namespaces, each on its own link, reachable from the client",
  { ignore },
  async () => {
    const result = await runInLab({
      command: `echo "$LAB_SERVERS|$LAB_SERVER_IPS|$LAB_SERVER_NAMESPACES"
for ip in $LAB_SERVER_IPS; do ip netns exec client ip route get "$ip" | head -n 1; done
tc -n server3 qdisc show dev ps3-server3 | head -n 1`,
      servers: 3,
      links: ["ps3:delay=7ms"],
      cwd: repo,
      output: "piped",
      timeoutSeconds: 120,
    });
    assert.equal(result.code, 0, result.stderr);
    const [env, ...rest] = result.stdout!.trim().split("\n");
    assert.equal(env, "3|10.10.2.2 10.10.3.2 10.10.4.2|server server2 server3");
    for (const ip of ["10.10.2.2", "10.10.3.2", "10.10.4.2"]) {
      assert.ok(rest.some((line) => line.startsWith(`${ip} via 10.10.1.2`)), rest.join("\n"));
    }
    assert.match(rest.at(-1)!, /netem .*delay 7ms/);
  },
);

Deno.test("link shapes become netem and tbf arguments", () => {
  assert.deepEqual(tcArgs({ delay: "25ms", jitter: "5ms", loss: "1%", rate: "10mbit" }), {
    netem: "delay 25ms 5ms loss 1%",
    tbf: "rate 10mbit burst 12500 latency 50ms",
  });
  assert.deepEqual(tcArgs({ rate: "1mbit", queue: "200ms" }), {
    netem: "",
    tbf: "rate 1mbit burst 3200 latency 200ms",
  });
});
