package gateway

import "time"

// Conversation summarises one conversation.
type Conversation struct {
	ID        string    `json:"id"`
	KeyID     string    `json:"key_id"`
	Title     string    `json:"title"`
	Messages  int       `json:"message_count"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Next is the sequence number of the next message; messages below
	// First have been dropped.
	Next  int `json:"next"`
	First int `json:"first"`
	// Bytes is the size of the messages kept, and Sizes each one's, from
	// First on.
	Bytes int   `json:"bytes"`
	Sizes []int `json:"sizes,omitempty"`
	// Whole is where messages started being marked in exchanges (End):
	// older ones are replayed one by one. Marked says Whole is set.
	Whole  int  `json:"whole,omitempty"`
	Marked bool `json:"marked,omitempty"`
}
