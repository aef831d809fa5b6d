# clip-snapshotter — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APT_PACKAGES := containerd runc fuse3 libfuse2 docker-registry redis-server skopeo umoci \
	busybox-static debootstrap golang-go golang-github-containerd-containerd-dev \
	golang-github-gogo-protobuf-dev golang-github-containerd-stargz-snapshotter-dev \
	golang-github-hashicorp-go-retryablehttp-dev golang-github-sirupsen-logrus-dev \
	iproute2 apache2-utils attr xz-utils zstd pigz tar zlib1g-dev liblz4-dev
PREFIX ?= /usr/local
STAMP := .work/stamps

.PHONY: help deps jaeger build check test test-unit test-integration conformance demo docs-pictures bench install clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP)/apt: Makefile
	@mkdir -p $(STAMP)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The native addons, all from snapshotter/native/binding.gyp: clip_zran (gzip checkpoints / range
# reads, on the system zlib), clip_fusedev (mount(2), /dev/fuse readiness and descriptor passing
# for the kernel FUSE driver), clip_pagecache (reads served from the page cache without waiting)
# and clip_lz4 (ContentCache chunks' LZ4 into caller-owned buffers, on the system liblz4). node-gyp against the installed Node headers (/usr/include/node from
# the nodejs package, so no header download).
ZRAN_ADDON := snapshotter/native/build/Release/clip_zran.node
FUSEDEV_ADDON := snapshotter/native/build/Release/clip_fusedev.node
PAGECACHE_ADDON := snapshotter/native/build/Release/clip_pagecache.node
LZ4_ADDON := snapshotter/native/build/Release/clip_lz4.node
NODE_DIR ?= $(if $(wildcard /usr/include/node/node_api.h),/usr,)
$(ZRAN_ADDON) $(FUSEDEV_ADDON) $(PAGECACHE_ADDON) $(LZ4_ADDON) &: snapshotter/native/zran.c snapshotter/native/fusedev.c snapshotter/native/pagecache.c snapshotter/native/lz4.c snapshotter/native/binding.gyp $(STAMP)/apt node_modules/.package-lock.json
	npx --yes node-gyp rebuild -C snapshotter/native $(if $(NODE_DIR),--nodedir=$(NODE_DIR),)
	@touch $(ZRAN_ADDON) $(FUSEDEV_ADDON) $(PAGECACHE_ADDON) $(LZ4_ADDON)

deps: $(STAMP)/apt node_modules/.package-lock.json $(ZRAN_ADDON) $(FUSEDEV_ADDON) $(PAGECACHE_ADDON) $(LZ4_ADDON) jaeger ## install Debian packages and npm dependencies, build the native addons and Jaeger (idempotent)

# Jaeger at the version pinned in integration/go-modules.env, cached per machine outside the repo.
# A failed build does not stop the other tests: the Jaeger test then fails and names the build log.
jaeger: ## build Jaeger all-in-one from Go modules (once per machine, /var/cache/clip-snapshotter/go)
	@bash integration/scripts/build-jaeger.sh || echo "make: Jaeger was not built; integration/telemetry/jaeger.test.ts will fail" >&2

build: node_modules/.package-lock.json ## compile TypeScript to build/ (and bundle the pull command: one file loads faster than ~300)
	npx tsc -p tsconfig.json
	node build/snapshotter/src/cli/bundle-pull-command.js

check: build ## type-check (the build is strict)

go-tools: $(STAMP)/apt ## build the Go test tools (conformance suites, overlayfs reference, ctr-remote) and containerd 2.x/crictl from pinned Go modules (cached in /var/cache/clip-snapshotter/go)
	bash integration/scripts/build-go-tools.sh

test-unit: build ## unit tests
	npx tap --disable-coverage --reporter=tap --timeout=120 'build/snapshotter/test/**/*.test.js'

conformance: deps build go-tools ## containerd's snapshotter conformance suite against the daemon
	bash integration/scripts/run-conformance.sh

test-integration: deps build go-tools ## end-to-end tests against real containerd, runc, registry
	npx tap --disable-coverage --reporter=tap --timeout=900 --jobs=1 'build/integration/**/*.test.js'

test: deps build ## unit + conformance + integration tests (installs what it needs)
	bash integration/scripts/run-all-tests.sh

demo: deps build go-tools ## pull and run a container through clip on a private stack
	bash integration/scripts/demo.sh

docs-pictures: deps build go-tools ## take the README's Jaeger screenshot (docs/jaeger-trace.png) with headless Chromium
	bash integration/scripts/docs-pictures.sh

bench: deps build go-tools ## run the benchmarks, results in bench-results/
	bash integration/scripts/bench.sh

bench-quick: deps build go-tools ## the benchmarks in quick mode (a few minutes)
	bash integration/scripts/bench.sh --quick

install: build ## install the daemon, config and systemd units (the daemon's and the FUSE server's)
	install -d $(PREFIX)/lib/clip-snapshotter $(PREFIX)/bin /etc/systemd/system
	cp -r build package.json package-lock.json snapshotter $(PREFIX)/lib/clip-snapshotter/
	cd $(PREFIX)/lib/clip-snapshotter && npm ci --omit=dev --no-audit --no-fund
	ln -sf $(PREFIX)/lib/clip-snapshotter/snapshotter/bin/clip-snapshotter $(PREFIX)/bin/clip-snapshotter
	install -d -m 0700 /etc/clip-snapshotter
	# The config may hold the ContentCache password: readable by root only, an existing one too.
	[ -f /etc/clip-snapshotter/config.toml ] || install -m 0600 plugin-config/config.toml /etc/clip-snapshotter/config.toml
	chmod 0600 /etc/clip-snapshotter/config.toml
	sed 's#/usr/local/bin/#$(PREFIX)/bin/#g' plugin-config/clip-snapshotter.service > /etc/systemd/system/clip-snapshotter.service
	sed 's#/usr/local/bin/#$(PREFIX)/bin/#g' plugin-config/clip-snapshotter-fuse.service > /etc/systemd/system/clip-snapshotter-fuse.service
	@echo "installed; then: systemctl daemon-reload; systemctl restart clip-snapshotter (the daemon);"
	@echo "systemctl reload clip-snapshotter-fuse (hands the running FUSE server's mounts to the new build)"

clean: ## remove build output and test state
	rm -rf build .work .gopath .tap coverage bench-results
