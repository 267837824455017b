package gate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/reason"
)

func kindsOf(rs []*reason.Error) []string {
	var ks []string
	for _, r := range rs {
		ks = append(ks, string(r.Kind))
	}
	return ks
}

// The pending answer says evidence is missing exactly once: the policy's own
// missing_evidence reason is kept, and one is added only when the policy gave none.
func TestPendingDecisionReasonsNotDuplicated(t *testing.T) {
	img := testImage("app")
	missing := reason.New(reason.MissingEvidence, `attestation "provenance": no statement found for the image`)
	cond := reason.New(reason.ConditionFailed, "builder is not trusted")
	for _, tc := range []struct {
		name      string
		reasons   []*reason.Error
		wantKinds string
		wantFirst string
	}{
		{"policy says missing", []*reason.Error{missing}, "missing_evidence", missing.Msg},
		{"policy says missing twice (two attestations)", []*reason.Error{missing, missing}, "missing_evidence,missing_evidence", missing.Msg},
		{"policy gives another reason", []*reason.Error{cond}, "missing_evidence,condition_failed", "not on the node yet"},
		{"policy gives none", nil, "missing_evidence", "not on the node yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := pendingDecision(&img, policy.Decision{Outcome: policy.Denied, Mode: policy.Enforce, Policy: "p", Reasons: tc.reasons, Cacheable: true}, nil, 0)
			if got := strings.Join(kindsOf(d.Reasons), ","); got != tc.wantKinds {
				t.Errorf("reasons %s, want %s", got, tc.wantKinds)
			}
			if !strings.Contains(d.Reasons[0].Error(), tc.wantFirst) {
				t.Errorf("first reason %q, want it to contain %q", d.Reasons[0], tc.wantFirst)
			}
			if d.Allowed || d.Cacheable || !strings.Contains(d.Message, "retry shortly") {
				t.Errorf("allowed=%v cacheable=%v %q", d.Allowed, d.Cacheable, d.Message)
			}
		})
	}
}

// Through the hook: a pre-verification that cannot finish within the hook deadline is
// answered "pending", with one missing_evidence reason and the time it has run.
func TestHookPendingDenialHasOneMissingReason(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	e.hook = 200 * time.Millisecond
	img := testImage("pending")
	e.fetcher.set(img.Digests[0], nil, nil)
	e.fetcher.mu.Lock()
	e.fetcher.delay = time.Second // the fetch outlasts the hook deadline
	e.fetcher.mu.Unlock()
	d := e.decide(img)
	if d.Allowed || !strings.Contains(d.Message, "not on the node yet") ||
		!strings.Contains(d.Message, "has been fetching it from the registry for") ||
		!strings.Contains(d.Message, "did not finish within the hook deadline") {
		t.Fatalf("first create: allowed=%v %q", d.Allowed, d.Message)
	}
	if got := strings.Join(kindsOf(d.Reasons), ","); got != "missing_evidence" {
		t.Errorf("reasons %s, want one missing_evidence", got)
	}
	if n := metricValue(t, e.metrics, `tollgate_decisions_total{mode="enforce",reason="evidence_pending",result="denied"}`); n != 1 {
		t.Errorf("pending denials counted %v, want 1", n)
	}
	waitFor(t, e.gate.idle)
}

// On an air-gapped node (registry unreachable) the pending denial says why the evidence
// is not coming instead of promising it, stays a deny in enforce mode and is never
// cached; the mark is bounded in time and cleared by a successful fetch.
func TestPendingDenialNamesRegistryFailure(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("airgapped")
	e.fetcher.set(img.Digests[0], nil, errRegistryDown)
	if _, err := e.gate.Preverify(context.Background(), img); err == nil {
		t.Fatal("Preverify with the registry down succeeded")
	}
	for range 3 { // every retry says the same, and none is served from a cache
		d := e.decide(img)
		if d.Allowed || d.Outcome != policy.Denied || d.Cacheable {
			t.Fatalf("allowed=%v outcome=%s cacheable=%v", d.Allowed, d.Outcome, d.Cacheable)
		}
		for _, want := range []string{"not on the node", "registry could not be reached", "connection refused", "node evidence directory", `(policy "p")`} {
			if !strings.Contains(d.Message, want) {
				t.Errorf("message %q lacks %q", d.Message, want)
			}
		}
		if strings.Contains(d.Message, "is fetching it") {
			t.Errorf("message still promises a fetch: %q", d.Message)
		}
		if got := strings.Join(kindsOf(d.Reasons), ","); got != "missing_evidence" {
			t.Errorf("reasons %s, want one missing_evidence", got)
		}
		waitFor(t, func() bool { return e.gate.idle() })
	}
	if n := e.gate.CacheLen(); n != 0 {
		t.Fatalf("%d decisions cached, want 0", n)
	}

	// Audit mode allows, and says the same.
	audit := newGateEnv(t, &fakeEval{mode: policy.Audit})
	audit.fetcher.set(img.Digests[0], nil, errRegistryDown)
	audit.gate.Preverify(context.Background(), img)
	if d := audit.decide(img); !d.Allowed || d.Outcome != policy.AuditFail || !strings.Contains(d.Message, "registry could not be reached") {
		t.Errorf("audit mode: allowed=%v outcome=%s %q", d.Allowed, d.Outcome, d.Message)
	}
	waitFor(t, func() bool { return audit.gate.idle() })

	// Short-lived: an old failure no longer explains anything.
	if e.gate.lastFetchFailure(&img) == nil {
		t.Fatal("no failure recorded")
	}
	e.clock.Advance(fetchFailureTTL)
	if f := e.gate.lastFetchFailure(&img); f != nil {
		t.Errorf("a failure %s old still reported: %+v", fetchFailureTTL, f)
	}
	e.clock.Advance(-fetchFailureTTL)

	// The registry comes back: the mark is cleared, and the evidence verifies.
	e.fetcher.set(img.Digests[0], map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
	if d, err := e.gate.Preverify(context.Background(), img); err != nil || !d.Allowed {
		t.Fatalf("Preverify after recovery: %v %q", err, d.Message)
	}
	if f := e.gate.lastFetchFailure(&img); f != nil {
		t.Errorf("failure still reported after a successful fetch: %+v", f)
	}
	if d := e.decide(img); !d.Allowed {
		t.Fatalf("hook after recovery: %q", d.Message)
	}
}

func TestBoundCause(t *testing.T) {
	long := strings.Repeat("é", maxCauseBytes) // 2 bytes each
	got := boundCause(errString("dial tcp:\n  " + long))
	if len(got) > maxCauseBytes+len("…") || strings.Contains(got, "\n") || !strings.HasSuffix(got, "…") {
		t.Errorf("boundCause = %q (%d bytes)", got, len(got))
	}
	if !strings.HasPrefix(got, "dial tcp: é") {
		t.Errorf("boundCause = %q", got[:20])
	}
	if got := boundCause(errString("short")); got != "short" {
		t.Errorf("boundCause(short) = %q", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// Issue 12, item 6: an image the registry has already answered for (no evidence) is
// missing, not pending, after the deny cache expires: the hook says the evidence is not
// there and counts missing_evidence, while a refetch still looks for evidence attached since.
func TestKnownMissingIsNotPendingAfterDenyTTL(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("unsigned")
	e.fetcher.set(img.Digests[0], nil, nil) // the registry holds nothing for it
	if _, err := e.gate.Preverify(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		e.clock.Advance(31 * time.Second) // past the deny TTL
		d := e.decide(img)
		if d.Allowed || d.Outcome != policy.Denied {
			t.Fatalf("round %d: allowed=%v outcome=%s", round, d.Allowed, d.Outcome)
		}
		if strings.Contains(d.Message, "not on the node yet") || strings.Contains(d.Message, "is fetching it") {
			t.Errorf("round %d: known-missing evidence answered as pending: %q", round, d.Message)
		}
		e.settle()
	}
	if n := metricValue(t, e.metrics, `tollgate_decisions_total{mode="enforce",reason="evidence_pending",result="denied"}`); n != 0 {
		t.Errorf("evidence_pending counted %v times, want 0", n)
	}
	if n := metricValue(t, e.metrics, `tollgate_decisions_total{mode="enforce",reason="missing_evidence",result="denied"}`); n != 3 {
		t.Errorf("missing_evidence counted %v times, want 3", n)
	}
	if n := e.fetcher.count(); n < 2 {
		t.Errorf("%d registry fetches, want a refetch after the deny TTL", n)
	}
}

// Issue 12, item 6: a damaged disk cache entry is never a verdict. With the registry down,
// the hook denies with the fault (not cached) and the entry is moved aside; once the
// registry is back, the next create is decided on what it holds, not on a cached denial.
func TestDamagedCacheEntryIsFetchedAgain(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("damaged")
	good := map[string][]byte{"a.link": []byte("good")}
	e.fetcher.set(img.Digests[0], good, nil)
	if d, err := e.gate.Preverify(context.Background(), img); err != nil || !d.Allowed {
		t.Fatalf("preverify: allowed=%v err=%v", d.Allowed, err)
	}
	files, _ := filepath.Glob(filepath.Join(e.cacheDir, "*", "sha256", "*", "a.link"))
	if len(files) != 1 {
		t.Fatalf("cached files %v", files)
	}
	must(t, os.WriteFile(files[0], []byte("bad"), 0o600)) // damaged on disk
	e.fetcher.set(img.Digests[0], nil, errRegistryDown)
	e.clock.Advance(11 * time.Minute) // past the allow TTL: the hook reads the disk again
	d := e.decide(img)
	if d.Allowed || d.Cacheable || !strings.Contains(d.Message, "damaged") {
		t.Fatalf("damaged entry, registry down: allowed=%v cacheable=%v %q", d.Allowed, d.Cacheable, d.Message)
	}
	e.settle()
	e.fetcher.set(img.Digests[0], good, nil) // the registry is back
	if d := e.decide(img); !d.Allowed || d.Outcome != policy.Verified {
		t.Errorf("registry back: allowed=%v outcome=%s %q", d.Allowed, d.Outcome, d.Message)
	}
	if q, _ := filepath.Glob(filepath.Join(e.cacheDir, ".quarantine-*")); len(q) != 1 {
		t.Errorf("quarantined entries %v, want 1", q)
	}
}
