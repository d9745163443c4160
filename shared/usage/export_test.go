package usage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Test-only readers of what the meter stored.

// Requests returns the request records of one day, newest first, at most
// limit, after cursor.
func (m *Meter) Requests(ctx context.Context, day time.Time, cursor string, limit int) ([]gateway.UsageRecord, string, error) {
	page, err := m.records.Query(ctx, requestPK+day.UTC().Format(time.DateOnly), storage.Query{Desc: true, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", fmt.Errorf("read requests: %w", err)
	}
	out := make([]gateway.UsageRecord, 0, len(page.Items))
	for _, it := range page.Items {
		var r gateway.UsageRecord
		if err := json.Unmarshal(it.Value, &r); err != nil {
			return nil, "", fmt.Errorf("decode usage %s: %w", it.SK, err)
		}
		out = append(out, r)
	}
	return out, page.Cursor, nil
}

// Used returns the tokens key has used in all.
func (m *Meter) Used(ctx context.Context, keyID string) (int64, error) {
	it, err := m.records.Get(ctx, quotaPK, keyID)
	if gateway.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read quota of %s: %w", keyID, err)
	}
	return it.Counters["tokens"], nil
}

// SetNow sets the meter's clock.
func (m *Meter) SetNow(now func() time.Time) { m.now = now }
