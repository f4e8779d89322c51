# rollout — build, deps, test, demo, asan, bench, install.
#   make            build ./rollout and the demo service
#   make deps       install the Debian packages the build, tests and demo need
#   make test       run every suite; ends with one line "N passed, N failed"
#   make asan       the whole suite under AddressSanitizer + UBSan
#   make demo       run_all on the local target
#   make bench      the benchmarks under tests/bench (not tests)
#   make fuzz       the libFuzzer harnesses (clang), FUZZ_SECONDS each
#   make fuzz-merge add what the last run found to the committed corpus
#   make install    PREFIX=/usr/local

PREFIX ?= /usr/local
BUILD ?= build
BIN ?= rollout
CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=

# The pkg-config flags are computed when a recipe first needs them, not
# when make reads this file: `make deps demo` installs the packages first
# and only then asks pkg-config (a `:=` here would run it before `deps`).
# Each is evaluated once, then kept (the `lazy` idiom).
lazy = $(eval $1 := $$(shell $2))$($1)
PKGS := lua5.4 yaml-0.1 libcurl libcjson libedit
PKG_CFLAGS = $(call lazy,PKG_CFLAGS,pkg-config --cflags $(PKGS))
PKG_LIBS = $(call lazy,PKG_LIBS,pkg-config --libs $(PKGS))
WARN := -Wall -Wextra -Werror
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -Iinclude $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
LIBS = $(PKG_LIBS) -lm
HOST_LIBS = $(call lazy,HOST_PKG_LIBS,pkg-config --libs lua5.4 yaml-0.1 libcjson libedit) -ldl -lm
NET_LIBS = $(call lazy,NET_PKG_LIBS,pkg-config --libs libcurl libcjson) -lm

# Quiet by default, like kernel builds: one short line per step; V=1 shows
# the full command lines.
ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-6s %s\n' $1 $2
endif

# Debian packages: build, tests (cmocka, busted, python3-jsonschema for the
# CRD schemas, openssl for the fake API server's certificates, chromium to
# render the HTML report headless — with --no-sandbox, --disable-gpu it needs
# no X server, GPU, D-Bus or setuid sandbox; fonts-dejavu-core is the font
# it draws text with), the local target (haproxy), the demo service
# (libmicrohttpd), the Prometheus metrics and their tests (prometheus),
# benchmarks (wrk, hyperfine), fuzzing (clang 14; libclang-rt-14-dev has
# libFuzzer and the sanitizer runtimes, only recommended by clang on Debian
# 12; llvm for llvm-symbolizer).
DEB_PACKAGES := build-essential pkg-config liblua5.4-dev lua5.4 libyaml-dev \
	libcurl4-openssl-dev libcjson-dev libcmocka-dev lua-busted haproxy \
	libedit-dev libmicrohttpd-dev python3 python3-jsonschema openssl curl \
	wrk hyperfine tmux procps iproute2 chromium fonts-dejavu-core prometheus \
	clang libclang-rt-14-dev llvm

# runtime/, by directory (README, "Layout of runtime/"):
#   host/      the interpreter: main (CLI), host (state, preload, calls), repl
#   lib/       helpers every other part uses (leaves: they call no binding)
#   core/      Lua-free logic (stats, weights), tested by cmocka directly
#   bindings/  the rollout.<name> modules built into the binary
#   proc/      rollout.proc
#   net/       the bindings that need libcurl (http, http_session, probe),
#              built into rollout-net.so, next to the binary, and loaded on
#              first require: libcurl and its TLS stack cost ~4 ms at
#              start-up, more than all the rest.
CORE_SRC := $(wildcard runtime/core/*.c)
NET_SRC := $(wildcard runtime/net/*.c runtime/net/*/*.c)
MAIN_SRC := runtime/host/main.c
HOST_SRC := $(filter-out $(MAIN_SRC),$(wildcard runtime/host/*.c runtime/lib/*.c runtime/bindings/*.c runtime/proc/*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
HOST_OBJ := $(HOST_SRC:%.c=$(BUILD)/%.o)
NET_OBJ := $(NET_SRC:%.c=$(BUILD)/pic/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)
NETLIB := $(dir $(BIN))rollout-net.so
C_TESTS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/test_*.c))
DEMO := $(if $(wildcard services/microservice-1/Makefile),services/microservice-1/microservice-1)

.PHONY: all deps test asan demo bench install install-files uninstall clean fuzz fuzz-build fuzz-merge

all: $(BIN) $(NETLIB) $(C_TESTS) $(DEMO)

# -rdynamic: rollout-net.so uses the host's functions
$(BIN): $(MAIN_OBJ) $(HOST_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -rdynamic -o $@ $(filter %.o,$^) $(HOST_LIBS)

$(NETLIB): $(NET_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -shared -o $@ $(filter %.o,$^) $(NET_LIBS)

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/c/%.c $(HOST_OBJ) $(CORE_OBJ) $(NET_OBJ)
	@mkdir -p $(dir $@)
	$(call say,CCLD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LIBS) -lcmocka

ifneq ($(DEMO),)
$(DEMO): FORCE
	$(Q)$(MAKE) -s -C services/microservice-1 $(if $(filter 1,$(V)),V=1)
endif

FORCE:

deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	have=$$(dpkg-query -W -f='$${db:Status-Abbrev}\n' $(DEB_PACKAGES) 2>/dev/null | grep -c '^ii'); \
	if [ "$$have" -lt "$(words $(DEB_PACKAGES))" ]; then \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	else echo "deps: all $(words $(DEB_PACKAGES)) packages are installed"; fi

test: all
	ROLLOUT_BIN=$(abspath $(BIN)) BUILD=$(BUILD) tests/run

# The whole suite with the host built under AddressSanitizer + UBSan.
# float-cast-overflow (1e300 -> long long) is not part of "undefined" in gcc
# or clang: named on its own. The build is several times slower: the specs'
# wall-clock limits are scaled by TIMEOUT_FACTOR (tests/helpers/fixture.lua).
SANITIZE := -fsanitize=address,undefined,float-cast-overflow
asan:
	TIMEOUT_FACTOR=$${TIMEOUT_FACTOR:-3} $(MAKE) BUILD=build-asan BIN=build-asan/rollout \
	  CFLAGS="-O1 -g $(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow" \
	  LDFLAGS="$(SANITIZE)" test

# Fuzzing: libFuzzer harnesses (tests/fuzz/fuzz_<target>.c) built with clang
# under ASan + UBSan in their own build directory; only these targets need
# clang. Each runs FUZZ_SECONDS on a copy of tests/fuzz/corpus/<target>
# (tests/fuzz/run); fuzz-merge minimises what the last run found into the
# committed corpus.
FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= yaml json probe_http traffic service_config kubeconfig
FUZZ_SAN := $(SANITIZE) -fno-sanitize-recover=undefined,float-cast-overflow -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -Iinclude $(PKG_CFLAGS) -O1 -g $(FUZZ_SAN) -MMD -MP
FUZZ_LUA_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(filter-out runtime/host/repl.c,$(HOST_SRC)) $(CORE_SRC) tests/fuzz/fuzz_lua.c)
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZ_TARGETS)

fuzz-merge: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run --merge $(FUZZ_TARGETS)

fuzz-build: $(FUZZ_BINS)

# kept between runs (they are only prerequisites of the harnesses)
.PRECIOUS: $(FUZZ_BUILD)/%.o

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_probe_http: $(FUZZ_BUILD)/tests/fuzz/fuzz_probe_http.o $(FUZZ_BUILD)/runtime/net/probe/http.o \
		$(FUZZ_BUILD)/runtime/net/probe/extract.o $(FUZZ_BUILD)/runtime/lib/buf.o
	$(call say,LINK,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(NET_LIBS)

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_LUA_OBJ)
	$(call say,LINK,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(HOST_LIBS)

# run_all on the local target, on a copy of deployments/ (run_all rewrites
# TRAFFIC.yaml) so the tree stays as it is.
demo: all
	rm -rf $(BUILD)/demo && mkdir -p $(BUILD)/demo && cp -R deployments $(BUILD)/demo/
	ROLLOUT_DEPLOYMENTS=$(abspath $(BUILD)/demo/deployments) ROLLOUT_STATE_DIR=$(abspath $(BUILD)/demo/state) \
	  ./$(BIN) scripts/run_all.lua microservice-1

bench: all
	@for b in tests/bench/*; do [ -x "$$b" ] && { echo "== $$b"; ROLLOUT_BIN=$(abspath $(BIN)) "$$b"; }; done; true

install: all
	$(MAKE) install-files

# Copies what is built (no build): the binary, the stdlib, scripts,
# deployments and the demo service.
install-files:
	@test -x $(BIN) || { echo "install: $(BIN) is not built (run make)"; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/rollout
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/rollout
	install -d $(DESTDIR)$(PREFIX)/lib/rollout
	install -m 644 $(NETLIB) $(DESTDIR)$(PREFIX)/lib/rollout/rollout-net.so
	cp -R stdlib/rollout $(DESTDIR)$(PREFIX)/share/rollout/
	cp -R scripts deployments $(DESTDIR)$(PREFIX)/share/rollout/
	if [ -x $(DEMO) ]; then install -d $(DESTDIR)$(PREFIX)/share/rollout/services/microservice-1 && \
	  install -m 755 $(DEMO) $(DESTDIR)$(PREFIX)/share/rollout/services/microservice-1/; fi

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/rollout $(DESTDIR)$(PREFIX)/share/rollout $(DESTDIR)$(PREFIX)/lib/rollout

clean:
	rm -rf build build-asan $(FUZZ_BUILD) rollout rollout-net.so
	-$(MAKE) -s -C services/microservice-1 clean

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
