/**
 * One proxy thread (see `threads.ts`): starts a proxy with the options it is
 * sent, answers `ready`, and closes it when told.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { type FlowProxy, startProxy } from "./proxy.ts";
import type { FromThread, ToThread } from "./threads.ts";

let proxy: FlowProxy | undefined;

self.onmessage = async ({ data }: MessageEvent<ToThread>) => {
  const answer = (message: FromThread) => self.postMessage(message);
  try {
    if (data.type === "start") {
      proxy = await startProxy(data.options);
      answer({ type: "ready" });
    } else {
      await proxy?.close();
      answer({ type: "closed" });
      self.close();
    }
  } catch (error) {
    answer({ type: "failed", message: (error as Error).message });
  }
};
