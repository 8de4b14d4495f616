/**
 * The policy registry: a new policy is one file plus one line here.
 *
 * @module
 */

import { fifo } from "./fifo.ts";
import { ps } from "./ps.ts";
import { rr } from "./rr.ts";
import { scf } from "./scf.ts";
import { sizeclass } from "./sizeclass.ts";
import { srpt } from "./srpt.ts";
import { srrt } from "./srrt.ts";
import type { PolicyFactory } from "./types.ts";

/** Policies by name. */
export const POLICIES = { scf, rr, srpt, srrt, ps, fifo, sizeclass } as const satisfies Record<
  string,
  PolicyFactory
>;

/** A registered policy name. */
export type PolicyName = keyof typeof POLICIES;

/** Policy names, for validation and help texts. */
export const POLICY_NAMES = Object.keys(POLICIES) as PolicyName[];

export type { Flow, LaneView, Policy, PolicyFactory } from "./types.ts";
