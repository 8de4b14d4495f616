/**
 * The proxy's one association to the server: many requests over N streams,
 * with a watchdog and reconnection.
 *
 * A dead server does not always say so: a killed usrsctp process sends no
 * ABORT, and a receiver with nothing to retransmit notices nothing for tens of
 * seconds. So a watchdog watches progress. When requests are in flight and no
 * response bytes arrived for `stallTimeoutMs`:
 *
 * - over usrsctp, it checks whether the server's UDP encapsulation port still
 *   exists (see `liveness.ts`); a refused probe means the process is gone;
 * - on every transport, it sends a tiny request (`HEAD /`, which every policy
 *   schedules quickly); no answer within `probeTimeoutMs` means the server
 *   hangs. That timeout must exceed SCTP's retransmission stalls (RTO.min is
 *   1 s and doubles), or a lost packet would kill a healthy association.
 *
 * Then the association is aborted, every request in flight fails at once
 * (502), and reconnection starts with exponential backoff (100 ms doubling
 * to 5 s): a server that comes back is tried again at most 5 s later.
 *
 * @module
 */

import { type FlowResponse, parseServerUrl, type ServerAddress } from "../protocol/client.ts";
import { FlowClient } from "../protocol/client.ts";
import type { Logger } from "../cli/log.ts";
import { UdpLivenessProbe } from "./liveness.ts";
import type { UpstreamInfo } from "./stats.ts";
import type { DataPath } from "../transport/types.ts";

/** Upstream options. */
export interface UpstreamOptions {
  /** `<transport>://host:port` of the server. */
  url: string;
  /** Streams of the association. @default 8 */
  streams?: number;
  /** usrsctp: the server's UDP encapsulation port. @default 9899 */
  udpPort?: number;
  /** Where the association moves its messages. @default "event-loop" */
  dataPath?: DataPath;
  /** SCTP: see `AssociationOptions.sackFrequency`. @default 0 */
  sackFrequency?: number;
  /** SCTP: see `AssociationOptions.sackDelay`. @default 0 */
  sackDelay?: number;
  /** How long a request waits for the association before failing. @default 3000 */
  connectTimeoutMs?: number;
  /** Silence with requests in flight before a probe. @default 250 */
  stallTimeoutMs?: number;
  /** How long a probe request may take before the server counts as hung. @default 10000 */
  probeTimeoutMs?: number;
  /** Called when the association comes up (`true`) or goes down (`false`), not on `close()`. */
  onChange?: (up: boolean) => void;
  log: Logger;
}

/** The upstream failed or is unreachable: the client gets 502. */
export class UpstreamError extends Error {
  override name = "UpstreamError";
}

/** The upstream took too long: the client gets 504. */
export class UpstreamTimeout extends Error {
  override name = "UpstreamTimeout";
}

const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** A connect attempt that takes longer is abandoned (its late result is aborted). */
const CONNECT_ATTEMPT_MS = 2000;

/**
 * One association to the server, reconnected when it drops. Attempts back
 * off up to 5 s apart, which bounds how long a server that is reachable
 * again waits to be used.
 */
export class Upstream {
  readonly address: ServerAddress;
  readonly url: string;
  readonly #options: UpstreamOptions;
  readonly #log: Logger;
  #client: FlowClient | undefined;
  #state: UpstreamInfo["state"] = "connecting";
  #up = Promise.withResolvers<void>();
  #connects = 0;
  #disconnects = 0;
  #inFlight = 0;
  #requests = 0;
  #lastActivity = performance.now();
  #probing = false;
  #udpProbe: UdpLivenessProbe | undefined;
  #lastError: string | undefined;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #wake: (() => void) | undefined;

  constructor(options: UpstreamOptions) {
    this.#options = options;
    this.#log = options.log;
    this.url = options.url;
    this.address = parseServerUrl(options.url);
    this.#up.promise.catch(() => {});
  }

  /** The server's UDP port: the URL's `udp` key, else the `udpPort` option. */
  get #udpPort(): number {
    return this.address.udpPort ?? this.#options.udpPort ?? 9899;
  }

  /** Starts connecting; requests wait for the association. */
  start(): void {
    this.#connectLoop();
    const stall = this.#options.stallTimeoutMs ?? 250;
    this.#watchdog = setInterval(() => this.#checkProgress(), Math.max(10, stall / 3));
  }

  /** Whether the association is up: a request would be sent at once. */
  get up(): boolean {
    return this.#state === "up";
  }

  /** Requests sent whose response has not ended. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Current state for the stats endpoint. */
  info(): UpstreamInfo {
    return {
      url: this.url,
      state: this.#state,
      streams: this.#client?.association.outboundStreams ?? this.#options.streams ?? 8,
      connects: this.#connects,
      disconnects: this.#disconnects,
      inFlight: this.#inFlight,
      requests: this.#requests,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }

  /**
   * Sends a request and resolves with its response head. The body is
   * wrapped so that the watchdog sees progress and the in-flight count drops
   * when it ends. Throws UpstreamError (502) or UpstreamTimeout (504).
   */
  async request(
    path: string,
    options: { method?: "GET" | "HEAD"; signal: AbortSignal },
  ): Promise<FlowResponse> {
    const client = await this.#ready(options.signal);
    this.#requests++;
    this.#inFlight++;
    this.#touch();
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        this.#inFlight--;
      }
    };
    let response: FlowResponse;
    try {
      response = await client.request(path, { method: options.method, signal: options.signal });
    } catch (error) {
      finish();
      throw this.#translate(error, options.signal, client);
    }
    this.#touch();
    const translate = (error: unknown) => this.#translate(error, options.signal, client);
    const touch = () => this.#touch();
    // The body is read one of two ways, whichever the caller uses first: a stream made on
    // first use, or bytes() (one array, no stream; for small bodies).
    let stream: ReadableStream<Uint8Array> | undefined;
    return {
      id: response.id,
      status: response.status,
      headers: response.headers,
      stream: response.stream,
      get body() {
        stream ??= watchedBody(response.body, { touch, finish, translate });
        return stream;
      },
      bytes: async () => {
        if (stream) return await new Response(stream).bytes();
        try {
          return await response.bytes();
        } catch (error) {
          throw translate(error);
        } finally {
          touch();
          finish();
        }
      },
    };
  }

  /** Closes the association and stops reconnecting. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#state = "closed";
    clearInterval(this.#watchdog);
    this.#wake?.();
    this.#up.reject(new UpstreamError("the proxy is closing"));
    const client = this.#client;
    this.#client = undefined;
    this.#udpProbe?.close();
    await client?.association.abort().catch(() => {});
    await client?.close().catch(() => {});
  }

  #touch() {
    this.#lastActivity = performance.now();
  }

  #translate(error: unknown, signal: AbortSignal, client: FlowClient): Error {
    if (signal.aborted) {
      return new UpstreamTimeout(`no complete answer from ${this.url} in time`);
    }
    if (client !== this.#client || this.#state !== "up") {
      return new UpstreamError(`the association to ${this.url} failed: ${errorText(error)}`);
    }
    // A reset concerns one response; anything else means the association died
    // (the client fails every request then, and refuses new ones).
    if (!/reset by the server|cancelled/.test(errorText(error))) this.#markDown(client, error);
    return new UpstreamError(`upstream ${this.url} failed: ${errorText(error)}`);
  }

  async #ready(signal: AbortSignal): Promise<FlowClient> {
    if (this.#client && this.#state === "up") return this.#client;
    if (this.#closed) throw new UpstreamError("the proxy is closing");
    const wait = this.#options.connectTimeoutMs ?? 3000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new UpstreamError(
              `upstream ${this.url} unavailable for ${wait} ms${
                this.#lastError ? `: ${this.#lastError}` : ""
              }`,
            ),
          ),
        wait,
      );
      signal.addEventListener(
        "abort",
        () => reject(new UpstreamTimeout(`no answer from ${this.url} in time`)),
        { once: true },
      );
    });
    try {
      await Promise.race([this.#up.promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (!this.#client) throw new UpstreamError(`upstream ${this.url} unavailable`);
    return this.#client;
  }

  async #connectLoop() {
    let backoff = BACKOFF_START_MS;
    while (!this.#closed) {
      if (this.#client) {
        // Wait until the association is marked down.
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      this.#state = this.#connects === 0 ? "connecting" : "down";
      try {
        const client = await this.#attempt();
        if (this.#closed) {
          await client.association.abort().catch(() => {});
          return;
        }
        this.#client = client;
        this.#state = "up";
        // A server that closes the association cleanly (restart, shutdown)
        // leaves no request to fail: notice it before the next one is sent.
        client.ended.then((reason) => this.#markDown(client, reason));
        if (this.address.transport === "usrsctp") {
          try {
            this.#udpProbe = new UdpLivenessProbe(
              this.address.host,
              this.#udpPort,
            );
          } catch (error) {
            // Without it a killed server is still found, by the slower probe request.
            this.#log.warn("no UDP liveness probe", { error: errorText(error) });
          }
        }
        this.#connects++;
        this.#lastError = undefined;
        this.#touch();
        backoff = BACKOFF_START_MS;
        this.#log.info("upstream association up", {
          upstream: this.url,
          streams: client.association.outboundStreams,
        });
        this.#up.resolve();
        this.#options.onChange?.(true);
      } catch (error) {
        this.#lastError = errorText(error);
        this.#log.warn("upstream connect failed", {
          upstream: this.url,
          error: this.#lastError,
          retryInMs: backoff,
        });
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoff);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wake = undefined;
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  #attempt(): Promise<FlowClient> {
    const pending = FlowClient.connect(this.address, {
      streams: this.#options.streams ?? 8,
      udpPort: this.#udpPort,
      dataPath: this.#options.dataPath,
      sackFrequency: this.#options.sackFrequency,
      sackDelay: this.#options.sackDelay,
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new UpstreamError(`connect to ${this.url} took over ${CONNECT_ATTEMPT_MS} ms`));
        // An abandoned attempt that succeeds later must not linger; one that
        // fails later says why (e.g. the transport's diagnosis of a silent path).
        pending.then((late) => late.association.abort().catch(() => {}), (error) => {
          if (this.#state !== "up") this.#lastError = errorText(error);
        });
      }, CONNECT_ATTEMPT_MS);
    });
    return Promise.race([pending, timeout]).finally(() => clearTimeout(timer));
  }

  #markDown(client: FlowClient, reason: unknown) {
    if (this.#client !== client) return;
    this.#client = undefined;
    this.#state = "down";
    this.#disconnects++;
    this.#udpProbe?.close();
    this.#udpProbe = undefined;
    this.#lastError = errorText(reason);
    this.#up = Promise.withResolvers<void>();
    this.#up.promise.catch(() => {});
    this.#log.warn("upstream association down; reconnecting", {
      upstream: this.url,
      error: this.#lastError,
    });
    // Fails every request in flight at once.
    client.association.abort().catch(() => {});
    this.#wake?.();
    this.#options.onChange?.(false);
  }

  #checkProgress() {
    const client = this.#client;
    if (!client || this.#state !== "up" || this.#inFlight === 0) return;
    const stall = this.#options.stallTimeoutMs ?? 250;
    const silentFor = performance.now() - this.#lastActivity;
    if (silentFor < stall) return;
    if (this.#udpProbe) {
      if (this.#udpProbe.refused()) {
        this.#markDown(
          client,
          new UpstreamError(
            `no response bytes for ${
              Math.round(silentFor)
            } ms and the server's UDP port ${this.#udpPort} is closed: the server process is gone`,
          ),
        );
        return;
      }
      this.#udpProbe.send();
    }
    if (this.#probing) return;
    this.#probing = true;
    const controller = new AbortController();
    const probeTimeout = this.#options.probeTimeoutMs ?? 10000;
    const timer = setTimeout(() => controller.abort(), probeTimeout);
    client.request("/", { method: "HEAD", signal: controller.signal })
      .then(
        () => this.#touch(),
        (error) => {
          this.#markDown(
            client,
            controller.signal.aborted
              ? new UpstreamError(
                `no response bytes for ${stall} ms and no answer to a probe in ${probeTimeout} ms`,
              )
              : error,
          );
        },
      )
      .finally(() => {
        clearTimeout(timer);
        this.#probing = false;
      });
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * `body` as the proxy reads it: the watchdog sees each chunk as progress, and
 * the in-flight count drops when the body ends, fails or is cancelled.
 */
function watchedBody(
  body: ReadableStream<Uint8Array>,
  hooks: { touch(): void; finish(): void; translate(error: unknown): Error },
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  // Set when our consumer cancels, possibly while a read is pending: what
  // that read brings is dropped, since our stream takes nothing any more.
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        hooks.finish();
        controller.error(hooks.translate(error));
        return;
      }
      if (cancelled) return;
      if (chunk.done) {
        hooks.finish();
        controller.close();
      } else {
        hooks.touch();
        controller.enqueue(chunk.value);
      }
    },
    cancel: (reason) => {
      cancelled = true;
      hooks.finish();
      return reader.cancel(reason);
    },
  });
}
