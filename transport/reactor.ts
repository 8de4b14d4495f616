/**
 * Readiness of sockets for the event-loop data path (`loop_association.ts`)
 * and the proxy's front (`tcp_socket.ts`): one epoll instance per isolate,
 * looked at on this thread while it has events ready (`epoll_wait` with a
 * timeout of 0), and waited on by at most one `epoll_wait` at a time on
 * Deno's blocking pool once it has none.
 *
 * An owner makes nonblocking calls on its socket until one would block, then
 * awaits `ready(fd, READABLE | WRITABLE)`. The socket is armed one-shot for
 * that; when epoll reports it, the wait resolves and the owner retries. So an
 * association with data to move makes no thread hop at all, a busy set of
 * sockets makes none either (the woken owners run on to their next wait,
 * then the set is looked at again), and every idle one together costs one
 * parked pool thread. Wake-ups may be spurious (the
 * retried call then would block again and the owner waits again).
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { C, check, epollEventLayout, libc } from "../ffi/libc.ts";
import { StructBuffer } from "../ffi/struct.ts";
import type { ReadinessSource } from "./driver.ts";

/** Wait until the socket has something to read, an end, or an error. */
export const READABLE = C.EPOLLIN;
/** Wait until the socket takes more data, or has an error. */
export const WRITABLE = C.EPOLLOUT;

const epollEvent = epollEventLayout(Deno.build.arch);
const MAX_EVENTS = 64;
const EVENTS_OFFSET = epollEvent.fields.events.offset;
const DATA_OFFSET = epollEvent.fields.data.offset;

/** A watched socket: what it is armed for, and who waits. */
interface Watched {
  armed: number;
  registered: boolean;
  readable?: PromiseWithResolvers<void>;
  writable?: PromiseWithResolvers<void>;
}

/** The epoll instance of this isolate and the one `epoll_wait` that serves it. */
class Reactor {
  readonly #epoll: number;
  /** An eventfd in the set: written to end an `epoll_wait` that has nothing left to watch. */
  readonly #wake: number;
  readonly #watched = new Map<number, Watched>();
  readonly #control = new StructBuffer(epollEvent);
  readonly #events = new Uint8Array(epollEvent.size * MAX_EVENTS);
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #counter = new BigUint64Array(1);
  readonly #counterBytes = new Uint8Array(this.#counter.buffer);
  /** Sockets armed for something. */
  #armed = 0;
  #waiting = false;

  constructor() {
    this.#epoll = check("epoll_create1", libc().epoll_create1(C.EPOLL_CLOEXEC));
    this.#wake = check("eventfd", libc().eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
    this.#control.set("events", C.EPOLLIN).set("data", this.#wake);
    check(
      "epoll_ctl(ADD eventfd)",
      libc().epoll_ctl(this.#epoll, C.EPOLL_CTL_ADD, this.#wake, this.#control.bytes),
    );
  }

  ready(fd: number, what: number): Promise<void> {
    let watched = this.#watched.get(fd);
    if (!watched) this.#watched.set(fd, watched = { armed: 0, registered: false });
    const slot = what === READABLE ? "readable" : "writable";
    const wait = watched[slot] ??= Promise.withResolvers<void>();
    try {
      this.#arm(fd, watched, watched.armed | what);
    } catch (error) {
      // Not watched (a closed descriptor, no memory): nobody may wait on it for nothing.
      this.#fire(watched, READABLE | WRITABLE);
      throw error;
    }
    // The loop may answer the wait at once (its first look at the set is synchronous).
    if (!this.#waiting) void this.#loop();
    return wait.promise;
  }

  wake(fd: number): void {
    const watched = this.#watched.get(fd);
    if (!watched) return;
    this.#fire(watched, READABLE | WRITABLE);
    this.#setArmed(watched, 0);
    // Nothing left to watch: end the outstanding epoll_wait, which would keep the process alive.
    if (this.#armed === 0 && this.#waiting) this.#kick();
  }

  forget(fd: number): void {
    const watched = this.#watched.get(fd);
    if (!watched) return;
    this.wake(fd);
    this.#watched.delete(fd);
    if (watched.registered) libc().epoll_ctl(this.#epoll, C.EPOLL_CTL_DEL, fd, this.#control.bytes);
  }

  /** (Re-)arms `fd` one-shot for `events` (0: leaves it disarmed). */
  #arm(fd: number, watched: Watched, events: number) {
    if (events !== 0) {
      this.#control.set("events", events | C.EPOLLONESHOT).set("data", fd);
      const op = watched.registered ? C.EPOLL_CTL_MOD : C.EPOLL_CTL_ADD;
      check("epoll_ctl", libc().epoll_ctl(this.#epoll, op, fd, this.#control.bytes));
      watched.registered = true;
    }
    // Counted once the kernel watches it: a count it does not would keep the loop waiting.
    this.#setArmed(watched, events);
  }

  #setArmed(watched: Watched, events: number) {
    if ((watched.armed === 0) !== (events === 0)) this.#armed += events === 0 ? -1 : 1;
    watched.armed = events;
  }

  /** Resolves the waits `events` answer (an error or hang-up answers both). */
  #fire(watched: Watched, events: number) {
    if (events & (READABLE | C.EPOLLERR | C.EPOLLHUP)) {
      watched.readable?.resolve();
      watched.readable = undefined;
    }
    if (events & (WRITABLE | C.EPOLLERR | C.EPOLLHUP)) {
      watched.writable?.resolve();
      watched.writable = undefined;
    }
  }

  async #loop() {
    this.#waiting = true;
    try {
      while (this.#armed > 0) {
        // Events ready now are taken on this thread; only an idle set waits on the pool.
        let n = libc().epoll_poll(this.#epoll, this.#events, MAX_EVENTS, 0);
        // A failure can only be EINTR (see the symbol's comment): wait again.
        if (n <= 0) n = await libc().epoll_wait(this.#epoll, this.#events, MAX_EVENTS, -1);
        this.#dispatch(n);
        // The owners woken run on to their next wait before the set is looked at again.
        if (n > 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.#waiting = false;
    }
  }

  /** Resolves the waits the first `n` events in `#events` answer. */
  #dispatch(n: number) {
    for (let i = 0; i < n; i++) {
      const at = i * epollEvent.size;
      const events = this.#eventsView.getUint32(at + EVENTS_OFFSET, true);
      const fd = Number(this.#eventsView.getBigUint64(at + DATA_OFFSET, true));
      if (fd === this.#wake) {
        libc().read(this.#wake, this.#counterBytes, 8n);
        continue;
      }
      const watched = this.#watched.get(fd);
      if (!watched || watched.armed === 0) continue;
      this.#fire(watched, events);
      // One-shot: the socket is disarmed now; arm it again for what still waits.
      const still = (watched.readable ? READABLE : 0) | (watched.writable ? WRITABLE : 0);
      try {
        this.#arm(fd, watched, still);
      } catch {
        // It can no longer be watched: its owners wake, and their next call says why.
        this.#fire(watched, READABLE | WRITABLE);
        this.#setArmed(watched, 0);
      }
    }
  }

  #kick() {
    this.#counter[0] = 1n;
    libc().write(this.#wake, this.#counterBytes, 8n);
  }
}

let reactor: Reactor | undefined;

/**
 * Resolves once `fd` is readable (`READABLE`) or writable (`WRITABLE`), or
 * has an error, or `wake` or `forget` is called for it. One wait per
 * direction and socket: a second call for the same, while the first still
 * waits, returns the same wait. Throws if the socket cannot be watched
 * (epoll_ctl failed: a closed descriptor, say).
 */
export function ready(fd: number, what: typeof READABLE | typeof WRITABLE): Promise<void> {
  reactor ??= new Reactor();
  return reactor.ready(fd, what);
}

/** Resolves every wait on `fd` now, so its owner looks at its state again. */
export function wake(fd: number): void {
  reactor?.wake(fd);
}

/** Stops watching `fd`, resolving its waits; call it before the socket is closed. */
export function forget(fd: number): void {
  reactor?.forget(fd);
}

/**
 * Like `ready`, with a deadline: true once `fd` is ready (or woken), false
 * once `ms` milliseconds passed first (the wait is then ended with `wake`).
 */
export async function readyWithin(
  fd: number,
  what: typeof READABLE | typeof WRITABLE,
  ms: number,
): Promise<boolean> {
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    wake(fd);
  }, ms);
  try {
    await ready(fd, what);
  } finally {
    clearTimeout(timer);
  }
  return !late;
}

/** The readiness of file descriptor `fd` through this reactor, as a `Channel` offers it. */
export function fdReadiness(fd: number): ReadinessSource {
  return {
    ready: (what) => ready(fd, what === "readable" ? READABLE : WRITABLE),
    wake: () => wake(fd),
    forget: () => forget(fd),
  };
}
