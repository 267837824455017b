// Package gate is the node's decision engine: the Gate decides container creations
// (decision cache, coalescing of identical checks, the hook deadline) with the policy set
// in force (daemon/policystore) against evidence (daemon/evidence), and records every
// decision (daemon/metrics, daemon/audit). The Preverifier does the same work outside the
// hook: image events, policy reloads, re-checks of running containers.
//
// The NRI glue (package plugin) calls Gate.Decide in its hook; cmd/tollgated wires the
// plugin, the gate, the policy store and the servers side by side.
//
// # Where a decision comes from
//
// In the NRI hook (Decide), in order:
//  1. the decision cache, keyed by config digest, digest set, reference, policy generation
//     and the version of the node's evidence for those digests (no I/O, no allocation);
//  2. on a miss, verification against local evidence (node evidence directory, then the
//     disk cache), coalesced per image and bounded by the hook deadline; past the deadline
//     the container is denied and the verification goes on to fill the cache;
//  3. with no evidence on the node, the policy (evaluated on no evidence) says whether any
//     is needed and in which mode: enforce denies saying pre-verification is fetching it
//     (and starts that fetch) or, when the last fetch failed (registry unreachable, an
//     air-gapped node), why it is not coming; audit allows and reports. Neither is cached.
//
// Outside the hook (Preverify, Check): the same, then the registry when the node's evidence
// does not verify; what the registry returns goes to the disk cache and is verified from
// there. Only verdicts are cached, never an infrastructure error.
package gate
