package upstream

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
)

// The typed calls of OpenAI-compatible APIs: the gateway.Embedder,
// gateway.Reranker and gateway.ImageGenerator of the HTTP upstreams.

// Embed returns the embeddings of inputs from up's /embeddings, in one
// request (batching is the caller's).
func (c *Client) Embed(ctx context.Context, up gateway.Upstream, inputs []string) ([][]float32, error) {
	raw, err := c.read(ctx, up, "/embeddings", func(to gateway.Upstream) ([]byte, error) {
		return json.Marshal(map[string]any{"model": to.Model, "input": inputs, "encoding_format": "float"})
	}, 64<<20)
	if err != nil {
		return nil, err
	}
	var answer struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	bad := gateway.Errorf(gateway.EUpstream, "The embedding upstream's answer is not an embeddings list for the inputs.")
	if err := json.Unmarshal(raw, &answer); err != nil || len(answer.Data) != len(inputs) {
		return nil, bad
	}
	out := make([][]float32, len(inputs))
	for _, d := range answer.Data {
		if d.Index < 0 || d.Index >= len(out) || len(d.Embedding) == 0 || out[d.Index] != nil {
			return nil, bad
		}
		out[d.Index] = d.Embedding
	}
	return out, nil
}

// Rerank scores docs against query through up's /rerank (the SiliconFlow
// and Jina shape: results of index and relevance_score), best first.
func (c *Client) Rerank(ctx context.Context, up gateway.Upstream, query string, docs []string) ([]gateway.Ranked, error) {
	raw, err := c.read(ctx, up, "/rerank", func(to gateway.Upstream) ([]byte, error) {
		return json.Marshal(map[string]any{"model": to.Model, "query": query, "documents": docs, "top_n": len(docs)})
	}, 16<<20)
	if err != nil {
		return nil, err
	}
	var answer struct {
		Results []struct {
			Index int     `json:"index"`
			Score float64 `json:"relevance_score"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return nil, gateway.Errorf(gateway.EUpstream, "The rerank upstream's answer could not be read.")
	}
	out := make([]gateway.Ranked, 0, len(answer.Results))
	seen := make(map[int]bool, len(answer.Results))
	for _, r := range answer.Results { // an index answered twice counts once
		if r.Index >= 0 && r.Index < len(docs) && !seen[r.Index] && !math.IsNaN(r.Score) {
			seen[r.Index] = true
			out = append(out, gateway.Ranked{Index: r.Index, Score: r.Score})
		}
	}
	slices.SortStableFunc(out, func(a, b gateway.Ranked) int { return cmp.Compare(b.Score, a.Score) })
	return out, nil
}

// GenerateImages asks up's /images/generations for pictures. It speaks
// both dialects: OpenAI's (n, size; data[].url or data[].b64_json) and
// SiliconFlow's (batch_size, image_size; images[].url), and returns no
// more pictures than asked for.
func (c *Client) GenerateImages(ctx context.Context, up gateway.Upstream, req gateway.ImageRequest) ([]gateway.GeneratedImage, error) {
	n := max(req.N, 1)
	answer, err := c.read(ctx, up, "/images/generations", func(to gateway.Upstream) ([]byte, error) {
		body := map[string]any{"model": to.Model, "prompt": req.Prompt, "n": n, "size": req.Size}
		for k, v := range req.Options {
			if _, set := body[k]; !set {
				body[k] = v
			}
		}
		if siliconFlow(to.BaseURL) {
			// SiliconFlow names these its own way.
			body["image_size"], body["batch_size"] = req.Size, n
			delete(body, "n")
			delete(body, "size")
		}
		return json.Marshal(body)
	}, 64<<20)
	if err != nil {
		return nil, err
	}
	var parsed struct {
		Images []struct {
			URL string `json:"url"`
		} `json:"images"`
		Data []struct {
			URL           string `json:"url"`
			B64JSON       string `json:"b64_json"`
			RevisedPrompt string `json:"revised_prompt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(answer, &parsed); err != nil {
		return nil, gateway.Errorf(gateway.EUpstream, "The image upstream's answer could not be read.")
	}
	// One shape: OpenAI's data[] when present (an answer may carry
	// SiliconFlow's images[] as well, the same pictures).
	var out []gateway.GeneratedImage
	for _, d := range parsed.Data {
		out = append(out, gateway.GeneratedImage{URL: d.URL, B64JSON: d.B64JSON, RevisedPrompt: d.RevisedPrompt})
	}
	if len(out) == 0 {
		for _, im := range parsed.Images {
			out = append(out, gateway.GeneratedImage{URL: im.URL})
		}
	}
	if len(out) == 0 {
		return nil, gateway.Errorf(gateway.EUpstream, "The image upstream answered no image.")
	}
	return out[:min(len(out), n)], nil
}

// read posts the body build makes and reads the whole answer, at most limit bytes.
func (c *Client) read(ctx context.Context, up gateway.Upstream, path string, build func(gateway.Upstream) ([]byte, error), limit int64) ([]byte, error) {
	resp, err := c.send(ctx, up, path, build)
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	return resp.ReadAll(limit)
}

func siliconFlow(base string) bool {
	u, err := url.Parse(base)
	return err == nil && (strings.HasSuffix(u.Hostname(), "siliconflow.cn") || strings.HasSuffix(u.Hostname(), "siliconflow.com"))
}

// Once posts body to up's path once: not through the router, not retried
// (a channel's test). The caller closes the answer.
func (c *Client) Once(ctx context.Context, up gateway.Upstream, path string, body []byte) (gateway.Answer, error) {
	resp, _, err := c.post(ctx, up, path, body)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Models returns the model IDs up's GET /models lists, sorted.
func (c *Client) Models(ctx context.Context, up gateway.Upstream) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, min(c.cfg.FirstByteTimeout, time.Minute))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, Endpoint(up.BaseURL, "/models"), nil)
	if err != nil {
		return nil, gateway.Errorf(gateway.EInvalid, "The channel's base URL is not usable.")
	}
	req.Header.Set("Accept", "application/json")
	if up.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+string(up.APIKey))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, gateway.Errorf(gateway.ETimeout, "The upstream did not list its models in time.")
		}
		return nil, &gateway.Error{Code: gateway.EUpstream, Message: "The upstream could not be reached.", Cause: err, Fault: gateway.FaultChannel}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, statusError(resp, string(up.APIKey))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&list); err != nil {
		return nil, gateway.Errorf(gateway.EUpstream, "The upstream's model list could not be read.")
	}
	ids := make([]string, 0, len(list.Data))
	for _, d := range list.Data {
		if d.ID != "" && len(d.ID) <= gateway.MaxNameLen {
			ids = append(ids, d.ID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
