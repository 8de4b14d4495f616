/**
 * The client side of the association protocol: many concurrent HTTP requests
 * over one association, responses matched by request id whatever order and
 * stream the server's scheduler sends them on.
 *
 * @example
 * ```ts
 * await using client = await FlowClient.connect("usrsctp://127.0.0.1:9000");
 * const response = await client.request("/index.html");
 * console.log(response.status, (await response.bytes()).byteLength);
 * ```
 *
 * @module
 */

import { connect } from "../transport/association.ts";
import { TRANSPORT_NAMES } from "../transport/drivers.ts";
import {
  type Association,
  type AssociationOptions,
  TransportError,
  type TransportName,
} from "../transport/types.ts";
import { parseResponseHead } from "./http1.ts";
import {
  decodeServerControl,
  encodeCancel,
  encodePriority,
  encodeRequest,
  MessageType,
  ProtocolError,
} from "./wire.ts";

/** Where a server is: `<transport>://host:port`. */
export interface ServerAddress {
  /** The transport the server listens on. */
  transport: TransportName;
  /** Host name or IP address (IPv6 without brackets). */
  host: string;
  /** The server's port. */
  port: number;
  /**
   * SCTP over UDP (RFC 6951) to this UDP port of the server, from the URL's
   * `udp` key (`kernel://10.0.0.2:9000?udp=9899`). usrsctp always runs over
   * UDP (there it replaces the `udpPort` option); kernel SCTP only with it.
   */
  udpPort?: number;
}

/**
 * Parses `kernel://10.0.0.2:9000/path` into address and path. A `udp=PORT`
 * key in the query becomes `udpPort` and is left out of the path.
 */
export function parseServerUrl(url: string): ServerAddress & { path: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`"${url}" is not a URL like usrsctp://127.0.0.1:9000/index.html`);
  }
  const transport = parsed.protocol.slice(0, -1) as TransportName;
  if (!TRANSPORT_NAMES.includes(transport)) {
    throw new TypeError(
      `unknown transport "${transport}" in ${url}; use one of: ${TRANSPORT_NAMES.join(", ")}`,
    );
  }
  const port = Number(parsed.port);
  if (!parsed.hostname || !port) throw new TypeError(`${url} needs a host and a port`);
  const udp = parsed.searchParams.get("udp");
  // Filtered by hand: URLSearchParams would re-encode the rest of the query.
  const query = parsed.search.slice(1).split("&").filter((pair) => !/^udp(=|$)/.test(pair));
  const udpPort = udp === null ? undefined : Number(udp);
  if (udpPort !== undefined && !(Number.isInteger(udpPort) && udpPort >= 1 && udpPort <= 65535)) {
    throw new TypeError(`bad udp=${udp} in ${url}: a UDP port from 1 to 65535, e.g. udp=9899`);
  }
  return {
    transport,
    host: parsed.hostname.replace(/^\[|\]$/g, ""),
    port,
    ...(udpPort === undefined ? {} : { udpPort }),
    path: (parsed.pathname || "/") +
      (query.length > 0 && query[0] !== "" ? `?${query.join("&")}` : ""),
  };
}

/** Options of one request. */
export interface RequestOptions {
  /** The request method; a HEAD response has no body. @default "GET" */
  method?: "GET" | "HEAD";
  /** Extra request headers (Host is added). */
  headers?: HeadersInit;
  /** Aborting sends CANCEL and fails the response. */
  signal?: AbortSignal;
}

/** A response whose head has arrived; the body streams in. */
export interface FlowResponse {
  /** The request id, for `FlowClient.cancel` and `FlowClient.setPriority`. */
  readonly id: number;
  /** The HTTP status code. */
  readonly status: number;
  /** The response headers. */
  readonly headers: Headers;
  /** The stream the response head arrived on. */
  readonly stream: number;
  /** The body; errors if the response is reset or the association fails. */
  readonly body: ReadableStream<Uint8Array>;
  /** Reads the whole body. */
  bytes(): Promise<Uint8Array<ArrayBuffer>>;
}

/**
 * A request in flight. Its body goes one of two ways, chosen by the first
 * consumer: into a ReadableStream (`body`), or straight into one array of
 * Content-Length bytes (`bytes()`), which lets each message's memory go back
 * to the association at once. Chunks that arrive before either is chosen wait
 * in `early`.
 */
interface Pending {
  readonly headOnly: boolean;
  head?: PromiseWithResolvers<FlowResponse>;
  /** Body bytes still to come. */
  remaining: number;
  early: Uint8Array<ArrayBuffer>[];
  done: boolean;
  error?: Error;
  body?: ReadableStream<Uint8Array>;
  controller?: ReadableStreamDefaultController<Uint8Array>;
  collect?: {
    buffer: Uint8Array<ArrayBuffer>;
    at: number;
    result: PromiseWithResolvers<Uint8Array<ArrayBuffer>>;
  };
}

/** Many requests over one association to a flowsched server. */
export class FlowClient implements AsyncDisposable {
  /** The association the requests travel on. */
  readonly association: Association;
  readonly #host: string;
  readonly #pending = new Map<number, Pending>();
  /** Per incoming stream: the response whose run is in progress, and its bytes left. */
  readonly #runs: { id: number; left: number }[] = [];
  readonly #reading: Promise<void>;
  readonly #ended = Promise.withResolvers<Error>();
  #nextId = 1;
  #failure: Error | undefined;

  private constructor(association: Association, host: string) {
    this.association = association;
    this.#host = host;
    this.#reading = this.#readLoop();
  }

  /** Connects to `<transport>://host:port` (a path in the URL is ignored). */
  static async connect(
    url: string | ServerAddress,
    options?: AssociationOptions,
  ): Promise<FlowClient> {
    const address = typeof url === "string" ? parseServerUrl(url) : url;
    const association = await connect(
      address.transport,
      address.host,
      address.port,
      address.udpPort === undefined
        ? options
        : { ...options, udpPort: address.udpPort, udpEncapsulation: true },
    );
    return new FlowClient(association, `${address.host}:${address.port}`);
  }

  /** Settles with the reason once the association has ended, for whatever cause. */
  get ended(): Promise<Error> {
    return this.#ended.promise;
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Sends a request; resolves when its response head arrives. */
  request(target: string, options: RequestOptions = {}): Promise<FlowResponse> {
    const method = options.method ?? "GET";
    const headers = new Headers(options.headers);
    if (!headers.has("host")) headers.set("host", this.#host);
    let head = `${method} ${target} HTTP/1.1\r\n`;
    for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
    return this.requestRaw(head + "\r\n", { headOnly: method === "HEAD", signal: options.signal });
  }

  /**
   * Sends `head` verbatim as a request head (for tests and debugging of
   * malformed requests). `headOnly`: the response has no body (HEAD).
   */
  requestRaw(
    head: string,
    options: { headOnly?: boolean; signal?: AbortSignal } = {},
  ): Promise<FlowResponse> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId;
    // Ids stay below 2^31 so the server can keep them in Int32 flags.
    this.#nextId = (this.#nextId % 0x7ffffffe) + 1;
    const pending: Pending = {
      headOnly: options.headOnly ?? false,
      head: Promise.withResolvers(),
      remaining: 0,
      early: [],
      done: false,
    };
    this.#pending.set(id, pending);
    this.association.send(this.#streamOf(id), encodeRequest(id, head)).catch((error) =>
      this.#fail(id, error)
    );
    options.signal?.addEventListener("abort", () => this.cancel(id), { once: true });
    return pending.head!.promise;
  }

  /** Asks the server to drop response `id`; its body errors. */
  cancel(id: number): void {
    if (!this.#pending.has(id)) return;
    this.association.send(this.#streamOf(id), encodeCancel(id)).catch(() => {});
    this.#fail(id, new TransportError(`request ${id} cancelled`));
  }

  /** Changes the priority of response `id` (lower is more urgent). */
  async setPriority(id: number, priority: number): Promise<void> {
    await this.association.send(this.#streamOf(id), encodePriority(id, priority));
  }

  /**
   * Everything about request `id` goes on one stream, so a CANCEL or PRIORITY
   * can never overtake its REQUEST (SCTP orders messages per stream only).
   */
  #streamOf(id: number): number {
    return id % this.association.outboundStreams;
  }

  /** Closes the association; requests in flight fail. */
  async close(): Promise<void> {
    await this.association.close();
    await this.#reading;
  }

  /** Closes the association, as `close()` does. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #readLoop() {
    try {
      for (;;) {
        const message = await this.association.receive();
        if (message === null) break;
        if (message.truncated) throw new ProtocolError("the server sent an oversized message");
        this.#onMessage(message.stream, message.data);
      }
      this.#failAll(new TransportError("the server closed the association"));
    } catch (error) {
      this.#failAll(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #onMessage(stream: number, data: Uint8Array<ArrayBuffer>) {
    const run = this.#runs[stream];
    if (run && run.left > 0) {
      run.left -= data.byteLength;
      if (run.left < 0) {
        throw new ProtocolError(`body message overruns its run on stream ${stream}`);
      }
      return this.#body(run.id, data);
    }
    const control = decodeServerControl(data);
    const pending = this.#pending.get(control.id);
    switch (control.type) {
      case MessageType.HEAD: {
        this.#runs[stream] = { id: control.id, left: control.run };
        if (!pending?.head) return;
        const { status, headers } = parseResponseHead(control.head);
        const bodiless = pending.headOnly || status === 304 || status === 204;
        pending.remaining = bodiless ? 0 : Number(headers.get("content-length") ?? 0);
        const id = control.id;
        const bodyOf = () => this.#bodyStream(id, pending);
        const response: FlowResponse = {
          id,
          status,
          headers,
          stream,
          get body() {
            return bodyOf();
          },
          bytes: () => this.#bodyBytes(pending),
        };
        pending.head.resolve(response);
        pending.head = undefined;
        if (pending.remaining === 0) this.#complete(control.id);
        return;
      }
      case MessageType.CONTINUE:
        this.#runs[stream] = { id: control.id, left: control.run };
        return;
      case MessageType.RESET:
        this.#fail(
          control.id,
          new TransportError(`response ${control.id} was reset by the server: ${control.reason}`),
        );
        return;
    }
  }

  #body(id: number, data: Uint8Array<ArrayBuffer>) {
    const pending = this.#pending.get(id);
    if (!pending) return; // cancelled: the rest of the run is discarded
    if (pending.collect) {
      const { buffer, at } = pending.collect;
      buffer.set(data.subarray(0, Math.max(0, buffer.length - at)), at);
      pending.collect.at += data.byteLength;
      this.association.recycle(data);
    } else if (pending.controller) {
      const controller = pending.controller;
      if (!this.#deliver(id, () => controller.enqueue(data))) return;
    } else pending.early.push(data);
    pending.remaining -= data.byteLength;
    if (pending.remaining <= 0) this.#complete(id);
  }

  #complete(id: number) {
    const pending = this.#pending.get(id);
    if (!pending) return;
    pending.done = true;
    this.#pending.delete(id);
    pending.collect?.result.resolve(pending.collect.buffer);
    const controller = pending.controller;
    if (controller) this.#deliver(id, () => controller.close());
  }

  /**
   * The body as a stream, made on first use. The reader may give up (e.g. the
   * proxy's client went away): the server then stops sending, and later body
   * messages are dropped instead of enqueued into a cancelled stream.
   */
  #bodyStream(id: number, pending: Pending): ReadableStream<Uint8Array> {
    if (pending.collect) throw new TypeError("the body was already read by bytes()");
    pending.body ??= new ReadableStream<Uint8Array>({
      start: (controller) => {
        for (const chunk of pending.early.splice(0)) controller.enqueue(chunk);
        if (pending.error) controller.error(pending.error);
        else if (pending.done) controller.close();
        else pending.controller = controller;
      },
      cancel: () => this.cancel(id),
    });
    return pending.body;
  }

  /** The whole body in one array, filled as messages arrive (no stream, no concatenation). */
  #bodyBytes(pending: Pending): Promise<Uint8Array<ArrayBuffer>> {
    if (pending.body) return new Response(pending.body).bytes();
    if (pending.collect) return pending.collect.result.promise;
    if (pending.error) return Promise.reject(pending.error);
    const early = pending.early.splice(0);
    const arrived = early.reduce((n, chunk) => n + chunk.byteLength, 0);
    const buffer = new Uint8Array(arrived + Math.max(0, pending.remaining));
    let at = 0;
    for (const chunk of early) {
      buffer.set(chunk.subarray(0, Math.max(0, buffer.length - at)), at);
      at += chunk.byteLength;
      this.association.recycle(chunk);
    }
    if (pending.done) return Promise.resolve(buffer);
    pending.collect = { buffer, at, result: Promise.withResolvers() };
    return pending.collect.result.promise;
  }

  /**
   * Hands something to response `id`'s body stream. A stream its consumer
   * ended without our cancel callback (an errored pipe, say) refuses it with
   * a TypeError; that ends this one response, never the association that
   * every other response shares.
   */
  #deliver(id: number, hand: () => void): boolean {
    try {
      hand();
      return true;
    } catch {
      this.cancel(id);
      return false;
    }
  }

  #fail(id: number, error: Error) {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    pending.head?.reject(error);
    pending.error = error;
    pending.controller?.error(error);
    pending.collect?.result.reject(error);
  }

  #failAll(error: Error) {
    this.#failure = error;
    this.#ended.resolve(error);
    for (const id of [...this.#pending.keys()]) this.#fail(id, error);
  }
}
