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
 * **Waking.** The upcall does not say what changed, so each ring asks
 * `usrsctp_get_events` and wakes only the waits the socket answers now: the
 * reader once a message (or an end, or an error) is there, the writer once
 * there is room. A socket that is writable, as nearly every socket is, rings
 * after every packet, so without this every fragment of a large message and
 * every acknowledgement would wake the reader for nothing. Every packet that
 * makes the socket readable or writable rings after it, and a ring is seen
 * after the owner's retry and wait that it may answer, with the socket's
 * state as it is then, so no wake-up is lost. A writer may still be woken
 * with too little room for its message; it then waits again.
 *
 * **Lifetime.** usrsctp reads a socket's upcall and argument and calls it
 * with no lock held, right after it has processed a packet for the socket
 * (while it holds a reference to it), so a call may still be under way on a
 * stack thread after `usrsctp_set_upcall(so, NULL, NULL)` and
 * `usrsctp_close`. `fputc` lives as long as the process, and a released
 * bell is closed only `CLOSE_AFTER_MS` later, ages after any call begun
 * before its release has returned. When an isolate ends, Deno closes its
 * read ends; a later ring then fails with EPIPE (Deno ignores SIGPIPE).
 * Nothing the stack calls belongs to an isolate, so a Worker's sockets may
 * use this too.
 *
 * @module
 */

import type { Socket } from "node:net";
import { C, check, lastError, libc } from "../ffi/libc.ts";
import { nativeFunction } from "../ffi/libdl.ts";
import { libusrsctp, USRSCTP } from "../ffi/libusrsctp.ts";
import type { Readiness, ReadinessSource } from "./driver.ts";

const encoder = new TextEncoder();
let fputc: Deno.PointerObject | undefined;
/**
 * `node:net`, loaded with the first bell: importing it starts Deno's Node
 * compatibility layer (30-45 ms on the host, seconds under emulation), which
 * isolates that never watch a usrsctp socket, such as I/O Workers, must not pay.
 */
let net: Promise<typeof import("node:net")> | undefined;
/** How long a released bell stays open for a late ring (see the module comment). */
const CLOSE_AFTER_MS = 1000;

const ignore = () => {};

/** A pipe the upcall writes to and this isolate reads. */
class Bell {
  /** The write end as an unbuffered `FILE *`, the upcall's argument. */
  readonly stream: Deno.PointerObject;
  /** What a ring does now: wake its socket's waits that the socket answers. */
  ring: () => void = ignore;
  /** The read end, read by Deno's I/O once `node:net` is loaded; rings wait in the pipe till then. */
  #reader: Socket | undefined;
  readonly #readFd: number;
  #held = false;
  #closed = false;

  constructor() {
    const fds = new Int32Array(2);
    check("pipe2", libc().pipe2(new Uint8Array(fds.buffer), C.O_NONBLOCK | C.O_CLOEXEC));
    const stream = libc().fdopen(fds[1], encoder.encode("w\0"));
    if (stream === null) throw lastError("fdopen");
    check("setvbuf", libc().setvbuf(stream, null, C._IONBF, 0n));
    this.stream = stream;
    this.#readFd = fds[0];
    void (net ??= import("node:net")).then(({ Socket }) => {
      if (this.#closed) return;
      const reader = new Socket({ fd: fds[0], readable: true, writable: false });
      reader.on("data", () => this.ring());
      this.#reader = reader;
      this.hold(this.#held);
    });
  }

  /** Whether the bell keeps the process alive: only while a wait is pending, as the reactor's epoll_wait does. */
  hold(on: boolean) {
    this.#held = on;
    if (on) this.#reader?.ref();
    else this.#reader?.unref();
  }

  /** Closes both ends, once no ring can come any more. */
  closeLater() {
    this.ring = ignore;
    this.hold(false);
    const timer = setTimeout(() => {
      this.#closed = true;
      libc().fclose(this.stream);
      if (this.#reader) this.#reader.destroy();
      else libc().close(this.#readFd);
    }, CLOSE_AFTER_MS);
    Deno.unrefTimer(timer);
  }
}

const READ = USRSCTP.SCTP_EVENT_READ | USRSCTP.SCTP_EVENT_ERROR;
const WRITE = USRSCTP.SCTP_EVENT_WRITE | USRSCTP.SCTP_EVENT_ERROR;

/**
 * Watches usrsctp socket `socket` through a native upcall. Call `forget` on
 * the result before the socket is closed.
 */
export function upcallReadiness(socket: Deno.PointerObject): ReadinessSource {
  const bell = new Bell();
  const waits: Partial<Record<Readiness, PromiseWithResolvers<void>>> = {};
  let forgotten = false;
  const resolve = (what: Readiness) => {
    const wait = waits[what];
    if (!wait) return;
    waits[what] = undefined;
    if (!waits.readable && !waits.writable) bell.hold(false);
    wait.resolve();
  };
  const wakeAll = () => {
    resolve("readable");
    resolve("writable");
  };
  bell.ring = () => {
    const events = libusrsctp().usrsctp_get_events(socket);
    // Only a null socket fails: wake both, and the owner's next call says what is wrong.
    if (events < 0) return wakeAll();
    if (events & READ) resolve("readable");
    if (events & WRITE) resolve("writable");
  };
  check(
    "usrsctp_set_upcall",
    libusrsctp().usrsctp_set_upcall(socket, fputc ??= nativeFunction("fputc"), bell.stream),
  );
  return {
    ready(what) {
      if (forgotten) return Promise.resolve();
      let wait = waits[what];
      if (!wait) {
        wait = waits[what] = Promise.withResolvers<void>();
        bell.hold(true);
      }
      return wait.promise;
    },
    wake: wakeAll,
    forget() {
      if (forgotten) return;
      forgotten = true;
      libusrsctp().usrsctp_set_upcall(socket, null, null);
      wakeAll();
      bell.closeLater();
    },
  };
}
