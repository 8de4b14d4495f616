/**
 * The registry of transport drivers, by name.
 *
 * @module
 */

import type { SocketDriver } from "./driver.ts";
import { kernelDriver } from "./kernel.ts";
import { tcpmuxDriver } from "./tcpmux.ts";
import type { TransportName } from "./types.ts";
import { usrsctpDriver } from "./usrsctp.ts";

const drivers: Record<TransportName, SocketDriver | undefined> = {
  kernel: kernelDriver,
  usrsctp: usrsctpDriver,
  tcpmux: tcpmuxDriver,
};

/** The driver of `transport`. */
export function driverFor(transport: TransportName): SocketDriver {
  const driver = drivers[transport];
  if (!driver) throw new Error(`transport "${transport}" is not available`);
  return driver;
}
