/**
 * The registry of transport drivers, by name: a new transport is one driver
 * file plus its name and entry here, and every list of names comes from here.
 *
 * @module
 */

import type { SocketDriver } from "./driver.ts";
import { kernelDriver } from "./kernel.ts";
import { tcpmuxDriver } from "./tcpmux.ts";
import { usrsctpDriver } from "./usrsctp.ts";

/** All transport names, for validation and help texts. */
export const TRANSPORT_NAMES = ["kernel", "usrsctp", "tcpmux"] as const;

/** The transports flowsched can run over. */
export type TransportName = typeof TRANSPORT_NAMES[number];

/** Drivers by transport name: the type checker keeps this and the names in step. */
const DRIVERS: Record<TransportName, SocketDriver> = {
  kernel: kernelDriver,
  usrsctp: usrsctpDriver,
  tcpmux: tcpmuxDriver,
};

/** The driver of `transport`. */
export function driverFor(transport: TransportName): SocketDriver {
  const driver: SocketDriver | undefined = DRIVERS[transport];
  if (!driver) throw new Error(`transport "${transport}" is not available`);
  return driver;
}
