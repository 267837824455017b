package exit

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestReport(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		code   int
		stderr string
	}{
		{"nil", nil, OK, ""},
		{"usage", Usagef("--at %q is not a time", "x"), Usage, "tollgate: --at \"x\" is not a time\n"},
		{"input", Inputf(errors.New("no such file"), "reading layout %s", "a"), Usage, "tollgate: reading layout a: no such file\n"},
		{"failed", Fail(errors.New("denied")), Failed, "tollgate: denied\n"},
		{"quiet", Quiet(Failed), Failed, ""},
		{"wrapped", fmt.Errorf("outer: %w", Fail(errors.New("inner"))), Failed, "tollgate: inner\n"},
		{"plain error is usage", errors.New("unknown flag: --x"), Usage, "tollgate: unknown flag: --x\nRun 'tollgate --help' for usage.\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if code := Report(&b, tc.err); code != tc.code || b.String() != tc.stderr {
				t.Errorf("Report = %d %q, want %d %q", code, b.String(), tc.code, tc.stderr)
			}
		})
	}
}

func TestCode(t *testing.T) {
	if Code(nil) != OK || Code(errors.New("x")) != Failed || Code(Usagef("x")) != Usage {
		t.Error("Code: nil is 0, a plain error 1, a usage error 2")
	}
}

func TestGuardTurnsPanicIntoFailure(t *testing.T) {
	var b bytes.Buffer
	code := Guard(&b, func() int { panic("boom") })
	if code != Failed || b.String() != "tollgate: internal error: boom\n" {
		t.Errorf("Guard = %d %q", code, b.String())
	}
	if Guard(&b, func() int { return Usage }) != Usage {
		t.Error("Guard must pass the code through")
	}
}
