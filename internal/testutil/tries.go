package testutil

import (
	"io"
	"net/http"
	"testing"
)

// WantStatusEachTry runs do n times and reports, in one error, the tries that did not end in
// a response with status: a failed request (a client whose write met a reset before it read
// the answer: `write: broken pipe`) or another status. Each response's body is read and
// closed.
func WantStatusEachTry(t testing.TB, n, status int, do func() (*http.Response, error)) {
	t.Helper()
	var failed []string
	for range n {
		resp, err := do()
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			failed = append(failed, resp.Status)
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d tries did not get the %d: %q", len(failed), n, status, failed)
	}
}
