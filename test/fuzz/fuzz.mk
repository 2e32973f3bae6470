# Fuzzing the image reader, show and the writer (test/fuzz/fuzz_image.c).
# `make fuzz` builds $(BUILD)/fuzz/fuzz_image with clang's libFuzzer and the
# address and undefined sanitizers, then runs it for FUZZ_SECONDS (default
# 60) on a work corpus in $(BUILD)/fuzz/corpus seeded from test/fixtures.
# A crash leaves its input in $(BUILD)/fuzz/ (crash-*, leak-*, timeout-*):
# add it to test/fixtures and fix the reader.  Needs clang and
# libclang-rt-14-dev (tools/deps.sh all).
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_BIN := $(FUZZ_DIR)/fuzz_image
FUZZ_SRC := test/fuzz/fuzz_image.c common/image.c common/crc32c.c \
	common/escape.c common/ownfd.c \
	common/log.c recorder/image_write.c replayer/image_read.c \
	replayer/show.c replayer/symbolize.c replayer/show_text.c \
	replayer/show_json.c
FUZZ_CFLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -D_GNU_SOURCE \
	-Iinclude -Icommon -Irecorder -Ireplayer $(WARN)

$(FUZZ_BIN): $(FUZZ_SRC) $(wildcard include/*.h common/*.h replayer/*.h) \
		test/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_SRC)

# The semantic fuzzer (test/unit/test_semantic.c, images from
# test/imggen.h): `make check` runs 150 images; `make fuzz` runs
# FUZZ_SEMANTIC_IMAGES from FUZZ_SEMANTIC_SEED, under the sanitizers of the
# build (SAN=address,undefined make fuzz for ASan and UBSan).  A failure
# prints its seed: EPOLLCR_SEMANTIC_SEED=N EPOLLCR_SEMANTIC_IMAGES=1
# replays it.
FUZZ_SEMANTIC_IMAGES ?= 20000
FUZZ_SEMANTIC_SEED ?= 1
.PHONY: fuzz-semantic
fuzz-semantic: $(BUILD)/test/unit/test_semantic
	EPOLLCR_SEMANTIC_IMAGES=$(FUZZ_SEMANTIC_IMAGES) \
		EPOLLCR_SEMANTIC_SEED=$(FUZZ_SEMANTIC_SEED) $<

fuzz: fuzz-semantic $(FUZZ_BIN)
	@mkdir -p $(FUZZ_DIR)/corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_DIR)/corpus test/fixtures
