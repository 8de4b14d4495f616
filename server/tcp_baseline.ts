/**
 * The plain TCP HTTP/1.1 baseline every benchmark compares against: the same
 * file layer and response decisions (`respond.ts`) as the SCTP server, served
 * by `Deno.serve`, with keep-alive on or off.
 *
 * @module
 */

import { copyOf } from "../transport/bytes.ts";
import type { RequestHead } from "../protocol/http1.ts";
import { type FileEntry, realRoot } from "./files.ts";
import { planResponse } from "./respond.ts";

/** Options of the TCP baseline server. */
export interface TcpBaselineOptions {
  /** Address to listen on. @default "127.0.0.1" */
  host?: string;
  /** Port to listen on (0: any free port, see `TcpBaseline.port`). @default 8080 */
  port?: number;
  /** Document root. @default "." */
  root?: string;
  /** Keep connections open between requests (off: `Connection: close`, one request per connection). @default true */
  keepAlive?: boolean;
}

/** A running baseline server. */
export interface TcpBaseline extends AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** Stops accepting connections and waits for requests in progress to finish. */
  close(): Promise<void>;
}

/** Starts the TCP baseline server. */
export async function startTcpBaseline(options: TcpBaselineOptions = {}): Promise<TcpBaseline> {
  const root = realRoot(options.root ?? ".");
  const keepAlive = options.keepAlive ?? true;
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: options.host ?? "127.0.0.1",
    port: options.port ?? 8080,
    onListen: ({ port }) => listening.resolve(port),
  }, (request) => {
    const url = new URL(request.url);
    const head: RequestHead = {
      method: request.method,
      target: url.pathname + url.search,
      version: "HTTP/1.1",
      headers: request.headers,
    };
    const plan = planResponse(root, head);
    const headers = new Headers(plan.headers);
    if (!keepAlive) headers.set("Connection", "close");
    const body = plan.file ? fileBody(plan.file) : plan.text ?? null;
    return new Response(body, { status: plan.status, headers });
  });
  const port = await listening.promise;
  return {
    port,
    close: () => server.shutdown(),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Bytes per read of a file body. */
const CHUNK_BYTES = 64 * 1024;

/**
 * The body of `file`: exactly `file.size` bytes read from its descriptor
 * (the file that was checked, not whatever its path names by now). The
 * stream owns the entry and closes it when done, failed or cancelled; a
 * file that shrank while being sent fails the stream, so the connection ends
 * short of Content-Length.
 */
function fileBody(file: FileEntry): ReadableStream<Uint8Array<ArrayBuffer>> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      try {
        const chunk = new Uint8Array(Math.min(CHUNK_BYTES, file.size - offset));
        const read = file.descriptor.read(chunk, offset);
        if (read === 0) throw new Error(`${file.path} shrank while it was being sent`);
        offset += read;
        controller.enqueue(read === chunk.byteLength ? chunk : copyOf(chunk.subarray(0, read)));
        if (offset === file.size) {
          file.close();
          controller.close();
        }
      } catch (error) {
        file.close();
        controller.error(error);
      }
    },
    cancel() {
      file.close();
    },
  });
}
