package rag

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/aigateway/aigateway/shared/chunk"
	"github.com/aigateway/aigateway/shared/gateway"
)

// Settings supplies the current settings.
type Settings interface {
	Get(ctx context.Context) (gateway.Settings, error)
}

// Service indexes documents' text into the library and retrieves from it,
// through the RAG upstream (embeddings, rerank).
type Service struct {
	settings Settings
	embedder gateway.Embedder
	reranker gateway.Reranker
	lib      *Library
}

// NewService returns a Service over lib, embedding with e and reranking
// with r.
func NewService(lib *Library, st Settings, e gateway.Embedder, r gateway.Reranker) *Service {
	return &Service{settings: st, embedder: e, reranker: r, lib: lib}
}

// Index chunks text, the text of doc, embeds the chunks through the RAG
// upstream and makes them searchable under doc's knowledge base; it
// returns the number of chunks.
func (s *Service) Index(ctx context.Context, doc gateway.Document, text string) (int, error) {
	st, err := s.settings.Get(ctx)
	if err != nil {
		return 0, err
	}
	chunks := chunk.Split(text, chunk.Options{Size: st.RAG.ChunkSize, Overlap: st.RAG.ChunkOverlap})
	if len(chunks) == 0 {
		return 0, gateway.Errorf(gateway.EInvalid, "The document holds no text.")
	}
	inputs := make([]string, len(chunks))
	seg := &segment{DocID: doc.ID, KB: doc.KnowledgeBase, Title: doc.Title, Chunks: make([]Chunk, len(chunks))}
	for i, c := range chunks {
		seg.Chunks[i] = Chunk{Heading: c.Heading, Text: c.Text}
		inputs[i] = strings.TrimSpace(doc.Title + "\n" + c.Heading + "\n" + c.Text)
	}
	vectors, err := s.embed(ctx, st.RAG, inputs)
	if err != nil {
		return 0, err
	}
	seg.Dims = len(vectors[0])
	seg.Vectors = make([]float32, 0, len(vectors)*seg.Dims)
	for _, v := range vectors {
		if len(v) != seg.Dims {
			return 0, gateway.Errorf(gateway.EUpstream, "The embedding upstream answered vectors of different lengths.")
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return 0, gateway.Errorf(gateway.EUpstream, "The embedding upstream answered a vector that is not a number.")
			}
		}
		seg.Vectors = append(seg.Vectors, v...)
	}
	if err := s.lib.add(ctx, seg); err != nil {
		return 0, err
	}
	return len(chunks), nil
}

// Remove takes a document's chunks out of the library.
func (s *Service) Remove(ctx context.Context, kb, docID string) error {
	return s.lib.remove(ctx, kb, docID)
}

// Embedding batches: inputs per request, and requests at once.
const (
	embedBatch       = 16
	embedConcurrency = 4
)

// embed returns the embeddings of inputs from the RAG upstream, in
// batches, a few at once; the upstream client retries each batch.
func (s *Service) embed(ctx context.Context, rag gateway.RAGSettings, inputs []string) ([][]float32, error) {
	if rag.Model == "" {
		return nil, gateway.Errorf(gateway.EUnavailable, "The embedding model (rag.model) is not set.")
	}
	up := gateway.Upstream{BaseURL: rag.BaseURL, APIKey: rag.APIKey, Model: rag.Model}
	out := make([][]float32, len(inputs))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, embedConcurrency)
	var wg sync.WaitGroup
	for start := 0; start < len(inputs); start += embedBatch {
		end := min(start+embedBatch, len(inputs))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			vs, err := s.embedder.Embed(ctx, up, inputs[start:end])
			if err != nil {
				cancel(err)
				return
			}
			copy(out[start:end], vs)
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// Retrieve returns the chunks of the knowledge bases kbs that best answer
// query, under the RAG settings: top_k of them, reranked by rerank_model
// when set, none below min_score (the reranker's score when reranking, the
// cosine similarity otherwise).
func (s *Service) Retrieve(ctx context.Context, kbs []string, query string, rag gateway.RAGSettings) ([]Hit, error) {
	if len(kbs) == 0 || strings.TrimSpace(query) == "" || rag.Model == "" {
		return nil, nil
	}
	v, err := s.lib.view(ctx, kbs)
	if err != nil {
		return nil, err
	}
	if v.n == 0 {
		return nil, nil
	}
	vecs, err := s.embed(ctx, rag, []string{query})
	if err != nil {
		return nil, err
	}
	k := max(rag.TopK, 1)
	depth := k
	if rag.RerankModel != "" {
		depth = max(4*k, 20)
	}
	hits := search(v, vecs[0], query, depth, Hybrid)
	if rag.RerankModel != "" && len(hits) > 1 {
		if hits, err = s.rerank(ctx, rag, query, hits); err != nil {
			return nil, err
		}
	}
	out := hits[:0]
	for _, h := range hits {
		score := h.Cosine
		if rag.RerankModel != "" {
			score = h.Rerank
		}
		if score >= rag.MinScore {
			out = append(out, h)
		}
	}
	return out[:min(k, len(out))], nil
}

// rerank orders hits by the RAG upstream's /rerank (the SiliconFlow and
// Jina shape: results of index and relevance_score).
func (s *Service) rerank(ctx context.Context, rag gateway.RAGSettings, query string, hits []Hit) ([]Hit, error) {
	docs := make([]string, len(hits))
	for i, h := range hits {
		docs[i] = h.Text
	}
	up := gateway.Upstream{BaseURL: rag.BaseURL, APIKey: rag.APIKey, Model: rag.RerankModel}
	ranked, err := s.reranker.Rerank(ctx, up, query, docs)
	if err != nil {
		return nil, err
	}
	out := make([]Hit, 0, len(ranked))
	for _, r := range ranked {
		if r.Index >= 0 && r.Index < len(hits) {
			h := hits[r.Index]
			h.Rerank = r.Score
			out = append(out, h)
		}
	}
	slices.SortStableFunc(out, func(a, b Hit) int {
		switch {
		case a.Rerank > b.Rerank:
			return -1
		case a.Rerank < b.Rerank:
			return 1
		}
		return 0
	})
	return out, nil
}
