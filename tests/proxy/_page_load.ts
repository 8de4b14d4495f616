/**
 * A browser-like page loader for measurements: fetches a page, then what its
 * HTML embeds, then what its CSS references, with at most `parallel`
 * requests at a time (browsers open 6 connections per host). Page-load time
 * is from the first request until the last resource's last byte.
 *
 *     deno run -P=test --no-check tests/proxy/_page_load.ts http://10.10.1.2:8080/p0/index.html ...
 *
 * Loads the given pages one after the other; prints one JSON line per page:
 * {url, ms, resources, bytes, failed}.
 */

import { cssUrls, htmlResourceSink } from "../../proxy/prefetch.ts";

/** Loads one page and everything it embeds; returns the timing. */
export async function loadPage(base: string, page: string, parallel = 6) {
  const origin = new URL(base).origin;
  const seen = new Set<string>([page]);
  const queue: string[] = [];
  let running = 0;
  let bytes = 0;
  let failed = 0;
  let resources = 0;
  const started = performance.now();
  const { promise, resolve } = Promise.withResolvers<void>();

  const enqueue = (urls: URL[]) => {
    for (const url of urls) {
      if (url.origin !== origin || seen.has(url.pathname)) continue;
      seen.add(url.pathname);
      queue.push(url.pathname);
    }
    pump();
  };
  const fetchOne = async (path: string) => {
    const response = await fetch(origin + path);
    if (response.status !== 200) failed++;
    const type = response.headers.get("content-type") ?? "";
    const body = await response.bytes();
    bytes += body.byteLength;
    const url = new URL(path, origin);
    if (type.startsWith("text/html")) {
      const sink = htmlResourceSink(url, enqueue);
      sink.write(body);
      sink.end();
    } else if (type.startsWith("text/css")) {
      enqueue(cssUrls(new TextDecoder().decode(body)).map((u) => new URL(u, url)));
    }
  };
  const pump = () => {
    while (running < parallel && queue.length > 0) {
      const path = queue.shift()!;
      running++;
      if (path !== page) resources++;
      fetchOne(path).catch(() => failed++).finally(() => {
        running--;
        pump();
        if (running === 0 && queue.length === 0) resolve();
      });
    }
  };
  queue.push(page);
  pump();
  await promise;
  return { page, ms: performance.now() - started, resources, bytes, failed };
}

if (import.meta.main) {
  for (const arg of Deno.args) {
    const url = new URL(arg);
    const load = await loadPage(url.origin, url.pathname);
    console.log(JSON.stringify({ url: arg, ...load }));
  }
}
