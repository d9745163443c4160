package ingest

import (
	"context"

	"github.com/aigateway/aigateway/shared/gateway"
)

// sweep fails the documents among docs whose work died: an ingestion whose
// lease lapsed, or a direct upload that never arrived (after uploadWait,
// and only when nothing is at its upload key: an upload that did arrive
// waits for its event). It returns docs as they now are.
func (s *Service) sweep(ctx context.Context, docs []gateway.Document) []gateway.Document {
	for i, d := range docs {
		switch {
		case s.dead(d):
			docs[i] = s.failLoaded(ctx, d, gateway.Errorf(gateway.EUnavailable,
				"The ingestion was interrupted (the function timed out or the process stopped); upload the document again."))
		case d.Status == gateway.DocUploading && s.now().After(d.CreatedAt.Add(uploadWait)):
			rc, _, err := s.blobs.Get(ctx, d.Object)
			if err == nil {
				rc.Close()
				continue
			}
			if gateway.IsNotFound(err) {
				docs[i] = s.failLoaded(ctx, d, gateway.Errorf(gateway.EInvalid, "The file was never uploaded to its upload URL."))
			}
		}
	}
	return docs
}

// failLoaded fails d at the version it is stored at now, if it is still as
// read.
func (s *Service) failLoaded(ctx context.Context, d gateway.Document, err error) gateway.Document {
	cur, version, lerr := s.load(ctx, d.ID)
	if lerr != nil || cur.Status != d.Status || !cur.LeaseUntil.Equal(d.LeaseUntil) {
		return cur
	}
	return s.failIf(ctx, cur, version, err)
}

// Recover fails every document left processing by a process that stopped
// (the local server, at start-up, when no ingestion can be running) and
// every direct upload that never arrived.
func (s *Service) Recover(ctx context.Context) error {
	docs, err := s.list(ctx)
	if err != nil {
		return err
	}
	for i, d := range docs {
		if d.Status == gateway.DocProcessing {
			docs[i] = s.failLoaded(ctx, d, gateway.Errorf(gateway.EUnavailable,
				"The ingestion was interrupted (the gateway stopped); upload the document again."))
		}
	}
	s.sweep(ctx, docs)
	return nil
}
