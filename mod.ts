/**
 * flowsched: web serving over SCTP with per-stream flow scheduling.
 *
 * @module
 */

export { connect, listen } from "./transport/association.ts";
export type {
  Association,
  AssociationOptions,
  Listener,
  Message,
  OutgoingMessage,
  PathInfo,
  SocketHandle,
  TransportName,
} from "./transport/types.ts";
export { TRANSPORT_NAMES, TransportError } from "./transport/types.ts";
export { NativeError } from "./ffi/errors.ts";
export { localUdpPort } from "./transport/usrsctp.ts";
export { MappedFile } from "./ffi/mapped_file.ts";
export { startServer } from "./server/server.ts";
export type { FlowServer, ServerOptions } from "./server/server.ts";
export { startTcpBaseline } from "./server/tcp_baseline.ts";
export type { TcpBaseline, TcpBaselineOptions } from "./server/tcp_baseline.ts";
export { POLICY_NAMES } from "./server/policies/mod.ts";
export type { Flow, LaneView, Policy, PolicyName } from "./server/policies/mod.ts";
export { Scheduler } from "./server/scheduler.ts";
export type {
  Lane,
  LaneOptions,
  Outcome,
  Run,
  ScheduledFlow,
  SchedulerEvent,
  SchedulerOptions,
} from "./server/scheduler.ts";
export { FlowClient, parseServerUrl } from "./protocol/client.ts";
export type { FlowResponse, RequestOptions, ServerAddress } from "./protocol/client.ts";
