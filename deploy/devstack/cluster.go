package main

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/postgres"
)

// startReplicas starts the further processes of each service in replicas (2 = one more):
// "<service>-2" and on. A scanner replica starts once the first scanner leads the chain, so that
// the first is the leader and the others stand by.
func (s *stack) startReplicas(ctx context.Context, replicas map[string]int) error {
	names := make([]string, 0, len(replicas))
	for svc := range replicas {
		names = append(names, svc)
	}
	sort.Strings(names)
	for _, svc := range names {
		if svc == "scanner" && replicas[svc] > 1 {
			if err := s.waitFor1(ctx, "the scanner leading the chain", func() (bool, error) {
				pid, err := s.leaseHolder(ctx)
				return pid != 0, err
			}); err != nil {
				return err
			}
		}
		for i := 2; i <= replicas[svc]; i++ {
			if err := s.start(fmt.Sprintf("%s-%d", svc, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// leaseHolder is the Postgres backend pid holding the devnet chain's scanner lease, 0 if none.
func (s *stack) leaseHolder(ctx context.Context) (int, error) {
	db, err := postgres.Open(ctx, s.dbURL)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	k := uint64(postgres.LeaseKey("scanner/chain/1337"))
	var pids []int
	if err := db.SelectContext(ctx, &pids, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1
		AND objid = $2 AND objsubid = 1 AND granted`, int64(uint32(k>>32)), int64(uint32(k))); err != nil {
		return 0, err
	}
	switch len(pids) {
	case 0:
		return 0, nil
	case 1:
		return pids[0], nil
	}
	return 0, fmt.Errorf("%d sessions hold the scanner lease", len(pids))
}

// poll checks cond every interval until it holds, it fails, ctx ends or deadline passes (then
// the error names what was awaited).
func poll(ctx context.Context, what string, deadline time.Time, interval time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// waitFor1 polls cond every 50 ms for at most two minutes.
func (s *stack) waitFor1(ctx context.Context, what string, cond func() (bool, error)) error {
	return poll(ctx, what, time.Now().Add(2*time.Minute), 50*time.Millisecond, cond)
}

// connectJS connects a JetStream client to url; close the connection when done.
func connectJS(url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// payETH creates an ETH payment of amount (in ETH) for the demo merchant through the REST API
// and pays it in full from the customer; it returns the payment's id.
func (s *stack) payETH(ctx context.Context, amount string) (string, error) {
	var p struct {
		ID              string `json:"id"`
		Address         string `json:"address"`
		AmountBaseUnits string `json:"amount_base_units"`
	}
	if err := s.call(ctx, "POST", "/v1/payments", s.merchantKey, map[string]any{"chain_id": 1337, "token": "ETH", "amount": amount}, &p); err != nil {
		return "", err
	}
	wei, ok := new(big.Int).SetString(p.AmountBaseUnits, 10)
	if !ok {
		return "", fmt.Errorf("payment %s: amount_base_units %q", p.ID, p.AmountBaseUnits)
	}
	if _, err := s.chain.sendETH(ctx, s.customer.Key, common.HexToAddress(p.Address), wei); err != nil {
		return "", fmt.Errorf("pay %s: %w", p.ID, err)
	}
	return p.ID, nil
}
