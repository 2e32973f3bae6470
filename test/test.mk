# Tests: cmocka unit tests (test/unit/test_*.c, linked with the core, no
# preload), integration programs (test/integration/*.c, plain executables
# run by the scripts test/integration/test_*.sh), all driven by
# tools/run-tests.sh, which prints "N passed, N failed" last.  `make check`
# stays within 5 minutes on 2 cores; `make check-long` runs the long soaks
# (test/integration/long_*.sh: 100,000 watches, long stress and churn).
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:%.c=$(BUILD)/%)
IPROG_SRC := $(wildcard test/integration/*.c)
IPROG_BIN := $(IPROG_SRC:%.c=$(BUILD)/%)

$(BUILD)/test/unit/%: test/unit/%.c $(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itest -o $@ $< $(CORE_A) $(CMOCKA_LIBS) \
		$(LDLIBS_CORE) $(SANFLAGS)

$(BUILD)/test/integration/%: test/integration/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itest -o $@ $< -lpthread $(SANFLAGS)

tests: all examples $(UNIT_BIN) $(IPROG_BIN)

check: deps tests
	@SAN='$(SAN)' CC='$(CC)' tools/run-tests.sh $(BUILD)

check-long: deps tests
	@SAN='$(SAN)' CC='$(CC)' LONG=1 tools/run-tests.sh $(BUILD)

unit: tests
	@SAN='$(SAN)' CC='$(CC)' ONLY=unit tools/run-tests.sh $(BUILD)

integration: tests
	@SAN='$(SAN)' CC='$(CC)' ONLY=integration tools/run-tests.sh $(BUILD)
