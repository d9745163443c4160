package messages

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAgentShapes: what Claude Code sends translates as the upstream
// should read it: text blocks apart, a tool result's image after the tool
// message, a thinking-only turn left out, consecutive assistant messages
// one turn.
func TestAgentShapes(t *testing.T) {
	roles := func(chat []byte) (string, []map[string]any) {
		var c struct{ Messages []map[string]any }
		json.Unmarshal(chat, &c)
		var r []string
		for _, m := range c.Messages {
			r = append(r, m["role"].(string))
		}
		return strings.Join(r, ","), c.Messages
	}
	req, _ := Parse([]byte(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>be brief</system-reminder>"},{"type":"text","text":"Fix the bug"}]}]}`))
	if _, msgs := roles(req.Chat); msgs[0]["content"] != "<system-reminder>be brief</system-reminder>\n\nFix the bug" {
		t.Errorf("text blocks: %s", req.Chat)
	}
	req, _ = Parse([]byte(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"look"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"a.png"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}]}]}`))
	if r, msgs := roles(req.Chat); r != "user,assistant,tool,user" || !strings.Contains(mustString(msgs[3]), "data:image/png;base64,iVBORw0KGgo=") {
		t.Errorf("an image in a tool result: %s", req.Chat)
	}
	req, _ = Parse([]byte(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"s"}]},{"role":"user","content":"b"}]}`))
	if r, _ := roles(req.Chat); r != "user,user" {
		t.Errorf("a thinking-only turn: %s", req.Chat)
	}
	req, _ = Parse([]byte(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{}}]},{"role":"assistant","content":"and then"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}]}`))
	if r, msgs := roles(req.Chat); r != "user,assistant,tool" || msgs[1]["content"] != "and then" {
		t.Errorf("consecutive assistant messages: %s", req.Chat)
	}
}

func mustString(v any) string { b, _ := json.Marshal(v); return string(b) }
