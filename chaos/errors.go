package chaos

import (
	"fmt"
	"net/http"
)

// APIError is an error with the HTTP status the API answers with. Its JSON form is Toxiproxy's
// error body: {"error": "...", "status": N}. Methods of Server and Proxy return *APIError for
// conditions a caller may branch on (not found, already exists, bad input); use errors.As.
type APIError struct {
	Message string `json:"error"`  // what was wrong, e.g. "proxy not found"
	Status  int    `json:"status"` // the HTTP status: 400, 404, 409 or 500
}

// Error returns the message.
func (e *APIError) Error() string { return e.Message }

func newAPIError(status int, format string, args ...any) *APIError {
	return &APIError{Message: fmt.Sprintf(format, args...), Status: status}
}

// The messages match Toxiproxy's so that clients which compare them keep working.
const (
	msgBadRequestBody     = "bad request body"
	msgMissingField       = "missing required field"
	msgProxyNotFound      = "proxy not found"
	msgProxyAlreadyExists = "proxy already exists"
	msgInvalidStream      = "stream was invalid, can be either upstream or downstream"
	msgInvalidToxicType   = "invalid toxic type"
	msgToxicAlreadyExists = "toxic already exists"
	msgToxicNotFound      = "toxic not found"
)

func badRequest(err error) *APIError {
	return newAPIError(http.StatusBadRequest, "%s: %v", msgBadRequestBody, err)
}

func errProxyNotFound() *APIError    { return newAPIError(http.StatusNotFound, msgProxyNotFound) }
func errToxicNotFound() *APIError    { return newAPIError(http.StatusNotFound, msgToxicNotFound) }
func errProxyExists() *APIError      { return newAPIError(http.StatusConflict, msgProxyAlreadyExists) }
func errToxicExists() *APIError      { return newAPIError(http.StatusConflict, msgToxicAlreadyExists) }
func errInvalidStream() *APIError    { return newAPIError(http.StatusBadRequest, msgInvalidStream) }
func errInvalidToxicType() *APIError { return newAPIError(http.StatusBadRequest, msgInvalidToxicType) }
func errMissingField(f string) *APIError {
	return newAPIError(http.StatusBadRequest, "%s: %s", msgMissingField, f)
}
