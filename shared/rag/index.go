// Package rag is the knowledge bases: documents ingested into chunks with
// embeddings, and hybrid retrieval over every chunk of the knowledge bases
// a public model searches.
//
// Retrieval fuses two rankings with reciprocal-rank fusion: vector search
// (a flat index: a scan of one-bit sign codes picks a shortlist, which is
// rescored exactly with the float32 vectors) and keyword search (BM25 over
// words and CJK bigrams). A segment holds one document's chunks; the index
// is the set of segments of the wanted knowledge bases.
package rag

import (
	"cmp"
	"container/heap"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/aigateway/aigateway/shared/gateway"
)

// segment is one document's chunks, ready to search.
type segment struct {
	DocID   string
	KB      string
	Title   string
	Dims    int
	Chunks  []Chunk
	Vectors []float32 // len(Chunks)*Dims, each vector normalised
	Stamp   int64     // when it was written, in Unix nanoseconds

	codes []uint64 // sign bits, words per vector = (Dims+63)/64
	terms map[string][]posting
	lens  []int // tokens per chunk, for BM25
}

// Chunk is one stored chunk.
type Chunk struct {
	Heading string `json:"heading,omitempty"`
	Text    string `json:"text"`
}

type posting struct {
	chunk int32
	tf    int32
}

// prepare normalises the vectors and builds the codes and postings.
func (s *segment) prepare() {
	w := (s.Dims + 63) / 64
	s.codes = make([]uint64, len(s.Chunks)*w)
	for i := range s.Chunks {
		v := s.Vectors[i*s.Dims : (i+1)*s.Dims]
		normalize(v)
		signs(v, s.codes[i*w:(i+1)*w])
	}
	s.terms = map[string][]posting{}
	s.lens = make([]int, len(s.Chunks))
	for i, c := range s.Chunks {
		counts := map[string]int32{}
		toks := Terms(c.Heading + "\n" + c.Text)
		for _, t := range toks {
			counts[t]++
		}
		s.lens[i] = len(toks)
		for t, n := range counts {
			s.terms[t] = append(s.terms[t], posting{chunk: int32(i), tf: n})
		}
	}
}

func normalize(v []float32) {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
}

func signs(v []float32, out []uint64) {
	for i := range out {
		out[i] = 0
	}
	for i, x := range v {
		if x > 0 {
			out[i/64] |= 1 << (i % 64)
		}
	}
}

func dot(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	n := len(a)
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// Terms returns the keyword terms of s: lower-case words of letters and
// digits, and for text written without spaces (CJK) every pair of adjacent
// characters, or the character alone when it stands alone.
func Terms(s string) []string {
	var out []string
	var word strings.Builder
	var run []rune
	flushWord := func() {
		if word.Len() > 0 {
			out = append(out, word.String())
			word.Reset()
		}
	}
	flushRun := func() {
		switch len(run) {
		case 0:
		case 1:
			out = append(out, string(run))
		default:
			for i := 0; i+1 < len(run); i++ {
				out = append(out, string(run[i:i+2]))
			}
		}
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
			flushWord()
			run = append(run, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			flushRun()
			word.WriteRune(unicode.ToLower(r))
		default:
			flushWord()
			flushRun()
		}
	}
	flushWord()
	flushRun()
	return out
}

// ref names a chunk: its segment and its place there.
type ref struct {
	seg   *segment
	chunk int
}

// Hit is one chunk found, as the domain knows it.
type Hit = gateway.Hit

// Mode selects the rankings a search uses.
type Mode int

// Search modes; Hybrid is what chat uses, the others are for measurement.
const (
	Hybrid Mode = iota
	VectorOnly
	KeywordOnly
)

// rrfK damps the weight of the top ranks in reciprocal-rank fusion (the
// constant of the original paper).
const rrfK = 60

// search ranks the chunks of v for a query and returns the best k.
func search(v *view, vector []float32, text string, k int, mode Mode) []Hit {
	if k <= 0 || v.n == 0 {
		return nil
	}
	segs := v.segs
	depth := max(50, 4*k)
	scores := map[ref]float64{}
	cosines := map[ref]float64{}
	if mode != KeywordOnly && len(vector) > 0 {
		for i, r := range vectorSearch(segs, vector, depth) {
			scores[r.ref] += 1 / float64(rrfK+i+1)
			cosines[r.ref] = r.score
		}
	}
	if mode != VectorOnly {
		for i, r := range keywordSearch(v, text, depth) {
			scores[r.ref] += 1 / float64(rrfK+i+1)
		}
	}
	out := make([]Hit, 0, len(scores))
	for r, sc := range scores {
		c := r.seg.Chunks[r.chunk]
		cos, ok := cosines[r]
		if !ok && len(vector) == r.seg.Dims {
			cos = float64(dot(vector, r.seg.Vectors[r.chunk*r.seg.Dims:(r.chunk+1)*r.seg.Dims]))
		}
		out = append(out, Hit{DocID: r.seg.DocID, KB: r.seg.KB, Title: r.seg.Title, Chunk: r.chunk,
			Heading: c.Heading, Text: c.Text, Score: sc, Cosine: cos})
	}
	slices.SortFunc(out, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Cosine, a.Cosine); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.DocID, b.DocID), cmp.Compare(a.Chunk, b.Chunk))
	})
	return out[:min(k, len(out))]
}

type scored struct {
	ref
	score float64
}

// candHeap keeps the shortlist: the max-heap of the smallest Hamming
// distances seen.
type candHeap []cand

type cand struct {
	dist int
	ref  ref
}

func (h candHeap) Len() int           { return len(h) }
func (h candHeap) Less(i, j int) bool { return h[i].dist > h[j].dist }
func (h candHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)        { *h = append(*h, x.(cand)) }
func (h *candHeap) Pop() any          { old := *h; x := old[len(old)-1]; *h = old[:len(old)-1]; return x }

// shortlist is how many candidates the sign-code scan passes to exact
// rescoring; small indexes are scanned exactly whole.
const shortlist = 512

// vectorSearch returns the depth chunks most similar to the query vector.
func vectorSearch(segs []*segment, q []float32, depth int) []scored {
	q = slices.Clone(q)
	normalize(q)
	total := 0
	for _, s := range segs {
		if s.Dims == len(q) {
			total += len(s.Chunks)
		}
	}
	var cands []ref
	if total <= 4*shortlist {
		for _, s := range segs {
			if s.Dims != len(q) {
				continue
			}
			for i := range s.Chunks {
				cands = append(cands, ref{s, i})
			}
		}
	} else {
		w := (len(q) + 63) / 64
		qc := make([]uint64, w)
		signs(q, qc)
		h := make(candHeap, 0, shortlist+1)
		for _, s := range segs {
			if s.Dims != len(q) {
				continue
			}
			for i := range s.Chunks {
				code := s.codes[i*w : (i+1)*w]
				d := 0
				for j, x := range code {
					d += bits.OnesCount64(x ^ qc[j])
				}
				if len(h) < shortlist {
					heap.Push(&h, cand{d, ref{s, i}})
				} else if d < h[0].dist {
					h[0] = cand{d, ref{s, i}}
					heap.Fix(&h, 0)
				}
			}
		}
		for _, c := range h {
			cands = append(cands, c.ref)
		}
	}
	out := make([]scored, len(cands))
	for i, r := range cands {
		d := r.seg.Dims
		out[i] = scored{r, float64(dot(q, r.seg.Vectors[r.chunk*d:(r.chunk+1)*d]))}
	}
	return best(out, depth)
}

// BM25 parameters.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// view is a set of segments searched together, with what BM25 needs
// across them. It is built when the set changes, not per query.
type view struct {
	segs  []*segment
	base  []int // the first global chunk number of each segment
	n     int
	avg   float64 // mean chunk length in terms
	lens  []float32
	terms map[string][]gposting
}

// gposting is a posting with its global chunk number.
type gposting struct {
	chunk int32
	tf    float32
}

func newView(segs []*segment) *view {
	v := &view{segs: segs, base: make([]int, len(segs)), terms: map[string][]gposting{}}
	total := 0
	for i, s := range segs {
		v.base[i] = v.n
		v.n += len(s.Chunks)
		for _, l := range s.lens {
			total += l
			v.lens = append(v.lens, float32(l))
		}
		for t, ps := range s.terms {
			g := v.terms[t]
			for _, p := range ps {
				g = append(g, gposting{chunk: int32(v.base[i]) + p.chunk, tf: float32(p.tf)})
			}
			v.terms[t] = g
		}
	}
	if v.n > 0 {
		v.avg = float64(total) / float64(v.n)
	}
	return v
}

// accumulators recycles the per-query BM25 score arrays.
var accumulators sync.Pool

// scratch is one query's BM25 working memory, all zero between queries.
type scratch struct {
	acc      []float32
	anchored []bool
}

// keywordSearch returns the depth chunks with the best BM25 scores.
func keywordSearch(v *view, text string, depth int) []scored {
	terms := Terms(text)
	if len(terms) == 0 || v.n == 0 {
		return nil
	}
	sc, _ := accumulators.Get().(*scratch)
	if sc == nil || cap(sc.acc) < v.n {
		sc = &scratch{acc: make([]float32, v.n), anchored: make([]bool, v.n)}
	}
	acc, anchored := sc.acc[:v.n], sc.anchored[:v.n]
	var touched []int32
	// Only chunks that match a distinctive term (one in at most a third of
	// the chunks) are ranked; common terms still add to their scores. A
	// query of common words alone ranks nothing: its order would be noise,
	// and noise in one ranking is noise in the fusion.
	common := func(df int) bool { return v.n >= 10 && df > v.n/3 }
	n := 0
	seen := map[string]bool{}
	for _, t := range terms {
		if seen[t] {
			continue
		}
		seen[t] = true
		ps := v.terms[t]
		if len(ps) == 0 {
			continue
		}
		distinctive := !common(len(ps))
		df := float64(len(ps))
		idf := float32(math.Log(1 + (float64(v.n)-df+0.5)/(df+0.5)))
		norm := float32(bm25K1 * bm25B / v.avg)
		for _, p := range ps {
			g := p.chunk
			if acc[g] == 0 {
				touched = append(touched, g)
			}
			acc[g] += idf * p.tf * (bm25K1 + 1) / (p.tf + bm25K1*(1-bm25B) + norm*v.lens[g])
			if distinctive && !anchored[g] {
				anchored[g] = true
				n++
			}
		}
	}
	out := make([]scored, 0, n)
	for _, g := range touched {
		if anchored[g] {
			si, _ := slices.BinarySearch(v.base, int(g)+1)
			si--
			out = append(out, scored{ref{v.segs[si], int(g) - v.base[si]}, float64(acc[g])})
		}
		acc[g], anchored[g] = 0, false
	}
	accumulators.Put(sc)
	return top(out, depth)
}

// top returns the depth best of s, sorted, without sorting all of s.
func top(s []scored, depth int) []scored {
	if len(s) > 4*depth {
		h := make(scoreHeap, 0, depth+1)
		for _, x := range s {
			if len(h) < depth {
				heap.Push(&h, x)
			} else if x.score > h[0].score {
				h[0] = x
				heap.Fix(&h, 0)
			}
		}
		s = h
	}
	return best(s, depth)
}

// scoreHeap is a min-heap by score.
type scoreHeap []scored

func (h scoreHeap) Len() int           { return len(h) }
func (h scoreHeap) Less(i, j int) bool { return h[i].score < h[j].score }
func (h scoreHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *scoreHeap) Push(x any)        { *h = append(*h, x.(scored)) }
func (h *scoreHeap) Pop() any          { old := *h; x := old[len(old)-1]; *h = old[:len(old)-1]; return x }

// best sorts by score, ties by document and chunk, and keeps depth.
func best(s []scored, depth int) []scored {
	slices.SortFunc(s, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.seg.DocID, b.seg.DocID), cmp.Compare(a.chunk, b.chunk))
	})
	return s[:min(depth, len(s))]
}
