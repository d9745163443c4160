//go:build js && wasm

package cloudflare

import (
	"context"
	"syscall/js"

	"github.com/aigateway/aigateway/shared/storage"
)

var _ storage.KV = (*KV)(nil)

// KV is the KV role on a Workers KV namespace. Workers KV is eventually
// consistent: a write is seen at once where it was made and within about
// 60 seconds elsewhere.
type KV struct{ ns js.Value }

// NewKV returns the KV role on the namespace bound as ns.
func NewKV(ns js.Value) *KV { return &KV{ns: ns} }

// maxKVKey is Workers KV's limit on a key, in bytes.
const maxKVKey = 512

func checkKVKey(key string) error {
	if err := storage.CheckKey("key", key); err != nil {
		return err
	}
	if len(key) > maxKVKey || key == "." || key == ".." {
		return storage.Invalid("a KV key is at most %d bytes, and not . or ..", maxKVKey)
	}
	return nil
}

// Get implements storage.KV.
func (k *KV) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKVKey(key); err != nil {
		return nil, err
	}
	v, err := callAwait(k.ns, "get", key, obj(map[string]any{"type": "arrayBuffer"}))
	if err != nil {
		return nil, storage.Unavailable("get "+key, err)
	}
	if v.IsNull() || v.IsUndefined() {
		return nil, storage.NotFound("key " + key)
	}
	return goBytes(v), nil
}

// Put implements storage.KV.
func (k *KV) Put(ctx context.Context, key string, value []byte) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	if err := storage.CheckValue(value); err != nil {
		return err
	}
	if _, err := callAwait(k.ns, "put", key, jsBytes(value)); err != nil {
		return storage.Unavailable("put "+key, err)
	}
	return nil
}

// Delete implements storage.KV.
func (k *KV) Delete(ctx context.Context, key string) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	if _, err := callAwait(k.ns, "delete", key); err != nil {
		return storage.Unavailable("delete "+key, err)
	}
	return nil
}

// List implements storage.KV. Workers KV lists keys in byte order; its
// cursors are its own.
func (k *KV) List(ctx context.Context, prefix, cursor string, limit int) ([]string, string, error) {
	opts := map[string]any{"limit": storage.Clamp(limit)}
	if prefix != "" {
		opts["prefix"] = prefix
	}
	if cursor != "" {
		opts["cursor"] = cursor
	}
	res, err := callAwait(k.ns, "list", obj(opts))
	if err != nil {
		return nil, "", storage.Unavailable("list "+prefix, err)
	}
	names := res.Get("keys")
	keys := make([]string, names.Length())
	for i := range keys {
		keys[i] = names.Index(i).Get("name").String()
	}
	next := ""
	if !res.Get("list_complete").Bool() {
		next = res.Get("cursor").String()
	}
	return keys, next, nil
}
