package rag

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// A labelled retrieval set, built here: a catalogue of products in English
// and Chinese (one chunk each, all alike but for name, serial, city and
// numbers) and questions that each have one answering chunk. Two kinds of
// question pull the methods apart, as real questions do:
//
//   - a misspelt (English) or reordered (Chinese) product name: exact
//     keywords miss, similar spelling (the vector stand-in) finds it;
//   - a serial number: all serials share their first digits, so only the
//     exact token tells them apart (keywords), while their spellings look
//     alike to the vector.

type labelled struct {
	question string
	answer   int // chunk index
}

var (
	enNames = []string{"Blaxton", "Corvina", "Dunmore", "Elvaris", "Fenwick", "Galloway", "Hartwell", "Ingram",
		"Jasperline", "Kestrel", "Lorimer", "Montague", "Norwood", "Ostrava", "Pendragon", "Quintara",
		"Rosewell", "Sterling", "Thornbury", "Umbridge", "Valemont", "Winslow", "Yardley", "Zephyra"}
	zhNames = []string{"星河云镜", "松柏竹梅", "风雷电雨", "江湖山海", "金银铜铁", "春夏秋冬", "东南西北", "琴棋书画",
		"日月星辰", "桃李杏梨", "龙虎豹狼", "诗词歌赋", "红橙黄绿", "青蓝紫白", "天地玄黄", "宇宙洪荒",
		"寒来暑往", "鸟兽虫鱼", "米面油盐", "刀枪剑戟", "笔墨纸砚", "花草树木", "锅碗瓢盆", "车马舟船"}
	cities   = []string{"Hangzhou", "Shenzhen", "Chengdu", "Wuhan", "Xiamen", "Qingdao", "Suzhou", "Nanjing"}
	zhCities = []string{"杭州", "深圳", "成都", "武汉", "厦门", "青岛", "苏州", "南京"}
)

// typo misspells an English word: one inner letter dropped.
func typo(rng *rand.Rand, w string) string {
	i := 1 + rng.IntN(len(w)-2)
	return w[:i] + w[i+1:]
}

// reorder swaps the two middle characters of a four-character name.
func reorder(name string) string {
	r := []rune(name)
	r[1], r[2] = r[2], r[1]
	return string(r)
}

func retrievalSet() ([]Chunk, []labelled) {
	rng := rand.New(rand.NewPCG(7, 7))
	var chunks []Chunk
	var qs []labelled
	serials := rng.Perm(100)
	for i, name := range enNames {
		serial := fmt.Sprintf("SN-48217%02d", serials[i])
		chunks = append(chunks, Chunk{Heading: "Product catalogue", Text: fmt.Sprintf(
			"The %s smart speaker (serial %s) ships from the %s warehouse. Its warranty lasts %d years and returns are accepted within %d days of delivery.",
			name, serial, cities[i%len(cities)], 1+i%3, 7+i%4*7)})
		qs = append(qs,
			labelled{fmt.Sprintf("From which warehouse does the %s ship?", typo(rng, name)), i},
			labelled{fmt.Sprintf("For the smart speaker with serial %s, how many years does the warranty last, within how many days of delivery are returns accepted, and from which warehouse does it ship?", serial), i},
		)
	}
	for i, name := range zhNames {
		serial := fmt.Sprintf("SN-48217%02d", serials[len(enNames)+i])
		chunks = append(chunks, Chunk{Heading: "产品目录", Text: fmt.Sprintf(
			"%s智能音箱（编号 %s）由%s仓库发货，保修%d年，签收后%d天内可以退货。",
			name, serial, zhCities[i%len(zhCities)], 1+i%3, 7+i%4*7)})
		qs = append(qs,
			labelled{fmt.Sprintf("%s是从哪里发货的？", reorder(name)), len(enNames) + i},
			labelled{fmt.Sprintf("编号为 %s 的智能音箱保修几年，签收后多少天内可以退货，由哪个仓库发货？", serial), len(enNames) + i},
		)
	}
	return chunks, qs
}

func embed(text string) []float32 {
	v := fakeupstream.Embed(text)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// TestRecallHybridBeatsEither measures recall@5 of each method on the
// labelled set and requires fusion to beat both.
func TestRecallHybridBeatsEither(t *testing.T) {
	chunks, qs := retrievalSet()
	if len(qs) < 40 {
		t.Fatalf("%d questions, want at least 40", len(qs))
	}
	s := &segment{DocID: "catalogue", KB: "default", Title: "Catalogue", Dims: fakeupstream.Dimensions, Chunks: chunks}
	for _, c := range chunks {
		s.Vectors = append(s.Vectors, embed(c.Heading+"\n"+c.Text)...)
	}
	s.prepare()
	v := newView([]*segment{s})
	recall := map[Mode]float64{}
	for _, mode := range []Mode{VectorOnly, KeywordOnly, Hybrid} {
		found := 0
		for _, q := range qs {
			for _, h := range search(v, embed(q.question), q.question, 5, mode) {
				if h.Chunk == q.answer {
					found++
					break
				}
			}
		}
		recall[mode] = float64(found) / float64(len(qs))
	}
	t.Logf("recall@5 over %d questions (Chinese and English): vector %.2f, keyword %.2f, hybrid %.2f",
		len(qs), recall[VectorOnly], recall[KeywordOnly], recall[Hybrid])
	if recall[Hybrid] <= recall[VectorOnly] || recall[Hybrid] <= recall[KeywordOnly] {
		t.Fatalf("hybrid recall %.2f does not beat vector %.2f and keyword %.2f", recall[Hybrid], recall[VectorOnly], recall[KeywordOnly])
	}
}
