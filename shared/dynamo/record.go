package dynamo

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/aigateway/aigateway/shared/storage"
)

var _ storage.Records = (*Records)(nil)

// Records is the Records role on the table.
type Records struct{ t *Table }

// Condition expressions. An item is live when it has no expiry or expires
// after :now; absent means missing or expired.
const (
	condLive   = "attribute_exists(pk) AND (attribute_not_exists(exp) OR exp > :now)"
	condAbsent = "attribute_not_exists(pk) OR exp <= :now"
)

// Get implements storage.Records.
func (r *Records) Get(ctx context.Context, pk, sk string) (storage.Item, error) {
	if err := storage.CheckItemKey(pk, sk); err != nil {
		return storage.Item{}, err
	}
	out, err := r.t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &r.t.name, Key: key(recordPre+pk, sk), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return storage.Item{}, storage.Unavailable("get record "+pk+"/"+sk, err)
	}
	if !live(out.Item, r.t.now()) {
		return storage.Item{}, storage.NotFound("record " + pk + "/" + sk)
	}
	return decode(pk, out.Item), nil
}

// Put implements storage.Records. A live item is updated in place, keeping
// its counters; a missing or expired one is replaced whole, starting again
// at version 1. The two cases are two conditional writes, retried when a
// concurrent writer moves the item from one case to the other.
func (r *Records) Put(ctx context.Context, item storage.Item, cond storage.Cond) (int64, error) {
	if err := storage.CheckItemKey(item.PK, item.SK); err != nil {
		return 0, err
	}
	if err := storage.CheckValue(item.Value); err != nil {
		return 0, err
	}
	op := "put record " + item.PK + "/" + item.SK
	for attempt := 0; attempt < 8; attempt++ {
		now := n(r.t.now().Unix())
		if !cond.IfAbsent {
			v, err := r.update(ctx, item, cond, now)
			if err == nil {
				return v, nil
			}
			if !conditionFailed(err) {
				return 0, storage.Unavailable(op, err)
			}
			if cond.IfVersion != 0 {
				return 0, storage.Conflict()
			}
		}
		err := r.replace(ctx, item, now)
		if err == nil {
			return 1, nil
		}
		if !conditionFailed(err) {
			return 0, storage.Unavailable(op, err)
		}
		if cond.IfAbsent {
			return 0, storage.Conflict()
		}
	}
	return 0, storage.Unavailable(op, fmt.Errorf("item kept changing between its live and absent states"))
}

// update writes a live item in place.
func (r *Records) update(ctx context.Context, item storage.Item, cond storage.Cond, now types.AttributeValue) (int64, error) {
	values := map[string]types.AttributeValue{
		":v": &types.AttributeValueMemberB{Value: nonNil(item.Value)}, ":one": n(1), ":now": now,
	}
	expr := "SET v = :v, ver = ver + :one"
	if e := expiry(item.ExpiresAt); e != 0 {
		expr += ", exp = :exp"
		values[":exp"] = n(e)
	} else {
		expr += " REMOVE exp"
	}
	condition := condLive
	if cond.IfVersion != 0 {
		condition += " AND ver = :ver"
		values[":ver"] = n(cond.IfVersion)
	}
	out, err := r.t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &r.t.name, Key: key(recordPre+item.PK, item.SK),
		UpdateExpression: &expr, ConditionExpression: &condition,
		ExpressionAttributeValues: values, ReturnValues: types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, err
	}
	return number(out.Attributes[attrVersion]), nil
}

// replace writes a fresh item (version 1, no counters) where none is live.
func (r *Records) replace(ctx context.Context, item storage.Item, now types.AttributeValue) error {
	av := key(recordPre+item.PK, item.SK)
	av[attrValue] = &types.AttributeValueMemberB{Value: nonNil(item.Value)}
	av[attrVersion] = n(1)
	if e := expiry(item.ExpiresAt); e != 0 {
		av[attrExpires] = n(e)
	}
	_, err := r.t.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.t.name, Item: av, ConditionExpression: aws.String(condAbsent),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": now},
	})
	return err
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Delete implements storage.Records.
func (r *Records) Delete(ctx context.Context, pk, sk string) error {
	if err := storage.CheckItemKey(pk, sk); err != nil {
		return err
	}
	if _, err := r.t.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &r.t.name, Key: key(recordPre+pk, sk)}); err != nil {
		return storage.Unavailable("delete record "+pk+"/"+sk, err)
	}
	return nil
}

// Incr implements storage.Records: ADD on a live item; on an absent or
// expired one, a fresh item holding the deltas. Both are conditional, and
// the loop settles races between them.
func (r *Records) Incr(ctx context.Context, pk, sk string, deltas map[string]int64, expiresAt time.Time) (map[string]int64, error) {
	if err := storage.CheckIncr(pk, sk, deltas); err != nil {
		return nil, err
	}
	op := "incr record " + pk + "/" + sk
	names := map[string]string{}
	values := map[string]types.AttributeValue{":one": n(1)}
	expr := "ADD ver :one"
	i := 0
	for c, d := range deltas {
		nk, vk := fmt.Sprintf("#c%d", i), fmt.Sprintf(":c%d", i)
		names[nk], values[vk] = counterPre+c, n(d)
		expr += ", " + nk + " " + vk
		i++
	}
	for attempt := 0; attempt < 8; attempt++ {
		now := n(r.t.now().Unix())
		values[":now"] = now
		out, err := r.t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &r.t.name, Key: key(recordPre+pk, sk),
			UpdateExpression: &expr, ConditionExpression: aws.String(condLive),
			ExpressionAttributeNames: names, ExpressionAttributeValues: values,
			ReturnValues: types.ReturnValueUpdatedNew,
		})
		if err == nil {
			got := make(map[string]int64, len(deltas))
			for c := range deltas {
				got[c] = number(out.Attributes[counterPre+c])
			}
			return got, nil
		}
		if !conditionFailed(err) {
			return nil, storage.Unavailable(op, err)
		}
		av := key(recordPre+pk, sk)
		av[attrValue] = &types.AttributeValueMemberB{Value: []byte{}}
		av[attrVersion] = n(1)
		if e := expiry(expiresAt); e != 0 {
			av[attrExpires] = n(e)
		}
		for c, d := range deltas {
			av[counterPre+c] = n(d)
		}
		_, err = r.t.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &r.t.name, Item: av, ConditionExpression: aws.String(condAbsent),
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": now},
		})
		if err == nil {
			return deltas, nil
		}
		if !conditionFailed(err) {
			return nil, storage.Unavailable(op, err)
		}
	}
	return nil, storage.Unavailable(op, fmt.Errorf("item kept changing between its live and absent states"))
}

// Query implements storage.Records. DynamoDB takes one sort-key condition,
// so prefix, range and cursor become one range [lo, hi) whose upper end is
// enforced here; expired items are filtered by the query and pages are
// filled until the limit or the end.
func (r *Records) Query(ctx context.Context, pk string, q storage.Query) (storage.Page, error) {
	if err := storage.CheckKey("partition key", pk); err != nil {
		return storage.Page{}, err
	}
	limit := storage.Clamp(q.Limit)
	lo, hi := q.Bounds()
	if hi != "" && lo >= hi {
		return storage.Page{}, nil
	}
	values := map[string]types.AttributeValue{":pk": s(recordPre + pk), ":now": n(r.t.now().Unix())}
	cond := "pk = :pk"
	switch {
	case !utf8.ValidString(lo) || !utf8.ValidString(hi):
		// The prefix's upper bound is not valid UTF-8, which DynamoDB
		// refuses: match the prefix and apply the range below.
		cond += " AND begins_with(sk, :p)"
		values[":p"] = s(q.Prefix)
	case lo != "" && hi != "":
		cond += " AND sk BETWEEN :lo AND :hi"
		values[":lo"], values[":hi"] = s(lo), s(hi)
	case lo != "":
		cond += " AND sk >= :lo"
		values[":lo"] = s(lo)
	case hi != "":
		cond += " AND sk <= :hi"
		values[":hi"] = s(hi)
	}
	in := &dynamodb.QueryInput{
		TableName: &r.t.name, KeyConditionExpression: &cond,
		FilterExpression:          aws.String("attribute_not_exists(exp) OR exp > :now"),
		ExpressionAttributeValues: values, ConsistentRead: aws.Bool(true),
		ScanIndexForward: aws.Bool(!q.Desc),
	}
	if q.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || len(after) == 0 {
			return storage.Page{}, storage.Invalid("the cursor is malformed")
		}
		in.ExclusiveStartKey = key(recordPre+pk, string(after))
	}
	var page storage.Page
	for {
		in.Limit = aws.Int32(int32(limit + 1 - len(page.Items)))
		out, err := r.t.client.Query(ctx, in)
		if err != nil {
			return storage.Page{}, storage.Unavailable("query "+pk, err)
		}
		for _, av := range out.Items {
			it := decode(pk, av)
			if it.SK < lo || (hi != "" && it.SK >= hi) {
				continue // BETWEEN includes hi, which the range excludes
			}
			page.Items = append(page.Items, it)
		}
		if len(page.Items) > limit || out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.Cursor = base64.RawURLEncoding.EncodeToString([]byte(page.Items[limit-1].SK))
	}
	return page, nil
}

var _ storage.Batcher = (*Records)(nil)

// PutNew implements storage.Batcher with BatchWriteItem, 25 items a call,
// sending again what DynamoDB leaves unprocessed under load.
func (r *Records) PutNew(ctx context.Context, items []storage.Item) error {
	var reqs []types.WriteRequest
	for _, it := range items {
		if err := storage.CheckItemKey(it.PK, it.SK); err != nil {
			return err
		}
		if err := storage.CheckValue(it.Value); err != nil {
			return err
		}
		av := key(recordPre+it.PK, it.SK)
		av[attrValue] = &types.AttributeValueMemberB{Value: nonNil(it.Value)}
		av[attrVersion] = n(1)
		if e := expiry(it.ExpiresAt); e != 0 {
			av[attrExpires] = n(e)
		}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: av}})
	}
	for len(reqs) > 0 {
		batch := reqs[:min(25, len(reqs))]
		reqs = reqs[len(batch):]
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt == 8 {
				return storage.Unavailable("put records", fmt.Errorf("%d items stayed unprocessed", len(batch)))
			}
			if attempt > 0 {
				select {
				case <-ctx.Done():
					return storage.Unavailable("put records", ctx.Err())
				case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
				}
			}
			out, err := r.t.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{r.t.name: batch},
			})
			if err != nil {
				return storage.Unavailable("put records", err)
			}
			batch = out.UnprocessedItems[r.t.name]
		}
	}
	return nil
}
