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
  PathInfo,
  SocketHandle,
  TransportName,
} from "./transport/types.ts";
export { TRANSPORT_NAMES, TransportError } from "./transport/types.ts";
export { NativeError } from "./ffi/errors.ts";
export { MappedFile } from "./ffi/mapped_file.ts";
