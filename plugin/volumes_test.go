package plugin

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/policy"
)

const (
	volRoot = "/run/containerd/io.containerd.grpc.v1.cri/image-volumes"
	sandbox = "1edc1f1e32b3f036b2c88a086b8696c400d3620f8d5ffcd207ce444a3c6e16ea"
	hexTool = "aa02a162b06193b7ab088840ffc01139e11ff5a6fb8bedda1eda0dfe627ecb5f"
	hexData = "bb02a162b06193b7ab088840ffc01139e11ff5a6fb8bedda1eda0dfe627ecb5f"
)

// volMount is an image volume as containerd 2.4 shows it to NRI.
func volMount(dst, hex string) *api.Mount {
	return &api.Mount{Destination: dst, Type: "bind", Source: volRoot + "/" + sandbox + "/" + hex, Options: []string{"rbind", "rprivate", "ro"}}
}

func TestClassifyMount(t *testing.T) {
	bind := func(src string, opts ...string) *api.Mount {
		if opts == nil {
			opts = []string{"rbind", "rprivate", "ro"}
		}
		return &api.Mount{Destination: "/vol", Type: "bind", Source: src, Options: opts}
	}
	tests := []struct {
		name    string
		m       *api.Mount
		target  string // "" with no error: not an image volume
		wantErr string
	}{
		{"image volume", volMount("/vol", hexTool), "sha256:" + hexTool, ""},
		{"image volume, sub path", bind(volRoot + "/" + sandbox + "/" + hexTool + "/bin/tools"), "sha256:" + hexTool, ""},
		{"other state dir (e2e)", bind("/tmp/tg-1/state/io.containerd.grpc.v1.cri/image-volumes/x/" + hexTool), "sha256:" + hexTool, ""},
		{"type left empty", &api.Mount{Destination: "/v", Source: volRoot + "/s/" + hexTool, Options: []string{"ro"}}, "sha256:" + hexTool, ""},
		{"hostPath elsewhere", bind("/var/lib/data"), "", ""},
		{"pod's shm", bind("/run/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sandbox + "/shm"), "", ""},
		{"proc", &api.Mount{Destination: "/proc", Type: "proc", Source: "proc"}, "", ""},
		{"sibling directory", bind(volRoot + "-old/" + sandbox + "/" + hexTool), "", ""},
		{"sibling, then the directory", bind(volRoot + "-old" + volRoot + "/" + sandbox + "/" + hexTool), "sha256:" + hexTool, ""},
		{"prefixed name", bind("/x" + imageVolumeDir + "/" + sandbox + "/" + hexTool), "", ""},
		{"the whole directory", bind(volRoot), "", "exposes containerd's image-volume directory"},
		{"the whole directory, slash", bind(volRoot + "/"), "", "not a canonical path"},
		{"a pod's directory", bind(volRoot + "/" + sandbox), "", "exposes containerd's image-volume directory"},
		{"no digest", bind(volRoot + "/" + sandbox + "/tools"), "", "no image digest"},
		{"upper-case digest", bind(volRoot + "/" + sandbox + "/" + strings.ToUpper(hexTool)), "", "no image digest"},
		{"short digest", bind(volRoot + "/" + sandbox + "/" + hexTool[:63]), "", "no image digest"},
		{"dot-dot out of a volume", bind(volRoot + "/" + sandbox + "/" + hexTool + "/../../other"), "", "not a canonical path"},
		{"dot-dot escaping the directory", bind(volRoot + "/../../../etc"), "", "not a canonical path"},
		{"double slash", bind(volRoot + "//" + sandbox + "/" + hexTool), "", "not a canonical path"},
		{"relative", bind("io.containerd.grpc.v1.cri/image-volumes/" + sandbox + "/" + hexTool), "", "not a canonical path"},
		{"directory named twice", bind(volRoot + "/x" + "/io.containerd.grpc.v1.cri/image-volumes/" + sandbox + "/" + hexTool), "", "no image digest"},
		{"writable", bind(volRoot+"/"+sandbox+"/"+hexTool, "rbind", "rw"), "", "not read-only"},
		{"not a bind", &api.Mount{Destination: "/v", Type: "overlay", Source: volRoot + "/s/" + hexTool, Options: []string{"ro"}}, "", "not a bind mount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok, err := classifyMount(tt.m)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.m.Source) {
					t.Fatalf("got %+v, %v; want an error naming the source and %q", v, err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("unexpected error: %v", err)
			case ok != (tt.target != "") || v.Target != tt.target:
				t.Fatalf("got %+v (image volume: %v), want target %q", v, ok, tt.target)
			}
		})
	}
}

func TestImageVolumesBounded(t *testing.T) {
	var same []*api.Mount
	for i := range 1000 {
		same = append(same, volMount(fmt.Sprintf("/v%d", i), hexTool))
	}
	vols, _, err := imageVolumes(same)
	if err != nil || len(vols) != 1 || vols[0].Path != "/v0" {
		t.Fatalf("one image mounted 1000 times: got %+v, %v; want one volume at /v0", vols, err)
	}
	var many []*api.Mount
	for i := range maxImageVolumes + 1 {
		many = append(many, volMount(fmt.Sprintf("/v%d", i), fmt.Sprintf("%064x", i)))
	}
	if _, bad, err := imageVolumes(many[:maxImageVolumes]); err != nil {
		t.Fatalf("%d images: %v (%+v)", maxImageVolumes, err, bad)
	}
	_, bad, err := imageVolumes(many[:maxImageVolumes], many[maxImageVolumes:]) // the last added by a plugin
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d images", maxImageVolumes)) || bad.Path != fmt.Sprintf("/v%d", maxImageVolumes) {
		t.Fatalf("%d images: got %v (%+v), want the bound", maxImageVolumes+1, err, bad)
	}
}

// byImageDecider decides by image reference, fills the call as the gate does, and counts.
type byImageDecider struct {
	mu   sync.Mutex
	by   map[string]policy.Decision
	seen []string
}

func (f *byImageDecider) Decide(ctx context.Context, req policy.Request) policy.Decision {
	f.mu.Lock()
	f.seen = append(f.seen, req.Image.Ref)
	f.mu.Unlock()
	d, ok := f.by[req.Image.Ref]
	if !ok {
		d = policy.Decision{Outcome: policy.Denied, Mode: policy.Enforce, Message: "tollgate: denied " + req.Image.Name() + ": no in-toto evidence found"}
	}
	if c := audit.CallFrom(ctx); c != nil {
		c.Fill(audit.Entry{Path: "hook", Request: req, Decision: d})
	}
	return d
}

func TestCheckWithImageVolumes(t *testing.T) {
	app := policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api", ConfigDigest: "sha256:" + strings.Repeat("c", 64)}
	tools := policy.Image{Ref: "ghcr.io/acme/tools:1", Repository: "ghcr.io/acme/tools", ConfigDigest: "sha256:" + strings.Repeat("d", 64)}
	data := policy.Image{Ref: "ghcr.io/acme/data:1", Repository: "ghcr.io/acme/data", ConfigDigest: "sha256:" + strings.Repeat("e", 64)}
	resolver := fakeResolver{volumes: map[string]policy.Image{"sha256:" + hexTool: tools, "sha256:" + hexData: data}}
	auditFail := policy.Decision{Allowed: true, Outcome: policy.AuditFail, Mode: policy.Audit, Message: "tollgate: audit: allowed ghcr.io/acme/data:1: no in-toto evidence found"}
	tests := []struct {
		name        string
		mounts      []*api.Mount
		added       []*api.Mount // by a plugin before Tollgate
		verified    []string     // image refs the decider verifies; others are denied
		audited     []string     // image refs allowed in audit mode
		wantErr     []string     // substrings of the refusal; none: allowed
		wantDecided []string
		wantVolume  string // the record's volume; "" for the container's own record
	}{
		{name: "no volume", verified: []string{app.Ref}, wantDecided: []string{app.Ref}},
		{name: "verified volume", mounts: []*api.Mount{volMount("/vol", hexTool)}, verified: []string{app.Ref, tools.Ref},
			wantDecided: []string{app.Ref, tools.Ref}},
		{name: "unverified volume", mounts: []*api.Mount{volMount("/vol", hexTool)}, verified: []string{app.Ref},
			wantErr:     []string{`tollgate: denied container "api": its image volume at "/vol": denied ` + tools.Name(), "no in-toto evidence"},
			wantDecided: []string{app.Ref, tools.Ref}, wantVolume: "/vol"},
		{name: "second volume unverified", mounts: []*api.Mount{volMount("/a", hexTool), volMount("/b", hexData)}, verified: []string{app.Ref, tools.Ref},
			wantErr: []string{`"/b"`, data.Name()}, wantDecided: []string{app.Ref, tools.Ref, data.Ref}, wantVolume: "/b"},
		{name: "volume added by another plugin", added: []*api.Mount{volMount("/x", hexData)}, verified: []string{app.Ref},
			wantErr: []string{`"/x"`, data.Name()}, wantDecided: []string{app.Ref, data.Ref}, wantVolume: "/x"},
		{name: "container denied: volumes not asked", mounts: []*api.Mount{volMount("/vol", hexTool)}, verified: []string{tools.Ref},
			wantErr: []string{"denied ghcr.io/acme/api"}, wantDecided: []string{app.Ref}},
		{name: "audit-mode volume: allowed, its record kept", mounts: []*api.Mount{volMount("/vol", hexData)}, verified: []string{app.Ref},
			audited: []string{data.Ref}, wantDecided: []string{app.Ref, data.Ref}, wantVolume: "/vol"},
		{name: "volume containerd cannot tie to an image", mounts: []*api.Mount{volMount("/vol", strings.Repeat("f", 64))}, verified: []string{app.Ref},
			wantErr:     []string{"cannot establish the identity of its image volume at \"/vol\" (image sha256:ffff", "has target"},
			wantDecided: []string{app.Ref}, wantVolume: "/vol"},
		{name: "the image-volume directory itself", mounts: []*api.Mount{{Destination: "/all", Type: "bind", Source: volRoot, Options: []string{"ro"}}},
			verified: []string{app.Ref}, wantErr: []string{`its mount at "/all"`, "not one image volume"}, wantDecided: []string{app.Ref}, wantVolume: "/all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := &byImageDecider{by: map[string]policy.Decision{}}
			for _, r := range tt.verified {
				dec.by[r] = allow
			}
			for _, r := range tt.audited {
				dec.by[r] = auditFail
			}
			var rec recorder
			p, err := New(dec, resolver, WithAnswerFunc(rec.answer))
			if err != nil {
				t.Fatal(err)
			}
			ctr := &api.Container{Name: "api", Mounts: tt.mounts,
				Image: &api.Image{Name: app.Ref, ConfigDigest: app.ConfigDigest}}
			err = p.check(context.Background(), &api.PodSandbox{Name: "api-0", Namespace: "prod"}, ctr, tt.added)
			checkRefusal(t, err, tt.wantErr)
			if strings.Join(dec.seen, ",") != strings.Join(tt.wantDecided, ",") {
				t.Errorf("decided %v, want %v", dec.seen, tt.wantDecided)
			}
			recs := rec.all()
			if len(recs) != 1 {
				t.Fatalf("%d records, want exactly one", len(recs))
			}
			r := audit.NewRecord(recs[0])
			wantSubject := audit.SubjectImage
			if tt.wantVolume != "" {
				wantSubject = audit.SubjectVolume
			}
			if r.Subject != wantSubject || r.Volume != tt.wantVolume || r.Allowed != (len(tt.wantErr) == 0) {
				t.Errorf("record subject=%q volume=%q allowed=%v image=%q, want %q %q", r.Subject, r.Volume, r.Allowed, r.Image, wantSubject, tt.wantVolume)
			}
			if err != nil && r.Message != err.Error() {
				t.Errorf("record message %q, containerd was told %q", r.Message, err)
			}
		})
	}
}

func checkRefusal(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("allowed; want a refusal containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal %q does not contain %q", err, w)
		}
	}
}

func FuzzClassifyMount(f *testing.F) {
	f.Add("bind", volRoot+"/"+sandbox+"/"+hexTool, "ro")
	f.Add("bind", volRoot+"/"+sandbox+"/"+hexTool+"/sub/dir", "ro")
	f.Add("bind", volRoot, "ro")
	f.Add("bind", volRoot+"/../x", "rw")
	f.Add("tmpfs", "tmpfs", "")
	f.Add("", "/io.containerd.grpc.v1.cri/image-volumes/", "ro")
	f.Add("bind", volRoot+"-x"+volRoot+"/s/"+hexTool, "ro")
	f.Fuzz(func(t *testing.T, typ, src, opt string) {
		v, ok, err := classifyMount(&api.Mount{Destination: "/v", Type: typ, Source: src, Options: []string{opt}})
		if ok && (err != nil || !isHex64(strings.TrimPrefix(v.Target, "sha256:")) || !strings.HasPrefix(v.Target, "sha256:") ||
			!strings.Contains(src, "/"+imageVolumeDir+"/") || opt != "ro") {
			t.Fatalf("accepted %q (%q, %q) as %+v, %v", src, typ, opt, v, err)
		}
		if !ok && err == nil && strings.Contains(src, "/"+imageVolumeDir+"/") {
			t.Fatalf("source %q under the image-volume directory neither classified nor refused", src)
		}
	})
}

// The start-up audit of running containers reports an unverified image volume as the
// reason a running container would be denied now.
func TestAuditReportsImageVolumes(t *testing.T) {
	app := policy.Image{Ref: "ghcr.io/acme/api:1.0", ConfigDigest: "sha256:" + strings.Repeat("c", 64)}
	tools := policy.Image{Ref: "ghcr.io/acme/tools:1", Repository: "ghcr.io/acme/tools", ConfigDigest: "sha256:" + strings.Repeat("d", 64)}
	dec := &byImageDecider{by: map[string]policy.Decision{app.Ref: allow}}
	type audited struct {
		req policy.Request
		d   policy.Decision
	}
	var got []audited
	p, err := New(dec, fakeResolver{volumes: map[string]policy.Image{"sha256:" + hexTool: tools}},
		WithAuditFunc(func(req policy.Request, d policy.Decision, _ error) { got = append(got, audited{req, d}) }))
	if err != nil {
		t.Fatal(err)
	}
	pod := &api.PodSandbox{Id: "p1", Name: "api-0", Namespace: "prod"}
	img := &api.Image{Name: app.Ref, ConfigDigest: app.ConfigDigest}
	p.audit(context.Background(), map[string]*api.PodSandbox{"p1": pod}, []*api.Container{
		{Name: "plain", PodSandboxId: "p1", Image: img},
		{Name: "with-vol", PodSandboxId: "p1", Image: img, Mounts: []*api.Mount{volMount("/vol", hexTool)}},
	})
	if len(got) != 2 || !got[0].d.Allowed || got[1].d.Allowed || got[1].req.Image.Ref != tools.Ref ||
		!strings.Contains(got[1].d.Message, `its image volume at "/vol"`) {
		t.Fatalf("audit reported %+v; want the plain container allowed and the other denied for its volume", got)
	}
}

// BenchmarkImageVolumes is the hook's added work for a container's mounts as containerd
// 2.4 sends them (ten ordinary mounts), without and with one image volume.
func BenchmarkImageVolumes(b *testing.B) {
	base := []*api.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"}, {Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts"}, {Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue"},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs"}, {Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"},
		{Destination: "/etc/hostname", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sandbox + "/hostname"},
		{Destination: "/etc/hosts", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sandbox + "/hosts"},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sandbox + "/resolv.conf"},
		{Destination: "/dev/shm", Type: "bind", Source: "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/" + sandbox + "/shm"},
	}
	for _, bc := range []struct {
		name   string
		mounts []*api.Mount
	}{{"none", base}, {"one", append(base[:len(base):len(base)], volMount("/vol", hexTool))}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := imageVolumes(bc.mounts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
