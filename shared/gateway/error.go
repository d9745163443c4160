// Package gateway holds the domain of the AI gateway: its error codes and the
// types that every target shares. It imports only the standard library.
package gateway

import (
	"errors"
	"fmt"
)

// Error codes. Every user-facing failure carries one; the HTTP layer maps each
// code to a status and an OpenAI error type in one table.
const (
	EInvalid       = "invalid"             // bad input: 400
	EUnauthorized  = "unauthorized"        // no or bad credentials: 401
	EForbidden     = "forbidden"           // authenticated but not allowed: 403
	ENotFound      = "not_found"           // unknown item: 404
	EConflict      = "conflict"            // state does not allow it: 409
	ETooLarge      = "too_large"           // body over the limit: 413
	EUnsupported   = "unsupported"         // unsupported media type: 415
	ELimited       = "rate_limit_exceeded" // throttled: 429 with Retry-After
	EQuota         = "insufficient_quota"  // token quota used up: 429
	EUpstream      = "upstream_error"      // the upstream failed: 502
	EUnavailable   = "unavailable"         // a backend is unavailable: 503
	ETimeout       = "timeout"             // the upstream did not answer in time: 504
	EInternal      = "internal"            // a bug or an unexpected failure: 500
	EModelNotFound = "model_not_found"
)

// Error is a failure meant for the user: Message is a human sentence that is
// safe to show. Internal errors are plain Go errors and never reach clients.
type Error struct {
	Code    string
	Message string
	// Param names the offending request field, if any.
	Param string
	// RetryAfter, in seconds, is sent as the Retry-After header when set.
	RetryAfter int
	// Cause, when set, is the internal failure behind it: logged, never
	// shown to clients.
	Cause error
	// Fault, on an upstream's failure, says what it means for routing.
	Fault Fault
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("gateway: %s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("gateway: %s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first Error in err's chain, EInternal for
// any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the user-facing message of err: the message of its
// Error, or a generic sentence for internal errors so that their text never
// leaks.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "An internal error occurred."
}

// IsNotFound reports whether err carries ENotFound.
func IsNotFound(err error) bool { return ErrorCode(err) == ENotFound }

// IsConflict reports whether err carries EConflict.
func IsConflict(err error) bool { return ErrorCode(err) == EConflict }
