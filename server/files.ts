/**
 * The document root: request targets become files, confined to the root.
 *
 * A target is percent-decoded once; NUL bytes, `..` segments (also when
 * encoded as `%2e%2e`) and symlinks that resolve outside the root are
 * refused. A directory is served by its `index.html`.
 *
 * @module
 */

import { extname, join, sep } from "node:path";
import { contentType } from "mime-types";
import { HttpError } from "../protocol/http1.ts";

/** A servable file and the metadata its response headers need. */
export interface FileEntry {
  /** Real path of the file (symlinks resolved). */
  readonly path: string;
  readonly size: number;
  readonly mtime: Date;
  readonly etag: string;
  readonly contentType: string;
}

/** Resolves a request target below `root` (a real path, see `realRoot`). */
export async function resolveFile(root: string, target: string): Promise<FileEntry> {
  const rawPath = target.split(/[?#]/, 1)[0];
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw new HttpError(400, "malformed percent-encoding in path");
  }
  if (path.includes("\0")) throw new HttpError(400, "NUL byte in path");
  const segments = path.split("/");
  if (segments.includes("..")) throw new HttpError(403, "path leaves the document root");
  const real = await realPathWithin(root, join(root, ...segments));
  let info = await Deno.stat(real);
  let file = real;
  if (info.isDirectory) {
    file = await realPathWithin(root, join(real, "index.html"));
    info = await Deno.stat(file);
  }
  if (!info.isFile) throw new HttpError(404, "not a regular file");
  const mtime = info.mtime ?? new Date(0);
  return {
    path: file,
    size: info.size,
    mtime,
    etag: `"${info.size.toString(16)}-${mtime.getTime().toString(16)}"`,
    contentType: contentType(extname(file) || ".bin") || "application/octet-stream",
  };
}

/** The real path of a document root, checked to be a directory. */
export async function realRoot(root: string): Promise<string> {
  const real = await Deno.realPath(root);
  if (!(await Deno.stat(real)).isDirectory) {
    throw new Error(`document root ${root} is not a directory`);
  }
  return real;
}

async function realPathWithin(root: string, path: string): Promise<string> {
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      throw new HttpError(404, "no such file");
    }
    throw error;
  }
  if (real !== root && !real.startsWith(root + sep)) {
    throw new HttpError(403, "path leaves the document root");
  }
  return real;
}
