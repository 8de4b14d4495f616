/**
 * One open file descriptor and what the kernel says of it: the one owner of
 * the descriptor's lifetime (`close()` is safe twice, `Symbol.dispose`).
 *
 * It lets the file layer open a path once and then check what was opened,
 * instead of checking a path and opening it again (which a symlink swapped
 * in between defeats): `location()` is where the opened file really is,
 * `status()` what it is, and `reopen()` a readable descriptor of exactly that
 * file. Both go through `/proc/self/fd`, read with libc because Deno's own
 * file API refuses `/proc/self` without `--allow-all`.
 *
 * @module
 */

import { C, check, libc, statx } from "./libc.ts";
import { Errno, NativeError } from "./errors.ts";
import { StructBuffer } from "./struct.ts";

/** What an opened file is (from `statx`). */
export interface FileStatus {
  readonly kind: "file" | "directory" | "other";
  readonly size: number;
  /** Links to the file; 0 once it was deleted. */
  readonly links: number;
  /** Last modification, nanoseconds since the epoch. */
  readonly mtimeNs: bigint;
  /** Device and inode: which file this is, whatever name reaches it. */
  readonly device: string;
  readonly inode: bigint;
}

/**
 * Which version of which file `status` describes: device, inode, size and
 * mtime. A file replaced by rename is another inode, so another version even
 * with the same size and mtime.
 */
export function fileVersion(status: FileStatus): string {
  return `${status.device}:${status.inode}:${status.size}:${status.mtimeNs}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const cString = (text: string) => encoder.encode(`${text}\0`);
const EMPTY_PATH = cString("");
/** PATH_MAX, plus one byte to notice a truncated link. */
const linkBuffer = new Uint8Array(4097);
const status = new StructBuffer(statx);
const statusView = new DataView(status.bytes.buffer);

/** An open file descriptor. */
export class FileDescriptor implements Disposable {
  #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /**
   * Opens `path`; `flags` are `open(2)` flags, with `O_CLOEXEC` always added.
   * Throws a `NativeError` (ENOENT, EACCES, ...) on failure.
   */
  static open(path: string, flags: number): FileDescriptor {
    return new FileDescriptor(check("open", libc().open(cString(path), flags | C.O_CLOEXEC)));
  }

  /** The raw descriptor; valid until `close()`. */
  get fd(): number {
    if (this.#fd < 0) throw new Error("file descriptor is closed");
    return this.#fd;
  }

  /** Opens `name` relative to this directory, as `open` does. */
  openAt(name: string, flags: number): FileDescriptor {
    return new FileDescriptor(
      check("openat", libc().openat(this.fd, cString(name), flags | C.O_CLOEXEC)),
    );
  }

  /**
   * A new descriptor of the very file this one refers to (also from an
   * `O_PATH` descriptor), opened with `flags`.
   */
  reopen(flags: number): FileDescriptor {
    return FileDescriptor.open(this.#magicLink(), flags);
  }

  /** The absolute path of the opened file now, symlinks resolved (` (deleted)` appended once unlinked). */
  location(): string {
    const length = Number(
      check(
        "readlink",
        libc().readlink(cString(this.#magicLink()), linkBuffer, BigInt(linkBuffer.byteLength)),
      ),
    );
    if (length >= linkBuffer.byteLength) {
      throw new NativeError(
        "readlink",
        Errno.ENAMETOOLONG,
        "the path of the opened file is too long",
      );
    }
    return decoder.decode(linkBuffer.subarray(0, length));
  }

  /** What the opened file is. */
  status(): FileStatus {
    status.clear();
    check(
      "statx",
      libc().statx(this.fd, EMPTY_PATH, C.AT_EMPTY_PATH, C.STATX_BASIC_STATS, status.bytes),
    );
    const type = status.get("stx_mode") & C.S_IFMT;
    const offset = (name: keyof typeof statx.fields) => statx.fields[name].offset;
    return {
      kind: type === C.S_IFREG ? "file" : type === C.S_IFDIR ? "directory" : "other",
      size: status.get("stx_size"),
      links: status.get("stx_nlink"),
      mtimeNs: statusView.getBigInt64(offset("stx_mtime.tv_sec"), true) * 1_000_000_000n +
        BigInt(status.get("stx_mtime.tv_nsec")),
      device: `${status.get("stx_dev_major")}:${status.get("stx_dev_minor")}`,
      inode: statusView.getBigUint64(offset("stx_ino"), true),
    };
  }

  /** Reads up to `buffer.byteLength` bytes at `offset`; 0 at the end of the file. */
  read(buffer: Uint8Array<ArrayBuffer>, offset: number): number {
    return Number(
      check("pread", libc().pread(this.fd, buffer, BigInt(buffer.byteLength), BigInt(offset))),
    );
  }

  /** Closes the descriptor (again: nothing). */
  close(): void {
    if (this.#fd < 0) return;
    libc().close(this.#fd);
    this.#fd = -1;
  }

  /** Closes the descriptor, as `close()` does. */
  [Symbol.dispose](): void {
    this.close();
  }

  #magicLink(): string {
    return `/proc/self/fd/${this.fd}`;
  }
}
