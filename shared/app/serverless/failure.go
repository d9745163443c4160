package serverless

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
)

// failure is one ingestion that failed for good: the object key of its
// object-created event, and why.
type failure struct {
	messageID string
	key       string
	reason    string
}

// ingestionFailures reads an SQS batch from the IngestionFailures queue.
// Its messages are either Lambda's on-failure destination records (the
// event in requestPayload, after the function's retries) or EventBridge's
// dead letters (the event itself, which EventBridge could not deliver).
func ingestionFailures(raw json.RawMessage) ([]failure, bool) {
	var batch events.SQSEvent
	if json.Unmarshal(raw, &batch) != nil || len(batch.Records) == 0 || batch.Records[0].EventSource != "aws:sqs" {
		return nil, false
	}
	out := make([]failure, 0, len(batch.Records))
	for _, m := range batch.Records {
		f := failure{messageID: m.MessageId}
		var record struct {
			RequestContext struct {
				Condition              string `json:"condition"`
				ApproximateInvokeCount int    `json:"approximateInvokeCount"`
			} `json:"requestContext"`
			RequestPayload json.RawMessage `json:"requestPayload"`
		}
		event := json.RawMessage(m.Body)
		if json.Unmarshal([]byte(m.Body), &record) == nil && len(record.RequestPayload) > 0 {
			event = record.RequestPayload
			switch record.RequestContext.Condition {
			case "EventAgeExceeded":
				f.reason = "The ingestion was not run in time (the upload function was throttled or unavailable); upload the document again."
			default:
				f.reason = fmt.Sprintf("The ingestion failed %d times (the upload function failed or timed out); upload the document again.",
					max(record.RequestContext.ApproximateInvokeCount, 1))
			}
		} else {
			f.reason = "The upload could not be handed to the upload function; upload the document again."
		}
		f.key, _ = objectCreated(event)
		out = append(out, f)
	}
	return out, true
}

// reportFailures marks each failure's document failed and returns the
// messages to be delivered again (a document still being ingested, a store
// that did not answer).
func reportFailures(ctx context.Context, in Ingester, failures []failure) events.SQSEventResponse {
	var resp events.SQSEventResponse
	for _, f := range failures {
		if f.key == "" {
			slog.WarnContext(ctx, "an ingestion failure record names no upload", "message", f.messageID)
			continue
		}
		if err := in.IngestFailed(ctx, f.key, f.reason); err != nil {
			slog.WarnContext(ctx, "record a failed ingestion", "key", f.key, "err", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: f.messageID})
		}
	}
	return resp
}
