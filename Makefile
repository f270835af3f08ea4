# cifar-pipeline: `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := run
ENV := .deps/env.sh
CONFIG ?= config.yaml
GOTEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: setup build run test test-go test-short bench clean

## setup: install libtensorflow 2.18 + Python reference venv, build bin/pipeline (cached, idempotent)
setup:
	@scripts/setup.sh

## build: rebuild bin/pipeline against the libtensorflow chosen by setup
build:
	@test -f $(ENV) || { echo "libtensorflow not set up: run 'make setup', or point LIBTENSORFLOW_DIR at an existing libtensorflow (include/ + lib/) and run 'make setup'"; exit 1; }
	@. $(ENV) && go build -o bin/pipeline ./pipeline/cmd/pipeline

## run: set everything up, fetch CIFAR-10, run the main job
run: setup
	bin/pipeline run -c $(CONFIG)

## test: set everything up and run every test (Go + Python-side checks)
test: setup
	@. $(ENV) && export PIPELINE_REQUIRE_PYTHON=1 && go vet ./... && go test $(GOTEST_FLAGS) ./...

## test-short: unit tests only (no real CIFAR-10, no Keras parity)
test-short: setup
	@. $(ENV) && go test -short -count=1 ./...

## bench: side-by-side Go vs Keras benchmark, XLA on and off, ~13 min on 2 cores (writes BENCHMARKS.md)
bench: setup
	scripts/bench --xla both

clean:
	rm -rf bin output
