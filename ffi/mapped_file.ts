/**
 * A read-only `mmap` of a whole file: the one owner of the mapping's
 * lifetime. Send calls take `pointerAt(offset)` directly, so file bytes go
 * from the page cache to the socket without a copy into JS memory.
 *
 * A file may shrink while mapped (truncated or rewritten in place): its
 * pages past the new end then raise SIGBUS when read, which ends the process.
 * So nothing in this process reads a mapping with plain loads: the kernel's
 * send calls fail with EFAULT instead, and the userspace stack (usrsctp) gets
 * its copy through `copyFromAddress`, which fails the same way.
 *
 * @module
 */

import { C, check, libc } from "./libc.ts";
import { FileDescriptor } from "./file_descriptor.ts";

/** A file mapped read-only into memory. Unmapped by `close()` (idempotent). */
export class MappedFile implements Disposable {
  /** The file's size in bytes at mapping time. */
  readonly size: number;
  #base: Deno.PointerValue;

  private constructor(base: Deno.PointerValue, size: number) {
    this.#base = base;
    this.size = size;
  }

  /** Maps `path`. An empty file is valid and has no mapping (size 0). */
  static open(path: string): MappedFile {
    using descriptor = FileDescriptor.open(path, C.O_RDONLY);
    return MappedFile.map(descriptor);
  }

  /**
   * Maps the file open on `descriptor` (opened for reading); the mapping
   * does not need the descriptor afterwards, which stays the caller's.
   */
  static map(descriptor: FileDescriptor): MappedFile {
    const fd = descriptor.fd;
    // The size of what was opened, not of whatever the path names by now.
    const size = Number(check("lseek", libc().lseek(fd, 0n, C.SEEK_END)));
    if (size === 0) return new MappedFile(null, 0);
    const base = libc().mmap(null, BigInt(size), C.PROT_READ, C.MAP_SHARED, fd, 0n);
    // mmap reports failure as MAP_FAILED, (void *)-1, not as null.
    if (base === null || Deno.UnsafePointer.value(base) === MAP_FAILED) {
      check("mmap", -1);
    }
    return new MappedFile(base, size);
  }

  /** The address of byte `offset`; valid until `close()`. */
  pointerAt(offset: number): Deno.PointerValue {
    if (this.#base === null) {
      if (this.size === 0 && offset === 0) return null;
      throw new Error("mapping is closed");
    }
    if (offset < 0 || offset > this.size) {
      throw new RangeError(`offset ${offset} outside 0..${this.size}`);
    }
    return Deno.UnsafePointer.offset(this.#base, offset);
  }

  /** Unmaps the file. Every send using its pointers must have completed. */
  close(): void {
    if (this.#base === null) return;
    check("munmap", libc().munmap(this.#base, BigInt(this.size)));
    this.#base = null;
  }

  /** Unmaps the file, as `close()` does. */
  [Symbol.dispose](): void {
    this.close();
  }
}

const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
