//go:build js && wasm && conformance

package main

import (
	"flag"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"syscall/js"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/storagetest"
	"github.com/aigateway/aigateway/shared/cloudflare"
	"github.com/aigateway/aigateway/shared/respond"
)

// In the test build (-tags conformance), POST /__conformance runs the
// storage conformance suite inside the Worker, on its own bindings (Go
// tests cannot call them from outside), and answers whether it passed;
// the failures are in the Worker's log.
func init() {
	extraRoutes = func(mux *http.ServeMux) {
		mux.HandleFunc("POST /__conformance", func(w http.ResponseWriter, r *http.Request) {
			env := js.Global().Get("context").Get("env")
			store, _, err := cloudflare.OpenD1(bindingDB)
			if err != nil {
				respond.Error(w, r, err)
				return
			}
			kv, blobs := cloudflare.NewKV(env.Get(bindingKV)), cloudflare.NewBlobs(env.Get(bindingR2))
			tests := []testing.InternalTest{
				{Name: "TestKV", F: func(t *testing.T) { storagetest.TestKV(t, kv) }},
				{Name: "TestRecords", F: func(t *testing.T) { storagetest.TestRecords(t, store.Records()) }},
				{Name: "TestBlobs", F: func(t *testing.T) { storagetest.TestBlobs(t, blobs) }},
			}
			m := testing.MainStart(deps{}, tests, nil, nil, nil)
			flag.Set("test.v", "true")
			if run := r.URL.Query().Get("run"); run != "" {
				flag.Set("test.run", run)
			}
			respond.JSON(w, http.StatusOK, map[string]bool{"ok": m.Run() == 0})
		})
	}
}

// deps is what testing.MainStart needs of the go test driver, for tests
// alone: no profiles, coverage or fuzzing. (MainStart is go test's own
// entry point; this build follows its signature.)
type deps struct{}

func (deps) ImportPath() string                          { return "infra/cloudflare" }
func (deps) ModulePath() string                          { return "github.com/aigateway/aigateway" }
func (deps) MatchString(pat, str string) (bool, error)   { return regexp.MatchString(pat, str) }
func (deps) SetPanicOnExit0(bool)                        {}
func (deps) StartCPUProfile(io.Writer) error             { return nil }
func (deps) StopCPUProfile()                             {}
func (deps) StartTestLog(io.Writer)                      {}
func (deps) StopTestLog() error                          { return nil }
func (deps) WriteProfileTo(string, io.Writer, int) error { return nil }
func (deps) CoordinateFuzzing(time.Duration, int64, time.Duration, int64, int, []corpusEntry, []reflect.Type, string, string) error {
	return nil
}
func (deps) RunFuzzWorker(func(corpusEntry) error) error              { return nil }
func (deps) ReadCorpus(string, []reflect.Type) ([]corpusEntry, error) { return nil, nil }
func (deps) CheckCorpus([]any, []reflect.Type) error                  { return nil }
func (deps) ResetCoverage()                                           {}
func (deps) SnapshotCoverage()                                        {}
func (deps) InitRuntimeCoverage() (string, func(string, string) (string, error), func() float64) {
	return "", nil, nil
}

// corpusEntry is testing's (an alias of this struct type).
type corpusEntry = struct {
	Parent     string
	Path       string
	Data       []byte
	Values     []any
	Generation int
	IsSeed     bool
}
