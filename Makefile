# cifar-pipeline: `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := run
# TF_VARIANT=cuda: setup also installs tensorflow[and-cuda] (~2.3 GB, opt-in)
# into .venv-cuda, and build/test/run use .deps/env-cuda.sh (bin/pipeline is
# rebuilt against the CUDA libtensorflow). Default cpu: nothing changes.
TF_VARIANT ?= cpu
export TF_VARIANT
ENV := $(if $(filter cuda,$(TF_VARIANT)),.deps/env-cuda.sh,.deps/env.sh)
CONFIG ?= config.yaml
GOTEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: setup build run test test-go test-short bench gpu-check clean

## setup: install libtensorflow 2.18 + Python reference venv, build bin/pipeline (cached, idempotent; TF_VARIANT=cuda for the CUDA build)
setup:
	@scripts/setup.sh

## build: rebuild bin/pipeline against the libtensorflow chosen by setup
build:
	@test -f $(ENV) || { echo "libtensorflow ($(TF_VARIANT)) not set up: run 'TF_VARIANT=$(TF_VARIANT) make setup', or point LIBTENSORFLOW_DIR at an existing libtensorflow (include/ + lib/) and run 'make setup'"; exit 1; }
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

## gpu-check: on a machine with an NVIDIA GPU, the CUDA build's devices, GPU training and CPU parity (scripts/gpu_check)
gpu-check:
	@TF_VARIANT=cuda scripts/setup.sh
	scripts/gpu_check

clean:
	rm -rf bin output
