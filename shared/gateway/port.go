package gateway

import (
	"context"
	"encoding/json"
)

// The ports: what the handlers need from upstream APIs, as small
// interfaces. Package upstream implements them over HTTP; tests may
// implement them in memory.

// Event is one server-sent event of an upstream's stream.
type Event struct {
	// Raw is the event as received, its lines and the blank line ending it,
	// with line ends normalised to "\n".
	Raw []byte
	// Data is the event's data: its data fields joined by "\n".
	Data []byte
}

// Done reports whether this is the OpenAI end-of-stream marker.
func (e Event) Done() bool { return string(e.Data) == "[DONE]" }

// Answer is an upstream's successful answer as it is read: one body
// (ReadAll), or a stream of server-sent events pulled one at a time
// (Next). Its read failures are gateway errors (ETimeout when the upstream
// fell silent, EUpstream when it broke off).
type Answer interface {
	// Stream reports whether the answer is a stream of server-sent events.
	Stream() bool
	// ContentType is the answer's media type as the upstream sent it.
	ContentType() string
	// ReadAll reads the whole body, at most limit bytes.
	ReadAll(limit int64) ([]byte, error)
	// Next returns the next event, valid until the following call; io.EOF
	// after the last.
	Next() (Event, error)
	// Ready reports whether another complete event has been received
	// already, so that Next will not wait on the network: a relay flushes
	// when it is false.
	Ready() bool
	// Close releases the answer and its connection.
	Close()
}

// Poster posts a JSON request to an API path of an upstream ("/chat/
// completions") and returns its answer; a refusal or failure is a gateway
// error. It is the chat upstream, and carries what the gateway forwards as
// it came (embeddings).
type Poster interface {
	Post(ctx context.Context, up Upstream, path string, body []byte) (Answer, error)
}

// Embedder returns the embedding of each input, in order, from one
// request to up.
type Embedder interface {
	Embed(ctx context.Context, up Upstream, inputs []string) ([][]float32, error)
}

// Ranked is a document's relevance to a query, by its index in the
// documents asked about.
type Ranked struct {
	Index int
	Score float64
}

// Reranker scores documents against a query: the documents the upstream
// ranked, best first.
type Reranker interface {
	Rerank(ctx context.Context, up Upstream, query string, docs []string) ([]Ranked, error)
}

// ImageRequest asks an image upstream for pictures.
type ImageRequest struct {
	Prompt string
	N      int
	Size   string
	// Options are other members of the images API, passed on as they came.
	Options map[string]json.RawMessage
}

// GeneratedImage is one picture an image upstream answered: a link to it
// (which expires) or its bytes in base64.
type GeneratedImage struct {
	URL, B64JSON, RevisedPrompt string
}

// ImageGenerator asks an image upstream for at most req.N pictures.
type ImageGenerator interface {
	GenerateImages(ctx context.Context, up Upstream, req ImageRequest) ([]GeneratedImage, error)
}
