/**
 * The flow-scheduling server: accepts associations, serves each with a
 * `Session` (or, over `tcp`, plain HTTP/1.1 connections, each with an
 * `HttpConnection`), and decides with one `Scheduler` for all of them whose
 * bytes go out next, run by run.
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
import type { AssociationOptions, Listener } from "../transport/types.ts";
import { realRoot } from "./files.ts";
import { createLogger, type Logger, type LogLevel } from "../cli/log.ts";
import { MappingCache, type MappingCacheView } from "../ffi/mapping_cache.ts";
import { POLICIES, type PolicyName } from "./policies/mod.ts";
import { Scheduler, type SchedulerView } from "./scheduler.ts";
import { Session, type SessionView } from "./session.ts";
import { HttpConnection, refuseConnection } from "./http_connection.ts";
import { acceptEach } from "../transport/tcp_accept.ts";
import { Responder, type Response } from "./responder.ts";
import type { ServerTransport } from "./transports.ts";
import { encodeReset } from "../protocol/wire.ts";

/** Server options; every field has a default. */
export interface ServerOptions extends Omit<AssociationOptions, "maxMessageSize"> {
  /**
   * Transport to listen on: an association transport, or `tcp` for plain
   * HTTP/1.1 over TCP (one lane with one stream per connection).
   * @default "usrsctp"
   */
  transport?: ServerTransport;
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
   * Associations (over `tcp`: connections) served at once; one more is told
   * so (RESET with id 0, status 503; over `tcp` a 503 response) and closed.
   * @default 32
   */
  maxAssociations?: number;
  /**
   * Requests in flight per association; one more is answered RESET 503.
   * Over `tcp`: pipelined requests read ahead of their answers; reading
   * pauses at this many.
   * @default 1024
   */
  maxInFlight?: number;
  /**
   * Largest request message in bytes: a larger REQUEST (over `tcp`, request
   * head) is answered 431 (only this much of it is ever buffered). Over
   * `tcp` the connection then closes. @default 65536
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
  /**
   * `tcp` only: keep connections open between requests (HTTP/1.1 persistent
   * connections); false answers every request with `Connection: close`.
   * @default true
   */
  keepAlive?: boolean;
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

/** What `startServer` keeps of one association or connection. */
interface Served extends SessionView {
  abort(): Promise<void>;
}

/** What the serving half of a server shares with the accept loop of its transport. */
interface Context {
  readonly options: ServerOptions;
  readonly log: Logger;
  readonly responder: Responder;
  readonly scheduler: Scheduler<Response>;
  readonly sessions: Set<Served>;
}

/** A transport's accept loop, running. */
interface Accepting {
  readonly port: number;
  /** Stops accepting and waits until the loop has ended. */
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
  const sessions = new Set<Served>();
  const context: Context = {
    options,
    log,
    responder: new Responder({ root, mappings, log }),
    scheduler,
    sessions,
  };
  const accepting = transport === "tcp"
    ? acceptConnections(context)
    : acceptAssociations(transport, context);
  log.info("listening", {
    transport,
    host: options.host ?? "127.0.0.1",
    port: accepting.port,
    root,
    policy,
  });

  let closing: Promise<void> | undefined;
  const server: FlowServer = {
    port: accepting.port,
    sessions,
    mappings,
    scheduler,
    close() {
      closing ??= (async () => {
        await accepting.close();
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

/** Adds `session` to the server's and drops it once it has ended. */
function track(context: Context, session: Served) {
  context.sessions.add(session);
  session.done
    .catch((error) => context.log.error("session ended with an error", { error: String(error) }))
    .finally(() => context.sessions.delete(session));
}

/** Listens on an association transport and serves each association with a `Session`. */
function acceptAssociations(
  transport: Exclude<ServerTransport, "tcp">,
  context: Context,
): Accepting {
  const { options, log } = context;
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
  const loop = (async () => {
    for await (const association of listener) {
      track(
        context,
        new Session(association, {
          responder: context.responder,
          chunkSize: options.chunkSize ?? 65536,
          scheduler: context.scheduler,
          log,
          maxInFlight: options.maxInFlight ?? 1024,
          maxRequestSize,
          idleTimeout: options.idleTimeout ?? 300,
        }),
      );
      log.debug("association accepted", { streams: association.outboundStreams });
    }
  })();
  return {
    port: listener.port,
    async close() {
      await listener.close();
      await loop;
    },
  };
}

/** Listens on TCP and serves each connection as plain HTTP/1.1 with an `HttpConnection`. */
function acceptConnections(context: Context): Accepting {
  const { options, log } = context;
  const maxConnections = options.maxAssociations ?? 32;
  const listener = Deno.listen({
    transport: "tcp",
    hostname: options.host ?? "127.0.0.1",
    port: options.port ?? 9000,
  });
  /** Refused connections still being told so, closed early if the server closes. */
  const refusing = new Map<Deno.Conn, Promise<void>>();
  let closed = false;
  const loop = acceptEach(
    listener,
    () => closed,
    (conn) => {
      if (context.sessions.size >= maxConnections) {
        log.warn("peer refused", {
          reason: `connection refused: ${maxConnections} are open (maxAssociations)`,
        });
        const refusal = refuseConnection(
          conn,
          503,
          `too many connections (limit ${maxConnections})`,
        );
        refusing.set(conn, refusal.finally(() => refusing.delete(conn)));
        return;
      }
      track(
        context,
        new HttpConnection(conn, {
          responder: context.responder,
          scheduler: context.scheduler,
          log,
          maxRequestSize: options.maxRequestSize ?? 64 * 1024,
          maxPipelined: options.maxInFlight ?? 1024,
          idleTimeout: options.idleTimeout ?? 300,
          sendTimeout: options.sendTimeout ?? 60,
          keepAlive: options.keepAlive ?? true,
        }),
      );
      log.debug("connection accepted", { peer: conn.remoteAddr.hostname });
    },
    (error) => log.warn("accept failed", { error: String(error) }),
  );
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      closed = true;
      listener.close();
      await loop;
      for (const conn of refusing.keys()) {
        try {
          conn.close();
        } catch {
          // Its refusal closed it already.
        }
      }
      await Promise.all(refusing.values());
    },
  };
}
