# bpgen: `make` builds ./bpgen, `make test` runs the Check suite and the CLI
# driver under AddressSanitizer and UndefinedBehaviorSanitizer.  Both first make
# sure the Debian packages they need are installed (scripts/deps.sh).

CC      = gcc
CFLAGS  = -std=c11 -g -O2 -Wall -Wextra -fno-common -D_GNU_SOURCE -Igen -Iruntime -Ibuild/gen
KFLAGS  = -O3 -ffp-contract=off -fno-math-errno     # the heavy kernels (runtime/kernels.c)
# CPU levels (issue 16): on x86-64 runtime/kernels.c is built once per level,
# each object keeping one global symbol, its table bp_kernels_<level>, and
# runtime/kernels_cpu.c picks the best level the CPU runs at start (BPGEN_CPU=
# baseline|avx2|avx512 forces a lower one), so a bpgen built here runs on any
# x86-64.  Nothing else is built for this machine only (no -march=native).
# Elsewhere: one plain build of runtime/kernels.c.
KLEVELS = $(if $(filter x86_64-%,$(shell $(CC) -dumpmachine)),baseline avx2 avx512)
KFLAGS_baseline = -march=x86-64 -mtune=generic
KFLAGS_avx2     = -march=x86-64-v3 -mtune=generic
KFLAGS_avx512   = -march=x86-64-v4 -mtune=generic
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# Open MPI (issue 17): when pkg-config finds it (Debian's libopenmpi-dev, which
# the set-up installs), bpgen links libmpi and gen/comm.c is built with
# BP_HAVE_MPI, so `mpirun -np N bpgen run ...` trains data-parallel; without it
# bpgen builds as before and runs one process.  Asked at recipe time, after
# scripts/deps.sh has installed what is missing.
MPI_CFLAGS = $$(pkg-config --exists mpi-c 2>/dev/null && echo -DBP_HAVE_MPI $$(pkg-config --cflags mpi-c))
MPI_LIBS   = $$(pkg-config --exists mpi-c 2>/dev/null && pkg-config --libs mpi-c)
LIBS    = -ltcc -ldl -lm -lpthread $(MPI_LIBS)

GEN_SRCS = $(sort $(filter-out gen/main.c,$(wildcard gen/*.c)) gen/lex.c)
RT_SRCS  = $(sort $(wildcard runtime/*.c))
LIB_SRCS = $(GEN_SRCS) $(RT_SRCS)
TEMPLATES = $(sort $(wildcard templates/*)) runtime/bp_runtime.h $(wildcard runtime/kernels.h)
KERNEL_PARTS = $(wildcard runtime/kernels_*.h) runtime/npy_parse.h runtime/bp_comm.h runtime/llmc_ckpt.h   # pasted by embed.sh where kernels.h, trainer.c include them

# the objects of bpgen's library: runtime/kernels.c once per CPU level, or once
LIB_OBJ  = $(filter-out runtime/kernels.o,$(LIB_SRCS:.c=.o)) \
           $(if $(KLEVELS),$(KLEVELS:%=runtime/kernels-%.o),runtime/kernels.o)
OBJS     = $(LIB_OBJ:%=build/%)
SAN_OBJS = $(LIB_OBJ:%=build/san/%)
TEST_SRCS = $(sort $(wildcard tests/*.c))

all: bpgen

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
deps-main:
	@scripts/deps.sh main
deps-gpt:
	@scripts/deps.sh gpt
.PHONY: all deps deps-test deps-main deps-gpt test check fuzz bench clean main gpt

gen/lex.c: gen/lex.re | deps
	re2c -W --no-generation-date --no-version -o $@ $<

build/gen/templates.h: $(TEMPLATES) $(KERNEL_PARTS) scripts/embed.sh
	@mkdir -p $(@D)
	scripts/embed.sh $@ $(TEMPLATES)

build/gen/c_names.h: scripts/c_names.sh $(TEMPLATES) $(wildcard runtime/*.h)
	@mkdir -p $(@D)
	scripts/c_names.sh $@

build/gen/layout.o build/san/gen/layout.o: build/gen/c_names.h
build/gen/comm.o build/san/gen/comm.o build/cov/gen/comm.o: CFLAGS += $(MPI_CFLAGS)
build/gen/comm.o build/san/gen/comm.o build/cov/gen/comm.o: gen/comm.h
build/gen/cmd_run.o build/san/gen/cmd_run.o build/cov/gen/cmd_run.o: gen/comm.h

build/%.o: %.c gen/bpgen.h gen/backend.h gen/ops.h runtime/bp_runtime.h build/gen/templates.h $(wildcard runtime/*.h) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<
build/runtime/kernels.o: CFLAGS += $(KFLAGS)
build/runtime/kernels_cpu.o build/san/runtime/kernels_cpu.o: CFLAGS += $(if $(KLEVELS),-DBP_KERNEL_LEVELS)

# one CPU level of the kernels: its table global, the rest local (objcopy -G)
build/runtime/kernels-%.o: runtime/kernels.c gen/bpgen.h runtime/bp_runtime.h $(wildcard runtime/*.h) templates/model_kernels.h | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(KFLAGS) $(KFLAGS_$*) -DBP_LEVEL=$* -c -o $@.tmp $<
	objcopy -G bp_kernels_$* $@.tmp $@ && rm -f $@.tmp
build/san/runtime/kernels-%.o: runtime/kernels.c gen/bpgen.h runtime/bp_runtime.h $(wildcard runtime/*.h) templates/model_kernels.h | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(KFLAGS) $(KFLAGS_$*) $(SANFLAGS) -O1 -DBP_LEVEL=$* -c -o $@.tmp $<
	objcopy -G bp_kernels_$* $@.tmp $@ && rm -f $@.tmp

build/san/%.o: %.c gen/bpgen.h gen/backend.h gen/ops.h runtime/bp_runtime.h build/gen/templates.h $(wildcard runtime/*.h) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SANFLAGS) -O1 -c -o $@ $<
build/san/runtime/kernels.o: CFLAGS += $(KFLAGS)

bpgen: build/gen/main.o $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

build/san/bpgen: build/san/gen/main.o $(SAN_OBJS)
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $^ $(LIBS)

build/san/check_bpgen: $(TEST_SRCS) tests/tests.h $(SAN_OBJS) | deps-test
	$(CC) $(CFLAGS) $(SANFLAGS) -O1 -Itests -o $@ $(TEST_SRCS) $(SAN_OBJS) $$(pkg-config --cflags --libs check) $(LIBS)

# The test suite: every Check suite, then the command-line driver; the
# binaries built with a job per core, the Check cases tagged "slow" beside the
# rest (scripts/test.sh).
test: deps-test
	$(MAKE) -j$$(nproc 2>/dev/null || echo 1) build/san/check_bpgen build/san/bpgen bpgen
	scripts/test.sh
check: test

# Line coverage of gen/ and runtime/ under the whole suite (gcov; not part of
# `make test`): build/cov/coverage.txt lists each file's percentage and the
# lines never run.
COV_OBJS = $(LIB_SRCS:%.c=build/cov/%.o)
build/cov/%.o: %.c gen/bpgen.h gen/backend.h gen/ops.h runtime/bp_runtime.h build/gen/templates.h build/gen/c_names.h $(wildcard runtime/*.h) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O0 --coverage -c -o $@ $<
build/cov/bpgen: build/cov/gen/main.o $(COV_OBJS)
	$(CC) $(CFLAGS) --coverage -o $@ $^ $(LIBS)
build/cov/check_bpgen: $(TEST_SRCS) tests/tests.h $(COV_OBJS) | deps-test
	$(CC) $(CFLAGS) -O0 --coverage -Itests -o $@ $(TEST_SRCS) $(COV_OBJS) $$(pkg-config --cflags --libs check) $(LIBS)
coverage: build/cov/check_bpgen build/cov/bpgen bpgen
	find build/cov -name '*.gcda' -delete
	-build/cov/check_bpgen > build/cov/check.log 2>&1
	-tests/driver.sh build/cov/bpgen > build/cov/driver.log 2>&1
	scripts/coverage.sh build/cov > build/cov/coverage.txt
	@head -40 build/cov/coverage.txt
.PHONY: coverage

# The report page in a real browser: `bpgen report` on the granular spec with a
# learner's file, rendered by headless Chromium (Debian package chromium,
# installed here when missing); the DOM after the page's script ran must hold
# the SVG graph, the lines and cmp tables, and the panel a node click filled;
# build/report.png is a screenshot to look at.
CHROMIUM ?= chromium
CHROMIUM_FLAGS = --headless --no-sandbox --disable-gpu --hide-scrollbars
report-check: bpgen deps-test
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -ne 0 ]; then echo "report-check needs chromium: apt-get install -y chromium" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2; }
	@mkdir -p build
	./bpgen report specs/makemore_granular.spec --mine tests/fixtures/ninja_ex1_offbyone.c -o build/report.html
	python3 tools/html_check.py build/report.html specs/makemore_granular.spec
	timeout 120 $(CHROMIUM) $(CHROMIUM_FLAGS) --dump-dom "file://$(CURDIR)/build/report.html#node=n20" \
	  2>/dev/null > build/report.dom.html
	grep -q 'data-ready="1"' build/report.dom.html || { echo "report-check: the page's script did not run" >&2; exit 1; }
	grep -q '<svg' build/report.dom.html || { echo "report-check: no SVG in the DOM" >&2; exit 1; }
	grep -q '<table class="cmp">' build/report.dom.html || { echo "report-check: no cmp table" >&2; exit 1; }
	grep -q '<table class="explain">' build/report.dom.html || { echo "report-check: no lines table" >&2; exit 1; }
	grep -q '<table class="mine">' build/report.dom.html || { echo "report-check: no verdicts table" >&2; exit 1; }
	grep -q 'data-shown="n20"' build/report.dom.html || { echo "report-check: a node click shows nothing" >&2; exit 1; }
	grep -q '<g id="svgnode-n20" class="node sel">' build/report.dom.html || { echo "report-check: node not selected" >&2; exit 1; }
	timeout 120 $(CHROMIUM) $(CHROMIUM_FLAGS) --window-size=1400,1800 --screenshot=build/report.png \
	  "file://$(CURDIR)/build/report.html#node=n20" >/dev/null 2>&1
	@test -s build/report.png && echo "report-check: ok (DOM has the graph, the tables and the clicked node's lines; screenshot build/report.png)"
.PHONY: report-check

# The main job: train the lecture's model on the default word list, Debian's
# wamerican dictionary cut to lowercase a-z words (63,875 words), with the
# lecture's Exercise 4 recipe: H = 200, 200,000 steps of batch 32, lr 0.1 then
# 0.01 from step 100,000 (about 10 s here).  MAIN_ARGS changes it,
# e.g. MAIN_ARGS="--steps 20000".
MAIN_ARGS ?= -D H=200 --steps 200000
build/words.txt: | deps-main
	@mkdir -p $(@D)
	LC_ALL=C grep -x '[a-z][a-z]*' /usr/share/dict/american-english | LC_ALL=C sort -u > $@.tmp
	mv $@.tmp $@
main: deps-main bpgen build/words.txt
	./bpgen run specs/makemore.spec --data build/words.txt $(MAIN_ARGS)
run: main
.PHONY: run

# A character-level GPT: specs/gpt2.spec at its small default sizes (4 layers,
# 128 channels, 64 positions) on the default text, the fortune cookies of
# Debian's fortunes package cut to printable ASCII (2.5 MB, 96 characters; the
# last 10% is the dev split), AdamW with warmup and cosine decay.  GPT_ARGS
# changes it; the loss curve is build/gpt.csv (bpgen plot build/gpt.csv -o gpt.png).
GPT_ARGS ?= --steps 3000 --optimizer adamw --lr 1e-3 --warmup 100 --lr-schedule cosine --lr-min 1e-4 \
  --eval-every 250 --eval-batches 20 --log build/gpt.csv --sample-len 400 --temperature 0.8
build/fortunes.txt: | deps-gpt
	@mkdir -p $(@D)
	for f in /usr/share/games/fortunes/*; do case $$f in *.dat|*.u8) ;; *) [ -f "$$f" ] && cat "$$f" ;; esac; done \
	  | LC_ALL=C tr -cd '\n -~' > $@.tmp
	mv $@.tmp $@
gpt: deps-gpt bpgen build/fortunes.txt
	./bpgen run specs/gpt2.spec --text build/fortunes.txt $(GPT_ARGS)

# Fuzz the front end (lexer, parser, shapes) with libFuzzer: FUZZ_SECONDS=600 make fuzz
FUZZ_SECONDS ?= 60
FUZZ_SRCS = $(LIB_SRCS)
build/fuzz_spec: fuzz/fuzz_spec.c $(FUZZ_SRCS) gen/bpgen.h gen/ops.h build/gen/templates.h | deps-test
	@mkdir -p $(@D)
	clang -g -O1 -std=c11 -D_GNU_SOURCE -Igen -Iruntime -Ibuild/gen $(MPI_CFLAGS) -fsanitize=fuzzer,address,undefined \
	  -o $@ fuzz/fuzz_spec.c $(FUZZ_SRCS) $(LIBS)
fuzz: build/fuzz_spec
	@mkdir -p build/fuzz-corpus
	build/fuzz_spec -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=5 -dict=fuzz/spec.dict \
	  build/fuzz-corpus fuzz/corpus

clean:
	rm -rf build bpgen gen/lex.c

# The performance benchmark (issue 5; not a test): bp_gemm vs OpenBLAS sgemm and
# PyTorch per step.  BENCH_FLAGS=--quick for a shorter run.
bench: bpgen
	bench/run.sh $(BENCH_FLAGS)

# The per-step benchmark (bench/step.c): gcc build, libtcc build, reference runtime.
build/bench/step: bench/step.c bench/alloc_count.h bench/bench_model.h $(OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O2 -o $@ bench/step.c $(OBJS) $(LIBS)

# The sequence models' step against PyTorch (bench/seq_step.c, bench/seq_bench.sh).
build/bench/seq_step: bench/seq_step.c bench/alloc_count.h bench/bench_model.h $(OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O2 -o $@ bench/seq_step.c $(OBJS) $(LIBS)

# Where a step's time goes, per block of forward and backward (bench/jit_times.c).
build/bench/jit_times: bench/jit_times.c bench/bench_model.h $(OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -rdynamic -o $@ bench/jit_times.c $(OBJS) $(LIBS)

# Install (issue 16): the binary, the ABI header a program driving emitted
# models needs (runtime/bp_runtime.h; each emitted file carries its own copy),
# the man page, bash completion and the README (the spec language).
# `make install PREFIX=/usr DESTDIR=/tmp/stage` stages a package; uninstall
# removes exactly those files, and the directories that are bpgen's own.
PREFIX  ?= /usr/local
DESTDIR ?=
INSTALL_FILES = bin/bpgen include/bpgen/bp_runtime.h share/man/man1/bpgen.1 \
                share/bash-completion/completions/bpgen share/doc/bpgen/README.md
install: bpgen
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/bpgen $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/doc/bpgen
	install -m 755 bpgen $(DESTDIR)$(PREFIX)/bin/bpgen
	install -m 644 runtime/bp_runtime.h $(DESTDIR)$(PREFIX)/include/bpgen/bp_runtime.h
	install -m 644 doc/bpgen.1 $(DESTDIR)$(PREFIX)/share/man/man1/bpgen.1
	install -m 644 completion/bpgen.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/bpgen
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/bpgen/README.md
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/,$(INSTALL_FILES))
	-rmdir $(DESTDIR)$(PREFIX)/include/bpgen $(DESTDIR)$(PREFIX)/share/doc/bpgen 2>/dev/null
.PHONY: install uninstall
