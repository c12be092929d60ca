package scan

import (
	"context"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ChainReader is the JSON-RPC the scanner needs: *ethclient.Client's calls, and the batch
// requests of its *rpc.Client (see RPCClient) for blocks and receipts.
type ChainReader interface {
	ChainID(ctx context.Context) (*big.Int, error)
	BlockNumber(ctx context.Context) (uint64, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	FilterLogs(ctx context.Context, q ethereum.FilterQuery) ([]types.Log, error)
	BatchCallContext(ctx context.Context, b []rpc.BatchElem) error
}

// RPCClient is a ChainReader on one JSON-RPC connection: ethclient's typed calls plus the
// connection's batch requests.
type RPCClient struct {
	*ethclient.Client
	raw *rpc.Client
}

var _ ChainReader = RPCClient{}

// NewRPCClient wraps c.
func NewRPCClient(c *rpc.Client) RPCClient { return RPCClient{Client: ethclient.NewClient(c), raw: c} }

// BatchCallContext sends b as one JSON-RPC batch request.
func (c RPCClient) BatchCallContext(ctx context.Context, b []rpc.BatchElem) error {
	return c.raw.BatchCallContext(ctx, b)
}

// Publisher publishes to JetStream asynchronously, the stream's ack arriving on the future;
// jetstream.JetStream implements it.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}
