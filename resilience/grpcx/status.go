package grpcx

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/resilience"
)

// PushbackKey is the trailer in which a server tells a client when to retry (gRFC A6): a
// non-negative integer number of milliseconds to wait before the next attempt; a negative or
// malformed value (or more than one value) means "do not retry".
const PushbackKey = "grpc-retry-pushback-ms"

// statusError is a gRPC status error for a policy's decision (a rejection, a timeout, the end of
// the caller's context) that also wraps the errors behind it, so that both status.Code(err) and
// errors.Is(err, resilience.ErrOpen) (or context.Canceled, …) work.
type statusError struct {
	st   *status.Status
	errs []error
}

func newStatusError(c codes.Code, msg string, errs ...error) *statusError {
	return &statusError{st: status.New(c, msg), errs: errs}
}

// Error has the form of grpc's own status errors.
func (e *statusError) Error() string {
	return "rpc error: code = " + e.st.Code().String() + " desc = " + e.st.Message()
}

// GRPCStatus lets status.FromError, status.Code and grpc's server see the status.
func (e *statusError) GRPCStatus() *status.Status { return e.st }

// Unwrap exposes the policy (or context) errors to errors.Is and errors.As.
func (e *statusError) Unwrap() []error { return e.errs }

// pushbackError is a failed attempt whose trailer carried grpc-retry-pushback-ms. It keeps the
// server's status (GRPCStatus, Error and Unwrap are the original error's) and tells the Retry when
// to come back (RetryAfter).
type pushbackError struct {
	err error
	st  *status.Status
	d   time.Duration // < 0: the server said not to retry
}

func (e *pushbackError) Error() string              { return e.err.Error() }
func (e *pushbackError) Unwrap() error              { return e.err }
func (e *pushbackError) GRPCStatus() *status.Status { return e.st }

// RetryAfter returns the server's pushback (zero when it said not to retry, which the
// interceptor enforces separately). It makes the error a resilience.RetryAfterError.
func (e *pushbackError) RetryAfter() time.Duration { return max(e.d, 0) }

// Pushback returns the retry pushback a server sent with a failed attempt's error (as returned by
// the client interceptors, or seen by a ClientConfig.Retryable classifier). ok is false when the
// server sent none; d is negative when the server said not to retry (a negative, malformed or
// repeated grpc-retry-pushback-ms).
func Pushback(err error) (d time.Duration, ok bool) {
	var pe *pushbackError
	if errors.As(err, &pe) {
		return pe.d, true
	}
	return 0, false
}

// parsePushback reads grpc-retry-pushback-ms from a trailer the way grpc-go's own retry does:
// present is false without the key; d is -1 for a negative, malformed or repeated value.
func parsePushback(md metadata.MD) (d time.Duration, present bool) {
	vals := md[PushbackKey]
	switch len(vals) {
	case 0:
		return 0, false
	case 1:
		ms, err := strconv.ParseInt(vals[0], 10, 64)
		switch {
		case err != nil && errors.Is(err, strconv.ErrRange) && ms > 0:
			return time.Duration(math.MaxInt64), true
		case err != nil || ms < 0:
			return -1, true
		case ms > math.MaxInt64/int64(time.Millisecond):
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(ms) * time.Millisecond, true
	}
	return -1, true
}

// formatPushback renders d as grpc-retry-pushback-ms, rounding up to the millisecond (a pushback
// of zero would tell the client to retry at once).
func formatPushback(d time.Duration) string {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return strconv.FormatInt(int64(max(ms, 1)), 10)
}

// localRejection reports whether err is a policy refusing the call before it reached the network
// (or the handler): such a call says nothing about the target's health, and retrying it within
// the same call does not help.
func localRejection(err error) bool {
	return errors.Is(err, resilience.ErrOpen) || errors.Is(err, resilience.ErrBulkheadFull) ||
		errors.Is(err, resilience.ErrRateLimited) || errors.Is(err, resilience.ErrLimitExceeded)
}

// DefaultRetryable is the client's default retry classifier. It retries UNAVAILABLE and
// DEADLINE_EXCEEDED (resilience.GRPCRetryable; the caller's own deadline is never retried, since
// the Retry stops when the caller's context ends; a per-attempt Timeout's is), and
// RESOURCE_EXHAUSTED only when the server sent a non-negative grpc-retry-pushback-ms. It never
// retries a local rejection (open breaker, full bulkhead, rate limit) nor an attempt whose server
// said not to retry (negative or malformed pushback).
func DefaultRetryable(err error) bool {
	if localRejection(err) {
		return false
	}
	d, pushed := Pushback(err)
	if pushed && d < 0 {
		return false
	}
	code := status.Code(err)
	if resilience.GRPCRetryable(uint32(code)) {
		return true
	}
	return code == codes.ResourceExhausted && pushed
}

// DefaultIsFailure is the client breakers' default failure classifier: a call fails the target
// when it ends with UNAVAILABLE, DEADLINE_EXCEEDED (not the caller's own: a call whose caller gave
// up is never counted), RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN or DATA_LOSS. Every other code
// (INVALID_ARGUMENT, NOT_FOUND, …) is the caller's problem and counts as a success.
func DefaultIsFailure(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal,
		codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}

// callerEndedError reports the end of the caller's context as a gRPC status (codes.Canceled or
// codes.DeadlineExceeded) that still matches the context error and the last attempt's error.
func callerEndedError(ctx context.Context, err error) error {
	cerr := ctx.Err()
	code := codes.Canceled
	if errors.Is(cerr, context.DeadlineExceeded) {
		code = codes.DeadlineExceeded
	}
	if err == nil {
		return newStatusError(code, cerr.Error(), cerr)
	}
	if errors.Is(err, cerr) {
		return newStatusError(code, cerr.Error(), err)
	}
	return newStatusError(code, cerr.Error(), cerr, err)
}
