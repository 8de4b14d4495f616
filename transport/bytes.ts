/**
 * Byte helpers for hot paths.
 *
 * @module
 */

/**
 * A copy of `bytes` in a buffer of its own. Not `Uint8Array.prototype.slice`:
 * with Deno 2.9 (V8 15.0) slicing 64 KiB took about 80 µs on the build host
 * and about 1 ms in the User-Mode Linux lab, against 6 µs and 18 µs for a new
 * array filled with `set` (measured side by side, 3,000 copies each).
 */
export function copyOf(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}
