package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/streams"
)

// Consumer is a durable consumer definition bound to its stream.
type Consumer struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Change is one write provisioning made: a stream or consumer created, or updated because the
// listed fields of the server's configuration differed from the definition.
type Change struct {
	Kind   string // "stream" or "consumer"
	Name   string // stream name, or "<stream>/<durable>"
	Action string // "created" or "updated"
	Fields []string
}

func (c Change) String() string {
	s := c.Kind + " " + c.Name + " " + c.Action
	if len(c.Fields) > 0 {
		s += " (" + strings.Join(c.Fields, ", ") + ")"
	}
	return s
}

// Provision creates or updates the streams, then the consumers, in the order given, and returns
// the writes it made. Streams go first so that an advisory-fed stream (DLQ) exists before the
// consumers whose advisories it captures: an advisory nobody stores is lost.
//
// It writes only what differs. A definition owns the fields it sets (the non-zero fields of the
// config, as they appear in its JSON); a field it leaves at its zero value is the operator's
// and is never reset, and the server's own additions (defaults, `_nats.*` metadata) are not
// differences. So an ordinary start — every service of a deployment starting at once — reads
// the configuration and changes nothing, and an update carries the server's configuration with
// only the owned fields replaced.
//
// A call the cluster cannot answer yet — a timeout, no responders, a 5xx such as "JetStream
// system temporarily unavailable" while a meta leader is elected or a node rolls — is retried
// with backoff for up to ProvisionPatience: on a cluster every service of a deployment starts
// at once, and a stream at R3 takes a moment to place.
func Provision(ctx context.Context, js jetstream.JetStream, streams []jetstream.StreamConfig, consumers []Consumer) ([]Change, error) {
	var changes []Change
	for _, s := range streams {
		c, err := patiently(ctx, func() (*Change, error) { return provisionStream(ctx, js, s) })
		if err != nil {
			return changes, fmt.Errorf("provision stream %s: %w", s.Name, err)
		}
		if c != nil {
			changes = append(changes, *c)
		}
	}
	for _, cc := range consumers {
		c, err := patiently(ctx, func() (*Change, error) { return provisionConsumer(ctx, js, cc) })
		if err != nil {
			return changes, fmt.Errorf("provision consumer %s on %s: %w", cc.Config.Durable, cc.Stream, err)
		}
		if c != nil {
			changes = append(changes, *c)
		}
	}
	return changes, nil
}

// ProvisionPatience bounds the retries of one stream's or consumer's provisioning.
var ProvisionPatience = 2 * time.Minute

// patiently runs f again, with backoff from 100 ms to 3 s, while it fails with an error the
// cluster may not give a moment later (jsUnavailable), for up to ProvisionPatience.
func patiently(ctx context.Context, f func() (*Change, error)) (*Change, error) {
	deadline := time.Now().Add(ProvisionPatience)
	wait := 100 * time.Millisecond
	for {
		c, err := f()
		if err == nil || ctx.Err() != nil || !jsUnavailable(err) || time.Now().Add(wait).After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 3*time.Second)
	}
}

// jsUnavailable reports an error of a JetStream that is not answering (yet): a request timeout,
// no responders, or a server-side 5xx. A refused definition (4xx) is final.
func jsUnavailable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

func provisionStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (*Change, error) {
	for range 3 {
		st, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another service created it with other settings a moment ago: compare again
			}
			if err != nil {
				return nil, err
			}
			return &Change{Kind: "stream", Name: want.Name, Action: "created"}, nil
		}
		if err != nil {
			return nil, err
		}
		var merged jetstream.StreamConfig
		fields, err := overlay(&merged, st.CachedInfo().Config, want)
		if err != nil || len(fields) == 0 {
			return nil, err
		}
		if _, err := js.UpdateStream(ctx, merged); err != nil {
			return nil, err
		}
		return &Change{Kind: "stream", Name: want.Name, Action: "updated", Fields: fields}, nil
	}
	return nil, fmt.Errorf("stream %s changed under provisioning three times", want.Name)
}

func provisionConsumer(ctx context.Context, js jetstream.JetStream, want Consumer) (*Change, error) {
	name := want.Stream + "/" + want.Config.Durable
	for range 3 {
		c, err := js.Consumer(ctx, want.Stream, want.Config.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			_, err = js.CreateConsumer(ctx, want.Stream, want.Config)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue
			}
			if err != nil {
				return nil, err
			}
			return &Change{Kind: "consumer", Name: name, Action: "created"}, nil
		}
		if err != nil {
			return nil, err
		}
		var merged jetstream.ConsumerConfig
		fields, err := overlay(&merged, c.CachedInfo().Config, want.Config)
		if err != nil || len(fields) == 0 {
			return nil, err
		}
		if _, err := js.UpdateConsumer(ctx, want.Stream, merged); err != nil {
			return nil, err
		}
		return &Change{Kind: "consumer", Name: name, Action: "updated", Fields: fields}, nil
	}
	return nil, fmt.Errorf("consumer %s changed under provisioning three times", name)
}

// overlay compares the fields the definition sets with the server's configuration, in their
// JSON form, and returns the names of those that differ; when some do, it writes into out the
// server's configuration with them replaced by the definition's.
func overlay(out, have, want any) ([]string, error) {
	haveMap, err := jsonMap(have)
	if err != nil {
		return nil, err
	}
	wantMap, err := jsonMap(want)
	if err != nil {
		return nil, err
	}
	// The server stores a single filter subject as filter_subject, whichever way it came.
	if fs, ok := wantMap["filter_subjects"].([]any); ok && len(fs) == 1 {
		if _, ok := haveMap["filter_subjects"]; !ok {
			wantMap["filter_subject"] = fs[0]
			delete(wantMap, "filter_subjects")
		}
	}
	var fields []string
	for k, v := range wantMap {
		if !reflect.DeepEqual(haveMap[k], v) {
			fields = append(fields, k)
		}
	}
	if len(fields) == 0 {
		return nil, nil
	}
	sort.Strings(fields)
	for _, k := range fields {
		haveMap[k] = wantMap[k]
	}
	if _, ok := wantMap["filter_subjects"]; ok {
		delete(haveMap, "filter_subject")
	}
	if _, ok := wantMap["filter_subject"]; ok {
		delete(haveMap, "filter_subjects")
	}
	raw, err := json.Marshal(haveMap)
	if err != nil {
		return nil, err
	}
	return fields, json.Unmarshal(raw, out)
}

// jsonMap is v in its JSON form without the fields it leaves at their zero value.
func jsonMap(v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		if isZero(v) {
			delete(m, k)
		}
	}
	return m, nil
}

// isZero reports a JSON value a definition leaves unset (fields without omitempty marshal
// their zero value too).
func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// Durable names a durable consumer a service reads: its stream and name, as in the streams
// package's files.
type Durable struct{ Stream, Name string }

// Sizing is what the deployment decides about the definitions: Replicas (STREAMS_REPLICAS) is
// the replica count of every stream and consumer provisioned; 0 leaves replicas unowned, so a
// new stream gets the server's default (1), a consumer its stream's, and an existing one keeps
// what its operator set.
type Sizing struct{ Replicas int }

// ProvisionFunc is a service's provisioning step (natsbus.Provisioner).
type ProvisionFunc func(context.Context, jetstream.JetStream, Sizing) ([]Change, error)

// Provisioner is a service's provisioning step (service.Open runs it when STREAMS_PROVISION,
// sized by STREAMS_REPLICAS):
// the named streams and durable consumers, from their definitions in the streams package, each
// consumer passed through adjust (optional: a setting the service's own config decides)
// before Provision applies them.
func Provisioner(streamNames []string, durables []Durable, adjust func(*Consumer)) ProvisionFunc {
	return func(ctx context.Context, js jetstream.JetStream, size Sizing) ([]Change, error) {
		ss, err := streams.Streams(streamNames...)
		if err != nil {
			return nil, err
		}
		for i := range ss {
			ss[i].Replicas = size.Replicas
		}
		cs := make([]Consumer, 0, len(durables))
		for _, d := range durables {
			cc, err := streams.Consumer(d.Stream, d.Name)
			if err != nil {
				return nil, err
			}
			cc.Replicas = size.Replicas
			c := Consumer{Stream: d.Stream, Config: cc}
			if adjust != nil {
				adjust(&c)
			}
			cs = append(cs, c)
		}
		return Provision(ctx, js, ss, cs)
	}
}
