package chunk_test

import (
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/chunk"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		s    string
		want int
	}{
		{"", 0},
		{"退货政策", 4},
		{"hello world", 4}, // 5 bytes → 2, 5 bytes → 2
		{"退货 policy。", 5},  // 2 + 2 + 1
		{"a, b", 3},        // a, comma, b
		{"internationalization", 5},
	}
	for _, tc := range tests {
		if got := chunk.Tokens(tc.s); got != tc.want {
			t.Errorf("Tokens(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

func TestSplitRespectsSentencesHeadingsAndSize(t *testing.T) {
	zh := strings.Repeat("我们的退货政策非常简单。收到商品后七天内可以申请退货！运费由谁承担？", 8)
	en := strings.Repeat("Shipping takes three days. Express shipping takes one day. ", 10)
	text := "# 退货\n\n" + zh + "\n\n# Shipping\n\n" + en + "\n\nPrices are listed in section 2.5 of the manual."
	opt := chunk.Options{Size: 60, Overlap: 15}
	chunks := chunk.Split(text, opt)
	if len(chunks) < 4 {
		t.Fatalf("%d chunks, want several", len(chunks))
	}
	sawZH, sawEN := false, false
	for i, c := range chunks {
		if c.Index != i || c.Tokens > opt.Size || c.Tokens != chunk.Tokens(c.Text) {
			t.Fatalf("chunk %d = %+v (size %d)", i, c, opt.Size)
		}
		switch c.Heading {
		case "退货":
			sawZH = true
			if strings.Contains(c.Text, "Shipping") {
				t.Fatalf("a chunk spans two sections: %q", c.Text)
			}
			// Chinese chunks end at a sentence end.
			if r := []rune(c.Text); !strings.ContainsRune("。！？", r[len(r)-1]) {
				t.Fatalf("chunk %d ends mid-sentence: %q", i, c.Text)
			}
		case "Shipping":
			sawEN = true
			if !strings.HasSuffix(c.Text, ".") {
				t.Fatalf("chunk %d ends mid-sentence: %q", i, c.Text)
			}
			if strings.Contains(c.Text, "2.") && !strings.Contains(c.Text, "2.5 of the manual.") {
				t.Fatalf("a decimal point was taken for a sentence end: %q", c.Text)
			}
		default:
			t.Fatalf("chunk %d has heading %q", i, c.Heading)
		}
	}
	if !sawZH || !sawEN {
		t.Fatal("a section was lost")
	}
	// Consecutive chunks of a section overlap.
	for i := 1; i < len(chunks); i++ {
		if chunks[i].Heading != chunks[i-1].Heading {
			continue
		}
		first := strings.SplitAfterN(chunks[i].Text, "。", 2)[0]
		if chunks[i].Heading == "Shipping" {
			first = strings.SplitAfterN(chunks[i].Text, ". ", 2)[0]
		}
		if !strings.Contains(chunks[i-1].Text, strings.TrimSpace(first)) {
			t.Fatalf("chunk %d does not start with the end of chunk %d:\n%q\n%q", i, i-1, chunks[i-1].Text, chunks[i].Text)
		}
	}
}

func TestSplitLongSentenceAndNoText(t *testing.T) {
	long := strings.Repeat("字", 250)
	chunks := chunk.Split(long, chunk.Options{Size: 100, Overlap: 10})
	if len(chunks) != 3 || chunks[0].Tokens != 100 || chunks[2].Tokens != 50 {
		t.Fatalf("chunks = %+v", chunks)
	}
	if got := chunk.Split(" \n\n# Empty\n\n ", chunk.Defaults); len(got) != 0 {
		t.Fatalf("chunks of no text = %+v", got)
	}
}
