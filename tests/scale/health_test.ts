import assert from "node:assert/strict";
import { HealthChecker, type ProbeFailure, type Prober } from "../../scripts/scale/health.ts";
import { IpvsService, parseStats } from "../../scripts/scale/ipvs.ts";

/** A prober whose answers the test sets per server. */
class FakeProber implements Prober {
  answers = new Map<string, ProbeFailure | undefined>();
  probe(real: string) {
    return Promise.resolve(this.answers.get(real));
  }
  close() {
    return Promise.resolve();
  }
}

function setup(reals: string[], fall = 3) {
  const calls: string[] = [];
  const service = new IpvsService({
    virtual: "10.10.9.9:7100",
    ipvsadm: (args) => {
      calls.push(args.join(" "));
      return Promise.resolve("");
    },
  });
  const prober = new FakeProber();
  const events: string[] = [];
  const checker = new HealthChecker({
    service,
    reals,
    fall,
    prober: () => prober,
    onChange: ({ real, state }) => events.push(`${real} ${state}`),
  });
  return { calls, prober, events, checker };
}

const A = "10.0.0.1:7100";
const B = "10.0.0.2:7100";
const refused = { reason: "connection refused", timedOut: false };
const slow = { reason: "no answer in 2000 ms", timedOut: true };

Deno.test("servers join the service when they answer; a refused probe takes one out at once", async () => {
  const { calls, prober, events, checker } = setup([A, B]);
  prober.answers.set(B, refused);
  await checker.checkOnce();
  assert.deepEqual([...checker.inService], [A]);
  assert.deepEqual(events, [`${A} up`, `${B} not-ready`]);
  assert.deepEqual(calls, [`-a --sctp-service 10.10.9.9:7100 -r ${A} -m -w 1`]);

  prober.answers.set(B, undefined);
  prober.answers.set(A, refused);
  await checker.checkOnce();
  assert.deepEqual([...checker.inService], [B]);
  assert.deepEqual(events.slice(2), [`${A} down`, `${B} up`]);
  assert.ok(calls.includes(`-d --sctp-service 10.10.9.9:7100 -r ${A}`));

  // Out and still failing: no more events, no more table changes.
  const before = calls.length;
  await checker.checkOnce();
  assert.equal(calls.length, before);
  assert.equal(events.length, 4);
});

Deno.test("timeouts take `fall` rounds in a row; an answer in between starts the count again", async () => {
  const { prober, checker } = setup([A], 3);
  await checker.checkOnce();
  prober.answers.set(A, slow);
  await checker.checkOnce();
  await checker.checkOnce();
  prober.answers.set(A, undefined);
  await checker.checkOnce();
  prober.answers.set(A, slow);
  await checker.checkOnce();
  await checker.checkOnce();
  assert.deepEqual([...checker.inService], [A], "two timeouts in a row are not enough");
  await checker.checkOnce();
  assert.deepEqual([...checker.inService], [], "the third is");
});

Deno.test("ipvsadm's stats listing gives each real server's associations", () => {
  const listing = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
SCTP  10.10.9.9:7100                     6     1402     2713   103232  3873232
  -> 10.10.2.2:7100                      2      467      904    34410  1291077
  -> 10.10.3.2:7100                      3      467      904    34410  1291077
`;
  assert.deepEqual(
    parseStats(listing),
    new Map([["10.10.2.2:7100", { associations: 2 }], ["10.10.3.2:7100", { associations: 3 }]]),
  );
});

Deno.test("a virtual service that exists already is refused with the command that removes it", async () => {
  const service = new IpvsService({
    virtual: "10.10.9.9:7100",
    ipvsadm: () => Promise.reject(new Error("ipvsadm -A ...: Service already exists")),
  });
  await assert.rejects(
    service.create(),
    /exists already .*ipvsadm -D --sctp-service 10\.10\.9\.9:7100/,
  );
  assert.throws(
    () => new IpvsService({ virtual: "10.10.9.9" }),
    /virtual service "10.10.9.9" is not an IPv4 address:port/,
  );
});

Deno.test("--replace takes over a virtual service left behind: it is removed, then created again", async () => {
  const calls: string[] = [];
  let exists = true;
  const service = new IpvsService({
    virtual: "10.10.9.9:7100",
    ipvsadm: (args) => {
      calls.push(args[0]);
      if (args[0] === "-A" && exists) return Promise.reject(new Error("Service already exists"));
      if (args[0] === "-D") exists = false;
      return Promise.resolve("");
    },
  });
  await service.create(true);
  assert.deepEqual(calls, ["-A", "-D", "-A"]);
});

Deno.test("a success on an association lost meanwhile does not put a server back", async () => {
  const events: string[] = [];
  let answers: "plain" | "lost-during" = "plain";
  const checker = new HealthChecker({
    service: new IpvsService({ virtual: "10.10.9.9:7100", ipvsadm: () => Promise.resolve("") }),
    reals: [A],
    prober: (onLost) => ({
      probe: async (real) => {
        // The server dies while this probe's (older) answer is on its way.
        if (answers === "lost-during") onLost(real, "the server closed the association");
        await Promise.resolve();
        return undefined;
      },
      close: () => Promise.resolve(),
    }),
    onChange: ({ real, state }) => events.push(`${real} ${state}`),
  });
  await checker.checkOnce();
  answers = "lost-during";
  await checker.checkOnce();
  assert.deepEqual(events, [`${A} up`, `${A} down`]);
  assert.deepEqual([...checker.inService], []);
});
