// Package jsgateway reads what the JavaScript gateway this one succeeds
// left in its Cloudflare bindings, so that setup can bring it over: the
// upstream settings, system prompt and public model from Workers KV, the
// client keys (hashed on import, so clients keep working), the models list,
// and the texts and files of its D1 files table and R2 bucket (made
// documents). Nothing of the old data is modified.
//
// That gateway's storage layout was never written down; the reader expects
// what its tutorial shows (KV keys AI_CONFIG, RAG_CONFIG, SYSTEM_CONFIG,
// models and API_KEYS holding JSON; a D1 table files) and is tolerant in the
// details: field names in camelCase or snake_case and a few synonyms, keys
// as a list of strings, of objects or as a map, files whose content is in a
// column or in R2. What it cannot read it reports rather than guesses.
package jsgateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/storage"
)

// The KV keys of the JavaScript gateway.
const (
	KeyAI     = "AI_CONFIG"
	KeyRAG    = "RAG_CONFIG"
	KeySystem = "SYSTEM_CONFIG"
	KeyModels = "models"
	KeyAPI    = "API_KEYS"
)

// FileTable reads the old D1 files table. FileRows returns its rows, each
// as column → value (int64, float64, string, []byte or nil), without the
// text of the columns that hold a file's text (textColumns), which it
// gives as "<column>#len" → length instead, so that reading the table
// costs little however large the texts; FileText reads one such text. A
// missing table is no rows.
type FileTable interface {
	FileRows(ctx context.Context) ([]map[string]any, error)
	FileText(ctx context.Context, rowID any, column string) (string, error)
}

// textColumns are the names (folded) of the columns that hold a file's
// text.
var textColumns = []string{"content", "text", "contenttext", "textcontent", "body"}

// maxFiles bounds the rows read from the old files table.
const maxFiles = 20000

// Source is where the JavaScript gateway's data is: its KV namespace, its
// D1 files table and its R2 bucket (the same bindings this gateway runs on).
type Source struct {
	KV    storage.KV
	Files FileTable
	Blobs storage.Blobs
}

// OldKey is a client key of the old gateway.
type OldKey struct {
	Secret    string
	Name      string
	CreatedAt time.Time
}

// OldFile is a row of the old files table: its text, or the R2 object that
// holds its content.
type OldFile struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type,omitempty"`
	Text        string `json:"-"` // the text, when FileRows gave it
	TextColumn  string `json:"-"` // or where FileText reads it
	RowID       any    `json:"-"`
	Object      string `json:"object,omitempty"`
}

// Snapshot is what the old gateway left, read and interpreted.
type Snapshot struct {
	Found            bool             // any of the KV keys or a file exists
	AI, RAG          gateway.Upstream // empty fields were not found
	AdminPassword    string           // as SYSTEM_CONFIG holds it: plain or a SHA-256
	RerankModel      string
	SystemPrompt     string
	PublicModel      string
	MaxConversations int
	Drawing          *bool
	ImageModel       string
	Models           []gateway.Model // public models from the models list
	Keys             []OldKey
	Files            []OldFile
	Warnings         []string // what could not be read, in words
}

// Summary is what the setup page shows before the import: no secrets.
type Summary struct {
	Found       bool     `json:"found"`
	AIBaseURL   string   `json:"ai_base_url,omitempty"`
	AIModel     string   `json:"ai_model,omitempty"`
	RAGModel    string   `json:"rag_model,omitempty"`
	PublicModel string   `json:"public_model,omitempty"`
	Models      int      `json:"models"`
	Keys        int      `json:"keys"`
	Files       int      `json:"files"`
	Warnings    []string `json:"warnings,omitempty"`
}

// Summary describes s without its secrets.
func (s Snapshot) Summary() Summary {
	return Summary{Found: s.Found, AIBaseURL: shown(s.AI.BaseURL), AIModel: s.AI.Model, RAGModel: s.RAG.Model,
		PublicModel: s.PublicModel, Models: len(s.Models), Keys: len(s.Keys), Files: len(s.Files), Warnings: s.Warnings}
}

// Owns reports whether proof is the old gateway's AI upstream key or its
// admin password (as SYSTEM_CONFIG holds it, in the clear or as a
// SHA-256): what only its owner knows, so that a stranger who reaches a
// fresh deployment first, or a user holding one of its client keys,
// cannot take its data.
func (s Snapshot) Owns(proof string) bool {
	proof = strings.TrimSpace(proof)
	if proof == "" {
		return false
	}
	eq := func(secret string) int {
		if secret == "" {
			return 0
		}
		return subtle.ConstantTimeCompare([]byte(secret), []byte(proof))
	}
	sum := sha256.Sum256([]byte(proof))
	hashed := func(secret string) int {
		if secret == "" {
			return 0
		}
		return subtle.ConstantTimeCompare([]byte(strings.ToLower(secret)), []byte(hex.EncodeToString(sum[:])))
	}
	return eq(string(s.AI.APIKey))|eq(s.AdminPassword)|hashed(s.AdminPassword) == 1
}

// shown is a URL as the setup page may show it: no user, password, query
// or fragment, which may hold credentials.
func shown(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Apply sets what the snapshot holds into st, leaving the rest.
func (s Snapshot) Apply(st *gateway.Settings) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&st.AI.BaseURL, s.AI.BaseURL)
	set((*string)(&st.AI.APIKey), string(s.AI.APIKey))
	set(&st.AI.Model, s.AI.Model)
	set(&st.RAG.BaseURL, s.RAG.BaseURL)
	set((*string)(&st.RAG.APIKey), string(s.RAG.APIKey))
	set(&st.RAG.Model, s.RAG.Model)
	set(&st.RAG.RerankModel, s.RerankModel)
	set(&st.SystemPrompt, s.SystemPrompt)
	set(&st.PublicModel, s.PublicModel)
	set(&st.ImageModel, s.ImageModel)
	if s.MaxConversations > 0 {
		st.MaxConversations = s.MaxConversations
		st.ServerMemory = true
	}
	if s.Drawing != nil {
		st.DrawingEnabled = *s.Drawing
	}
}

// Read reads the old gateway's data from src. A source with none of it is
// a Snapshot with Found false.
func Read(ctx context.Context, src Source) (Snapshot, error) {
	var s Snapshot
	get := func(key string) (any, error) {
		raw, err := src.KV.Get(ctx, key)
		if gateway.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		s.Found = true
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			// A bare string value (not JSON) is kept as it is.
			return string(raw), nil
		}
		return v, nil
	}
	ai, err := get(KeyAI)
	if err != nil {
		return s, err
	}
	if m, ok := ai.(map[string]any); ok {
		s.AI = upstreamOf(m)
		s.PublicModel = str(m, "publicModel", "customModelName", "modelName", "externalModel", "exposedModel")
		s.SystemPrompt = str(m, "systemPrompt", "prompt")
	} else if ai != nil {
		s.Warnings = append(s.Warnings, KeyAI+" is not a JSON object; the AI upstream was not imported.")
	}
	rag, err := get(KeyRAG)
	if err != nil {
		return s, err
	}
	if m, ok := rag.(map[string]any); ok {
		s.RAG = upstreamOf(m)
		s.RAG.Model = cmpOr(str(m, "embeddingModel", "embedModel"), s.RAG.Model)
		s.RerankModel = str(m, "rerankModel", "rerank")
	} else if rag != nil {
		s.Warnings = append(s.Warnings, KeyRAG+" is not a JSON object; the RAG upstream was not imported.")
	}
	sys, err := get(KeySystem)
	if err != nil {
		return s, err
	}
	if m, ok := sys.(map[string]any); ok {
		s.SystemPrompt = cmpOr(str(m, "systemPrompt", "prompt", "defaultSystemPrompt"), s.SystemPrompt)
		s.PublicModel = cmpOr(str(m, "modelName", "customModelName", "publicModel", "externalModelName", "exposedModelName", "customModel"), s.PublicModel)
		s.MaxConversations = num(m, "maxConversations", "maxConversation", "maxHistory", "conversationLimit")
		s.Drawing = boolean(m, "enableDrawing", "drawingEnabled", "enableImage", "imageEnabled", "enablePainting", "drawEnabled", "enableDraw")
		s.ImageModel = str(m, "imageModel", "drawingModel", "drawModel")
		s.AdminPassword = str(m, "adminPassword", "password", "adminPass", "passwordHash")
	} else if sys != nil {
		s.Warnings = append(s.Warnings, KeySystem+" is not a JSON object; the system settings were not imported.")
	}
	models, err := get(KeyModels)
	if err != nil {
		return s, err
	}
	s.sanitize()
	// The public model of the settings is served already.
	s.Models = slices.DeleteFunc(modelsOf(models, s.AI.Model), func(m gateway.Model) bool { return m.Name == s.PublicModel })
	if models != nil && len(s.Models) == 0 {
		s.Warnings = append(s.Warnings, "No model names were found in "+KeyModels+".")
	}
	keys, err := get(KeyAPI)
	if err != nil {
		return s, err
	}
	// In a stable order, so that the import resumes where it was however
	// the old list is ordered.
	s.Keys = keysOf(keys)
	sort.Slice(s.Keys, func(i, j int) bool { return keyOrder(s.Keys[i].Secret) < keyOrder(s.Keys[j].Secret) })
	if keys != nil && len(s.Keys) == 0 {
		s.Warnings = append(s.Warnings, "No sk- keys were found in "+KeyAPI+".")
	}
	if src.Files != nil {
		rows, err := src.Files.FileRows(ctx)
		if err != nil {
			return s, fmt.Errorf("read the files table: %w", err)
		}
		if len(rows) > maxFiles {
			s.Warnings = append(s.Warnings, fmt.Sprintf("The files table has %d rows; the first %d are imported.", len(rows), maxFiles))
			rows = rows[:maxFiles]
		}
		for i, row := range rows {
			f, ok := fileOf(row, i)
			if !ok {
				s.Warnings = append(s.Warnings, fmt.Sprintf("File %q has neither text nor an R2 object; it is skipped.", f.Name))
				continue
			}
			s.Files = append(s.Files, f)
			s.Found = true
		}
	}
	return s, nil
}

// sanitize drops or bounds the settings the gateway would refuse, saying
// so in the warnings, so that setup does not fail on them.
func (s *Snapshot) sanitize() {
	warn := func(format string, args ...any) { s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...)) }
	if s.PublicModel != "" && gateway.CheckModelName(s.PublicModel) != nil {
		warn("The model name %.40q is not usable as a public model name; it was not imported.", s.PublicModel)
		s.PublicModel = ""
	}
	if len(s.SystemPrompt) > gateway.MaxSystemPromptLen {
		warn("The system prompt is longer than %d KB; it was not imported.", gateway.MaxSystemPromptLen>>10)
		s.SystemPrompt = ""
	}
	if s.MaxConversations > gateway.MaxConversationsCap {
		warn("At most %d conversations are kept per key; the old %d was lowered.", gateway.MaxConversationsCap, s.MaxConversations)
		s.MaxConversations = gateway.MaxConversationsCap
	}
	for _, f := range []*string{&s.ImageModel, &s.RerankModel, &s.AI.Model, &s.RAG.Model} {
		if len(*f) > gateway.MaxNameLen || strings.ContainsAny(*f, "\x00\r\n") {
			warn("The model name %.40q is too long; it was not imported.", *f)
			*f = ""
		}
	}
	for _, u := range []*gateway.Upstream{&s.AI, &s.RAG} {
		if u.BaseURL != "" && gateway.CheckBaseURL(u.BaseURL) != nil {
			warn("The base URL %.60q is not one the gateway takes (an http(s) URL without credentials or query); it was not imported.", shown(u.BaseURL))
			u.BaseURL = ""
		}
		if len(u.APIKey) > 4096 || strings.ContainsAny(string(u.APIKey), "\x00\r\n") {
			warn("An API key is not usable as one; it was not imported.")
			u.APIKey = ""
		}
	}
}

// fold is a field name without case, '_' or '-'.
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// field returns the value of the first of names m has, matched by fold.
func field(m map[string]any, names ...string) (any, bool) {
	for _, n := range names {
		for k, v := range m {
			if fold(k) == fold(n) && v != nil {
				return v, true
			}
		}
	}
	return nil, false
}

func str(m map[string]any, names ...string) string {
	v, _ := field(m, names...)
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case []byte:
		return strings.TrimSpace(string(x))
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func num(m map[string]any, names ...string) int {
	v, _ := field(m, names...)
	switch x := v.(type) {
	case float64:
		return max(int(x), 0)
	case string:
		n, _ := strconv.Atoi(strings.TrimSpace(x))
		return max(n, 0)
	}
	return 0
}

func boolean(m map[string]any, names ...string) *bool {
	v, ok := field(m, names...)
	if !ok {
		return nil
	}
	var b bool
	switch x := v.(type) {
	case bool:
		b = x
	case string:
		b = x == "true" || x == "1" || x == "on"
	case float64:
		b = x != 0
	default:
		return nil
	}
	return &b
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func upstreamOf(m map[string]any) gateway.Upstream {
	return gateway.Upstream{
		BaseURL: strings.TrimRight(str(m, "baseUrl", "baseURL", "base_url", "apiBase", "apiUrl", "endpoint", "url", "host"), "/"),
		APIKey:  gateway.Secret(str(m, "apiKey", "key", "token", "secret")),
		Model:   str(m, "model", "modelName", "defaultModel"),
	}
}

// modelsOf reads the models list: names, or objects naming a model and
// perhaps the upstream model and a system prompt. A name that is the
// upstream model itself (a cached /v1/models list) is not a public model.
func modelsOf(v any, upstream string) []gateway.Model {
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case map[string]any:
		if list, ok := field(x, "models", "data", "list"); ok {
			return modelsOf(list, upstream)
		}
		for name, val := range x {
			if m, ok := val.(map[string]any); ok {
				m = clone(m)
				m["name"] = name
				items = append(items, m)
			} else {
				items = append(items, name)
			}
		}
	}
	seen := map[string]bool{}
	var out []gateway.Model
	for _, it := range items {
		m := gateway.Model{UpstreamModel: upstream, KnowledgeBases: []string{"default"}}
		switch x := it.(type) {
		case string:
			m.Name = strings.TrimSpace(x)
		case map[string]any:
			m.Name = str(x, "name", "id", "modelName", "alias")
			m.UpstreamModel = cmpOr(str(x, "upstreamModel", "upstream", "target", "model", "baseModel", "realModel"), upstream)
			m.SystemPrompt = str(x, "systemPrompt", "prompt")
			if b := boolean(x, "enableDrawing", "drawing", "drawingEnabled"); b != nil {
				m.Drawing = *b
			}
		}
		if m.Name == "" || m.Name == m.UpstreamModel && m.SystemPrompt == "" || seen[m.Name] || m.Validate() != nil {
			continue
		}
		seen[m.Name] = true
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// keysOf finds the sk- keys in the API_KEYS value: a list of strings, a
// list of objects, or a map by key or by ID.
func keysOf(v any) []OldKey {
	var out []OldKey
	seen := map[string]bool{}
	add := func(k OldKey) {
		if keys.CheckImported(k.Secret) != nil || seen[k.Secret] {
			return
		}
		seen[k.Secret] = true
		k.Name = keyName(k.Name)
		if k.Name == "" {
			k.Name = "imported " + keys.HintOf(k.Secret)
		}
		if k.CreatedAt.Year() < 2000 || k.CreatedAt.After(time.Now().AddDate(1, 0, 0)) {
			k.CreatedAt = time.Time{} // unknown: the import's time
		}
		out = append(out, k)
	}
	fromObject := func(m map[string]any, secret string) {
		k := OldKey{Secret: cmpOr(str(m, "key", "apiKey", "secret", "value", "token", "sk"), secret),
			Name: str(m, "name", "note", "description", "remark", "label")}
		k.CreatedAt = timeOf(m)
		if b := boolean(m, "revoked", "disabled", "deleted"); b != nil && *b {
			return
		}
		if b := boolean(m, "active", "enabled"); b != nil && !*b {
			return
		}
		add(k)
	}
	switch x := v.(type) {
	case string:
		add(OldKey{Secret: strings.TrimSpace(x)})
	case []any:
		for _, it := range x {
			switch y := it.(type) {
			case string:
				add(OldKey{Secret: strings.TrimSpace(y)})
			case map[string]any:
				fromObject(y, "")
			}
		}
	case map[string]any:
		if list, ok := field(x, "keys", "apiKeys", "data", "list"); ok {
			return keysOf(list)
		}
		names := make([]string, 0, len(x))
		for k := range x {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			switch y := x[k].(type) {
			case map[string]any:
				secret := ""
				if strings.HasPrefix(k, "sk-") {
					secret = k
				}
				fromObject(y, secret)
			default:
				if strings.HasPrefix(k, "sk-") {
					add(OldKey{Secret: k})
				} else if s, ok := y.(string); ok {
					add(OldKey{Secret: s, Name: k})
				}
			}
		}
	}
	return out
}

// keyOrder orders the old keys: the hex SHA-256 of the secret, which
// tells nothing of it.
func keyOrder(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// keyName makes an old key's name usable: one line, at most
// gateway.MaxNameLen bytes.
func keyName(name string) string {
	name = strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }), " ")
	return strings.TrimSpace(cut(name, gateway.MaxNameLen))
}

// cut returns s as valid UTF-8 of at most n bytes, cut between characters.
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// timeOf reads a creation time: Unix seconds or milliseconds, or RFC 3339.
func timeOf(m map[string]any) time.Time {
	v, _ := field(m, "createdAt", "created", "createTime", "created_at", "uploadTime", "uploadedAt", "timestamp")
	switch x := v.(type) {
	case float64:
		if x < 0 || x > 1e14 || x != x {
			return time.Time{}
		}
		if x > 1e11 {
			return time.UnixMilli(int64(x)).UTC()
		}
		return time.Unix(int64(x), 0).UTC()
	case int64:
		if x < 0 || x > 1e14 {
			return time.Time{}
		}
		if x > 1e11 {
			return time.UnixMilli(x).UTC()
		}
		return time.Unix(x, 0).UTC()
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t.UTC()
			}
		}
	}
	return time.Time{}
}

// fileOf reads one row of the files table; i numbers rows without an ID.
func fileOf(row map[string]any, i int) (OldFile, bool) {
	f := OldFile{
		ID:          str(row, "id", "fileId", "uuid", "_rowid"),
		Name:        str(row, "filename", "fileName", "name", "originalName", "title"),
		ContentType: str(row, "contentType", "mimeType", "mime", "type", "fileType"),
		Object:      str(row, "r2Key", "objectKey", "fileKey", "storageKey", "key", "r2Path", "path"),
		RowID:       row["_rowid"],
	}
	if v, ok := f.RowID.(float64); ok {
		f.RowID = int64(v) // D1 gives numbers as JavaScript does
	}
	for _, c := range textColumns {
		for k, v := range row {
			switch {
			case f.Text != "" || f.TextColumn != "":
			case fold(k) == c:
				if t, ok := v.(string); ok && strings.TrimSpace(t) != "" {
					f.Text = t
				}
			case fold(strings.TrimSuffix(k, "#len")) == c && strings.HasSuffix(k, "#len"):
				if n, ok := v.(int64); ok && n > 0 {
					f.TextColumn = strings.TrimSuffix(k, "#len")
				} else if n, ok := v.(float64); ok && n > 0 {
					f.TextColumn = strings.TrimSuffix(k, "#len")
				}
			}
		}
	}
	if !strings.Contains(f.ContentType, "/") {
		f.ContentType = "" // a kind ("text", "file"), not a media type
	}
	if f.ID == "" {
		f.ID = "row" + strconv.Itoa(i+1)
	}
	if f.Name == "" {
		f.Name = "file " + f.ID
	}
	return f, f.Text != "" || f.TextColumn != "" || f.Object != ""
}
