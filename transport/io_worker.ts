/**
 * The Worker that makes an association's blocking calls, so the main event
 * loop never blocks. One instance plays one role:
 *
 * - `connect`: connects, reports the association, then serves as its writer;
 * - `accept`: accepts associations on a listening socket until shut down;
 * - `read`: receives whole messages and posts them (with backpressure);
 * - `write`: sends batches of messages on request, in order.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { driverFor } from "./drivers.ts";
import type { Established, SocketDriver } from "./driver.ts";
import {
  HandshakeError,
  isClosing,
  SHARED_BYTES,
  SHARED_CLOSING,
  SHARED_SENT,
  TransportError,
} from "./types.ts";
import type { AssociationOptions, SocketHandle, TransportName } from "./types.ts";
import { creditOf, serializeError } from "./worker_protocol.ts";
import type {
  Admission,
  ReadCredit,
  SerializedError,
  WorkerCommand,
  WorkerEvent,
  WriteRequest,
} from "./worker_protocol.ts";

const post = (event: WorkerEvent, transfer: Transferable[] = []) =>
  self.postMessage(event, transfer);

self.onmessage = (e: MessageEvent<WorkerCommand | WriteRequest>) => {
  const command = e.data;
  if ("batches" in command) return write(command);
  const driver = driverFor(command.transport);
  switch (command.role) {
    case "connect":
      return connect(driver, command.transport, command.host, command.port, command.options);
    case "accept":
      return acceptLoop(
        driver,
        command.transport,
        command.socket,
        command.options,
        command.admission,
      );
    case "read":
      return readLoop(driver, command.socket, command.credit, command.maxMessageSize);
    case "write":
      writer = { driver, handle: command.handle };
      return;
  }
};

let writer: { driver: SocketDriver; handle: SocketHandle } | undefined;

function connect(
  driver: SocketDriver,
  transport: TransportName,
  host: string,
  port: number,
  options: Required<AssociationOptions>,
) {
  let established: Established;
  try {
    established = driver.connect(host, port, options);
  } catch (error) {
    return post({ type: "error", error: serializeError(error) });
  }
  writer = {
    driver,
    handle: { transport, socket: established.socket, shared: new SharedArrayBuffer(SHARED_BYTES) },
  };
  post({ type: "established", established, shared: writer.handle.shared });
}

function acceptLoop(
  driver: SocketDriver,
  transport: TransportName,
  socket: bigint,
  options: Required<AssociationOptions>,
  admission: Admission,
) {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const open = new Int32Array(admission.open);
  for (;;) {
    let established: Established | null;
    try {
      established = driver.accept(socket, options);
    } catch (error) {
      // A failed handshake of one peer must not stop the listener; a
      // persistent failure (EMFILE) must not spin either.
      post({ type: "accept-failed", error: serializeError(error) });
      if (!(error instanceof HandshakeError)) Atomics.wait(pause, 0, 0, 100);
      continue;
    }
    if (established === null) return post({ type: "end" });
    if (admission.limit > 0 && Atomics.load(open, 0) >= admission.limit) {
      const { socket: refused } = established;
      sendRefusal(driver, transport, refused, admission.refusal);
      const reason = `association refused: ${admission.limit} are open (maxAssociations)`;
      post({ type: "refused", socket: refused, error: serializeError(new TransportError(reason)) });
      continue;
    }
    Atomics.add(open, 0, 1);
    post({ type: "established", established, shared: new SharedArrayBuffer(SHARED_BYTES) });
  }
}

/**
 * Sends `refusal` on stream 0 of a just accepted association. The send goes
 * into an empty socket buffer, so it does not wait; marked as closing, a
 * send that would wait gives up instead.
 */
function sendRefusal(
  driver: SocketDriver,
  transport: TransportName,
  socket: bigint,
  refusal: Uint8Array<ArrayBuffer> | undefined,
) {
  if (!refusal) return;
  const shared = new SharedArrayBuffer(SHARED_BYTES);
  new Int32Array(shared)[SHARED_CLOSING] = 1;
  try {
    driver.send(
      { transport, socket, shared },
      0,
      Deno.UnsafePointer.of(refusal),
      refusal.byteLength,
    );
  } catch {
    // Gone already: closing it is all that is left to do.
  }
}

function readLoop(
  driver: SocketDriver,
  socket: bigint,
  credit: ReadCredit,
  maxMessageSize: number,
) {
  const unconsumed = new Int32Array(credit.buffer);
  for (;;) {
    let message;
    try {
      message = driver.receive(socket, maxMessageSize);
    } catch (error) {
      return post({ type: "error", error: serializeError(error) });
    }
    if (message === null) return post({ type: "end" });
    // Count before posting: the transfer detaches the buffer (byteLength 0).
    const cost = creditOf(message.data.byteLength);
    let pending = Atomics.add(unconsumed, 0, cost) + cost;
    const { stream, data, truncated } = message;
    post({ type: "message", stream, data, truncated }, [data.buffer]);
    // Backpressure: stop reading (so the peer's window closes) while the
    // main thread has more than `credit.limit` bytes it has not consumed.
    while (pending > credit.limit) {
      Atomics.wait(unconsumed, 0, pending, 1000);
      pending = Atomics.load(unconsumed, 0);
    }
  }
}

/** The first send that failed: the stream may be mid-message, so nothing after it goes out. */
let writeFailure: SerializedError | undefined;

function write(request: WriteRequest) {
  if (!writer) throw new Error("write request before the writer was set up");
  const sent = new Int32Array(writer.handle.shared);
  for (const { id, messages } of request.batches) {
    try {
      if (writeFailure) throw new TransportError(writeFailure.message);
      for (const message of messages) {
        // A closing association frees what our messages point to once we report.
        if (isClosing(writer.handle)) throw new TransportError("association closed");
        if (message.address === undefined) {
          const { data } = message;
          writer.driver.send(
            writer.handle,
            message.stream,
            Deno.UnsafePointer.of(data),
            data.byteLength,
          );
        } else {
          const pointer = Deno.UnsafePointer.create(message.address);
          writer.driver.send(writer.handle, message.stream, pointer, message.length);
        }
        Atomics.add(sent, SHARED_SENT, 1);
      }
      post({ type: "sent", id });
    } catch (error) {
      writeFailure ??= serializeError(error);
      post({ type: "sent", id, error: serializeError(error) });
    }
  }
}
