/**
 * A read-only `mmap` of a whole file: the one owner of the mapping's
 * lifetime. A file must not shrink while mapped (reading past its new end
 * raises SIGBUS): replace served files by rename, never rewrite them in place. Send calls take `pointerAt(offset)` directly, so file bytes go
 * from the page cache to the socket without a copy into JS memory.
 *
 * @module
 */

import { C, check, libc } from "./libc.ts";

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
    const fd = check(
      "open",
      libc().open(new TextEncoder().encode(`${path}\0`), C.O_RDONLY | C.O_CLOEXEC),
    );
    try {
      // The size of what was opened, not of whatever the path names by now.
      const size = Number(check("lseek", libc().lseek(fd, 0n, C.SEEK_END)));
      if (size === 0) return new MappedFile(null, 0);
      const base = libc().mmap(null, BigInt(size), C.PROT_READ, C.MAP_SHARED, fd, 0n);
      // mmap reports failure as MAP_FAILED, (void *)-1, not as null.
      if (base === null || Deno.UnsafePointer.value(base) === MAP_FAILED) {
        check("mmap", -1);
      }
      return new MappedFile(base, size);
    } finally {
      libc().close(fd);
    }
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
