/**
 * The benchmark's HTTP/1.1 client: GET requests over one byte pipe, a TCP
 * connection or stream 0 of a kernel SCTP association (what an HTTP server
 * under lksctp's `withsctp` accepts). Like the thesis's custom clients it
 * rebuilds each body from its Content-Length, and it counts body bytes
 * without keeping them unless asked to, so a response costs the client no
 * copy.
 *
 * @module
 */

import { connect } from "../../../mod.ts";
import { concat } from "../../../transport/bytes.ts";

/** Bytes in, bytes out: what the client runs over. */
export interface BytePipe {
  write(data: Uint8Array): Promise<void>;
  /** The next bytes, valid until the next `read`; null at the end. */
  read(): Promise<Uint8Array | null>;
  close(): void;
}

/** The transports an HTTP server is reached over. */
export type HttpTransport = "tcp" | "sctp";

/** One response, as far as the benchmark needs it. */
export interface HttpAnswer {
  status: number;
  /** Body bytes received (Content-Length). */
  length: number;
  /** Content-Type, if any. */
  type: string;
  /** The body, when asked for. */
  body?: Uint8Array;
  /** The server closes the connection after this response. */
  closes: boolean;
}

const READ_BUFFER = 256 * 1024;
const MAX_HEAD = 64 * 1024;
const CRLFCRLF = [13, 10, 13, 10];

/** Opens a byte pipe to `host:port` over TCP, or over kernel SCTP (one stream). */
export async function openPipe(
  transport: HttpTransport,
  host: string,
  port: number,
): Promise<BytePipe> {
  if (transport === "tcp") {
    const conn = await Deno.connect({ hostname: host, port });
    conn.setNoDelay(true);
    const buffer = new Uint8Array(READ_BUFFER);
    return {
      write: async (data) => {
        for (let sent = 0; sent < data.length;) sent += await conn.write(data.subarray(sent));
      },
      read: async () => {
        const n = await conn.read(buffer);
        return n === null ? null : buffer.subarray(0, n);
      },
      close: () => closeQuietly(conn),
    };
  }
  const association = await connect("kernel", host, port, { streams: 1 });
  let last: Uint8Array | null = null;
  return {
    write: (data) => association.send(0, data),
    read: async () => {
      if (last) association.recycle(last);
      last = (await association.receive())?.data ?? null;
      return last;
    },
    close: () => void association.close().catch(() => association.abort()),
  };
}

function closeQuietly(conn: Deno.Conn) {
  try {
    conn.close();
  } catch {
    // already closed by the peer
  }
}

/**
 * HTTP/1.1 over one pipe, one request at a time (no pipelining).
 *
 * @example
 * ```ts
 * const http = new HttpConnection(await openPipe("tcp", "10.10.2.2", 8080), "10.10.2.2");
 * const answer = await http.get("/f/00001.bin", { keepBody: false, close: false });
 * ```
 */
export class HttpConnection {
  readonly #pipe: BytePipe;
  readonly #host: string;
  /** Bytes read past the end of the last response. */
  #pending: Uint8Array = new Uint8Array(0);
  #broken = false;

  constructor(pipe: BytePipe, host: string) {
    this.#pipe = pipe;
    this.#host = host;
  }

  /** Whether the connection can carry another request. */
  get usable(): boolean {
    return !this.#broken;
  }

  /** Sends GET `path` and reads its response; `close` asks the server to close afterwards. */
  async get(path: string, options: { keepBody: boolean; close: boolean }): Promise<HttpAnswer> {
    try {
      await this.#pipe.write(
        new TextEncoder().encode(
          `GET ${path} HTTP/1.1\r\nHost: ${this.#host}\r\n` +
            (options.close ? "Connection: close\r\n" : "") + "\r\n",
        ),
      );
      const answer = await this.#read(options.keepBody);
      if (answer.closes || options.close) this.#broken = true;
      return answer;
    } catch (error) {
      this.#broken = true;
      throw error;
    }
  }

  /** Closes the pipe. */
  close(): void {
    this.#broken = true;
    this.#pipe.close();
  }

  async #read(keepBody: boolean): Promise<HttpAnswer> {
    let head = this.#pending;
    let end = indexOf(head, CRLFCRLF);
    while (end < 0) {
      if (head.length > MAX_HEAD) throw new Error("a response head over 64 KiB");
      const chunk = await this.#pipe.read();
      if (!chunk) throw new Error("the server closed the connection before a response");
      head = concat([head, chunk]);
      end = indexOf(head, CRLFCRLF);
    }
    const text = new TextDecoder("latin1").decode(head.subarray(0, end));
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
    if (!status) throw new Error(`not an HTTP/1.1 response: ${JSON.stringify(text.slice(0, 40))}`);
    const field = (name: string) =>
      new RegExp(`\r\n${name}:[ \t]*([^\r]*)`, "i").exec(text)?.[1].trim();
    const lengthText = field("content-length");
    if (lengthText === undefined || !/^\d+$/.test(lengthText)) {
      throw new Error(`a response without a usable Content-Length (${lengthText})`);
    }
    const length = Number(lengthText);
    const body = keepBody ? new Uint8Array(length) : undefined;
    let have = Math.min(length, head.length - end - 4);
    body?.set(head.subarray(end + 4, end + 4 + have));
    // Copied: the pipe's buffer is reused by the next read.
    this.#pending = head.slice(end + 4 + have);
    while (have < length) {
      const chunk = await this.#pipe.read();
      if (!chunk) throw new Error(`the body was cut off after ${have} of ${length} bytes`);
      const take = Math.min(chunk.length, length - have);
      body?.set(chunk.subarray(0, take), have);
      have += take;
      if (take < chunk.length) this.#pending = chunk.slice(take);
    }
    return {
      status: Number(status[1]),
      length,
      type: field("content-type") ?? "",
      body,
      closes: /^close$/i.test(field("connection") ?? ""),
    };
  }
}

function indexOf(haystack: Uint8Array, needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
