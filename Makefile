# meshguard: build, run and test. `make help` lists the targets; CI runs `make test` (.ci/run).

SHELL        := bash
.SHELLFLAGS  := -euo pipefail -c
.DEFAULT_GOAL := help

WASM_TARGET  := wasm32-wasip1
WASM_OUT     := target/$(WASM_TARGET)/release/meshguard.wasm
WASM         := dist/meshguard.wasm
VENV         := .venv
PY           := $(VENV)/bin/python
DEPS_STAMP   := $(VENV)/.deps-stamp
CONFIG       ?=
PYTEST_ARGS  ?=
# wasm-opt from the npm package `binaryen` (Debian's binaryen 108 rejects current rustc output).
BINARYEN_VERSION := 132.0.0
TOOLS        := target/tools
WASM_OPT     := $(TOOLS)/node_modules/.bin/wasm-opt
# -Oz, but no inlining of a function into its only caller: V8 (TurboFan, Liftoff off in Envoy)
# needs far more memory for one huge function than for the same code in pieces (measured: +21 MiB RSS).
WASM_OPT_FLAGS := -Oz -ocimfs 0
# The features rustc's wasm32-wasip1 output uses; wasm-opt must accept them and adds none.
WASM_OPT_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
                     --enable-mutable-globals --enable-multivalue --enable-reference-types --enable-simd

VERSION      := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
GIT_HASH     := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
OCI_DIR      := dist/oci
SCHEMA       := schema/meshguard-config.schema.json
# The wasm module is built without default features: `schema` (schemars) is for the native tool.
WASM_FLAGS   := --release --lib --target $(WASM_TARGET) --no-default-features

.PHONY: help deps toolchain tools build oci schema release validate lint unit e2e test run bench cost size v8-bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: toolchain tools $(DEPS_STAMP) ## Install what builds and tests need (toolchain, skopeo, .venv with Envoy and pytest); idempotent

tools: ## skopeo and a local registry (docker-registry), which the delivery tests push to; idempotent
	@command -v skopeo >/dev/null && command -v docker-registry >/dev/null || { \
	  echo "installing skopeo and docker-registry (Debian packages; tests/e2e/test_delivery.py)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq skopeo docker-registry >/dev/null; }

toolchain: ## Rust wasm32-wasip1 target, rustfmt/clippy, and clang (builds ring for wasm); idempotent
	@rustup target list --installed | grep -x '$(WASM_TARGET)' >/dev/null || rustup target add $(WASM_TARGET)
	@rustup component list --installed | grep '^clippy' >/dev/null || rustup component add clippy
	@rustup component list --installed | grep '^rustfmt' >/dev/null || rustup component add rustfmt
	@command -v clang >/dev/null || { \
	  echo "installing clang (needed to build ring for wasm)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang >/dev/null; }

$(DEPS_STAMP): tests/requirements.txt
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r tests/requirements.txt
	@touch $@

build: toolchain $(WASM_OPT) ## Build the wasm module (cargo, then wasm-opt) into dist/meshguard.wasm; print version, size and sha256
	MESHGUARD_GIT_HASH=$(GIT_HASH) cargo build $(WASM_FLAGS)
	@$(MAKE) --no-print-directory $(WASM)
	@echo "meshguard $(VERSION) ($(GIT_HASH))"
	@echo "$(WASM): $$(stat -c %s $(WASM)) bytes (cargo output $$(stat -c %s $(WASM_OUT))), sha256 $$(sha256sum $(WASM) | cut -d' ' -f1)"

# Re-optimised only when cargo produced a new module (wasm-opt takes tens of seconds here).
$(WASM): $(WASM_OUT) $(WASM_OPT)
	@mkdir -p dist
	$(WASM_OPT) $(WASM_OPT_FLAGS) $(WASM_OPT_FEATURES) --strip-debug --strip-producers $(WASM_OUT) -o $@.tmp
	@mv $@.tmp $@

$(WASM_OPT):
	@command -v npm >/dev/null || { echo "npm is needed for wasm-opt (npm package binaryen)" >&2; exit 1; }
	npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --silent binaryen@$(BINARYEN_VERSION)
	@touch $@

oci: build ## Write dist/oci: an OCI image layout of the module that Istio accepts; print its manifest digest
	python3 tools/oci.py $(WASM) $(OCI_DIR) --tag $(VERSION) --revision $(GIT_HASH) --digest-file dist/oci-manifest.sha256

schema: ## Regenerate schema/meshguard-config.schema.json from the config types (commit the result)
	@mkdir -p $(dir $(SCHEMA))
	@cargo run -q --bin meshguard -- schema > $(SCHEMA).tmp || { rm -f $(SCHEMA).tmp; exit 1; }
	@mv $(SCHEMA).tmp $(SCHEMA)
	@echo "$(SCHEMA): $$(stat -c %s $(SCHEMA)) bytes"

release: oci ## dist/: the module, its sha256, the OCI layout (+ manifest digest) and the config schema
	@cd dist && sha256sum meshguard.wasm > meshguard.wasm.sha256
	cargo run -q --bin meshguard -- schema > dist/meshguard-config.schema.json
	@cmp -s dist/meshguard-config.schema.json $(SCHEMA) || { echo "$(SCHEMA) is stale: run make schema" >&2; exit 1; }
	@ls -1 dist | sed 's|^|  dist/|'

validate: ## Check a plugin config offline: make validate CONFIG=file.json
	@[ -n "$(CONFIG)" ] || { echo "usage: make validate CONFIG=file.json" >&2; exit 2; }
	cargo run -q --bin meshguard -- validate $(CONFIG)

lint: toolchain ## rustfmt check and clippy (native, all targets; and the wasm lib), warnings are errors
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --lib --target $(WASM_TARGET) --no-default-features -- -D warnings

unit: ## Native unit and integration tests (cargo test), then the conformance pass rates
	cargo test
	@cargo test -q --test jsonschema_conformance --test spiffe_conformance -- --nocapture 2>&1 | grep -E '^(jsonschema|spiffe) conformance'

e2e: deps oci ## End-to-end tests: the built module in a real Envoy (pytest tests/e2e)
	$(PY) -m pytest -q tests/e2e $(PYTEST_ARGS)

test: ## Every test: lint, unit, e2e
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory e2e

run: deps build ## Demo: echo upstream on :10001, Envoy with envoy/demo.yaml on :10000 (Ctrl-C stops)
	$(PY) tools/demo.py

bench: deps build ## meshguard vs Envoy's native jwt_authn+rbac+local_ratelimit, response stripping, V8 and per-sidecar cost (~9 min; bench/README.md)
	@command -v wrk >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq; $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	@$(MAKE) --no-print-directory v8-bench
	$(PY) bench/run.py --envoy $(VENV)/bin/envoy --wasm $(WASM)
	$(PY) bench/response_strip.py --envoy $(VENV)/bin/envoy --wasm $(WASM) --rounds 3 --seconds 3
	$(PY) bench/cost.py --envoy $(VENV)/bin/envoy --wasm $(WASM) --json bench/results/cost-latest.json

size: toolchain ## Per-crate size breakdown of an unstripped release build (tools/size.py; target/size)
	CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=target/size cargo build -q $(WASM_FLAGS)
	python3 tools/size.py target/size/$(WASM_TARGET)/release/meshguard.wasm --top 30 --functions 20

v8-bench: toolchain ## The module's own CPU natively and under V8 (node): primitives, verify, requests through the flow (examples/core_bench.rs)
	cargo run -q --release --example core_bench
	cargo build -q --release --example core_bench --target $(WASM_TARGET) --no-default-features
	@mkdir -p bench/results
	node --no-warnings bench/v8.mjs target/$(WASM_TARGET)/release/examples/core_bench.wasm | tee bench/results/v8-latest.md

cost: deps build ## Per-sidecar cost only: module size, Envoy RSS and start to ready at --concurrency 1 and 2 (~2 min; bench/cost.py)
	$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	$(PY) bench/cost.py --envoy $(VENV)/bin/envoy --wasm $(WASM) --json bench/results/cost-latest.json

clean: ## Remove build outputs and the venv (keeps cargo's target/ cache)
	rm -rf dist $(VENV) .pytest_cache
	find tests tools -name __pycache__ -type d -prune -exec rm -rf {} +
