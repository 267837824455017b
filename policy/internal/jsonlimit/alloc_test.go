package jsonlimit

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
)

// Issue 12, item 1: decoding an untrusted document of megabytes into a struct costs about
// one copy of what it keeps (a raw predicate), not several: Unmarshal decodes in place,
// where a json.Decoder buffers the whole document again in doubling steps. Measured in
// bytes allocated (runtime/metrics), not time.
func TestUnmarshalAllocatesAboutOneCopy(t *testing.T) {
	data := []byte(fmt.Sprintf(`{"_type":"t","predicate":{"x":%q}}`, strings.Repeat("A", 3<<20)))
	var v struct {
		Type      string          `json:"_type"`
		Predicate json.RawMessage `json:"predicate"`
	}
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	runtime.GC()
	metrics.Read(s)
	before := s[0].Value.Uint64()
	err := Unmarshal(data, MaxBytes, &v)
	metrics.Read(s)
	allocated := s[0].Value.Uint64() - before
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(v)
	if limit := uint64(len(data)) * 3 / 2; allocated > limit {
		t.Errorf("Unmarshal of %d bytes allocated %d (%.1fx), want at most 1.5x", len(data), allocated, float64(allocated)/float64(len(data)))
	}
}

func TestUnmarshalRefusesTrailingData(t *testing.T) {
	var v struct{}
	if err := Unmarshal([]byte(`{} {}`), MaxBytes, &v); err == nil || !strings.Contains(err.Error(), "trailing data") {
		t.Errorf("trailing data: %v", err)
	}
}

// The duplicated-member check scans the document in place: a json.Decoder over it
// buffered the whole document again (about 2x its size).
func TestUniqueDoesNotCopy(t *testing.T) {
	data := []byte(fmt.Sprintf(`{"_type":"t","predicate":{"x":%q,"y":[{"a":1},{"a":2}]}}`, strings.Repeat("A", 3<<20)))
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	runtime.GC()
	metrics.Read(s)
	before := s[0].Value.Uint64()
	err := Unique(data)
	metrics.Read(s)
	allocated := s[0].Value.Uint64() - before
	if err != nil {
		t.Fatal(err)
	}
	if limit := uint64(len(data)) / 8; allocated > limit {
		t.Errorf("Unique of %d bytes allocated %d (%.2fx), want at most 1/8 of it", len(data), allocated, float64(allocated)/float64(len(data)))
	}
}
