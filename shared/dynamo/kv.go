package dynamo

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/aigateway/aigateway/shared/storage"
)

var _ storage.KV = (*KV)(nil)

// KV is the KV role on the table: every key is an item of the partition
// "kv", so that List by prefix is one Query.
type KV struct{ t *Table }

// Get implements storage.KV.
func (k *KV) Get(ctx context.Context, name string) ([]byte, error) {
	if err := storage.CheckKey("key", name); err != nil {
		return nil, err
	}
	out, err := k.t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &k.t.name, Key: key(kvPartition, name), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, storage.Unavailable("get "+name, err)
	}
	if out.Item == nil {
		return nil, storage.NotFound("key " + name)
	}
	if bv, ok := out.Item[attrValue].(*types.AttributeValueMemberB); ok {
		return bv.Value, nil
	}
	return []byte{}, nil
}

// Put implements storage.KV.
func (k *KV) Put(ctx context.Context, name string, value []byte) error {
	if err := storage.CheckKey("key", name); err != nil {
		return err
	}
	if err := storage.CheckValue(value); err != nil {
		return err
	}
	item := key(kvPartition, name)
	item[attrValue] = &types.AttributeValueMemberB{Value: nonNil(value)}
	if _, err := k.t.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: &k.t.name, Item: item}); err != nil {
		return storage.Unavailable("put "+name, err)
	}
	return nil
}

// Delete implements storage.KV.
func (k *KV) Delete(ctx context.Context, name string) error {
	if err := storage.CheckKey("key", name); err != nil {
		return err
	}
	if _, err := k.t.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &k.t.name, Key: key(kvPartition, name)}); err != nil {
		return storage.Unavailable("delete "+name, err)
	}
	return nil
}

// List implements storage.KV.
func (k *KV) List(ctx context.Context, prefix, cursor string, limit int) ([]string, string, error) {
	limit = storage.Clamp(limit)
	in := &dynamodb.QueryInput{
		TableName:                 &k.t.name,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(kvPartition)},
		ProjectionExpression:      aws.String(attrSK),
		ConsistentRead:            aws.Bool(true),
	}
	if prefix != "" {
		in.KeyConditionExpression = aws.String("pk = :pk AND begins_with(sk, :p)")
		in.ExpressionAttributeValues[":p"] = s(prefix)
	}
	if cursor != "" {
		in.ExclusiveStartKey = key(kvPartition, cursor)
	}
	var keys []string
	for {
		in.Limit = aws.Int32(int32(limit + 1 - len(keys)))
		out, err := k.t.client.Query(ctx, in)
		if err != nil {
			return nil, "", storage.Unavailable("list "+prefix, err)
		}
		for _, av := range out.Items {
			if sv, ok := av[attrSK].(*types.AttributeValueMemberS); ok {
				keys = append(keys, sv.Value)
			}
		}
		if len(keys) > limit || out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if len(keys) > limit {
		keys = keys[:limit]
		return keys, keys[limit-1], nil
	}
	return keys, "", nil
}
