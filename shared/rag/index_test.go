package rag

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func randomSegments(rng *rand.Rand, chunks, dims, perSeg int) []*segment {
	vocab := make([]string, 5000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%x", rng.Uint32()%0xfffff)
	}
	var segs []*segment
	for start := 0; start < chunks; start += perSeg {
		n := min(perSeg, chunks-start)
		s := &segment{DocID: fmt.Sprintf("doc%06d", start/perSeg), KB: "default", Dims: dims,
			Chunks: make([]Chunk, n), Vectors: make([]float32, n*dims)}
		for i := range n {
			words := make([]string, 30)
			for j := range words {
				words[j] = vocab[int(rng.ExpFloat64()*400)%len(vocab)]
			}
			s.Chunks[i] = Chunk{Text: strings.Join(words, " ")}
		}
		for i := range s.Vectors {
			s.Vectors[i] = float32(rng.NormFloat64())
		}
		s.prepare()
		segs = append(segs, s)
	}
	return segs
}

// BenchmarkSearch measures hybrid retrieval (sign-code scan, exact
// rescoring, BM25, fusion) over 10k and 100k chunks of 1,024 dimensions,
// and reports the median latency and the memory each chunk takes:
//
//	go test ./shared/rag -run '^$' -bench Search -cpu 1 -benchtime 200x
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("chunks=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			segs := randomSegments(rng, n, 1024, 100)
			v := newView(segs)
			runtime.GC()
			runtime.ReadMemStats(&after)
			perChunk := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			queries := make([][]float32, 64)
			for i := range queries {
				queries[i] = make([]float32, 1024)
				for j := range queries[i] {
					queries[i][j] = float32(rng.NormFloat64())
				}
			}
			text := segs[7].Chunks[3].Text[:40]
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				hits := search(v, queries[i%len(queries)], text, 5, Hybrid)
				times = append(times, time.Since(start))
				if len(hits) != 5 {
					b.Fatalf("%d hits", len(hits))
				}
			}
			b.StopTimer()
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(perChunk, "B/chunk")
			runtime.KeepAlive(segs)
		})
	}
}

// TestShortlistKeepsExactNeighbours checks that, above the exact-scan size,
// the sign-code shortlist still finds the true nearest neighbours.
func TestShortlistKeepsExactNeighbours(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	segs := randomSegments(rng, 20_000, 256, 200)
	found, total := 0, 0
	for q := range 30 {
		// Plant five near neighbours of a query point in one segment.
		s := segs[q*3%len(segs)]
		s.Vectors = floats(s) // planted anew, then prepared again
		center := make([]float32, 256)
		for i := range center {
			center[i] = float32(rng.NormFloat64())
		}
		for j := range 5 {
			v := s.Vectors[j*256 : (j+1)*256]
			for i := range v {
				v[i] = center[i] + float32(rng.NormFloat64())*0.3
			}
		}
		s.prepare()
		query := make([]float32, 256)
		for i := range query {
			query[i] = center[i] + float32(rng.NormFloat64())*0.3
		}
		exact := exactTop(segs, query, 5)
		got := vectorSearch(segs, query, 5)
		for _, e := range exact {
			total++
			for _, g := range got {
				if g.ref == e.ref {
					found++
				}
			}
		}
	}
	if recall := float64(found) / float64(total); recall < 0.9 {
		t.Fatalf("shortlist recall@5 = %.2f, want ≥ 0.9", recall)
	}
}

func exactTop(segs []*segment, q []float32, k int) []scored {
	q = slices.Clone(q)
	normalize(q)
	var all []scored
	for _, s := range segs {
		for i := range s.Chunks {
			all = append(all, scored{ref{s, i}, s.cosine(q, i)})
		}
	}
	return best(all, k)
}

func TestTerms(t *testing.T) {
	got := strings.Join(Terms("退货政策 Refund-Policy v2, 七"), "|")
	if want := "退货|货政|政策|refund|policy|v2|七"; got != want {
		t.Fatalf("Terms = %q, want %q", got, want)
	}
}

// floats returns a prepared segment's vectors as float32 again.
func floats(s *segment) []float32 {
	out := make([]float32, len(s.Q))
	for i, x := range s.Q {
		out[i] = float32(x) * s.Scales[i/s.Dims]
	}
	return out
}

// TestQuantisedCosines: int8 vectors give the cosines of the float32 ones
// to within 0.01 (random 1,024-dimension vectors, random queries).
func TestQuantisedCosines(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const dims = 1024
	worst := 0.0
	for range 500 {
		v, q := make([]float32, dims), make([]float32, dims)
		for i := range v {
			v[i], q[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		// Related vectors too, with cosines far from 0.
		if rng.IntN(2) == 0 {
			for i := range q {
				q[i] = v[i] + q[i]*0.5
			}
		}
		normalize(v)
		normalize(q)
		b := make([]int8, dims)
		scale := quantize(v, b)
		exact := float64(dot(q, v))
		worst = max(worst, math.Abs(float64(dotQ(q, b)*scale)-exact))
	}
	if worst > 0.01 {
		t.Fatalf("the int8 cosines are off by up to %.4f", worst)
	}
	t.Logf("int8 cosines off by at most %.4f", worst)
}
