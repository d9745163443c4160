package gateway

import "time"

// ImageTokens is what one drawn image counts against a key's token limits
// (its quota and tokens per minute), so that limits stop drawing too.
const ImageTokens = 1000

// Ask is what a request asks of its key's limits at admission: the tokens
// it is estimated to use, what they may cost at most (in millionths of the
// currency), and the most one token may cost (for tokens added later).
type Ask struct {
	Tokens   int64
	Cost     Micros
	PerToken Micros
}

// Reservation is what a request admitted under token limits holds of
// them until its usage is recorded.
type Reservation struct {
	KeyID  string
	Tokens int64
	// Cost is what it holds of the key's budgets, PerToken what a token
	// added by Extend holds; Budget and Monthly say which budgets hold it,
	// Month the month it counts in.
	Cost, PerToken  Micros
	Budget, Monthly bool
	Month           string
	// Window is the minute its tokens count in, for tokens per minute.
	Window string
	// Quota and PerMinute say which limits hold tokens of it, and
	// Expires when its per-minute count lapses.
	Quota, PerMinute bool
	Expires          time.Time
}

// UsageRecord is one metered request.
type UsageRecord struct {
	RequestID        string `json:"request_id"`
	KeyID            string `json:"key_id"`
	Model            string `json:"model"`
	Kind             string `json:"kind"` // "chat", "embeddings", "image"
	Stream           bool   `json:"stream"`
	Status           int    `json:"status"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	LatencyMS        int64  `json:"latency_ms"`
	// Partial marks a request whose answer broke off (the upstream failed
	// or the client left); its tokens are what was received.
	Partial bool `json:"partial,omitempty"`
	// Estimated marks tokens the gateway estimated because the upstream
	// reported none.
	Estimated bool `json:"estimated,omitempty"`
	// Clamped marks usage the upstream reported out of bounds (negative,
	// or absurdly large), recorded clamped.
	Clamped bool `json:"clamped,omitempty"`
	// Images counts the images drawn; each counts ImageTokens against the
	// key's token quota and tokens per minute.
	Images int64 `json:"images,omitempty"`
	// CostMicros is what the request cost at the settings' prices, in
	// millionths of the currency.
	CostMicros Micros `json:"cost_micros,omitempty"`
	// Cache is "hit" for a request answered from the exact response cache
	// (no upstream tokens), "miss" for one its model would have cached
	// but sent upstream, "" when the model keeps no cache.
	Cache string `json:"cache,omitempty"`
	// Channel is the channel that answered; FailedChannels those that
	// failed before it (or before the request gave up), one per attempt.
	Channel        string   `json:"channel,omitempty"`
	FailedChannels []string `json:"failed_channels,omitempty"`
	// PerMinute asks for the tokens to count against the key's tokens per
	// minute (only keys with such a limit need the extra write), when the
	// request holds no Reservation.
	PerMinute bool `json:"-"`
	// Reservation, when the request was admitted with one, is settled with
	// the tokens recorded.
	Reservation *Reservation `json:"-"`
	Time        time.Time    `json:"time"`
}

// UsageRow is one day's usage of one key and model.
type UsageRow struct {
	Day              string `json:"day"`
	KeyID            string `json:"key_id"`
	Model            string `json:"model"`
	Requests         int64  `json:"requests"`
	Errors           int64  `json:"errors"`
	Partial          int64  `json:"partial"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	TotalTokens      int64  `json:"total_tokens"`
	Images           int64  `json:"images"`
	CacheHits        int64  `json:"cache_hits"`
	CacheMisses      int64  `json:"cache_misses"`
	AvgLatencyMS     int64  `json:"avg_latency_ms"`
	// Cost is in the settings' currency.
	Cost float64 `json:"cost"`
}

// ChannelUsageRow is one day's usage of one channel: the requests it
// answered (Errors of them failed after all), their tokens and mean
// latency, and Failures, the attempts that failed on it before another
// channel took the request or it gave up.
type ChannelUsageRow struct {
	Day              string `json:"day"`
	Channel          string `json:"channel"`
	Requests         int64  `json:"requests"`
	Errors           int64  `json:"errors"`
	Failures         int64  `json:"failures"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	Images           int64  `json:"images"`
	AvgLatencyMS     int64  `json:"avg_latency_ms"`
}

// UsageFilter selects usage summary rows.
type UsageFilter struct {
	From, To time.Time // days, inclusive
	KeyID    string
	Model    string
}
