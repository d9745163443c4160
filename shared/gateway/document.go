package gateway

import "time"

// Document statuses.
const (
	DocUploading  = "uploading" // waiting for its direct upload
	DocProcessing = "processing"
	DocReady      = "ready"
	DocFailed     = "failed"
)

// Document is an uploaded file or text in a knowledge base.
type Document struct {
	ID            string `json:"id"`
	KnowledgeBase string `json:"knowledge_base"`
	Title         string `json:"title"`
	Filename      string `json:"filename,omitempty"`
	ContentType   string `json:"content_type"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256"`
	Status        string `json:"status"`
	Reason        string `json:"reason,omitempty"`
	Chunks        int    `json:"chunks"`
	// Object is the blob that holds the original file.
	Object    string    `json:"object,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// LeaseUntil is when the ingestion running on a processing document
	// is past its deadline: after it, the work is taken to have died (a
	// timeout, a crash) and may be retried or failed.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// Attempts counts the ingestions started on a direct upload.
	Attempts int `json:"attempts,omitempty"`
}

// Upload is a document to add: a file, or pasted text (no Filename).
type Upload struct {
	KnowledgeBase string
	Title         string
	Filename      string
	ContentType   string
	Data          []byte
}

// PendingUpload describes a file the client will upload directly to the
// blob store.
type PendingUpload struct {
	KnowledgeBase string
	Title         string
	Filename      string
	ContentType   string
	Size          int64
}

// Hit is one chunk of a knowledge base found for a question.
type Hit struct {
	DocID   string  `json:"document_id"`
	KB      string  `json:"knowledge_base"`
	Title   string  `json:"title"`
	Chunk   int     `json:"chunk"`
	Heading string  `json:"heading,omitempty"`
	Text    string  `json:"text"`
	Score   float64 `json:"score"`            // the fused score
	Cosine  float64 `json:"cosine,omitempty"` // the vector similarity
	Rerank  float64 `json:"rerank,omitempty"` // the reranker's score, when used
}
