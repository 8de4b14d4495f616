/**
 * libc through `Deno.dlopen`: sockets, mmap, errno. One symbol table, opened
 * lazily once per isolate (each Worker opens its own handle to the same
 * process-wide library).
 *
 * Every call here is synchronous except `epoll_wait`, which runs on Deno's
 * blocking pool (the one such call a process makes at a time, see
 * `transport/reactor.ts`). Calls that can block (accept, connect, recv,
 * send without MSG_DONTWAIT) are only ever made from Worker threads, never
 * from the main event loop, except a connect on a socket made nonblocking
 * for it (O_NONBLOCK), which returns at once (EINPROGRESS).
 *
 * @module
 */

import { Errno, NativeError } from "./errors.ts";
import { defineStruct, StructBuffer } from "./struct.ts";

/** libc's symbols, each commented with its C prototype. */
export const libcSymbols = {
  // int socket(int domain, int type, int protocol)
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int bind(int fd, const struct sockaddr *addr, socklen_t len)
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int listen(int fd, int backlog)
  listen: { parameters: ["i32", "i32"], result: "i32" },
  // int accept(int fd, struct sockaddr *addr, socklen_t *len)
  accept: { parameters: ["i32", "pointer", "pointer"], result: "i32" },
  // int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  // int connect(int fd, const struct sockaddr *addr, socklen_t len)
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  // int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  // int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int shutdown(int fd, int how)
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  // int close(int fd)
  close: { parameters: ["i32"], result: "i32" },
  // ssize_t send(int fd, const void *buf, size_t len, int flags)
  send: { parameters: ["i32", "pointer", "usize", "i32"], result: "isize" },
  // The same, from JS memory or a mapping's view (a fast call: no pointer object per send).
  send_buffer: { name: "send", parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  // ssize_t recv(int fd, void *buf, size_t len, int flags)
  recv: { parameters: ["i32", "pointer", "usize", "i32"], result: "isize" },
  // ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  // int epoll_create1(int flags)
  epoll_create1: { parameters: ["i32"], result: "i32" },
  // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
  // On the blocking pool: the promise settles when it returns. errno is the
  // pool thread's, so a failure cannot be told apart (it can only be EINTR).
  epoll_wait: {
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // The same on the calling thread, only ever with a timeout of 0: the events ready now.
  epoll_poll: { name: "epoll_wait", parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  // int fcntl(int fd, int cmd, ... /* int arg */)
  // Variadic: on x86_64 and aarch64 Linux an int vararg travels where a fixed
  // int would, so F_GETFL and F_SETFL may pass it as a third i32.
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int eventfd(unsigned int initval, int flags)
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // ssize_t write(int fd, const void *buf, size_t count)
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // ssize_t read(int fd, void *buf, size_t count)
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout)
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  // int open(const char *path, int flags)
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // int openat(int dirfd, const char *path, int flags)
  openat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  // ssize_t readlink(const char *path, char *buf, size_t size): no NUL is appended
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  // int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *buf)
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  // ssize_t pread(int fd, void *buf, size_t count, off_t offset)
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  // ssize_t process_vm_readv(pid_t pid, const struct iovec *local, unsigned long nlocal,
  //                          const struct iovec *remote, unsigned long nremote, unsigned long flags)
  // On this process's own pid it is a memcpy that fails (EFAULT, or a short count) where
  // reading the source would fault, e.g. past the end of a truncated file's mapping.
  process_vm_readv: {
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "isize",
  },
  // off_t lseek(int fd, off_t offset, int whence)
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  // void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  // int munmap(void *addr, size_t len)
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  // int pipe2(int fds[2], int flags)
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  // FILE *fdopen(int fd, const char *mode)
  fdopen: { parameters: ["i32", "buffer"], result: "pointer" },
  // int setvbuf(FILE *stream, char *buf, int mode, size_t size)
  setvbuf: { parameters: ["pointer", "pointer", "i32", "usize"], result: "i32" },
  // int fclose(FILE *stream)
  fclose: { parameters: ["pointer"], result: "i32" },
  // int *__errno_location(void)
  __errno_location: { parameters: [], result: "pointer" },
  // char *strerror(int errnum)
  strerror: { parameters: ["i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded symbols of libc. */
export type Libc = Deno.DynamicLibrary<typeof libcSymbols>["symbols"];

let loaded: Libc | undefined;

/** libc's symbols, opened on first use in this isolate. */
export function libc(): Libc {
  loaded ??= Deno.dlopen("libc.so.6", libcSymbols).symbols;
  return loaded;
}

/** Linux socket, file and mmap constants (same on x86_64 and aarch64; checked by the layout test). */
export const C = {
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: 0x800,
  SOCK_CLOEXEC: 0x80000,
  IPPROTO_TCP: 6,
  IPPROTO_SCTP: 132,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_TYPE: 3,
  SO_ERROR: 4,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_LINGER: 13,
  SO_REUSEPORT: 15,
  SO_RCVTIMEO: 20,
  SO_SNDTIMEO: 21,
  TCP_NODELAY: 1,
  TCP_INFO: 11,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  MSG_NOSIGNAL: 0x4000,
  MSG_DONTWAIT: 0x40,
  MSG_WAITALL: 0x100,
  MSG_MORE: 0x8000,
  EPOLL_CLOEXEC: 0x80000,
  EPOLL_CTL_ADD: 1,
  EPOLL_CTL_DEL: 2,
  EPOLL_CTL_MOD: 3,
  EPOLLIN: 0x1,
  EPOLLOUT: 0x4,
  EPOLLERR: 0x8,
  EPOLLHUP: 0x10,
  EPOLLONESHOT: 0x40000000,
  EFD_CLOEXEC: 0x80000,
  EFD_NONBLOCK: 0x800,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  POLLERR: 0x8,
  POLLHUP: 0x10,
  POLLNVAL: 0x20,
  F_GETFL: 3,
  F_SETFL: 4,
  O_RDONLY: 0,
  SEEK_END: 2,
  O_CLOEXEC: 0x80000,
  O_NONBLOCK: 0x800,
  O_PATH: 0x200000,
  AT_EMPTY_PATH: 0x1000,
  STATX_BASIC_STATS: 0x7ff,
  S_IFMT: 0xf000,
  S_IFREG: 0x8000,
  S_IFDIR: 0x4000,
  PROT_READ: 1,
  MAP_SHARED: 1,
  _IONBF: 2,
} as const;

/** `struct sockaddr_in` (IPv4 socket address; port and address in network order). */
export const sockaddr_in = defineStruct("sockaddr_in", 16, {
  sin_family: { offset: 0, type: "u16" },
  sin_port: { offset: 2, type: "bytes", length: 2 },
  sin_addr: { offset: 4, type: "bytes", length: 4 },
});

/** `struct sockaddr_in6` (IPv6 socket address). */
export const sockaddr_in6 = defineStruct("sockaddr_in6", 28, {
  sin6_family: { offset: 0, type: "u16" },
  sin6_port: { offset: 2, type: "bytes", length: 2 },
  sin6_flowinfo: { offset: 4, type: "u32" },
  sin6_addr: { offset: 8, type: "bytes", length: 16 },
  sin6_scope_id: { offset: 24, type: "u32" },
});

/** `struct statx` (the same on every Linux architecture); only the fields the file layer reads. */
export const statx = defineStruct("statx", 256, {
  stx_mask: { offset: 0, type: "u32" },
  stx_nlink: { offset: 16, type: "u32" },
  stx_mode: { offset: 28, type: "u16" },
  stx_ino: { offset: 32, type: "u64" },
  stx_size: { offset: 40, type: "u64" },
  // A signed 64-bit count of seconds: read it with getBigInt64.
  "stx_mtime.tv_sec": { offset: 112, type: "u64" },
  "stx_mtime.tv_nsec": { offset: 120, type: "u32" },
  stx_dev_major: { offset: 136, type: "u32" },
  stx_dev_minor: { offset: 140, type: "u32" },
});

/** `struct iovec` (one buffer of a vectored call). */
export const iovec = defineStruct("iovec", 16, {
  iov_base: { offset: 0, type: "u64" },
  iov_len: { offset: 8, type: "u64" },
});

/** `struct msghdr` (sendmsg) of 64-bit Linux; only the fields a gathered send sets. */
export const msghdr = defineStruct("msghdr", 56, {
  msg_iov: { offset: 16, type: "u64" },
  msg_iovlen: { offset: 24, type: "u64" },
});

/**
 * `struct epoll_event` of `arch`: glibc packs it on x86_64 (12 bytes, `data`
 * right after the u32 `events`), other 64-bit targets align `data` to 8.
 * The one layout that differs by machine: its user picks it with
 * the running machine's architecture, so that the tables here stay the same
 * everywhere.
 */
export function epollEventLayout(arch: string) {
  const packed = arch === "x86_64";
  return defineStruct("epoll_event", packed ? 12 : 16, {
    events: { offset: 0, type: "u32" },
    data: { offset: packed ? 4 : 8, type: "u64" },
  });
}

/** `struct timeval` as SO_RCVTIMEO reads and writes it on 64-bit Linux. */
export const timeval = defineStruct("timeval", 16, {
  tv_sec: { offset: 0, type: "u64" },
  tv_usec: { offset: 8, type: "u64" },
});

/** `struct linger` (SO_LINGER). */
export const linger = defineStruct("linger", 8, {
  l_onoff: { offset: 0, type: "i32" },
  l_linger: { offset: 4, type: "i32" },
});

/** `struct pollfd` (poll); `events` and `revents` are C shorts of POLL* bits. */
export const pollfd = defineStruct("pollfd", 8, {
  fd: { offset: 0, type: "i32" },
  events: { offset: 4, type: "u16" },
  revents: { offset: 6, type: "u16" },
});

/** `struct tcp_info` as glibc declares it (TCP_INFO); only the fields path info reads. */
export const tcp_info = defineStruct("tcp_info", 104, {
  tcpi_snd_mss: { offset: 16, type: "u32" },
  tcpi_rtt: { offset: 68, type: "u32" },
  tcpi_rttvar: { offset: 72, type: "u32" },
  tcpi_snd_cwnd: { offset: 80, type: "u32" },
  tcpi_pmtu: { offset: 60, type: "u32" },
});

/** The calling thread's errno. Read it right after the failed sync call. */
export function errno(): number {
  return new Deno.UnsafePointerView(libc().__errno_location()!).getInt32();
}

/** Builds the error for a failed call from errno and its `strerror` text. */
export function lastError(call: string): NativeError {
  return nativeError(call, errno());
}

/** The error of `call` failing with the errno value `code` (e.g. one read from SO_ERROR). */
export function nativeError(call: string, code: number): NativeError {
  const text = Deno.UnsafePointerView.getCString(libc().strerror(code)!);
  return new NativeError(call, code, text);
}

/** Per-thread `struct iovec[2]` of `copyFromAddress`: the local, then the remote buffer. */
const copyVectors = new BigUint64Array(4);
const localVector = new Uint8Array(copyVectors.buffer, 0, iovec.size);
const remoteVector = new Uint8Array(copyVectors.buffer, iovec.size, iovec.size);

/**
 * Copies `length` bytes from `source`, an address in this process, into
 * `target`. Where reading `source` would fault (an unmapped address, or a
 * file mapping past the end of its truncated file, which raises SIGBUS and
 * ends the process) it throws a `NativeError` with EFAULT instead.
 */
export function copyFromAddress(
  target: Uint8Array<ArrayBuffer>,
  source: Deno.PointerValue,
  length: number,
): void {
  if (length > target.byteLength) {
    throw new RangeError(`${length} bytes do not fit into ${target.byteLength}`);
  }
  if (plainCopy) return copyPlainly(target, source, length);
  copyVectors[0] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(target)));
  copyVectors[1] = BigInt(length);
  copyVectors[2] = BigInt(Deno.UnsafePointer.value(source));
  copyVectors[3] = BigInt(length);
  const copied = libc().process_vm_readv(Deno.pid, localVector, 1n, remoteVector, 1n, 0n);
  if (copied < 0n) {
    const error = lastError("process_vm_readv");
    if (error.errno !== Errno.ENOSYS && error.errno !== Errno.EPERM) throw error;
    // A seccomp policy or an emulator (qemu-user) that lacks the call: copy
    // as before, and say once what that costs.
    plainCopy = true;
    console.error(
      `flowsched: process_vm_readv is unavailable (${error.message}); a file truncated while it is sent over usrsctp can now end the process (SIGBUS): replace served files by rename`,
    );
    return copyPlainly(target, source, length);
  }
  if (Number(copied) !== length) {
    throw new NativeError(
      "process_vm_readv",
      Errno.EFAULT,
      `the source became unreadable after ${copied} of ${length} bytes`,
    );
  }
}

let plainCopy = false;

function copyPlainly(target: Uint8Array<ArrayBuffer>, source: Deno.PointerValue, length: number) {
  if (length > 0) new Deno.UnsafePointerView(source!).copyInto(target.subarray(0, length));
}

const intOption = new Int32Array(1);
const intOptionBytes = new Uint8Array(intOption.buffer);
const optionLength = new Uint32Array(1);
const optionLengthBytes = new Uint8Array(optionLength.buffer);

/** Sets an `int` socket option; `call` names it in the error, e.g. `"setsockopt(SO_SNDBUF)"`. */
export function setIntOption(fd: number, level: number, name: number, value: number, call: string) {
  intOption[0] = value;
  check(call, libc().setsockopt(fd, level, name, intOptionBytes, 4));
}

/** Reads an `int` socket option; `call` names it in the error, e.g. `"getsockopt(SO_RCVBUF)"`. */
export function getIntOption(fd: number, level: number, name: number, call: string): number {
  optionLength[0] = 4;
  check(call, libc().getsockopt(fd, level, name, intOptionBytes, optionLengthBytes));
  return intOption[0];
}

/** Sets (`on`) or clears O_NONBLOCK on `fd`. */
export function setNonblocking(fd: number, on: boolean): void {
  const flags = check("fcntl(F_GETFL)", libc().fcntl(fd, C.F_GETFL, 0));
  const wanted = on ? flags | C.O_NONBLOCK : flags & ~C.O_NONBLOCK;
  if (wanted !== flags) check("fcntl(F_SETFL)", libc().fcntl(fd, C.F_SETFL, wanted));
}

/** The pending error of `fd` (SO_ERROR, which reading clears), 0 for none. */
export function takeSocketError(fd: number): number {
  optionLength[0] = 4;
  check(
    "getsockopt(SO_ERROR)",
    libc().getsockopt(fd, C.SOL_SOCKET, C.SO_ERROR, intOptionBytes, optionLengthBytes),
  );
  return intOption[0];
}

/** Sets SO_SNDBUF and SO_RCVBUF; a size of 0 keeps the system default. */
export function setBufferSizes(fd: number, sendBytes: number, receiveBytes: number) {
  if (sendBytes > 0) {
    setIntOption(fd, C.SOL_SOCKET, C.SO_SNDBUF, sendBytes, "setsockopt(SO_SNDBUF)");
  }
  if (receiveBytes > 0) {
    setIntOption(fd, C.SOL_SOCKET, C.SO_RCVBUF, receiveBytes, "setsockopt(SO_RCVBUF)");
  }
}

/**
 * Binds `fd` to `addr`, listens, and returns the bound port (the one the
 * kernel picked when `addr` asked for port 0).
 */
export function bindAndListen(fd: number, addr: Uint8Array<ArrayBuffer>): number {
  check("bind", libc().bind(fd, addr, addr.byteLength));
  check("listen", libc().listen(fd, 511));
  const bound = new Uint8Array(28);
  const length = new Uint32Array([bound.byteLength]);
  check("getsockname", libc().getsockname(fd, bound, new Uint8Array(length.buffer)));
  return sockaddrPort(bound);
}

/** Runs `body` on a fresh socket, closing the socket if `body` throws. */
export function closingOnError<T>(fd: number, body: () => T): T {
  try {
    return body();
  } catch (error) {
    libc().close(fd);
    throw error;
  }
}

/** Returns `result` unless it is negative, in which case throws the errno error. */
export function check<T extends number | bigint>(call: string, result: T): T {
  if (result < 0) throw lastError(call);
  return result;
}

/**
 * Encodes an IP literal and port as `struct sockaddr_in` or `sockaddr_in6`.
 * `localhost` means 127.0.0.1; names are not resolved here.
 */
export function encodeSockaddr(host: string, port: number): Uint8Array<ArrayBuffer> {
  const ip = host === "localhost" ? "127.0.0.1" : host.replace(/^\[|\]$/g, "");
  const v4 = ip.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (v4) {
    const s = new StructBuffer(sockaddr_in).set("sin_family", C.AF_INET);
    new DataView(s.bytes.buffer).setUint16(sockaddr_in.fields.sin_port.offset, port, false);
    s.slice("sin_addr").set(v4.slice(1).map(Number));
    return s.bytes;
  }
  if (ip.includes(":")) {
    const s = new StructBuffer(sockaddr_in6).set("sin6_family", C.AF_INET6);
    new DataView(s.bytes.buffer).setUint16(sockaddr_in6.fields.sin6_port.offset, port, false);
    s.slice("sin6_addr").set(parseIPv6(ip));
    return s.bytes;
  }
  throw new TypeError(`"${host}" is not an IP address (use e.g. 127.0.0.1 or ::1)`);
}

/** The port of an encoded `sockaddr_in`/`sockaddr_in6` (same offset in both). */
export function sockaddrPort(addr: Uint8Array): number {
  return (addr[2] << 8) | addr[3];
}

/**
 * The address and port of an encoded `sockaddr_in`/`sockaddr_in6`, written
 * as Deno writes a `NetAddr`'s: IPv6 compressed (RFC 5952), an IPv4-mapped
 * one with its IPv4 part dotted (`::ffff:127.0.0.1`).
 */
export function decodeSockaddr(addr: Uint8Array): { hostname: string; port: number } {
  const view = new DataView(addr.buffer, addr.byteOffset, addr.byteLength);
  const port = sockaddrPort(addr);
  if (view.getUint16(0, true) === C.AF_INET) {
    const at = sockaddr_in.fields.sin_addr.offset;
    return { hostname: addr.subarray(at, at + 4).join("."), port };
  }
  const at = sockaddr_in6.fields.sin6_addr.offset;
  const words = Array.from({ length: 8 }, (_, i) => view.getUint16(at + 2 * i, false));
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return { hostname: `::ffff:${addr.subarray(at + 12, at + 16).join(".")}`, port };
  }
  // The URL parser writes IPv6 hosts in the RFC 5952 form.
  const hostname = new URL(`http://[${words.map((w) => w.toString(16)).join(":")}]/`).hostname;
  return { hostname: hostname.slice(1, -1), port };
}

function parseIPv6(given: string): Uint8Array {
  // A dotted IPv4 tail (`::ffff:127.0.0.1`) is the last two words.
  const ip = given.replace(
    /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
    (tail, a, b, c, d) =>
      [a, b, c, d].some((octet) => +octet > 255)
        ? tail
        : `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
  );
  const halves = ip.split("::");
  const words = (s: string) =>
    s ? s.split(":").map((w) => (/^[0-9a-f]{1,4}$/i.test(w) ? parseInt(w, 16) : NaN)) : [];
  const left = words(halves[0]);
  const right = halves.length === 2 ? words(halves[1]) : [];
  // `::` stands for one or more zero words; without it there are eight.
  const zeros = 8 - left.length - right.length;
  if (
    halves.length > 2 || (halves.length === 2 ? zeros < 1 : zeros !== 0) ||
    [...left, ...right].some(Number.isNaN)
  ) {
    throw new TypeError(`"${given}" is not an IPv6 address`);
  }
  const all = [...left, ...new Array(zeros).fill(0), ...right];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}
