# cTrip payment pipeline. Every target runs from the repository root on the Go workspace.
SHELL := /bin/bash
SERVICES := webhook-sender api scanner confirmer sweeper
MODULES := ./shared/... ./streams/... $(addsuffix /...,$(addprefix ./services/,$(SERVICES))) ./deploy/devstack/... ./deploy/devsetup/...
GOBIN ?= $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

.PHONY: build test test-short lint check-deploy demo bench fuzz chaos load tools

build: ## build every service binary into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do echo "go build $$s"; CGO_ENABLED=0 go build -trimpath -o bin/$$s ./services/$$s || exit 1; done

test: ## the whole suite: unit + integration (nats-server embedded or as a process, private Postgres), with the race detector
	go test -race -count=1 -timeout 15m $(MODULES)

test-short: ## skips the tests that build and kill real processes
	go test -count=1 -short $(MODULES)

lint: ## gofmt, go vet, stream definitions accepted as JSON
	@out=$$(gofmt -l shared streams services deploy); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet $(MODULES)
	@for f in streams/*.json streams/consumers/*.json; do jq -e . $$f >/dev/null || { echo "bad JSON: $$f"; exit 1; }; done

check-deploy: ## kustomize build of every k8s overlay and docker-compose config, with their promises asserted; alert rules (promtool) and dashboards
	scripts/check-deploy.sh
	scripts/check-compose.sh
	scripts/check-alerts.sh

demo: ## one machine, nothing else running: nats-server, private Postgres, a simulated chain, the five services, a demo merchant
	go run ./deploy/devstack

bench: ## webhook throughput vs raw HTTP POSTs to the same receiver (20k events), and paced latency
	scripts/bench-webhooks.sh

load: ## load and scale figures: memory idle and under load, paid → webhook latency, deliveries/s with 1 and 2 senders
	scripts/load.sh

CHAOS ?= all
CHAOS_STREAM ?= 40s
chaos: ## every chaos scenario on a stack of its own (CHAOS=<part of a name> for one), then the table: make chaos CHAOS=reorg
	go run ./deploy/devstack -chaos "$(CHAOS)" -chaos-stream $(CHAOS_STREAM)

FUZZTIME ?= 1m
fuzz: ## every go test -fuzz target (scripts/fuzz.sh finds them), one after another, FUZZTIME each (default 1m): make fuzz FUZZTIME=30s
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

tools: ## the nats CLI used by scripts/dlq.sh (and its test)
	go install github.com/nats-io/natscli/nats@v0.5.0
