// Package registry moves in-toto evidence between Tollgate and OCI registries through
// go-containerregistry. It is shared by the CLI (`tollgate attach`, `fetch`, `verify --image`)
// and the node daemon (pre-verification).
//
// The package moves bytes; it verifies nothing. Signatures, thresholds and subject binding
// are the policy packages' job, and the daemon binds decisions to the image config digest it
// reads from containerd's content store, never to what a registry says.
//
// Evidence for an image digest is looked up in two places:
//
//   - OCI 1.1 referrers: the referrers API, or the referrers tag fallback
//     (`sha256-<hex>`, an image index) where the registry has no API;
//   - cosign's attestation image, tagged `sha256-<hex>.att`, whose layers are DSSE envelopes.
//
// Attach writes both: every artifact as a referrer, and DSSE-wrapped in-toto Statements also
// as layers of the `.att` image so that `cosign verify-attestation` finds them.
//
// Every size, count and time is bounded (see the With* options). Fetch returns an empty map
// when there is no evidence and an error when the registry could not be asked, so that a
// caller never mistakes an outage for missing evidence. docs/evidence-format.md documents
// the wire format.
package registry
