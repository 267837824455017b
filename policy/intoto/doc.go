// Package intoto verifies in-toto layouts and links (specification v0.9/v1.0) with the
// semantics of Python in-toto's verifylib, without touching files, the network or a
// process table.
//
// The verification order is Python's: layout signatures, expiry, parameter substitution,
// link signatures and thresholds, sublayouts, command alignment (a warning only), agreement
// of threshold links, step artifact rules, inspections, inspection artifact rules.
//
// Compile does the layout's share of that work once (signatures, parsing, parameter
// substitution, rule compilation) and returns an immutable Verifier whose Verify checks
// expiry and the evidence only; Verify is Compile and Verifier.Verify in one call.
//
// Two things differ from Python on purpose:
//   - Inspections never run. The inspection named "image" is synthesized from the image the
//     node is about to run (WithImage); any other inspection makes the layout unusable unless
//     the caller supplies an InspectionRunner (the CLI does; the node never does).
//   - Links are found by their own name and signer, not by file name. File paths only scope
//     sublayouts: a sublayout signed by key K for step S finds its links under "S.<K[:8]>/",
//     and the sublayout itself is read from "S.<K[:8]>.link", as Python lays them out.
//
// Stricter than Python, also on purpose:
//   - Links accepted for a step must all record the same materials and products, whatever
//     the threshold (Python checks this only when threshold > 1, and otherwise uses
//     whichever link file it happened to load first).
//   - "{NAME}" placeholders are always substituted, so a parameter without a value is an
//     error (Python substitutes only when given parameters, and leaves "{NAME}" to match
//     nothing otherwise). Sublayouts get the same parameters (Python gives them none).
//   - A layout is invalid if a step's threshold is below 1 or above the number of distinct
//     keys it authorizes, if it authorizes a keyid it does not list, or if two listed keys
//     are the same key material. GPG keys and subkeys are not supported.
//
// Link evidence is untrusted, so the signature checks it causes are bounded: each check of
// a link or sublayout signature is charged to a budget first (WithSignatureBudget; by
// default DefaultSignatureChecks per Verify call, shared by the sublayouts), and running
// out fails verification with reason.Malformed naming the step. Signatures whose keyid
// names an authorized key are checked before keyless ones, which are tried against every
// key not yet proven.
//
// Every failure is a *reason.Error whose text names the step, rule and artifact involved.
// When a DISALLOW rule rejects an artifact that an earlier MATCH rule selected but could
// not consume, the error names that MATCH rule and why it failed, since that is the rule
// the layout's author meant the artifact to pass.
package intoto

// Hard limits. Every count an attacker or a careless layout author controls is bounded, so
// a hostile evidence set costs bounded CPU and memory. Documents themselves are bounded by
// jsonlimit.MaxBytes (16 MiB), which is the effective bound on artifacts per link: 100,000
// artifacts recorded with sha256 take about 10 MiB.
const (
	MaxSteps            = 256     // steps per layout
	MaxInspections      = 64      // inspections per layout
	MaxRules            = 256     // rules per expected_materials or expected_products list
	MaxLayoutKeys       = 256     // functionary keys per layout
	MaxLinksPerStep     = 64      // candidate links (or sublayouts) considered per step
	MaxArtifacts        = 500_000 // materials, and separately products, per link
	MaxSublayoutDepth   = 4       // nesting of sublayouts below the root layout
	MaxSublayouts       = 32      // sublayouts verified in one Verify call, all levels
	MaxParameters       = 256     // substitution parameters
	MaxParameterBytes   = 4096    // bytes per parameter value
	MaxImageDigests     = 64      // manifest/index digests tried for the image inspection
	MaxEvidenceFiles    = 4096    // files given to NewLinks
	MaxEvidenceBytes    = 256 << 20
	maxCommandArgs      = 4096 // arguments of expected_command, run and a link's command
	maxNameBytes        = 1024 // step, inspection and link names
	maxWarnings         = 100
	imageInspectionName = "image"
)
