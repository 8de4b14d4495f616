/**
 * One sender per outgoing stream: a Worker that sends whole responses on its
 * own stream with blocking transport calls. File bodies go from the server's
 * `mmap` (an address received as a bigint) straight into the send call.
 *
 * Bodies are sent in runs (docs/PROTOCOL.md): a HEAD or CONTINUE control
 * message, then up to `runBytes` of body in `chunkSize` messages. Between
 * runs the sender checks whether the response was cancelled.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { driverFor } from "../transport/drivers.ts";
import type { SocketDriver } from "../transport/driver.ts";
import type { SocketHandle } from "../transport/types.ts";
import { encodeContinue, encodeHead, encodeReset } from "../protocol/wire.ts";
import { serializeError } from "../transport/worker_protocol.ts";
import type { SenderCommand, SenderReport } from "./sender_protocol.ts";

let sender:
  | {
    driver: SocketDriver;
    handle: SocketHandle;
    stream: number;
    chunk: number;
    run: number;
    cancelled: Int32Array;
  }
  | undefined;

self.onmessage = (e: MessageEvent<SenderCommand>) => {
  const command = e.data;
  if (command.type === "init") {
    sender = {
      driver: driverFor(command.handle.transport),
      handle: command.handle,
      stream: command.stream,
      chunk: command.chunkSize,
      run: command.runBytes,
      cancelled: new Int32Array(command.cancelled),
    };
    return;
  }
  const s = sender!;
  const { id, length } = command;
  const report: SenderReport = { id, sent: 0 };
  try {
    const body = command.pointer !== undefined
      ? Deno.UnsafePointer.create(command.pointer)
      : Deno.UnsafePointer.of(command.text ?? new Uint8Array(0));
    let offset = 0;
    do {
      const run = Math.min(s.run, length - offset);
      if (offset > 0 && Atomics.load(s.cancelled, 0) === ((id + 1) | 0)) {
        sendBytes(s, encodeReset(id, 0, "cancelled"));
        report.cancelled = true;
        break;
      }
      sendBytes(s, offset === 0 ? encodeHead(id, run, command.head) : encodeContinue(id, run));
      for (const end = offset + run; offset < end;) {
        const n = Math.min(s.chunk, end - offset);
        s.driver.send(s.handle, s.stream, Deno.UnsafePointer.offset(body!, offset), n);
        offset += n;
        report.sent = offset;
      }
    } while (offset < length);
  } catch (error) {
    report.error = serializeError(error);
  }
  self.postMessage(report);
};

function sendBytes(s: NonNullable<typeof sender>, bytes: Uint8Array) {
  s.driver.send(s.handle, s.stream, Deno.UnsafePointer.of(bytes), bytes.byteLength);
}
