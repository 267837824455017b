// Package exit is how tollgate's commands end: an exit code (0 verified or done, 1 denied
// or failed, 2 usage or input error, 3 allowed without verification) carried by the error
// a command returns, and the one line printed for it. Both tollgate binaries report errors through it, so a command's
// output does not depend on which of them ran it.
package exit

import (
	"errors"
	"fmt"
	"io"
)

// Exit codes.
const (
	OK     = 0 // success, verified
	Failed = 1 // denied, verification failed
	Usage  = 2 // bad flags or input
	// Unverified: allowed without verification (`verify --image`: no policy matched and
	// the node default allows, or an exemption applied). Not 0, so that a CI gate testing
	// for success cannot take it for verified.
	Unverified = 3
)

// Error carries an exit code with its message. A nil Err exits quietly with Code: the
// command has already said everything (a verification report, say).
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Usagef is a usage or input error (exit 2).
func Usagef(format string, args ...any) error {
	return &Error{Code: Usage, Err: fmt.Errorf(format, args...)}
}

// Inputf marks err as an input error (exit 2), with context.
func Inputf(err error, format string, args ...any) error {
	return &Error{Code: Usage, Err: fmt.Errorf(format+": %w", append(args, err)...)}
}

// Fail marks a failed verification or operation (exit 1).
func Fail(err error) error { return &Error{Code: Failed, Err: err} }

// Quiet ends with code and prints nothing more.
func Quiet(code int) error { return &Error{Code: code} }

// Code is the exit code err asks for: 0 for nil, 1 for an error without one.
func Code(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Failed
}

// Report prints err the way every tollgate command does and returns its exit code.
// Errors without a code come from flag parsing, so they are usage errors and point at
// --help.
func Report(stderr io.Writer, err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Err != nil {
			fmt.Fprintf(stderr, "tollgate: %v\n", e.Err)
		}
		return e.Code
	}
	fmt.Fprintf(stderr, "tollgate: %v\n", err)
	fmt.Fprintln(stderr, "Run 'tollgate --help' for usage.")
	return Usage
}

// Guard runs fn and turns a panic into exit code 1 with a message: nothing panics on any
// input, and if something does anyway, the user hears of it as an error, not a trace.
func Guard(stderr io.Writer, fn func() int) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "tollgate: internal error: %v\n", r)
			code = Failed
		}
	}()
	return fn()
}
