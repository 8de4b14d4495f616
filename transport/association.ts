/**
 * Opening associations: `connect` and `listen` for every transport. An
 * association on the event-loop data path (`LoopAssociation`, where the
 * driver has a nonblocking channel) also connects on the event loop, with no
 * Worker at all; other connects, and every accept loop, run their blocking
 * handshakes in I/O Workers (`io_worker.ts`), and the association then moves
 * its data on the event loop or in I/O Workers (`WorkerAssociation`).
 * Transports differ only in their `SocketDriver`.
 *
 * @module
 */

import { driverFor } from "./drivers.ts";
import type { AssociationSetup } from "./base_association.ts";
import type { SocketDriver } from "./driver.ts";
import { LoopAssociation } from "./loop_association.ts";
import { MAX_PATH_MTU, SHARED_BYTES, TransportError } from "./types.ts";
import type {
  Association,
  AssociationOptions,
  Listener,
  ListenOptions,
  TransportName,
} from "./types.ts";
import { spawnIoWorker, WorkerAssociation } from "./worker_association.ts";
import { deserializeError } from "./worker_protocol.ts";
import type { WorkerEvent } from "./worker_protocol.ts";

/** How long a refused association stays open for its refusal to be read. */
const REFUSED_CLOSE_DELAY_MS = 1000;

/** Fills in the documented defaults of `AssociationOptions`. */
export function withDefaults(options: AssociationOptions = {}): Required<AssociationOptions> {
  const streams = options.streams ?? 8;
  if (!Number.isInteger(streams) || streams < 1 || streams > 65535) {
    throw new RangeError(`streams must be an integer from 1 to 65535, got ${streams}`);
  }
  return {
    streams,
    sendBufferSize: options.sendBufferSize ?? 4 * 1024 * 1024,
    receiveBufferSize: options.receiveBufferSize ?? 4 * 1024 * 1024,
    udpPort: options.udpPort ?? 9899,
    udpEncapsulation: options.udpEncapsulation ?? false,
    streamScheduler: options.streamScheduler ?? "fcfs",
    maxMessageSize: checked("maxMessageSize", options.maxMessageSize ?? 64 * 1024 * 1024, 1024),
    handshakeTimeout: checked("handshakeTimeout", options.handshakeTimeout ?? 5, 1),
    sendTimeout: checked("sendTimeout", options.sendTimeout ?? 0, 0),
    dataPath: options.dataPath ?? "event-loop",
    pathMtu: checkedPathMtu(options.pathMtu ?? "auto"),
    sackFrequency: checked("sackFrequency", options.sackFrequency ?? 0, 0, 65535),
    sackDelay: checked("sackDelay", options.sackDelay ?? 0, 0, MAX_SACK_DELAY_MS),
  };
}

/** RFC 9260 6.2: an acknowledgement is delayed at most 500 ms. */
const MAX_SACK_DELAY_MS = 500;

function checkedPathMtu(value: number | "auto"): number | "auto" {
  if (value === "auto" || value === 0) return value;
  if (!Number.isInteger(value) || value < 512 || value > MAX_PATH_MTU) {
    throw new RangeError(
      `pathMtu must be "auto", 0 (path MTU discovery) or an integer from 512 to ${MAX_PATH_MTU}, got ${value}`,
    );
  }
  return value;
}

/** `value`, after checking it is an integer from `min` to `max`. */
function checked(name: string, value: number, min: number, max = 2 ** 30): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/** The driver of `transport`, after checking it can do what `options` ask. */
function driverWith(transport: TransportName, options: Required<AssociationOptions>): SocketDriver {
  const driver = driverFor(transport);
  if (!driver.streamSchedulers.includes(options.streamScheduler)) {
    throw new TransportError(
      `the ${transport} transport cannot select the stream scheduler ` +
        `"${options.streamScheduler}" (it has: ${driver.streamSchedulers.join(", ")})`,
    );
  }
  return driver;
}

/** Connects to a listener of `transport` at `host:port`. */
export function connect(
  transport: TransportName,
  host: string,
  port: number,
  options?: AssociationOptions,
): Promise<Association> {
  const resolved = withDefaults(options);
  const driver = driverWith(transport, resolved);
  driver.prepare(resolved);
  if (resolved.dataPath === "event-loop" && driver.channel && driver.connectOnLoop) {
    return connectOnLoop(transport, driver, host, port, resolved);
  }
  const writer = spawnIoWorker(`${transport}-writer`, {
    role: "connect",
    transport,
    host,
    port,
    options: resolved,
  });
  return new Promise((resolve, reject) => {
    writer.onmessage = (e: MessageEvent<WorkerEvent>) => {
      const event = e.data;
      if (event.type === "established") {
        const { established, shared } = event;
        resolve(
          associationFor({ transport, driver, options: resolved, established, shared }, writer),
        );
      } else if (event.type === "error") {
        writer.terminate();
        reject(deserializeError(event.error));
      }
    };
  });
}

/**
 * Connects from the event loop: starting a Worker costs far more than the
 * handshake. In the lab (one CPU), connect + one request + close took about
 * 250 ms of CPU through a Worker, 20 ms without (`scripts/bench/connect.ts`).
 */
async function connectOnLoop(
  transport: TransportName,
  driver: SocketDriver,
  host: string,
  port: number,
  options: Required<AssociationOptions>,
): Promise<Association> {
  const established = await driver.connectOnLoop!(host, port, options);
  const shared = new SharedArrayBuffer(SHARED_BYTES);
  return new LoopAssociation({ transport, driver, options, established, shared });
}

/** Listens for associations of `transport` on `host:port` (port 0: any free port). */
export function listen(
  transport: TransportName,
  host: string,
  port: number,
  options?: ListenOptions,
): Listener {
  const resolved = withDefaults(options);
  const driver = driverWith(transport, resolved);
  driver.prepare(resolved, port);
  const bound = driver.listen(host, port, resolved);
  return new WorkerListener(transport, driver, bound.socket, bound.port, resolved, {
    onAcceptError: options?.onAcceptError,
    maxAssociations: checked("maxAssociations", options?.maxAssociations ?? 0, 0),
    refusal: options?.refusal,
  });
}

/** The association of `setup`: on the event loop where the driver can, else in Workers. */
function associationFor(setup: AssociationSetup, connector?: Worker): Association {
  if (setup.options.dataPath === "event-loop" && setup.driver.channel) {
    connector?.terminate();
    return new LoopAssociation(setup);
  }
  // The Worker that connected goes on as the writer.
  return new WorkerAssociation(setup, connector);
}

class WorkerListener implements Listener {
  readonly transport: TransportName;
  readonly port: number;
  readonly #driver: SocketDriver;
  readonly #socket: bigint;
  readonly #acceptor: Worker;
  readonly #ready: Association[] = [];
  readonly #waiters: PromiseWithResolvers<Association>[] = [];
  readonly #stopped = Promise.withResolvers<void>();
  /** Refused associations waiting to be closed. */
  readonly #refused = new Map<
    bigint,
    { timer: ReturnType<typeof setTimeout>; close: () => void }
  >();
  #closed = false;

  constructor(
    transport: TransportName,
    driver: SocketDriver,
    socket: bigint,
    port: number,
    options: Required<AssociationOptions>,
    { onAcceptError, maxAssociations, refusal }: ListenOptions,
  ) {
    this.transport = transport;
    this.port = port;
    this.#driver = driver;
    this.#socket = socket;
    const open = new SharedArrayBuffer(4);
    const opened = new Int32Array(open);
    this.#acceptor = spawnIoWorker(`${transport}-acceptor`, {
      role: "accept",
      transport,
      socket,
      options,
      admission: { open, limit: maxAssociations ?? 0, refusal },
    });
    this.#acceptor.onmessage = (e: MessageEvent<WorkerEvent>) => {
      const event = e.data;
      if (event.type === "established") {
        const association = associationFor({
          transport,
          driver,
          options,
          established: event.established,
          shared: event.shared,
          onClosed: () => Atomics.sub(opened, 0, 1),
        });
        const waiter = this.#waiters.shift();
        if (waiter) waiter.resolve(association);
        else this.#ready.push(association);
      } else if (event.type === "accept-failed") {
        onAcceptError?.(deserializeError(event.error));
      } else if (event.type === "refused") {
        this.#closeRefused(event.socket);
        onAcceptError?.(deserializeError(event.error));
      } else if (event.type === "end") {
        this.#stopped.resolve();
      }
    };
  }

  /**
   * Closes a refused association after a while: at once, an SCTP peer could
   * find its association gone before it has read its stream counts, and see
   * a failed connect instead of the refusal.
   */
  #closeRefused(socket: bigint) {
    const close = () => {
      this.#refused.delete(socket);
      try {
        this.#driver.shutdown(socket);
      } catch {
        // The peer went first.
      }
      this.#driver.close(socket);
    };
    this.#refused.set(socket, { timer: setTimeout(close, REFUSED_CLOSE_DELAY_MS), close });
  }

  accept(): Promise<Association> {
    const ready = this.#ready.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#closed) return Promise.reject(new TransportError("listener is closed"));
    const waiter = Promise.withResolvers<Association>();
    this.#waiters.push(waiter);
    return waiter.promise;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Association> {
    while (!this.#closed || this.#ready.length > 0) {
      try {
        yield await this.accept();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#driver.shutdown(this.#socket);
    await this.#stopped.promise;
    this.#acceptor.terminate();
    for (const { timer, close } of this.#refused.values()) {
      clearTimeout(timer);
      close();
    }
    this.#driver.close(this.#socket);
    const closed = new TransportError("listener is closed");
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
    await Promise.all(this.#ready.splice(0).map((a) => a.abort()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
