# chipsite: build, test, package.  `make help` lists the targets.
SHELL      := /bin/bash
SWIFT      ?= swift
VERSION    := $(shell cat packaging/VERSION)
MAN_DATE   := 2026-11-24
STATIC     := -c release --static-swift-stdlib -Xswiftc -static-executable
RELEASE_BIN = .build/release/chipsite
# What building and running a site needs (`make deps`, the quick start), and
# what only the tests add (`make test-deps`): the Python peers' venv, QR
# decoding, the .deb tools, systemd-analyze.
BUILD_PACKAGES := make file libsodium-dev zlib1g-dev libsqlite3-dev
TEST_PACKAGES  := python3-venv zbar-tools dpkg-dev systemd

SECONDS    ?= 20
.PHONY: help deps test-deps build test unit format check-format check-man check-static check-deb release deb man demo bench clean fuzz fuzz-smoke fuzz-build

help:
	@echo "make demo          install what is missing, build, create a demo site if none, show it"
	@echo "make test          every test: swift test, man pages current, static release binary"
	@echo "make release       the static release binary at $(RELEASE_BIN)"
	@echo "make deb           the .deb (static binary, man pages, completions, systemd unit) in dist/"
	@echo "make man           regenerate man/ from the command definitions"
	@echo "make format        format the Swift sources (swift format, .swift-format)"
	@echo "make bench         run the benchmarks (release build)"
	@echo "make fuzz          run every fuzz target SECONDS s each (default 20; doc/testing.md)"
	@echo "make deps          install the Debian packages building and running a site need"
	@echo "make test-deps     install the Debian packages only the tests need"

# Each installs only what is missing (sudo when not root), apt's output in a
# log shown only on failure.
deps:
	@bash packaging/apt-install.sh $(BUILD_PACKAGES)

test-deps:
	@bash packaging/apt-install.sh $(TEST_PACKAGES)

build:
	$(SWIFT) build

# The README's test command.
# The release build and the fuzz build run side by side: the fuzz build is
# one single-threaded compile after another, so the two share the cores.
test: deps test-deps check-format unit check-man
	@$(MAKE) --no-print-directory -j2 release fuzz-build
	@$(MAKE) --no-print-directory check-static check-deb fuzz-smoke
	@echo "all tests passed"

# The Swift sources as `swift format` (bundled with the toolchain) writes
# them, with the settings in .swift-format.
FORMAT_PATHS := Package.swift Sources Tests Fuzz/Targets Fuzz/Support Fuzz/SeedGen
format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMAT_PATHS)

check-format:
	@$(SWIFT) format lint --strict --recursive --parallel $(FORMAT_PATHS) || { echo "the sources are not formatted: run 'make format' and commit"; exit 1; }
	@echo "sources are formatted"

# One build of everything (products and tests); `build` then has nothing left to do.
unit:
	$(SWIFT) build --build-tests
	# One test at a time: the end-to-end suites block threads while they wait
	# for real processes, which would starve the in-process async tests.
	$(SWIFT) test --skip-build --no-parallel

release:
	$(SWIFT) build $(STATIC) --product chipsite
	@file $(RELEASE_BIN) | grep -q "statically linked" || { echo "$(RELEASE_BIN) is not statically linked"; file $(RELEASE_BIN); exit 1; }
	@echo "built $(RELEASE_BIN) (statically linked)"

# The release binary is static and runs with nothing else around it: in a
# chroot holding only the binary when we are root, else with an empty environment.
check-static: release
	@bash packaging/check-static.sh $(RELEASE_BIN)

# The .deb around the static release binary; the version is packaging/VERSION.
deb: release
	@CHIPSITE_DEB_BIN=$(RELEASE_BIN) bash packaging/build-deb.sh dist

# The .deb of the release binary unpacks to a working site (PackagingTests
# checks the same around the debug binary during `swift test`).
check-deb: deb
	@bash packaging/check-deb.sh dist/chipsite_$(VERSION)_$$(dpkg --print-architecture).deb

man: build
	@bash packaging/gen-man.sh man $(MAN_DATE)

check-man: build
	@tmp=$$(mktemp -d); bash packaging/gen-man.sh $$tmp $(MAN_DATE) >/dev/null; \
	if ! diff -r man $$tmp >/dev/null; then diff -r man $$tmp | head -20; rm -rf $$tmp; \
	  echo "man/ is stale: run 'make man' and commit it"; exit 1; fi; rm -rf $$tmp; echo "man pages are current"

demo: deps release
	@bash packaging/demo.sh $(RELEASE_BIN)

bench:
	$(SWIFT) run -c release noise-bench
	$(SWIFT) build -c release --product chipsite && $(SWIFT) build -c release --product site-bench && .build/release/site-bench --binary .build/release/chipsite
	$(SWIFT) build -c release --product chit-bench && .build/release/chit-bench --batch 1 && .build/release/chit-bench --batch 20
	$(SWIFT) build -c release --product lift-bench && .build/release/lift-bench --binary .build/release/chipsite
	$(SWIFT) build -c release --product user-bench && .build/release/user-bench --binary .build/release/chipsite

# Every fuzz target for $(SECONDS) s each (doc/testing.md); non-zero on a crash, leak or hang.
fuzz:
	@bash packaging/fuzz.sh $(SECONDS)

# The smoke pass in `make test`: every target for 4 s (21 targets, two at a time; CI stays under 20 minutes).
fuzz-smoke:
	@bash packaging/fuzz.sh 4

fuzz-build:
	@bash packaging/fuzz.sh --build

clean:
	rm -rf .build dist
