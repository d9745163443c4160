package jsgateway

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/catalog"
	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/ingest"
	"github.com/aigateway/aigateway/shared/keys"
)

// TestImportResumesByRowID: the old gateway is still in use while the
// import runs (same bindings) and one of its files is deleted between two
// steps: every remaining file still comes over.
func TestImportResumesByRowID(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	kv := store.KV()
	camelLayout(t, kv)
	old, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Exec(`CREATE TABLE files (id TEXT PRIMARY KEY, filename TEXT, content TEXT)`); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := old.Exec(`INSERT INTO files VALUES (?, ?, ?)`, fmt.Sprintf("f%02d", i), fmt.Sprintf("file%02d.txt", i), fmt.Sprintf("text number %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	blobs, _ := disk.New(t.TempDir())
	src := Source{KV: kv, Files: SQLFiles{DB: old}, Blobs: blobs}
	idx := &indexed{texts: map[string]string{}}
	h := &Handler{Source: &src, Records: store.Records(), Keys: keys.New(store.Records(), 0), Docs: ingest.New(store.Records(), blobs, idx),
		Models: catalog.New(store.Records(), 0), Settings: fixedSettings{}}
	for step := 0; ; step++ {
		snap, err := Read(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		p, err := h.Step(ctx, src, snap, 5)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			if _, err := old.Exec(`DELETE FROM files WHERE id = 'f00'`); err != nil {
				t.Fatal(err)
			}
		}
		if p.Done {
			break
		}
	}
	for i := 1; i < 10; i++ {
		if _, ok := idx.texts[fmt.Sprintf("file%02d.txt", i)]; !ok {
			t.Errorf("file%02d.txt, still in the old table, was never imported (import reported done)", i)
		}
	}
}
