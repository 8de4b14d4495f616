/**
 * Reference-counted `mmap`s of files being sent (the server's files, the
 * proxy's cached bodies), with a bounded LRU of idle ones
 * for hot files. A mapping is unmapped only when no response uses it and it
 * falls out of the LRU, so the writer never holds the address of an unmapped
 * region. Mappings are shared by file version (device, inode, size, mtime):
 * a changed or replaced file gets a fresh mapping. A held mapping keeps its
 * inode alive, so the inode number cannot be reused by another file meanwhile.
 *
 * @module
 */

import type { FileDescriptor } from "./file_descriptor.ts";
import { MappedFile } from "./mapped_file.ts";

/** An open file to map, and which version of which file it is (see `fileVersion`). */
export interface MappableFile {
  /** Which version of which file it is: mappings are shared by version. */
  readonly version: string;
  /** The open file, read-only. */
  readonly descriptor: FileDescriptor;
  /** Closes the descriptor (the mapping does not need it). */
  close(): void;
}

/** A mapping in use by one or more responses. */
export interface Mapping {
  readonly file: MappedFile;
  readonly key: string;
}

interface Slot {
  readonly mapping: Mapping;
  refs: number;
}

/** What a server shows of its file mappings: counts only. */
export interface MappingCacheView {
  /** Mappings currently held (in use or idle). */
  readonly size: number;
  /** References currently taken, over all mappings (0 once no response uses a file). */
  readonly references: number;
}

/** Shares mappings between concurrent responses for the same file version. */
export class MappingCache implements MappingCacheView {
  readonly #slots = new Map<string, Slot>();
  /** Mappings still in use whose version was forgotten: unmapped at their last release. */
  readonly #forgotten = new Map<Mapping, Slot>();
  readonly #maxIdle: number;
  #idle = 0;

  /** @param maxIdle how many unused mappings to keep for reuse (0 unmaps at once). */
  constructor(maxIdle = 256) {
    this.#maxIdle = maxIdle;
  }

  /**
   * Maps `entry`'s file (or reuses the mapping of the same version) and takes
   * a reference. Takes the entry too: it is closed when this returns or throws.
   */
  acquire(entry: MappableFile): Mapping {
    const held = this.reuse(entry.version);
    if (held) {
      entry.close();
      return held;
    }
    let slot: Slot;
    try {
      slot = { mapping: { file: MappedFile.map(entry.descriptor), key: entry.version }, refs: 1 };
    } finally {
      entry.close();
    }
    this.#slots.set(entry.version, slot);
    return slot.mapping;
  }

  /**
   * Takes a reference on the mapping of `version` if one is held (in use or
   * idle), without the file; undefined if there is none.
   */
  reuse(version: string): Mapping | undefined {
    const slot = this.#slots.get(version);
    if (!slot) return undefined;
    if (slot.refs === 0) this.#idle--;
    this.#slots.delete(version); // re-inserted: Map order is the LRU order
    slot.refs++;
    this.#slots.set(version, slot);
    return slot.mapping;
  }

  /** Drops a reference taken by `acquire` or `reuse`. */
  release(mapping: Mapping): void {
    const slot = this.#slots.get(mapping.key);
    if (slot?.mapping === mapping) {
      if (--slot.refs === 0) this.#idle++;
      if (this.#idle > this.#maxIdle) this.#evict();
      return;
    }
    const orphan = this.#forgotten.get(mapping);
    if (orphan && --orphan.refs === 0) {
      this.#forgotten.delete(mapping);
      mapping.file.close();
    }
  }

  /**
   * Stops sharing the mapping of `version` (its file was removed or
   * replaced): unmapped now if idle, else at its last `release`.
   */
  forget(version: string): void {
    const slot = this.#slots.get(version);
    if (!slot) return;
    this.#slots.delete(version);
    if (slot.refs > 0) return void this.#forgotten.set(slot.mapping, slot);
    this.#idle--;
    slot.mapping.file.close();
  }

  /** Mappings currently held (in use or idle). */
  get size(): number {
    return this.#slots.size + this.#forgotten.size;
  }

  /** References currently taken, over all mappings. */
  get references(): number {
    let refs = 0;
    for (const slot of this.#slots.values()) refs += slot.refs;
    for (const slot of this.#forgotten.values()) refs += slot.refs;
    return refs;
  }

  /** Unmaps every idle mapping. */
  clear(): void {
    for (const [key, slot] of this.#slots) {
      if (slot.refs === 0) {
        slot.mapping.file.close();
        this.#slots.delete(key);
      }
    }
    this.#idle = 0;
  }

  /** Unmaps the least recently used idle mappings down to the limit. */
  #evict() {
    for (const [key, slot] of this.#slots) {
      if (this.#idle <= this.#maxIdle) return;
      if (slot.refs > 0) continue;
      slot.mapping.file.close();
      this.#slots.delete(key);
      this.#idle--;
    }
  }
}
