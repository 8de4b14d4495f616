/**
 * Readiness of usrsctp sockets for the event-loop data path
 * (`loop_association.ts`). A usrsctp socket is no file descriptor, so epoll
 * cannot watch it; the stack instead calls an upcall (`usrsctp_set_upcall`)
 * on its own threads after each packet of the socket's association. One
 * upcall function per isolate serves every socket: Deno queues each call onto
 * this event loop, where it reads `usrsctp_get_events` and resolves the waits
 * the socket now answers.
 *
 * The stack thread that makes the call waits until the event loop has run
 * it, and the stack calls after every packet while the socket is readable
 * *or writable* (almost always): a large message arriving packet by packet,
 * or acknowledgements of what we sent, would each stall the stack behind the
 * event loop. So a socket's upcall is set only while someone waits on it, and
 * is taken off after each call; a call that leaves a wait unanswered starts a
 * quiet spell of `QUIET_MS` without the upcall, after which the socket is
 * looked at again. While data flows that costs one call per millisecond
 * instead of one per packet, and at most that much latency for what arrives
 * during a quiet spell. Setting the upcall can miss what happened since the
 * owner's last try, so whoever sets it looks at the socket once (see
 * `#ready`).
 *
 * **Lifetime of the upcall function.** Unsetting a socket's upcall does not
 * stop a call a stack thread has already begun (usrsctp reads the pointer and
 * calls it with no lock held), and the stack's threads belong to the process,
 * not to any isolate. So the function is made once per isolate, `unref()`'d
 * (it keeps the process alive only while a wait is pending, as the reactor's
 * `epoll_wait` does for file descriptors) and never closed: a late call finds
 * its socket no longer watched and returns. A socket's upcall is unset before
 * the socket is forgotten, and again by `usrsctpDriver.close` right before
 * `usrsctp_close`, so no socket outlives its owner with the upcall set.
 *
 * Deno frees an isolate's callbacks when the isolate ends, closed or not. So
 * only isolates that live as long as their sockets use this: the event-loop
 * path is off in Workers (`usrsctp.ts` gives them no channel; a Worker can be
 * terminated at any moment, with reads pending and upcalls set), and an
 * isolate that ends (`unload`) unsets every upcall it set first. What stays
 * uncovered is a call a stack thread began in the microseconds before that,
 * while the isolate ends: no JavaScript can close that window, only a native
 * upcall that outlives every isolate could.
 *
 * @module
 */

import { libusrsctp, upcallDefinition, USRSCTP } from "../ffi/libusrsctp.ts";
import { lastError } from "../ffi/libc.ts";
import type { Readiness, ReadinessSource } from "./driver.ts";

/** How long a socket goes without its upcall after one that left a wait unanswered. */
const QUIET_MS = 1;

const READ = USRSCTP.SCTP_EVENT_READ | USRSCTP.SCTP_EVENT_ERROR;
const WRITE = USRSCTP.SCTP_EVENT_WRITE | USRSCTP.SCTP_EVENT_ERROR;

/** A watched socket: whether its upcall is set, and who waits. */
interface Watched {
  readonly socket: Deno.PointerObject;
  armed: boolean;
  forgotten: boolean;
  /** Set while the upcall is off after one that left a wait unanswered (see `#fire`). */
  quiet?: ReturnType<typeof setTimeout>;
  readable?: PromiseWithResolvers<void>;
  writable?: PromiseWithResolvers<void>;
}

type Upcall = Deno.UnsafeCallback<typeof upcallDefinition>;

/** The upcall function of this isolate and the sockets it serves. */
class Upcalls {
  /**
   * The one upcall function of this isolate: made with the first watched
   * socket, never closed (see the module comment), so its pointer stays
   * callable for as long as this isolate runs.
   */
  readonly #upcall: Upcall = Deno.UnsafeCallback.threadSafe(
    upcallDefinition,
    (so) => this.#fire(so),
  );
  /** Watched sockets by address. */
  readonly #watched = new Map<bigint, Watched>();
  /** Pending waits of every socket: while there are any, the upcall keeps the process alive. */
  #waits = 0;

  constructor() {
    this.#upcall.unref();
    // The isolate is ending (a test module done, the main module finished):
    // its callbacks go with it, so no socket may keep pointing at this one.
    globalThis.addEventListener("unload", () => {
      for (const watched of this.#watched.values()) {
        if (watched.armed) this.#arm(watched, false);
      }
    });
  }

  watch(socket: Deno.PointerObject): ReadinessSource {
    const key = BigInt(Deno.UnsafePointer.value(socket));
    const watched: Watched = { socket, armed: false, forgotten: false };
    this.#watched.set(key, watched);
    return {
      ready: (what) => this.#ready(watched, what),
      wake: () => this.#resolve(watched, true, true),
      forget: () => this.#forget(key, watched),
    };
  }

  #ready(watched: Watched, what: Readiness): Promise<void> {
    if (watched.forgotten) return Promise.resolve();
    const existing = watched[what];
    if (existing) return existing.promise;
    const wait = Promise.withResolvers<void>();
    watched[what] = wait;
    if (this.#waits++ === 0) this.#upcall.ref();
    if (!watched.armed && !watched.quiet) {
      this.#arm(watched, true);
      // Whatever happened since the owner's last try raised no upcall: look
      // once. Reading is answered exactly. WRITE means some space, maybe not
      // enough for the next message; the owner tries once more, and then
      // waits with the upcall set.
      const now = what === "writable" || (this.#events(watched) & READ) !== 0;
      if (now) this.#resolve(watched, what === "readable", what === "writable");
    }
    return wait.promise;
  }

  /** An upcall for `so`, queued onto this event loop from a stack thread. */
  #fire(so: Deno.PointerValue) {
    const watched = this.#watched.get(BigInt(Deno.UnsafePointer.value(so)));
    // A socket forgotten since the stack thread began the call.
    if (!watched || !watched.armed) return;
    const events = this.#events(watched);
    this.#resolve(watched, (events & READ) !== 0, (events & WRITE) !== 0);
    this.#arm(watched, false);
    if (!watched.readable && !watched.writable) return;
    // A wait is left: a large message is arriving packet by packet, or the
    // peer acknowledges what we sent. The stack calls on every such packet
    // (the socket is writable), and each call stalls it until the event loop
    // has run it; so the upcall stays off for a moment, then the socket is
    // looked at again.
    watched.quiet = setTimeout(() => this.#endQuiet(watched), QUIET_MS);
  }

  /** The upcall goes back on, and the waits get what the socket shows now. */
  #endQuiet(watched: Watched) {
    watched.quiet = undefined;
    if (watched.forgotten || (!watched.readable && !watched.writable)) return;
    this.#arm(watched, true);
    // As in `#ready`: reading is answered exactly, writing gets one more try.
    this.#resolve(watched, (this.#events(watched) & READ) !== 0, true);
  }

  #events(watched: Watched): number {
    const events = libusrsctp().usrsctp_get_events(watched.socket);
    // Only a null socket fails: report an error, and the owner's next call says what it is.
    return events < 0 ? USRSCTP.SCTP_EVENT_ERROR : events;
  }

  /** Resolves the waits for reading and for writing, as asked. */
  #resolve(watched: Watched, readable: boolean, writable: boolean) {
    if (readable && watched.readable) {
      watched.readable.resolve();
      watched.readable = undefined;
      this.#waited();
    }
    if (writable && watched.writable) {
      watched.writable.resolve();
      watched.writable = undefined;
      this.#waited();
    }
  }

  #waited() {
    if (--this.#waits === 0) this.#upcall.unref();
  }

  #arm(watched: Watched, on: boolean) {
    const result = libusrsctp().usrsctp_set_upcall(
      watched.socket,
      on ? this.#upcall.pointer : null,
      null,
    );
    if (result < 0) throw lastError("usrsctp_set_upcall");
    watched.armed = on;
  }

  /**
   * Unsets the socket's upcall and resolves its waits; the socket may be
   * closed right after. A call a stack thread began before finds the socket
   * no longer watched and does nothing; the function it calls stays alive.
   */
  #forget(key: bigint, watched: Watched): void {
    if (watched.forgotten) return;
    watched.forgotten = true;
    clearTimeout(watched.quiet);
    if (watched.armed) this.#arm(watched, false);
    this.#resolve(watched, true, true);
    this.#watched.delete(key);
  }
}

let upcalls: Upcalls | undefined;

/**
 * Watches a usrsctp socket through its upcall; call `forget` on the result
 * before the socket is closed. Not for Workers (see the module comment).
 */
export function upcallReadiness(socket: Deno.PointerObject): ReadinessSource {
  upcalls ??= new Upcalls();
  return upcalls.watch(socket);
}
