# serfd — build, test, install. `make check` is what CI runs.
GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    := $(PREFIX)/bin
UNITDIR   := $(PREFIX)/lib/systemd/system
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
DEB_ARCH  := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_DIR   := build/deb
DEB       := build/serfd_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_LDFLAGS := $(LDFLAGS) -s -w -linkmode=external -extldflags=-Wl,-z,relro,-z,now
# The C parts (runtime/cgo, net, os/user) call fprintf: use the _chk variants.
DEB_CGO_CPPFLAGS ?= -D_FORTIFY_SOURCE=2

.PHONY: all build run test race vet fmt staticcheck lint e2e check bench install clean tools \
	deb deb-bin deb-lint soak soak-short soak-deps

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/serfd ./daemon/serfd
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/serfctl ./ctl/serfctl

# A local single-node serfd with the shipped config, in the foreground.
run: build
	./bin/serfd -config ./config.hcl

# One package at a time: the gossip and process tests measure timing-bound
# protocol behaviour (failure detection, leave propagation) on 2 cores.
test: $(SERF)
	SERF_BIN=$(SERF) $(GO) test -race -count=1 -p 1 ./...

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

lint: vet fmt staticcheck

$(SERF):
	$(GO) install github.com/hashicorp/serf/cmd/serf@$(SERF_VERSION)

tools: $(STATICCHECK) $(SERF)

# End-to-end: three booted systemd hosts (systemd-nspawn) with the package
# installed by dpkg -i; the upgrade check then installs DEB_UPGRADE, the same
# tree packaged one version higher (binaries reporting VERSION-upgrade).
DEB_UPGRADE_VERSION := $(DEB_VERSION)+e2e1
DEB_UPGRADE := build/serfd_$(DEB_UPGRADE_VERSION)_$(DEB_ARCH).deb
e2e: deb
	$(MAKE) --no-print-directory deb DEB_VERSION=$(DEB_UPGRADE_VERSION) VERSION=$(VERSION)-upgrade
	packaging/e2e/run.sh $(DEB) $(DEB_UPGRADE)

check: build lint test deb-lint e2e

# Soak: five booted hosts, events and queries at a steady rate, random
# faults, then a check that every accepted event ran once on every node
# (README "Soak suite"). Not part of check. SOAK_DURATION is the seconds of
# load and faults; setting up and draining add about two minutes. Results
# (logs, journals, report.txt) stay in $(SOAK_OUT).
SOAK_DURATION ?= 1200
SOAK_SHORT_DURATION ?= 120
SOAK_OUT  ?= build/soak/$(shell date -u +%Y%m%dT%H%M%SZ)
soak-deps: deb
	$(MAKE) --no-print-directory deb DEB_VERSION=$(DEB_UPGRADE_VERSION) VERSION=$(VERSION)-upgrade
	$(GO) build -trimpath -o bin/soak ./internal/soak/cmd/soak

soak: soak-deps
	packaging/e2e/soak.sh $(DEB) $(DEB_UPGRADE) bin/soak $(SOAK_DURATION) $(SOAK_OUT)

soak-short: soak-deps
	packaging/e2e/soak.sh $(DEB) $(DEB_UPGRADE) bin/soak $(SOAK_SHORT_DURATION) $(SOAK_OUT)

# serfd side by side with stock Serf (daemon/serfd/bench_test.go). Each
# scenario runs once per -count (a gossip that misses a node waits for the
# next push/pull, so single runs vary); SERFD_BENCH_NODES sets the cluster size.
bench: build $(SERF)
	SERF_BIN=$(SERF) $(GO) test -run '^$$' -bench 'Cluster|HungHandler' -benchtime 1x -count 3 -timeout 30m ./daemon/serfd/
	SERF_BIN=$(SERF) $(GO) test -run '^$$' -bench 'MembersRoundTrip' -timeout 30m ./daemon/serfd/
	SERF_BIN=$(SERF) $(GO) test -run '^$$' -bench 'HandlerDispatch|EventToHandlerStart' -benchtime 1x -count 3 -timeout 30m ./daemon/serfd/

install: $(if $(filter bin,$(BINSRC)),build)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d \
		$(DESTDIR)$(PREFIX)/lib/systemd/catalog \
		$(DESTDIR)$(SYSCONF)/serf/handlers.d $(DESTDIR)$(SYSCONF)/serf/config.d \
		$(DESTDIR)$(PREFIX)/share/serfd/contrib/handlers $(DESTDIR)$(PREFIX)/share/serfd/contrib/dropins
	install -m 0755 $(BINSRC)/serfd $(BINSRC)/serfctl $(DESTDIR)$(BINDIR)/
	sed 's|/usr/bin/serf|$(BINDIR)/serf|g' packaging/serfd.service > $(DESTDIR)$(UNITDIR)/serfd.service
	install -m 0644 packaging/serfd.socket $(DESTDIR)$(UNITDIR)/serfd.socket
	install -m 0644 packaging/sysusers.d/serfd.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/serfd.conf
	install -m 0644 packaging/tmpfiles.d/serfd.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/serfd.conf
	install -m 0644 packaging/catalog/serfd.catalog $(DESTDIR)$(PREFIX)/lib/systemd/catalog/serfd.catalog
	install -m 0755 contrib/handlers/* $(DESTDIR)$(PREFIX)/share/serfd/contrib/handlers/
	install -m 0644 contrib/dropins/* $(DESTDIR)$(PREFIX)/share/serfd/contrib/dropins/
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
	CGO_ENABLED=1 CGO_CPPFLAGS='$(DEB_CGO_CPPFLAGS)' $(GO) build -trimpath -buildmode=pie -ldflags '$(DEB_LDFLAGS)' -o $(DEB_DIR)/bin/serfd ./daemon/serfd
	CGO_ENABLED=1 CGO_CPPFLAGS='$(DEB_CGO_CPPFLAGS)' $(GO) build -trimpath -buildmode=pie -ldflags '$(DEB_LDFLAGS)' -o $(DEB_DIR)/bin/serfctl ./ctl/serfctl

deb: deb-bin
	rm -rf $(DEB_DIR)/root
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_DIR)/root PREFIX=/usr SYSCONF=/etc BINSRC=$(DEB_DIR)/bin
	packaging/deb/build.sh $(DEB_DIR)/root $(DEB_VERSION) $(DEB)

deb-lint: deb
	lintian --fail-on error $(DEB)

clean:
	rm -rf bin build
