/**
 * What the server can listen on: every association transport (the flowsched
 * wire protocol, docs/PROTOCOL.md) and `tcp`, plain HTTP/1.1 over TCP for
 * curl, wrk and browsers, through the same file layer and scheduler.
 *
 * @module
 */

import { TRANSPORT_NAMES } from "../transport/drivers.ts";

/** Every transport the server listens on, for validation and help texts. */
export const SERVER_TRANSPORTS = [...TRANSPORT_NAMES, "tcp"] as const;

/** A transport the server listens on. */
export type ServerTransport = typeof SERVER_TRANSPORTS[number];
