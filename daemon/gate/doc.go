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
//  1. the decision cache, keyed by config digest, digest set, repository (the reference
//     only when there is no repository), policy generation and the version of the node's
//     evidence for those digests (no I/O, no allocation);
//  2. on a miss, verification against local evidence (node evidence directory, then the
//     disk cache), coalesced per image and bounded by the hook deadline; past the deadline
//     the container is denied and the verification goes on to fill the cache;
//  3. when no evidence on the node verifies and the registry may hold some, the image's
//     pre-verification (the pull's, the start-up pass's, or one the hook starts), waited
//     for within what is left of the hook deadline; its verdict is the answer. Only one that
//     cannot finish in time is answered "pending" (enforce denies saying how long the fetch
//     has run; audit allows and reports); when the fetch failed (registry unreachable, an
//     air-gapped node) the answer says why the evidence is not coming. Neither is cached.
//
// Outside the hook (Preverify, Check): the same, then the registry when the node's evidence
// does not verify; what the registry returns goes to the disk cache and is verified from
// there. Only verdicts are cached, never an infrastructure error. Pre-verification runs
// once per image content (config digest, repository, digest set) and policy generation,
// whatever names containerd recorded the content under, and writes one audit record.
package gate
