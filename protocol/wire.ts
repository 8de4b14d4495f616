/**
 * The association protocol of docs/PROTOCOL.md: message types and their
 * encoding. Both the server and every client use this module. An encoder
 * throws RangeError for a number its field cannot hold (ids and run lengths
 * are u32, priorities i32, statuses u16).
 *
 * @module
 */

/** Message types, as the first byte of each control message. */
export const MessageType = {
  REQUEST: 1,
  CANCEL: 2,
  PRIORITY: 3,
  HEAD: 16,
  CONTINUE: 17,
  RESET: 18,
} as const;

/** A decoded client → server message. */
export type ClientMessage =
  | { type: typeof MessageType.REQUEST; id: number; head: Uint8Array }
  | { type: typeof MessageType.CANCEL; id: number }
  | { type: typeof MessageType.PRIORITY; id: number; priority: number };

/** A decoded server → client control message. */
export type ServerControl =
  | { type: typeof MessageType.HEAD; id: number; run: number; head: Uint8Array }
  | { type: typeof MessageType.CONTINUE; id: number; run: number }
  | { type: typeof MessageType.RESET; id: number; status: number; reason: string };

/**
 * A message that does not follow the protocol; a `FlowClient` that receives
 * one fails every request in flight with it.
 */
export class ProtocolError extends Error {
  /** Always `"ProtocolError"`. */
  override name = "ProtocolError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `value`, if the field can hold it. A DataView would store another number
 * without a word (2^31 as priority becomes -2^31, the most urgent).
 */
function fits(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${field} ${value} is outside ${min}..${max}`);
  }
  return value;
}

const U32 = 0xffffffff;

function withHeader(
  type: number,
  id: number,
  extra: number,
  tail: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + extra + tail.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, type);
  view.setUint32(1, fits("id", id, 0, U32));
  out.set(tail, 5 + extra);
  return out;
}

/** REQUEST: `head` is the HTTP/1.1 request head text (ending in CRLF CRLF). */
export function encodeRequest(id: number, head: string | Uint8Array): Uint8Array<ArrayBuffer> {
  return withHeader(
    MessageType.REQUEST,
    id,
    0,
    typeof head === "string" ? encoder.encode(head) : head,
  );
}

/** CANCEL of request `id`. */
export function encodeCancel(id: number): Uint8Array<ArrayBuffer> {
  return withHeader(MessageType.CANCEL, id, 0, new Uint8Array(0));
}

/** PRIORITY of request `id` (lower is more urgent). */
export function encodePriority(id: number, priority: number): Uint8Array<ArrayBuffer> {
  const out = withHeader(MessageType.PRIORITY, id, 4, new Uint8Array(0));
  new DataView(out.buffer).setInt32(5, fits("priority", priority, -0x80000000, 0x7fffffff));
  return out;
}

/** HEAD: starts response `id`; `run` body bytes follow on the same stream. */
export function encodeHead(id: number, run: number, head: string): Uint8Array<ArrayBuffer> {
  const out = withHeader(MessageType.HEAD, id, 4, encoder.encode(head));
  new DataView(out.buffer).setUint32(5, fits("run", run, 0, U32));
  return out;
}

/** CONTINUE: the next `run` body bytes of response `id` follow on this stream. */
export function encodeContinue(id: number, run: number): Uint8Array<ArrayBuffer> {
  const out = withHeader(MessageType.CONTINUE, id, 4, new Uint8Array(0));
  new DataView(out.buffer).setUint32(5, fits("run", run, 0, U32));
  return out;
}

/** RESET: response `id` ends incomplete. */
export function encodeReset(id: number, status: number, reason: string): Uint8Array<ArrayBuffer> {
  const out = withHeader(MessageType.RESET, id, 2, encoder.encode(reason));
  new DataView(out.buffer).setUint16(5, fits("status", status, 0, 0xffff));
  return out;
}

function view(data: Uint8Array, minimum: number, what: string): DataView {
  if (data.byteLength < minimum) {
    throw new ProtocolError(`${what} message of ${data.byteLength} bytes is too short`);
  }
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

/** Decodes a client → server message; throws ProtocolError for anything else. */
export function decodeClientMessage(data: Uint8Array): ClientMessage {
  const v = view(data, 5, "client");
  const id = v.getUint32(1);
  switch (data[0]) {
    case MessageType.REQUEST:
      return { type: MessageType.REQUEST, id, head: data.subarray(5) };
    case MessageType.CANCEL:
      return { type: MessageType.CANCEL, id };
    case MessageType.PRIORITY:
      return { type: MessageType.PRIORITY, id, priority: view(data, 9, "PRIORITY").getInt32(5) };
    default:
      throw new ProtocolError(`unknown client message type ${data[0]}`);
  }
}

/** Decodes a server control message; throws ProtocolError for anything else. */
export function decodeServerControl(data: Uint8Array): ServerControl {
  const v = view(data, 7, "server control");
  const id = v.getUint32(1);
  switch (data[0]) {
    case MessageType.HEAD:
      return {
        type: MessageType.HEAD,
        id,
        run: view(data, 9, "HEAD").getUint32(5),
        head: data.subarray(9),
      };
    case MessageType.CONTINUE:
      return { type: MessageType.CONTINUE, id, run: view(data, 9, "CONTINUE").getUint32(5) };
    case MessageType.RESET:
      return {
        type: MessageType.RESET,
        id,
        status: v.getUint16(5),
        reason: decoder.decode(data.subarray(7)),
      };
    default:
      throw new ProtocolError(`unknown server message type ${data[0]}`);
  }
}
