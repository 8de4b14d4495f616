/**
 * C struct layouts, declared once and checked against the real headers by
 * `tests/ffi/layouts_test.ts`.
 *
 * A layout names the C type, its size and each field's offset and width.
 * Reads and writes go through a `DataView` in little-endian order: both
 * targets (x86_64, aarch64) are little-endian. Network-order fields
 * (`sin_port`, `sin_addr`) are written with `setUint16(..., false)` by their
 * owners.
 *
 * @module
 */

/** Width and signedness of one scalar field. */
export type FieldType = "u8" | "u16" | "u32" | "i32" | "u64";

/** One field: its byte offset and scalar type (or a byte array of `length`). */
export interface Field {
  readonly offset: number;
  readonly type: FieldType | "bytes";
  /** Byte length, for `bytes` fields only. */
  readonly length?: number;
}

/** A struct layout: C name (as used in `sizeof(struct X)`), size, fields by C name. */
export interface StructLayout<F extends string = string> {
  readonly cName: string;
  readonly size: number;
  readonly fields: Readonly<Record<F, Field>>;
}

/** Declares a struct layout; the type parameter keeps field names checked. */
export function defineStruct<F extends string>(
  cName: string,
  size: number,
  fields: Record<F, Field>,
): StructLayout<F> {
  return { cName, size, fields };
}

/**
 * A typed view over one struct instance in a caller-owned buffer.
 *
 * The buffer outlives every native call that is given its pointer: callers
 * keep the `StructBuffer` alive for as long as the call runs (sync calls).
 */
export class StructBuffer<F extends string> {
  /** The struct's bytes; pass `bytes` to FFI calls as a `buffer` argument. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly #view: DataView;
  readonly #layout: StructLayout<F>;

  constructor(layout: StructLayout<F>) {
    this.#layout = layout;
    this.bytes = new Uint8Array(layout.size);
    this.#view = new DataView(this.bytes.buffer);
  }

  /** Reads a numeric field (u64 fields as a number; values stay below 2^53). */
  get(name: F): number {
    const { offset, type } = this.#layout.fields[name];
    const v = this.#view;
    switch (type) {
      case "u8":
        return v.getUint8(offset);
      case "u16":
        return v.getUint16(offset, true);
      case "u32":
        return v.getUint32(offset, true);
      case "i32":
        return v.getInt32(offset, true);
      case "u64":
        return Number(v.getBigUint64(offset, true));
      default:
        throw new TypeError(`${this.#layout.cName}.${name} is a byte array`);
    }
  }

  /** Writes a numeric field. */
  set(name: F, value: number): this {
    const { offset, type } = this.#layout.fields[name];
    const v = this.#view;
    switch (type) {
      case "u8":
        v.setUint8(offset, value);
        break;
      case "u16":
        v.setUint16(offset, value, true);
        break;
      case "u32":
        v.setUint32(offset, value, true);
        break;
      case "i32":
        v.setInt32(offset, value, true);
        break;
      case "u64":
        v.setBigUint64(offset, BigInt(value), true);
        break;
      default:
        throw new TypeError(`${this.#layout.cName}.${name} is a byte array`);
    }
    return this;
  }

  /** The bytes of a `bytes` field (a view, not a copy). */
  slice(name: F): Uint8Array {
    const { offset, length } = this.#layout.fields[name];
    return this.bytes.subarray(offset, offset + (length ?? 0));
  }

  /** Zeroes the whole struct. */
  clear(): this {
    this.bytes.fill(0);
    return this;
  }
}
