package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/streams"
)

// Event types of the CHAIN stream's messages (Ctrip-Event-Type).
const (
	TypeChainHead  = "chain.head"
	TypeChainReorg = "chain.reorg"
)

// Streams the scanner publishes to; a publish is refused if the subject is captured by
// another stream.
const (
	streamPayments = streams.Payments
	streamChain    = streams.Chain
)

// DetectedMsgID is the Nats-Msg-Id of the payments.detected event of one transfer in one
// block: republishing the same block after a crash is deduplicated, the same transfer
// re-included in another block after a reorg is a new event.
func DetectedMsgID(chainID int64, txHash string, logIndex int64, blockHash string) string {
	return fmt.Sprintf("detected.%d.%s.%d.%s", chainID, strings.ToLower(txHash), logIndex, strings.ToLower(blockHash))
}

// detect records the transfers of consecutive blocks from `from` on, in chain order, and
// publishes a payments.detected event for each, returning once JetStream has acknowledged all
// of them. Each event's amount received is the payment's total up to and including its
// transfer. Each detection continues the payment's trace (stored with the row by the api
// request that created it), linked to the span of this pass over the blocks.
func (s *Scanner) detect(ctx context.Context, from uint64, transfers []Transfer, times blockTimes) (err error) {
	if len(transfers) == 0 {
		return nil
	}
	ctx, pass := s.tracer.Start(ctx, "scanner.scan", trace.WithAttributes(attribute.Int64("chain_id", s.chainID()),
		attribute.Int64("block.from", int64(from)), attribute.Int("transfers", len(transfers))))
	defer func() { natsbus.EndSpan(pass, err) }()
	var payments map[string]Payment
	err = s.retry(ctx, "record_transfers", func(ctx context.Context) (err error) {
		payments, err = s.store.RecordTransfers(ctx, from, transfers)
		return err
	})
	if err != nil {
		return err
	}
	received := map[string]*big.Int{}
	msgs := make([]outMsg, 0, len(transfers))
	spans := make([]trace.Span, 0, len(transfers))
	defer func() {
		for _, sp := range spans {
			sp.End()
		}
	}()
	for _, t := range transfers {
		p, ok := payments[t.PaymentID]
		if !ok {
			return fmt.Errorf("payment %s of transfer %s not found", t.PaymentID, t.TxHash.Hex())
		}
		sum, ok := received[p.ID]
		if !ok {
			if sum, ok = new(big.Int).SetString(p.Received, 10); !ok {
				return fmt.Errorf("payment %s: received %q is not a number", p.ID, p.Received)
			}
			received[p.ID] = sum
		}
		sum.Add(sum, t.Value)
		data, err := s.detectedData(p, sum, t)
		if err != nil {
			return err
		}
		// The id is the transfer's and its block's (its msgID and the block's time): a rerun
		// after a crash before the block was committed builds the same event id again, so the
		// merchant's webhook-id stays too, also past the stream's duplicate window.
		msgID := DetectedMsgID(t.ChainID, t.TxHash.Hex(), t.LogIndex, t.BlockHash.Hex())
		at, err := s.blockTimeOf(ctx, times, t.BlockNumber)
		if err != nil {
			return err
		}
		env, err := event.NewFor(event.TypeForSubject(event.SubjectDetected), at, msgID, data)
		if err != nil {
			return err
		}
		body, err := json.Marshal(env)
		if err != nil {
			return err
		}
		sctx, span := natsbus.StartSpanFor(ctx, s.tracer, p.TraceContext, "scanner.detect", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("payment.id", p.ID), attribute.String("event_id", env.ID),
				attribute.Int64("chain_id", t.ChainID), attribute.String("tx_hash", t.TxHash.Hex()), attribute.Int64("log_index", t.LogIndex)))
		spans = append(spans, span)
		msgs = append(msgs, outMsg{
			ctx: sctx, key: p.ID, subject: event.SubjectDetected, stream: streamPayments, eventType: env.Type, body: body,
			msgID: msgID,
			log: []any{"payment_id", p.ID, "event_id", env.ID, "tx_hash", t.TxHash.Hex(), "log_index", t.LogIndex,
				"block", t.BlockNumber, "value_base_units", t.Value.String(), "received_base_units", sum.String()},
		})
	}
	if err := s.publishAll(ctx, msgs); err != nil {
		for _, sp := range spans {
			sp.SetStatus(codes.Error, err.Error())
		}
		return err
	}
	for _, m := range msgs {
		s.log.InfoContext(m.ctx, "transfer detected", m.log...)
	}
	s.metrics.detected(ctx, s.chainID(), len(msgs))
	return nil
}

func (s *Scanner) detectedData(p Payment, received *big.Int, t Transfer) (event.Payment, error) {
	amount, ok := new(big.Int).SetString(p.AmountBaseUnits, 10)
	if !ok {
		return event.Payment{}, fmt.Errorf("payment %s: amount %q is not a number", p.ID, p.AmountBaseUnits)
	}
	// null for a transaction's own value: it has no log. A transfer inside a transaction and a
	// reconciled one carry their negative key, so that the confirmer, which records the
	// transfer from the event, keys it as the scanner did.
	var logIndex *int64
	if t.LogIndex != NativeLogIndex {
		li := t.LogIndex
		logIndex = &li
	}
	return event.NewPayment(event.PaymentRow{
		ID: p.ID, MerchantID: p.MerchantID, Status: event.StatusDetected, ChainID: p.ChainID, Chain: s.cfg.Chain.Name,
		Address: p.Address, Token: p.Token, TokenContract: p.TokenContract, Decimals: p.Decimals,
		Amount: amount, Received: received,
		// The transfer's depth when detected: its own block counts as the first.
		Confirmations: int64(subFloor(s.head, t.BlockNumber) + 1),
		Transactions: []event.Transaction{{
			TxHash: strings.ToLower(t.TxHash.Hex()), LogIndex: logIndex, BlockNumber: t.BlockNumber,
			BlockHash: strings.ToLower(t.BlockHash.Hex()), ValueBaseUnits: t.Value.String(), Status: event.TransferDetected,
		}},
		Metadata: p.Metadata, ExpiresAt: p.ExpiresAt,
	}), nil
}

// blockTimes are the times of the blocks a detect's transfers are in, by number: a copy of the
// pending blocks' the scanner hands to the detect (which may run in the background), and the
// detect's own lookups.
type blockTimes map[uint64]time.Time

// pendingTimes copies the pending blocks' times.
func (s *Scanner) pendingTimes() blockTimes {
	times := make(blockTimes, len(s.pending))
	for _, b := range s.pending {
		times[b.Number] = b.Time
	}
	return times
}

// blockTimeOf is block n's time: from times, else from its header (a transfer a reconciliation
// put in an earlier block).
func (s *Scanner) blockTimeOf(ctx context.Context, times blockTimes, n uint64) (time.Time, error) {
	if at, ok := times[n]; ok {
		return at, nil
	}
	h, err := s.header(ctx, n)
	if err != nil {
		return time.Time{}, err
	}
	times[n] = blockTime(h)
	return times[n], nil
}

// publishHead announces b on chain.<id>.head once every event of the blocks up to it is on
// PAYMENTS.
func (s *Scanner) publishHead(ctx context.Context, b Block) error {
	body, err := json.Marshal(event.ChainHead{
		ChainID: s.chainID(), Number: b.Number, Hash: strings.ToLower(b.Hash.Hex()),
		ParentHash: strings.ToLower(b.Parent.Hex()), Time: b.Time,
	})
	if err != nil {
		return err
	}
	msgID := fmt.Sprintf("head.%d.%d.%s", s.chainID(), b.Number, strings.ToLower(b.Hash.Hex()))
	return s.publish(ctx, event.HeadSubject(s.chainID()), streamChain, msgID, TypeChainHead, body)
}

func (s *Scanner) publishReorg(ctx context.Context, old, ancestor Block, newHead *types.Header) error {
	newHash := strings.ToLower(newHead.Hash().Hex())
	body, err := json.Marshal(event.ChainReorg{
		ChainID:              s.chainID(),
		CommonAncestorNumber: ancestor.Number, CommonAncestorHash: strings.ToLower(ancestor.Hash.Hex()),
		OldHeadNumber: old.Number, OldHeadHash: strings.ToLower(old.Hash.Hex()),
		NewHeadNumber: newHead.Number.Uint64(), NewHeadHash: newHash,
	})
	if err != nil {
		return err
	}
	msgID := fmt.Sprintf("reorg.%d.%d.%s", s.chainID(), ancestor.Number, newHash)
	return s.publish(ctx, event.ReorgSubject(s.chainID()), streamChain, msgID, TypeChainReorg, body)
}

// outMsg is a message to publish with its trace context.
type outMsg struct {
	ctx context.Context
	// key orders messages: those with the same key are published one after another, in
	// order (a payment's events must not overtake each other).
	key                               string
	subject, stream, msgID, eventType string
	body                              []byte
	log                               []any
}

// publishWindow bounds the asynchronous publishes waiting for their acks at once.
const publishWindow = 512

// publish sends one message and waits for the stream's ack, retrying until it comes.
func (s *Scanner) publish(ctx context.Context, subject, stream, msgID, eventType string, body []byte) error {
	return s.publishAll(ctx, []outMsg{{ctx: ctx, subject: subject, stream: stream, msgID: msgID, eventType: eventType, body: body}})
}

// publishAll publishes msgs and returns once the stream has acknowledged every one. Messages
// with the same key go one after another, in order: they are published in waves, the n-th
// message of every key in the n-th, asynchronously, and a wave starts once the stream has
// acknowledged the one before. A failed attempt publishes them all again: those already
// stored are dropped by the stream's duplicate window (same Nats-Msg-Id), and no message was
// sent after a failed one of its key.
func (s *Scanner) publishAll(ctx context.Context, msgs []outMsg) error {
	if len(msgs) == 0 {
		return nil
	}
	var waves [][]outMsg
	seen := map[string]int{}
	for _, m := range msgs {
		n := seen[m.key]
		seen[m.key] = n + 1
		if n == len(waves) {
			waves = append(waves, nil)
		}
		waves[n] = append(waves[n], m)
	}
	return s.retry(ctx, "publish "+msgs[0].subject, func(ctx context.Context) error {
		for _, wave := range waves {
			for len(wave) > 0 {
				k := min(len(wave), publishWindow)
				if err := s.publishWave(ctx, wave[:k]); err != nil {
					return err
				}
				wave = wave[k:]
			}
		}
		return nil
	})
}

// publishWave publishes msgs asynchronously and waits for every ack.
func (s *Scanner) publishWave(ctx context.Context, msgs []outMsg) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var errs []error
	for _, om := range msgs {
		m := nats.NewMsg(om.subject)
		m.Data = om.body
		m.Header.Set(event.HeaderMsgID, om.msgID)
		m.Header.Set(event.HeaderEventType, om.eventType)
		natsbus.Inject(om.ctx, m.Header)
		f, err := s.cfg.JS.PublishMsgAsync(m, jetstream.WithExpectStream(om.stream))
		if err != nil {
			errs = append(errs, err)
			break // the rest of the wave waits for the retry
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err)
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	return errors.Join(errs...)
}

// blockTime is a block's timestamp.
func blockTime(h *types.Header) time.Time { return time.Unix(int64(h.Time), 0).UTC() }
