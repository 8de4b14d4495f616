/**
 * The flow-scheduling server: accepts associations, serves each with a
 * `Session`, and decides with one `Scheduler` for all of them whose bytes go
 * out next, run by run.
 *
 * @example
 * ```ts
 * const server = await startServer({ transport: "usrsctp", port: 9000, root: "./site", policy: "scf" });
 * // ... later
 * await server.close();
 * ```
 *
 * @module
 */

import { listen } from "../transport/association.ts";
import type { AssociationOptions, Listener, TransportName } from "../transport/types.ts";
import { realRoot } from "./files.ts";
import { createLogger, type LogLevel } from "../cli/log.ts";
import { MappingCache, type MappingCacheView } from "./mapping_cache.ts";
import { POLICIES, type PolicyName } from "./policies/mod.ts";
import { Scheduler, type SchedulerView } from "./scheduler.ts";
import { type Response, Session, type SessionView } from "./session.ts";
import { encodeReset } from "../protocol/wire.ts";

/** Server options; every field has a default. */
export interface ServerOptions extends Omit<AssociationOptions, "maxMessageSize"> {
  /** Transport to listen on. @default "usrsctp" */
  transport?: TransportName;
  /** Address to listen on. @default "127.0.0.1" */
  host?: string;
  /** Port to listen on (0: any free port, see `FlowServer.port`). @default 9000 */
  port?: number;
  /** Document root. @default "." */
  root?: string;
  /** Scheduling policy. @default "scf" */
  policy?: PolicyName;
  /** Largest body message in bytes. @default 65536 */
  chunkSize?: number;
  /** Body bytes per run: the scheduler decides again after every run. @default 131072 */
  runBytes?: number;
  /** Runs queued per association beyond the scheduler's reach. @default 2 */
  laneDepth?: number;
  /** Runs in flight over all associations (0: no limit beyond `laneDepth`). @default 0 */
  wireRuns?: number;
  /** Responses in service at once, server-wide (admission control; 0: no limit). @default 0 */
  maxRunning?: number;
  /** Emulated bottleneck in bytes per second (0: none). @default 0 */
  pace?: number;
  /**
   * Socket send buffer: small, so that the queue (and the order) stays in the
   * scheduler rather than in the stack.
   * @default 262144
   */
  sendBufferSize?: number;
  /** Idle file mappings kept for reuse. @default 256 */
  mappingCacheSize?: number;
  /**
   * Associations served at once; one more is told so (RESET with id 0,
   * status 503) and closed.
   * @default 32
   */
  maxAssociations?: number;
  /** Requests in flight per association; one more is answered RESET 503. @default 1024 */
  maxInFlight?: number;
  /**
   * Largest request message in bytes: a larger REQUEST is answered 431 (only
   * this much of it is ever buffered). @default 65536
   */
  maxRequestSize?: number;
  /**
   * Seconds an association with no request in flight may stay silent before
   * it is closed (RESET with id 0, status 408); 0: never.
   * @default 300
   */
  idleTimeout?: number;
  /**
   * Seconds responses may wait on a peer that takes no data (it stopped
   * reading) before its association is aborted; 0: never.
   * @default 60
   */
  sendTimeout?: number;
  /** Entries below this level are not logged (`silent`: none are). @default "info" */
  logLevel?: LogLevel;
  /** Keep the scheduler's event log (tests, analysis). @default false */
  eventLog?: boolean;
  /** Start with the scheduler held until `scheduler.release()` (tests). @default false */
  held?: boolean;
}

/** A running server. */
export interface FlowServer extends AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** Sessions currently being served, one per association. */
  readonly sessions: ReadonlySet<SessionView>;
  /** File mappings currently held. */
  readonly mappings: MappingCacheView;
  /** The scheduler shared by every session. */
  readonly scheduler: SchedulerView;
  /** Stops accepting, ends every session, unmaps every file. */
  close(): Promise<void>;
}

/** Starts a server and returns once it listens. */
export async function startServer(options: ServerOptions = {}): Promise<FlowServer> {
  const transport = options.transport ?? "usrsctp";
  const log = createLogger(options.logLevel ?? "info", "server");
  const root = await realRoot(options.root ?? ".");
  const mappings = new MappingCache(options.mappingCacheSize ?? 256);
  const policy = options.policy ?? "scf";
  const scheduler = new Scheduler<Response>(POLICIES[policy](), {
    runBytes: options.runBytes,
    laneDepth: options.laneDepth,
    wireRuns: options.wireRuns,
    maxRunning: options.maxRunning,
    paceBytesPerSecond: options.pace,
    eventLog: options.eventLog,
    held: options.held,
  });
  const maxRequestSize = options.maxRequestSize ?? 64 * 1024;
  const maxAssociations = options.maxAssociations ?? 32;
  const listener: Listener = listen(
    transport,
    options.host ?? "127.0.0.1",
    options.port ?? 9000,
    {
      ...options,
      sendBufferSize: options.sendBufferSize ?? 256 * 1024,
      maxMessageSize: maxRequestSize,
      sendTimeout: options.sendTimeout ?? 60,
      maxAssociations,
      refusal: encodeReset(0, 503, `too many associations (limit ${maxAssociations})`),
      onAcceptError: (error) => log.warn("peer refused", { reason: error.message }),
    },
  );
  const sessions = new Set<Session>();
  log.info("listening", {
    transport,
    host: options.host ?? "127.0.0.1",
    port: listener.port,
    root,
    policy,
  });

  const accepting = (async () => {
    for await (const association of listener) {
      const session = new Session(association, {
        root,
        chunkSize: options.chunkSize ?? 65536,
        mappings,
        scheduler,
        log,
        maxInFlight: options.maxInFlight ?? 1024,
        maxRequestSize,
        idleTimeout: options.idleTimeout ?? 300,
      });
      sessions.add(session);
      log.debug("association accepted", { streams: association.outboundStreams });
      session.done
        .catch((error) => log.error("session ended with an error", { error: String(error) }))
        .finally(() => sessions.delete(session));
    }
  })();

  let closing: Promise<void> | undefined;
  const server: FlowServer = {
    port: listener.port,
    sessions,
    mappings,
    scheduler,
    close() {
      closing ??= (async () => {
        await listener.close();
        await accepting;
        scheduler.dispose();
        await Promise.all([...sessions].map((session) => session.abort()));
        mappings.clear();
      })();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return server.close();
    },
  };
  return server;
}
