package jsgateway

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/storage"
)

// SQLFiles reads the files table of a database/sql database (D1 on a
// Worker, SQLite in tests).
type SQLFiles struct{ DB *sql.DB }

// quote quotes an SQL identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// FileRows implements FileTable.
func (t SQLFiles) FileRows(ctx context.Context) ([]map[string]any, error) {
	cols, err := t.columns(ctx)
	if err != nil || len(cols) == 0 {
		return nil, err
	}
	sel := []string{"rowid AS _rowid"}
	shadowed := slices.ContainsFunc(cols, func(c string) bool {
		c = strings.ToLower(c)
		return c == "rowid" || c == "_rowid_" || c == "oid" || c == "_rowid"
	})
	for _, c := range cols {
		if slices.Contains(textColumns, fold(c)) {
			sel = append(sel, "length("+quote(c)+") AS "+quote(c+"#len"))
		} else {
			sel = append(sel, quote(c))
		}
	}
	var rows *sql.Rows
	if !shadowed {
		rows, err = t.DB.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM files ORDER BY rowid LIMIT ?", maxFiles+1)
	}
	if shadowed || err != nil && strings.Contains(err.Error(), "rowid") {
		// A table without rowid, or with a column of that name: read it
		// whole (the texts included).
		rows, err = t.DB.QueryContext(ctx, "SELECT * FROM files LIMIT ?", maxFiles+1)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(names))
		for i, c := range names {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			row[c] = vals[i]
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// columns returns the files table's columns, none when it is missing.
func (t SQLFiles) columns(ctx context.Context) ([]string, error) {
	rows, err := t.DB.QueryContext(ctx, "PRAGMA table_info(files)")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	at := slices.Index(names, "name")
	if at < 0 {
		return nil, fmt.Errorf("PRAGMA table_info answered the columns %v", names)
	}
	var cols []string
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		switch c := vals[at].(type) {
		case string:
			cols = append(cols, c)
		case []byte:
			cols = append(cols, string(c))
		}
	}
	return cols, rows.Err()
}

// FileText implements FileTable.
func (t SQLFiles) FileText(ctx context.Context, rowID any, column string) (string, error) {
	var text sql.NullString
	if err := t.DB.QueryRowContext(ctx, "SELECT "+quote(column)+" FROM files WHERE rowid = ?", rowID).Scan(&text); err != nil {
		return "", err
	}
	return text.String, nil
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

// ModelStore stores the public models.
type ModelStore interface {
	List(ctx context.Context) ([]gateway.Model, error)
	Put(ctx context.Context, m gateway.Model) error
}

// SettingsReader reads the settings.
type SettingsReader interface {
	Get(ctx context.Context) (gateway.Settings, error)
}

// Prover checks a claimed secret under a limit on attempts (auth.Guard).
type Prover interface {
	Prove(ctx context.Context, client string, check func() bool, message string) error
}

// Failure is an old model, key or file that did not come over, and why.
type Failure struct {
	Model  string `json:"model,omitempty"`
	Key    string `json:"key,omitempty"` // its hint
	File   string `json:"file,omitempty"`
	Reason string `json:"reason"`
}

// Progress is how far the import of models, keys and files has come. It
// resumes from stable places (a key's hash, a row's rowid), so that the old
// data changing between steps skips nothing that stays.
type Progress struct {
	ModelsTotal int       `json:"models_total"`
	ModelsDone  int       `json:"models_done"`
	KeysTotal   int       `json:"keys_total"`
	KeysDone    int       `json:"keys_done"`
	FilesTotal  int       `json:"files_total"`
	FilesDone   int       `json:"files_done"`
	Documents   int       `json:"documents"` // the documents made (or found there already)
	Failed      []Failure `json:"failed"`    // the first maxFailures
	FailedMore  int       `json:"failed_more,omitempty"`
	Done        bool      `json:"done"`

	KeyCursor  string `json:"key_cursor,omitempty"`  // the order of the last key imported
	FileCursor int64  `json:"file_cursor,omitempty"` // the rowid of the last file imported
}

// maxFailures bounds the failures kept, so the progress stays one small
// record however many files fail.
const maxFailures = 200

func (p *Progress) fail(f Failure) {
	if len(p.Failed) < maxFailures {
		p.Failed = append(p.Failed, f)
	} else {
		p.FailedMore++
	}
}

// Records layout of the import.
const (
	importPK   = "jsimport"
	progressSK = "progress"
	ownerSK    = "owner" // present once the owner proved it: the import may run
)

// Work done by one call: a Worker request has a bounded number of
// operations, and each model or key is one or two and each file about ten.
const (
	keysPerCall  = 200
	filesPerCall = 5
	callBudget   = 20 * time.Second
)

// ProofMessage is the refusal of a wrong or missing proof.
const ProofMessage = "To import the JavaScript gateway's data, type its AI API key (or its admin password): it shows the data is yours."

// Handler serves the import (the upload function, since files become
// documents): GET shows what there is and how far the import has come;
// each POST imports the next models, keys and files and says how far it
// got, so the page calls it until done. Importing again skips what was
// imported. Nothing is imported before the owner proved it (at setup, or
// with "proof" in a POST's body).
type Handler struct {
	Source   *Source // nil where there is no JavaScript gateway's data (off Workers)
	Records  storage.Records
	Keys     KeyImporter
	Docs     DocumentAdder // nil: files are not imported (the admin part)
	Models   ModelStore
	Settings SettingsReader
	Guard    Prover
	now      func() time.Time
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

// notFound is the error of bindings that hold none of the old data.
func notFound() error {
	return gateway.Errorf(gateway.ENotFound, "The bindings hold none of the JavaScript gateway's data (%s, %s, %s, %s, %s or a files table).", KeyAI, KeyRAG, KeySystem, KeyModels, KeyAPI)
}

// Prove checks proof against snap under the attempts limit; client is
// the caller's address.
func (h *Handler) Prove(ctx context.Context, snap Snapshot, client, proof string) error {
	err := h.Guard.Prove(ctx, client, func() bool { return snap.Owns(proof) }, ProofMessage)
	if e, ok := errors.AsType[*gateway.Error](err); ok && e.Code == gateway.EForbidden {
		e.Param = "import.proof"
	}
	return err
}

// MarkOwner records that the owner proved it.
func (h *Handler) MarkOwner(ctx context.Context) error {
	_, err := h.Records.Put(ctx, storage.Item{PK: importPK, SK: ownerSK, Value: []byte(h.clock().UTC().Format(time.RFC3339))}, storage.Cond{})
	if err != nil {
		return fmt.Errorf("record the import's owner: %w", err)
	}
	return nil
}

// ForgetOwner removes the record of the owner's proof.
func (h *Handler) ForgetOwner(ctx context.Context) error {
	if err := h.Records.Delete(ctx, importPK, ownerSK); err != nil {
		return fmt.Errorf("forget the import's owner: %w", err)
	}
	return nil
}

func (h *Handler) proven(ctx context.Context) (bool, error) {
	_, err := h.Records.Get(ctx, importPK, ownerSK)
	if gateway.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// State answers GET: what the old gateway left, whether the owner proved
// it, and the progress so far.
func (h *Handler) State(w http.ResponseWriter, r *http.Request) error {
	src, err := h.source()
	if err != nil {
		return err
	}
	snap, err := Read(r.Context(), *src)
	if err != nil {
		return err
	}
	proven, err := h.proven(r.Context())
	if err != nil {
		return err
	}
	p, _, err := h.progress(r.Context(), snap)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"source": snap.Summary(), "proven": proven, "progress": p})
	return nil
}

// maxProofBody bounds the body of an import step.
const maxProofBody = 8 << 10

// Import answers POST (a body of {"proof"} or none): the next models,
// keys and files.
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
		return notFound()
	}
	var req struct {
		Proof string `json:"proof"`
	}
	if r.ContentLength != 0 {
		if err := respond.DecodeJSON(w, r, maxProofBody, &req); err != nil {
			return err
		}
	}
	proven, err := h.proven(ctx)
	if err != nil {
		return err
	}
	if !proven {
		if req.Proof == "" {
			e := gateway.Errorf(gateway.EForbidden, "%s", ProofMessage)
			e.Param = "proof"
			return e
		}
		if err := h.Prove(ctx, snap, respond.ClientAddr(r), req.Proof); err != nil {
			return err
		}
		if err := h.MarkOwner(ctx); err != nil {
			return err
		}
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
	it, err := h.Records.Get(ctx, importPK, progressSK)
	switch {
	case err == nil:
		if err := json.Unmarshal(it.Value, &p); err != nil {
			return Progress{}, 0, fmt.Errorf("decode import progress: %w", err)
		}
		version = it.Version
	case !gateway.IsNotFound(err):
		return Progress{}, 0, err
	}
	p.count(snap)
	if p.Failed == nil {
		p.Failed = []Failure{}
	}
	return p, version, nil
}

// count sets the totals and what is done of them from the cursors.
func (p *Progress) count(snap Snapshot) {
	p.ModelsTotal, p.KeysTotal, p.FilesTotal = len(snap.Models), len(snap.Keys), len(snap.Files)
	p.ModelsDone = min(p.ModelsDone, p.ModelsTotal)
	p.KeysDone = sort.Search(len(snap.Keys), func(i int) bool { return keyOrder(snap.Keys[i].Secret) > p.KeyCursor })
	if byRowID(snap.Files) {
		p.FilesDone = sort.Search(len(snap.Files), func(i int) bool { return rowID(snap.Files[i]) > p.FileCursor })
	} else {
		p.FilesDone = min(p.FilesDone, p.FilesTotal)
	}
	p.Done = p.ModelsDone == p.ModelsTotal && p.KeysDone == p.KeysTotal && p.FilesDone == p.FilesTotal
}

// rowID is a file's rowid, or -1 where the table gave none.
func rowID(f OldFile) int64 {
	switch v := f.RowID.(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return -1
}

// byRowID reports whether every file has a rowid (in increasing order, as
// FileRows reads them), so the import resumes after the last one.
func byRowID(files []OldFile) bool {
	last := int64(-1)
	for _, f := range files {
		id := rowID(f)
		if id <= last {
			return false
		}
		last = id
	}
	return true
}

// Step imports the next models, keys and at most files files of snap and
// stores the progress. A model named like one there is (or like the
// settings' public model) is passed over; keys are imported under their
// own secrets (already there is not an error); files become documents of
// the default knowledge base. What cannot come over is reported and passed
// over; a storage failure stops the step, to be tried again. A step after
// the import is done runs it again from the start, picking up what the old
// gateway gained meanwhile and importing nothing twice.
func (h *Handler) Step(ctx context.Context, src Source, snap Snapshot, files int) (Progress, error) {
	p, version, err := h.progress(ctx, snap)
	if err != nil {
		return Progress{}, err
	}
	if p.Done && version != 0 && files > 0 {
		p = Progress{Failed: []Failure{}}
		p.count(snap)
	}
	stop := func(err error) bool {
		code := gateway.ErrorCode(err)
		return code == gateway.EUnavailable || code == gateway.EInternal
	}
	if p.ModelsDone < p.ModelsTotal {
		st, err := h.Settings.Get(ctx)
		if err != nil {
			return Progress{}, err
		}
		have, err := h.Models.List(ctx)
		if err != nil {
			return Progress{}, err
		}
		for ; p.ModelsDone < p.ModelsTotal; p.ModelsDone++ {
			m := snap.Models[p.ModelsDone]
			i := slices.IndexFunc(have, func(o gateway.Model) bool { return o.Name == m.Name })
			switch {
			case i >= 0 && have[i].UpstreamModel == m.UpstreamModel && have[i].SystemPrompt == m.SystemPrompt:
				continue // imported before
			case i >= 0 || m.Name == st.PublicModelName():
				p.fail(Failure{Model: m.Name, Reason: "A public model of that name is there already."})
				continue
			}
			if err := h.Models.Put(ctx, m); stop(err) {
				return Progress{}, fmt.Errorf("import model %s: %w", m.Name, err)
			} else if err != nil {
				p.fail(Failure{Model: m.Name, Reason: gateway.ErrorMessage(err)})
			}
		}
	}
	deadline := h.clock().Add(callBudget)
	for n := 0; p.KeysDone < p.KeysTotal && n < keysPerCall; n++ {
		k := snap.Keys[p.KeysDone]
		if _, _, err := h.Keys.Import(ctx, k.Name, k.Secret, k.CreatedAt); stop(err) {
			return Progress{}, fmt.Errorf("import key %d: %w", p.KeysDone+1, err)
		} else if err != nil {
			p.fail(Failure{Key: keys.HintOf(k.Secret), Reason: gateway.ErrorMessage(err)})
		}
		p.KeyCursor = keyOrder(k.Secret)
		p.KeysDone++
	}
	for n := 0; h.Docs != nil && p.FilesDone < p.FilesTotal && n < files && h.clock().Before(deadline); n++ {
		f := snap.Files[p.FilesDone]
		doc, err := h.file(ctx, src, f)
		switch {
		case stop(err):
			return Progress{}, err // the store or bucket failed: the next call tries this file again
		case err != nil:
			p.fail(Failure{File: f.Name, Reason: gateway.ErrorMessage(err)})
		case doc.Status == gateway.DocFailed:
			p.fail(Failure{File: f.Name, Reason: doc.Reason})
			p.Documents++
		default:
			p.Documents++
		}
		p.FileCursor = rowID(f)
		p.FilesDone++
	}
	p.Done = p.ModelsDone == p.ModelsTotal && p.KeysDone == p.KeysTotal && p.FilesDone == p.FilesTotal
	value, err := json.Marshal(p)
	if err != nil {
		return Progress{}, err
	}
	cond := storage.Cond{IfVersion: version}
	if version == 0 {
		cond = storage.Cond{IfAbsent: true}
	}
	// Two imports at once both did this step; models, keys and documents
	// are the same either way (a name is taken once, a key stored once, a
	// content once), so the loser's progress is simply not stored.
	if _, err := h.Records.Put(ctx, storage.Item{PK: importPK, SK: progressSK, Value: value}, cond); err != nil && !gateway.IsConflict(err) {
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
	if len(u.Filename) > 200 {
		ext := path.Ext(u.Filename)
		u.Filename = cut(strings.TrimSuffix(u.Filename, ext), 200-len(ext)) + ext
	}
	text := f.Text
	if text == "" && f.TextColumn != "" {
		var err error
		if text, err = src.Files.FileText(ctx, f.RowID, f.TextColumn); errors.Is(err, sql.ErrNoRows) {
			return gateway.Document{}, gateway.Errorf(gateway.ENotFound, "Its row is gone from the files table.")
		} else if err != nil {
			return gateway.Document{}, gateway.Errorf(gateway.EInvalid, "Its text could not be read: %v", err)
		}
	}
	if strings.TrimSpace(text) != "" || f.Object == "" {
		// The text is text, whatever the file it came from was (a PDF's
		// extracted text keeps the name manual.pdf).
		u.Data, u.ContentType = []byte(text), "text/plain"
		u.Title = cut(strings.TrimSuffix(f.Name, path.Ext(f.Name)), 200)
		if ext := strings.ToLower(path.Ext(u.Filename)); ext != ".txt" && ext != ".md" && ext != ".markdown" {
			u.Filename = cut(f.Name, 196) + ".txt"
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
