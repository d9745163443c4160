package documents

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
)

// Retriever retrieves from the knowledge bases, as a chat does.
type Retriever interface {
	Retrieve(ctx context.Context, kbs []string, query string, rag gateway.RAGSettings) ([]gateway.Hit, error)
}

// Settings supplies the current settings.
type Settings interface {
	Get(ctx context.Context) (gateway.Settings, error)
}

// Retrieval serves the knowledge bases' "try retrieval" box: what a
// question pulls in, with scores, as a chat would get it.
type Retrieval struct {
	Knowledge Retriever
	Settings  Settings
	// Documents tells the knowledge bases that exist: each list searched
	// keeps a view in memory, so only bases with documents are.
	Documents interface {
		List(ctx context.Context, kb string) ([]gateway.Document, error)
	}
}

// Try serves POST /admin/api/documents/search: {"query", "knowledge_bases"
// (default ["default"]), "top_k" (default the settings')} → the chunks a
// chat asking query would get, best first, with their scores (the fused
// score, the cosine similarity and, with a rerank model, the reranker's).
func (s *Retrieval) Try(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Query          string   `json:"query"`
		KnowledgeBases []string `json:"knowledge_bases"`
		TopK           int      `json:"top_k"`
	}
	if err := respond.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Query) == "" || len(req.Query) > 8<<10 {
		e := gateway.Errorf(gateway.EInvalid, "query is a question of 1 to 8192 bytes.")
		e.Param = "query"
		return e
	}
	if len(req.KnowledgeBases) == 0 {
		req.KnowledgeBases = []string{"default"}
	}
	if len(req.KnowledgeBases) > 32 {
		return gateway.Errorf(gateway.EInvalid, "At most 32 knowledge bases.")
	}
	slices.Sort(req.KnowledgeBases)
	req.KnowledgeBases = slices.Compact(req.KnowledgeBases)
	for _, kb := range req.KnowledgeBases {
		if err := gateway.CheckKnowledgeBase(kb); err != nil {
			return err
		}
		docs, err := s.Documents.List(r.Context(), kb)
		if err != nil {
			return err
		}
		if len(docs) == 0 {
			e := gateway.Errorf(gateway.ENotFound, "The knowledge base %q has no documents.", kb)
			e.Param = "knowledge_bases"
			return e
		}
	}
	st, err := s.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	if st.RAG.Model == "" {
		return gateway.Errorf(gateway.EConflict, "Retrieval is off: set the embedding model (rag.model) first.")
	}
	rag := st.RAG
	if req.TopK != 0 {
		if req.TopK < 1 || req.TopK > gateway.MaxTopK {
			e := gateway.Errorf(gateway.EInvalid, "top_k must be between 1 and %d.", gateway.MaxTopK)
			e.Param = "top_k"
			return e
		}
		rag.TopK = req.TopK
	}
	hits, err := s.Knowledge.Retrieve(r.Context(), req.KnowledgeBases, req.Query, rag)
	if err != nil {
		return err
	}
	if hits == nil {
		hits = []gateway.Hit{}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"object": "list", "data": hits, "top_k": rag.TopK,
		"min_score": rag.MinScore, "rerank_model": rag.RerankModel})
	return nil
}
