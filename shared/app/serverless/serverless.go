// Package serverless runs the gateway as AWS Lambda functions behind an API
// Gateway REST API, on DynamoDB and S3, with the master key from Secrets
// Manager.
package serverless

import (
	"context"
	"fmt"
	"os"

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

// Serve runs function fn as a Lambda handler; it does not return. The
// gateway opens on the first request, not at init, to keep cold starts
// short. The chat function streams its responses (REST API response
// streaming), except under `sam local`, which cannot stream.
func Serve(cfg app.Config, fn app.Function) {
	app.SetupLogging(cfg)
	h := lambdaserve.StagePrefix(app.Lazy(func(ctx context.Context) (*app.Gateway, error) { return Open(ctx, cfg) }, fn))
	if fn == app.FnChat && !cfg.SAMLocal {
		lambda.Start(lambdaserve.Stream(h))
		return
	}
	lambda.Start(httpadapter.New(h).ProxyWithContext)
}

// Open assembles the gateway on the table and bucket of cfg.
func Open(ctx context.Context, cfg app.Config) (*app.Gateway, error) {
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
		app.Extras{Metrics: metrics.NewEMF(os.Stdout)})
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
