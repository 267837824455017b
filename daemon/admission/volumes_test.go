package admission

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// A denied image volume's cause names the volume, not a container.
func TestImageVolumeCause(t *testing.T) {
	wh := startWebhook(t, nil)
	w := wh.w
	r := wh.send(t, fixture(t, "pod-imagevolume.json",
		map[string]string{"IMAGE": w.ref("acme/good"), "VOLUME": w.ref("acme/none"), "VOLUME2": unmatched}))
	res := r.review.Response.Result
	if r.review.Response.Allowed || res == nil || res.Details == nil || len(res.Details.Causes) != 1 {
		t.Fatalf("want one denial cause: %s", r.raw)
	}
	c := res.Details.Causes[0]
	if !strings.HasPrefix(c.Message, `image volume "tools": tollgate: denied `+w.pinned("acme/none")) {
		t.Errorf("cause %q, want it to name the image volume and its image", c.Message)
	}
}

func TestImagesOfVolumes(t *testing.T) {
	img := func(ref string) corev1.Volume {
		return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: ref, PullPolicy: corev1.PullNever}}}
	}
	spec := &corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: "ghcr.io/acme/api:1"}},
		Volumes: []corev1.Volume{{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			img("ghcr.io/acme/tools:1"), img("")},
	}
	got, err := imagesOf(spec, "spec")
	if err != nil || len(got) != 2 || got[1].Field != "spec.volumes[1].image.reference" || got[1].Volume != "v" ||
		got[1].Image != "ghcr.io/acme/tools:1" || got[1].what() != `image volume "v"` {
		t.Fatalf("got %+v, %v", got, err)
	}
	for range maxVolumes {
		spec.Volumes = append(spec.Volumes, img("ghcr.io/acme/tools:1"))
	}
	if _, err := imagesOf(spec, "spec"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("over the limit of %d", maxVolumes)) {
		t.Fatalf("%d volumes: %v, want the bound", len(spec.Volumes), err)
	}
}
