package policy

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

const buildType = "https://tollgate.dev/build/v1"

// imageInspection binds the layout to the node's image: the synthesized "image" material
// must be the manifest the build step produced.
func imageInspectionSpec() []map[string]any {
	return []map[string]any{{
		"_type": "inspection", "name": "image", "run": []string{},
		"expected_materials": [][]string{{"MATCH", "image", "WITH", "PRODUCTS", "FROM", "build"}, {"ALLOW", "image-config"}, {"DISALLOW", "*"}},
		"expected_products":  [][]string{{"ALLOW", "*"}},
	}}
}

func threeSteps(t testing.TB) []step {
	return []step{
		{name: "build", signers: signers(signer(t, "build")), products: [][]string{{"CREATE", "image"}, {"DISALLOW", "*"}}},
		{name: "test", signers: signers(signer(t, "test")), materials: [][]string{{"MATCH", "image", "WITH", "PRODUCTS", "FROM", "build"}, {"DISALLOW", "*"}}},
		{name: "push", signers: signers(signer(t, "push")), materials: [][]string{{"MATCH", "image", "WITH", "PRODUCTS", "FROM", "build"}, {"DISALLOW", "*"}}},
	}
}

// scenario is a policy directory with a 3-step layout and a SLSA requirement, plus the
// evidence that satisfies it.
func scenario(t testing.TB, expires time.Time) (dir, map[string][]byte) {
	d := dir{}
	owner := d.key(t, "owner")
	d.key(t, "ci")
	d.key(t, "ci2")
	d["layouts/api.layout"] = layout(t, expires, threeSteps(t), imageInspectionSpec(), owner)
	d["api.yaml"] = []byte(apiPolicy)
	return d, goodEvidence(t)
}

func goodEvidence(t testing.TB) map[string][]byte {
	img := map[string]string{"image": manifestDigest}
	build, test, push := signer(t, "build"), signer(t, "test"), signer(t, "push")
	return map[string][]byte{
		linkName("build", build): link(t, "build", nil, img, build),
		linkName("test", test):   link(t, "test", img, nil, test),
		linkName("push", push):   link(t, "push", img, nil, push),
		"provenance.intoto.json": statement(t, attest.PredicateSLSAProvenanceV1, []string{manifestDigest}, slsaV1(buildType, "https://ci.acme.dev"), signer(t, "ci")),
	}
}

func evaluate(t testing.TB, d dir, files map[string][]byte) Decision {
	t.Helper()
	return mustLoad(t, d).Evaluate(testRequest(), Evidence{Files: files}, testNow)
}

func wantDecision(t *testing.T, d Decision, allowed bool, outcome Outcome, kind reason.Kind, msgParts ...string) {
	t.Helper()
	if d.Allowed != allowed || d.Outcome != outcome {
		t.Fatalf("decision allowed=%v outcome=%s, want %v %s\nmessage: %s", d.Allowed, d.Outcome, allowed, outcome, d.Message)
	}
	if kind == "*" {
		kind = ""
		if len(d.Reasons) == 0 {
			t.Fatal("no reasons")
		}
	} else if kind == "" && len(d.Reasons) > 0 {
		t.Fatalf("unexpected reasons %v", d.Reasons)
	}
	if kind != "" && (len(d.Reasons) == 0 || d.Reasons[0].Kind != kind) {
		t.Fatalf("reasons %v, want first of kind %s\nmessage: %s", d.Reasons, kind, d.Message)
	}
	for _, p := range msgParts {
		if !strings.Contains(d.Message, p) {
			t.Errorf("message %q does not contain %q", d.Message, p)
		}
	}
}

func TestEvaluateVerified(t *testing.T) {
	expires := testNow.Add(48 * time.Hour)
	d, ev := scenario(t, expires)
	dec := evaluate(t, d, ev)
	wantDecision(t, dec, true, Verified, "", "tollgate: verified ghcr.io/acme/api@"+manifestDigest, `"api"`)
	if !dec.Cacheable || !dec.ValidUntil.Equal(expires) || dec.Mode != Enforce || dec.Policy != "api" {
		t.Fatalf("decision %+v", dec)
	}
}

func TestEvaluateFailures(t *testing.T) {
	owner, build, ci, ci2, test := signer(t, "owner"), signer(t, "build"), signer(t, "ci"), signer(t, "ci2"), signer(t, "test")
	img := map[string]string{"image": manifestDigest}
	prov := func(sub string, pred any, s ...*keys.Signer) []byte {
		return statement(t, attest.PredicateSLSAProvenanceV1, []string{sub}, pred, s...)
	}
	goodPred := slsaV1(buildType, "https://ci.acme.dev")
	tests := []struct {
		name    string
		policy  func(d dir)
		ev      func(ev map[string][]byte)
		kind    reason.Kind
		message []string
	}{
		{"no evidence", nil, func(ev map[string][]byte) { clear(ev) }, reason.MissingEvidence,
			[]string{"tollgate: denied ghcr.io/acme/api@" + manifestDigest + `: policy "api": no in-toto evidence found for the image`}},
		{"only garbage evidence", nil, func(ev map[string][]byte) { clear(ev); ev["junk"] = []byte("junk") }, reason.Malformed,
			[]string{`evidence "junk"`}},
		{"missing link", nil, func(ev map[string][]byte) { delete(ev, linkName("test", test)) }, "*",
			[]string{`policy "api": step "test"`}},
		{"link signed by the wrong key", nil, func(ev map[string][]byte) {
			delete(ev, linkName("test", test))
			ev["test.x.link"] = link(t, "test", img, nil, build)
		}, "*", []string{`step "test"`}},
		{"tampered link", nil, func(ev map[string][]byte) {
			n := linkName("test", test)
			ev[n] = []byte(strings.Replace(string(ev[n]), manifestDigest[7:15], "00000000", 1))
		}, "*", []string{`step "test"`, "set aside", "did not verify"}},
		{"image is not the one built", nil, func(ev map[string][]byte) {
			other := map[string]string{"image": otherDigest}
			ev[linkName("build", build)] = link(t, "build", nil, other, build)
			ev[linkName("test", test)] = link(t, "test", other, nil, test)
			ev[linkName("push", signer(t, "push"))] = link(t, "push", other, nil, signer(t, "push"))
		}, reason.BindingMismatch, []string{`"image"`}},
		{"expired layout", func(d dir) {
			d["layouts/api.layout"] = layout(t, testNow.Add(-time.Minute), threeSteps(t), imageInspectionSpec(), owner)
		}, nil, reason.Expired, []string{"expired"}},
		{"statement for another image", nil, func(ev map[string][]byte) {
			ev["provenance.intoto.json"] = prov(otherDigest, goodPred, ci)
		}, reason.BindingMismatch, []string{`attestation "provenance"`, otherDigest, "not the image"}},
		{"statement missing", nil, func(ev map[string][]byte) { delete(ev, "provenance.intoto.json") }, reason.MissingEvidence,
			[]string{`attestation "provenance": no statement of type https://slsa.dev/provenance/v1`}},
		{"statement signed by an untrusted key", nil, func(ev map[string][]byte) {
			ev["provenance.intoto.json"] = prov(manifestDigest, goodPred, build)
		}, reason.BadSignature, []string{`attestation "provenance"`}},
		{"statement tampered", nil, func(ev map[string][]byte) {
			var e map[string]any
			_ = json.Unmarshal(ev["provenance.intoto.json"], &e)
			other := prov(manifestDigest, slsaV1("https://evil", "x"), ci)
			var o map[string]any
			_ = json.Unmarshal(other, &o)
			e["payload"] = o["payload"]
			ev["provenance.intoto.json"], _ = json.Marshal(e)
		}, reason.BadSignature, nil},
		{"statement below threshold", func(d dir) {
			d["api.yaml"] = []byte(strings.Replace(apiPolicy, "keys: [keys/ci.pub]", "keys: [keys/ci.pub, keys/ci2.pub]\n      threshold: 2", 1))
		}, nil, reason.Threshold, []string{`attestation "provenance"`}},
		{"condition false", nil, func(ev map[string][]byte) {
			ev["provenance.intoto.json"] = prov(manifestDigest, slsaV1("https://other/build", "x"), ci)
		}, reason.ConditionFailed, []string{`condition "predicate.buildDefinition.buildType == \"https://tollgate.dev/build/v1\"" is false`}},
		{"condition on a missing field", func(d dir) {
			d["api.yaml"] = []byte(strings.Replace(apiPolicy, "predicate.buildDefinition.buildType ==", "predicate.nothing.buildType ==", 1))
		}, nil, reason.ConditionFailed, []string{"could not be evaluated", "nothing"}},
		{"wrong predicate type only", nil, func(ev map[string][]byte) {
			ev["provenance.intoto.json"] = statement(t, attest.PredicateSLSAProvenanceV02, []string{manifestDigest}, map[string]any{"builder": map[string]any{"id": "x"}}, ci)
		}, reason.MissingEvidence, nil},
		{"statement in a Metablock", nil, func(ev map[string][]byte) {
			var st map[string]any
			_ = json.Unmarshal([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"`+manifestDigest[7:]+`"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`), &st)
			env, _ := envelope.NewMetablock(st)
			_ = env.Sign(ci)
			ev["provenance.intoto.json"], _ = env.Marshal()
		}, reason.MissingEvidence, nil},
		{"second statement signer does not help other payload", func(d dir) {
			d["api.yaml"] = []byte(strings.Replace(apiPolicy, "keys: [keys/ci.pub]", "keys: [keys/ci.pub, keys/ci2.pub]\n      threshold: 2", 1))
		}, func(ev map[string][]byte) {
			ev["other.json"] = prov(manifestDigest, slsaV1(buildType, "https://other"), ci2)
		}, reason.Threshold, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ev := scenario(t, testNow.Add(time.Hour))
			if tt.policy != nil {
				tt.policy(d)
			}
			if tt.ev != nil {
				tt.ev(ev)
			}
			dec := evaluate(t, d, ev)
			wantDecision(t, dec, false, Denied, tt.kind, tt.message...)
			if !strings.HasPrefix(dec.Message, "tollgate: denied ghcr.io/acme/api@"+manifestDigest+`: policy "api": `) {
				t.Errorf("message %q", dec.Message)
			}
			if !dec.Cacheable || dec.Mode != Enforce || dec.Policy != "api" {
				t.Errorf("decision %+v", dec)
			}
			if !dec.ValidUntil.IsZero() && !dec.ValidUntil.After(testNow) {
				t.Errorf("ValidUntil %v is not in the future", dec.ValidUntil)
			}
			t.Log(dec.Message)
		})
	}
}

// Every way evidence travels: cosign's JSON lines (with one envelope per signer, counted
// together toward the threshold), a Sigstore bundle, DSSE-wrapped links, link predicates.
func TestEvaluateEvidenceFormats(t *testing.T) {
	ci, ci2 := signer(t, "ci"), signer(t, "ci2")
	pred := slsaV1(buildType, "https://ci.acme.dev")
	threshold2 := func(d dir) {
		d["api.yaml"] = []byte(strings.Replace(apiPolicy, "keys: [keys/ci.pub]", "keys: [keys/ci.pub, keys/ci2.pub]\n      threshold: 2", 1))
	}
	tests := []struct {
		name   string
		policy func(d dir)
		ev     func(t *testing.T, ev map[string][]byte)
	}{
		{"cosign json lines, one envelope per signer", threshold2, func(t *testing.T, ev map[string][]byte) {
			delete(ev, "provenance.intoto.json")
			ev["sha256-abc.att"] = []byte(string(statement(t, attest.PredicateSLSAProvenanceV1, []string{manifestDigest}, pred, ci)) + "\n" +
				string(statement(t, attest.PredicateSLSAProvenanceV1, []string{manifestDigest}, pred, ci2)) + "\n")
		}},
		{"one envelope with two signatures", threshold2, func(t *testing.T, ev map[string][]byte) {
			ev["provenance.intoto.json"] = statement(t, attest.PredicateSLSAProvenanceV1, []string{manifestDigest}, pred, ci, ci2)
		}},
		{"sigstore bundle", nil, func(t *testing.T, ev map[string][]byte) {
			env := ev["provenance.intoto.json"]
			delete(ev, "provenance.intoto.json")
			ev["provenance.sigstore.json"] = []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":` + string(env) + `}`)
		}},
		{"junk beside good evidence", nil, func(t *testing.T, ev map[string][]byte) {
			ev["zz.json"] = []byte("{not json")
			ev["sig.json"] = []byte(`{"payloadType":"application/vnd.dev.cosign.simplesigning.v1+json","payload":"e30=","signatures":[]}`)
		}},
		{"DSSE links", nil, func(t *testing.T, ev map[string][]byte) {
			for _, name := range []string{"build", "test", "push"} {
				s := signer(t, name)
				var mb struct {
					Signed json.RawMessage `json:"signed"`
				}
				_ = json.Unmarshal(ev[linkName(name, s)], &mb)
				env := envelope.NewDSSE(envelope.PayloadTypeInToto, mb.Signed)
				if err := env.Sign(s); err != nil {
					t.Fatal(err)
				}
				ev[linkName(name, s)], _ = env.Marshal()
			}
		}},
		{"link predicate statements", nil, func(t *testing.T, ev map[string][]byte) {
			for _, name := range []string{"build", "test", "push"} {
				s := signer(t, name)
				delete(ev, linkName(name, s))
				var mats []any
				subjects := []string{digestOf("unrelated")}
				if name == "build" {
					subjects = []string{manifestDigest}
				} else {
					mats = []any{map[string]any{"name": "image", "digest": map[string]string{"sha256": manifestDigest[7:]}}}
				}
				st := statementNamed(t, attest.PredicateLinkV03, "image", subjects, map[string]any{"name": name, "command": []string{}, "materials": mats}, s)
				ev[name+".intoto.jsonl"] = st
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ev := scenario(t, testNow.Add(time.Hour))
			if tt.policy != nil {
				tt.policy(d)
			}
			tt.ev(t, ev)
			dec := evaluate(t, d, ev)
			wantDecision(t, dec, true, Verified, "")
		})
	}
}

// statementNamed is statement with a chosen subject name (link predicates name artifacts).
func statementNamed(t testing.TB, predicateType, name string, subjects []string, predicate any, signers ...*keys.Signer) []byte {
	var subs []map[string]any
	for _, dg := range subjects {
		alg, hx, _ := cut(dg)
		subs = append(subs, map[string]any{"name": name, "digest": map[string]string{alg: hx}})
	}
	payload, _ := json.Marshal(map[string]any{"_type": attest.StatementV1, "subject": subs, "predicateType": predicateType, "predicate": predicate})
	env := envelope.NewDSSE(envelope.PayloadTypeInToto, payload)
	if err := env.Sign(signers...); err != nil {
		t.Fatal(err)
	}
	b, _ := env.Marshal()
	return b
}

func TestEvaluateMatchingAndDefaults(t *testing.T) {
	d, ev := scenario(t, testNow.Add(time.Hour))
	auditOther := strings.NewReplacer("name: api", "name: strict", "mode: enforce", "", `images: ["ghcr.io/acme/*"]`, `images: ["ghcr.io/acme/api"]`+"\n  mode: audit",
		"keys: [keys/ci.pub]", "keys: [keys/ci2.pub]").Replace(apiPolicy)
	enforceOther := strings.NewReplacer("name: api", "name: strict", `images: ["ghcr.io/acme/*"]`, `images: ["ghcr.io/acme/api"]`,
		"keys: [keys/ci.pub]", "keys: [keys/ci2.pub]").Replace(apiPolicy)
	auditAPI := strings.Replace(apiPolicy, `images: ["ghcr.io/acme/*"]`, `images: ["ghcr.io/acme/*"]`+"\n  mode: audit", 1)
	nd := func(spec string) []byte {
		return []byte("apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nmetadata: {name: node}\nspec:\n" + spec)
	}
	otherRepo := testRequest()
	otherRepo.Image.Repository = "quay.io/x/y"
	otherRepo.Image.Ref = "quay.io/x/y:1"
	noEvidence := map[string][]byte{}
	tests := []struct {
		name    string
		files   map[string][]byte
		req     Request
		ev      map[string][]byte
		now     time.Time
		allowed bool
		outcome Outcome
		kind    reason.Kind
		msg     string
	}{
		{"unmatched denies by default", nil, otherRepo, ev, testNow, false, Unmatched, reason.NoPolicy, `no policy matches repository "quay.io/x/y"`},
		{"unmatched allowed by NodeDefaults", map[string][]byte{"nd.yaml": nd("  unmatched: allow\n")}, otherRepo, ev, testNow, true, Unmatched, "", "node default allows"},
		{"exempt by manifest digest", map[string][]byte{"nd.yaml": nd("  exemptions: {digests: [" + manifestDigest + "]}\n")}, testRequest(), noEvidence, testNow, true, Exempt, "", "exempt"},
		{"exempt by config digest", map[string][]byte{"nd.yaml": nd("  exemptions: {digests: [\"" + strings.ToUpper(configDigest) + "\"]}\n")}, testRequest(), noEvidence, testNow, true, Exempt, "", "config digest"},
		{"exempt by repository", map[string][]byte{"nd.yaml": nd("  exemptions: {repositories: [\"ghcr.io/acme/a*\"]}\n")}, testRequest(), noEvidence, testNow, true, Exempt, "", "repository ghcr.io/acme/api is exempted"},
		{"exemption does not leak", map[string][]byte{"nd.yaml": nd("  exemptions: {repositories: [\"ghcr.io/acme/b*\"], digests: [" + otherDigest + "]}\n")}, testRequest(), noEvidence, testNow, false, Denied, reason.MissingEvidence, ""},
		{"audit mode allows a failure", map[string][]byte{"api.yaml": []byte(auditAPI)}, testRequest(), noEvidence, testNow, true, AuditFail, reason.MissingEvidence, "audit mode"},
		{"all matching policies apply: audit failure", map[string][]byte{"strict.yaml": []byte(auditOther)}, testRequest(), ev, testNow, true, AuditFail, reason.BadSignature, `policy "strict"`},
		{"all matching policies apply: enforce failure", map[string][]byte{"strict.yaml": []byte(enforceOther)}, testRequest(), ev, testNow, false, Denied, reason.BadSignature, `policy "strict"`},
		{"break-glass allows a denial", map[string][]byte{"nd.yaml": nd("  breakGlass: {enabled: true, until: \"2026-06-01T13:00:00Z\", reason: INC-7}\n")}, testRequest(), noEvidence, testNow, true, BreakGlass, reason.MissingEvidence, "break-glass allowed"},
		{"break-glass allows unmatched", map[string][]byte{"nd.yaml": nd("  breakGlass: {enabled: true, until: \"2026-06-01T13:00:00Z\"}\n")}, otherRepo, noEvidence, testNow, true, BreakGlass, reason.NoPolicy, "break-glass"},
		{"break-glass over", map[string][]byte{"nd.yaml": nd("  breakGlass: {enabled: true, until: \"2026-06-01T11:00:00Z\", reason: INC-7}\n")}, testRequest(), noEvidence, testNow, false, Denied, reason.MissingEvidence, ""},
		{"break-glass disabled", map[string][]byte{"nd.yaml": nd("  breakGlass: {enabled: false, until: \"2026-06-01T13:00:00Z\"}\n")}, testRequest(), noEvidence, testNow, false, Denied, reason.MissingEvidence, ""},
		{"break-glass leaves verified alone", map[string][]byte{"nd.yaml": nd("  breakGlass: {enabled: true, until: \"2026-06-01T13:00:00Z\"}\n")}, testRequest(), ev, testNow, true, Verified, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := d.clone()
			for k, v := range tt.files {
				files[k] = v
			}
			s := mustLoad(t, files)
			dec := s.Evaluate(tt.req, Evidence{Files: tt.ev}, tt.now)
			wantDecision(t, dec, tt.allowed, tt.outcome, tt.kind, tt.msg)
			if dec.Outcome == BreakGlass && (dec.Cacheable || dec.ValidUntil.After(time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC))) {
				t.Errorf("break-glass decision must not be cached past until: %+v", dec)
			}
			if dec.Outcome == AuditFail && len(dec.Reasons) == 0 {
				t.Error("audit decision lost its reasons")
			}
			t.Log(dec.Message)
		})
	}
}

func TestEvaluateConcurrent(t *testing.T) {
	d, ev := scenario(t, testNow.Add(time.Hour))
	s := mustLoad(t, d)
	bad := map[string][]byte{}
	for k, v := range ev {
		bad[k] = v
	}
	delete(bad, "provenance.intoto.json")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				files, want := ev, true
				if i%2 == 1 {
					files, want = bad, false
				}
				if dec := s.Evaluate(testRequest(), Evidence{Files: files}, testNow); dec.Allowed != want {
					t.Errorf("concurrent decision %v, want %v: %s", dec.Allowed, want, dec.Message)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestEvaluateNilAndOddInput(t *testing.T) {
	var s *Set
	if d := s.Evaluate(testRequest(), Evidence{}, testNow); d.Allowed {
		t.Fatal("nil set allowed")
	}
	d, ev := scenario(t, testNow.Add(time.Hour))
	set := mustLoad(t, d)
	for _, img := range []Image{{}, {Repository: testRepo}, {Repository: testRepo, ConfigDigest: "garbage", Digests: []string{"x", ""}}} {
		dec := set.Evaluate(Request{Image: img}, Evidence{Files: ev}, testNow)
		if dec.Allowed {
			t.Errorf("image %+v allowed: %s", img, dec.Message)
		}
	}
}

// A step delegated to a sublayout: the sublayout is evidence (signed by the step's
// functionary, named "<step>.<keyid8>.link") and its links live under "<step>.<keyid8>/".
// Classification must keep those paths.
func TestEvaluateSublayout(t *testing.T) {
	d, ev := scenario(t, testNow.Add(time.Hour))
	build, compiler := signer(t, "build"), signer(t, "compiler")
	img := map[string]string{"image": manifestDigest}
	sub := layout(t, testNow.Add(time.Hour), []step{{name: "compile", signers: signers(compiler), products: [][]string{{"CREATE", "image"}, {"DISALLOW", "*"}}}}, nil, build)
	prefix := "build." + build.ID[:8]
	delete(ev, linkName("build", build))
	ev[prefix+".link"] = sub
	ev[prefix+"/"+linkName("compile", compiler)] = link(t, "compile", nil, img, compiler)
	wantDecision(t, evaluate(t, d, ev), true, Verified, "")

	// The same link outside the sublayout's directory does not count.
	delete(ev, prefix+"/"+linkName("compile", compiler))
	ev[linkName("compile", compiler)] = link(t, "compile", nil, img, compiler)
	dec := evaluate(t, d, ev)
	wantDecision(t, dec, false, Denied, "*", `step "build/compile"`)
}
