package extract_test

import (
	"testing"

	"github.com/aigateway/aigateway/shared/extract"
	"github.com/aigateway/aigateway/shared/gateway"
)

// FuzzText extracts arbitrary bytes as each supported type: it never
// panics, and fails only with a user-facing error.
func FuzzText(f *testing.F) {
	kinds := []string{".txt", ".md", ".html", ".pdf", ".docx", ".csv", ".json"}
	f.Add(uint8(3), pdfDoc("hello"))
	f.Add(uint8(3), pdfWith("<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>", "<< /Type /Page /Parent 2 0 R >>", "x"))
	f.Add(uint8(2), []byte("<html><body><h1>T</h1><p>a<b>b</b></p><script>x</script></body></html>"))
	f.Add(uint8(5), []byte("name,age\n\"Ann, B\",30\nBo,\n"))
	f.Add(uint8(6), []byte(`{"a":[1,{"b":"c"}],"d":null}`))
	f.Add(uint8(0), []byte("plain text\r\nline"))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		if kind%uint8(len(kinds)) == 4 {
			data = docxOf(t, data)
		}
		_, err := extract.Text(kinds[int(kind)%len(kinds)], data)
		if code := gateway.ErrorCode(err); code == gateway.EInternal {
			t.Fatalf("internal error: %v", err)
		}
	})
}

// docxOf makes the fuzzer's bytes a DOCX: as they are (a broken archive)
// or as the XML of a well-formed one's body, by the first byte.
func docxOf(t *testing.T, data []byte) []byte {
	if len(data) == 0 || data[0]%2 == 0 {
		return data
	}
	return docx(t, string(data[1:]))
}
