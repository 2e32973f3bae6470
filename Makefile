# epollcr: plain GNU make.  `make` builds build/libepollcr.so and
# build/epollcr; `make check` runs every test; SAN=address,undefined or
# SAN=thread builds everything under those sanitizers.
ifeq ($(origin CC),default)
CC := gcc
endif
SAN ?=
O ?= 2
BUILD ?= build
PKG_CONFIG ?= pkg-config
# The version's one source is include/epollcr.h (EPOLLCR_VERSION_*).
version_part = $(shell sed -n 's/^\#define EPOLLCR_VERSION_$(1) \([0-9]*\)$$/\1/p' include/epollcr.h)
SOMAJOR := $(call version_part,MAJOR)
SOMINOR := $(call version_part,MINOR)
VERSION := $(SOMAJOR).$(SOMINOR).$(call version_part,PATCH)

comma := ,
ifneq ($(SAN),)
BUILD := build-$(subst $(comma),-,$(SAN))
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
O := 1
endif
# The preloaded library interposes functions the sanitizer runtime itself
# calls while it starts (sigaction, close...), before it can run
# instrumented code: under ThreadSanitizer the library is built without
# instrumentation (its locks are still seen through libtsan's interceptors),
# and the registry's concurrency is checked by the instrumented unit tests.
LIB_SANFLAGS := $(if $(findstring thread,$(SAN)),,$(SANFLAGS))

CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter
# Debian's hardening: stack protector, fortified libc calls (they need an
# optimised build; under a sanitizer, whose interceptors check those calls
# themselves, they are left out) and a read-only GOT bound at load.
HARDEN_CFLAGS := -fstack-protector-strong \
	$(if $(SAN)$(filter 0,$(O)),,-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)
HARDEN_LDFLAGS := -Wl,-z,relro,-z,now
CFLAGS_BASE := -std=gnu11 -O$(O) -g -fPIC -fvisibility=hidden $(WARN) \
	-D_GNU_SOURCE -Iinclude -Icommon -Ishim -Irecorder -Ireplayer \
	$(HARDEN_CFLAGS) $(SANFLAGS) -MMD -MP
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS)
# libunwind is loaded at run time (shim/backtrace.c), not linked.
LDLIBS_CORE := -ldl -lpthread

# The core: everything that is not an interposed libc name (the shadow
# registry is shim/registry.c and its rooms, shim/registry_*.c).
REGISTRY_SRC := $(wildcard shim/registry*.c)
CORE_SRC := $(wildcard common/*.c) $(wildcard recorder/*.c) \
	$(wildcard replayer/*.c) $(REGISTRY_SRC) shim/backtrace.c
# The wrappers: only in the preloaded library.
SHIM_SRC := $(filter-out $(REGISTRY_SRC) shim/backtrace.c,$(wildcard shim/*.c))
CLI_SRC := $(wildcard cli/*.c)

CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
SHIM_OBJ := $(SHIM_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)

LIB := $(BUILD)/libepollcr.so
CORE_A := $(BUILD)/libepollcr-core.a
CLI := $(BUILD)/epollcr

.PHONY: all check check-long unit integration demo bench fuzz clean deps deps-demo format lint \
	install uninstall examples tests
all: $(LIB) $(CLI)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(CORE_A): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

LIB_OBJ := $(CORE_SRC:%.c=$(BUILD)/lib/%.o) $(SHIM_SRC:%.c=$(BUILD)/lib/%.o)
$(BUILD)/lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(SANFLAGS),$(ALL_CFLAGS)) $(LIB_SANFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ) shim/libepollcr.map
	$(CC) $(filter-out $(SANFLAGS),$(ALL_CFLAGS)) $(LIB_SANFLAGS) -shared \
		-Wl,-soname,libepollcr.so.$(SOMAJOR) \
		-Wl,--version-script=shim/libepollcr.map -Wl,-z,defs \
		$(HARDEN_LDFLAGS) \
		-o $@ $(LIB_OBJ) $(LDLIBS_CORE) $(LIB_SANFLAGS)

# `epollcr run` looks for the installed library in BINDIR/../lib/MULTIARCH
# too (Debian's layout).
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
$(BUILD)/cli/run.o: CFLAGS_BASE += -DEPOLLCR_MULTIARCH='"$(MULTIARCH)"'

$(CLI): $(CLI_OBJ) $(CORE_A)
	$(CC) $(ALL_CFLAGS) $(HARDEN_LDFLAGS) -o $@ $(CLI_OBJ) $(CORE_A) \
		$(LDLIBS_CORE) $(SANFLAGS)

# Example programs (plain executables, no link to the core).
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:%.c=$(BUILD)/%)
$(BUILD)/examples/%: examples/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(HARDEN_LDFLAGS) -o $@ $< -lpthread $(SANFLAGS)
examples: $(EXAMPLE_BIN)

# restore-embed links the library like an embedder would (through its
# soname, libepollcr.so.MAJOR, here a link to the build's libepollcr.so).
$(BUILD)/libepollcr.so.$(SOMAJOR): $(LIB)
	ln -sf libepollcr.so $@
$(BUILD)/examples/restore-embed: examples/restore-embed.c $(LIB) \
		$(BUILD)/libepollcr.so.$(SOMAJOR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(HARDEN_LDFLAGS) -o $@ $< -L$(BUILD) -lepollcr \
		-Wl,-rpath,'$$ORIGIN/..' $(SANFLAGS)

-include $(wildcard $(BUILD)/*/*.d $(BUILD)/*/*/*.d $(BUILD)/*/*/*/*.d)
include test/test.mk
include test/integration/restore_unpriv.mk
include test/fuzz/fuzz.mk
include bench/bench.mk
include install.mk

deps:
	@tools/deps.sh build

# The demo needs a compiler and libunwind, not the test suite's packages;
# they are installed before anything is compiled, also under make -j.
deps-demo:
	@tools/deps.sh demo

demo: deps-demo
	@$(MAKE) -s --no-print-directory all examples
	@tools/demo.sh $(BUILD)

clean:
	rm -rf build build-*

format:
	clang-format -i $(wildcard */*.c */*.h test/*/*.c bench/*.c)

lint:
	clang-tidy --quiet $(CORE_SRC) $(SHIM_SRC) $(CLI_SRC) -- $(CFLAGS_BASE)
	cppcheck --quiet --error-exitcode=1 --inline-suppr \
		--suppress=missingIncludeSystem -Iinclude -Icommon -Ishim \
		-Irecorder -Ireplayer common shim recorder replayer cli
