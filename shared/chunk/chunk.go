// Package chunk splits a document's text into overlapping chunks for
// retrieval. It respects markdown headings (a chunk never spans two
// sections, and carries its section's heading), paragraphs and sentence
// ends in Chinese and English (。！？；!?; and ". "), and counts its sizes
// in estimated tokens.
package chunk

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Options size the chunks, in tokens.
type Options struct {
	Size    int // the most tokens in a chunk
	Overlap int // tokens a chunk repeats from the one before it
}

// Defaults fit the common 512-token embedding models with room to spare.
var Defaults = Options{Size: 400, Overlap: 60}

// Chunk is one piece of a document.
type Chunk struct {
	Index   int    `json:"index"`
	Heading string `json:"heading,omitempty"`
	Text    string `json:"text"`
	Tokens  int    `json:"tokens"`
}

// cjk reports whether r is written without spaces between words (Chinese,
// Japanese kana, Korean), where a rune is about a token.
func cjk(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) ||
		(r >= 0x3000 && r <= 0x303f) || (r >= 0xff00 && r <= 0xffef)
}

// Tokens estimates the tokens of s as common BPE tokenizers count them: a
// CJK character is one, a run of letters or digits one per four bytes
// (rounded up), any other symbol one; spaces are free.
func Tokens(s string) int {
	n, run := 0, 0
	flush := func() {
		if run > 0 {
			n += (run + 3) / 4
			run = 0
		}
	}
	for _, r := range s {
		switch {
		case cjk(r):
			flush()
			n++
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			run += utf8.RuneLen(r)
		case unicode.IsSpace(r):
			flush()
		default:
			flush()
			n++
		}
	}
	flush()
	return n
}

// Split cuts text into chunks of at most opt.Size tokens.
func Split(text string, opt Options) []Chunk {
	if opt.Size <= 0 {
		opt = Defaults
	}
	if opt.Overlap < 0 || opt.Overlap >= opt.Size {
		opt.Overlap = opt.Size / 8
	}
	var out []Chunk
	for _, sec := range sections(text) {
		var sents []string
		for _, p := range sec.paragraphs {
			ss := sentences(p)
			if len(ss) > 0 {
				// A paragraph's end is a place to cut; keep it visible.
				ss[len(ss)-1] += "\n"
			}
			for _, s := range ss {
				sents = append(sents, hardSplit(s, opt.Size)...)
			}
		}
		out = append(out, pack(sec.heading, sents, opt)...)
	}
	for i := range out {
		out[i].Index = i
	}
	return out
}

type section struct {
	heading    string
	paragraphs []string
}

// sections splits text at markdown headings, then into paragraphs.
func sections(text string) []section {
	var out []section
	cur := section{}
	var para strings.Builder
	endPara := func() {
		if p := strings.TrimSpace(para.String()); p != "" {
			cur.paragraphs = append(cur.paragraphs, p)
		}
		para.Reset()
	}
	inFence := false
	for line := range strings.Lines(text) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			inFence = !inFence
		}
		if !inFence && isHeading(trimmed) {
			endPara()
			if len(cur.paragraphs) > 0 {
				out = append(out, cur)
			}
			cur = section{heading: strings.TrimSpace(strings.TrimLeft(trimmed, "#"))}
			continue
		}
		if trimmed == "" && !inFence {
			endPara()
			continue
		}
		para.WriteString(line)
	}
	endPara()
	if len(cur.paragraphs) > 0 {
		out = append(out, cur)
	}
	return out
}

func isHeading(line string) bool {
	n := 0
	for n < len(line) && line[n] == '#' {
		n++
	}
	return n >= 1 && n <= 6 && len(line) > n && line[n] == ' '
}

// sentences splits a paragraph after sentence ends and line breaks.
func sentences(p string) []string {
	var out []string
	start := 0
	rs := []rune(p)
	flushAt := func(i int) {
		if s := strings.TrimSpace(string(rs[start:i])); s != "" {
			out = append(out, s)
		}
		start = i
	}
	for i, r := range rs {
		switch {
		case r == '\n':
			flushAt(i + 1)
		case strings.ContainsRune("。！？；!?;", r):
			// Closing quotes and brackets stay with their sentence.
			j := i + 1
			for j < len(rs) && strings.ContainsRune("”’」』）)\"'", rs[j]) {
				j++
			}
			if j == i+1 {
				flushAt(j)
			}
		case r == '.' && (i+1 == len(rs) || unicode.IsSpace(rs[i+1])) && i > 0 && !unicode.IsDigit(rs[i-1]):
			flushAt(i + 1)
		}
	}
	flushAt(len(rs))
	return out
}

// hardSplit cuts a sentence longer than size tokens at rune boundaries,
// preferring spaces.
func hardSplit(s string, size int) []string {
	if Tokens(s) <= size {
		return []string{s}
	}
	var out []string
	rs := []rune(s)
	for len(rs) > 0 {
		lo, hi := 1, len(rs)
		for lo < hi { // the longest prefix within size
			mid := (lo + hi + 1) / 2
			if Tokens(string(rs[:mid])) <= size {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		cut := lo
		if cut < len(rs) {
			for k := cut; k > cut/2; k-- {
				if unicode.IsSpace(rs[k-1]) {
					cut = k
					break
				}
			}
		}
		out = append(out, strings.TrimSpace(string(rs[:cut])))
		rs = rs[cut:]
	}
	return out
}

// pack fills chunks with whole sentences, each chunk starting with the last
// sentences of the one before, up to opt.Overlap tokens.
func pack(heading string, sents []string, opt Options) []Chunk {
	var out []Chunk
	var cur []string
	tokens := 0
	emit := func() {
		text := strings.TrimSpace(strings.Join(cur, " "))
		text = strings.ReplaceAll(text, "\n ", "\n")
		if text != "" {
			out = append(out, Chunk{Heading: heading, Text: text, Tokens: Tokens(text)})
		}
	}
	for _, s := range sents {
		t := Tokens(s)
		if tokens+t > opt.Size && len(cur) > 0 {
			emit()
			// Carry the tail over, while it fits the overlap and leaves
			// room for the sentence that did not fit.
			var keep []string
			kept := 0
			for i := len(cur) - 1; i >= 0; i-- {
				kt := Tokens(cur[i])
				if kept+kt > opt.Overlap || kept+kt+t > opt.Size {
					break
				}
				keep = append([]string{cur[i]}, keep...)
				kept += kt
			}
			cur, tokens = keep, kept
		}
		cur = append(cur, s)
		tokens += t
	}
	if len(cur) > 0 {
		emit()
	}
	return out
}
