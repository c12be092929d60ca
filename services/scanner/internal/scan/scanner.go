package scan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ctrip-pay/pipeline/shared/chains"
)

// Config is one chain's scanner.
type Config struct {
	Chain chains.Chain
	RPC   ChainReader
	Store Store
	JS    Publisher

	// Batch is the most blocks one poll processes; Poll the wait once the head is reached.
	Batch uint64
	Poll  time.Duration
	// StartBlock is the first block of a chain that has no cursor yet; nil means the current
	// head minus the chain's confirmations (floored at 0).
	StartBlock *uint64
	// Prefetch is how many requests for blocks (with their receipts) are fetched ahead,
	// concurrently, while earlier blocks are processed; RPCBatch is how many blocks one
	// request (a JSON-RPC batch) fetches (0: DefaultRPCBatch).
	Prefetch int
	RPCBatch int
	// Retry is the backoff for failed RPC, database and JetStream calls; CallTimeout bounds
	// each attempt.
	Retry       Backoff
	CallTimeout time.Duration
	// Keep is how many recent blocks are kept for reorg detection: the deepest reorg the
	// scanner can walk back exactly.
	Keep uint64
	// ReconcileBudget is how many eth_getBalance calls a block may cost on a node without the
	// debug API, where ETH paid to a deposit address from inside a contract's transaction is
	// found by reconciling the open payments' balances (reconcile.go): each address is read at
	// least every ceil(addresses / budget) blocks. 0 means DefaultReconcileBudget.
	ReconcileBudget int

	Tracer  trace.Tracer
	Metrics *Metrics
	Log     *slog.Logger
	// OnHead, when set, is told every head the chain reports (readiness: a head that stops
	// advancing).
	OnHead func(number uint64)
}

// DefaultRPCBatch is the blocks per JSON-RPC batch request when Config.RPCBatch is 0: large
// enough that the requests' fixed costs vanish, small enough for providers that cap batches.
const DefaultRPCBatch = 25

// Scanner follows one chain. It is not safe for concurrent use: one goroutine per chain.
type Scanner struct {
	cfg     Config
	rpc     ChainReader
	store   Store
	log     *slog.Logger
	metrics *Metrics
	tracer  trace.Tracer

	tokens []common.Address // configured ERC-20 contracts

	// cursor is the last block committed to the database (nil before the first); pending the
	// blocks processed since and detected the transfers in them, all settled together.
	cursor   *Block
	pending  []Block
	detected []Transfer
	// inflight is the background detect of the transfers of pending[:dispatched], if one
	// runs; unsettled counts the transfers of all pending blocks.
	inflight   *detecting
	dispatched int
	unsettled  int
	// next is the next block to process; started is false until it is known.
	next    uint64
	started bool
	// head is the chain head read at the start of the current poll.
	head uint64

	// deposits is only written between polls, before a poll's prefetcher starts, so the
	// prefetcher's goroutines may read it.
	deposits *deposits

	// traces: the node traces blocks (probed once, at the first Run); otherwise recon
	// reconciles balances. late holds reconciled transfers of blocks before those waiting in
	// detected, detected first, each with its own block's totals. balanceCalls: the node
	// runs the balance reader (balancereader.go), probed with the traces.
	probed       bool
	traces       bool
	balanceCalls bool
	recon        *reconciler
	late         []Transfer
}

// New checks cfg and returns a scanner for its chain.
func New(cfg Config) (*Scanner, error) {
	switch {
	case cfg.RPC == nil || cfg.Store == nil || cfg.JS == nil:
		return nil, errors.New("scan: RPC, Store and JS are required")
	case cfg.Batch == 0:
		return nil, errors.New("scan: Batch must be at least 1")
	case cfg.Poll <= 0 || cfg.CallTimeout <= 0 || cfg.Retry.Min <= 0 || cfg.Retry.Max < cfg.Retry.Min:
		return nil, errors.New("scan: Poll, CallTimeout and Retry must be positive")
	}
	if cfg.Keep == 0 {
		cfg.Keep = 256
	}
	if cfg.Prefetch < 1 {
		cfg.Prefetch = 1
	}
	if cfg.RPCBatch < 1 {
		cfg.RPCBatch = DefaultRPCBatch
	}
	if cfg.ReconcileBudget < 1 {
		cfg.ReconcileBudget = DefaultReconcileBudget
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("scanner")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	s := &Scanner{
		cfg: cfg, rpc: cfg.RPC, store: cfg.Store, metrics: cfg.Metrics, tracer: cfg.Tracer,
		log:      cfg.Log.With("chain_id", cfg.Chain.ID, "chain", cfg.Chain.Name),
		deposits: newDeposits(),
		recon:    newReconciler(cfg.ReconcileBudget),
	}
	for _, t := range cfg.Chain.Tokens {
		s.tokens = append(s.tokens, common.HexToAddress(t.Contract))
	}
	return s, nil
}

func (s *Scanner) chainID() int64 { return s.cfg.Chain.ID }

// Run scans until ctx ends; it returns nil then. It returns an error only for what waiting
// cannot fix: the RPC serves another chain than configured.
func (s *Scanner) Run(ctx context.Context) error {
	if err := s.checkChainID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := s.probeTraces(ctx); err != nil {
		return nil // only the end of ctx stops a retry
	}
	if err := s.loadCursor(ctx); err != nil {
		return nil
	}
	s.log.InfoContext(ctx, "scanner started", "cursor", describe(s.cursor), "batch", s.cfg.Batch)
	for ctx.Err() == nil {
		caughtUp, err := s.poll(ctx)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, ErrCursorMoved):
			s.log.WarnContext(ctx, "cursor moved by another scanner instance; reloading it")
			if err := s.loadCursor(ctx); err != nil {
				return nil
			}
		case errors.Is(err, errChainMoved):
			s.log.InfoContext(ctx, "chain moved under the batch; resuming at the cursor", "err", err)
			_ = sleep(ctx, s.cfg.Retry.Min)
		case err != nil:
			s.log.ErrorContext(ctx, "poll failed", "err", err)
			_ = sleep(ctx, s.cfg.Retry.Min)
		case caughtUp:
			_ = sleep(ctx, s.cfg.Poll)
		}
	}
	return nil
}

func (s *Scanner) checkChainID(ctx context.Context) error {
	var id *big.Int
	if err := s.retry(ctx, "chain_id", func(ctx context.Context) (err error) {
		id, err = s.rpc.ChainID(ctx)
		return err
	}); err != nil {
		return err
	}
	if !id.IsInt64() || id.Int64() != s.chainID() {
		return fmt.Errorf("chain %d (%s): rpc_url serves chain id %s", s.chainID(), s.cfg.Chain.Name, id)
	}
	return nil
}

// loadCursor (re)starts from the database's cursor, forgetting anything processed since.
func (s *Scanner) loadCursor(ctx context.Context) error {
	var (
		cur Block
		ok  bool
	)
	if err := s.retry(ctx, "load_cursor", func(ctx context.Context) (err error) {
		cur, ok, err = s.store.Cursor(ctx, s.chainID())
		return err
	}); err != nil {
		return err
	}
	s.cursor, s.pending, s.detected, s.late, s.started = nil, nil, nil, nil, false
	s.dispatched, s.unsettled = 0, 0
	s.recon.reset()
	if ok {
		s.cursor, s.next, s.started = &cur, cur.Number+1, true
	}
	return nil
}

func describe(b *Block) string {
	if b == nil {
		return "none"
	}
	return fmt.Sprintf("%d %s", b.Number, b.Hash.Hex())
}

// last is the last processed block: pending or committed.
func (s *Scanner) last() *Block {
	if n := len(s.pending); n > 0 {
		return &s.pending[n-1]
	}
	return s.cursor
}

// subFloor is a − b, or 0 if b > a: go-ethereum reads negative block numbers as tags.
func subFloor(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// poll processes the next batch: blocks next .. min(head, next+Batch−1), then announces the
// batch's last block on chain.<id>.head. It reports whether the scanner has reached the head.
func (s *Scanner) poll(ctx context.Context) (caughtUp bool, err error) {
	if err := s.retry(ctx, "block_number", func(ctx context.Context) (err error) {
		s.head, err = s.rpc.BlockNumber(ctx)
		return err
	}); err != nil {
		return false, err
	}
	// Deposits after the head: a payment is committed before its address is handed out, so
	// every transfer in a block up to head is to an address already visible here.
	if err := s.refreshDeposits(ctx); err != nil {
		return false, err
	}
	s.metrics.observeHead(ctx, s.chainID(), s.head)
	if s.cfg.OnHead != nil {
		s.cfg.OnHead(s.head)
	}
	if !s.started {
		s.next, s.started = subFloor(s.head, s.cfg.Chain.Confirmations), true
		if s.cfg.StartBlock != nil {
			s.next = *s.cfg.StartBlock
		}
		s.log.InfoContext(ctx, "no cursor: starting", "block", s.next, "head", s.head)
	}
	var sched schedule
	if !s.traces {
		if err := s.prepareReconcile(ctx); err != nil {
			return false, err
		}
		sched = s.recon.sched
	}
	if s.head < s.next {
		return true, s.checkTip(ctx)
	}
	// One prefetcher for the way to the head, so blocks keep coming while a batch settles.
	blocks := s.prefetch(ctx, s.next, s.head, sched)
	defer blocks.stop()
	for {
		before := s.cursor
		to := min(s.head, s.next+s.cfg.Batch-1)
		reorged, err := s.scanRange(ctx, blocks, s.next, to)
		if s.cursor != nil && (before == nil || s.cursor.Number > before.Number) {
			if herr := s.publishHead(ctx, *s.cursor); herr != nil && err == nil {
				err = herr
			}
		}
		if err != nil || reorged || to == s.head {
			return err == nil && s.cursor != nil && s.cursor.Number >= s.head, err
		}
	}
}

// maxSettle is how many transfers are held before they are settled: recorded, published and
// committed with their blocks.
const maxSettle = 2000

// scanRange processes blocks from..to in order, taking them from blocks. It stops early at a
// reorg (after rewinding the cursor to the common ancestor; reorged is true then) or an error;
// the next poll resumes after the cursor. Blocks are settled together — their transfers
// recorded and published, then, once JetStream has acknowledged every event, the blocks
// committed — at the end of the range, before a reorg is handled, and whenever maxSettle
// transfers are waiting.
func (s *Scanner) scanRange(ctx context.Context, blocks *prefetcher, from, to uint64) (reorged bool, err error) {
	for n := from; n <= to; n++ {
		f, err := blocks.next(ctx)
		if err != nil {
			return false, errors.Join(err, s.settle(ctx))
		}
		if f.block.NumberU64() != n {
			return false, errors.Join(fmt.Errorf("prefetch: block %d where %d was expected", f.block.NumberU64(), n), s.settle(ctx))
		}
		if last := s.last(); last != nil && last.Number+1 == n && f.block.ParentHash() != last.Hash {
			if err := s.settle(ctx); err != nil {
				return false, err
			}
			return true, s.reorg(ctx, n-1, f.block.Header())
		}
		if err := s.processBlock(ctx, f); err != nil {
			return false, errors.Join(err, s.settle(ctx))
		}
		s.next = n + 1
		s.detectAhead(ctx)
		if s.unsettled >= maxSettle {
			if err := s.settle(ctx); err != nil {
				return false, err
			}
		}
	}
	return false, s.settle(ctx)
}

// processBlock finds the transfers in a block and adds both to those waiting to be settled.
func (s *Scanner) processBlock(ctx context.Context, f fetched) error {
	logs, err := s.blockLogs(ctx, f.block, f.logs)
	if err != nil {
		return err
	}
	transfers, err := s.transfers(ctx, f, logs)
	if err != nil {
		return err
	}
	if f.untraced {
		s.metrics.untraced(ctx, s.chainID())
		s.log.ErrorContext(ctx, "the node no longer holds the state to trace the block: ETH paid to deposit addresses from inside its transactions is not seen",
			"block", f.block.NumberU64(), "block_hash", f.block.Hash().Hex())
	}
	var found []Transfer
	if !s.traces {
		if found, err = s.reconcileBlock(ctx, f, transfers); err != nil {
			return err
		}
	}
	s.pending = append(s.pending, Block{Number: f.block.NumberU64(), Hash: f.block.Hash(), Parent: f.block.ParentHash(), Time: blockTime(f.block.Header())})
	s.detected = append(s.detected, transfers...)
	s.unsettled += len(transfers) + len(found)
	for _, t := range found {
		s.addReconciled(t)
	}
	return nil
}

// addReconciled queues a reconciled transfer of block t.BlockNumber, at most the block just
// processed. One in a block whose transfers still wait goes among them in block order; one in
// an earlier block (already being recorded, or committed) is detected on its own, before them,
// with the totals of its own block: a rescan that finds it again then reports the same amounts.
func (s *Scanner) addReconciled(t Transfer) {
	if s.dispatched < len(s.pending) && t.BlockNumber >= s.pending[s.dispatched].Number {
		i, _ := slices.BinarySearchFunc(s.detected, t.BlockNumber+1, func(d Transfer, n uint64) int { return cmp.Compare(d.BlockNumber, n) })
		s.detected = slices.Insert(s.detected, i, t)
		return
	}
	s.late = append(s.late, t)
}

// detectLate detects reconciled transfers of earlier blocks, block by block.
func (s *Scanner) detectLate(ctx context.Context, late []Transfer, times blockTimes) error {
	late = slices.Clone(late)
	slices.SortStableFunc(late, func(a, b Transfer) int { return cmp.Compare(a.BlockNumber, b.BlockNumber) })
	for len(late) > 0 {
		n := 1
		for n < len(late) && late[n].BlockNumber == late[0].BlockNumber {
			n++
		}
		if err := s.detect(ctx, late[0].BlockNumber, late[:n], times); err != nil {
			return err
		}
		late = late[n:]
	}
	return nil
}

// detecting is a detect running in the background: the transfers of pending blocks from
// pending[first] (block number from) up to the block processed when it started.
type detecting struct {
	first     int
	from      uint64
	transfers []Transfer
	late      []Transfer // detected first (detectLate)
	done      chan struct{}
	err       error
}

// detectAhead hands the transfers waiting to a background detect unless one is running, so
// that recording and publishing them overlaps with fetching and processing the next blocks.
// Detects run one at a time, in block order: each one's totals count the transfers recorded
// by those before.
func (s *Scanner) detectAhead(ctx context.Context) {
	if d := s.inflight; d != nil {
		select {
		case <-d.done:
		default:
			return
		}
		if d.err != nil {
			return // settle reports it
		}
		s.inflight = nil
	}
	if len(s.detected) == 0 && len(s.late) == 0 {
		s.dispatched = len(s.pending)
		return
	}
	d := &detecting{first: s.dispatched, from: s.pending[s.dispatched].Number, transfers: s.detected, late: s.late, done: make(chan struct{})}
	s.inflight, s.detected, s.late, s.dispatched = d, nil, nil, len(s.pending)
	times := s.pendingTimes()
	go func() {
		defer close(d.done)
		if d.err = s.detectLate(ctx, d.late, times); d.err == nil {
			d.err = s.detect(ctx, d.from, d.transfers, times)
		}
	}()
}

// awaitDetect waits for the background detect; the transfers of one that failed wait again.
func (s *Scanner) awaitDetect() error {
	d := s.inflight
	if d == nil {
		return nil
	}
	<-d.done
	s.inflight = nil
	if d.err != nil {
		s.detected = append(d.transfers, s.detected...)
		s.late = append(d.late, s.late...)
		s.dispatched = d.first
	}
	return d.err
}

// settle publishes a payments.detected event for each waiting transfer (after the background
// detect, if one runs) and, once JetStream has acknowledged all of them, commits the pending
// blocks and moves the cursor to the last.
func (s *Scanner) settle(ctx context.Context) error {
	if err := s.awaitDetect(); err != nil {
		return err
	}
	if len(s.pending) == 0 {
		return nil
	}
	times := s.pendingTimes()
	if err := s.detectLate(ctx, s.late, times); err != nil {
		return err
	}
	s.late = nil
	if len(s.detected) > 0 {
		if err := s.detect(ctx, s.pending[s.dispatched].Number, s.detected, times); err != nil {
			return err
		}
	}
	err := s.retry(ctx, "commit_blocks", func(ctx context.Context) error {
		err := s.store.CommitBlocks(ctx, s.chainID(), s.cursor, s.pending, s.cfg.Keep)
		if errors.Is(err, ErrCursorMoved) {
			return stop{err}
		}
		return err
	})
	if err != nil {
		return err
	}
	last := s.pending[len(s.pending)-1]
	s.metrics.committed(ctx, s.chainID(), len(s.pending), last.Number)
	s.cursor, s.pending, s.detected, s.late = &last, nil, nil, nil
	s.dispatched, s.unsettled = 0, 0
	return nil
}

// checkTip looks for a reorg while there is no new block: the chain may have switched to a
// branch no longer than the scanned one, which the parent hash of the next block would only
// reveal later.
func (s *Scanner) checkTip(ctx context.Context) error {
	if s.cursor == nil {
		return nil
	}
	n := min(s.head, s.cursor.Number)
	stored, ok := s.cursor.Hash, true
	if n != s.cursor.Number {
		if err := s.retry(ctx, "stored_block", func(ctx context.Context) (err error) {
			stored, ok, err = s.store.BlockHash(ctx, s.chainID(), n)
			return err
		}); err != nil {
			return err
		}
	}
	if !ok {
		return nil
	}
	h, err := s.header(ctx, n)
	if err != nil || h.Hash() == stored {
		return err
	}
	tip, err := s.header(ctx, s.head)
	if err != nil {
		return err
	}
	return s.reorg(ctx, n, tip)
}

func (s *Scanner) header(ctx context.Context, n uint64) (*types.Header, error) {
	var h *types.Header
	err := s.retry(ctx, "header", func(ctx context.Context) (err error) {
		h, err = s.rpc.HeaderByNumber(ctx, new(big.Int).SetUint64(n))
		if errors.Is(err, ethereum.NotFound) {
			return stop{fmt.Errorf("header %d: %w", n, errChainMoved)}
		}
		return err
	})
	return h, err
}

// reorg walks back from block `from` (committed) to the newest block whose stored hash is still
// canonical, announces the reorg on chain.<id>.reorg, then rewinds the cursor to that ancestor,
// so the orphaned range is scanned again on the new branch. The announcement goes first: if the
// process dies between the two, the restarted scanner finds the same mismatch and republishes
// the same message, which JetStream deduplicates; the other order could lose it.
func (s *Scanner) reorg(ctx context.Context, from uint64, newHead *types.Header) error {
	old := *s.cursor
	var ancestor Block
	for k := from; ; k-- {
		stored, ok := old.Hash, k == old.Number
		if !ok {
			if err := s.retry(ctx, "stored_block", func(ctx context.Context) (err error) {
				stored, ok, err = s.store.BlockHash(ctx, s.chainID(), k)
				return err
			}); err != nil {
				return err
			}
		}
		h, err := s.header(ctx, k)
		if err != nil {
			return err
		}
		if !ok {
			s.log.ErrorContext(ctx, "reorg deeper than the blocks kept; rescanning from the oldest known",
				"keep", s.cfg.Keep, "block", k)
		}
		if !ok || h.Hash() == stored || k == 0 {
			ancestor = Block{Number: k, Hash: h.Hash(), Parent: h.ParentHash, Time: blockTime(h)}
			break
		}
	}
	s.log.WarnContext(ctx, "reorg", "common_ancestor", ancestor.Number, "depth", old.Number-ancestor.Number,
		"old_head", old.Number, "old_head_hash", old.Hash.Hex(), "new_head", newHead.Number.Uint64(), "new_head_hash", newHead.Hash().Hex())
	if err := s.publishReorg(ctx, old, ancestor, newHead); err != nil {
		return err
	}
	err := s.retry(ctx, "rewind", func(ctx context.Context) error {
		err := s.store.Rewind(ctx, s.chainID(), old, ancestor)
		if errors.Is(err, ErrCursorMoved) {
			return stop{err}
		}
		return err
	})
	if err != nil {
		return err
	}
	s.cursor, s.next = &ancestor, ancestor.Number+1
	s.recon.rewind(ancestor.Number)
	s.metrics.reorg(ctx, s.chainID(), old.Number-ancestor.Number)
	return nil
}
