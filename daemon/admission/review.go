package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The AdmissionReview this webhook speaks: admission.k8s.io/v1 only (the
// ValidatingWebhookConfiguration asks for admissionReviewVersions [v1]).
const (
	reviewAPIVersion = "admission.k8s.io/v1"
	reviewKind       = "AdmissionReview"
)

// Bounds on what one review may make us do. The API server caps an object at about 1.5 MB
// (etcd's request limit); a review carries the object and, on UPDATE, the old object.
const (
	DefaultMaxRequestBytes = 7 << 20
	maxContainers          = 1024 // containers of all kinds in one pod spec
	maxVolumes             = 1024 // volumes in one pod spec
)

// errMalformed marks a review the API server could not have sent: the answer is HTTP 400.
var errMalformed = errors.New("malformed AdmissionReview")

// containerImage is one image reference of a pod spec, and where it is.
type containerImage struct {
	Field     string // "spec.template.spec.initContainers[0].image"
	Container string
	Volume    string // an image volume's name (KEP-4639); Container is then empty
	Image     string
}

// what names where the image is used, for a denial's cause.
func (c containerImage) what() string {
	if c.Volume != "" {
		return fmt.Sprintf("image volume %q", c.Volume)
	}
	return fmt.Sprintf("container %q", c.Container)
}

// decodeReview reads exactly one admission.k8s.io/v1 AdmissionReview with a request.
// Anything else is errMalformed, with a sentence saying what is wrong.
func decodeReview(data []byte) (*admissionv1.AdmissionReview, error) {
	var r admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", errMalformed)
	}
	switch {
	case r.APIVersion != reviewAPIVersion || r.Kind != reviewKind:
		return nil, fmt.Errorf("%w: apiVersion %q kind %q, want %s %s", errMalformed, r.APIVersion, r.Kind, reviewAPIVersion, reviewKind)
	case r.Request == nil:
		return nil, fmt.Errorf("%w: no request", errMalformed)
	case r.Request.UID == "":
		return nil, fmt.Errorf("%w: request has no uid", errMalformed)
	case r.Response != nil:
		return nil, fmt.Errorf("%w: a review sent to a webhook carries no response", errMalformed)
	}
	return &r, nil
}

// podSpecOf decodes raw as the object of kind (group/version/kind as the API server names
// it) and returns its pod spec and the field path of that spec. ok is false for kinds that
// run no containers of their own (they are allowed unchecked); a nil spec with ok true
// means the object has none (a ReplicationController without a template).
func podSpecOf(group, version, kind string, raw []byte) (spec *corev1.PodSpec, path string, ok bool, err error) {
	decode := func(v any) error {
		if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return errors.New("the request has no object")
		}
		return json.Unmarshal(raw, v)
	}
	switch group + "/" + version + "/" + kind {
	case "/v1/Pod":
		var o corev1.Pod
		err = decode(&o)
		return &o.Spec, "spec", true, err
	case "/v1/ReplicationController":
		var o corev1.ReplicationController
		if err = decode(&o); err != nil || o.Spec.Template == nil {
			return nil, "", true, err
		}
		return &o.Spec.Template.Spec, "spec.template.spec", true, nil
	case "apps/v1/Deployment":
		var o appsv1.Deployment
		err = decode(&o)
		return &o.Spec.Template.Spec, "spec.template.spec", true, err
	case "apps/v1/StatefulSet":
		var o appsv1.StatefulSet
		err = decode(&o)
		return &o.Spec.Template.Spec, "spec.template.spec", true, err
	case "apps/v1/DaemonSet":
		var o appsv1.DaemonSet
		err = decode(&o)
		return &o.Spec.Template.Spec, "spec.template.spec", true, err
	case "apps/v1/ReplicaSet":
		var o appsv1.ReplicaSet
		err = decode(&o)
		return &o.Spec.Template.Spec, "spec.template.spec", true, err
	case "batch/v1/Job":
		var o batchv1.Job
		err = decode(&o)
		return &o.Spec.Template.Spec, "spec.template.spec", true, err
	case "batch/v1/CronJob":
		var o batchv1.CronJob
		err = decode(&o)
		return &o.Spec.JobTemplate.Spec.Template.Spec, "spec.jobTemplate.spec.template.spec", true, err
	}
	return nil, "", false, nil
}

// imagesOf lists every image of a pod spec: containers, init containers, ephemeral
// containers and image volumes (whose content the containers mounting them can run:
// checked like a container image, whatever their pullPolicy, since the node gate decides
// the content actually mounted in any case), with field paths for the denial's causes.
func imagesOf(spec *corev1.PodSpec, path string) ([]containerImage, error) {
	if spec == nil {
		return nil, nil
	}
	if n := len(spec.Containers) + len(spec.InitContainers) + len(spec.EphemeralContainers); n > maxContainers {
		return nil, fmt.Errorf("%d containers, over the limit of %d", n, maxContainers)
	}
	if n := len(spec.Volumes); n > maxVolumes {
		return nil, fmt.Errorf("%d volumes, over the limit of %d", n, maxVolumes)
	}
	var out []containerImage
	add := func(list string, i int, name, image string) {
		if image == "" {
			return // the API server's validation refuses it; nothing to check
		}
		out = append(out, containerImage{
			Field:     fmt.Sprintf("%s.%s[%d].image", path, list, i),
			Container: name,
			Image:     image,
		})
	}
	for i, c := range spec.InitContainers {
		add("initContainers", i, c.Name, c.Image)
	}
	for i, c := range spec.Containers {
		add("containers", i, c.Name, c.Image)
	}
	for i, c := range spec.EphemeralContainers {
		add("ephemeralContainers", i, c.Name, c.Image)
	}
	for i, v := range spec.Volumes {
		if v.Image != nil && v.Image.Reference != "" {
			out = append(out, containerImage{Field: fmt.Sprintf("%s.volumes[%d].image.reference", path, i),
				Volume: v.Name, Image: v.Image.Reference})
		}
	}
	return out, nil
}

// reviewImages returns the images a review asks us to check and the pod spec that holds
// them (its placement chooses the platforms), or checked=false when the review is allowed
// without checks (another kind, operation or subresource).
//
// On UPDATE only images that the old object did not already use are checked. An update
// that introduces no new image (labels, finalizers, scaling, a rollout restart) is never
// refused: refusing it could wedge a controller removing a finalizer, and the image was
// decided when it entered the object. The node gate still decides every container start.
func reviewImages(req *admissionv1.AdmissionRequest) (images []containerImage, spec *corev1.PodSpec, checked bool, err error) {
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		return nil, nil, false, nil
	}
	// Pods' ephemeral containers are added through their own subresource (kubectl debug);
	// other subresources (status, binding, scale, ...) change no image.
	if req.SubResource != "" && !(req.Kind.Kind == "Pod" && req.SubResource == "ephemeralcontainers") {
		return nil, nil, false, nil
	}
	gvk := req.Kind
	spec, path, ok, err := podSpecOf(gvk.Group, gvk.Version, gvk.Kind, rawOf(req.Object))
	if !ok {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, true, fmt.Errorf("cannot read the %s: %v", gvk.Kind, err)
	}
	images, err = imagesOf(spec, path)
	if err != nil || req.Operation != admissionv1.Update {
		return images, spec, true, err
	}
	oldSpec, oldPath, _, err := podSpecOf(gvk.Group, gvk.Version, gvk.Kind, rawOf(req.OldObject))
	if err != nil {
		return nil, nil, true, fmt.Errorf("cannot read the old %s: %v", gvk.Kind, err)
	}
	old, err := imagesOf(oldSpec, oldPath)
	if err != nil {
		return nil, nil, true, err
	}
	return newImages(images, old), spec, true, nil
}

// newImages returns the images that old does not name.
func newImages(images, old []containerImage) []containerImage {
	had := make(map[string]bool, len(old))
	for _, c := range old {
		had[c.Image] = true
	}
	kept := images[:0]
	for _, c := range images {
		if !had[c.Image] {
			kept = append(kept, c)
		}
	}
	return kept
}

func rawOf(e runtime.RawExtension) []byte { return e.Raw }
