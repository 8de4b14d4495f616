/**
 * The proxy's HTTP/1.1 side: a listener on libc sockets (`tcp_socket.ts`)
 * that reads request heads itself (`RequestHeadReader`, `parseRequestHead`)
 * and writes answers itself, one connection at a time in order (pipelined
 * requests wait in the socket). A cache hit is answered without a `Request`
 * or `Response` object: a body in memory of up to `ONE_WRITE_BYTES` with its
 * head as one buffer and one `send`, any other body (a file's mapping
 * always) as it is after its head, which waits for it (`MSG_MORE`).
 * Everything else goes to the handler as a `Request` and comes back as a
 * `Response`, whose body is written as it arrives (with its
 * `content-length`, else chunked, or until the close for HTTP/1.0).
 *
 * Why not `Deno.serve`: it writes every answer's head and body with two
 * system calls and answers a 1 KiB hit at about half the rate of this
 * loop on the same thread (`bench perf`; docs/results/performance.md).
 *
 * A connection closes after a refused head (400, 414, 431, 501; 408 for a
 * head not complete within `HEAD_TIMEOUT_MS`), after `Connection: close` or
 * an HTTP/1.0 request without keep-alive, after a request announcing a body
 * (bodies are never read), after `IDLE_TIMEOUT_MS` without a request, or
 * when a write makes no progress for `SEND_TIMEOUT_MS`. A body that breaks
 * off (an upstream that aborts) ends its connection, so a client told the
 * length or the chunking sees a cut answer; only an HTTP/1.0 answer of
 * unknown length, which ends with the connection anyway, cannot say so.
 *
 * @module
 */

import { HttpError, isPersistent, parseRequestHead, reasonPhrase } from "../protocol/http1.ts";
import { Errno, NativeError } from "../ffi/errors.ts";
import { concat } from "../transport/bytes.ts";
import { acceptEach } from "../transport/tcp_accept.ts";
import { SocketClosed, TcpListener, type TcpSocket } from "../transport/tcp_socket.ts";
import { RequestHeadReader } from "../server/request_reader.ts";

/** Largest request head; a longer one is answered 431. */
const MAX_HEAD_BYTES = 16 * 1024;
/** A keep-alive connection with no request for this long is closed (nginx's default). */
const IDLE_TIMEOUT_MS = 75_000;
/** A request head must be complete this long after the connection began waiting for it (else 408). */
const HEAD_TIMEOUT_MS = 30_000;
/** A write that makes no progress for this long (a client that stopped reading) ends its connection. */
const SEND_TIMEOUT_MS = 60_000;
/** How long a closing connection drops what the client still sends, so the last answer is not reset away. */
const LINGER_MS = 2000;
/** Heads and bodies up to this size together are copied into one buffer and written at once. */
const ONE_WRITE_BYTES = 64 * 1024;
/** A connection's scratch buffer for quick answers; larger ones get a buffer of their own. */
const SCRATCH_BYTES = 4096;
/** Statuses whose answers never have a body. */
const BODILESS = new Set([204, 304]);
/** Header fields the front writes itself. */
const FRAMING = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "date",
  "content-length",
]);

const encoder = new TextEncoder();
const CRLF = encoder.encode("\r\n");
const LAST_CHUNK = encoder.encode("0\r\n\r\n");
/** A request line's method, when it starts one plainly: a token and a space. */
const PLAIN_METHOD = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,16}) /;

/** What the handler learns about a request's client. */
export interface ClientInfo {
  /** The client's address. */
  readonly remoteAddr: Deno.NetAddr;
}

/**
 * An answer whose head is made already and whose body is bytes at hand,
 * written without a `Response` object (its `content-length` is in `head`).
 */
export interface QuickAnswer {
  /** The status line and header fields, each line ending in CRLF, without the blank line. */
  readonly head: Uint8Array;
  /**
   * The body (empty for HEAD), handed to the socket as it is (it may be a
   * file's mapping); nobody writes to it while the answer is sent.
   */
  readonly body: Uint8Array;
  /**
   * The body is a file's mapping: the front has it read by the kernel only
   * (a copy that fails with EFAULT, a write), never with plain loads, which
   * would end the process with SIGBUS if the file shrank.
   */
  readonly mapped?: boolean;
  /** Called once the answer has been written, or dropped with its connection. */
  readonly done?: () => void;
}

/** What answers the front's requests. */
export interface FrontHandler {
  /** An answer for `method` and `url` that needs no waiting (a hit kept in memory), or undefined. */
  quick(method: string, url: URL): QuickAnswer | undefined;
  /** Every other request. Throwing answers 500. */
  handle(request: Request, client: ClientInfo): Promise<Response | QuickAnswer>;
  /**
   * Called with what a handler threw, why a head was refused, why a
   * response's body broke off (its connection then ends), or why accepting
   * failed.
   */
  failed(what: "handler" | "head" | "body" | "accept", error: unknown): void;
}

/** Where and how the front listens. */
export interface FrontOptions {
  /** The address to listen on. */
  readonly hostname: string;
  /** The TCP port (0: any free port). */
  readonly port: number;
  /** SO_REUSEPORT, beside other listeners on the same port. */
  readonly reusePort: boolean;
}

/** A listening front. */
export interface HttpFront {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /**
   * Stops accepting, closes idle connections, lets each answer being
   * written finish, and settles once every connection has ended.
   */
  shutdown(): Promise<void>;
}

/** The `date` header line, made again when the second changes. */
let dateSecond = -1;
let dateLine = new Uint8Array(0);
function currentDateLine(): Uint8Array {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = encoder.encode(`date: ${new Date(second * 1000).toUTCString()}\r\n`);
  }
  return dateLine;
}

const CONNECTION_CLOSE = encoder.encode("connection: close\r\n");
const CONNECTION_KEEP_ALIVE = encoder.encode("connection: keep-alive\r\n");

/** Starts listening and serving; the returned front stops with `shutdown()`. */
export function serveHttp(options: FrontOptions, handler: FrontHandler): HttpFront {
  const listener = TcpListener.listen(options);
  const addr = listener.addr;
  const origin = `${
    addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname
  }:${addr.port}`;
  const connections = new Set<FrontConnection>();
  let stopping = false;
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const connection of connections) connection.watch(now);
  }, 1000);
  Deno.unrefTimer(sweep);
  const accepting = acceptEach(
    listener,
    () => stopping,
    (socket) => {
      const connection = new FrontConnection(socket, handler, origin);
      connections.add(connection);
      connection.done.then(() => connections.delete(connection));
    },
    (error) => handler.failed("accept", error),
  );
  let stopped: Promise<void> | undefined;
  return {
    addr,
    shutdown() {
      return stopped ??= stop();
    },
  };

  async function stop() {
    stopping = true;
    try {
      listener.close();
    } catch { /* closed already */ }
    await accepting;
    for (const connection of connections) connection.stop();
    // The timeouts go on meanwhile: a client that stopped reading cannot hold the shutdown.
    await Promise.all([...connections].map((connection) => connection.done));
    clearInterval(sweep);
  }
}

/** Serves one TCP connection until it ends. */
class FrontConnection {
  /** Settles once the connection has ended. */
  readonly done: Promise<void>;
  readonly #socket: TcpSocket;
  readonly #handler: FrontHandler;
  readonly #origin: string;
  readonly #reader: RequestHeadReader;
  /** Head and body of a small quick answer, copied together. */
  readonly #scratch = new Uint8Array(SCRATCH_BYTES);
  /** An answer is being made or written. */
  #busy = false;
  /** No request is read after the current one. */
  #stopping = false;
  #closed = false;
  /** When the current write last made progress, if one is under way. */
  #writeProgress = -1;
  /** When the connection began waiting for the next request head. */
  #waitingSince = performance.now();

  constructor(socket: TcpSocket, handler: FrontHandler, origin: string) {
    this.#socket = socket;
    this.#handler = handler;
    this.#origin = origin;
    this.#reader = new RequestHeadReader(socket, MAX_HEAD_BYTES);
    this.done = this.#serve();
  }

  /** Ends the connection after the answer being made, or at once if there is none. */
  stop() {
    this.#stopping = true;
    if (!this.#busy) this.#close();
  }

  /** The timeouts, checked about once a second. */
  watch(now: number) {
    if (this.#closed) return;
    if (this.#writeProgress >= 0) {
      if (now - this.#writeProgress >= SEND_TIMEOUT_MS) this.#close();
      return;
    }
    if (this.#busy || this.#stopping) return;
    const waited = now - this.#waitingSince;
    if (!this.#reader.partial) {
      if (waited >= IDLE_TIMEOUT_MS) this.#close();
      return;
    }
    if (waited < HEAD_TIMEOUT_MS) return;
    // Halfway through a head: say why before closing (nothing else is answered after it).
    this.#stopping = true;
    this.#refuse(new HttpError(408, "request head not complete in time")).finally(() =>
      this.#close()
    );
  }

  async #serve(): Promise<void> {
    try {
      while (!this.#stopping) {
        this.#waitingSince = performance.now();
        let bytes: Uint8Array | null;
        try {
          bytes = await this.#reader.next();
        } catch (error) {
          if (!(error instanceof HttpError)) throw error;
          await this.#refuse(error);
          return await this.#finish();
        }
        if (bytes === null || this.#closed || this.#stopping) break;
        this.#busy = true;
        const persistent = await this.#answer(bytes);
        this.#busy = false;
        if (!persistent || this.#stopping) return await this.#finish();
      }
    } catch (error) {
      // Reset by the client, or closed by a timeout or a shutdown; anything else is a bug to see.
      if (error instanceof BrokenBody) this.#handler.failed("body", error.cause);
      else if (!this.#closed && !isConnectionError(error)) this.#handler.failed("handler", error);
    }
    this.#close();
  }

  /** Answers one request head; whether the connection may go on. */
  async #answer(bytes: Uint8Array): Promise<boolean> {
    let head;
    try {
      // The handler says itself which targets are too long (414).
      head = parseRequestHead(bytes, {
        maxRequestLine: MAX_HEAD_BYTES,
        maxHeadBytes: MAX_HEAD_BYTES,
        absoluteForm: true,
      });
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      await this.#refuse(error, bytes);
      return false;
    }
    const url = requestUrl(head.target, head.headers.get("host") || this.#origin);
    if (!url) {
      await this.#refuse(new HttpError(400, "malformed Host header or target"), bytes);
      return false;
    }
    // A shutdown under way: this is the last answer, and it says so.
    const persistent = isPersistent(head) && !this.#stopping;
    const connection = !persistent
      ? CONNECTION_CLOSE
      : head.version === "HTTP/1.0"
      ? CONNECTION_KEEP_ALIVE
      : undefined;
    let quick: QuickAnswer | undefined;
    try {
      quick = this.#handler.quick(head.method, url);
    } catch (error) {
      this.#handler.failed("handler", error);
      await this.#writeResponse(statusResponse(500), head.method, head.version, CONNECTION_CLOSE);
      return false;
    }
    if (quick) {
      await this.#writeQuick(quick, connection);
      return persistent;
    }
    let request: Request | undefined;
    try {
      request = new Request(url, { method: head.method, headers: head.headers });
    } catch { /* CONNECT, TRACE and TRACK: methods a Request cannot carry */ }
    // A Request upper-cases `get` or `hEAD`, which are other methods (RFC 9110 §9.1).
    if (request?.method !== head.method) {
      await this.#refuse(new HttpError(501, `method ${head.method} not implemented`), bytes);
      return false;
    }
    let answer: Response | QuickAnswer;
    try {
      answer = await this.#handler.handle(request, {
        remoteAddr: this.#socket.remoteAddr,
      });
    } catch (error) {
      this.#handler.failed("handler", error);
      answer = statusResponse(500);
    }
    if (answer instanceof Response) {
      const framed = await this.#writeResponse(answer, head.method, head.version, connection);
      return persistent && framed;
    }
    await this.#writeQuick(answer, connection);
    return persistent;
  }

  async #writeQuick(answer: QuickAnswer, connection: Uint8Array | undefined) {
    try {
      await this.#writeHeadAndBody(answer, connection);
    } finally {
      answer.done?.();
    }
  }

  /**
   * A head and a body in memory that fit in `ONE_WRITE_BYTES` together go
   * out as one write (a head on its own costs a segment and a wake-up at
   * the client: 1 MiB hits went 1.3k → 1.9k/s here). Any other body, and a
   * file's mapping always, is written as it is after its head, which waits
   * for it (`more`) and goes out in its first segment.
   */
  async #writeHeadAndBody(answer: QuickAnswer, connection: Uint8Array | undefined) {
    const { head, body } = answer;
    const date = currentDateLine();
    const headLength = head.byteLength + (connection?.byteLength ?? 0) + date.byteLength + 2;
    const together = !answer.mapped && headLength + body.byteLength <= ONE_WRITE_BYTES;
    const total = together ? headLength + body.byteLength : headLength;
    const out = total <= SCRATCH_BYTES ? this.#scratch : new Uint8Array(total);
    out.set(head);
    let at = head.byteLength;
    if (connection) {
      out.set(connection, at);
      at += connection.byteLength;
    }
    out.set(date, at);
    at += date.byteLength;
    out.set(CRLF, at);
    at += 2;
    if (together) {
      out.set(body, at);
      return await this.#write(out.subarray(0, at + body.byteLength));
    }
    await this.#write(out.subarray(0, at), body.byteLength > 0);
    if (body.byteLength === 0) return;
    try {
      await this.#write(body);
    } catch (error) {
      // A mapped body is read by the kernel only: a file that shrank fails the send, not the process.
      if (error instanceof NativeError && error.errno === Errno.EFAULT) throw new BrokenBody(error);
      throw error;
    }
  }

  /**
   * Writes a handler's response; false if the connection cannot go on after
   * it (its body's end is the connection's end).
   */
  async #writeResponse(
    response: Response,
    method: string,
    version: string,
    connection: Uint8Array | undefined,
  ): Promise<boolean> {
    const status = response.status;
    let text = `HTTP/1.1 ${status} ${response.statusText || reasonPhrase(status)}\r\n`;
    const bodiless = method === "HEAD" || BODILESS.has(status) || status < 200;
    const body = bodiless ? null : response.body;
    if (bodiless) await response.body?.cancel().catch(() => {});
    // A length that is not one plain number frames nothing: the body's own end does.
    const given = response.headers.get("content-length");
    let length = given !== null && /^\d{1,15}$/.test(given) ? Number(given) : null;
    if (body === null && !bodiless) length = 0;
    for (const [name, value] of response.headers) {
      if (!FRAMING.has(name)) text += `${name}: ${value}\r\n`;
    }
    if (length !== null) text += `content-length: ${length}\r\n`;
    // A body of unknown length: chunked for HTTP/1.1, until the close for HTTP/1.0.
    const chunked = body !== null && length === null && version === "HTTP/1.1";
    const untilClose = body !== null && length === null && !chunked;
    if (chunked) text += "transfer-encoding: chunked\r\n";
    const ending = untilClose ? CONNECTION_CLOSE : connection;
    const head = encoder.encode(text);
    const date = currentDateLine();
    const out = new Uint8Array(head.byteLength + (ending?.byteLength ?? 0) + date.byteLength + 2);
    out.set(head);
    if (ending) out.set(ending, head.byteLength);
    out.set(date, out.byteLength - date.byteLength - 2);
    out.set(CRLF, out.byteLength - 2);
    if (body === null) {
      await this.#write(out);
      return true;
    }
    const reader = body.getReader();
    let first = true;
    let written = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read().catch((error) => {
          throw new BrokenBody(error);
        });
        if (done) break;
        if (value.byteLength === 0) continue;
        written += value.byteLength;
        if (length !== null && written > length) {
          throw new Error(`body longer than its content-length, ${length} bytes`);
        }
        const parts = first ? [out] : [];
        if (chunked) {
          parts.push(encoder.encode(`${first ? "" : "\r\n"}${value.byteLength.toString(16)}\r\n`));
        }
        // Small bodies go out with the head (or the chunk size) in one write.
        if (value.byteLength <= ONE_WRITE_BYTES) await this.#write(concat([...parts, value]));
        else {
          if (parts.length > 0) await this.#write(concat(parts));
          await this.#write(value);
        }
        first = false;
      }
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      throw error;
    }
    if (first) await this.#write(out);
    if (chunked) await this.#write(first ? LAST_CHUNK : concat([CRLF, LAST_CHUNK]));
    if (length !== null && written !== length) {
      throw new Error(`body of ${written} bytes where content-length said ${length}`);
    }
    return !untilClose;
  }

  /**
   * Answers a refused head with its status and the connection's end. The
   * status text goes in the body only when the head plainly asked with a
   * method other than HEAD (a token and a space); otherwise the body is empty,
   * which a client reads the same whether it takes the answer for a HEAD's or
   * not.
   */
  async #refuse(error: HttpError, head?: Uint8Array) {
    this.#handler.failed("head", error);
    const method = head && PLAIN_METHOD.exec(String.fromCharCode(...head.subarray(0, 18)))?.[1];
    const bodiless = method === undefined || method === "HEAD";
    const text = encoder.encode(`${error.status} ${reasonPhrase(error.status)}\n`);
    const lines = `HTTP/1.1 ${error.status} ${reasonPhrase(error.status)}\r\n` +
      `content-type: text/plain; charset=utf-8\r\ncontent-length: ${
        bodiless ? 0 : text.byteLength
      }\r\n` +
      Object.entries(error.headers).map(([name, value]) => `${name}: ${value}\r\n`).join("") +
      "connection: close\r\n";
    const parts = [encoder.encode(lines), currentDateLine(), CRLF];
    if (!bodiless) parts.push(text);
    await this.#write(concat(parts)).catch(() => {});
  }

  /** Writes all of `bytes`; with `more`, they wait to go out with the next write. */
  async #write(bytes: Uint8Array, more = false) {
    this.#writeProgress = performance.now();
    try {
      for (let at = 0; at < bytes.byteLength;) {
        at += await this.#socket.write(at === 0 ? bytes : bytes.subarray(at), more);
        this.#writeProgress = performance.now();
      }
    } finally {
      this.#writeProgress = -1;
    }
  }

  /** The last answer is out: shut the write side, drop what still comes, then close. */
  async #finish() {
    if (this.#closed) return;
    const linger = setTimeout(() => this.#close(), LINGER_MS);
    try {
      this.#socket.closeWrite();
      await this.#reader.discard();
    } catch { /* reset or closed meanwhile */ }
    clearTimeout(linger);
    this.#close();
  }

  #close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.close();
  }
}

/** A plain status answer: its text says nothing about the proxy's insides. */
export function statusResponse(status: number, extra: Record<string, string> = {}): Response {
  const text = `${status} ${reasonPhrase(status)}\n`;
  return new Response(text, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(text.length),
      ...extra,
    },
  });
}

/**
 * The URL a request names: its target in origin form on `host` (a Host
 * that could change where the path starts, with `/`, `@` or the like, is
 * refused), or its target in absolute form, whose authority wins over the
 * Host header (RFC 9112 §3.2.2). Undefined if there is none.
 */
function requestUrl(target: string, host: string): URL | undefined {
  try {
    if (!target.startsWith("/")) {
      const url = new URL(target);
      return (url.protocol === "http:" || url.protocol === "https:") && url.host ? url : undefined;
    }
    return /[\s/?#@\\]/.test(host) ? undefined : new URL(`http://${host}${target}`);
  } catch {
    return undefined;
  }
}

/** A response body's stream failed: the answer is cut, and that is the body's doing. */
class BrokenBody extends Error {
  constructor(cause: unknown) {
    super("response body broke off", { cause });
  }
}

/** errno values of a connection that went away. */
const GONE = new Set<number>([
  Errno.ECONNRESET,
  Errno.EPIPE,
  Errno.ECONNABORTED,
  Errno.ENOTCONN,
  Errno.ETIMEDOUT,
]);

/** Whether `error` says the connection went away (reset, closed under a call). */
function isConnectionError(error: unknown): boolean {
  return error instanceof SocketClosed ||
    (error instanceof NativeError && GONE.has(error.errno));
}
