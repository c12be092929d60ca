package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// proxyMode is what a faultProxy does with a connection.
type proxyMode int

const (
	// forward passes bytes both ways.
	forward proxyMode = iota
	// cut refuses connections: the listener is closed, as a node that is down.
	cut
	// blackHole accepts connections and reads them, and never answers, as a node that hangs.
	blackHole
)

func (m proxyMode) String() string {
	return [...]string{"forward", "cut", "black hole"}[m]
}

// faultProxy is a TCP proxy in front of the chain's JSON-RPC that the chaos runs cut or
// black-hole. Switching mode closes every open connection, so a client's kept-alive connection
// meets the new mode on its next request as a fresh one would.
type faultProxy struct {
	target string

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	mode  proxyMode
	conns map[net.Conn]struct{}
	done  bool
}

// startFaultProxy listens on a free local port and forwards to target (host:port).
func startFaultProxy(target string) (*faultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	go p.serve(ln)
	return p, nil
}

// Addr is the proxy's host:port, the same in every mode.
func (p *faultProxy) Addr() string { return p.addr }

// Set switches the proxy to mode m.
func (p *faultProxy) Set(m proxyMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || p.mode == m {
		return nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	prev := p.mode
	p.mode = m
	switch {
	case m == cut:
		err := p.ln.Close()
		p.ln = nil
		return err
	case prev == cut:
		// The same port again. Closed sockets linger in TIME_WAIT on the client side only, so
		// the listen succeeds; it is retried briefly in case the port is still being released.
		var err error
		for range 50 {
			var ln net.Listener
			if ln, err = net.Listen("tcp", p.addr); err == nil {
				p.ln = ln
				go p.serve(ln)
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return err
	}
	return nil
}

// Close stops the proxy and closes every connection.
func (p *faultProxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
}

func (p *faultProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go p.handle(c)
	}
}

// track records c as open in the current mode; false if the proxy is closed.
func (p *faultProxy) track(cs ...net.Conn) (proxyMode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return 0, false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return p.mode, true
}

func (p *faultProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *faultProxy) handle(client net.Conn) {
	mode, ok := p.track(client)
	if !ok {
		client.Close()
		return
	}
	if mode == blackHole {
		// Read and drop until the mode changes (which closes the connection).
		io.Copy(io.Discard, client)
		p.untrack(client)
		return
	}
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.untrack(client)
		return
	}
	if _, ok := p.track(upstream); !ok {
		p.untrack(client, upstream)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(upstream, client); p.untrack(client, upstream) })
	wg.Go(func() { io.Copy(client, upstream); p.untrack(client, upstream) })
	wg.Wait()
}
