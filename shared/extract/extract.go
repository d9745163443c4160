// Package extract turns uploaded files into plain text for the knowledge
// bases: txt, md, html, pdf, docx, csv and json, with pure-Go readers. A
// file of another type is EUnsupported; a file that cannot be read as its
// type is EInvalid; one that would unpack to more than the limits (a zip
// bomb) is ETooLarge. Nothing here writes anywhere.
package extract

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ledongthuc/pdf"
	"golang.org/x/net/html"

	"github.com/aigateway/aigateway/shared/gateway"
)

// Limits.
const (
	// MaxText bounds the text of one document.
	MaxText = 16 << 20
	// maxUnpacked bounds what a docx may unpack to, and maxRatio how much
	// larger than its compressed size one entry may be.
	maxUnpacked = 64 << 20
	maxRatio    = 200
)

// Types are the supported types, by extension, with their media types.
var Types = map[string]string{
	".txt":  "text/plain",
	".md":   "text/markdown",
	".html": "text/html",
	".htm":  "text/html",
	".pdf":  "application/pdf",
	".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".csv":  "text/csv",
	".json": "application/json",
}

// Kind returns the extension that names how a file is read, from its name
// and, failing that, its content type; or EUnsupported.
func Kind(name, contentType string) (string, error) {
	ext := strings.ToLower(path.Ext(name))
	if ext == ".markdown" {
		ext = ".md"
	}
	if _, ok := Types[ext]; ok {
		return ext, nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	for e, t := range Types {
		if t == mt && e != ".htm" {
			return e, nil
		}
	}
	exts := make([]string, 0, len(Types))
	for e := range Types {
		if e != ".htm" {
			exts = append(exts, strings.TrimPrefix(e, "."))
		}
	}
	slices.Sort(exts)
	return "", gateway.Errorf(gateway.EUnsupported, "%q is not a supported document type; upload one of: %s.", name, strings.Join(exts, ", "))
}

func corrupt(kind string, err error) error {
	return gateway.Errorf(gateway.EInvalid, "The file could not be read as %s: %s.", strings.ToUpper(strings.TrimPrefix(kind, ".")), reason(err))
}

// reason is a short, safe description of a reader's failure.
func reason(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// Text extracts the text of data, a file of kind (from Kind).
func Text(kind string, data []byte) (string, error) {
	return TextAt(kind, bytes.NewReader(data), int64(len(data)))
}

// MaxTextFile bounds a text-format file (txt, md, html, csv, json), which
// is read whole; PDF and DOCX files are read in place, at any size.
const MaxTextFile = 64 << 20

// TextAt extracts the text of the size bytes of r, a file of kind (from
// Kind). PDF and DOCX are read where they lie (a spooled file, say), page
// by page and entry by entry; the text formats, read whole, may be at most
// MaxTextFile bytes.
func TextAt(kind string, r io.ReaderAt, size int64) (string, error) {
	var text string
	var err error
	switch kind {
	case ".pdf":
		text, err = pdfText(r, size)
	case ".docx":
		text, err = docxText(r, size)
	default:
		if size > MaxTextFile {
			return "", gateway.Errorf(gateway.ETooLarge, "A %s file may be at most %d MB.", strings.ToUpper(strings.TrimPrefix(kind, ".")), MaxTextFile>>20)
		}
		data := make([]byte, size)
		if _, err := r.ReadAt(data, 0); err != nil && err != io.EOF {
			return "", fmt.Errorf("read file: %w", err)
		}
		return textOf(kind, data)
	}
	return finish(text, err)
}

func textOf(kind string, data []byte) (string, error) {
	var text string
	var err error
	switch kind {
	case ".txt", ".md":
		text, err = plain(data)
	case ".html", ".htm":
		text, err = htmlText(data)
	case ".csv":
		text, err = csvText(data)
	case ".json":
		text, err = jsonText(data)
	default:
		_, err = Kind("file"+kind, "")
		return "", err
	}
	return finish(text, err)
}

// finish normalises extracted text and checks it is neither empty nor too
// long.
func finish(text string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	if text == "" {
		return "", gateway.Errorf(gateway.EInvalid, "The file holds no text.")
	}
	if len(text) > MaxText {
		return "", gateway.Errorf(gateway.ETooLarge, "The file holds more than %d MB of text.", MaxText>>20)
	}
	return text, nil
}

func plain(data []byte) (string, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return "", gateway.Errorf(gateway.EInvalid, "The text is not UTF-8.")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return "", gateway.Errorf(gateway.EInvalid, "The file is binary, not text.")
	}
	return string(data), nil
}

// htmlText keeps the visible text, one line per block element.
func htmlText(data []byte) (string, error) {
	if _, err := plain(data); err != nil {
		return "", err
	}
	z := html.NewTokenizer(bytes.NewReader(data))
	var b strings.Builder
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() == io.EOF {
				return collapseBlank(b.String()), nil
			}
			return "", corrupt(".html", z.Err())
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "noscript", "template", "svg", "head":
				skip++
			case "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table", "pre", "blockquote":
				b.WriteByte('\n')
			}
			if h := string(name); len(h) == 2 && h[0] == 'h' && h[1] >= '1' && h[1] <= '6' {
				b.WriteString(strings.Repeat("#", int(h[1]-'0')) + " ")
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "noscript", "template", "svg", "head":
				if skip > 0 {
					skip--
				}
			case "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table", "pre", "blockquote":
				b.WriteByte('\n')
			}
		case html.TextToken:
			if skip == 0 {
				b.WriteString(strings.Join(strings.Fields(string(z.Text())), " "))
				b.WriteByte(' ')
			}
		}
	}
}

// collapseBlank trims each line and keeps at most one empty line in a row.
func collapseBlank(s string) string {
	var out []string
	blank := false
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if line == "" {
			if !blank && len(out) > 0 {
				out = append(out, "")
			}
			blank = true
			continue
		}
		blank = false
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// Limits of a PDF's structure: a hostile file can make its page tree or a
// page's /Parent chain loop, or claim billions of pages, and a reader that
// follows it blindly never ends.
const (
	maxPDFPages    = 10000
	maxPDFNodes    = 2 * maxPDFPages
	maxPDFDepth    = 32
	pdfTimeBudget  = 2 * time.Minute
	errPDFTooLarge = "The PDF has more than %d pages, or a page tree that loops."
)

// pdfText reads the text of every page. The reader panics on some
// malformed files; that is a corrupt file, not a crash. The pages are
// found by the gateway's own bounded walk of the page tree, not by the
// page count the file claims.
func pdfText(data io.ReaderAt, size int64) (text string, err error) {
	defer func() {
		if p := recover(); p != nil {
			text, err = "", corrupt(".pdf", fmt.Errorf("%v", p))
		}
	}()
	r, err := pdf.NewReader(data, size)
	if err != nil {
		return "", corrupt(".pdf", err)
	}
	pages, err := pdfPages(r)
	if err != nil {
		return "", err
	}
	start := time.Now()
	var b strings.Builder
	fonts := map[string]*pdf.Font{}
	for _, p := range pages {
		if time.Since(start) > pdfTimeBudget {
			return "", gateway.Errorf(gateway.ETooLarge, "Reading the PDF took longer than %s; it is refused.", pdfTimeBudget)
		}
		// Inherited resources are looked up along /Parent: it must end.
		if !endsWithin(p.V, "Parent", maxPDFDepth) {
			return "", corrupt(".pdf", errors.New("a page's /Parent chain loops"))
		}
		for _, name := range p.Fonts() {
			if _, ok := fonts[name]; !ok {
				f := p.Font(name)
				fonts[name] = &f
			}
		}
		t, err := p.GetPlainText(fonts)
		if err != nil {
			return "", corrupt(".pdf", err)
		}
		b.WriteString(t)
		b.WriteString("\n\n")
		if b.Len() > MaxText {
			break
		}
	}
	return b.String(), nil
}

// pdfPages walks the page tree depth-first from the catalog, in order,
// within maxPDFDepth levels, maxPDFNodes nodes and maxPDFPages pages.
func pdfPages(r *pdf.Reader) ([]pdf.Page, error) {
	var pages []pdf.Page
	nodes := 0
	var walk func(v pdf.Value, depth int) error
	walk = func(v pdf.Value, depth int) error {
		nodes++
		if depth > maxPDFDepth || nodes > maxPDFNodes || len(pages) > maxPDFPages {
			return gateway.Errorf(gateway.ETooLarge, errPDFTooLarge, maxPDFPages)
		}
		switch v.Key("Type").Name() {
		case "Page":
			pages = append(pages, pdf.Page{V: v})
		case "Pages":
			kids := v.Key("Kids")
			for i := range min(kids.Len(), maxPDFNodes) {
				if err := walk(kids.Index(i), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(r.Trailer().Key("Root").Key("Pages"), 0); err != nil {
		return nil, err
	}
	return pages, nil
}

// endsWithin reports whether following key from v reaches nothing within
// n steps.
func endsWithin(v pdf.Value, key string, n int) bool {
	for range n {
		v = v.Key(key)
		if v.IsNull() {
			return true
		}
	}
	return false
}

// docxText reads word/document.xml: paragraphs become lines, headings get
// markdown marks, tables keep one row a line. It refuses archives that
// unpack to too much (zip bombs).
func docxText(data io.ReaderAt, size int64) (string, error) {
	zr, err := zip.NewReader(data, size)
	if err != nil {
		return "", corrupt(".docx", err)
	}
	var total uint64
	var doc *zip.File
	for _, f := range zr.File {
		total += f.UncompressedSize64
		if f.UncompressedSize64 > maxUnpacked || total > maxUnpacked ||
			(f.CompressedSize64 > 0 && f.UncompressedSize64/f.CompressedSize64 > maxRatio) {
			return "", gateway.Errorf(gateway.ETooLarge, "The DOCX unpacks to far more than it weighs; it is refused as a zip bomb.")
		}
		if f.Name == "word/document.xml" {
			doc = f
		}
	}
	if doc == nil {
		return "", corrupt(".docx", errors.New("no word/document.xml"))
	}
	rc, err := doc.Open()
	if err != nil {
		return "", corrupt(".docx", err)
	}
	defer rc.Close()
	// The declared sizes can lie; the reader is bounded anyway.
	dec := xml.NewDecoder(io.LimitReader(rc, maxUnpacked))
	var b, para strings.Builder
	heading := 0
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", corrupt(".docx", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "t":
				inText = true
			case "tab":
				para.WriteByte('\t')
			case "br":
				para.WriteByte('\n')
			case "pStyle":
				for _, a := range t.Attr {
					if a.Name.Local == "val" {
						var n int
						if _, err := fmt.Sscanf(strings.ToLower(a.Value), "heading%d", &n); err == nil && n >= 1 && n <= 6 {
							heading = n
						}
					}
				}
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "t":
				inText = false
			case "p":
				line := strings.TrimSpace(para.String())
				if line != "" {
					if heading > 0 {
						b.WriteString(strings.Repeat("#", heading) + " ")
					}
					b.WriteString(line)
					b.WriteString("\n\n")
				}
				para.Reset()
				heading = 0
			case "tc":
				para.WriteString(" | ")
			}
		case xml.CharData:
			if inText {
				para.Write(t)
			}
		}
	}
	return b.String(), nil
}

// csvText renders each record as "header: value" pairs, one record a line,
// so that a row found alone still says what its values mean.
func csvText(data []byte) (string, error) {
	if _, err := plain(data); err != nil {
		return "", err
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	rows, err := r.ReadAll()
	if err != nil {
		return "", corrupt(".csv", err)
	}
	if len(rows) == 0 {
		return "", nil
	}
	head := rows[0]
	var b strings.Builder
	for _, row := range rows[1:] {
		for i, v := range row {
			if i > 0 {
				b.WriteString("; ")
			}
			if i < len(head) && head[i] != "" {
				b.WriteString(head[i] + ": ")
			}
			b.WriteString(v)
		}
		b.WriteString("\n\n")
	}
	if len(rows) == 1 {
		b.WriteString(strings.Join(head, "; "))
	}
	return b.String(), nil
}

// jsonText renders a JSON document as "path: value" lines.
func jsonText(data []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", corrupt(".json", err)
	}
	if dec.More() {
		return "", corrupt(".json", errors.New("more than one JSON value"))
	}
	var b strings.Builder
	walk(&b, "", v)
	return b.String(), nil
}

func walk(b *strings.Builder, at string, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			walk(b, join(at, k), x[k])
		}
		if at == "" || strings.Count(at, ".") == 0 {
			b.WriteByte('\n')
		}
	case []any:
		for i, e := range x {
			walk(b, fmt.Sprintf("%s[%d]", at, i), e)
		}
	case nil:
	default:
		if at != "" {
			b.WriteString(at + ": ")
		}
		b.WriteString(fmt.Sprint(x))
		b.WriteByte('\n')
	}
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}
