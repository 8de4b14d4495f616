/**
 * Readiness of usrsctp sockets for the event-loop data path
 * (`loop_association.ts`). A usrsctp socket is no file descriptor, so epoll
 * cannot watch it; the stack instead calls an upcall (`usrsctp_set_upcall`)
 * on its own threads after each packet that leaves the socket readable,
 * writable or in error. Here that upcall is native code that rings a
 * *bell*: a nonblocking pipe whose read end the reactor (`reactor.ts`)
 * watches like any socket. So a stack thread never waits for JavaScript,
 * and an upcall costs one `write` of one byte.
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
 * by waiting again). The bell is drained when it wakes its waiters, before
 * any of them retries, so a ring after that drain is never lost.
 *
 * **Lifetime.** usrsctp reads a socket's upcall and argument and calls it
 * with no lock held, so a call may still be under way on a stack thread
 * after `usrsctp_set_upcall(so, NULL, NULL)` and `usrsctp_close`. `fputc`
 * lives as long as the process, and no bell is ever closed: a released bell
 * goes back to a pool and serves the next socket, where a late ring from
 * its last owner is one spurious wake-up. Nothing the stack can call
 * belongs to an isolate, so a Worker's sockets may use this too.
 *
 * @module
 */

import { C, check, lastError, libc } from "../ffi/libc.ts";
import { nativeFunction } from "../ffi/libdl.ts";
import { libusrsctp } from "../ffi/libusrsctp.ts";
import type { ReadinessSource } from "./driver.ts";
import { forget, READABLE, ready, wake } from "./reactor.ts";

/** A pipe the upcall writes to and the reactor watches. */
interface Bell {
  /** The read end, watched by the reactor. */
  readonly fd: number;
  /** The write end as an unbuffered `FILE *`, the upcall's argument. */
  readonly stream: Deno.PointerObject;
}

const encoder = new TextEncoder();
/** Bells no socket uses; never closed (see the module comment). */
const idle: Bell[] = [];
const drained = new Uint8Array(256);
let fputc: Deno.PointerObject | undefined;

function newBell(): Bell {
  const fds = new Int32Array(2);
  check("pipe2", libc().pipe2(new Uint8Array(fds.buffer), C.O_NONBLOCK | C.O_CLOEXEC));
  const stream = libc().fdopen(fds[1], encoder.encode("w\0"));
  if (stream === null) throw lastError("fdopen");
  check("setvbuf", libc().setvbuf(stream, null, C._IONBF, 0n));
  return { fd: fds[0], stream };
}

/** Empties the bell, and clears a refused ring's error so later rings go out. */
function drain(bell: Bell) {
  const full = BigInt(drained.byteLength);
  let n = full;
  while (n === full) n = libc().read(bell.fd, drained, full);
  libc().clearerr(bell.stream);
}

/**
 * Watches usrsctp socket `socket` through a native upcall. `ready` ignores
 * the direction asked for: any ring answers both (see the module comment).
 * Call `forget` on the result before the socket is closed.
 */
export function upcallReadiness(socket: Deno.PointerObject): ReadinessSource {
  const bell = idle.pop() ?? newBell();
  drain(bell);
  check(
    "usrsctp_set_upcall",
    libusrsctp().usrsctp_set_upcall(socket, fputc ??= nativeFunction("fputc"), bell.stream),
  );
  let waiting: Promise<void> | undefined;
  let forgotten = false;
  return {
    ready() {
      if (forgotten) return Promise.resolve();
      // Whatever happened since the owner's last try rang the bell, which is
      // still full: the reactor reports it at once.
      waiting ??= ready(bell.fd, READABLE).then(() => {
        waiting = undefined;
        // Once forgotten, the bell may already ring for its next socket.
        if (!forgotten) drain(bell);
      });
      return waiting;
    },
    wake: () => wake(bell.fd),
    forget() {
      if (forgotten) return;
      forgotten = true;
      libusrsctp().usrsctp_set_upcall(socket, null, null);
      forget(bell.fd);
      idle.push(bell);
    },
  };
}
