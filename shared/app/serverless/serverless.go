// Package serverless runs the gateway as AWS Lambda functions behind an API
// Gateway REST API, on DynamoDB and S3, with the master key from Secrets
// Manager.
package serverless

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/bucket"
	"github.com/aigateway/aigateway/shared/dynamo"
	"github.com/aigateway/aigateway/shared/lambdaserve"
	"github.com/aigateway/aigateway/shared/metrics"
	"github.com/aigateway/aigateway/shared/seal"
)

// Serve runs part as a Lambda handler; it does not return. The gateway
// opens on the first request, not at init, to keep cold starts short. The
// chat and image functions stream their responses (REST API response
// streaming), except under `sam local`, which cannot stream. The upload
// function also takes the bucket's object-created events (from
// EventBridge) and the records of ingestions that failed for good (from
// SQS).
func Serve(cfg app.Config, part app.Part) {
	app.SetupLogging(cfg)
	fn := part.Function
	lazy := app.NewLazy(func(ctx context.Context) (*app.Gateway, error) { return Open(ctx, cfg, part) }, fn)
	h := lambdaserve.StagePrefix(lazy)
	switch {
	case (fn == app.FnChat || fn == app.FnImage) && !cfg.SAMLocal:
		lambda.Start(lambdaserve.Stream(h))
	case fn == app.FnUpload:
		proxy := httpadapter.New(h).ProxyWithContext
		lambda.Start(func(ctx context.Context, raw json.RawMessage) (any, error) {
			ingester := func() (Ingester, error) {
				g, err := lazy.Gateway(ctx)
				if err != nil {
					return nil, err
				}
				in, ok := g.Part(fn).(Ingester)
				if !ok {
					return nil, fmt.Errorf("the %s function does not ingest", fn)
				}
				return in, nil
			}
			if key, ok := objectCreated(raw); ok {
				in, err := ingester()
				if err != nil {
					return nil, err
				}
				// An error makes the event be delivered again.
				return nil, in.IngestObject(ctx, key)
			}
			if failures, ok := ingestionFailures(raw); ok {
				in, err := ingester()
				if err != nil {
					return nil, err
				}
				return reportFailures(ctx, in, failures), nil
			}
			var ev events.APIGatewayProxyRequest
			if err := json.Unmarshal(raw, &ev); err != nil {
				return nil, fmt.Errorf("decode event: %w", err)
			}
			return proxy(ctx, ev)
		})
	default:
		lambda.Start(httpadapter.New(h).ProxyWithContext)
	}
}

// Ingester ingests direct uploads (the upload function's handler).
type Ingester interface {
	IngestObject(ctx context.Context, key string) error
	IngestFailed(ctx context.Context, key, reason string) error
}

// objectCreated returns the object key of an S3 "Object Created" event
// delivered by EventBridge.
func objectCreated(raw json.RawMessage) (string, bool) {
	var ev struct {
		Source     string `json:"source"`
		DetailType string `json:"detail-type"`
		Detail     struct {
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"detail"`
	}
	if json.Unmarshal(raw, &ev) != nil || ev.Source != "aws.s3" || ev.DetailType != "Object Created" || ev.Detail.Object.Key == "" {
		return "", false
	}
	key, err := url.QueryUnescape(ev.Detail.Object.Key)
	if err != nil {
		return ev.Detail.Object.Key, true
	}
	return key, true
}

// Open assembles the gateway of parts on the table and bucket of cfg.
func Open(ctx context.Context, cfg app.Config, parts ...app.Part) (*app.Gateway, error) {
	if cfg.Table == "" || cfg.Bucket == "" {
		return nil, fmt.Errorf("GATEWAY_TABLE and GATEWAY_BUCKET must name the DynamoDB table and S3 bucket")
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	master, err := masterKey(ctx, cfg, awsCfg)
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		if cfg.DynamoDBEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.DynamoDBEndpoint)
		}
	})
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.S3Endpoint)
			o.UsePathStyle = true
		}
	})
	table := dynamo.New(db, cfg.Table)
	return app.Assemble(cfg, app.Stores{KV: table.KV(), Records: table.Records(), Blobs: bucket.New(s3c, cfg.Bucket)}, master,
		app.Extras{Metrics: metrics.NewEMF(os.Stdout)}, parts...)
}

// masterKey returns GATEWAY_MASTER_KEY when set, or reads the secret.
func masterKey(ctx context.Context, cfg app.Config, awsCfg aws.Config) ([]byte, error) {
	if cfg.MasterKey != "" {
		k, err := seal.ParseKey(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_MASTER_KEY: %w", err)
		}
		return k, nil
	}
	if cfg.MasterKeySecret == "" {
		return nil, fmt.Errorf("set GATEWAY_MASTER_KEY_SECRET (or GATEWAY_MASTER_KEY) to the master key")
	}
	out, err := secretsmanager.NewFromConfig(awsCfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &cfg.MasterKeySecret})
	if err != nil {
		return nil, fmt.Errorf("read the master key secret: %w", err)
	}
	return seal.KeyFromSecret(aws.ToString(out.SecretString))
}
