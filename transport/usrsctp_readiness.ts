/**
 * Readiness of usrsctp sockets for the event-loop data path
 * (`loop_association.ts`). A usrsctp socket is no file descriptor, so epoll
 * cannot watch it; the stack instead calls an upcall (`usrsctp_set_upcall`)
 * on its own threads after each packet that leaves the socket readable,
 * writable or in error. Here that upcall is native code that rings a
 * *bell*: a nonblocking pipe whose read end Deno's own I/O reads (a
 * `node:net` socket on the descriptor), so a ring wakes the event loop
 * directly, with no thread in between. A stack thread never waits for
 * JavaScript, and an upcall costs one `write` of one byte.
 *
 * **The native upcall is libc's `fputc`.** usrsctp calls
 * `upcall(struct socket *so, void *arg, int flags)`; `fputc(int c, FILE
 * *stream)` called that way writes the low byte of `so` to `arg`, which is
 * the bell's write end opened as an unbuffered stdio stream (`fdopen`,
 * `_IONBF`), and ignores `flags`: on x86_64 and aarch64 the first arguments
 * travel in registers, so a function with fewer parameters never reads the
 * rest. `fputc` locks its stream, so stack threads may ring one bell at
 * once. A full pipe refuses the byte (EAGAIN): its reader is due anyway.
 *
 * **Waking.** The upcall does not say what changed, so one bell serves both
 * directions: a ring resolves the reader's and the writer's waits alike, and
 * each retries its call (a wake-up may be spurious, which the owner handles
 * by waiting again). A ring is seen as data on the bell, delivered to this
 * isolate after the owner's retry and wait that it may answer, so none is
 * lost.
 *
 * **Lifetime.** usrsctp reads a socket's upcall and argument and calls it
 * with no lock held, so a call may still be under way on a stack thread
 * after `usrsctp_set_upcall(so, NULL, NULL)` and `usrsctp_close`. `fputc`
 * lives as long as the process, and no bell's write end is ever closed: a
 * released bell goes back to a pool and serves the next socket, where a
 * late ring from its last owner is one spurious wake-up. When an isolate
 * ends, Deno closes its read ends; a later ring then fails with EPIPE
 * (Deno ignores SIGPIPE) and is lost with nobody to wake. Nothing the stack
 * calls belongs to an isolate, so a Worker's sockets may use this too.
 *
 * @module
 */

import { Socket } from "node:net";
import { C, check, lastError, libc } from "../ffi/libc.ts";
import { nativeFunction } from "../ffi/libdl.ts";
import { libusrsctp } from "../ffi/libusrsctp.ts";
import type { ReadinessSource } from "./driver.ts";

/** A pipe the upcall writes to and this isolate reads. */
interface Bell {
  /** The write end as an unbuffered `FILE *`, the upcall's argument. */
  readonly stream: Deno.PointerObject;
  /** The read end, read by Deno's I/O. */
  readonly reader: Socket;
  /** What a ring does now: resolve its socket's waits. */
  ring: () => void;
}

const encoder = new TextEncoder();
/** Bells no socket uses (see the module comment). */
const idle: Bell[] = [];
let fputc: Deno.PointerObject | undefined;

const ignore = () => {};

function newBell(): Bell {
  const fds = new Int32Array(2);
  check("pipe2", libc().pipe2(new Uint8Array(fds.buffer), C.O_NONBLOCK | C.O_CLOEXEC));
  const stream = libc().fdopen(fds[1], encoder.encode("w\0"));
  if (stream === null) throw lastError("fdopen");
  check("setvbuf", libc().setvbuf(stream, null, C._IONBF, 0n));
  const reader = new Socket({ fd: fds[0], readable: true, writable: false });
  const bell: Bell = { stream, reader, ring: ignore };
  reader.on("data", () => bell.ring());
  reader.unref();
  return bell;
}

/**
 * Watches usrsctp socket `socket` through a native upcall. `ready` ignores
 * the direction asked for: any ring answers both (see the module comment).
 * Call `forget` on the result before the socket is closed.
 */
export function upcallReadiness(socket: Deno.PointerObject): ReadinessSource {
  const bell = idle.pop() ?? newBell();
  let waiting: PromiseWithResolvers<void> | undefined;
  let forgotten = false;
  const resolve = () => {
    const wait = waiting;
    if (!wait) return;
    waiting = undefined;
    // Only a pending wait keeps the process alive, as the reactor's epoll_wait does.
    bell.reader.unref();
    wait.resolve();
  };
  bell.ring = resolve;
  check(
    "usrsctp_set_upcall",
    libusrsctp().usrsctp_set_upcall(socket, fputc ??= nativeFunction("fputc"), bell.stream),
  );
  return {
    ready() {
      if (forgotten) return Promise.resolve();
      if (!waiting) {
        waiting = Promise.withResolvers<void>();
        bell.reader.ref();
      }
      return waiting.promise;
    },
    wake: resolve,
    forget() {
      if (forgotten) return;
      forgotten = true;
      libusrsctp().usrsctp_set_upcall(socket, null, null);
      resolve();
      bell.ring = ignore;
      idle.push(bell);
    },
  };
}
