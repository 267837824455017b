package linkrec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
)

func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(m map[string]intoto.HashObj) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestRecord(t *testing.T) {
	dir := tree(t, map[string]string{"a.txt": "a", "x.pyc": "p", "b.link": "l", "sub/c.txt": "c", "sub/deep/d.txt": "d",
		".git/config": "g", "keep/e~": "e", "other/f.txt": "f"})
	if err := os.Symlink("sub", filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "broken")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "alias.txt")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		paths []string
		o     Options
		want  string
	}{
		{"defaults", []string{"."}, Options{BasePath: dir}, "a.txt,alias.txt,other/f.txt,sub/c.txt,sub/deep/d.txt"},
		{"exclude prunes directories", []string{"."}, Options{BasePath: dir, Exclude: []string{"sub", "other"}}, ".git/config,a.txt,alias.txt,b.link,keep/e~,x.pyc"},
		{"follow symlink dirs", []string{"."}, Options{BasePath: dir, Exclude: []string{".git", "other", "*.pyc", "*.link", "*~"}, FollowSymlinkDirs: true},
			"a.txt,alias.txt,linkdir/c.txt,linkdir/deep/d.txt,sub/c.txt,sub/deep/d.txt"},
		{"lstrip", []string{"sub", "./a.txt", "missing"}, Options{BasePath: dir, LStrip: []string{"sub/"}}, "a.txt,c.txt,deep/d.txt"},
		{"file excluded at top", []string{"x.pyc"}, Options{BasePath: dir}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Record(tc.paths, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tc.want {
				t.Errorf("recorded %s, want %s", names(got), tc.want)
			}
		})
	}
	sum := sha256.Sum256([]byte("a"))
	got, _ := Record([]string{"a.txt"}, Options{BasePath: dir})
	if got["a.txt"]["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("hash %v", got)
	}
}

func TestRecordErrors(t *testing.T) {
	dir := tree(t, map[string]string{"a/x": "1", "b/x": "2"})
	if _, err := Record([]string{"a", "b"}, Options{BasePath: dir, LStrip: []string{"a/", "b/"}}); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("duplicate after lstrip: %v", err)
	}
	if _, err := Record([]string{"."}, Options{LStrip: []string{"a", "ab"}}); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("overlapping prefixes: %v", err)
	}
	if _, err := Record([]string{"."}, Options{BasePath: filepath.Join(dir, "nope")}); err == nil || !strings.Contains(err.Error(), "base path") {
		t.Errorf("bad base path: %v", err)
	}
	if err := os.Symlink(".", filepath.Join(dir, "a", "loop")); err != nil {
		t.Fatal(err)
	}
	if _, err := Record([]string{"."}, Options{BasePath: dir, FollowSymlinkDirs: true}); err != nil {
		t.Errorf("a symlink loop is visited once: %v", err)
	}
}

func TestLineNormalization(t *testing.T) {
	dir := tree(t, map[string]string{"crlf": "a\r\nb\r\n", "lf": "a\nb\n"})
	got, err := Record([]string{"crlf", "lf"}, Options{BasePath: dir, NormalizeLineEndings: true})
	if err != nil || got["crlf"]["sha256"] != got["lf"]["sha256"] {
		t.Errorf("%v %v", got, err)
	}
}

func TestRun(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), []string{"sh", "-c", "echo hi; echo err >&2; exit 4"}, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 4 || string(res.Stdout) != "hi\n" || string(res.Stderr) != "err\n" || out.String() != "hi\n" {
		t.Errorf("%+v %q", res, out.String())
	}
	if _, err := Run(context.Background(), []string{"/nonexistent/tool"}, nil, nil); err == nil {
		t.Error("a command that cannot start is an error")
	}
	if _, err := Run(context.Background(), nil, nil, nil); err == nil {
		t.Error("empty command accepted")
	}
	res, _ = Run(context.Background(), []string{"sh", "-c", "head -c 2000000 /dev/zero"}, nil, nil)
	if len(res.Stdout) != MaxStreamBytes {
		t.Errorf("stdout not capped: %d", len(res.Stdout))
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	s, _ := keys.Generate(keys.TypeED25519, 0)
	for _, dsse := range []bool{false, true} {
		l := NewLink("build")
		l.Command = []string{"make"}
		l.Byproducts = (&Result{ExitCode: 1}).Byproducts()
		l.Products["app"] = intoto.HashObj{"sha256": strings.Repeat("a", 64)}
		env, err := l.Envelope(dsse)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Sign(s); err != nil {
			t.Fatal(err)
		}
		raw, _ := env.Marshal()
		parsed, err := envelope.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		il, err := intoto.ParseLink(parsed)
		if err != nil || il.Name != "build" || il.Products()["app"]["sha256"] == "" {
			t.Fatalf("ParseLink: %+v %v", il, err)
		}
		back, err := FromEnvelope(parsed)
		if err != nil || back.Name != "build" || len(back.Products) != 1 {
			t.Fatalf("FromEnvelope: %+v %v", back, err)
		}
		if _, err := back.Envelope(dsse); err != nil {
			t.Fatalf("re-envelope after JSON round trip: %v", err)
		}
	}
	if FileName("build", strings.Repeat("ab", 32)) != "build.abababab.link" || UnfinishedName("s", "0123456789") != ".s.01234567.link-unfinished" {
		t.Error("file names")
	}
}
