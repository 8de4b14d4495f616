/**
 * The kernel transport's tests that need kernel SCTP, so they run only inside
 * the User-Mode Linux lab (`kernel_test.ts` starts them there; the name does
 * not end in `_test.ts`, so the host's test run skips this file). By hand:
 *
 *     deno task lab -- deno test -P=test --no-check tests/transport/kernel_in_lab.ts
 */

import assert from "node:assert/strict";
import { connect, listen } from "../../mod.ts";
import type { AssociationOptions, SharedAssociation } from "../../transport/types.ts";
import { conformanceSuite } from "./_conformance.ts";
import { assertWorkersSendWhole } from "./_workers_sending.ts";
import { C, check, getIntOption, libc } from "../../ffi/libc.ts";
import { SCTP, sctp_sack_info } from "../../ffi/libsctp.ts";
import { StructBuffer } from "../../ffi/struct.ts";

conformanceSuite({ transport: "kernel", host: "127.0.0.1" });

const HOST = "127.0.0.1";

async function pair(options?: { sendBufferSize?: number }) {
  const listener = listen("kernel", HOST, 0);
  const accepted = listener.accept();
  const client = await connect("kernel", HOST, listener.port, options);
  return { listener, client, server: await accepted };
}

Deno.test("kernel: whole messages sent at once by several Workers never interleave", async () => {
  const { listener, client, server } = await pair();
  try {
    await assertWorkersSendWhole({
      driver: { module: "kernel.ts", name: "kernelDriver" },
      client,
      server,
      workers: 4,
      perWorker: 40,
      size: 256 * 1024,
    });
  } finally {
    await Promise.all([client.close(), server.close()]);
    await listener.close();
  }
});

Deno.test("kernel: a 256 KiB message goes through a socket asked for a 16 KiB send buffer", async () => {
  const { listener, client, server } = await pair({ sendBufferSize: 16 * 1024 });
  try {
    const data = new Uint8Array(256 * 1024).map((_, i) => i * 7);
    await client.send(1, data);
    const message = await server.receive();
    assert.equal(message?.stream, 1);
    assert.deepEqual(message?.data, data);
  } finally {
    await Promise.all([client.close(), server.close()]);
    await listener.close();
  }
});

/** SO_RCVBUF of `fd`. */
function receiveBuffer(fd: number): number {
  return getIntOption(fd, C.SOL_SOCKET, C.SO_RCVBUF, "getsockopt(SO_RCVBUF)");
}

Deno.test("kernel: a receive buffer asked for beyond net.core.rmem_max leaves SCTP's larger default", async () => {
  const probe = libc().socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_SCTP);
  const fallback = receiveBuffer(probe);
  libc().close(probe);
  // The default 4 MiB: the lab's 212,992-byte rmem_max caps it at 425,984 bytes, below `fallback`.
  const { listener, client, server } = await pair();
  try {
    for (const association of [client, server] as SharedAssociation[]) {
      const fd = Number(association.handle().socket);
      try {
        assert.ok(receiveBuffer(fd) >= fallback, `SO_RCVBUF ${receiveBuffer(fd)} < ${fallback}`);
      } finally {
        association.releaseHandle();
      }
    }
  } finally {
    await Promise.all([client.close(), server.close()]);
    await listener.close();
  }
});

/** [delay in ms, frequency] of an association's delayed acknowledgements, as the kernel reports them. */
function delayedSack(association: SharedAssociation): [number, number] {
  const fd = Number(association.handle().socket);
  try {
    const sack = new StructBuffer(sctp_sack_info);
    const length = new Uint32Array([sctp_sack_info.size]);
    check(
      "getsockopt(SCTP_DELAYED_SACK)",
      libc().getsockopt(
        fd,
        SCTP.SOL_SCTP,
        SCTP.SCTP_DELAYED_SACK,
        sack.bytes,
        new Uint8Array(length.buffer),
      ),
    );
    return [sack.get("sack_delay"), sack.get("sack_freq")];
  } finally {
    association.releaseHandle();
  }
}

Deno.test("kernel: sackFrequency and sackDelay set a client's and a listener's associations, whose messages still arrive whole", async () => {
  const cases: [AssociationOptions, AssociationOptions, [number, number], [number, number]][] = [
    // The stack's own: net.sctp.sack_timeout (200 ms), every second packet.
    [{}, {}, [200, 2], [200, 2]],
    // Delays the kernel keeps in clock ticks: multiples of 20 ms read back as set at HZ 100, 250 and 1000.
    [{ sackFrequency: 3, sackDelay: 60 }, { sackFrequency: 4, sackDelay: 20 }, [60, 3], [20, 4]],
    [{ sackFrequency: 8 }, { sackDelay: 500 }, [200, 8], [500, 2]],
    // Linux: every packet acknowledged at once, so no delay.
    [{ sackFrequency: 1, sackDelay: 40 }, { sackDelay: 40 }, [0, 1], [40, 2]],
  ];
  for (const [clientOptions, listenerOptions, clientSack, serverSack] of cases) {
    const listener = listen("kernel", HOST, 0, listenerOptions);
    const accepted = listener.accept();
    const client = await connect("kernel", HOST, listener.port, clientOptions);
    const server = await accepted;
    try {
      const what = JSON.stringify([clientOptions, listenerOptions]);
      assert.deepEqual(delayedSack(client as SharedAssociation), clientSack, `client ${what}`);
      assert.deepEqual(delayedSack(server as SharedAssociation), serverSack, `accepted ${what}`);
      const data = new Uint8Array(300_000).map((_, i) => i * 11);
      await client.send(2, data);
      const message = await server.receive();
      assert.deepEqual(message?.data, data, what);
    } finally {
      await Promise.all([client.close(), server.close()]);
      await listener.close();
    }
  }
});

Deno.test("kernel: pathInfo reports the round-trip time in milliseconds, cwnd and MTU", async () => {
  const tc = (...args: string[]) => new Deno.Command("tc", { args }).output();
  // 20 ms each way on the loopback: a 40 ms round trip (4 ticks at HZ=100).
  const added = await tc("qdisc", "add", "dev", "lo", "root", "netem", "delay", "20ms");
  assert.equal(added.code, 0, new TextDecoder().decode(added.stderr));
  const { listener, client, server } = await pair();
  try {
    for (let i = 0; i < 10; i++) {
      await client.send(0, new Uint8Array(100));
      await server.receive();
    }
    const info = client.pathInfo();
    assert.ok(info.rttMs >= 30 && info.rttMs <= 60, `rttMs ${info.rttMs}, expected about 40`);
    assert.ok(info.cwndBytes >= 1500, `cwndBytes ${info.cwndBytes}`);
    assert.equal(info.mtu, 1500);
  } finally {
    await tc("qdisc", "del", "dev", "lo", "root");
    await Promise.all([client.close(), server.close()]);
    await listener.close();
  }
});

const DATA_PATHS = ["event-loop", "workers"] as const;

Deno.test("kernel: a refused or unroutable connect fails at once with the same error on either data path", async () => {
  const probe = listen("kernel", HOST, 0);
  const port = probe.port;
  await probe.close();
  // The lab's root namespace has no route beyond the loopback.
  const cases = [
    { host: HOST, port, message: "connect: Connection refused (errno 111)" },
    { host: "192.0.2.1", port: 9, message: "connect: Network is unreachable (errno 101)" },
  ];
  for (const { host, port, message } of cases) {
    for (const dataPath of DATA_PATHS) {
      await assert.rejects(connect("kernel", host, port, { dataPath }), {
        name: "NativeError",
        message,
      });
    }
  }
});

async function iptables(...args: string[]) {
  const { code, stderr } = await new Deno.Command("iptables-legacy", { args }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

Deno.test("kernel: an INIT nobody answers fails after 10 s with the diagnosis on either data path, and the event loop runs meanwhile", async () => {
  // 127.0.0.99 drops SCTP for this test, as a path that drops IP protocol 132 does.
  const silent = "127.0.0.99";
  const rule = ["OUTPUT", "-d", silent, "-p", "132", "-j", "DROP"];
  await iptables("-A", ...rule);
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 100);
  const start = performance.now();
  try {
    await Promise.all(
      DATA_PATHS.map((dataPath) =>
        assert.rejects(connect("kernel", silent, 9, { dataPath }), (error: Error) => {
          assert.match(
            error.message,
            /^kernel SCTP: no answer from 127\.0\.0\.99:9 within 10 s: the server is down, or the path drops SCTP/,
            dataPath,
          );
          return true;
        })
      ),
    );
  } finally {
    clearInterval(ticker);
    await iptables("-D", ...rule);
  }
  const took = performance.now() - start;
  assert.ok(took >= 9_500 && took < 15_000, `gave up after ${took} ms`);
  assert.ok(ticks >= 50, `the event loop ran only ${ticks} timer ticks while connecting`);
});
