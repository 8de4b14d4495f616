/**
 * Accepting on a stream socket whose peers must first send a fixed-size
 * hello, without letting a slow or silent peer hold up anyone else: each
 * accepted socket waits in a set until its hello is complete, wrong or late,
 * and one `poll` watches the listener and the whole set. Per listening
 * socket, in the acceptor thread that calls {@link acceptGreeted}.
 *
 * @module
 */

import { C, lastError, libc, pollfd } from "../ffi/libc.ts";
import { Errno } from "../ffi/errors.ts";
import type { Established } from "./driver.ts";
import { acceptSocket } from "./libc_stream.ts";
import { HandshakeError } from "./types.ts";

/** How a protocol greets an accepted peer and reads its hello. */
export interface Greeting {
  /** The transport, for error messages. */
  readonly name: string;
  /** Bytes of the peer's hello. */
  readonly helloBytes: number;
  /** Milliseconds the peer has to send its hello. */
  readonly timeoutMs: number;
  /** Sockets that may wait at once; beyond, the oldest is dropped. */
  readonly maxWaiting: number;
  /** Sets up a fresh accepted socket and sends our hello; must not block. */
  greet(socket: number): void;
  /** The association, from the peer's complete hello; throws to refuse the peer. */
  complete(socket: number, hello: Uint8Array): Established;
}

interface Waiting {
  readonly peer: string;
  readonly deadline: number;
  readonly hello: Uint8Array;
  got: number;
}

interface ListenerState {
  readonly waiting: Map<number, Waiting>;
  /** Finished handshakes not yet handed out: an association, or why a peer was refused. */
  readonly outcomes: (Established | HandshakeError)[];
}

const states = new Map<bigint, ListenerState>();
/** Room for a `sockaddr_in6`, the larger of the two families. */
const PEER_ADDRESS_BYTES = 28;

/**
 * *Blocking*: the next association on `listening` whose peer completed its
 * hello, or `null` once the listener was shut down (the peers still waiting
 * are then closed). Throws a `HandshakeError` for each refused peer; call
 * again to go on.
 */
export function acceptGreeted(listening: bigint, greeting: Greeting): Established | null {
  let state = states.get(listening);
  if (!state) states.set(listening, state = { waiting: new Map(), outcomes: [] });
  for (;;) {
    const outcome = state.outcomes.shift();
    if (outcome instanceof HandshakeError) throw outcome;
    if (outcome) return outcome;
    const ready = waitForEvents(listening, state);
    if (ready.listener && !acceptOne(listening, state, greeting)) {
      for (const socket of state.waiting.keys()) libc().close(socket);
      states.delete(listening);
      return null;
    }
    for (const socket of ready.sockets) readHello(socket, state, greeting);
    const now = performance.now();
    for (const [socket, waiting] of state.waiting) {
      if (waiting.deadline > now) continue;
      refuse(
        state,
        socket,
        `${greeting.name}: peer ${waiting.peer} sent no hello within ${
          greeting.timeoutMs / 1000
        } s`,
      );
    }
  }
}

/** Polls the listener and every waiting socket until one is ready or a deadline passes. */
function waitForEvents(
  listening: bigint,
  state: ListenerState,
): { listener: boolean; sockets: number[] } {
  const sockets = [...state.waiting.keys()];
  const fds = new Uint8Array(pollfd.size * (sockets.length + 1));
  const view = new DataView(fds.buffer);
  const { fd, events, revents } = pollfd.fields;
  [Number(listening), ...sockets].forEach((socket, i) => {
    view.setInt32(i * pollfd.size + fd.offset, socket, true);
    view.setUint16(i * pollfd.size + events.offset, C.POLLIN, true);
  });
  const first = Math.min(...[...state.waiting.values()].map((w) => w.deadline));
  const timeout = sockets.length === 0 ? -1 : Math.max(0, Math.ceil(first - performance.now()));
  if (libc().poll(fds, BigInt(sockets.length + 1), timeout) < 0) {
    const error = lastError("poll");
    if (error.errno !== Errno.EINTR) throw error;
    return { listener: false, sockets: [] };
  }
  const isReady = (i: number) => view.getUint16(i * pollfd.size + revents.offset, true) !== 0;
  return { listener: isReady(0), sockets: sockets.filter((_, i) => isReady(i + 1)) };
}

/** Accepts one connection and greets it; false once the listener is shut down. */
function acceptOne(listening: bigint, state: ListenerState, greeting: Greeting): boolean {
  const address = new Uint8Array(PEER_ADDRESS_BYTES);
  const socket = acceptSocket(listening, { address });
  if (socket === null) return false;
  const peer = formatPeer(address);
  try {
    greeting.greet(socket);
  } catch (error) {
    libc().close(socket);
    state.outcomes.push(
      new HandshakeError(`${greeting.name}: peer ${peer}: ${(error as Error).message}`, {
        cause: error,
      }),
    );
    return true;
  }
  if (state.waiting.size >= greeting.maxWaiting) {
    const [oldest, waiting] = state.waiting.entries().next().value!;
    refuse(
      state,
      oldest,
      `${greeting.name}: peer ${waiting.peer} dropped before its hello: ` +
        `${greeting.maxWaiting} peers were waiting to finish theirs`,
    );
  }
  state.waiting.set(socket, {
    peer,
    deadline: performance.now() + greeting.timeoutMs,
    hello: new Uint8Array(greeting.helloBytes),
    got: 0,
  });
  return true;
}

/** Reads what has arrived of a waiting peer's hello, and completes or refuses it. */
function readHello(socket: number, state: ListenerState, greeting: Greeting) {
  const waiting = state.waiting.get(socket);
  if (!waiting) return; // dropped for a newer peer in this round
  const n = Number(
    libc().recv(
      socket,
      Deno.UnsafePointer.offset(Deno.UnsafePointer.of(waiting.hello)!, waiting.got),
      BigInt(waiting.hello.byteLength - waiting.got),
      C.MSG_DONTWAIT,
    ),
  );
  if (n < 0) {
    const error = lastError("recv");
    if (error.errno === Errno.EAGAIN || error.errno === Errno.EINTR) return;
    return refuse(state, socket, `${greeting.name}: peer ${waiting.peer}: ${error.message}`);
  }
  if (n === 0) {
    return refuse(state, socket, `${greeting.name}: peer ${waiting.peer} closed before its hello`);
  }
  waiting.got += n;
  if (waiting.got < waiting.hello.byteLength) return;
  state.waiting.delete(socket);
  try {
    state.outcomes.push(greeting.complete(socket, waiting.hello));
  } catch (error) {
    libc().close(socket);
    state.outcomes.push(
      new HandshakeError(`${(error as Error).message} (peer ${waiting.peer})`, { cause: error }),
    );
  }
}

function refuse(state: ListenerState, socket: number, reason: string) {
  state.waiting.delete(socket);
  libc().close(socket);
  state.outcomes.push(new HandshakeError(reason));
}

/** `address:port` of a `sockaddr_in` or `sockaddr_in6` as accept fills it. */
function formatPeer(address: Uint8Array): string {
  const port = (address[2] << 8) | address[3];
  if ((address[0] | (address[1] << 8)) === C.AF_INET) {
    return `${address.subarray(4, 8).join(".")}:${port}`;
  }
  const view = new DataView(address.buffer, address.byteOffset + 8, 16);
  const words = Array.from({ length: 8 }, (_, i) => view.getUint16(2 * i).toString(16));
  return `[${words.join(":")}]:${port}`;
}
