package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/channels"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/storage"
	"github.com/aigateway/aigateway/shared/upstream"
)

// hookRecords runs after once, after the first Query of the channel
// partition.
type hookRecords struct {
	storage.Records
	after func()
}

func (h *hookRecords) Query(ctx context.Context, pk string, q storage.Query) (storage.Page, error) {
	p, err := h.Records.Query(ctx, pk, q)
	if pk == "channel" && h.after != nil {
		f := h.after
		h.after = nil
		f()
	}
	return p, err
}

func adminRig(t *testing.T, recs storage.Records) (*Handler, *channels.Store) {
	box, _ := seal.New(make([]byte, 32))
	cs := channels.New(recs, box, 0)
	h := New(Deps{Channels: &Channels{Store: cs, Health: channels.NewHealth(recs), Upstream: upstream.New(upstream.DefaultConfig(), nil)}}, 1<<20)
	return h, cs
}

func call(h func(http.ResponseWriter, *http.Request) error, method, id, body string) (int, string) {
	r := httptest.NewRequest(method, "/x", strings.NewReader(body))
	if id != "" {
		r.SetPathValue("id", id)
	}
	w := httptest.NewRecorder()
	if err := h(w, r); err != nil {
		respond.Error(w, r, err)
	}
	return w.Code, w.Body.String()
}

// TestListVersionIsTheContents: the list's version is the one its
// contents were read at, so a PUT made on what the list showed, with its
// version, cannot overwrite a change made in between.
func TestListVersionIsTheContents(t *testing.T) {
	base := sqlitetest.Open(t).Records()
	hooked := &hookRecords{Records: base}
	h, _ := adminRig(t, hooked)
	_, other := adminRig(t, base)
	code, body := call(h.CreateChannel, "POST", "", `{"name":"a","base_url":"https://a.example.com/v1","models":["gpt-4o"]}`)
	if code != 201 {
		t.Fatal(code, body)
	}
	var made struct{ ID string }
	json.Unmarshal([]byte(body), &made)
	hooked.after = func() { // another admin disables the channel meanwhile
		c, v, _ := other.Get(context.Background(), made.ID)
		c.Enabled = false
		if _, err := other.Update(context.Background(), c, v); err != nil {
			t.Fatal(err)
		}
	}
	_, list := call(h.ListChannels, "GET", "", "")
	var l struct {
		Data []struct {
			Enabled bool  `json:"enabled"`
			Version int64 `json:"version"`
		}
	}
	json.Unmarshal([]byte(list), &l)
	code, _ = call(h.UpdateChannel, "PUT", made.ID, fmt.Sprintf(`{"enabled":%v,"models":["gpt-4o","gpt-4.1"],"version":%d}`, l.Data[0].Enabled, l.Data[0].Version))
	c, _, _ := other.Get(context.Background(), made.ID)
	if code != http.StatusConflict || c.Enabled {
		t.Fatalf("a PUT on the listed version = %d, enabled now %v: want 409 and the other admin's change kept", code, c.Enabled)
	}
}

// TestChannelInputs: bad channels are refused, each with its field
// (duplicate keys, a masked key that is not the channel's, a mapping past
// the limit, a key too long); what a GET shows can be PUT back as it is.
func TestChannelInputs(t *testing.T) {
	h, cs := adminRig(t, sqlitetest.Open(t).Records())
	mm := map[string]string{}
	for i := range gateway.MaxChannelModels + 1 {
		mm[fmt.Sprintf("m%05d", i)] = "x"
	}
	mmj, _ := json.Marshal(mm)
	for name, bad := range map[string]string{
		"duplicate keys": `{"name":"a","base_url":"https://a.example.com/v1","api_keys":["sk-dup-0123456789abc","sk-dup-0123456789abc"]}`,
		"a masked key":   `{"name":"a","base_url":"https://a.example.com/v1","api_keys":["sk-****9abc"]}`,
		"a long mapping": `{"name":"a","base_url":"https://a.example.com/v1","model_map":` + string(mmj) + `}`,
		"a long key":     `{"name":"a","base_url":"https://a.example.com/v1","api_keys":["sk-` + strings.Repeat("x", gateway.MaxChannelKeyLen) + `"]}`,
	} {
		if code, body := call(h.CreateChannel, "POST", "", bad); code != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", name, code, body)
		}
	}
	if list, err := cs.List(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("refused channels were stored: %v %v", list, err)
	}
	code, body := call(h.CreateChannel, "POST", "", `{"name":"a","base_url":"https://a.example.com/v1","api_keys":["sk-one-0123456789abc","sk-two-0123456789abc"],"models":["m"]}`)
	if code != http.StatusCreated {
		t.Fatal(code, body)
	}
	var made struct{ ID string }
	json.Unmarshal([]byte(body), &made)
	_, got := call(h.GetChannel, "GET", made.ID, "")
	if code, body := call(h.UpdateChannel, "PUT", made.ID, got); code != http.StatusOK {
		t.Fatalf("PUT of the GET's body: %d %s", code, body)
	}
	if c, _, err := cs.Get(context.Background(), made.ID); err != nil || len(c.APIKeys) != 2 || c.APIKeys[0] != "sk-one-0123456789abc" {
		t.Fatalf("after the round trip: %+v %v", c.APIKeys, err)
	}
}

// TestTestChannelScrubsTheKey: an upstream that quotes its key in its
// answer does not show it through the test endpoint.
func TestTestChannelScrubsTheKey(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		fmt.Fprintf(w, `{"choices":[{"message":{"content":"OK (authenticated as %s)"}}]}`, key)
	}))
	defer up.Close()
	h, _ := adminRig(t, sqlitetest.Open(t).Records())
	_, body := call(h.CreateChannel, "POST", "", `{"name":"a","base_url":"`+up.URL+`","api_keys":["sk-secret-ABCDEFGHIJKLMNOP"],"models":["m"]}`)
	var made struct{ ID string }
	json.Unmarshal([]byte(body), &made)
	code, body := call(h.TestChannel, "POST", made.ID, "")
	if code != http.StatusOK || !strings.Contains(body, `"ok":true`) || strings.Contains(body, "ABCDEFGHIJKLMNOP") {
		t.Fatalf("test = %d %s", code, body)
	}
}

// TestCSVCells: a cell that starts like a formula is not one.
func TestCSVCells(t *testing.T) {
	for in, want := range map[string]string{"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")", "+1": "'+1", "-2": "'-2", "@a": "'@a",
		"\tx": "'\tx", "gpt-4o": "gpt-4o", "": ""} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q", in, got)
		}
	}
}

// manyRecords is a usage store of n records.
type manyRecords struct{ n int }

func (m manyRecords) Summary(context.Context, gateway.UsageFilter) ([]gateway.UsageRow, error) {
	return nil, nil
}
func (m manyRecords) ChannelSummary(context.Context, time.Time, time.Time) ([]gateway.ChannelUsageRow, error) {
	return nil, nil
}
func (m manyRecords) EachRecord(_ context.Context, _ gateway.UsageFilter, fn func(gateway.UsageRecord) error) error {
	for i := range m.n {
		if err := fn(gateway.UsageRecord{RequestID: fmt.Sprint("r", i), KeyID: "key_a", Model: "m", Status: 200, Time: time.Now()}); err != nil {
			return err
		}
	}
	return nil
}

// TestExportWithinTheAnswerLimit: where answers are buffered (Lambda), an
// export too large for one is a clear 413, not a broken answer; a small
// one comes whole.
func TestExportWithinTheAnswerLimit(t *testing.T) {
	for _, c := range []struct {
		n    int
		want int
	}{{10, http.StatusOK}, {100_000, http.StatusRequestEntityTooLarge}} {
		h := New(Deps{Usage: manyRecords{c.n}, MaxAnswer: 1 << 20}, 1<<20)
		code, body := call(h.UsageExport, "GET", "", "")
		if code != c.want || (code == http.StatusOK && strings.Count(body, "\n") != c.n+1) {
			t.Fatalf("%d records = %d (%d bytes) %.200s", c.n, code, len(body), body)
		}
	}
}
