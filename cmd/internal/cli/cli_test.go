package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPipelineVerifies(t *testing.T) {
	p := newPipeline(t)
	r := must(t, "verify", "--layout", "root.layout", "--layout-keys", "owner.pub", "--link-dir", "links")
	for _, want := range []string{"VERIFIED", "step build", "step test", "step package"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	r = must(t, "verify", "-l", "root.layout", "-k", "owner.pub", "-d", "links", "-o", "json")
	var rep struct {
		Verified bool
		Layout   struct{ Functionaries map[string][]string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json report: %v\n%s", err, r.stdout)
	}
	if !rep.Verified || len(rep.Layout.Functionaries) != 3 {
		t.Errorf("json report: %+v", rep)
	}
	show := must(t, "layout", "show", "root.layout")
	for _, want := range []string{"build", "ed25519", "ecdsa-sha2-nistp256", "rsassa-pss-sha256", "MATCH foo.tar.gz WITH PRODUCTS FROM build", "expires"} {
		if !strings.Contains(show.stdout, want) {
			t.Errorf("layout show lacks %q:\n%s", want, show.stdout)
		}
	}
	// The link records the command's byproducts, as in-toto-run -s does.
	data, err := os.ReadFile(p.linkFile(t, "build"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"return-value":0`) || !strings.Contains(string(data), `"_type":"link"`) {
		t.Errorf("build link: %s", data)
	}
}

func TestVerifyFailures(t *testing.T) {
	p := newPipeline(t)
	verify := []string{"verify", "--layout", "root.layout", "--layout-keys", "owner.pub", "--link-dir", "links"}
	cases := []struct {
		name   string
		setup  func(t *testing.T) []string // returns extra args; may change files
		code   int
		expect string
	}{
		{"tampered link", func(t *testing.T) []string {
			f := p.linkFile(t, "test")
			data, _ := os.ReadFile(f)
			write(t, f, strings.Replace(string(data), `"return-value":0`, `"return-value":1`, 1))
			return nil
		}, 1, "step \"test\""},
		{"wrong layout key", func(t *testing.T) []string {
			return []string{"verify", "--layout", "root.layout", "--layout-keys", "alice.pub", "--link-dir", "links"}
		}, 1, "root layout signature verification failed"},
		{"expired", func(t *testing.T) []string {
			return append(append([]string{}, verify...), "--at", time.Now().Add(2*8760*time.Hour).Format(time.RFC3339))
		}, 1, "expired"},
		{"missing link", func(t *testing.T) []string {
			os.Remove(p.linkFile(t, "package"))
			return nil
		}, 1, "package"},
		{"link by unauthorized key", func(t *testing.T) []string {
			must(t, "run", "-n", "build", "-k", "mallory", "-p", "foo.py", "-d", "links2", "--no-command")
			os.Remove(p.linkFile(t, "build"))
			m, _ := filepath.Glob("links2/*.link")
			data, _ := os.ReadFile(m[0])
			write(t, filepath.Join(p.links, filepath.Base(m[0])), string(data))
			return nil
		}, 1, "build"},
		{"tampered product", func(t *testing.T) []string {
			write(t, "foo.tar.gz", "evil")
			must(t, "run", "-n", "package", "-k", "bob", "-m", "foo.tar.gz", "-d", "links3", "--no-command")
			// A link for "package" signed by bob is not carol's: threshold fails.
			m, _ := filepath.Glob("links3/*.link")
			data, _ := os.ReadFile(m[0])
			os.Remove(p.linkFile(t, "package"))
			write(t, filepath.Join(p.links, filepath.Base(m[0])), string(data))
			return nil
		}, 1, "package"},
		{"no layout keys", func(t *testing.T) []string {
			return []string{"verify", "--layout", "root.layout", "--link-dir", "links"}
		}, 2, "--layout-keys"},
		{"layout file missing", func(t *testing.T) []string {
			return []string{"verify", "--layout", "nope.layout", "--layout-keys", "owner.pub"}
		}, 2, "nope.layout"},
		{"layout threshold above keys", func(t *testing.T) []string {
			return append(append([]string{}, verify...), "--layout-threshold", "2")
		}, 2, "--layout-threshold"},
		{"bad --at", func(t *testing.T) []string { return append(append([]string{}, verify...), "--at", "tomorrow") }, 2, "--at"},
		{"bad --param", func(t *testing.T) []string { return append(append([]string{}, verify...), "--param", "novalue") }, 2, "--param"},
		{"nothing to verify", func(t *testing.T) []string { return []string{"verify"} }, 2, "nothing to verify"},
		{"unknown flag", func(t *testing.T) []string { return []string{"verify", "--frobnicate"} }, 2, "unknown flag"},
		{"unknown command", func(t *testing.T) []string { return []string{"frobnicate"} }, 2, "unknown command"},
		{"bad output", func(t *testing.T) []string { return append(append([]string{}, verify...), "-o", "yaml") }, 2, "-o"},
		{"image inspection without digest", func(t *testing.T) []string {
			return append(append([]string{}, verify...), "--image-config-digest", "sha256:"+strings.Repeat("a", 64))
		}, 2, "--image-digest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case starts from a fresh copy of the links.
			restore := snapshot(t, p.links)
			defer restore()
			args := tc.setup(t)
			if args == nil {
				args = verify
			}
			r := tg(t, args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.code, r)
			}
			if !strings.Contains(r.stdout+r.stderr, tc.expect) {
				t.Errorf("output lacks %q:\n%s", tc.expect, r)
			}
			if strings.Contains(r.stderr, "internal error") {
				t.Errorf("panic: %s", r)
			}
		})
	}
}

// snapshot saves dir's files and returns a function restoring exactly them.
func snapshot(t *testing.T, dir string) func() {
	t.Helper()
	saved := map[string][]byte{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		saved[e.Name()] = data
	}
	return func() {
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o755)
		for n, d := range saved {
			os.WriteFile(filepath.Join(dir, n), d, 0o644)
		}
	}
}

func TestLayoutCreateErrors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	must(t, "keygen", "owner", "--type", "ed25519")
	must(t, "keygen", "alice", "--type", "ed25519")
	cases := []struct {
		name, yaml string
		extra      []string
		expect     string
	}{
		{"bad yaml", "steps: [\n", nil, "layout.yaml"},
		{"empty", "", nil, "empty"},
		{"unknown field", "expires: 1h\nstepz: []\n", nil, "stepz"},
		{"no steps", "expires: 1h\n", nil, "no steps"},
		{"no expiry", "steps: [{name: a, functionaries: [alice.pub]}]\n", nil, "expires"},
		{"bad expiry", "expires: soon\nsteps: [{name: a, functionaries: [alice.pub]}]\n", nil, "soon"},
		{"past expiry", "expires: -1h\nsteps: [{name: a, functionaries: [alice.pub]}]\n", nil, "not in the future"},
		{"missing key file", "expires: 1h\nsteps: [{name: a, functionaries: [nobody.pub]}]\n", nil, "nobody.pub"},
		{"private key as functionary", "expires: 1h\nsteps: [{name: a, functionaries: [alice]}]\n", nil, "alice"},
		{"no functionaries", "expires: 1h\nsteps: [{name: a}]\n", nil, "no functionaries"},
		{"threshold too high", "expires: 1h\nsteps: [{name: a, threshold: 2, functionaries: [alice.pub]}]\n", nil, "threshold 2"},
		{"bad rule", "expires: 1h\nsteps: [{name: a, functionaries: [alice.pub], products: [FROB x]}]\n", nil, "FROB"},
		{"duplicate steps", "expires: 1h\nsteps: [{name: a, functionaries: [alice.pub]}, {name: a, functionaries: [alice.pub]}]\n", nil, "two steps"},
		{"run inspection refused", "expires: 1h\nsteps: [{name: a, functionaries: [alice.pub]}]\ninspections: [{name: x, run: ls}]\n", nil, "--allow-inspections"},
		{"image from unknown step", "expires: 1h\nsteps: [{name: a, functionaries: [alice.pub]}]\ninspections: [{image: {from: b}}]\n", nil, "no such step"},
		{"undeclared parameter", "expires: 1h\nsteps: [{name: a, functionaries: [alice.pub], products: [\"CREATE {X}\"]}]\n", nil, "{X}"},
		{"no --key", "expires: 1h\nsteps: [{name: a, functionaries: [alice.pub]}]\n", []string{"--key", ""}, "--key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(t, "layout.yaml", tc.yaml)
			args := []string{"layout", "create", "--from", "layout.yaml", "--key", "owner", "--out", "x.layout"}
			if tc.extra != nil {
				args = []string{"layout", "create", "--from", "layout.yaml", "--out", "x.layout"}
			}
			r := tg(t, args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\n%s", r.code, r)
			}
			if !strings.Contains(r.stderr, tc.expect) {
				t.Errorf("stderr lacks %q:\n%s", tc.expect, r.stderr)
			}
		})
	}
}

func TestLayoutImageInspectionAndMultiOwner(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, k := range []string{"owner", "owner2", "alice"} {
		must(t, "keygen", k)
	}
	write(t, "layout.yaml", `expires: "2099-01-01T00:00:00Z"
steps:
  - name: package
    functionaries: [alice.pub]
    products: [CREATE image, DISALLOW *]
inspections:
  - image: {from: package}
`)
	must(t, "layout", "create", "-f", "layout.yaml", "-k", "owner", "-o", "root.layout", "--dsse")
	must(t, "layout", "sign", "--key", "owner2", "root.layout")
	digest := "sha256:" + strings.Repeat("ab", 32)
	must(t, "run", "-n", "package", "-k", "alice", "--image-product-digest", "image="+digest, "--no-command", "-d", "links", "--dsse")
	base := []string{"verify", "-l", "root.layout", "-k", "owner.pub", "owner2.pub", "-d", "links", "--image-config-digest", "sha256:" + strings.Repeat("cd", 32)}
	if r := tg(t, append(base, "--image-digest", digest)...); r.code != 0 {
		t.Fatalf("verify with the recorded image: %s", r)
	}
	r := tg(t, append(base, "--image-digest", "sha256:"+strings.Repeat("ef", 32))...)
	if r.code != 1 || !strings.Contains(r.stdout, "image") {
		t.Fatalf("verify with another image: %s", r)
	}
	// One owner's signature is not enough when both keys are required...
	write(t, "layout.yaml", strings.Replace(readString(t, "layout.yaml"), "2099", "2098", 1))
	must(t, "layout", "create", "-f", "layout.yaml", "-k", "owner", "-o", "one.layout")
	r = tg(t, "verify", "-l", "one.layout", "-k", "owner.pub", "owner2.pub", "-d", "links", "--image-digest", digest, "--image-config-digest", digest)
	if r.code != 1 {
		t.Fatalf("one of two owners: %s", r)
	}
	// ...but is with --layout-threshold 1.
	must(t, "verify", "-l", "one.layout", "-k", "owner.pub", "owner2.pub", "--layout-threshold", "1", "-d", "links", "--image-digest", digest, "--image-config-digest", digest)
	show := must(t, "layout", "show", "root.layout")
	if !strings.Contains(show.stdout, "image: synthesized") {
		t.Errorf("show: %s", show.stdout)
	}
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunFailingCommandStillWritesLink(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "alice")
	r := tg(t, "run", "-n", "build", "-k", "alice", "-d", "out", "--", "sh", "-c", "echo oops >&2; exit 3")
	if r.code != 3 {
		t.Fatalf("exit %d, want the command's 3: %s", r.code, r)
	}
	m, _ := filepath.Glob("out/build.*.link")
	if len(m) != 1 {
		t.Fatalf("link not written: %v", m)
	}
	data := readString(t, m[0])
	if !strings.Contains(data, `"return-value":3`) || !strings.Contains(data, `"stderr":"oops\n"`) {
		t.Errorf("byproducts: %s", data)
	}
}

func TestRunUsageErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "alice")
	if tgEnv(t, []string{"P=x"}, "keygen", "enc", "--passphrase-env", "P").code != 0 {
		t.Fatal("keygen enc")
	}
	cases := []struct {
		name   string
		args   []string
		expect string
	}{
		{"no step", []string{"run", "-k", "alice", "--", "true"}, "--step-name"},
		{"no key", []string{"run", "-n", "a", "--", "true"}, "--key"},
		{"no command", []string{"run", "-n", "a", "-k", "alice"}, "no command"},
		{"command and --no-command", []string{"run", "-n", "a", "-k", "alice", "-x", "--", "true"}, "exclude"},
		{"missing key file", []string{"run", "-n", "a", "-k", "nokey", "--", "true"}, "nokey"},
		{"public key as key", []string{"run", "-n", "a", "-k", "alice.pub", "--", "true"}, "alice.pub"},
		{"encrypted key without passphrase", []string{"run", "-n", "a", "-k", "enc", "--", "true"}, "encrypted"},
		{"key type mismatch", []string{"run", "-n", "a", "-k", "alice", "-t", "rsa", "--", "true"}, "--key-type"},
		{"bad image digest", []string{"run", "-n", "a", "-k", "alice", "-x", "--image-product-digest", "image=sha256:xyz"}, "--image-product-digest"},
		{"slash in step", []string{"run", "-n", "a/b", "-k", "alice", "-x"}, "path separator"},
		{"overlapping lstrip", []string{"run", "-n", "a", "-k", "alice", "-x", "-m", ".", "--lstrip-paths", "a", "ab"}, "overlap"},
		{"passphrase env unset", []string{"run", "-n", "a", "-k", "enc", "--passphrase-env", "NOPE", "-x"}, "NOPE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tg(t, tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2: %s", r.code, r)
			}
			if !strings.Contains(r.stderr, tc.expect) {
				t.Errorf("stderr lacks %q: %s", tc.expect, r.stderr)
			}
		})
	}
	// The wrong passphrase is named as such.
	r := tgEnv(t, []string{"P=wrong"}, "run", "-n", "a", "-k", "enc", "--passphrase-env", "P", "-x")
	if r.code != 2 || !strings.Contains(r.stderr, "wrong passphrase") {
		t.Errorf("wrong passphrase: %s", r)
	}
}

func TestRunRecordsLikePython(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "alice")
	write(t, "src/a.txt", "a")
	write(t, "src/b.pyc", "compiled")
	write(t, "src/sub/c.txt", "c")
	write(t, "src/old.link", "{}")
	must(t, "run", "-n", "s", "-k", "alice", "-m", "src", "missing-is-skipped", "--lstrip-paths", "src/", "-x")
	l := readLink(t, "s")
	mats := l["materials"].(map[string]any)
	for _, want := range []string{"a.txt", "sub/c.txt"} {
		if _, ok := mats[want]; !ok {
			t.Errorf("material %q missing: %v", want, mats)
		}
	}
	for _, not := range []string{"b.pyc", "old.link", "src/a.txt"} {
		if _, ok := mats[not]; ok {
			t.Errorf("material %q recorded: %v", not, mats)
		}
	}
	// --exclude replaces the defaults; --base-path records relative to another directory.
	must(t, "run", "-n", "s", "-k", "alice", "-m", ".", "--base-path", "src", "--exclude", "sub", "-x")
	mats = readLink(t, "s")["materials"].(map[string]any)
	if _, ok := mats["b.pyc"]; !ok || len(mats) != 3 {
		t.Errorf("base path + exclude: %v", mats)
	}
}

func readLink(t *testing.T, step string) map[string]any {
	t.Helper()
	m, _ := filepath.Glob(step + ".*.link")
	if len(m) != 1 {
		t.Fatalf("links: %v", m)
	}
	var doc struct {
		Signed map[string]any `json:"signed"`
	}
	if err := json.Unmarshal([]byte(readString(t, m[0])), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Signed
}

func TestRecordStartStop(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "alice")
	must(t, "keygen", "owner")
	write(t, "in.txt", "in")
	must(t, "record", "start", "-n", "edit", "-k", "alice", "-m", "in.txt")
	if m, _ := filepath.Glob(".edit.*.link-unfinished"); len(m) != 1 {
		t.Fatalf("unfinished link: %v", m)
	}
	write(t, "out.txt", "out")
	must(t, "record", "stop", "-n", "edit", "-k", "alice", "-p", "out.txt")
	l := readLink(t, "edit")
	if _, ok := l["materials"].(map[string]any)["in.txt"]; !ok {
		t.Errorf("materials: %v", l)
	}
	if _, ok := l["products"].(map[string]any)["out.txt"]; !ok {
		t.Errorf("products: %v", l)
	}
	if m, _ := filepath.Glob(".edit.*.link-unfinished"); len(m) != 0 {
		t.Errorf("unfinished link left: %v", m)
	}
	if r := tg(t, "record", "stop", "-n", "edit", "-k", "owner"); r.code != 2 || !strings.Contains(r.stderr, "record start") {
		t.Errorf("stop without start: %s", r)
	}
}

func TestKeygen(t *testing.T) {
	t.Chdir(t.TempDir())
	r := must(t, "keygen", "k", "--type", "ecdsa")
	id := strings.TrimSpace(r.stdout)
	if len(id) != 64 {
		t.Errorf("keyid %q", id)
	}
	st, err := os.Stat("k")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode: %v %v", st.Mode(), err)
	}
	cases := []struct {
		args   []string
		expect string
	}{
		{[]string{"keygen", "k"}, "--force"},
		{[]string{"keygen", "x", "--type", "dsa"}, "dsa"},
		{[]string{"keygen", "x", "--type", "rsa", "--bits", "1024"}, "1024"},
		{[]string{"keygen", "x", "--bits", "4096"}, "rsa keys only"},
		{[]string{"keygen"}, "NAME"},
		{[]string{"keygen", "x", "--prompt", "--passphrase-env", "P"}, "none of the others"},
	}
	for _, tc := range cases {
		r := tg(t, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.expect) {
			t.Errorf("%v: %s (want exit 2 and %q)", tc.args, r, tc.expect)
		}
	}
	must(t, "keygen", "k", "--force", "--type", "rsa", "--bits", "2048")
	if r := must(t, "version"); !strings.HasPrefix(r.stdout, "tollgate ") {
		t.Errorf("version: %s", r.stdout)
	}
}
