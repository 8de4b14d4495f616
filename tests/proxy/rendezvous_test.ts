/**
 * Properties of routing by path: every path has one server while all are up,
 * the servers share the paths evenly, and a server going away moves only its
 * own paths (and coming back, exactly those).
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { createLogger } from "../../cli/log.ts";
import { boundedChoice, highestWeight, pathHash, serverSeed } from "../../proxy/rendezvous.ts";
import { UpstreamSet } from "../../proxy/upstreams.ts";

/** Three distinct servers, named as the set names them. */
const threeServers = fc.uniqueArray(
  fc.record({
    transport: fc.constantFrom("tcpmux", "kernel", "usrsctp"),
    host: fc.constantFrom("127.0.0.1", "10.0.0.2", "10.0.0.3", "server.example"),
    port: fc.integer({ min: 1, max: 65535 }),
  }).map(({ transport, host, port }) => `${transport}://${host}:${port}`),
  { minLength: 3, maxLength: 3 },
);

/** 3000 distinct paths of one of a few shapes, under a random prefix. */
const paths = fc.tuple(
  fc.stringMatching(/^[a-z0-9]{0,8}$/),
  fc.constantFrom(
    (prefix: string, i: number) => `/${prefix}/d${i % 10}/f${String(i).padStart(4, "0")}.bin`,
    (prefix: string, i: number) => `/${prefix}${i}.html`,
    (prefix: string, i: number) => `/img/${i}/${prefix}.png`,
  ),
).map(([prefix, shape]) => Array.from({ length: 3000 }, (_, i) => shape(prefix, i)));

/** For each path, the index of the server it goes to while `up(i)` says which are up. */
function route(names: string[], list: string[], up?: (index: number) => boolean): number[] {
  const seeds = names.map(serverSeed);
  return list.map((path) => highestWeight(seeds, pathHash(path), up));
}

Deno.test("a path goes to the same server every time, whatever the order the servers are given in", () => {
  fc.assert(
    fc.property(threeServers, paths, (names, list) => {
      const first = route(names, list).map((i) => names[i]);
      assert.deepEqual(route(names, list).map((i) => names[i]), first);
      const reversed = [...names].reverse();
      assert.deepEqual(route(reversed, list).map((i) => reversed[i]), first);
    }),
    { numRuns: 100 },
  );
});

Deno.test("three servers each get 25 to 42 % of 3000 paths", () => {
  fc.assert(
    fc.property(threeServers, paths, (names, list) => {
      const counts = [0, 0, 0];
      for (const index of route(names, list)) counts[index]++;
      for (const count of counts) {
        assert.ok(count >= 750 && count <= 1260, `shares ${counts.join(" / ")} of 3000`);
      }
    }),
    { numRuns: 100 },
  );
});

Deno.test("a server going away moves only its paths, spread over the others, and coming back exactly those back", () => {
  fc.assert(
    fc.property(threeServers, paths, fc.integer({ min: 0, max: 2 }), (names, list, gone) => {
      const before = route(names, list);
      const during = route(names, list, (i) => i !== gone);
      const moved = new Set<number>();
      before.forEach((server, p) => {
        if (server === gone) {
          assert.notEqual(during[p], gone);
          moved.add(during[p]);
        } else assert.equal(during[p], server, `${list[p]} moved though its server is up`);
      });
      assert.equal(moved.size, 2, "the gone server's paths went to both others");
      assert.deepEqual(route(names, list, () => true), before);
    }),
    { numRuns: 100 },
  );
});

Deno.test("a query string does not move a path", () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), (path, query) => {
      assert.equal(
        pathHash(`${path.replaceAll("?", "")}?${query}`),
        pathHash(path.replaceAll("?", "")),
      );
    }),
  );
});

Deno.test("an upstream set sends everything to a single server, and a path to its highest-weight server while none is up", () => {
  assert.equal(highestWeight([serverSeed("tcpmux://a:1")], pathHash("/x"), () => false), -1);
  const log = createLogger("silent", "test");
  const single = new UpstreamSet({ urls: ["tcpmux://127.0.0.1:9"], log });
  assert.equal(single.pick("/anything"), single.upstreams[0]);
  // Nothing is up before start(): a request waits for its highest-weight server.
  const urls = ["tcpmux://127.0.0.1:9001", "tcpmux://127.0.0.1:9002", "tcpmux://127.0.0.1:9003"];
  const set = new UpstreamSet({ urls, log });
  for (const path of ["/", "/a.html", "/img/1.png", "/img/1.png?v=2"]) {
    assert.equal(set.pick(path).url, urls[route(urls, [path])[0]], path);
  }
});

Deno.test("an upstream set refuses no server, and two URLs naming the same server", () => {
  const log = createLogger("silent", "test");
  assert.throws(() => new UpstreamSet({ urls: [], log }), /no upstream server given/);
  assert.throws(
    () =>
      new UpstreamSet({
        urls: [
          "tcpmux://127.0.0.1:9001",
          "tcpmux://127.0.0.1:9002",
          "tcpmux://127.0.0.1:9001/?udp=9",
        ],
        log,
      }),
    (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(
        error.message,
        /"tcpmux:\/\/127.0.0.1:9001\/\?udp=9" names the same server as "tcpmux:\/\/127.0.0.1:9001"/,
      );
      return true;
    },
  );
  assert.throws(() => new UpstreamSet({ urls: ["quic://127.0.0.1:1"], log }), /unknown transport/);
});

Deno.test("bounded loads: a path keeps its server while that server is under the bound, and no pick is over it", () => {
  fc.assert(
    fc.property(
      threeServers,
      fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 3, maxLength: 3 }),
      fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      fc.integer({ min: 100, max: 300 }),
      fc.string(),
      (names, loads, up, factor, path) => {
        const seeds = names.map(serverSeed);
        const hash = pathHash(`/${path}`);
        const isUp = (i: number) => up[i];
        const choice = boundedChoice(seeds, hash, isUp, (i) => loads[i], factor);
        const upLoads = loads.filter((_, i) => up[i]);
        if (upLoads.length === 0) return choice === -1;
        const total = upLoads.reduce((a, b) => a + b, 0);
        const limit = Math.ceil((factor / 100) * (total + 1) / upLoads.length);
        const own = highestWeight(seeds, hash, isUp);
        assert.ok(up[choice], "an up server");
        assert.ok(loads[choice] < limit, `load ${loads[choice]} under the bound ${limit}`);
        if (loads[own] < limit) assert.equal(choice, own, "its own server while under the bound");
        return true;
      },
    ),
  );
});

Deno.test("a hash balance factor below 100 is refused with what is allowed", () => {
  const log = createLogger("silent", "test");
  const urls = ["tcpmux://127.0.0.1:9001", "tcpmux://127.0.0.1:9002"];
  assert.throws(
    () => new UpstreamSet({ urls, log, balanceFactor: 50 }),
    /hash balance factor must be 0 \(off\) or a percentage of at least 100, got 50/,
  );
});
