/**
 * Bodies handed to a client as they arrive instead of from the cache (pass
 * through, or too large to store): their upstream request is aborted when the
 * body stops moving for a while, so a stalled server or a client that stopped
 * reading cannot hold a request on the association for ever.
 *
 * @module
 */

/** How a guarded body is watched. */
export interface GuardOptions {
  /** ms without a chunk moving (the client reads, the server sends) before `abort` runs. */
  idleMs: number;
  /** Aborts the upstream request; its body then errors. */
  abort: () => void;
  /** Sees each chunk as it passes. */
  onChunk?: (chunk: Uint8Array) => void;
  /** Runs once, when the body ended, failed or was cancelled. */
  onEnd?: () => void;
}

/** `body`, read only as fast as its consumer reads, aborted after `idleMs` without progress. */
export function guardBody(
  body: ReadableStream<Uint8Array>,
  options: GuardOptions,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(options.abort, options.idleMs);
  };
  const end = () => {
    clearTimeout(timer);
    if (!ended) {
      ended = true;
      options.onEnd?.();
    }
  };
  arm();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) {
          end();
          controller.close();
          return;
        }
        arm();
        options.onChunk?.(value);
        controller.enqueue(value);
      } catch (error) {
        end();
        controller.error(error);
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
