package chat

import (
	"encoding/json"
	"net/http"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
)

// ListConversations serves GET /v1/conversations: the calling key's
// conversations, most recent first.
func (h *Handler) ListConversations(w http.ResponseWriter, r *http.Request) error {
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	cs, err := h.Conversations.List(r.Context(), key.ID)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []gateway.Conversation{}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"object": "list", "data": cs})
	return nil
}

// GetConversation serves GET /v1/conversations/{id}: one of the calling key's
// conversations with its messages; another key's is a 404, as if it did not
// exist.
func (h *Handler) GetConversation(w http.ResponseWriter, r *http.Request) error {
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	c, msgs, err := h.Conversations.Get(r.Context(), key.ID, r.PathValue("id"))
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []json.RawMessage{}
	}
	respond.JSON(w, http.StatusOK, struct {
		gateway.Conversation
		Messages []json.RawMessage `json:"messages"`
	}{c, msgs})
	return nil
}

// DeleteConversation serves DELETE /v1/conversations/{id}: the calling
// key's conversation; another key's is a 404.
func (h *Handler) DeleteConversation(w http.ResponseWriter, r *http.Request) error {
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := h.Conversations.Delete(r.Context(), key.ID, id); err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"id": id, "object": "conversation.deleted", "deleted": true})
	return nil
}
