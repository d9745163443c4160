package awslocal

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a SAM template read as a plain tree: mappings are
// map[string]any, sequences []any, scalars strings, and short-form
// intrinsics (!Ref X, !GetAtt A.B, !Sub "…") become their long forms
// ({"Ref": "X"}, {"Fn::GetAtt": "A.B"}, {"Fn::Sub": "…"}). It sees what
// typed parsers drop (Globals, ResponseTransferMode).
type Template struct {
	Root map[string]any
}

// LoadTemplate reads the template at path.
func LoadTemplate(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(doc.Content) != 1 {
		return nil, fmt.Errorf("parse %s: not one YAML document", path)
	}
	root, ok := tree(doc.Content[0]).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parse %s: the template is not a mapping", path)
	}
	return &Template{Root: root}, nil
}

func tree(n *yaml.Node) any {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = tree(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = tree(c)
		}
		v = s
	case yaml.AliasNode:
		v = tree(n.Alias)
	default:
		v = n.Value
	}
	if tag, ok := strings.CutPrefix(n.Tag, "!"); ok && !strings.HasPrefix(tag, "!") {
		name := "Fn::" + tag
		if tag == "Ref" || tag == "Condition" {
			name = tag
		}
		return map[string]any{name: v}
	}
	return v
}

// Get walks the tree along path (mapping keys) and returns what is there,
// or nil.
func (t *Template) Get(path ...string) any {
	var cur any = t.Root
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// String returns the string at path, or "".
func (t *Template) String(path ...string) string {
	s, _ := t.Get(path...).(string)
	return s
}

// Resources returns the logical IDs of the resources of type typ, sorted.
func (t *Template) Resources(typ string) []string {
	res, _ := t.Get("Resources").(map[string]any)
	var ids []string
	for id, r := range res {
		if m, ok := r.(map[string]any); ok && m["Type"] == typ {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// APIEvent is one Api event of a function.
type APIEvent struct {
	Function, Name   string
	Path, Method     string
	TransferMode     string // "STREAM" or "" (buffered)
	TimeoutInMillis  string
	RestAPIReference any
}

// APIEvents returns every Api event of every function.
func (t *Template) APIEvents() []APIEvent {
	var out []APIEvent
	for _, fn := range t.Resources("AWS::Serverless::Function") {
		evs, _ := t.Get("Resources", fn, "Properties", "Events").(map[string]any)
		for name, e := range evs {
			em, _ := e.(map[string]any)
			if em["Type"] != "Api" {
				continue
			}
			p, _ := em["Properties"].(map[string]any)
			str := func(k string) string { s, _ := p[k].(string); return s }
			out = append(out, APIEvent{Function: fn, Name: name, Path: str("Path"), Method: strings.ToUpper(str("Method")),
				TransferMode: str("ResponseTransferMode"), TimeoutInMillis: str("TimeoutInMillis"), RestAPIReference: p["RestApiId"]})
		}
	}
	slices.SortFunc(out, func(a, b APIEvent) int { return strings.Compare(a.Function+a.Name, b.Function+b.Name) })
	return out
}

// BinaryMediaTypes returns the API's binary media types, "~1" unescaped.
func (t *Template) BinaryMediaTypes(api string) []string {
	list, _ := t.Get("Resources", api, "Properties", "BinaryMediaTypes").([]any)
	var out []string
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, strings.ReplaceAll(s, "~1", "/"))
		}
	}
	return out
}
