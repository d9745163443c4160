//go:build js

package ingest

import (
	"errors"
	"io"
)

// MaxDirectUpload bounds a file uploaded straight to the blob store. A
// Worker has no disk and 128 MB of memory: the file is read in memory, so
// it may be at most 32 MB there.
const MaxDirectUpload = 32 << 20

// memSpool holds a spooled upload in memory.
type memSpool struct {
	buf []byte
	off int64
}

// newSpool makes a spool of the blob's size at once: WebAssembly memory
// never shrinks, so a buffer grown by doubling would hold the peak of its
// copies (about four times a 32 MB file) for the rest of the request.
func newSpool(size int64) (spoolFile, error) {
	return &memSpool{buf: make([]byte, 0, max(size, 0))}, nil
}

func (m *memSpool) Write(p []byte) (int, error) {
	m.buf = append(m.buf, p...)
	return len(p), nil
}

func (m *memSpool) Read(p []byte) (int, error) {
	n, err := m.ReadAt(p, m.off)
	m.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (m *memSpool) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(m.buf)) {
		return 0, io.EOF
	}
	n := copy(p, m.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memSpool) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += int64(len(m.buf))
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	m.off = offset
	return offset, nil
}

func (m *memSpool) Close() error {
	m.buf = nil
	return nil
}
