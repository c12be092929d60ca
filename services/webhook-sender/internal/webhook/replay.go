package webhook

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// HeaderReplayOf marks a WEBHOOKS message republished from a dead letter.
const HeaderReplayOf = "Ctrip-Replay-Of"

// Replay republishes a dead letter's original body to its WEBHOOKS subject. The body — and so
// the webhook-id the merchant sees — is unchanged; the Nats-Msg-Id is new for every replay
// (".replay<k>"), so the WEBHOOKS duplicate window does not swallow it.
func Replay(ctx context.Context, store DeadLetterStore, js Publisher, id string) (*jetstream.PubAck, error) {
	dl, err := store.DeadLetter(ctx, id)
	if err != nil {
		return nil, err
	}
	if dl.OriginSubject == "" {
		return nil, fmt.Errorf("dead letter %s: original message was lost, nothing to replay", id)
	}
	m := nats.NewMsg(dl.OriginSubject)
	m.Data = dl.Body
	for _, k := range []string{event.HeaderEventType, "traceparent", "tracestate"} {
		if v, ok := dl.Headers[k]; ok {
			m.Header.Set(k, v)
		}
	}
	base := dl.Headers[event.HeaderMsgID]
	if base == "" {
		base = dl.OriginStream + "." + strconv.FormatUint(dl.OriginSeq, 10)
	}
	// replay_count+1: a retried Replay after a failed MarkReplayed reuses the id and is deduplicated.
	m.Header.Set(event.HeaderMsgID, base+".replay"+strconv.Itoa(dl.ReplayCount+1))
	m.Header.Set(HeaderReplayOf, dl.ID)
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", id, err)
	}
	if _, err := store.MarkReplayed(ctx, id); err != nil {
		return ack, fmt.Errorf("replay %s published but not marked: %w", id, err)
	}
	return ack, nil
}
