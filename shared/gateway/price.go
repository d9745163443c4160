package gateway

import (
	"fmt"
	"math"
	"strings"
)

// Price is what an upstream model costs, in the settings' currency: per
// million input (prompt) and output (completion) tokens, per request
// answered from the response cache, per image drawn.
type Price struct {
	// Model is an upstream model's name, or a glob (see MatchName).
	Model     string  `json:"model"`
	Input     float64 `json:"input"`
	Output    float64 `json:"output"`
	CachedHit float64 `json:"cached_hit,omitempty"`
	Image     float64 `json:"image,omitempty"`
}

// Micros is an amount of money in millionths of the currency: what usage
// counters and budgets count in.
type Micros = int64

// ToMicros converts an amount of the currency to millionths, rounded.
func ToMicros(amount float64) Micros { return Micros(math.Round(amount * 1e6)) }

// FromMicros converts millionths back to an amount of the currency.
func FromMicros(m Micros) float64 { return float64(m) / 1e6 }

// Cost returns what a request cost: its tokens and images at p, or, for a
// request answered from the cache, the cached-hit price alone.
func (p Price) Cost(prompt, completion, images int64, cacheHit bool) Micros {
	if cacheHit {
		return ToMicros(p.CachedHit)
	}
	// A price per million tokens is a price in millionths per token.
	return Micros(math.Round(float64(prompt)*p.Input+float64(completion)*p.Output)) + images*ToMicros(p.Image)
}

// PerToken is the most a token may cost at p, in millionths (rounded up):
// what an admitted request reserves of its key's budget per token.
func (p Price) PerToken() Micros { return Micros(math.Ceil(max(p.Input, p.Output))) }

// PriceOf returns the price of an upstream model: the first price whose
// model matches it.
func (s Settings) PriceOf(upstreamModel string) (Price, bool) {
	for _, p := range s.Prices {
		if MatchName(p.Model, upstreamModel) {
			return p, true
		}
	}
	return Price{}, false
}

// maxPrice bounds a price: a million of the currency.
const maxPrice = 1e6

func validatePrices(currency string, prices []Price) error {
	if len(currency) != 3 || strings.ToUpper(currency) != currency || strings.Trim(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return invalidParam("currency", "currency is a three-letter ISO 4217 code such as USD or CNY")
	}
	if len(prices) > 500 {
		return invalidParam("prices", "at most 500 prices")
	}
	for i, p := range prices {
		field := fmt.Sprintf("prices[%d]", i)
		if p.Model == "" || len(p.Model) > MaxNameLen || strings.ContainsAny(p.Model, "\x00\r\n") {
			return invalidParam(field+".model", "a price's model is an upstream model's name or a glob of 1 to %d characters", MaxNameLen)
		}
		for name, v := range map[string]float64{"input": p.Input, "output": p.Output, "cached_hit": p.CachedHit, "image": p.Image} {
			if !(v >= 0 && v <= maxPrice) { // NaN fails too
				return invalidParam(field+"."+name, "a price is between 0 and %g", float64(maxPrice))
			}
		}
	}
	return nil
}
