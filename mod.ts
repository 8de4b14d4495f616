/**
 * flowsched: web serving over SCTP with per-stream flow scheduling.
 *
 * A server (`startServer`) answers HTTP/1.1 requests over one association
 * per client and decides with a scheduling policy whose bytes go out next; a
 * `FlowClient` sends many requests over one association; a proxy
 * (`startProxy`) puts browsers and other TCP clients in front of it. The
 * transports (`connect`, `listen`) can also be used on their own.
 *
 * @example Serve a directory and fetch a file from it
 * ```ts
 * import { FlowClient, localUdpPort, startServer } from "@flowsched/flowsched";
 *
 * // Server and client in one process share one usrsctp stack, so one UDP port.
 * const udpPort = localUdpPort();
 * await using server = await startServer({ root: "./site", port: 0, policy: "scf", udpPort });
 * await using client = await FlowClient.connect(`usrsctp://127.0.0.1:${server.port}`, { udpPort });
 * const response = await client.request("/index.html");
 * console.log(response.status, (await response.bytes()).byteLength);
 * ```
 *
 * @module
 */

export { connect, listen } from "./transport/association.ts";
export type {
  Association,
  AssociationOptions,
  DataPath,
  Listener,
  ListenOptions,
  Message,
  OutgoingMessage,
  PathInfo,
  StreamScheduler,
  TransportName,
} from "./transport/types.ts";
export {
  DATA_PATHS,
  LOOPBACK_PATH_MTU,
  STREAM_SCHEDULERS,
  TransportError,
} from "./transport/types.ts";
export { TRANSPORT_NAMES } from "./transport/drivers.ts";
export { NativeError } from "./ffi/errors.ts";
export { localUdpPort } from "./transport/usrsctp.ts";
export { MappedFile } from "./ffi/mapped_file.ts";
export { LOG_LEVELS } from "./cli/log.ts";
export type { LogLevel } from "./cli/log.ts";
export { startServer } from "./server/server.ts";
export type { FlowServer, ServerOptions } from "./server/server.ts";
export { SERVER_TRANSPORTS } from "./server/transports.ts";
export type { ServerTransport } from "./server/transports.ts";
export type { SessionView } from "./server/session.ts";
export type { MappingCacheView } from "./ffi/mapping_cache.ts";
export { startTcpBaseline } from "./server/tcp_baseline.ts";
export type { TcpBaseline, TcpBaselineOptions } from "./server/tcp_baseline.ts";
export { POLICIES, POLICY_NAMES } from "./server/policies/mod.ts";
export type { Flow, LaneView, Policy, PolicyFactory, PolicyName } from "./server/policies/mod.ts";
export { Scheduler } from "./server/scheduler.ts";
export type {
  Lane,
  LaneOptions,
  Outcome,
  Run,
  ScheduledFlow,
  SchedulerEvent,
  SchedulerOptions,
  SchedulerView,
} from "./server/scheduler.ts";
export { startProxy } from "./proxy/proxy.ts";
export type { FlowProxy, ProxyOptions } from "./proxy/proxy.ts";
export type { CacheView } from "./proxy/cache.ts";
export type { StatsSnapshot, UpstreamInfo } from "./proxy/stats.ts";
export { FlowClient, parseServerUrl } from "./protocol/client.ts";
export type { FlowResponse, RequestOptions, ServerAddress } from "./protocol/client.ts";
export { HttpError } from "./protocol/http1.ts";
export { ProtocolError } from "./protocol/wire.ts";
