package scan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rpc"
)

// Balance reconciliation, for nodes without the debug API: the scanner reads the balance of
// the native payments' deposit addresses (only the open payments' where the Store is an
// OpenPaymentFinder) at least every stride blocks. When it rose by more than the transfers
// detected to the address since the previous reading, the difference came in some other way
// (a call inside a contract's transaction, a withdrawal, a self-destruct). The scanner then
// bisects the blocks in between with more readings, down to each block where the balance
// rose unexplained, and records a transfer in that block (ReconciledLogIndex). The block found
// does not depend on when the readings were taken, so a rescan finds the same transfer under
// the same key. A fall (a sweep) only moves the baseline on; a rise that a fall between the
// same two readings hides is not seen, but a deposit address sends only once its payment is
// confirmed.
//
// Cost: stride = ceil(watched / budget) blocks, so a block costs at most budget readings
// (pinned to the block's hash), read ahead by the prefetcher with the block — in a few eth_call
// requests where the node takes a state override (balancereader.go), else in JSON-RPC batches
// of eth_getBalance. While the scanner is further behind the head than that, the readings are
// spread over the blocks up to the head instead (10 × SCAN_BATCH_BLOCKS apart) and gathered at
// the last block of each request of blocks, and every address is read at the head as well:
// what came in during the catch-up is reported by its end. A catch-up shorter than that
// stride reads them at the head only, once each. Bisecting costs about
// log2(stride) readings per unexplained increase; the first reading of an address, one.

// DefaultReconcileBudget is the eth_getBalance calls per block when Config.ReconcileBudget is
// 0: with 10,000 open payments each address is read every 50 blocks.
const DefaultReconcileBudget = 200

// maxBalanceBatch bounds the eth_getBalance calls of one JSON-RPC batch request.
const maxBalanceBatch = 100

// openRefresh is how often the open payments are read again from a Store that offers them.
const openRefresh = 30 * time.Second

// errNoState is a reading the node cannot give: it no longer holds the block's state.
var errNoState = errors.New("the node does not hold the state of the block")

// reconciler is the scanner's view of the addresses it reconciles. The prefetcher reads only
// sched; everything else belongs to the scanner's goroutine.
type reconciler struct {
	budget int
	sched  schedule

	// known is every native deposit of the chain by payment id, fresh those seen since the
	// last sync; open the ids the last read of the open payments returned (nil without an
	// OpenPaymentFinder), recent those seen since that read (open until the next says
	// otherwise); reopen: that read came after the last sync.
	known  map[string]Deposit
	fresh  []string
	open   map[string]bool
	recent map[string]bool
	openAt time.Time
	reopen bool
	dirty  bool // the set changed since sched was built

	watched   map[common.Address]*watch
	byPayment map[string]*watch
	// hashes are the processed blocks' hashes, where readings are pinned.
	hashes map[uint64]common.Hash
	// primed: the baselines are set since the last start or reorg.
	primed bool
}

// schedule says which addresses are read at which block: slots[n % stride] at block n (none
// with onlyLast), and all of them at block last when it is set (the head a catch-up ends at). gather (while
// catching up) moves the readings due in the blocks of one request to its last block: one
// state read per request instead of one per block, each address read at most RPCBatch−1
// blocks later than its slot says.
type schedule struct {
	stride   uint64
	slots    [][]common.Address
	last     uint64
	all      []common.Address
	gather   bool
	onlyLast bool // nothing is read before block last
}

func (sc schedule) due(n uint64) []common.Address {
	switch {
	case sc.stride == 0:
		return nil
	case sc.all != nil && n == sc.last:
		return sc.all
	case sc.onlyLast:
		return nil
	}
	return sc.slots[n%sc.stride]
}

// watch is one address: its balance at block base and the transfers detected to it since;
// payments counts the watched payments paid to it (one, unless a test reuses an address).
type watch struct {
	dep      Deposit
	base     uint64
	balance  *big.Int // nil: not read (yet)
	inflows  []inflow
	payments int
}

type inflow struct {
	block uint64
	value *big.Int
}

func newReconciler(budget int) *reconciler {
	return &reconciler{
		budget: budget, known: map[string]Deposit{}, recent: map[string]bool{},
		watched: map[common.Address]*watch{}, byPayment: map[string]*watch{}, hashes: map[uint64]common.Hash{},
	}
}

// noteDeposits takes in the native deposits of the chain a deposit read returned.
func (r *reconciler) noteDeposits(chainID int64, rows []Deposit) {
	for _, d := range rows {
		if d.ChainID != chainID || d.TokenContract != nil {
			continue
		}
		if _, ok := r.known[d.PaymentID]; !ok {
			r.known[d.PaymentID] = d
			r.fresh = append(r.fresh, d.PaymentID)
			if r.open != nil {
				r.recent[d.PaymentID] = true
			}
			r.dirty = true
		}
	}
}

// reset forgets the baselines: after a reorg or a reload of the cursor they may be of blocks
// that are not the scanner's any more.
func (r *reconciler) reset() {
	r.primed = false
	clear(r.hashes)
	for _, w := range r.watched {
		w.balance, w.inflows = nil, nil
	}
}

// prepareReconcile brings the reconciliation up to date before a poll's blocks are fetched:
// the addresses to watch, the first reading of new ones (and of all after a start or a reorg),
// and the schedule of the blocks up to head.
func (s *Scanner) prepareReconcile(ctx context.Context) error {
	r := s.recon
	if err := s.refreshOpen(ctx); err != nil {
		return err
	}
	if r.dirty {
		r.sync(subFloor(s.next, 1))
	}
	stride, catchUp, short := uint64(0), false, false
	if n := len(r.watched); n > 0 {
		stride = uint64((n + r.budget - 1) / r.budget)
		if behind := s.head + 1 - min(s.next, s.head+1); behind > stride {
			stride, catchUp, short = max(stride, s.catchUpStride()), true, behind <= s.catchUpStride()
		}
	}
	if !r.primed {
		if err := s.primeReconcile(ctx, stride); err != nil {
			return err
		}
	}
	if err := s.readBaselines(ctx); err != nil {
		return err
	}
	if r.dirty || stride != r.sched.stride {
		r.sched = r.buildSchedule(stride)
		r.dirty = false
	}
	r.sched.all, r.sched.last, r.sched.gather, r.sched.onlyLast = nil, 0, catchUp, short
	if catchUp {
		// Every address is read at the head as well: what was paid while catching up is
		// reported by the catch-up's end, not a stride of later blocks after it. A catch-up
		// shorter than the catch-up stride reads them there only: each address is read once,
		// and a rise is bisected over the blocks caught up on.
		r.sched.all, r.sched.last = slices.Concat(r.sched.slots...), s.head
	}
	return nil
}

// refreshOpen reads the open payments again from a Store that offers them, every openRefresh.
func (s *Scanner) refreshOpen(ctx context.Context) error {
	r := s.recon
	finder, ok := s.store.(OpenPaymentFinder)
	if !ok || (r.open != nil && time.Since(r.openAt) < openRefresh) {
		return nil
	}
	var ids []string
	at := time.Now()
	if err := s.retry(ctx, "open_payments", func(ctx context.Context) (err error) {
		ids, err = finder.OpenPayments(ctx, s.chainID())
		return err
	}); err != nil {
		return err
	}
	r.open = make(map[string]bool, len(ids))
	for _, id := range ids {
		r.open[id] = true
	}
	r.openAt, r.reopen, r.dirty = at, true, true
	clear(r.recent)
	return nil
}

// sync makes the watched addresses those of the open payments (every known one without an
// open payments read); an address watched anew is read first at block base. Without a new
// read of the open payments it only takes in the deposits seen since the last sync.
func (r *reconciler) sync(base uint64) {
	want := func(id string) bool { return r.open == nil || r.open[id] || r.recent[id] }
	add := func(id string) {
		d, ok := r.known[id]
		if _, watched := r.byPayment[id]; !ok || watched || !want(id) {
			return
		}
		w, ok := r.watched[d.Address]
		if !ok {
			w = &watch{dep: d, base: base}
			r.watched[d.Address] = w
		}
		w.payments++
		r.byPayment[id] = w
	}
	if r.reopen {
		for id, w := range r.byPayment {
			if want(id) {
				continue
			}
			delete(r.byPayment, id)
			if w.payments--; w.payments == 0 {
				delete(r.watched, w.dep.Address)
			}
		}
		for id := range r.open {
			add(id)
		}
	}
	for _, id := range r.fresh {
		add(id)
	}
	r.fresh, r.reopen = nil, false
}

// buildSchedule spreads the watched addresses over stride blocks, in address_index order, so no
// block reads more than the budget.
func (r *reconciler) buildSchedule(stride uint64) schedule {
	if stride == 0 {
		return schedule{}
	}
	ws := make([]*watch, 0, len(r.watched))
	for _, w := range r.watched {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *watch) int {
		return cmp.Or(cmp.Compare(a.dep.Index, b.dep.Index), a.dep.Address.Cmp(b.dep.Address))
	})
	sc := schedule{stride: stride, slots: make([][]common.Address, stride)}
	for i, w := range ws {
		k := uint64(i) % stride
		sc.slots[k] = append(sc.slots[k], w.dep.Address)
	}
	return sc
}

// primeReconcile sets every watched address's baseline at the start. With a cursor it goes
// back over the blocks before it that a reading of the run before may have lagged behind
// (readingLag), taking in their detected transfers,
// so that a balance that rose in a block the run before processed but had not read yet is
// still found; found again, it is the same transfer under the same key (and Nats-Msg-Id).
func (s *Scanner) primeReconcile(ctx context.Context, stride uint64) error {
	r := s.recon
	last := s.last()
	if last == nil {
		base := subFloor(s.next, 1)
		h, err := s.header(ctx, base)
		if err != nil {
			return err
		}
		r.hashes[base] = h.Hash()
		r.rebase(base)
		r.primed = true
		return nil
	}
	r.hashes[last.Number] = last.Hash
	from := subFloor(last.Number, s.readingLag(stride)) + 1
	blocks, err := s.blocksUpTo(ctx, from, *last)
	if err != nil {
		return err
	}
	if blocks == nil {
		// The chain moved under the blocks before the cursor: the scan finds the reorg.
		s.log.InfoContext(ctx, "balance reconciliation starts at the cursor: the blocks before it changed")
		r.rebase(last.Number)
		r.primed = true
		return nil
	}
	base := from - 1
	if len(blocks) > 0 {
		r.hashes[base] = blocks[0].block.ParentHash()
	}
	r.rebase(base)
	for _, f := range blocks {
		ts, err := s.nativeTransfers(ctx, f)
		if err != nil {
			return err
		}
		r.hashes[f.block.NumberU64()] = f.block.Hash()
		r.observe(f.block.NumberU64(), ts)
	}
	r.primed = true
	return nil
}

// catchUpStride is the longest a reading waits while the scanner is far behind the head.
func (s *Scanner) catchUpStride() uint64 { return 10 * s.cfg.Batch }

// readingLag bounds how many blocks a processed block can be ahead of an address's last
// reading: a stride at the head (at most stride), then a catch-up whose first reading of the
// address comes within the catch-up stride (or only at its end, when it is shorter), gathered
// at the end of a request of blocks.
func (s *Scanner) readingLag(stride uint64) uint64 {
	return stride + s.catchUpStride() + uint64(s.cfg.RPCBatch)
}

// rebase makes every watched address read first at block base.
func (r *reconciler) rebase(base uint64) {
	for _, w := range r.watched {
		w.base, w.balance, w.inflows = base, nil, nil
	}
}

// rewind forgets what the reconciliation knew of the blocks above ancestor, which a reorg
// replaced: an address read above it is read again at it.
func (r *reconciler) rewind(ancestor uint64) {
	for n := range r.hashes {
		if n > ancestor {
			delete(r.hashes, n)
		}
	}
	for _, w := range r.watched {
		w.inflows = slices.DeleteFunc(w.inflows, func(in inflow) bool { return in.block > ancestor })
		if w.base > ancestor {
			w.base, w.balance, w.inflows = ancestor, nil, nil
		}
	}
}

// blocksUpTo fetches blocks from .. last.Number (with their native deposits' receipts), in
// requests of SCAN_RPC_BATCH blocks; nil if they no longer lead to last.
func (s *Scanner) blocksUpTo(ctx context.Context, from uint64, last Block) ([]fetched, error) {
	var out []fetched
	for lo := from; lo <= last.Number; lo += uint64(s.cfg.RPCBatch) {
		hi := min(last.Number, lo+uint64(s.cfg.RPCBatch)-1)
		res := s.fetchRange(ctx, lo, hi, nil, schedule{})
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if res.err != nil || len(res.blocks) != int(hi-lo+1) {
			return nil, nil
		}
		for _, f := range res.blocks {
			if n := len(out); n > 0 && f.block.ParentHash() != out[n-1].block.Hash() {
				return nil, nil
			}
			out = append(out, f)
		}
	}
	if n := len(out); n > 0 && out[n-1].block.Hash() != last.Hash {
		return nil, nil
	}
	return out, nil
}

// observe takes in the native transfers detected in block n.
func (r *reconciler) observe(n uint64, ts []Transfer) {
	for _, t := range ts {
		if t.TokenContract != nil {
			continue
		}
		if w, ok := r.byPayment[t.PaymentID]; ok && n > w.base {
			w.inflows = append(w.inflows, inflow{block: n, value: t.Value})
		}
	}
}

// readBaselines reads the balance of each watched address that has none at its base block.
func (s *Scanner) readBaselines(ctx context.Context) error {
	r := s.recon
	var reads []balanceRead
	for _, w := range r.watched {
		if w.balance == nil {
			h, err := s.hashOf(ctx, w.base)
			if err != nil {
				return err
			}
			reads = append(reads, balanceRead{addr: w.dep.Address, block: w.base, hash: h})
		}
	}
	if err := s.readBalances(ctx, reads); err != nil {
		return err
	}
	noState := 0
	for _, rd := range reads {
		switch {
		case rd.err == nil:
			r.watched[rd.addr].balance = rd.balance
		case errors.Is(rd.err, errNoState):
			noState++ // the first reading at a due block becomes the baseline
		}
		// A block that left the chain: the scan finds the reorg before it reads another
		// block, and the rewind has the address read again at the common ancestor.
	}
	if noState > 0 {
		s.log.WarnContext(ctx, "balance reconciliation: the node no longer holds the state of the blocks to start from; "+
			"balances that rose before each address's first reading are not seen (an archive node or the debug API would)",
			"addresses", noState)
	}
	return nil
}

// balanceRead is one eth_getBalance at a block pinned by its hash.
type balanceRead struct {
	addr    common.Address
	block   uint64
	hash    common.Hash
	pos     int // the reading's block in the caller's list, for fetchBalances
	balance *big.Int
	// err is errNoState, or errChainMoved for a block the node does not know by that hash.
	err error
}

func (s *Scanner) balanceBatch() int { return min(maxBalanceBatch, 4*s.cfg.RPCBatch) }

// readBalances makes the readings in JSON-RPC batch requests, retrying failed requests; a
// reading the node answers with "no state" or "no such block" keeps that answer in its err.
func (s *Scanner) readBalances(ctx context.Context, reads []balanceRead) error {
	if s.balanceCalls {
		return s.readBalancesByCall(ctx, reads)
	}
	for len(reads) > 0 {
		chunk := reads[:min(len(reads), s.balanceBatch())]
		reads = reads[len(chunk):]
		err := s.retry(ctx, "balances", func(ctx context.Context) error {
			results := make([]hexutil.Big, len(chunk))
			batch := make([]rpc.BatchElem, len(chunk))
			for i, rd := range chunk {
				batch[i] = rpc.BatchElem{
					Method: "eth_getBalance",
					Args:   []any{rd.addr, rpc.BlockNumberOrHashWithHash(rd.hash, false)},
					Result: &results[i],
				}
			}
			s.metrics.balanceReads(ctx, s.chainID(), len(batch))
			if err := s.rpc.BatchCallContext(ctx, batch); err != nil {
				return err
			}
			for i, el := range batch {
				switch e := el.Error; {
				case e == nil:
					chunk[i].balance, chunk[i].err = results[i].ToInt(), nil
				case stateUnavailable(e):
					chunk[i].err = errNoState
				case blockGone(e):
					chunk[i].err = fmt.Errorf("balance at block %d: %w", chunk[i].block, errChainMoved)
				default:
					return fmt.Errorf("balance of %s at block %d: %w", chunk[i].addr.Hex(), chunk[i].block, e)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// fetchBalances makes the readings the schedule has due at the blocks of out and keeps them
// with each block. It returns how many of out's blocks stand: a block the node no longer knows
// by its hash ends them. A block whose state the node no longer holds gets no readings.
func (s *Scanner) fetchBalances(ctx context.Context, sched schedule, out []fetched) (int, error) {
	var reads []balanceRead
	gathered := map[common.Address]bool{}
	for i := range out {
		at := i
		if sched.gather {
			at = len(out) - 1
		}
		b := out[at].block
		for _, a := range sched.due(out[i].block.NumberU64()) {
			if sched.gather {
				if gathered[a] {
					continue
				}
				gathered[a] = true
			}
			reads = append(reads, balanceRead{addr: a, block: b.NumberU64(), hash: b.Hash(), pos: at})
		}
	}
	if len(reads) == 0 {
		return len(out), nil
	}
	if err := s.readBalances(ctx, reads); err != nil {
		return len(out), err
	}
	stand := len(out)
	for _, rd := range reads {
		i := rd.pos
		f := &out[i]
		switch {
		case rd.err == nil:
			if f.balances == nil {
				f.balances = map[common.Address]*big.Int{}
			}
			f.balances[rd.addr] = rd.balance
		case errors.Is(rd.err, errNoState):
			f.noState = true
		default:
			stand = min(stand, i)
		}
	}
	return stand, nil
}

// reconcileBlock takes in block f's detected transfers and the balances read at it, and
// returns the balance increases they do not explain, each in the block where it happened.
func (s *Scanner) reconcileBlock(ctx context.Context, f fetched, detected []Transfer) ([]Transfer, error) {
	r := s.recon
	n := f.block.NumberU64()
	r.hashes[n] = f.block.Hash()
	if keep := max(s.cfg.Keep, 4*r.sched.stride); n > keep {
		delete(r.hashes, n-keep)
	}
	r.observe(n, detected)
	if f.noState {
		s.log.WarnContext(ctx, "balance reconciliation: the node no longer holds the state of the block; its readings wait for a later block", "block", n)
	}
	var found []Transfer
	for _, addr := range sortedAddresses(f.balances) {
		bal := f.balances[addr]
		w, ok := r.watched[addr]
		if !ok || n <= w.base {
			continue
		}
		if w.balance == nil {
			w.base, w.balance, w.inflows = n, bal, nil
			continue
		}
		explained := new(big.Int)
		for _, in := range w.inflows {
			explained.Add(explained, in.value)
		}
		if new(big.Int).Sub(bal, w.balance).Cmp(explained) > 0 {
			ts, err := s.locate(ctx, w, n, bal)
			if err != nil {
				return nil, err
			}
			found = append(found, ts...)
		}
		w.base, w.balance, w.inflows = n, bal, nil
	}
	return found, nil
}

func sortedAddresses(m map[common.Address]*big.Int) []common.Address {
	out := make([]common.Address, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b common.Address) int { return a.Cmp(b) })
	return out
}

// locate bisects w's blocks base+1 .. hi, whose balance rose by more than its detected
// transfers, down to each block where it rose unexplained. x(k), the balance at k less the
// transfers detected up to k, only grows where value came in some other way.
func (s *Scanner) locate(ctx context.Context, w *watch, hi uint64, hiBalance *big.Int) ([]Transfer, error) {
	x := func(k uint64, balance *big.Int) *big.Int {
		v := new(big.Int).Set(balance)
		for _, in := range w.inflows {
			if in.block <= k {
				v.Sub(v, in.value)
			}
		}
		return v
	}
	var out []Transfer
	var split func(lo uint64, xlo *big.Int, hi uint64, xhi *big.Int) error
	split = func(lo uint64, xlo *big.Int, hi uint64, xhi *big.Int) error {
		rise := new(big.Int).Sub(xhi, xlo)
		if rise.Sign() <= 0 {
			return nil
		}
		if hi == lo+1 {
			t, err := s.reconciled(ctx, w, hi, rise)
			out = append(out, t)
			return err
		}
		mid := lo + (hi-lo)/2
		h, err := s.hashOf(ctx, mid)
		if err != nil {
			return err
		}
		rd := []balanceRead{{addr: w.dep.Address, block: mid, hash: h}}
		if err := s.readBalances(ctx, rd); err != nil {
			return err
		}
		switch {
		case errors.Is(rd[0].err, errNoState):
			// Nothing older can be read: the rise is put in the first block known to hold it.
			s.log.WarnContext(ctx, "balance reconciliation: the node no longer holds the state to find the block of a balance increase; "+
				"it is recorded in the first block known to include it", "payment_id", w.dep.PaymentID, "from_block", lo+1, "block", hi)
			t, err := s.reconciled(ctx, w, hi, rise)
			out = append(out, t)
			return err
		case rd[0].err != nil:
			return rd[0].err
		}
		xmid := x(mid, rd[0].balance)
		if err := split(lo, xlo, mid, xmid); err != nil {
			return err
		}
		return split(mid, xmid, hi, xhi)
	}
	if err := split(w.base, new(big.Int).Set(w.balance), hi, x(hi, hiBalance)); err != nil {
		return nil, err
	}
	return out, nil
}

// reconciledTxIndex places a reconciled transfer after every transaction of its block.
const reconciledTxIndex = math.MaxInt32

// reconciled is the transfer of a balance increase of w's address in block k: no transaction
// carries it, so it is keyed by the block's hash (as tx_hash) and the address's index.
func (s *Scanner) reconciled(ctx context.Context, w *watch, k uint64, value *big.Int) (Transfer, error) {
	h, err := s.hashOf(ctx, k)
	if err != nil {
		return Transfer{}, err
	}
	s.log.InfoContext(ctx, "balance increase no transaction explains; recorded as a transfer in its block", "payment_id", w.dep.PaymentID,
		"address", w.dep.Address.Hex(), "block", k, "block_hash", h.Hex(), "value", value.String())
	return Transfer{
		ChainID: s.chainID(), TxHash: h, TxIndex: reconciledTxIndex, LogIndex: ReconciledLogIndex(w.dep.Index),
		PaymentID: w.dep.PaymentID, Value: value, BlockNumber: k, BlockHash: h,
	}, nil
}

// hashOf is the hash of processed block k as the scanner saw it: from memory, else from the
// blocks kept in the database, else the node's canonical one.
func (s *Scanner) hashOf(ctx context.Context, k uint64) (common.Hash, error) {
	if h, ok := s.recon.hashes[k]; ok {
		return h, nil
	}
	for _, b := range s.pending {
		if b.Number == k {
			return b.Hash, nil
		}
	}
	var (
		h  common.Hash
		ok bool
	)
	if err := s.retry(ctx, "stored_block", func(ctx context.Context) (err error) {
		h, ok, err = s.store.BlockHash(ctx, s.chainID(), k)
		return err
	}); err != nil {
		return common.Hash{}, err
	}
	if !ok {
		hd, err := s.header(ctx, k)
		if err != nil {
			return common.Hash{}, err
		}
		h = hd.Hash()
	}
	s.recon.hashes[k] = h
	return h, nil
}
