package jsgateway

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestOddColumns: files tables with columns named like rowid, quoted
// names, or no rowid at all are read, and their texts imported.
func TestOddColumns(t *testing.T) {
	ctx := context.Background()
	for name, ddl := range map[string]string{
		"quotes":  `CREATE TABLE files ("we""ird" TEXT, "Content-Text" TEXT, "file name" TEXT); INSERT INTO files VALUES ('x', 'hello there', 'a.txt')`,
		"_rowid":  `CREATE TABLE files (_rowid TEXT, content TEXT, filename TEXT); INSERT INTO files VALUES ('zz', 'hello there', 'a.txt')`,
		"rowid":   `CREATE TABLE files (rowid TEXT, content TEXT, filename TEXT); INSERT INTO files VALUES (NULL, 'hello there', 'a.txt')`,
		"norowid": `CREATE TABLE files (id TEXT PRIMARY KEY, content TEXT, filename TEXT) WITHOUT ROWID; INSERT INTO files VALUES ('i', 'hello there', 'a.txt')`,
	} {
		t.Run(name, func(t *testing.T) {
			db, _ := sql.Open("sqlite", filepath.Join(t.TempDir(), "old.db"))
			defer db.Close()
			if _, err := db.Exec(ddl); err != nil {
				t.Fatal(err)
			}
			src := SQLFiles{DB: db}
			rows, err := src.FileRows(ctx)
			if err != nil {
				t.Fatal(err)
			}
			f, ok := fileOf(rows[0], 0)
			t.Logf("row %v → %+v %v", rows[0], f, ok)
			text := f.Text
			if text == "" {
				if text, err = src.FileText(ctx, f.RowID, f.TextColumn); err != nil {
					t.Fatalf("FileText: %v", err)
				}
			}
			if text != "hello there" {
				t.Fatalf("text %q", text)
			}
		})
	}
}
