/**
 * Turns requests into responses ready for the scheduler: the plan from
 * `respond.ts`, its head text, and the file's mapping from the server's
 * mapping cache. Shared by every transport, so a response is decided and
 * mapped the same way whichever socket carries it.
 *
 * @module
 */

import { HttpError, type RequestHead } from "../protocol/http1.ts";
import { errorPlan, planHead, planResponse, type ResponsePlan } from "./respond.ts";
import type { Mapping, MappingCache } from "../ffi/mapping_cache.ts";
import type { Logger } from "../cli/log.ts";

/** A response as the server keeps it while the scheduler sends it. */
export interface Response {
  readonly plan: ResponsePlan;
  /** The response head text. */
  readonly head: string;
  /** The file's mapping, for a body from a file; taken back by `Responder.release`. */
  mapping?: Mapping;
}

/** What a responder needs from its server. */
export interface ResponderOptions {
  /** The document root (a real path). */
  readonly root: string;
  readonly mappings: MappingCache;
  readonly log: Logger;
}

/** Plans responses and holds their mappings until they are released. */
export class Responder {
  readonly #options: ResponderOptions;

  /** A responder serving the files below `options.root`. */
  constructor(options: ResponderOptions) {
    this.#options = options;
  }

  /**
   * Plans the answer to `request` and maps its file. `headers` are added to
   * the head (e.g. `Connection`), whatever the answer turns out to be.
   */
  respond(request: RequestHead, headers?: Readonly<Record<string, string>>): Response {
    const headOnly = request.method === "HEAD";
    const plan = planResponse(this.#options.root, request);
    if (!plan.file) return withHead(plan, headers);
    let mapping: Mapping | undefined;
    try {
      mapping = this.#options.mappings.acquire(plan.file);
      if (mapping.file.size !== plan.file.size) {
        // Replaced between stat and open: Content-Length would be wrong.
        throw new HttpError(503, "the file changed while it was being opened; try again");
      }
      return { ...withHead(plan, headers), mapping };
    } catch (error) {
      if (mapping) this.#options.mappings.release(mapping);
      this.#options.log.error("mmap failed", { path: plan.file.path, error: String(error) });
      return withHead(errorPlan(error, headOnly), headers);
    }
  }

  /** The answer to a request refused before it could be planned (`error` decides the status). */
  refuse(error: unknown, headers?: Readonly<Record<string, string>>): Response {
    if (!(error instanceof HttpError)) {
      this.#options.log.error("request failed", { error: String(error) });
    }
    return withHead(errorPlan(error), headers);
  }

  /** Gives back the mapping of a response that has settled (again: nothing). */
  release(response: Response): void {
    if (response.mapping) this.#options.mappings.release(response.mapping);
    response.mapping = undefined;
  }
}

function withHead(plan: ResponsePlan, headers?: Readonly<Record<string, string>>): Response {
  if (headers) { for (const name in headers) plan.headers.set(name, headers[name]); }
  return { plan, head: planHead(plan) };
}
