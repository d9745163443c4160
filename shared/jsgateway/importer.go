package jsgateway

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/storage"
)

// SQLFiles reads the files table of a database/sql database (D1 on a
// Worker, SQLite in tests).
type SQLFiles struct{ DB *sql.DB }

// FileRows implements FileTable.
func (t SQLFiles) FileRows(ctx context.Context) ([]map[string]any, error) {
	rows, err := t.DB.QueryContext(ctx, "SELECT rowid AS _rowid, * FROM files ORDER BY rowid")
	if err != nil && strings.Contains(err.Error(), "rowid") {
		rows, err = t.DB.QueryContext(ctx, "SELECT * FROM files") // a table without rowid
	}
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, nil
		}
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			row[c] = vals[i]
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// KeyImporter stores an old client key under its own secret (hashed).
type KeyImporter interface {
	Import(ctx context.Context, name, secret string, createdAt time.Time) (gateway.APIKey, bool, error)
}

// DocumentAdder stores and ingests a document; the same content twice is
// one document.
type DocumentAdder interface {
	Add(ctx context.Context, u gateway.Upload) (gateway.Document, bool, error)
}

// Failure is an old file that did not become a document, and why.
type Failure struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// Progress is how far the import of keys and files has come.
type Progress struct {
	KeysTotal  int       `json:"keys_total"`
	KeysDone   int       `json:"keys_done"`
	FilesTotal int       `json:"files_total"`
	FilesDone  int       `json:"files_done"`
	Documents  []string  `json:"documents"` // the documents made, by ID
	Failed     []Failure `json:"failed"`
	Done       bool      `json:"done"`
}

// Records layout of the import's progress.
const (
	progressPK = "jsimport"
	progressSK = "progress"
)

// Work done by one call: a Worker request has a bounded number of
// operations, and each key is one and each file about ten.
const (
	keysPerCall  = 200
	filesPerCall = 5
	callBudget   = 20 * time.Second
)

// Handler serves the import (the upload function, since files become
// documents): GET shows what there is and how far the import has come;
// each POST imports the next keys and files and says how far it got, so
// the page calls it until done. Importing again skips what was imported.
type Handler struct {
	Source  *Source // nil where there is no JavaScript gateway's data (off Workers)
	Records storage.Records
	Keys    KeyImporter
	Docs    DocumentAdder
	now     func() time.Time
}

func (h *Handler) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

func (h *Handler) source() (*Source, error) {
	if h == nil || h.Source == nil {
		return nil, NoSource()
	}
	return h.Source, nil
}

// NoSource is the error of an import where there is nothing to read.
func NoSource() error {
	return gateway.Errorf(gateway.ENotFound, "There is no JavaScript gateway's data to import here: the import reads its Cloudflare bindings, on the Worker target.")
}

// State answers GET: what the old gateway left and the progress so far.
func (h *Handler) State(w http.ResponseWriter, r *http.Request) error {
	src, err := h.source()
	if err != nil {
		return err
	}
	snap, err := Read(r.Context(), *src)
	if err != nil {
		return err
	}
	p, _, err := h.progress(r.Context(), snap)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"source": snap.Summary(), "progress": p})
	return nil
}

// Import answers POST: the next keys and files.
func (h *Handler) Import(w http.ResponseWriter, r *http.Request) error {
	src, err := h.source()
	if err != nil {
		return err
	}
	ctx := r.Context()
	snap, err := Read(ctx, *src)
	if err != nil {
		return err
	}
	if !snap.Found {
		return gateway.Errorf(gateway.ENotFound, "The bindings hold none of the JavaScript gateway's data (%s, %s, %s, %s, %s or a files table).", KeyAI, KeyRAG, KeySystem, KeyModels, KeyAPI)
	}
	p, err := h.Step(ctx, *src, snap, filesPerCall)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, p)
	return nil
}

// progress reads the stored progress against snap.
func (h *Handler) progress(ctx context.Context, snap Snapshot) (Progress, int64, error) {
	p := Progress{}
	var version int64
	it, err := h.Records.Get(ctx, progressPK, progressSK)
	switch {
	case err == nil:
		if err := json.Unmarshal(it.Value, &p); err != nil {
			return Progress{}, 0, fmt.Errorf("decode import progress: %w", err)
		}
		version = it.Version
	case !gateway.IsNotFound(err):
		return Progress{}, 0, err
	}
	p.KeysTotal, p.FilesTotal = len(snap.Keys), len(snap.Files)
	p.KeysDone, p.FilesDone = min(p.KeysDone, p.KeysTotal), min(p.FilesDone, p.FilesTotal)
	p.Done = p.KeysDone == p.KeysTotal && p.FilesDone == p.FilesTotal
	if p.Documents == nil {
		p.Documents = []string{}
	}
	if p.Failed == nil {
		p.Failed = []Failure{}
	}
	return p, version, nil
}

// Step imports the next keys and at most files files of snap and stores
// the progress. Keys are imported under their own secrets (already there
// is not an error); files become documents of the default knowledge base,
// a file that cannot be read is reported and passed over.
func (h *Handler) Step(ctx context.Context, src Source, snap Snapshot, files int) (Progress, error) {
	p, version, err := h.progress(ctx, snap)
	if err != nil {
		return Progress{}, err
	}
	deadline := h.clock().Add(callBudget)
	for n := 0; p.KeysDone < p.KeysTotal && n < keysPerCall; n++ {
		k := snap.Keys[p.KeysDone]
		if _, _, err := h.Keys.Import(ctx, k.Name, k.Secret, k.CreatedAt); err != nil {
			return Progress{}, fmt.Errorf("import key %d: %w", p.KeysDone+1, err)
		}
		p.KeysDone++
	}
	for n := 0; p.FilesDone < p.FilesTotal && n < files && h.clock().Before(deadline); n++ {
		f := snap.Files[p.FilesDone]
		doc, err := h.file(ctx, src, f)
		switch {
		case err != nil && (gateway.ErrorCode(err) == gateway.EUnavailable || gateway.ErrorCode(err) == gateway.EInternal):
			return Progress{}, err // the store or bucket failed: the next call tries this file again
		case err != nil:
			p.Failed = append(p.Failed, Failure{File: f.Name, Reason: gateway.ErrorMessage(err)})
		case doc.Status == gateway.DocFailed:
			p.Failed = append(p.Failed, Failure{File: f.Name, Reason: doc.Reason})
			p.Documents = append(p.Documents, doc.ID)
		default:
			p.Documents = append(p.Documents, doc.ID)
		}
		p.FilesDone++
	}
	p.Done = p.KeysDone == p.KeysTotal && p.FilesDone == p.FilesTotal
	value, err := json.Marshal(p)
	if err != nil {
		return Progress{}, err
	}
	cond := storage.Cond{IfVersion: version}
	if version == 0 {
		cond = storage.Cond{IfAbsent: true}
	}
	// Two imports at once both did this step; keys and documents are the
	// same either way (a key is stored once, a content once), so the
	// loser's progress is simply not stored.
	if _, err := h.Records.Put(ctx, storage.Item{PK: progressPK, SK: progressSK, Value: value}, cond); err != nil && !gateway.IsConflict(err) {
		return Progress{}, fmt.Errorf("store import progress: %w", err)
	}
	return p, nil
}

// maxFile bounds an old file read from R2.
const maxFile = 64 << 20

// file makes one old file a document.
func (h *Handler) file(ctx context.Context, src Source, f OldFile) (gateway.Document, error) {
	u := gateway.Upload{KnowledgeBase: "default", Filename: f.Name, ContentType: f.ContentType}
	if path.Ext(u.Filename) == "" {
		u.Filename += ".txt"
		if u.ContentType == "" || strings.HasPrefix(u.ContentType, "text/") {
			u.ContentType = "text/plain"
		}
	}
	if f.Text != "" {
		u.Data = []byte(f.Text)
		if path.Ext(f.Name) == "" || u.ContentType == "" {
			u.ContentType = "text/plain"
		}
	} else {
		rc, info, err := src.Blobs.Get(ctx, f.Object)
		if gateway.IsNotFound(err) {
			return gateway.Document{}, gateway.Errorf(gateway.ENotFound, "Its R2 object %q is not in the bucket.", f.Object)
		}
		if err != nil {
			return gateway.Document{}, err
		}
		defer rc.Close()
		if info.Size > maxFile {
			return gateway.Document{}, gateway.Errorf(gateway.ETooLarge, "Its R2 object is %d MB; a document may be at most %d MB.", info.Size>>20, maxFile>>20)
		}
		data, err := io.ReadAll(io.LimitReader(rc, maxFile+1))
		if err != nil {
			return gateway.Document{}, storage.Unavailable("read "+f.Object, err)
		}
		u.Data = data
		if u.ContentType == "" {
			u.ContentType = info.ContentType
		}
	}
	doc, _, err := h.Docs.Add(ctx, u)
	return doc, err
}
