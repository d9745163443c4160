package extract_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/extract"
	"github.com/aigateway/aigateway/shared/gateway"
)

// docx builds a minimal Word document with a heading, paragraphs and a table.
func docx(t *testing.T, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := map[string]string{
		"[Content_Types].xml": `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`,
		"word/document.xml": `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` +
			body + `</w:body></w:document>`,
	}
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pdfDoc builds a one-page PDF that shows lines of text in Helvetica, with
// a correct cross-reference table.
func pdfDoc(lines ...string) []byte {
	return pdfWith("<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>", lines...)
}

// pdfWith builds a PDF whose page tree root (object 2) and first page
// (object 3) are as given; object 4 is the page's text, 5 its font.
func pdfWith(pages, page string, lines ...string) []byte {
	var content strings.Builder
	content.WriteString("BT /F1 12 Tf 72 720 Td 14 TL\n")
	for _, l := range lines {
		fmt.Fprintf(&content, "(%s) Tj T*\n", l)
	}
	content.WriteString("ET")
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		pages,
		page,
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len(), content.String()),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		"<< /Type /Pages /Kids [6 0 R] /Parent 6 0 R /Count 1 >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// TestHostilePDFs reads PDFs made to hang a reader: a page tree that holds
// itself, a page whose /Parent chain loops, a /Count of two billion. Each
// fails (or reads what is there) quickly, never hangs.
func TestHostilePDFs(t *testing.T) {
	page := "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
	for name, doc := range map[string][]byte{
		"kids hold the tree":  pdfWith("<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>", page, "hello"),
		"a subtree loops":     pdfWith("<< /Type /Pages /Kids [6 0 R 3 0 R] /Count 2 >>", page, "hello"),
		"parent chain loops":  pdfWith("<< /Type /Pages /Kids [3 0 R] /Count 1 >>", strings.Replace(page, "/Parent 2 0 R", "/Parent 6 0 R", 1), "hello"),
		"two billion pages":   pdfWith("<< /Type /Pages /Kids [3 0 R] /Count 2000000000 >>", page, "hello"),
		"no resources at all": pdfWith("<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 6 0 R /Contents 4 0 R >>", "hello"),
	} {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := extract.Text(".pdf", doc)
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil && gateway.ErrorCode(err) != gateway.EInvalid && gateway.ErrorCode(err) != gateway.ETooLarge {
					t.Fatalf("err = %v, want a clear refusal", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("extraction hangs")
			}
		})
	}
}

func TestTypes(t *testing.T) {
	tests := []struct {
		name  string
		data  []byte
		wants []string
	}{
		{"notes.txt", []byte("\xef\xbb\xbf退货政策：收到商品七天内可退。\r\nSecond line."), []string{"退货政策：收到商品七天内可退。\nSecond line."}},
		{"guide.md", []byte("# 安装\n\n运行 `make run`。"), []string{"# 安装", "make run"}},
		{"page.html", []byte(`<html><head><title>t</title><style>p{}</style></head><body><h2>Refunds</h2><p>Within <b>30 days</b>.</p><script>alert(1)</script><ul><li>one</li><li>two</li></ul></body></html>`),
			[]string{"## Refunds", "Within 30 days .", "one", "two"}},
		{"report.pdf", pdfDoc("Quarterly report", "Revenue grew 12 percent"), []string{"Quarterly report", "Revenue grew 12 percent"}},
		{"policy.docx", docx(t, `<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>保修条款</w:t></w:r></w:p>`+
			`<w:p><w:r><w:t xml:space="preserve">整机保修 </w:t></w:r><w:r><w:t>两年。</w:t></w:r></w:p>`+
			`<w:tbl><w:tr><w:tc><w:p><w:r><w:t>电池</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>一年</w:t></w:r></w:p></w:tc></w:tr></w:tbl>`),
			[]string{"# 保修条款", "整机保修 两年。", "电池", "一年"}},
		{"prices.csv", []byte("product,price\nwidget,9.99\n\"gadget, large\",19.50\n"), []string{"product: widget; price: 9.99", "product: gadget, large; price: 19.50"}},
		{"faq.json", []byte(`{"faq":[{"q":"How long is shipping?","a":"3 days"}],"version":2}`), []string{"faq[0].a: 3 days", "faq[0].q: How long is shipping?", "version: 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, err := extract.Kind(tc.name, "")
			if err != nil {
				t.Fatal(err)
			}
			text, err := extract.Text(kind, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(text, w) {
					t.Fatalf("text %q lacks %q", text, w)
				}
			}
			if strings.Contains(text, "alert(1)") || strings.Contains(text, "p{}") {
				t.Fatalf("script or style leaked: %q", text)
			}
		})
	}
}

func TestKindByContentType(t *testing.T) {
	if k, err := extract.Kind("upload", "application/pdf"); err != nil || k != ".pdf" {
		t.Fatalf("Kind = %q, %v", k, err)
	}
	_, err := extract.Kind("slides.pptx", "application/vnd.ms-powerpoint")
	if gateway.ErrorCode(err) != gateway.EUnsupported || !strings.Contains(err.Error(), "docx, html, json, md, pdf, txt") {
		t.Fatalf("pptx: %v, want 415 listing the supported types", err)
	}
}

func TestCorruptFilesFailCleanly(t *testing.T) {
	good := pdfDoc("text")
	tests := map[string][]byte{
		".txt":  {0xff, 0xfe, 0x00, 'a'},
		".md":   []byte("ok\x00binary"),
		".html": {'<', 'p', '>', 0xff, 0xfe},
		".pdf":  append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("garbage "), 50)...),
		".docx": []byte("PK\x03\x04 not really a zip"),
		".csv":  []byte("a,b\n\"unterminated\n\xff"),
		".json": []byte(`{"a": [1, 2`),
	}
	tests[".pdf#truncated"] = good[:len(good)/2]
	for kind, data := range tests {
		t.Run(kind, func(t *testing.T) {
			text, err := extract.Text(strings.Split(kind, "#")[0], data)
			if gateway.ErrorCode(err) != gateway.EInvalid || text != "" {
				t.Fatalf("Text = %q, %v; want a clean EInvalid", text, err)
			}
		})
	}
	if _, err := extract.Text(".docx", docx(t, `<w:p><w:r><w:t>   </w:t></w:r></w:p>`)); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("empty docx: %v, want EInvalid (no text)", err)
	}
}

func TestZipBombDocxIsRefused(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("word/document.xml")
	w.Write([]byte(`<?xml version="1.0"?><w:document xmlns:w="x"><w:body><w:p><w:r><w:t>`))
	zeros := make([]byte, 1<<20)
	for range 12 {
		w.Write(zeros) // 12 MB that compress to a few KB
	}
	w.Write([]byte(`</w:t></w:r></w:p></w:body></w:document>`))
	zw.Close()
	if buf.Len() > 200<<10 {
		t.Fatalf("the bomb weighs %d bytes; the test wants a small one", buf.Len())
	}
	_, err := extract.Text(".docx", buf.Bytes())
	if gateway.ErrorCode(err) != gateway.ETooLarge || !strings.Contains(err.Error(), "zip bomb") {
		t.Fatalf("zip bomb: %v, want it refused", err)
	}
}
