/**
 * A ping over TCP for the lab (which has no `ping`): one byte out, one byte
 * echoed back, timed.
 *
 *     deno run --allow-net scripts/lab/rtt.ts serve HOST PORT     # echo server
 *     deno run --allow-net scripts/lab/rtt.ts probe HOST PORT [N] # prints JSON
 *
 * `probe` retries the connection for up to 10 s (the server may still be
 * starting), then prints `{"minMs":…,"medianMs":…,"maxMs":…,"samples":N}`.
 *
 * @module
 */

/** Round-trip times in milliseconds. */
export interface RttStats {
  minMs: number;
  medianMs: number;
  maxMs: number;
  samples: number;
}

/** Echoes every byte received on HOST:PORT, for {@link probe}. Runs until killed. */
export async function serve(hostname: string, port: number): Promise<void> {
  for await (const conn of Deno.listen({ hostname, port })) {
    conn.setNoDelay(true);
    conn.readable.pipeTo(conn.writable).catch(() => {});
  }
}

/** Measures `count` one-byte round trips to an echo server started by {@link serve}. */
export async function probe(hostname: string, port: number, count = 10): Promise<RttStats> {
  let conn: Deno.TcpConn | undefined;
  for (const deadline = Date.now() + 10_000; !conn;) {
    try {
      conn = await Deno.connect({ hostname, port });
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  conn.setNoDelay(true);
  const byte = new Uint8Array(1);
  const times: number[] = [];
  for (let i = 0; i <= count; i++) { // the first round trip warms up and is not counted
    const t0 = performance.now();
    await conn.write(byte);
    if ((await conn.read(byte)) !== 1) throw new Error("echo server closed the connection");
    if (i > 0) times.push(performance.now() - t0);
  }
  conn.close();
  times.sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    minMs: round(times[0]),
    medianMs: round(times[Math.floor(times.length / 2)]),
    maxMs: round(times[times.length - 1]),
    samples: times.length,
  };
}

if (import.meta.main) {
  const [mode, host, port, count] = Deno.args;
  if (mode === "serve" && host && port) await serve(host, Number(port));
  else if (mode === "probe" && host && port) {
    console.log(JSON.stringify(await probe(host, Number(port), count ? Number(count) : 10)));
  } else {
    console.error("usage: rtt.ts serve HOST PORT | rtt.ts probe HOST PORT [COUNT]");
    Deno.exit(2);
  }
}
