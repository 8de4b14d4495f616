/**
 * The one error type of the binding layer: a failed native call, with its
 * errno and the C library's text for it. A raw `-1` never leaves `ffi/`.
 *
 * @module
 */

/** A native call failed; `errno` and `call` say which and why. */
export class NativeError extends Error {
  /** Always `"NativeError"`. */
  override name = "NativeError";
  /** The C `errno` value (e.g. 111 for ECONNREFUSED). */
  readonly errno: number;
  /** The native function that failed, e.g. `"connect"`. */
  readonly call: string;

  /** `text` is the C library's description of `errno` (`strerror`). */
  constructor(call: string, errno: number, text: string, options?: ErrorOptions) {
    super(`${call}: ${text} (errno ${errno})`, options);
    this.call = call;
    this.errno = errno;
  }
}

/** errno values the transports react to by name. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EACCES: 13,
  ENOTDIR: 20,
  ENAMETOOLONG: 36,
  ELOOP: 40,
  EINTR: 4,
  EAGAIN: 11,
  EBADF: 9,
  EFAULT: 14,
  EINVAL: 22,
  EPIPE: 32,
  ENOTCONN: 107,
  ECONNRESET: 104,
  ECONNREFUSED: 111,
  ECONNABORTED: 103,
  ESHUTDOWN: 108,
  ETIMEDOUT: 110,
  EMSGSIZE: 90,
  EPROTONOSUPPORT: 93,
  ENOPROTOOPT: 92,
  EINPROGRESS: 115,
  ENOSYS: 38,
  EPROTO: 71,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  EHOSTDOWN: 112,
  EHOSTUNREACH: 113,
  ENONET: 64,
  EOPNOTSUPP: 95,
} as const;
