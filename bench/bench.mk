# Benchmarks: bench/*.c, each a plain program; tools/run-bench.sh runs them.
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:%.c=$(BUILD)/%)

$(BUILD)/bench/%: bench/%.c $(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibench -o $@ $< $(CORE_A) $(LDLIBS_CORE) -lm \
		$(SANFLAGS)

bench: all $(BENCH_BIN)
	@QUICK='$(QUICK)' tools/run-bench.sh $(BUILD)
