package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aigateway/aigateway/shared/extract"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// IngestObject ingests a direct upload that has arrived at key (from an
// object-created event, or locally after PutContent): the file is spooled
// to a temporary file (never held whole in memory), extracted, moved out of
// the incoming area, and the document becomes ready, or failed with a
// readable reason. A key that is no document's upload is ignored, and so is
// a repeated event for a document already done.
//
// A repeated delivery of an event whose ingestion died (a Lambda timeout,
// a crash) takes over once that ingestion's lease has lapsed (within
// leaseTime); one that arrives while another ingestion holds the lease
// returns EUnavailable, so that it is delivered again later. A file whose
// ingestion died maxAttempts times is failed.
func (s *Service) IngestObject(ctx context.Context, key string) (gateway.Document, error) {
	id := uploadID(key)
	if id == "" {
		return gateway.Document{}, nil
	}
	doc, version, err := s.load(ctx, id)
	if gateway.IsNotFound(err) {
		slog.WarnContext(ctx, "an upload arrived for no document", "key", key)
		return gateway.Document{}, nil
	}
	if err != nil {
		return gateway.Document{}, err
	}
	switch {
	case doc.Status == gateway.DocUploading && doc.Object == key:
	case doc.Status == gateway.DocProcessing && !s.dead(doc):
		return doc, gateway.Errorf(gateway.EUnavailable, "The document %s is being ingested.", id)
	case doc.Status == gateway.DocProcessing && doc.Attempts >= maxAttempts:
		return s.failIf(ctx, doc, version, gateway.Errorf(gateway.EUnavailable,
			"The ingestion was interrupted %d times (the function timed out or crashed); upload a smaller file.", doc.Attempts)), nil
	case doc.Status == gateway.DocProcessing && doc.Attempts > 0:
		// The earlier ingestion died: take over.
	default:
		return doc, nil // a repeated event: done already
	}
	doc.Attempts++
	r, ctx, err := s.start(ctx, doc, version)
	if err != nil {
		return doc, err
	}
	return s.ingestStored(ctx, r), nil
}

// uploadID returns the document ID of a direct upload's key, or "".
func uploadID(key string) string {
	rest, ok := strings.CutPrefix(key, IncomingPrefix)
	id, _, _ := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return id
}

// ingestStored ingests the file of r's document from the blob store (its
// incoming upload, or, on a retry after the move, its final place).
func (s *Service) ingestStored(ctx context.Context, r *run) gateway.Document {
	doc := r.document()
	f, sum, size, err := s.spool(ctx, doc.Object)
	if err != nil {
		return r.finish(ctx, 0, err)
	}
	defer f.Close()
	kind, _ := extract.Kind(doc.Filename, doc.ContentType)
	text, err := extract.TextAt(kind, f, size)
	if err != nil {
		return r.finish(ctx, 0, err)
	}
	if err := r.write(ctx, func(d *gateway.Document) { d.Size, d.SHA256 = size, sum }); err != nil {
		return r.finish(ctx, 0, err)
	}
	doc = r.document()
	if _, err := s.claim(ctx, doc); err != nil {
		r.write(ctx, func(d *gateway.Document) { d.SHA256 = "" }) // not its claim to release
		return r.finish(ctx, 0, err)
	}
	if strings.HasPrefix(doc.Object, IncomingPrefix) {
		incoming, final := doc.Object, originalKey(doc.ID, kind)
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return r.finish(ctx, 0, fmt.Errorf("rewind spooled upload: %w", err))
		}
		if err := s.blobs.Put(ctx, final, f, doc.ContentType); err != nil {
			return r.finish(ctx, 0, err)
		}
		if err := r.write(ctx, func(d *gateway.Document) { d.Object = final }); err != nil {
			s.blobs.Delete(context.WithoutCancel(ctx), final)
			return r.finish(ctx, 0, err)
		}
		s.blobs.Delete(ctx, incoming)
	}
	n, err := s.index.Index(ctx, r.document(), text)
	return r.finish(ctx, n, err)
}

// spool copies the blob at key into a spool (a temporary file, or memory on
// a Worker), and returns it with the SHA-256 and size of its content.
func (s *Service) spool(ctx context.Context, key string) (spoolFile, string, int64, error) {
	rc, info, err := s.blobs.Get(ctx, key)
	if err != nil {
		return nil, "", 0, err
	}
	defer rc.Close()
	if info.Size > MaxDirectUpload {
		return nil, "", 0, gateway.Errorf(gateway.ETooLarge, "A direct upload may be at most %d MB.", MaxDirectUpload>>20)
	}
	f, err := newSpool(info.Size)
	if err != nil {
		return nil, "", 0, fmt.Errorf("spool upload: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, MaxDirectUpload+1))
	if err == nil && n > MaxDirectUpload {
		err = gateway.Errorf(gateway.ETooLarge, "A direct upload may be at most %d MB.", MaxDirectUpload>>20)
	} else if err != nil {
		err = fmt.Errorf("spool upload %s: %w", key, err)
	}
	if err != nil {
		f.Close()
		return nil, "", 0, err
	}
	return f, hex.EncodeToString(h.Sum(nil)), n, nil
}

// spoolFile holds an upload while it is read in place (PDF and DOCX
// readers seek) and copied to its final key; Close discards it.
type spoolFile interface {
	io.ReadWriteSeeker
	io.ReaderAt
	io.Closer
}

// claim makes doc the one document of its content in its knowledge base.
// A claim left by doc itself (an earlier attempt), or by a document that is
// gone, failed or dead, is taken over. When a live document holds it, claim
// returns that document's ID as dup, and EConflict.
func (s *Service) claim(ctx context.Context, doc gateway.Document) (dup string, err error) {
	sk := doc.KnowledgeBase + "#" + doc.SHA256
	for range 3 {
		_, err := s.records.Put(ctx, storage.Item{PK: hashPK, SK: sk, Value: []byte(doc.ID)}, storage.Cond{IfAbsent: true})
		if !gateway.IsConflict(err) {
			if err != nil {
				return "", fmt.Errorf("claim document content: %w", err)
			}
			return "", nil
		}
		it, err := s.records.Get(ctx, hashPK, sk)
		if gateway.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read content claim: %w", err)
		}
		owner := string(it.Value)
		if owner == doc.ID {
			return "", nil
		}
		other, _, err := s.load(ctx, owner)
		if err == nil && other.Status != gateway.DocFailed && !s.dead(other) {
			return owner, gateway.Errorf(gateway.EConflict, "The same content is already the document %s.", owner)
		}
		if err != nil && !gateway.IsNotFound(err) {
			return "", err
		}
		_, err = s.records.Put(ctx, storage.Item{PK: hashPK, SK: sk, Value: []byte(doc.ID)}, storage.Cond{IfVersion: it.Version})
		if !gateway.IsConflict(err) {
			if err != nil {
				return "", fmt.Errorf("claim document content: %w", err)
			}
			return "", nil
		}
	}
	return "", gateway.Errorf(gateway.EConflict, "The same content is being uploaded at the same time.")
}

// IngestFailed records that the ingestion of the direct upload at key
// failed for good (Lambda gave up on its event, or could not be given it),
// with reason. A document that is done, or whose ingestion still holds its
// lease, is left as it is; the latter returns EUnavailable so that the
// report is delivered again once the lease has lapsed.
func (s *Service) IngestFailed(ctx context.Context, key, reason string) error {
	id := uploadID(key)
	if id == "" {
		return nil
	}
	doc, version, err := s.load(ctx, id)
	if gateway.IsNotFound(err) {
		return nil
	}
	if err != nil {
		if gateway.ErrorCode(err) == gateway.EInternal {
			// A record that cannot be read will not become readable.
			slog.ErrorContext(ctx, "a failed ingestion's document cannot be read", "document", id, "err", err)
			return nil
		}
		return err
	}
	switch {
	case doc.Status == gateway.DocReady || doc.Status == gateway.DocFailed:
		return nil
	case doc.Status == gateway.DocProcessing && !s.dead(doc):
		return gateway.Errorf(gateway.EUnavailable, "The document %s is being ingested.", id)
	}
	s.failIf(ctx, doc, version, gateway.Errorf(gateway.EUnavailable, "%s", reason))
	return nil
}
