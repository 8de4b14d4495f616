/**
 * Several proxies in one process, one per thread: the first on the event
 * loop, the others in Workers, all listening on one port (`SO_REUSEPORT`,
 * the kernel spreads client connections over them) and sharing one cache
 * directory, which the cache's locks and watcher already make safe. Each is a
 * whole proxy: its own isolate, upstream associations, cache index and
 * memory copies, and stats (the stats endpoint answers for the thread that
 * took the connection).
 *
 * @module
 */

import { type FlowProxy, type ProxyOptions, startProxy } from "./proxy.ts";

/** Messages to a proxy thread. */
type ToThread = { type: "start"; options: ProxyOptions } | { type: "close" };
/** Messages from a proxy thread. */
type FromThread = { type: "ready" } | { type: "closed" } | { type: "failed"; message: string };

/** Proxies running on `count` threads of this process. */
export interface ProxyThreads {
  /** The proxy on the main thread (its port is everyone's). */
  readonly main: FlowProxy;
  /** Threads in all, the main one included. */
  readonly count: number;
  /** Closes every thread's proxy. */
  close(): Promise<void>;
}

/**
 * Starts `count` proxies on one port: this thread's, then `count - 1` in
 * Workers. Returns once every one listens; if one fails to start, the others
 * are closed and its error is thrown.
 */
export async function startProxyThreads(
  options: ProxyOptions,
  count: number,
): Promise<ProxyThreads> {
  const main = await startProxy({ ...options, reusePort: count > 1 });
  const workers: Worker[] = [];
  const closeAll = async () => {
    await Promise.all(workers.map((worker) => ask(worker, { type: "close" }).catch(() => {})));
    for (const worker of workers) worker.terminate();
    await main.close();
  };
  try {
    const listen = `${
      main.hostname.includes(":") ? `[${main.hostname}]` : main.hostname
    }:${main.port}`;
    for (let i = 1; i < count; i++) {
      const worker = new Worker(new URL("./thread_worker.ts", import.meta.url), {
        type: "module",
        name: `proxy-${i}`,
      });
      workers.push(worker);
      await ask(worker, { type: "start", options: { ...options, listen, reusePort: true } });
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return { main, count, close: () => closing ??= closeAll() };
}

/** Sends `message` and waits for the thread's answer; a failure becomes an Error. */
function ask(worker: Worker, message: ToThread): Promise<void> {
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }: MessageEvent<FromThread>) => {
      if (data.type === "failed") reject(new Error(data.message));
      else resolve();
    };
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(`proxy thread failed: ${event.message}`));
    };
    worker.postMessage(message);
  });
}

export type { FromThread, ToThread };
