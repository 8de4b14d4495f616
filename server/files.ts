/**
 * The document root: request targets become open files, confined to the root.
 *
 * A target is percent-decoded once; NUL bytes and `..` segments (also when
 * encoded as `%2e%2e`) are refused, and so are hidden names (see `isHidden`).
 * The path is then opened once, and what was opened is checked, never the
 * path again: where the file really is (it must lie inside the root, so a
 * symlink may point elsewhere inside it but not out), that its real name is
 * not hidden either, and that it is a regular file. A directory is served by
 * its `index.html`, opened relative to the directory that was checked.
 * Opening uses `O_PATH`, which never blocks (a FIFO would block a plain
 * `open` until a writer comes) and touches nothing before the checks pass;
 * the file is then reopened for reading through its descriptor, so the bytes
 * served are those of the file that was checked, whatever is renamed or
 * swapped meanwhile.
 *
 * @module
 */

import { extname, join } from "node:path";
import { contentType } from "mime-types";
import { HttpError } from "../protocol/http1.ts";
import { C } from "../ffi/libc.ts";
import { Errno, NativeError } from "../ffi/errors.ts";
import { FileDescriptor, type FileStatus, fileVersion } from "../ffi/file_descriptor.ts";

/**
 * A servable file, open, and the metadata its response headers need. It owns
 * its descriptor: whoever holds the entry closes it (`close()`, `using`).
 */
export class FileEntry implements Disposable {
  /** Real path of the file when it was opened (symlinks resolved). */
  readonly path: string;
  readonly size: number;
  readonly mtime: Date;
  readonly etag: string;
  readonly contentType: string;
  /** Which version of which file this is (`fileVersion`). */
  readonly version: string;
  readonly #descriptor: FileDescriptor;

  /** Takes `descriptor`, a readable descriptor of the file `status` describes. */
  constructor(path: string, descriptor: FileDescriptor, status: FileStatus) {
    this.path = path;
    this.#descriptor = descriptor;
    this.size = status.size;
    this.mtime = new Date(Number(status.mtimeNs / 1_000_000n));
    this.etag = `"${this.size.toString(16)}-${this.mtime.getTime().toString(16)}"`;
    this.contentType = contentType(extname(path) || ".bin") || "application/octet-stream";
    this.version = fileVersion(status);
  }

  /** The open descriptor of exactly the checked file; valid until `close()`. */
  get descriptor(): FileDescriptor {
    return this.#descriptor;
  }

  /** Closes the descriptor (again: nothing). */
  close(): void {
    this.#descriptor.close();
  }

  /** Closes the descriptor, as `close()` does. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Whether a path (its segments, relative to the root) names something
 * hidden: a segment starting with `.` (`.git`, `.env`, `.htpasswd`), except
 * `.well-known` as the first segment (RFC 8615). Hidden names are answered
 * 404, as if they did not exist.
 */
export function isHidden(segments: readonly string[]): boolean {
  return segments.some((segment, i) =>
    segment.startsWith(".") && !(i === 0 && segment === ".well-known")
  );
}

/**
 * Opens the file a request target names below `root` (a real path, see
 * `realRoot`). The caller owns the returned entry and closes it.
 */
export function resolveFile(root: string, target: string): FileEntry {
  const rawPath = target.split(/[?#]/, 1)[0];
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw new HttpError(400, "malformed percent-encoding in path");
  }
  if (path.includes("\0")) throw new HttpError(400, "NUL byte in path");
  // "." segments name the directory they are in (RFC 3986 §5.2.4): `/./a` is `/a`.
  const segments = path.split("/").filter((segment) => segment !== "" && segment !== ".");
  if (segments.includes("..")) throw new HttpError(403, "path leaves the document root");
  if (isHidden(segments)) throw new HttpError(404, "no such file");

  let opened = openChecked(root, () => FileDescriptor.open(join(root, ...segments), C.O_PATH));
  try {
    if (opened.status.kind === "directory") {
      const directory = opened.descriptor;
      opened = openChecked(root, () => directory.openAt("index.html", C.O_PATH));
      directory.close();
    }
    if (opened.status.kind !== "file") throw new HttpError(404, "not a regular file");
    const readable = translate(() => opened.descriptor.reopen(C.O_RDONLY | C.O_NONBLOCK));
    try {
      // Reopening by descriptor cannot reach another file; only its metadata can have changed.
      return new FileEntry(opened.location, readable, readable.status());
    } catch (error) {
      readable.close();
      throw error;
    }
  } finally {
    opened.descriptor.close();
  }
}

/** The real path of a document root, checked to be a directory. */
export function realRoot(root: string): string {
  let descriptor: FileDescriptor;
  try {
    descriptor = FileDescriptor.open(root, C.O_PATH);
  } catch (cause) {
    throw new Error(`document root ${root}: ${(cause as Error).message}`, { cause });
  }
  try {
    if (descriptor.status().kind !== "directory") {
      throw new Error(`document root ${root} is not a directory`);
    }
    return descriptor.location();
  } catch (cause) {
    if (cause instanceof NativeError && cause.call === "readlink") {
      // Every request is checked through /proc/self/fd (see the module doc).
      throw new Error(
        `document root ${root}: cannot see where opened files are (${cause.message}); ` +
          "the server needs /proc mounted",
        { cause },
      );
    }
    throw cause;
  } finally {
    descriptor.close();
  }
}

interface Opened {
  readonly descriptor: FileDescriptor;
  readonly location: string;
  readonly status: FileStatus;
}

/** Runs `open` (an `O_PATH` open), then checks what it opened; closes it if a check fails. */
function openChecked(root: string, open: () => FileDescriptor): Opened {
  const descriptor = translate(open);
  try {
    const location = descriptor.location();
    // Read after the location: a file unlinked in between shows no links.
    const status = descriptor.status();
    if (status.links === 0) throw new HttpError(404, "no such file");
    const prefix = root.endsWith("/") ? root : `${root}/`;
    if (location !== root && !location.startsWith(prefix)) {
      throw new HttpError(403, "path leaves the document root");
    }
    if (isHidden(location.slice(prefix.length).split("/"))) {
      throw new HttpError(404, "no such file");
    }
    return { descriptor, location, status };
  } catch (error) {
    descriptor.close();
    throw error;
  }
}

/** Runs an open, turning the errors a client can cause into statuses. */
function translate(open: () => FileDescriptor): FileDescriptor {
  try {
    return open();
  } catch (error) {
    if (!(error instanceof NativeError)) throw error;
    switch (error.errno) {
      case Errno.ENOENT:
      case Errno.ENOTDIR:
      case Errno.ENAMETOOLONG:
      case Errno.ELOOP:
        throw new HttpError(404, "no such file");
      case Errno.EACCES:
        throw new HttpError(403, "permission denied");
    }
    throw error;
  }
}
