package sigstore

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	"tollgate.dev/tollgate/policy/reason"
)

const (
	wfSAN = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	gha   = "https://token.actions.githubusercontent.com"
)

func actionsSigner() *Verified {
	return &Verified{Instance: "public-good", Signer: Signer{Subject: wfSAN, Issuer: gha, Extensions: certificate.Extensions{
		Issuer:                              gha,
		SourceRepositoryURI:                 "https://github.com/acme/app",
		SourceRepositoryOwnerURI:            "https://github.com/acme",
		SourceRepositoryRef:                 "refs/heads/main",
		SourceRepositoryDigest:              "0123abcd",
		BuildSignerURI:                      wfSAN,
		RunnerEnvironment:                   "github-hosted",
		BuildTrigger:                        "push",
		SourceRepositoryVisibilityAtSigning: "private",
	}}}
}

func TestMatch(t *testing.T) {
	re := func(s string) Value { return Value{Regexp: s} }
	for _, tc := range []struct {
		name string
		id   Identity
		kind reason.Kind // "" = matches
		msg  string
	}{
		{"exact", Identity{Subject: Exact(wfSAN), Issuer: Exact(gha)}, "", ""},
		{"regexp", Identity{Subject: re(`https://github\.com/acme/.*`), Issuer: Exact(gha)}, "", ""},
		{"subject alone", Identity{Subject: Exact(wfSAN)}, "", ""},
		{"wrong SAN", Identity{Subject: Exact("https://github.com/acme/other/.github/workflows/x.yml@refs/heads/main"), Issuer: Exact(gha)},
			reason.BadSignature, `signed by subject "` + wfSAN + `" from issuer "` + gha + `", not subject "https://github.com/acme/other`},
		{"wrong issuer", Identity{Subject: Exact(wfSAN), Issuer: Exact("https://accounts.google.com")}, reason.BadSignature, `from issuer "https://accounts.google.com"`},
		// Unanchored, this would match: the SAN contains it.
		{"regexp anchored at the end", Identity{Subject: re(`https://github\.com/acme/app`), Issuer: Exact(gha)}, reason.BadSignature, "matching /"},
		{"regexp anchored at the start", Identity{Subject: re(`acme/app/.*`), Issuer: Exact(gha)}, reason.BadSignature, ""},
		{"issuer regexp anchored", Identity{Subject: Exact(wfSAN), Issuer: re(`token\.actions`)}, reason.BadSignature, ""},
		{"claim holds", Identity{Subject: Exact(wfSAN), Issuer: Exact(gha), Conditions: map[Claim]Value{
			SourceRepositoryRef: Exact("refs/heads/main"), RunnerEnvironment: Exact("github-hosted"),
			SourceRepositoryVisibility: Exact("private"), BuildTrigger: re("push|release")}}, "", ""},
		{"wrong claim", Identity{Subject: Exact(wfSAN), Issuer: Exact(gha), Conditions: map[Claim]Value{SourceRepositoryRef: Exact("refs/tags/v1")}},
			reason.ConditionFailed, `sourceRepositoryRef "refs/heads/main", not "refs/tags/v1"`},
		{"claim regexp anchored", Identity{Subject: Exact(wfSAN), Issuer: Exact(gha), Conditions: map[Claim]Value{SourceRepositoryURI: re("https://github.com/acme/ap")}},
			reason.ConditionFailed, "sourceRepositoryURI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := NewIdentity(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			got, err := actionsSigner().Match(id)
			if tc.kind == "" {
				if err != nil || got != id {
					t.Fatalf("no match: %v", err)
				}
				return
			}
			if k := reason.KindOf(err); k != tc.kind || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %s: %v; want %s containing %q", k, err, tc.kind, tc.msg)
			}
		})
	}
}

func TestMatchNamesEveryIdentity(t *testing.T) {
	a, _ := NewIdentity(Identity{Subject: Exact("a@example.com"), Issuer: Exact(gha)})
	b, _ := NewIdentity(Identity{Subject: Exact("b@example.com"), Issuer: Exact(gha)})
	_, err := actionsSigner().Match(a, b)
	if err == nil || !strings.Contains(err.Error(), `"a@example.com"`) || !strings.Contains(err.Error(), `"b@example.com"`) || !strings.Contains(err.Error(), wfSAN) {
		t.Fatalf("got %v", err)
	}
	if _, err := actionsSigner().Match(); reason.KindOf(err) != reason.BadSignature {
		t.Fatalf("no identities: %v", err)
	}
	key := &Verified{Signer: Signer{KeyHint: "abc"}}
	if _, err := key.Match(a); err == nil || !strings.Contains(err.Error(), "with a key") {
		t.Fatalf("key-signed: %v", err)
	}
}

func TestNewIdentityRefuses(t *testing.T) {
	for name, id := range map[string]Identity{
		"no subject":        {Issuer: Exact(gha)},
		"both forms":        {Subject: Value{Exact: "a", Regexp: "a"}},
		"bad regexp":        {Subject: Value{Regexp: "("}},
		"unknown claim":     {Subject: Exact("a"), Conditions: map[Claim]Value{"color": Exact("red")}},
		"empty claim":       {Subject: Exact("a"), Conditions: map[Claim]Value{BuildTrigger: {}}},
		"oversized pattern": {Subject: Value{Regexp: strings.Repeat("a", maxPatternBytes+1)}},
	} {
		if _, err := NewIdentity(id); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGitHubShorthand(t *testing.T) {
	for _, tc := range []struct {
		name  string
		gh    GitHub
		match bool
	}{
		{"owner", GitHub{Owner: "acme"}, true},
		{"owner in other case", GitHub{Owner: "ACME"}, true},
		{"repo", GitHub{Repo: "acme/app"}, true},
		{"signer workflow", GitHub{Repo: "acme/app", SignerWorkflow: "acme/app/.github/workflows/release.yml"}, true},
		{"deny self-hosted runners", GitHub{Owner: "acme", DenySelfHostedRunners: true}, true},
		{"other owner", GitHub{Owner: "acm"}, false},
		{"other repo", GitHub{Repo: "acme/ap"}, false},
		{"other workflow", GitHub{Repo: "acme/app", SignerWorkflow: "acme/app/.github/workflows/ci.yml"}, false},
		{"signer repo elsewhere", GitHub{Owner: "acme", SignerRepo: "acme/shared-workflows"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.gh.Identity()
			if err != nil {
				t.Fatal(err)
			}
			_, err = actionsSigner().Match(id)
			if (err == nil) != tc.match {
				t.Fatalf("match = %v (%v), want %v", err == nil, err, tc.match)
			}
		})
	}
	selfHosted := actionsSigner()
	selfHosted.Signer.Extensions.RunnerEnvironment = "self-hosted"
	id, _ := GitHub{Owner: "acme", DenySelfHostedRunners: true}.Identity()
	if _, err := selfHosted.Match(id); reason.KindOf(err) != reason.ConditionFailed {
		t.Fatalf("self-hosted runner: %v", err)
	}
	for _, bad := range []GitHub{{}, {Repo: "acme"}, {Owner: "x", Repo: "acme/app"}} {
		if _, err := bad.Identity(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestExpiries(t *testing.T) {
	vs := virtual(t)
	roots := instanceOf(vs, "virtual", privateReq)
	now := time.Now()
	got := Expiries(roots, now)
	if len(got) != 2 {
		t.Fatalf("got %+v, want a CA and a TSA entry", got)
	}
	for _, e := range got {
		// The virtual CA and TSA are valid for one more hour.
		if e.Instance != "virtual" || e.Seconds <= 0 || e.Seconds > 3600 || math.IsInf(e.Seconds, 0) {
			t.Errorf("%+v", e)
		}
	}
	if later := Expiries(roots, now.Add(2*time.Hour)); later[0].Seconds >= 0 {
		t.Errorf("two hours later: %+v, want negative", later)
	}
}
