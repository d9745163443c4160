package admin

import (
	"net/http"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
)

type modelList struct {
	Object string          `json:"object"`
	Data   []gateway.Model `json:"data"`
}

func (h *Handler) ListModels(w http.ResponseWriter, r *http.Request) error {
	ms, err := h.Catalog.List(r.Context())
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []gateway.Model{}
	}
	respond.JSON(w, http.StatusOK, modelList{Object: "list", Data: ms})
	return nil
}

// PutModel creates or replaces the public model named in the path. The
// default model's name is taken: it is changed through the settings.
func (h *Handler) PutModel(w http.ResponseWriter, r *http.Request) error {
	var m gateway.Model
	if err := respond.DecodeJSON(w, r, h.maxBody, &m); err != nil {
		return err
	}
	name := r.PathValue("name")
	if m.Name != "" && m.Name != name {
		e := gateway.Errorf(gateway.EInvalid, "The body names the model %q but the path %q.", m.Name, name)
		e.Param = "name"
		return e
	}
	m.Name = name
	if m.KnowledgeBases == nil {
		m.KnowledgeBases = []string{}
	}
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	if name == st.PublicModelName() {
		return gateway.Errorf(gateway.EConflict, "%q is the default public model; change it in the settings.", name)
	}
	if err := h.Catalog.Put(r.Context(), m); err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, m)
	return nil
}

func (h *Handler) DeleteModel(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := h.Catalog.Delete(r.Context(), name); err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"name": name, "deleted": true})
	return nil
}
