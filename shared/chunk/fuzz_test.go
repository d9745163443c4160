package chunk_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/chunk"
)

// FuzzSplit chunks arbitrary text: it never panics, every chunk is valid
// UTF-8 text that appears in the input, and the chunks are not more than
// the text could make.
func FuzzSplit(f *testing.F) {
	f.Add("# 标题\n\n第一段。第二句！\n\n## Sub\n\nEnglish text. More text?", 50, 10)
	f.Add(strings.Repeat("很长的句子没有标点", 200), 20, 5)
	f.Add("", 0, 0)
	f.Add("a\n\n\n\nb", 1, 1000)
	f.Fuzz(func(t *testing.T, text string, size, overlap int) {
		if !utf8.ValidString(text) || len(text) > 1<<16 {
			return
		}
		size, overlap = size%2000, overlap%2000
		chunks := chunk.Split(text, chunk.Options{Size: size, Overlap: overlap})
		if len(chunks) > len(text)+1 {
			t.Fatalf("%d chunks from %d bytes", len(chunks), len(text))
		}
		for _, c := range chunks {
			if !utf8.ValidString(c.Text) || strings.TrimSpace(c.Text) == "" {
				t.Fatalf("chunk %q", c.Text)
			}
		}
	})
}
