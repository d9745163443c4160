// Package disk implements the Blobs storage role as files in a folder, for
// the local target.
//
// Each blob is one file under objects/, named by its key. The file starts
// with a small header that holds the content type, so that body and type
// change together: a Put writes a temporary file under tmp/ and renames it
// into place, and a crash never leaves half a blob behind.
package disk

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

var _ storage.Blobs = (*Blobs)(nil)

// Blobs stores blobs as files under a root folder.
type Blobs struct {
	objects, tmp string
}

// magic starts every blob file; the format is magic, a big-endian uint16
// length, the content type, then the body.
const magic = "AGB1"

// New returns Blobs rooted at dir, creating the folder if needed and
// removing temporary files a crash left behind.
func New(dir string) (*Blobs, error) {
	b := &Blobs{objects: filepath.Join(dir, "objects"), tmp: filepath.Join(dir, "tmp")}
	if err := os.RemoveAll(b.tmp); err != nil {
		return nil, fmt.Errorf("clear blob temp folder: %w", err)
	}
	for _, d := range []string{b.objects, b.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create blob folder: %w", err)
		}
	}
	return b, nil
}

func (b *Blobs) path(key string) string {
	return filepath.Join(b.objects, filepath.FromSlash(key))
}

// Put implements storage.Blobs.
func (b *Blobs) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	if len(contentType) > 1024 {
		return storage.Invalid("content type is longer than 1024 bytes")
	}
	tmp, err := os.CreateTemp(b.tmp, "put-*")
	if err != nil {
		return storage.Unavailable("put blob "+key, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	w := bufio.NewWriterSize(tmp, 256<<10)
	w.WriteString(magic)
	w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(contentType))))
	w.WriteString(contentType)
	if _, err := io.Copy(w, storage.ContextReader(ctx, r)); err != nil {
		tmp.Close()
		return fmt.Errorf("write blob %s: %w", key, err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return storage.Unavailable("write blob "+key, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return storage.Unavailable("sync blob "+key, err)
	}
	if err := tmp.Close(); err != nil {
		return storage.Unavailable("close blob "+key, err)
	}
	dst := b.path(key)
	// A concurrent Delete may remove a folder, left empty, between its
	// making and the rename: make it again.
	for attempt := 0; ; attempt++ {
		err := os.MkdirAll(filepath.Dir(dst), 0o700)
		switch {
		case errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist):
			return storage.Invalid("blob key %q runs through an existing blob", key)
		case err == nil:
			if err = os.Rename(tmp.Name(), dst); err == nil {
				return nil
			}
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 10 {
			return storage.Unavailable("put blob "+key, err)
		}
	}
}

// Get implements storage.Blobs.
func (b *Blobs) Get(ctx context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return nil, storage.BlobInfo{}, err
	}
	f, err := os.Open(b.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, storage.BlobInfo{}, storage.NotFound("blob " + key)
		}
		return nil, storage.BlobInfo{}, storage.Unavailable("get blob "+key, err)
	}
	info, err := readInfo(f, key)
	if err != nil {
		f.Close()
		return nil, storage.BlobInfo{}, err
	}
	return f, info, nil
}

// readInfo reads the header of an open blob file, leaving f at the body.
func readInfo(f *os.File, key string) (storage.BlobInfo, error) {
	st, err := f.Stat()
	if err != nil {
		return storage.BlobInfo{}, storage.Unavailable("stat blob "+key, err)
	}
	if st.IsDir() {
		return storage.BlobInfo{}, storage.NotFound("blob " + key)
	}
	var head [len(magic) + 2]byte
	if _, err := io.ReadFull(f, head[:]); err != nil || string(head[:len(magic)]) != magic {
		return storage.BlobInfo{}, storage.Unavailable("read blob "+key, fmt.Errorf("bad blob header: %v", err))
	}
	ct := make([]byte, binary.BigEndian.Uint16(head[len(magic):]))
	if _, err := io.ReadFull(f, ct); err != nil {
		return storage.BlobInfo{}, storage.Unavailable("read blob "+key, err)
	}
	return storage.BlobInfo{
		Key:         key,
		Size:        st.Size() - int64(len(head)+len(ct)),
		ContentType: string(ct),
		ModTime:     st.ModTime(),
	}, nil
}

// Delete implements storage.Blobs.
func (b *Blobs) Delete(ctx context.Context, key string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	p := b.path(key)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.ENOTEMPTY) {
		return storage.Unavailable("delete blob "+key, err)
	}
	// Remove folders the delete left empty; a folder that is not empty (or
	// that a concurrent Put just filled) stays.
	for dir := filepath.Dir(p); dir != b.objects && strings.HasPrefix(dir, b.objects); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List implements storage.Blobs. It reads the folder that holds the prefix,
// so its cost is that of the blobs under that folder.
func (b *Blobs) List(ctx context.Context, prefix string) iter.Seq2[storage.BlobInfo, error] {
	return func(yield func(storage.BlobInfo, error) bool) {
		dir := b.objects
		if i := strings.LastIndex(prefix, "/"); i >= 0 {
			dir = filepath.Join(b.objects, filepath.FromSlash(prefix[:i]))
		}
		var keys []string
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(b.objects, path)
			if err != nil {
				return err
			}
			if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
				keys = append(keys, key)
			}
			return nil
		})
		if err != nil {
			yield(storage.BlobInfo{}, storage.Unavailable("list blobs "+prefix, err))
			return
		}
		slices.Sort(keys)
		for _, key := range keys {
			info, err := b.stat(key)
			if gateway.IsNotFound(err) {
				continue // deleted since the walk
			}
			if !yield(info, err) || err != nil {
				return
			}
		}
	}
}

func (b *Blobs) stat(key string) (storage.BlobInfo, error) {
	f, err := os.Open(b.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return storage.BlobInfo{}, storage.NotFound("blob " + key)
		}
		return storage.BlobInfo{}, storage.Unavailable("stat blob "+key, err)
	}
	defer f.Close()
	return readInfo(f, key)
}
