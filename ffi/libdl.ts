/**
 * libdl through `Deno.dlopen`: loading a library for good, and the address
 * of a native function to hand to C as a callback. `libdl.so.2` exists on
 * every glibc (since 2.34 it forwards to libc), so older systems work too.
 *
 * @module
 */

/** libdl's symbols, each commented with its C prototype. */
export const libdlSymbols = {
  // void *dlopen(const char *filename, int flags)
  dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
  // void *dlsym(void *handle, const char *symbol)
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** `<dlfcn.h>` flags (checked against the header by the usrsctp layout test). */
export const RTLD = {
  RTLD_NOW: 2,
  RTLD_NODELETE: 0x1000,
} as const;

/** The loaded symbols of libdl. */
export type Libdl = Deno.DynamicLibrary<typeof libdlSymbols>["symbols"];

let loaded: Libdl | undefined;

/** libdl's symbols, opened on first use in this isolate. */
export function libdl(): Libdl {
  loaded ??= Deno.dlopen("libdl.so.2", libdlSymbols).symbols;
  return loaded;
}

const encoder = new TextEncoder();

/**
 * The address of the function `name` as this process resolves it
 * (`dlsym(RTLD_DEFAULT, name)`; RTLD_DEFAULT is a null handle). It stays
 * valid while the library defining it is loaded: for libc, for good.
 */
export function nativeFunction(name: string): Deno.PointerObject {
  const found = libdl().dlsym(null, encoder.encode(`${name}\0`));
  if (found === null) throw new Error(`dlsym(${name}): no such function in this process`);
  return found;
}

/**
 * Keeps library `name` mapped until the process exits, whoever closes it:
 * it is opened once more with RTLD_NODELETE, which forbids the unmap.
 */
export function pinLibrary(name: string): void {
  const flags = RTLD.RTLD_NOW | RTLD.RTLD_NODELETE;
  if (libdl().dlopen(encoder.encode(`${name}\0`), flags) === null) {
    throw new Error(`cannot pin ${name} in memory (dlopen with RTLD_NODELETE failed)`);
  }
}
