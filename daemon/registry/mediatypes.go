package registry

// Media types of evidence blobs (layer media types) and referrer artifact types.
// docs/evidence-format.md explains each choice.
const (
	// MediaTypeDSSE is a DSSE envelope (in-toto Statement or in-toto link as payload). It is
	// the layer media type cosign gives attestations in its `.att` image.
	MediaTypeDSSE = "application/vnd.dsse.envelope.v1+json"

	// MediaTypeInTotoLink is a legacy in-toto Metablock link ({"signed": {"_type": "link"},
	// "signatures": [...]}), the `.link` files Python in-toto writes. No media type is
	// registered for it; this name follows the `vnd.<project>.<thing>.v<N>+json` pattern of
	// the DSSE and Sigstore types.
	MediaTypeInTotoLink = "application/vnd.in-toto.link.v1+json"

	// MediaTypeSigstoreBundle is a Sigstore bundle v0.3, as `cosign attest
	// --new-bundle-format` attaches it (artifact type and layer media type alike). Fetch
	// only: Attach does not write bundles.
	MediaTypeSigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"

	// ArtifactTypeInToto is the artifactType of every referrer manifest Attach writes. It is
	// the in-toto payload type, the artifact type cosign uses for its own OCI 1.1
	// attestation referrers, so `oras discover --artifact-type` and cosign see one kind.
	// The layer media type tells a DSSE envelope from a Metablock link.
	ArtifactTypeInToto = "application/vnd.in-toto+json"

	// AnnotationTitle names the file a layer holds (OCI pre-defined annotation).
	AnnotationTitle = "org.opencontainers.image.title"

	// mediaTypeEmpty is the OCI 1.1 empty descriptor used as the config of artifacts.
	mediaTypeEmpty = "application/vnd.oci.empty.v1+json"

	// cosign's attestation layer annotations (pkg/oci/static in cosign v2).
	annotationCosignSignature = "dev.cosignproject.cosign/signature"
	annotationPredicateType   = "predicateType"

	// cosignAttSuffix is the tag suffix of cosign's attestation image.
	cosignAttSuffix = ".att"
)

// evidenceLayer reports whether a layer of this media type is evidence Fetch returns.
func evidenceLayer(mediaType string) bool {
	switch mediaType {
	case MediaTypeDSSE, MediaTypeInTotoLink, MediaTypeSigstoreBundle:
		return true
	}
	return false
}

// evidenceArtifact reports whether a referrer with this artifactType may hold evidence. An
// empty artifactType (older tools) and the empty-config media type (what some registries,
// go-containerregistry's among them, report instead of the manifest's artifactType) are
// looked at; their layers decide.
func evidenceArtifact(artifactType string) bool {
	switch artifactType {
	case "", mediaTypeEmpty, ArtifactTypeInToto, MediaTypeDSSE, MediaTypeInTotoLink, MediaTypeSigstoreBundle:
		return true
	}
	return false
}

// extension is the file-name extension of a blob of this media type when it has no title.
func extension(mediaType string) string {
	switch mediaType {
	case MediaTypeDSSE:
		return ".dsse.json"
	case MediaTypeInTotoLink:
		return ".link"
	case MediaTypeSigstoreBundle:
		return ".sigstore.json"
	}
	return ".json"
}
