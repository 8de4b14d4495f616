/**
 * What to answer to a request head: status, headers and body source. Shared
 * by the SCTP server and the TCP baseline, so both answer byte for byte alike.
 *
 * Internal code throws; this is the boundary that maps errors to statuses
 * (HttpError → its status, anything else → 500 with nothing leaked).
 *
 * @module
 */

import { formatResponseHead, HttpError, reasonPhrase } from "../protocol/http1.ts";
import type { RequestHead } from "../protocol/http1.ts";
import { type FileEntry, resolveFile } from "./files.ts";

/**
 * A decided response. `file` is set for a 200 GET with a body, `text` for
 * error bodies. The plan owns `file` until its consumer takes it: whoever
 * sends the body closes the entry (`MappingCache.acquire` does).
 */
export interface ResponsePlan {
  readonly status: number;
  readonly headers: Headers;
  /** Body bytes that will be sent (0 for HEAD and 304). */
  readonly bodyLength: number;
  readonly file?: FileEntry;
  readonly text?: Uint8Array<ArrayBuffer>;
}

const encoder = new TextEncoder();

/** Plans the answer to `request` for the files below `root` (a real path). */
export function planResponse(root: string, request: RequestHead): ResponsePlan {
  try {
    if (request.method !== "GET" && request.method !== "HEAD") {
      throw new HttpError(405, `method ${request.method} is not allowed`, { Allow: "GET, HEAD" });
    }
    const file = resolveFile(root, request.target);
    let body = false;
    try {
      const headers = new Headers({
        "Content-Type": file.contentType,
        "Content-Length": String(file.size),
        "Last-Modified": file.mtime.toUTCString(),
        "ETag": file.etag,
        "Accept-Ranges": "none",
      });
      if (notModified(request.headers, file)) {
        headers.delete("Content-Length");
        return { status: 304, headers, bodyLength: 0 };
      }
      const bodyLength = request.method === "HEAD" ? 0 : file.size;
      body = bodyLength > 0;
      return { status: 200, headers, bodyLength, file: body ? file : undefined };
    } finally {
      // Without a body to send, nobody else will need the file.
      if (!body) file.close();
    }
  } catch (error) {
    return errorPlan(error, request.method === "HEAD");
  }
}

/** The answer for a request that failed before or while planning. */
export function errorPlan(error: unknown, headOnly = false): ResponsePlan {
  const known = error instanceof HttpError;
  const status = known ? error.status : 500;
  // Internal errors are logged by the caller, never shown to the client.
  const detail = known ? error.message : "the server could not answer this request";
  const text = encoder.encode(`${status} ${reasonPhrase(status)}: ${detail}\n`);
  const headers = new Headers({
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": String(text.byteLength),
    ...(known ? error.headers : {}),
  });
  return headOnly
    ? { status, headers, bodyLength: 0 }
    : { status, headers, bodyLength: text.byteLength, text };
}

/** The response head text of a plan. */
export function planHead(plan: ResponsePlan): string {
  return formatResponseHead(plan.status, plan.headers);
}

function notModified(headers: Headers, file: FileEntry): boolean {
  const ifNoneMatch = headers.get("if-none-match");
  if (ifNoneMatch !== null) {
    return ifNoneMatch.trim() === "*" ||
      ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === file.etag);
  }
  const ifModifiedSince = headers.get("if-modified-since");
  if (ifModifiedSince === null) return false;
  const since = Date.parse(ifModifiedSince);
  // HTTP dates have one-second resolution.
  return !Number.isNaN(since) && Math.floor(file.mtime.getTime() / 1000) * 1000 <= since;
}
