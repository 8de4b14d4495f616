/**
 * Rendezvous (highest random weight) hashing: every (server, path) pair has a
 * weight, and a path goes to the server of highest weight among those that
 * may take it (Thaler and Ravishankar, "Using name-based mappings to increase
 * hit rates", IEEE/ACM ToN 6(1), 1998). Taking a server away moves only the
 * paths it had, spread over the others; bringing it back moves exactly those
 * paths back. The weights depend on the servers' names and the path only, so
 * every proxy given the same servers, in any order, maps a path alike.
 *
 * The hashes are ours, chosen for speed and stability, not secrecy: FNV-1a
 * (32 bits) over the path, then the MurmurHash3 finalizer over that xor the
 * server's seed. FNV-1a alone mixes its last characters weakly; the
 * finalizer makes the weights of one path for different servers behave as
 * independent.
 *
 * @module
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over the UTF-16 code units of `text[0, end)`. */
function fnv1a(text: string, end: number): number {
  let hash = FNV_OFFSET;
  for (let i = 0; i < end; i++) hash = Math.imul(hash ^ text.charCodeAt(i), FNV_PRIME);
  return hash >>> 0;
}

/** MurmurHash3's 32-bit finalizer: every input bit flips each output bit about half the time. */
function fmix32(hash: number): number {
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

/** A server's seed, from its name (e.g. `tcpmux://10.0.0.2:9000`). */
export function serverSeed(name: string): number {
  return fmix32(fnv1a(name, name.length));
}

/** The hash of a request target's path: what comes before `?`, so a query does not move it. */
export function pathHash(target: string): number {
  const query = target.indexOf("?");
  return fnv1a(target, query < 0 ? target.length : query);
}

/** The weight of a path (its `pathHash`) on a server (its `serverSeed`). */
export function weight(seed: number, path: number): number {
  return fmix32(seed ^ path);
}

/**
 * The index of the highest-weight seed for `path` among those `eligible`
 * accepts (all, without it), or -1 if it accepts none. Equal weights (one
 * chance in 2^32) go to the larger seed, so the order of `seeds` does not
 * matter.
 */
export function highestWeight(
  seeds: readonly number[],
  path: number,
  eligible?: (index: number) => boolean,
): number {
  let best = -1;
  let bestWeight = -1;
  for (let i = 0; i < seeds.length; i++) {
    if (eligible && !eligible(i)) continue;
    const w = weight(seeds[i], path);
    if (w > bestWeight || (w === bestWeight && seeds[i] > seeds[best])) {
      best = i;
      bestWeight = w;
    }
  }
  return best;
}

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam,
 * "Consistent Hashing with Bounded Loads", SODA 2018; HAProxy's
 * `hash-balance-factor`): a path goes to the highest-weight server among
 * those `up` whose `load` (requests in flight) is below `factor` percent of
 * the mean load after this request, rounded up. So no server holds more than
 * its share times the factor, and a path leaves its server only while that
 * server is over the bound. One up server is always under it: if all were at
 * or over it, their loads would sum past the total. Returns -1 if none is up.
 */
export function boundedChoice(
  seeds: readonly number[],
  path: number,
  up: (index: number) => boolean,
  load: (index: number) => number,
  factor: number,
): number {
  let total = 0;
  let upCount = 0;
  for (let i = 0; i < seeds.length; i++) {
    if (!up(i)) continue;
    total += load(i);
    upCount++;
  }
  if (upCount === 0) return -1;
  const limit = Math.ceil((factor / 100) * (total + 1) / upCount);
  return highestWeight(seeds, path, (i) => up(i) && load(i) < limit);
}
