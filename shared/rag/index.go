// Package rag is the knowledge bases: documents ingested into chunks with
// embeddings, and hybrid retrieval over every chunk of the knowledge bases
// a public model searches.
//
// Retrieval fuses two rankings with reciprocal-rank fusion: vector search
// (a flat index: a scan of one-bit sign codes picks a shortlist, which is
// rescored with the vectors, kept as int8) and keyword search (BM25 over
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
	DocID  string
	KB     string
	Title  string
	Dims   int
	Chunks []Chunk
	// Vectors are the embeddings as the upstream gave them (and as
	// segments of earlier releases hold them); prepare turns them into Q
	// and drops them.
	Vectors []float32
	// Q holds each vector normalised and scaled to -127…127 (len(Chunks)
	// *Dims), Scales the scale of each: a quarter of the memory of
	// float32, with cosines off by about 1e-3.
	Q      []int8
	Scales []float32
	Stamp  int64 // when it was written, in Unix nanoseconds

	codes []uint64 // sign bits, words per vector = (Dims+63)/64
	// The keyword index: the numbers of the terms (sorted), where each
	// term's postings start in postings (one more entry: the end).
	termIDs   []uint32
	termStart []uint32
	postings  []posting
	lens      []float32 // tokens per chunk, for BM25
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

// consistent reports whether the segment has a vector for each chunk.
func (s *segment) consistent() bool {
	n := len(s.Chunks) * s.Dims
	return len(s.Vectors) == n || s.Vectors == nil && len(s.Q) == n && len(s.Scales) == len(s.Chunks)
}

// prepare quantises the vectors (normalised first) and builds the codes
// and postings.
func (s *segment) prepare() {
	if s.Vectors != nil {
		s.Q, s.Scales = make([]int8, len(s.Vectors)), make([]float32, len(s.Chunks))
		for i := range s.Chunks {
			v := s.Vectors[i*s.Dims : (i+1)*s.Dims]
			normalize(v)
			s.Scales[i] = quantize(v, s.Q[i*s.Dims:(i+1)*s.Dims])
		}
		s.Vectors = nil
	}
	w := (s.Dims + 63) / 64
	s.codes = make([]uint64, len(s.Chunks)*w)
	for i := range s.Chunks {
		code := s.codes[i*w : (i+1)*w]
		for j, x := range s.Q[i*s.Dims : (i+1)*s.Dims] {
			if x > 0 {
				code[j/64] |= 1 << (j % 64)
			}
		}
	}
	terms := map[string][]posting{}
	s.lens = make([]float32, len(s.Chunks))
	total := 0
	for i, c := range s.Chunks {
		counts := map[string]int32{}
		toks := Terms(c.Heading + "\n" + c.Text)
		for _, t := range toks {
			counts[t]++
		}
		s.lens[i] = float32(len(toks))
		for t, n := range counts {
			terms[t] = append(terms[t], posting{chunk: int32(i), tf: n})
			total++
		}
	}
	// The postings in one array, by term number, without the slack of
	// appending; a term's are found by binary search of termIDs.
	ids := make([]uint32, 0, len(terms))
	byID := make(map[uint32][]posting, len(terms))
	for t, ps := range terms {
		id := vocabulary.id(t)
		ids = append(ids, id)
		byID[id] = ps
	}
	slices.Sort(ids)
	s.termIDs, s.termStart = ids, make([]uint32, len(ids)+1)
	s.postings = make([]posting, 0, total)
	for i, id := range ids {
		s.termStart[i] = uint32(len(s.postings))
		s.postings = append(s.postings, byID[id]...)
	}
	s.termStart[len(ids)] = uint32(len(s.postings))
}

// postingsOf returns the segment's postings of the term numbered id.
func (s *segment) postingsOf(id uint32) []posting {
	i, ok := slices.BinarySearch(s.termIDs, id)
	if !ok {
		return nil
	}
	return s.postings[s.termStart[i]:s.termStart[i+1]]
}

// vocabulary numbers every term the index has seen, so that a segment
// keeps numbers, not a map of strings: a term costs a segment 8 bytes
// besides its postings. Numbers are never given back; the vocabulary
// grows with the distinct terms of the documents, not their size.
var vocabulary = &dictionary{ids: map[string]uint32{}}

type dictionary struct {
	mu  sync.RWMutex
	ids map[string]uint32
}

// id returns the term's number, giving it one if it has none.
func (d *dictionary) id(t string) uint32 {
	d.mu.RLock()
	id, ok := d.ids[t]
	d.mu.RUnlock()
	if ok {
		return id
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.ids[t]; ok {
		return id
	}
	id = uint32(len(d.ids))
	d.ids[strings.Clone(t)] = id
	return id
}

// lookup returns the term's number, if it has one.
func (d *dictionary) lookup(t string) (uint32, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	id, ok := d.ids[t]
	return id, ok
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

// quantize scales v to -127…127 into q and returns the scale.
func quantize(v []float32, q []int8) float32 {
	var m float32
	for _, x := range v {
		m = max(m, float32(math.Abs(float64(x))))
	}
	if m == 0 {
		clear(q)
		return 0
	}
	scale := m / 127
	for i, x := range v {
		q[i] = int8(math.Round(float64(x / scale)))
	}
	return scale
}

// cosine is the similarity of a normalised query with chunk i.
func (s *segment) cosine(q []float32, i int) float64 {
	return float64(dotQ(q, s.Q[i*s.Dims:(i+1)*s.Dims]) * s.Scales[i])
}

func dotQ(a []float32, b []int8) float32 {
	var s0, s1, s2, s3 float32
	n := min(len(a), len(b))
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * float32(b[i])
		s1 += a[i+1] * float32(b[i+1])
		s2 += a[i+2] * float32(b[i+2])
		s3 += a[i+3] * float32(b[i+3])
	}
	for ; i < n; i++ {
		s0 += a[i] * float32(b[i])
	}
	return s0 + s1 + s2 + s3
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
			cos = r.seg.cosine(vector, r.chunk)
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

// distances are the scratch of shortlisted: a Hamming distance per chunk.
var distances sync.Pool

// shortlisted returns the shortlist chunks whose sign codes are nearest
// the query's: one pass computes every distance (at most the bits of a
// code) and counts them by value, which gives the cut; a second takes the
// chunks under it, and at it in scan order until the list is full.
func shortlisted(segs []*segment, q []float32, total int) []ref {
	w := (len(q) + 63) / 64
	qc := make([]uint64, w)
	signs(q, qc)
	dp, _ := distances.Get().(*[]uint16)
	if dp == nil || cap(*dp) < total {
		d := make([]uint16, total)
		dp = &d
	}
	dist := (*dp)[:total]
	defer distances.Put(dp)
	counts := make([]int, w*64+1)
	n := 0
	for _, s := range segs {
		if s.Dims != len(q) {
			continue
		}
		for i := range s.Chunks {
			code := s.codes[i*w : (i+1)*w : (i+1)*w]
			d := 0
			j := 0
			for ; j+4 <= len(code) && j+4 <= len(qc); j += 4 {
				d += bits.OnesCount64(code[j]^qc[j]) + bits.OnesCount64(code[j+1]^qc[j+1]) +
					bits.OnesCount64(code[j+2]^qc[j+2]) + bits.OnesCount64(code[j+3]^qc[j+3])
			}
			for ; j < len(code); j++ {
				d += bits.OnesCount64(code[j] ^ qc[j])
			}
			dist[n] = uint16(d)
			counts[d]++
			n++
		}
	}
	// The cut: every chunk nearer than it, and some at it.
	cut, below := 0, 0
	for cut < len(counts) && below+counts[cut] < shortlist {
		below += counts[cut]
		cut++
	}
	atCut := shortlist - below
	out := make([]ref, 0, shortlist)
	n = 0
	for _, s := range segs {
		if s.Dims != len(q) {
			continue
		}
		for i := range s.Chunks {
			d := int(dist[n])
			n++
			if d < cut || d == cut && atCut > 0 {
				if d == cut {
					atCut--
				}
				out = append(out, ref{s, i})
			}
		}
	}
	return out
}

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
		cands = shortlisted(segs, q, total)
	}
	out := make([]scored, len(cands))
	for i, r := range cands {
		out[i] = scored{r, r.seg.cosine(q, r.chunk)}
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
	segs []*segment
	base []int // the first global chunk number of each segment
	n    int
	avg  float64 // mean chunk length in terms
	// holding lists, by term number, the segments whose chunks hold the
	// term: a keyword search visits those only.
	holding map[uint32][]int32
}

func newView(segs []*segment) *view {
	v := &view{segs: segs, base: make([]int, len(segs))}
	total := 0.0
	for i, s := range segs {
		v.base[i] = v.n
		v.n += len(s.Chunks)
		for _, l := range s.lens {
			total += float64(l)
		}
	}
	if v.n > 0 {
		v.avg = total / float64(v.n)
	}
	// Two passes, so that each list is allocated once, at its size.
	counts := map[uint32]int32{}
	for _, s := range segs {
		for _, id := range s.termIDs {
			counts[id]++
		}
	}
	all := make([]int32, 0, len(segs)*8)
	v.holding = make(map[uint32][]int32, len(counts))
	for si, s := range segs {
		for _, id := range s.termIDs {
			l, ok := v.holding[id]
			if !ok {
				if len(all)+int(counts[id]) > cap(all) {
					all = make([]int32, 0, max(int(counts[id]), 4096))
				}
				start := len(all)
				all = all[:start+int(counts[id])]
				l = all[start : start : start+int(counts[id])]
			}
			v.holding[id] = append(l, int32(si))
		}
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
// touch is a chunk a keyword search scored: its global number and its
// segment.
type touch struct{ g, seg int32 }

// segPostings are one segment's postings of a term.
type segPostings struct {
	seg int
	ps  []posting
}

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
	var touched []touch
	// Only chunks that match a distinctive term (one in at most a third of
	// the chunks) are ranked; common terms still add to their scores. A
	// query of common words alone ranks nothing: its order would be noise,
	// and noise in one ranking is noise in the fusion.
	common := func(df int) bool { return v.n >= 10 && df > v.n/3 }
	n := 0
	seen := map[string]bool{}
	var lists []segPostings
	for _, t := range terms {
		if seen[t] {
			continue
		}
		seen[t] = true
		// Each segment's postings of the term, and how many chunks hold it
		// in all.
		id, known := vocabulary.lookup(t)
		if !known {
			continue
		}
		lists = lists[:0]
		count := 0
		for _, si := range v.holding[id] {
			if ps := v.segs[si].postingsOf(id); len(ps) > 0 {
				lists = append(lists, segPostings{int(si), ps})
				count += len(ps)
			}
		}
		if count == 0 {
			continue
		}
		distinctive := !common(count)
		df := float64(count)
		idf := float32(math.Log(1 + (float64(v.n)-df+0.5)/(df+0.5)))
		norm := float32(bm25K1 * bm25B / v.avg)
		for _, l := range lists {
			s, base := v.segs[l.seg], int32(v.base[l.seg])
			for _, p := range l.ps {
				g := base + p.chunk
				if acc[g] == 0 {
					touched = append(touched, touch{g, int32(l.seg)})
				}
				tf := float32(p.tf)
				acc[g] += idf * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B) + norm*s.lens[p.chunk])
				if distinctive && !anchored[g] {
					anchored[g] = true
					n++
				}
			}
		}
	}
	out := make([]scored, 0, n)
	for _, tc := range touched {
		g, si := tc.g, tc.seg
		if anchored[g] {
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
