/**
 * HTTP/1.1 message heads: parsing requests with hard limits (so a hostile
 * head is refused before it costs anything) and writing/parsing response
 * heads. Only what a static file server and its clients need.
 *
 * @module
 */

/** Limits on a request head. */
export interface RequestLimits {
  /** Longest request line in bytes (414 beyond). @default 8192 */
  maxRequestLine?: number;
  /** Largest head in bytes, request line included (431 beyond). @default 16384 */
  maxHeadBytes?: number;
  /** Most header fields (431 beyond). @default 100 */
  maxHeaders?: number;
  /**
   * Accept targets in absolute form (`http://host/path`), as a proxy is sent
   * and every server must take (RFC 9112 §3.2.2). @default false
   */
  absoluteForm?: boolean;
}

/** A parsed request head. */
export interface RequestHead {
  readonly method: string;
  /** The request target exactly as sent (still percent-encoded). */
  readonly target: string;
  readonly version: string;
  readonly headers: Headers;
}

/** A request head that cannot be served, with the status to answer. */
export class HttpError extends Error {
  /** Always `"HttpError"`. */
  override name = "HttpError";
  /** The HTTP status to answer with. */
  readonly status: number;
  /** Extra response headers (e.g. `Allow` for 405). */
  readonly headers: Record<string, string>;

  /** `message` is shown to the client, in the body of the error response. */
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

import { Buffer } from "node:buffer";

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value (RFC 9110 5.5): visible ASCII and obs-text, spaces and tabs between. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Optional whitespace around a field value: spaces and tabs only. */
const OWS = /^[ \t]+|[ \t]+$/g;

/**
 * Bytes as text, one char per byte. (`TextDecoder("latin1")` is really
 * windows-1252: it turns 0x80-0x9F into other code points.)
 */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** Parses a request head (the bytes up to and including the blank line). */
export function parseRequestHead(bytes: Uint8Array, limits: RequestLimits = {}): RequestHead {
  const maxLine = limits.maxRequestLine ?? 8192;
  const maxHead = limits.maxHeadBytes ?? 16384;
  const maxHeaders = limits.maxHeaders ?? 100;
  const firstBreak = bytes.indexOf(0x0a);
  // The request line without its CRLF.
  const lineEnd = firstBreak < 0
    ? bytes.byteLength
    : firstBreak > 0 && bytes[firstBreak - 1] === 0x0d
    ? firstBreak - 1
    : firstBreak;
  if (lineEnd > maxLine) {
    throw new HttpError(414, `request line longer than ${maxLine} bytes`);
  }
  if (bytes.byteLength > maxHead) {
    throw new HttpError(431, `request head larger than ${maxHead} bytes`);
  }
  const text = latin1(bytes);
  if (!text.endsWith("\r\n\r\n")) {
    throw new HttpError(400, "request head does not end with CRLF CRLF");
  }
  const lines = text.slice(0, -4).split("\r\n");
  const requestLine = lines[0].split(" ");
  if (requestLine.length !== 3) throw new HttpError(400, "malformed request line");
  const [method, target, version] = requestLine;
  if (!TOKEN.test(method)) throw new HttpError(400, "malformed method");
  if (!/^HTTP\/1\.[01]$/.test(version)) throw new HttpError(400, `unsupported version ${version}`);
  if (!target.startsWith("/") && !(limits.absoluteForm && /^https?:\/\//i.test(target))) {
    throw new HttpError(400, "request target must be an absolute path");
  }
  // A bare LF would otherwise hide the rest of a long line from the line limit.
  if (/[^\x21-\x7e\x80-\xff]/.test(target)) {
    throw new HttpError(400, "request target contains a control character");
  }
  if (lines.length - 1 > maxHeaders) {
    throw new HttpError(431, `more than ${maxHeaders} header fields`);
  }
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    if (colon <= 0 || !TOKEN.test(name)) throw new HttpError(400, "malformed header field");
    const value = line.slice(colon + 1).replace(OWS, "");
    if (!FIELD_VALUE.test(value)) throw new HttpError(400, `invalid value for header ${name}`);
    headers.append(name, value);
  }
  if (version === "HTTP/1.1" && !headers.has("host")) {
    throw new HttpError(400, "missing Host header");
  }
  return { method, target, version, headers };
}

/**
 * Whether the connection may carry another request after this one's answer:
 * not after `Connection: close`, an HTTP/1.0 request without keep-alive, or a
 * request that announces a body (bodies are not read, so no next head could
 * be found after it).
 */
export function isPersistent(request: RequestHead): boolean {
  const { headers } = request;
  const connection = headers.get("connection");
  const has = (token: string) =>
    connection !== null &&
    connection.split(",").some((part) => part.trim().toLowerCase() === token);
  return !has("close") && (request.version !== "HTTP/1.0" || has("keep-alive")) &&
    !headers.has("transfer-encoding") && (headers.get("content-length") ?? "0") === "0";
}

const REASONS: Record<number, string> = {
  200: "OK",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** The standard reason phrase of `status`. */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "Unknown";
}

/** Writes a response head: status line, headers, blank line. */
export function formatResponseHead(status: number, headers: Headers): string {
  let head = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return head + "\r\n";
}

/** A parsed response head. */
export interface ResponseHead {
  readonly status: number;
  readonly headers: Headers;
}

/** Parses a response head written by `formatResponseHead`. */
export function parseResponseHead(bytes: Uint8Array): ResponseHead {
  const lines = latin1(bytes).replace(/\r\n\r\n$/, "").split("\r\n");
  const status = Number(lines[0].split(" ")[1]);
  if (!lines[0].startsWith("HTTP/1.") || !Number.isInteger(status)) {
    throw new HttpError(502, `malformed response status line: ${lines[0].slice(0, 80)}`);
  }
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return { status, headers };
}
