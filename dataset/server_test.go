package dataset

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// newFileServer serves body at every path on a loopback port.
func newFileServer(t *testing.T, body []byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
