# serfd — build, test, install. `make check` is what CI runs.
GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    := $(PREFIX)/bin
UNITDIR   := $(PREFIX)/lib/systemd/system
LIBEXECDIR := $(PREFIX)/libexec/serfd
SYSCONF   ?= /etc
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOBIN     := $(shell $(GO) env GOPATH)/bin
STATICCHECK ?= $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
# Stock HashiCorp Serf, the interop peer of the tests and benchmarks.
SERF      ?= $(GOBIN)/serf
SERF_VERSION := v0.10.2
LDFLAGS   := -X main.version=$(VERSION)
# Where `install` takes serfd and serfctl from. The default, bin/, is built
# first; any other directory must already hold them (`make deb` points it at
# its hardened build).
BINSRC    ?= bin
# Debian package (`make deb`): cgo PIE binaries with full RELRO, in their own
# directory so that bin/ stays the plain development build.
DEB_VERSION ?= 0.1.0
DEB_HOST_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_ARCH  ?= $(DEB_HOST_ARCH)
DEB       := build/serfd_$(DEB_VERSION)_$(DEB_ARCH).deb
# Another DEB_ARCH (`make deb DEB_ARCH=arm64`) is cross-built: Go's GOARCH
# for it, and the GNU cross toolchain dpkg-architecture names
# (aarch64-linux-gnu-gcc, from gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross), into a directory of its own.
DEB_GOARCH_amd64 := amd64
DEB_GOARCH_arm64 := arm64
ifeq ($(DEB_ARCH),$(DEB_HOST_ARCH))
DEB_DIR   := build/deb
DEB_GOENV :=
else
DEB_DIR   := build/deb-$(DEB_ARCH)
DEB_GNU_TYPE := $(shell dpkg-architecture -a$(DEB_ARCH) -qDEB_HOST_GNU_TYPE 2>/dev/null)
DEB_GOENV := GOARCH=$(DEB_GOARCH_$(DEB_ARCH)) CC=$(DEB_GNU_TYPE)-gcc
endif
# A packaged binary reports the package's version (serfd -version, serfctl
# version, serfctl info, Serf's RPC stats); others report git describe.
DEB_LDFLAGS = -X main.version=$(DEB_VERSION) -s -w -linkmode=external -extldflags=-Wl,-z,relro,-z,now
# The C parts (runtime/cgo, net, os/user) call fprintf: use the _chk variants.
DEB_CGO_CPPFLAGS ?= -D_FORTIFY_SOURCE=2

.PHONY: all build run test race vet fmt staticcheck lint e2e check bench install clean tools rules \
	deb deb-bin deb-lint deb-lint-arm64 test-arm64 fuzz fuzz-check soak soak-short soak-deps sim

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/serfd ./daemon/serfd
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/serfctl ./ctl/serfctl

# A local single-node serfd with the shipped config, in the foreground.
run: build
	./bin/serfd -config ./config.hcl

# One package at a time: the gossip and process tests measure timing-bound
# protocol behaviour (failure detection, leave propagation) on 2 cores.
# internal/serfclient is a module of its own (see its doc.go): Serf's Go
# client library against serfd.
SERFCLIENT := internal/serfclient
test: $(SERF)
	SERF_BIN=$(SERF) $(GO) test -race -count=1 -p 1 ./...
	cd $(SERFCLIENT) && $(GO) test -race -count=1 ./...

# The arm64 build exercised, not only compiled (README "arm64"): the tests
# of the packages that start no binary of the project, cross-compiled with
# cgo for arm64 and run one package after the other, from its directory,
# under qemu-user with the cross libc (on an arm64 host, natively).
# SERFD_TEST_EMULATOR tells the tests (internal/testutil: Emulated, Scale,
# SkipIfEmulated) to give timing-bound steps longer and to skip mDNS, whose
# multicast socket options qemu-user does not pass through. Short mode
# skips gossip's three longest tests (timer-bound, as long natively):
# ARM64_TEST_FLAGS= runs them too. GOMAXPROCS=2 keeps the threads of an
# emulated process to what a 2-core machine gives. daemon/serfd is left
# out: its tests build and start serfd and stock Serf as processes.
# Stock Serf itself (the interop tests' peer) runs natively.
ARM64_TEST_PKGS := internal/testutil ctl internal/soak daemon exec gossip
ARM64_TEST_DIR := build/test-arm64
ARM64_TEST_FLAGS ?= -test.short
QEMU_ARM64 ?= qemu-aarch64-static
ARM64_SYSROOT ?= /usr/aarch64-linux-gnu
ifeq ($(DEB_HOST_ARCH),arm64)
ARM64_RUN :=
else
ARM64_RUN := SERFD_TEST_EMULATOR=$(QEMU_ARM64) $(QEMU_ARM64) -L $(ARM64_SYSROOT)
endif
test-arm64: $(SERF)
	@command -v aarch64-linux-gnu-gcc >/dev/null || { \
		echo "aarch64-linux-gnu-gcc not found: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross" >&2; exit 1; }
	@[ -z "$(ARM64_RUN)" ] || command -v $(QEMU_ARM64) >/dev/null || { \
		echo "$(QEMU_ARM64) not found: apt-get install qemu-user-static" >&2; exit 1; }
	rm -rf $(ARM64_TEST_DIR) && mkdir -p $(ARM64_TEST_DIR)
	GOARCH=arm64 CC=aarch64-linux-gnu-gcc CGO_ENABLED=1 $(GO) test -c -o $(ARM64_TEST_DIR)/ $(addprefix ./,$(ARM64_TEST_PKGS))
	@failed=; for pkg in $(ARM64_TEST_PKGS); do \
		bin=$(CURDIR)/$(ARM64_TEST_DIR)/$${pkg##*/}.test; log=$(CURDIR)/$(ARM64_TEST_DIR)/$${pkg##*/}.log; \
		start=$$(date +%s); \
		if (cd $$pkg && GOMAXPROCS=2 SERF_BIN=$(SERF) $(ARM64_RUN) $$bin -test.v -test.count=1 \
			-test.timeout 10m $(ARM64_TEST_FLAGS)) >$$log 2>&1; then res=ok; else res=FAIL; failed="$$failed $$pkg"; fi; \
		echo "$$res $$pkg arm64 $$(($$(date +%s) - start))s: $$(grep -c -- '^--- PASS' $$log) passed," \
			"$$(grep -c -- '^--- SKIP' $$log) skipped$$(grep -- '^--- SKIP' $$log | sed 's/^--- SKIP: \([^ ]*\).*/ \1/' | tr -d '\n')"; \
		[ $$res = ok ] || cat $$log; \
	done; \
	[ -z "$$failed" ] || { echo "FAIL under arm64:$$failed" >&2; exit 1; }

# Fuzzing: every Fuzz target of the module (found by name in the _test.go
# files) for FUZZTIME apiece, one after the other, since a run takes one
# target. Each package's test binary is built once, instrumented, and run
# per target in the package's directory. `go test` already runs every
# target's seed corpus (f.Add and testdata/fuzz/NAME) as ordinary tests;
# `make check` adds FUZZTIME_CHECK of real fuzzing per target, starting
# from the seeds alone (a fresh cache) so that it stays short. A failing
# input is written to PKG/testdata/fuzz/NAME and fails the run. A run that
# ends in "context deadline exceeded" without writing one is Go 1.26's
# fuzztime race (golang/go#75804, fixed in 1.27), not a finding.
FUZZTIME  ?= 60s
FUZZTIME_CHECK ?= 2s
# Where interesting inputs are kept between runs ("" = go's own cache).
FUZZCACHE ?=
FUZZ_TARGETS = $(shell grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's|^\(.*\)/[^/]*:func |\1:|' | sort)

fuzz:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	module=$$($(GO) list -m); cache=$(FUZZCACHE); cache=$${cache:-$$($(GO) env GOCACHE)/fuzz}; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; corpus=$$pkg/testdata/fuzz/$$name; \
		bin=$$tmp/$$(echo $$pkg | tr ./ __).test; \
		[ -x $$bin ] || $(GO) test -c -o $$bin -fuzz "^$$name$$" $$pkg || exit 1; \
		before=$$(ls $$corpus 2>/dev/null | wc -l); \
		if (cd $$pkg && $$bin -test.run '^$$' -test.fuzz "^$$name$$" -test.fuzztime $(FUZZTIME) \
			-test.fuzzminimizetime 10s -test.fuzzcachedir $$cache/$$module/$${pkg#./}) >$$tmp/log 2>&1; then \
			echo "ok   $$pkg $$name $(FUZZTIME): $$(grep -o 'execs: [0-9]*' $$tmp/log | tail -1)"; \
		elif [ "$$(ls $$corpus 2>/dev/null | wc -l)" = "$$before" ] && grep -q 'context deadline exceeded' $$tmp/log; then \
			echo "ok   $$pkg $$name $(FUZZTIME): $$(grep -o 'execs: [0-9]*' $$tmp/log | tail -1) (stopped by golang/go#75804)"; \
		else \
			cat $$tmp/log; echo "FAIL $$pkg $$name: the failing input is in $$corpus"; exit 1; \
		fi; \
	done

fuzz-check:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_CHECK) FUZZCACHE=$$tmp

vet:
	$(GO) vet ./...
	cd $(SERFCLIENT) && $(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...
	cd $(SERFCLIENT) && $(STATICCHECK) ./...

lint: vet fmt staticcheck

$(SERF):
	$(GO) install github.com/hashicorp/serf/cmd/serf@$(SERF_VERSION)

tools: $(STATICCHECK) $(SERF)

# End-to-end: three booted systemd hosts (systemd-nspawn) with the package
# installed by dpkg -i; the upgrade check then installs DEB_UPGRADE, the same
# tree packaged one version higher (binaries reporting that version).
DEB_UPGRADE_VERSION := $(DEB_VERSION)+e2e1
DEB_UPGRADE := build/serfd_$(DEB_UPGRADE_VERSION)_$(DEB_ARCH).deb
e2e: deb $(SERF)
	$(MAKE) --no-print-directory deb DEB_VERSION=$(DEB_UPGRADE_VERSION)
	SERF_BIN=$(SERF) packaging/e2e/run.sh $(DEB) $(DEB_UPGRADE)

check: build lint rules test fuzz-check deb-lint deb-lint-arm64 e2e

# The Prometheus alert rules and their unit tests (contrib/prometheus),
# with promtool from Debian's prometheus package.
PROMTOOL ?= promtool
rules:
	$(PROMTOOL) check rules contrib/prometheus/serfd.rules.yml
	cd contrib/prometheus && $(PROMTOOL) test rules serfd.rules.test.yml

# Soak: five booted hosts, events and queries at a steady rate, random
# faults, then a check that every accepted event ran once on every node
# (README "Soak suite"). Not part of check. SOAK_DURATION is the seconds of
# load and faults; setting up and draining add about two minutes. Results
# (logs, journals, report.txt) stay in $(SOAK_OUT).
SOAK_DURATION ?= 1200
SOAK_SHORT_DURATION ?= 120
SOAK_OUT  ?= build/soak/$(shell date -u +%Y%m%dT%H%M%SZ)
soak-deps: deb
	$(MAKE) --no-print-directory deb DEB_VERSION=$(DEB_UPGRADE_VERSION)
	$(GO) build -trimpath -o bin/soak ./internal/soak/cmd/soak

soak: soak-deps
	packaging/e2e/soak.sh $(DEB) $(DEB_UPGRADE) bin/soak $(SOAK_DURATION) $(SOAK_OUT)

soak-short: soak-deps
	packaging/e2e/soak.sh $(DEB) $(DEB_UPGRADE) bin/soak $(SOAK_SHORT_DURATION) $(SOAK_OUT)

# serfd side by side with stock Serf, release builds of both (the
# benchmarks build serfd with -trimpath and refuse a -race binary).
# BenchmarkScale (daemon/serfd/bench_scale_test.go) runs clusters of
# BENCH_N processes of each kind, BENCH_ITERS iterations per size, serfd
# and Serf alternating, and writes $(BENCH_OUT)/results.json;
# internal/benchplot renders bench.md and the plots from it. Then the
# smaller benchmarks: a hung handler, the CLIs' members round trip, handler
# dispatch, event to handler start, bursts (SERFD_BENCH_NODES), one idle
# node's memory and what its resident pages are (memory.md), the zero-loss
# event rate (zeroloss.md), CPU per 1,000 events, and the handler pool's
# Submit and spool append.
BENCH_N     ?= 10 50 100
BENCH_ITERS ?= 3
BENCH_OUT   ?= docs/bench
# The revision BenchmarkEventCPU measures beside the current serfd: the last
# one before the per-event path was cut down (journal queue, STATUS= at
# most once a second, no member copy per event).
EVENTCPU_BASELINE ?= 79fa291
bench: build $(SERF)
	mkdir -p $(BENCH_OUT)
	SERF_BIN=$(SERF) SERFD_BENCH_SCALE='$(BENCH_N)' SERFD_BENCH_ITERS=$(BENCH_ITERS) \
		SERFD_BENCH_OUT=$(abspath $(BENCH_OUT))/results.json \
		$(GO) test -run '^$$' -bench 'Scale' -benchtime 1x -count 1 -timeout 180m ./daemon/serfd/
	$(GO) run ./internal/benchplot -in $(BENCH_OUT)/results.json -out $(BENCH_OUT)
	SERF_BIN=$(SERF) $(GO) test -run '^$$' -bench 'HungHandler' -benchtime 1x -count 3 -timeout 30m ./daemon/serfd/
	SERF_BIN=$(SERF) $(GO) test -run '^$$' -bench 'MembersRoundTrip' -timeout 30m ./daemon/serfd/
	SERF_BIN=$(SERF) $(GO) test -run '^$$' -bench 'HandlerDispatch|EventToHandlerStart' -benchtime 1x -count 3 -timeout 30m ./daemon/serfd/
	SERF_BIN=$(SERF) $(GO) test -run '^$$' -bench 'Burst' -benchtime 1x -count 1 -timeout 30m ./daemon/serfd/
	SERF_BIN=$(SERF) SERFD_BENCH_MEM_OUT=$(abspath $(BENCH_OUT))/memory.md \
		$(GO) test -run '^$$' -bench 'IdleMemory' -benchtime 1x -count 1 -timeout 10m ./daemon/serfd/
	SERF_BIN=$(SERF) SERFD_BENCH_ZL_OUT=$(abspath $(BENCH_OUT))/zeroloss.md \
		$(GO) test -run '^$$' -bench 'ZeroLoss' -benchtime 1x -count 1 -timeout 60m ./daemon/serfd/
	SERFD_BENCH_BASELINE=$(EVENTCPU_BASELINE) $(GO) test -run '^$$' -bench 'EventCPU' -benchtime 1x -count 1 -timeout 30m ./daemon/serfd/
	$(GO) test -run '^$$' -bench 'Submit|SpoolAppend' -count 3 ./exec/

# The gossip simulation (internal/sim): serfd's gossip layer at SIM_SIZES
# nodes in one process over an in-memory network, beside theory; writes
# docs/bench/sim.md and its plots. About 14 minutes on 2 cores and 11 GB
# of memory at 250, 500 and 1,000 nodes with the loss runs (SIM_SIZES=250
# alone: about 5 minutes).
SIM_SIZES ?= 250,500,1000
sim:
	$(GO) run ./internal/sim/cmd/sim -sizes $(SIM_SIZES) -out docs/bench

install: $(if $(filter bin,$(BINSRC)),build)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d \
		$(DESTDIR)$(PREFIX)/lib/systemd/catalog \
		$(DESTDIR)$(SYSCONF)/serf/handlers.d $(DESTDIR)$(SYSCONF)/serf/config.d \
		$(DESTDIR)$(PREFIX)/share/serfd/contrib/handlers $(DESTDIR)$(PREFIX)/share/serfd/contrib/dropins \
		$(DESTDIR)$(PREFIX)/share/serfd/contrib/prometheus $(DESTDIR)$(PREFIX)/share/serfd/contrib/grafana
	install -m 0755 $(BINSRC)/serfd $(BINSRC)/serfctl $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(LIBEXECDIR)
	install -m 0755 packaging/libexec/keep-out $(DESTDIR)$(LIBEXECDIR)/keep-out
	sed -e 's|/usr/bin/serf|$(BINDIR)/serf|g' -e 's|/usr/libexec/serfd/|$(LIBEXECDIR)/|g' \
		packaging/serfd.service > $(DESTDIR)$(UNITDIR)/serfd.service
	install -m 0644 packaging/serfd.socket $(DESTDIR)$(UNITDIR)/serfd.socket
	install -m 0644 packaging/sysusers.d/serfd.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/serfd.conf
	install -m 0644 packaging/tmpfiles.d/serfd.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/serfd.conf
	install -m 0644 packaging/catalog/serfd.catalog $(DESTDIR)$(PREFIX)/lib/systemd/catalog/serfd.catalog
	install -m 0755 contrib/handlers/* $(DESTDIR)$(PREFIX)/share/serfd/contrib/handlers/
	install -m 0644 contrib/dropins/* $(DESTDIR)$(PREFIX)/share/serfd/contrib/dropins/
	install -m 0644 contrib/prometheus/prometheus.yml contrib/prometheus/serfd.rules.yml \
		$(DESTDIR)$(PREFIX)/share/serfd/contrib/prometheus/
	install -m 0755 contrib/prometheus/serfd-file-sd $(DESTDIR)$(PREFIX)/share/serfd/contrib/prometheus/
	install -m 0644 contrib/grafana/serfd-dashboard.json $(DESTDIR)$(PREFIX)/share/serfd/contrib/grafana/
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/vendor-completions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 contrib/completions/serfctl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/serfctl
	install -m 0644 contrib/completions/_serfctl $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_serfctl
	install -m 0644 contrib/completions/serfctl.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/serfctl.fish
	for page in contrib/man/*.[158]; do \
		sect=$${page##*.}; \
		gzip -9n -c $$page > $(DESTDIR)$(PREFIX)/share/man/man$$sect/$${page##*/}.gz; \
		chmod 0644 $(DESTDIR)$(PREFIX)/share/man/man$$sect/$${page##*/}.gz; \
	done
	@if [ -e $(DESTDIR)$(SYSCONF)/serf/config.hcl ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONF)/serf/config.hcl"; \
	else install -m 0644 config.hcl $(DESTDIR)$(SYSCONF)/serf/config.hcl; fi

# Debian package, built with plain dpkg-deb: `make deb DEB_VERSION=0.1.1`.
# The file layout is `make install PREFIX=/usr`; packaging/deb/build.sh adds
# the docs, the control files and maintainer scripts, and builds $(DEB).
deb-bin:
ifneq ($(DEB_ARCH),$(DEB_HOST_ARCH))
	@if [ -z "$(DEB_GOARCH_$(DEB_ARCH))" ] || [ -z "$(DEB_GNU_TYPE)" ]; then \
		echo "DEB_ARCH=$(DEB_ARCH): no cross build known (arm64 is)" >&2; exit 1; fi
	@command -v $(DEB_GNU_TYPE)-gcc >/dev/null || { \
		echo "$(DEB_GNU_TYPE)-gcc not found: apt-get install gcc-$(DEB_GNU_TYPE) libc6-dev-$(DEB_ARCH)-cross" >&2; exit 1; }
endif
	$(DEB_GOENV) CGO_ENABLED=1 CGO_CPPFLAGS='$(DEB_CGO_CPPFLAGS)' $(GO) build -trimpath -buildmode=pie -ldflags '$(DEB_LDFLAGS)' -o $(DEB_DIR)/bin/serfd ./daemon/serfd
	$(DEB_GOENV) CGO_ENABLED=1 CGO_CPPFLAGS='$(DEB_CGO_CPPFLAGS)' $(GO) build -trimpath -buildmode=pie -ldflags '$(DEB_LDFLAGS)' -o $(DEB_DIR)/bin/serfctl ./ctl/serfctl

deb: deb-bin
	rm -rf $(DEB_DIR)/root
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_DIR)/root PREFIX=/usr SYSCONF=/etc BINSRC=$(DEB_DIR)/bin
	packaging/deb/build.sh $(DEB_DIR)/root $(DEB_VERSION) $(DEB) $(DEB_ARCH)

deb-lint: deb
	lintian --fail-on error $(DEB)

# The arm64 package, cross-built and linted (part of check).
deb-lint-arm64:
	$(MAKE) --no-print-directory deb-lint DEB_ARCH=arm64

clean:
	rm -rf bin build
