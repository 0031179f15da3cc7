# journeyd -- one Makefile, five verbs (STYLE practice 13):
#   make          build build/journeyd (release: -O2, mimalloc)
#   make run      install what is missing, build, start journeyd on ./data with the example journeys
#   make test     install, build with ASan+UBSan, run unit, golden, fuzz-regression and end-to-end tests
#   make bench    benchmarks (not part of test): bench/ingest, timers, expr, journeys
#   make fuzz     longer libFuzzer runs (FUZZ_SECONDS per harness)
#   make check    include boundaries and banned functions

CC       ?= cc
PKGS     := libmicrohttpd json-c libxxhash openssl zlib yaml-0.1 libpcre2-8 icu-uc icu-i18n libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASEFLAGS := -std=gnu17 -g $(WARN) -MMD -MP -Iinclude -D_GNU_SOURCE $(PKG_CFLAGS)
LIBS     := $(PKG_LIBS) -lpthread -lm

# Variants: release (build/) and sanitized (build/asan/). mimalloc only in release
# (DEPENDENCIES.md: keep glibc malloc for ASan and valgrind).
ifeq ($(SANITIZE),1)
  B       := build/asan
  CFLAGS  := $(BASEFLAGS) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS := -fsanitize=address,undefined
  ALLOC   :=
else
  B       := build
  CFLAGS  := $(BASEFLAGS) -O2
  LDFLAGS :=
  ALLOC   := -lmimalloc
endif

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
MAIN_OBJ := $(B)/obj/src/main.o
UNIT_SRC := $(sort $(wildcard tests/unit/*/*.c))
UNIT_BIN := $(UNIT_SRC:%.c=$(B)/%)
FUZZ_SRC := $(sort $(wildcard fuzz/*.c))

.PHONY: all run test unit bench fuzz check clean deps e2e
all: $(B)/journeyd

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libjourneyd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/journeyd: $(MAIN_OBJ) $(B)/libjourneyd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(ALLOC)

# One cmocka program per test file: tests/unit/<mod>/test_x.c -> $(B)/tests/unit/<mod>/test_x
$(B)/tests/unit/%: tests/unit/%.c $(B)/libjourneyd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(B)/libjourneyd.a $(LIBS) -lcmocka -lcurl $(LDFLAGS)

unit: $(UNIT_BIN)

deps:
	@bash tools/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	./build/journeyd serve --config journeyd.yaml

test: deps
	@$(MAKE) --no-print-directory SANITIZE=1 build/asan/journeyd unit-asan
	@$(MAKE) --no-print-directory all fuzz-regress-bins
	@tools/run-tests

unit-asan:
	@$(MAKE) --no-print-directory SANITIZE=1 unit

# libFuzzer harnesses (clang): build/fuzz/<name>; their corpora are replayed by make test.
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS := $(BASEFLAGS) -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(filter-out -fsanitize=fuzzer%,$(FUZZ_CFLAGS)) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
build/fuzz/%: fuzz/%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_OBJ) $(LIBS)
fuzz-regress-bins: $(FUZZ_BIN)

FUZZ_SECONDS ?= 120
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/$$n || exit 1; done

# Micro-benchmarks: bench/<name>.c -> build/bench/<name>, linked with the release library.
BENCH_BIN := $(patsubst bench/%.c,build/bench/%,$(wildcard bench/*.c))
build/bench/%: bench/%.c build/libjourneyd.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -O2 -o $@ $< build/libjourneyd.a $(LIBS) -lmimalloc $(BENCH_LDFLAGS_$*)
# bench/expr counts allocations made by journeyd's code (it promises none per evaluation).
BENCH_LDFLAGS_expr := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
# bench/templates too (zero allocations a render, once its scratch is warm).
BENCH_LDFLAGS_templates := -DCOUNT_ALLOCS -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
# bench/delivery drives libcurl itself (its reference) and links the deliver module.

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@bench/run

check:
	@tools/check

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)
