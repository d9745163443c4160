// Package migrationtest checks, on any storage backend, the move of the
// settings' upstream fields (ai, fallback, image, rag) into channels: what
// an older release stored becomes channels on first read, by any number of
// instances at once, nothing lost; the old fields stay a view of them.
package migrationtest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/aigateway/aigateway/shared/channels"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/settings"
	"github.com/aigateway/aigateway/shared/storage"
)

// old is what a release before channels kept.
func old() gateway.Settings {
	st := gateway.DefaultSettings()
	st.PublicModel = "team-bot"
	st.AI = gateway.Upstream{BaseURL: "https://main.example.com/v1", APIKey: "sk-main-0123456789abcdef", Model: "main-model"}
	st.Fallback = gateway.Upstream{BaseURL: "https://fallback.example.com", APIKey: "sk-fallback-0123456789", Model: "fallback-model"}
	st.Image = gateway.Upstream{BaseURL: "https://images.example.com", APIKey: "sk-images-0123456789"}
	st.RAG.BaseURL, st.RAG.APIKey, st.RAG.Model, st.RAG.RerankModel = "https://rag.example.com", "sk-rag-0123456789abc", "embed-model", "rerank-model"
	return st
}

// Run stores settings as a release before channels did, then reads them
// on eight instances at once, and checks the channels made, the settings
// left, the view, and changes made through the view.
func Run(t *testing.T, kv storage.KV, records storage.Records) {
	ctx := context.Background()
	box, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	was := old()
	if err := settings.New(kv, box, 0).Save(ctx, was); err != nil { // no channels: as before
		t.Fatal(err)
	}
	raw, err := kv.Get(ctx, "settings")
	if err != nil || !strings.Contains(string(raw), "main.example.com") {
		t.Fatalf("the old settings were not stored as before: %s %v", raw, err)
	}

	// Eight instances start at once, each reading the settings first.
	var wg sync.WaitGroup
	views := make([]gateway.Settings, 8)
	errs := make([]error, 8)
	var chStore *channels.Store
	for i := range views {
		cs := channels.New(records, box, 0)
		if i == 0 {
			chStore = cs
		}
		st := settings.New(kv, box, 0)
		st.Channels(cs)
		wg.Go(func() { views[i], errs[i] = st.Get(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		if views[i].AI != was.AI || views[i].Fallback != was.Fallback || views[i].Image != was.Image ||
			views[i].RAG != was.RAG || views[i].PublicModel != was.PublicModel {
			t.Fatalf("instance %d sees %+v, want the old upstreams", i, views[i])
		}
	}
	list, err := chStore.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]gateway.Channel{}
	for _, c := range list {
		byID[c.ID] = c
	}
	if len(list) != 4 {
		t.Fatalf("%d channels, want 4: %+v", len(list), list)
	}
	for id, want := range map[string]struct {
		base, key, caps string
		priority        int
	}{
		channels.MainID:     {was.AI.BaseURL, string(was.AI.APIKey), "chat,images", 0},
		channels.FallbackID: {was.Fallback.BaseURL, string(was.Fallback.APIKey), "chat", -1},
		channels.ImagesID:   {was.Image.BaseURL, string(was.Image.APIKey), "images", 1},
		channels.RAGID:      {was.RAG.BaseURL, string(was.RAG.APIKey), "embeddings,rerank", 0},
	} {
		c := byID[id]
		if c.BaseURL != want.base || len(c.APIKeys) != 1 || string(c.APIKeys[0]) != want.key || strings.Join(c.Capabilities, ",") != want.caps ||
			c.Priority != want.priority || !c.Enabled || !c.Serves("any/model", c.Capabilities[0]) {
			t.Fatalf("channel %s = %+v", id, c)
		}
	}
	if got := byID[channels.FallbackID].UpstreamModel("main-model"); got != "fallback-model" {
		t.Fatalf("the fallback sends %q, want its own model", got)
	}
	raw, err = kv.Get(ctx, "settings")
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"example.com"} {
		if strings.Contains(string(raw), gone) {
			t.Fatalf("the settings still hold %q after the move: %s", gone, raw)
		}
	}
	if !strings.Contains(string(raw), "main-model") || !strings.Contains(string(raw), "embed-model") {
		t.Fatalf("the settings lost their models: %s", raw)
	}

	// Through the view: a new ai key replaces the channel's first key
	// (the pool's others stay); a cleared fallback deletes its channel.
	cur := chStore
	main, version, err := cur.Get(ctx, channels.MainID)
	if err != nil {
		t.Fatal(err)
	}
	main.APIKeys = append(main.APIKeys, "sk-second-0123456789")
	if _, err := cur.Update(ctx, main, version); err != nil {
		t.Fatal(err)
	}
	st := settings.New(kv, box, 0)
	st.Channels(cur)
	if _, err := st.Patch(ctx, []byte(`{"ai":{"api_key":"sk-rotated-0123456789"},"fallback":{"base_url":"","api_key":"","model":""}}`)); err != nil {
		t.Fatal(err)
	}
	main, _, err = cur.Get(ctx, channels.MainID)
	if err != nil || len(main.APIKeys) != 2 || main.APIKeys[0] != "sk-rotated-0123456789" || main.APIKeys[1] != "sk-second-0123456789" {
		t.Fatalf("after a new ai key: %+v %v", main.APIKeys, err)
	}
	if _, _, err := cur.Get(ctx, channels.FallbackID); !gateway.IsNotFound(err) {
		t.Fatalf("a cleared fallback left its channel: %v", err)
	}
	view, err := st.Get(ctx)
	if err != nil || view.AI.APIKey != "sk-rotated-0123456789" || view.Fallback != (gateway.Upstream{}) || view.AI.Model != "main-model" {
		t.Fatalf("the view after the change: %+v %v", view, err)
	}

	// Stopped half-way (channels made, the settings not yet rewritten)
	// and started again: done again, nothing doubled.
	if err := settings.New(kv, box, 0).Save(ctx, was); err != nil {
		t.Fatal(err)
	}
	again := settings.New(kv, box, 0)
	again.Channels(channels.New(records, box, 0))
	if view, err := again.Get(ctx); err != nil || view.AI != was.AI || view.Fallback != was.Fallback {
		t.Fatalf("a second move: %+v %v", view, err)
	}
	if list, err := chStore.List(ctx); err != nil || len(list) != 4 {
		t.Fatalf("after a second move: %d channels, %v", len(list), err)
	}
}
