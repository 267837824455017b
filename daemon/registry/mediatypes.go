package registry

import "tollgate.dev/tollgate/policy/cosign"

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
	// --new-bundle-format`, cosign v3 and GitHub's pushed attestations attach it (artifact
	// type and layer media type alike). Fetch only: Attach does not write bundles.
	MediaTypeSigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"

	// MediaTypeCosignSignature is the layer media type of cosign's `.sig` image (a
	// simple-signing payload; the signature is in the layer's annotations).
	MediaTypeCosignSignature = cosign.MediaTypeSimpleSigning

	// artifactTypeCosignSignature is the artifactType cosign v2 gives an image signature
	// stored as an OCI 1.1 referrer (--registry-referrers-mode=oci-1-1).
	artifactTypeCosignSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"

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
	// cosignSigSuffix is the tag suffix of cosign's signature image.
	cosignSigSuffix = ".sig"
	// cosignLayerExt names a layer stored with its annotations (cosign.Layer).
	cosignLayerExt = ".cosign.json"
)

// sigstoreBundleTypes are the Sigstore bundle media types: v0.3's own spelling and the
// parameterised spellings of v0.1 to v0.3 that older tools write.
var sigstoreBundleTypes = map[string]bool{
	MediaTypeSigstoreBundle:                                true,
	"application/vnd.dev.sigstore.bundle+json;version=0.3": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.2": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.1": true,
}

// cosignAnnotations are the layer annotations in which cosign keeps a signature and its
// keyless material. A layer carrying any of them is stored with them (cosign.Layer).
var cosignAnnotations = []string{cosign.AnnotationSignature, cosign.AnnotationCertificate,
	cosign.AnnotationChain, cosign.AnnotationBundle, cosign.AnnotationTimestamp}

// cosignLayer returns the cosign annotations of a layer that must travel with its blob,
// or nil. A `.sig` layer always does: without its annotation it holds no signature. An
// `.att` layer does when it carries keyless material; cosign gives every `.att` layer an
// empty signature annotation (the signature is in the envelope), which is not that.
func cosignLayer(l descriptor) map[string]string {
	out := map[string]string{}
	keyless := false
	for _, k := range cosignAnnotations {
		if v, ok := l.Annotations[k]; ok && v != "" {
			out[k] = v
			keyless = keyless || k != cosign.AnnotationSignature
		}
	}
	if l.MediaType == MediaTypeCosignSignature || keyless {
		return out
	}
	return nil
}

// evidenceLayer reports whether a layer of this media type is evidence Fetch returns.
func evidenceLayer(mediaType string) bool {
	switch mediaType {
	case MediaTypeDSSE, MediaTypeInTotoLink, MediaTypeCosignSignature:
		return true
	}
	return sigstoreBundleTypes[mediaType]
}

// evidenceArtifact reports whether a referrer with this artifactType may hold evidence. An
// empty artifactType (older tools) and the empty-config media type (what some registries,
// go-containerregistry's among them, report instead of the manifest's artifactType) are
// looked at; their layers decide.
func evidenceArtifact(artifactType string) bool {
	switch artifactType {
	case "", mediaTypeEmpty, ArtifactTypeInToto, MediaTypeDSSE, MediaTypeInTotoLink, artifactTypeCosignSignature:
		return true
	}
	return sigstoreBundleTypes[artifactType]
}

// extension is the file-name extension of a blob of this media type when it has no title.
func extension(mediaType string) string {
	switch mediaType {
	case MediaTypeDSSE:
		return ".dsse.json"
	case MediaTypeInTotoLink:
		return ".link"
	case MediaTypeCosignSignature:
		return cosignLayerExt
	}
	if sigstoreBundleTypes[mediaType] {
		return ".sigstore.json"
	}
	return ".json"
}
