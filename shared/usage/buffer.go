package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Buffer records usage behind the requests, for a long-running process
// (the local server): records gather in memory and are written every
// interval, or sooner when many wait; request items go in one batch where
// the store can (storage.Batcher) and the counter changes of one item are
// merged into one. The counters of requests and tokens per minute are
// kept the same way: a counter is read from the store once (then from
// each write of it), and Admit adds to it in memory, so that those limits
// hold exactly in the process and a request costs them no write of its
// own (a crash forgets at most an interval of a minute's counts; another
// process on the same store sees them an interval late). Token quotas and
// budgets are written at once, as on the plain Meter: a crash loses none. Close writes what is left. On
// Lambda, where nothing runs between requests, the plain Meter writes
// before the request ends.
type Buffer struct {
	*Meter
	every time.Duration

	mu      sync.Mutex
	items   []storage.Item
	pending map[[2]string]*incr
	// writing holds the counter changes of a flush until they are
	// written, so that Admit counts them all the while.
	writing map[[2]string]*incr
	// stored holds the limits' counters as the store last had them.
	stored  map[[2]string]*storedCounter
	flushMu sync.Mutex // one flush at a time
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  bool
}

// maxWaiting makes the buffer write early when this many records wait.
const maxWaiting = 512

// NewBuffer starts a Buffer over m that writes every interval.
func NewBuffer(m *Meter, every time.Duration) *Buffer {
	b := &Buffer{Meter: m, every: every, pending: map[[2]string]*incr{}, stored: map[[2]string]*storedCounter{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	m.count = b.count
	go b.loop()
	return b
}

// storedCounter is a counter's values in the store, as last read or
// written, and when it expires.
type storedCounter struct {
	values  map[string]int64
	expires time.Time
}

// count adds deltas to a limit's counter and returns its values: what the
// store had, with every change not written yet.
func (b *Buffer) count(ctx context.Context, pk, sk string, deltas map[string]int64, expires time.Time) (map[string]int64, error) {
	k := [2]string{pk, sk}
	if !strings.HasPrefix(pk, limitPK) {
		// A token quota or a budget is written at once, so that a crash
		// loses none of it; what waits to be written is added.
		values, err := b.records.Incr(ctx, pk, sk, deltas, expires)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, m := range []map[[2]string]*incr{b.pending, b.writing} {
			if in, ok := m[k]; ok {
				for name, d := range in.deltas {
					values[name] += d
				}
			}
		}
		return values, nil
	}
	b.mu.Lock()
	c := b.stored[k]
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return b.records.Incr(ctx, pk, sk, deltas, expires)
	}
	if c == nil {
		var err error
		if c, err = b.load(ctx, k, deltas, expires); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	if b.closed {
		// Closed meanwhile: its last flush is done, so write at once.
		b.mu.Unlock()
		return b.records.Incr(ctx, pk, sk, deltas, expires)
	}
	defer b.mu.Unlock()
	// A flush may have let the counter go (its window past) meanwhile:
	// it is the one still held.
	if cur, ok := b.stored[k]; ok {
		c = cur
	} else {
		b.stored[k] = c
	}
	p, ok := b.pending[k]
	if !ok {
		p = &incr{pk: pk, sk: sk, deltas: map[string]int64{}, expires: expires}
		b.pending[k] = p
	}
	for name, d := range deltas {
		p.deltas[name] += d
	}
	out := map[string]int64{}
	for name, v := range c.values {
		out[name] = v
	}
	for _, m := range []map[[2]string]*incr{b.pending, b.writing} {
		if in, ok := m[k]; ok {
			for name, d := range in.deltas {
				out[name] += d
			}
		}
	}
	return out, nil
}

// load reads a counter from the store into stored. No flush runs
// meanwhile: a change it wrote during the read would be counted twice or
// not at all.
func (b *Buffer) load(ctx context.Context, k [2]string, deltas map[string]int64, expires time.Time) (*storedCounter, error) {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	c := b.stored[k]
	b.mu.Unlock()
	if c != nil {
		return c, nil
	}
	// A zero change reads the counter (and makes it, harmlessly).
	zero := make(map[string]int64, len(deltas))
	for name := range deltas {
		zero[name] = 0
	}
	values, err := b.records.Incr(ctx, k[0], k[1], zero, expires)
	if err != nil {
		return nil, err
	}
	c = &storedCounter{values: values, expires: expires}
	b.mu.Lock()
	b.stored[k] = c
	b.mu.Unlock()
	return c, nil
}

func (b *Buffer) loop() {
	defer close(b.done)
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-b.kick:
		case <-b.stop:
			b.flush(context.Background())
			return
		}
		b.flush(context.Background())
	}
}

// gateway.UsageRecord queues r. After Close it writes r at once.
func (b *Buffer) Record(ctx context.Context, r gateway.UsageRecord) error {
	item, incrs, err := b.writes(r)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return b.Meter.Record(ctx, r)
	}
	b.items = append(b.items, item)
	for _, in := range incrs {
		k := [2]string{in.pk, in.sk}
		p, ok := b.pending[k]
		if !ok {
			p = &incr{pk: in.pk, sk: in.sk, deltas: map[string]int64{}, expires: in.expires}
			b.pending[k] = p
		}
		for name, d := range in.deltas {
			p.deltas[name] += d
		}
	}
	full := len(b.items) >= maxWaiting
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Admit implements Meter.Admit on the counters in memory.
func (b *Buffer) Admit(ctx context.Context, key gateway.APIKey, ask gateway.Ask) (gateway.Reservation, error) {
	return b.Meter.Admit(ctx, key, ask)
}

// flush writes what waits. A counter change that fails goes back to wait
// for the next flush, so that no count is lost to a passing store error.
func (b *Buffer) flush(ctx context.Context) {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	items, pending := b.items, b.pending
	b.items, b.pending, b.writing = nil, map[[2]string]*incr{}, pending
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.writing = nil
		// Counters past their window are done with.
		now := b.now()
		for k, c := range b.stored {
			if _, waits := b.pending[k]; !waits && !c.expires.IsZero() && now.After(c.expires) {
				delete(b.stored, k)
			}
		}
		b.mu.Unlock()
	}()
	if len(items) > 0 {
		if err := b.putItems(ctx, items); err != nil {
			slog.ErrorContext(ctx, "write usage records", "count", len(items), "err", err)
		}
	}
	for k, in := range pending {
		values, err := b.records.Incr(ctx, in.pk, in.sk, in.deltas, in.expires)
		// In one step, so that Admit always counts the change: written
		// (into the stored values), or back to waiting.
		b.mu.Lock()
		delete(b.writing, k)
		if c, ok := b.stored[k]; ok && err == nil {
			c.values = values // with what other processes added
		}
		if err != nil {
			if p, ok := b.pending[k]; ok {
				for name, d := range in.deltas {
					p.deltas[name] += d
				}
			} else {
				b.pending[k] = in
			}
		}
		b.mu.Unlock()
		if err != nil {
			slog.ErrorContext(ctx, "write usage counters; retrying at the next flush", "item", in.pk+"/"+in.sk, "err", err)
		}
	}
}

func (b *Buffer) putItems(ctx context.Context, items []storage.Item) error {
	if batcher, ok := b.records.(storage.Batcher); ok {
		return batcher.PutNew(ctx, items)
	}
	for _, it := range items {
		if _, err := b.records.Put(ctx, it, storage.Cond{}); err != nil {
			return fmt.Errorf("record usage: %w", err)
		}
	}
	return nil
}

// Flush writes what waits now, for readers that must see every record.
func (b *Buffer) Flush(ctx context.Context) { b.flush(ctx) }

// Extend implements Meter.Extend on the counters in memory.
func (b *Buffer) Extend(ctx context.Context, res *gateway.Reservation, key gateway.APIKey, more int64) error {
	return b.Meter.Extend(ctx, res, key, more)
}

// Release implements Meter.Release.
func (b *Buffer) Release(ctx context.Context, res gateway.Reservation) { b.Meter.Release(ctx, res) }

// Close writes what waits and stops the buffer; later records are written
// at once.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	// What the last flush could not write, once more (counts made from
	// now on are written at once).
	b.mu.Lock()
	left := b.pending
	b.pending = map[[2]string]*incr{}
	b.mu.Unlock()
	var errs []error
	for _, in := range left {
		if _, err := b.records.Incr(context.Background(), in.pk, in.sk, in.deltas, in.expires); err != nil {
			errs = append(errs, fmt.Errorf("write usage counter %s/%s: %w", in.pk, in.sk, err))
		}
	}
	return errors.Join(errs...)
}
