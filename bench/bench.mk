# Benchmarks: bench/*.c, each a plain program (bench/bench_util.c holds
# their shared helpers); tools/run-bench.sh runs them and prints one line
# per figure.  `make bench QUICK=1` is the short run.
BENCH_UTIL_SRC := bench/bench_util.c
BENCH_UTIL_OBJ := $(BUILD)/bench/bench_util.o
BENCH_SRC := $(filter-out $(BENCH_UTIL_SRC),$(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:%.c=$(BUILD)/%)

$(BENCH_UTIL_OBJ): $(BENCH_UTIL_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibench -c $< -o $@

$(BENCH_BIN): $(BUILD)/bench/%: bench/%.c $(BENCH_UTIL_OBJ) $(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibench -o $@ $< $(BENCH_UTIL_OBJ) $(CORE_A) \
		$(LDLIBS_CORE) -lm $(SANFLAGS)

# Figure 8's reference: a one-wrapper preloaded library (bench_startup).
BENCH_REFLIB := $(BUILD)/bench/libonewrap.so
$(BENCH_REFLIB): bench/lib/onewrap.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $< -ldl

benches: $(BENCH_BIN) $(BENCH_REFLIB)

bench: all $(BENCH_BIN) $(BENCH_REFLIB)
	@QUICK='$(QUICK)' tools/run-bench.sh $(BUILD)
