package layoutspec

import (
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func pubKey(t testing.TB) ([]byte, *keys.Key) {
	t.Helper()
	s, err := keys.Generate(keys.TypeED25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	return pub, s.Key
}

func TestBuild(t *testing.T) {
	alicePEM, alice := pubKey(t)
	bobPEM, bob := pubKey(t)
	spec, err := Parse([]byte(`expires: 48h
readme: hello
steps:
  - name: build
    functionaries: [alice.pub, bob.pub]
    threshold: 2
    expected_command: sh -c 'make "all targets"'
    materials: ["ALLOW src/*", "DISALLOW *"]
    products: ["CREATE app", "CREATE image"]
inspections:
  - image: {from: build, config: true}
parameters: [V]
`))
	if err != nil {
		t.Fatal(err)
	}
	env, err := Build(spec, map[string][]byte{"alice.pub": alicePEM, "bob.pub": bobPEM}, testNow, false)
	if err != nil {
		t.Fatal(err)
	}
	l, err := intoto.ParseLayout(env)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Expires.Equal(testNow.Add(48*time.Hour)) || l.Readme != "hello" {
		t.Errorf("expires %v readme %q", l.Expires, l.Readme)
	}
	st := l.Steps[0]
	if st.Threshold != 2 || len(st.PubKeys) != 2 || l.Keys[alice.ID] == nil || l.Keys[bob.ID] == nil {
		t.Errorf("step keys: %+v", st)
	}
	if got := strings.Join(st.ExpectedCommand, "|"); got != `sh|-c|make "all targets"` {
		t.Errorf("command split: %q", got)
	}
	in := l.Inspections[0]
	if in.Name != "image" || len(in.Run) != 0 || strings.Join(in.ExpectedMaterials[0], " ") != "MATCH image WITH PRODUCTS FROM build" ||
		strings.Join(in.ExpectedMaterials[1], " ") != "MATCH image-config WITH PRODUCTS FROM build" {
		t.Errorf("image inspection: %+v", in)
	}
	// DSSE is the same layout in another envelope.
	d, err := Build(spec, map[string][]byte{"alice.pub": alicePEM, "bob.pub": bobPEM}, testNow, true)
	if err != nil || d.Format != envelope.DSSE {
		t.Fatalf("dsse: %v %v", err, d)
	}
}

func TestBuildErrors(t *testing.T) {
	pem, _ := pubKey(t)
	priv, _ := keys.Generate(keys.TypeED25519, 0)
	privPEM, _ := priv.MarshalPrivate(nil)
	files := map[string][]byte{"a.pub": pem, "priv": privPEM, "junk": []byte("junk")}
	cases := []struct{ name, yaml, want string }{
		{"no steps", "expires: 1h", "no steps"},
		{"unnamed step", "expires: 1h\nsteps: [{functionaries: [a.pub]}]", "no name"},
		{"unread key", "expires: 1h\nsteps: [{name: s, functionaries: [b.pub]}]", "not read"},
		{"private key", "expires: 1h\nsteps: [{name: s, functionaries: [priv]}]", "private key"},
		{"junk key", "expires: 1h\nsteps: [{name: s, functionaries: [junk]}]", "not a public key"},
		{"same key twice", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub, a.pub]}]", "twice"},
		{"negative threshold", "expires: 1h\nsteps: [{name: s, threshold: -1, functionaries: [a.pub]}]", "threshold"},
		{"bad rule", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub], materials: [MATCH]}]", "MATCH"},
		{"empty rule", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub], materials: [' ']}]", "empty"},
		{"image with run", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub]}]\ninspections: [{image: {from: s}, run: ls}]", "stands alone"},
		{"image without from", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub]}]\ninspections: [{image: {}}]", "from"},
		{"reserved name", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub]}]\ninspections: [{name: image, run: ls}]", "reserved"},
		{"inspection without name", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub]}]\ninspections: [{run: ls}]", "no name"},
		{"unclosed quote", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub], expected_command: \"sh 'x\"}]", "unclosed"},
		{"bad command type", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub], expected_command: {a: b}}]", "command"},
		{"days overflow", "expires: 99999999999d\nsteps: [{name: s, functionaries: [a.pub]}]", "expires"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := Parse([]byte(tc.yaml))
			if err == nil {
				_, err = Build(spec, files, testNow, false)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAllowInspections(t *testing.T) {
	pem, _ := pubKey(t)
	spec, err := Parse([]byte("expires: 1h\nsteps: [{name: s, functionaries: [a.pub]}]\ninspections: [{name: untar, run: tar xf x.tar, materials: [MATCH * WITH PRODUCTS FROM s]}]"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(spec, map[string][]byte{"a.pub": pem}, testNow, false); err == nil {
		t.Fatal("inspection accepted without AllowInspections")
	}
	env, err := Build(spec, map[string][]byte{"a.pub": pem}, testNow, false, AllowInspections())
	if err != nil {
		t.Fatal(err)
	}
	l, _ := intoto.ParseLayout(env)
	if l.Inspections[0].Name != "untar" || len(l.Inspections[0].Run) != 3 {
		t.Errorf("%+v", l.Inspections)
	}
}

func TestParseExpiry(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2030-01-02T03:04:05Z":      time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		"2030-01-02T05:04:05+02:00": time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		"1h":                        testNow.Add(time.Hour),
		"30d":                       testNow.Add(30 * 24 * time.Hour),
	} {
		got, err := ParseExpiry(in, testNow)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0h", "-5m", "soon", "1y", "xd"} {
		if _, err := ParseExpiry(bad, testNow); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string]string{
		`a b  c`:            "a|b|c",
		`sh -c 'x "y" z'`:   `sh|-c|x "y" z`,
		`echo "a\"b" \$x`:   `echo|a"b|$x`,
		`a ''`:              "a|",
		`"a b"c`:            "a bc",
		`echo "back\slash"`: `echo|back\slash`,
	} {
		got, err := splitCommand(in)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
}

// FuzzLayoutSpec: no description, however malformed, panics Parse or Build, and whatever
// Build accepts is a layout the verifier's parser accepts.
func FuzzLayoutSpec(f *testing.F) {
	pem, _ := pubKey(f)
	for _, seed := range []string{
		"expires: 1h\nsteps: [{name: s, functionaries: [a.pub]}]",
		"expires: 2030-01-01T00:00:00Z\nreadme: x\nsteps:\n - name: b\n   functionaries: [a.pub]\n   expected_command: make 'a b'\n   materials: [ALLOW *]\n   products: [CREATE x, MATCH y WITH PRODUCTS FROM b]\ninspections:\n - image: {from: b}\nparameters: [V]",
		"steps: [{name: '{V}', functionaries: [a.pub], products: ['CREATE {V}']}]\nexpires: 5d\nparameters: [V]",
		"inspections: [{name: i, run: [ls], materials: [DISALLOW *]}]",
		"expires: [1]", "steps: 3", "", "\x00", "expires: 1h\nsteps: [{name: s, functionaries: [a.pub], threshold: 99999999999999}]",
	} {
		f.Add([]byte(seed))
	}
	files := map[string][]byte{"a.pub": pem}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(data)
		if err != nil {
			return
		}
		for _, opts := range [][]Option{nil, {AllowInspections()}} {
			env, err := Build(spec, files, testNow, false, opts...)
			if err != nil {
				continue
			}
			if _, err := intoto.ParseLayout(env); err != nil {
				t.Fatalf("Build accepted a layout ParseLayout rejects: %v", err)
			}
		}
	})
}
