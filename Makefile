# AI Gateway. `make run` starts the gateway locally; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export CGO_ENABLED := 0

GO        ?= go
FUNCTIONS := chat upload admin image
# Lambda runs the functions on arm64 (Graviton); override for x86_64.
LAMBDA_ARCH ?= arm64
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags='-s -w -buildid='

.PHONY: run test check fmt vet build clean bench $(addprefix build-,$(FUNCTIONS))

## run: start the gateway on 127.0.0.1:8080 with data in ./data
run:
	$(GO) run ./infra/local

## test: formatting, vet, the Lambda builds and every test
test: check build
	$(GO) test -count=1 ./...

## check: gofmt and go vet must be clean
check:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

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

clean:
	rm -rf build .aws-sam
