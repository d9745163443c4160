// Package dynamo implements the KV and Records storage roles on one DynamoDB
// table (single-table design, pay per request).
//
// Item layout (attribute names are short: they are paid for on every item):
//
//	pk   S  partition key: "r#" + the record's partition, or "kv" for KV
//	sk   S  sort key: the record's sort key, or the KV key
//	v    B  the value
//	ver  N  the version: 1 on creation, +1 on every write
//	exp  N  expiry in Unix seconds; the table's TTL attribute. TTL deletes
//	        late (up to days), so every read also filters on it.
//	c_*  N  atomic counters, one attribute each, changed with ADD
//
// Access patterns: a key, a setting or a session is one GetItem; a key's
// conversations, a day's usage or the list of documents is one Query on a
// partition with a sort-key prefix or range, paginated with the last sort
// key as cursor. All KV keys share the partition "kv", so that List by
// prefix is a Query too.
package dynamo

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/aigateway/aigateway/shared/storage"
)

// Attribute names.
const (
	attrPK      = "pk"
	attrSK      = "sk"
	attrValue   = "v"
	attrVersion = "ver"
	attrExpires = "exp"
	counterPre  = "c_"
	kvPartition = "kv"
	recordPre   = "r#"
)

// Table is one DynamoDB table holding the KV and Records roles.
type Table struct {
	client *dynamodb.Client
	name   string
	now    func() time.Time
}

// New returns the table name reached through client.
func New(client *dynamodb.Client, name string) *Table {
	return &Table{client: client, name: name, now: time.Now}
}

// KV returns the KV role of the table.
func (t *Table) KV() *KV { return &KV{t: t} }

// Records returns the Records role of the table.
func (t *Table) Records() *Records { return &Records{t: t} }

// Create creates the table with its key schema and TTL, for tests and
// local trials; deployments get it from the SAM template.
func (t *Table) Create(ctx context.Context) error {
	_, err := t.client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   &t.name,
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
	})
	if err != nil {
		return storage.Unavailable("create table "+t.name, err)
	}
	_, err = t.client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: &t.name,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrExpires), Enabled: aws.Bool(true),
		},
	})
	if err != nil {
		return storage.Unavailable("enable TTL on "+t.name, err)
	}
	return nil
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: s(pk), attrSK: s(sk)}
}

// expiry returns the TTL attribute for t, rounded up to whole seconds so
// that an item never expires early; 0 for the zero time.
func expiry(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

func number(av types.AttributeValue) int64 {
	if nv, ok := av.(*types.AttributeValueMemberN); ok {
		v, _ := strconv.ParseInt(nv.Value, 10, 64)
		return v
	}
	return 0
}

// decode turns a stored item into a storage.Item of partition pk.
func decode(pk string, av map[string]types.AttributeValue) storage.Item {
	it := storage.Item{PK: pk, Version: number(av[attrVersion])}
	if sv, ok := av[attrSK].(*types.AttributeValueMemberS); ok {
		it.SK = sv.Value
	}
	if bv, ok := av[attrValue].(*types.AttributeValueMemberB); ok {
		it.Value = bv.Value
	}
	if e := number(av[attrExpires]); e != 0 {
		it.ExpiresAt = time.Unix(e, 0)
	}
	for name, v := range av {
		if c, ok := strings.CutPrefix(name, counterPre); ok {
			if it.Counters == nil {
				it.Counters = map[string]int64{}
			}
			it.Counters[c] = number(v)
		}
	}
	return it
}

// live reports whether a stored item exists and has not expired at now.
func live(av map[string]types.AttributeValue, now time.Time) bool {
	if av == nil {
		return false
	}
	e := number(av[attrExpires])
	return e == 0 || e > now.Unix()
}

func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
