# olpcidx -- build, test, benchmark, demo.  GNU make.
#
#   make            the daemon ./olpcidx (and olpcidx.o, the library)
#   make test       strict builds with gcc and clang, then every test,
#                   including interop against a private Prosody
#   make test-offline   the tests that need no server
#   make bench      tokenizer and core throughput, next to expat/libxml2
#   make demo       a private Prosody, olpcidx, and clients talking to it
#   make sanitize   the offline tests under ASan and UBSan (GROUPS=...)
#   make valgrind   the offline tests under valgrind (GROUPS=...)
#   make fuzz       libFuzzer over the component (FUZZ_SECONDS=60)
#   make cross      offline tests for i586 (XO-1) and ARM under qemu

CC      ?= cc
CFLAGS  ?= -O2
STD      = -std=c99 -pedantic -Wall -Wextra
STRICT   = $(STD) -Werror
LDLIBS  ?=

SRC = olpcidx.c olpcidx.h

# expat and libxml2 only for the benchmark's comparison columns
HAVE_EXPAT   := $(shell printf '\043include <expat.h>\nint main(void){return 0;}\n' \
                  | $(CC) -x c - -lexpat -o /dev/null 2>/dev/null && echo 1)
HAVE_LIBXML2 := $(shell printf '\043include <libxml/parser.h>\nint main(void){return 0;}\n' \
                  | $(CC) -x c - -I/usr/include/libxml2 -lxml2 -o /dev/null 2>/dev/null && echo 1)
BENCH_DEFS = $(if $(HAVE_EXPAT),-DHAVE_EXPAT) \
             $(if $(HAVE_LIBXML2),-DHAVE_LIBXML2 -I/usr/include/libxml2)
BENCH_LIBS = $(if $(HAVE_EXPAT),-lexpat) $(if $(HAVE_LIBXML2),-lxml2)

all: olpcidx olpcidx.o

olpcidx: $(SRC)
	$(CC) $(STD) $(CFLAGS) -DOLPCIDX_MAIN -o $@ olpcidx.c $(LDFLAGS) $(LDLIBS)

olpcidx.o: $(SRC)
	$(CC) $(STD) $(CFLAGS) -c -o $@ olpcidx.c

olpcidx-test: test.c $(SRC)
	$(CC) $(STD) $(CFLAGS) -g -o $@ test.c $(LDFLAGS) $(LDLIBS)

olpcidx-bench: contrib/bench.c $(SRC)
	$(CC) $(STD) -O2 $(BENCH_DEFS) -o $@ contrib/bench.c $(BENCH_LIBS)

# -Werror builds of library, daemon, tests and benchmark with both compilers
strict:
	@for cc in gcc clang; do \
	  if command -v $$cc >/dev/null; then \
	    echo "strict: $$cc"; \
	    $$cc $(STRICT) -O2 -c -o /dev/null olpcidx.c || exit 1; \
	    $$cc $(STRICT) -O2 -DOLPCIDX_MAIN -o /dev/null olpcidx.c || exit 1; \
	    $$cc $(STRICT) -O2 -o /dev/null test.c || exit 1; \
	    $$cc $(STRICT) -O2 $(BENCH_DEFS) -c -o /dev/null contrib/bench.c \
	      || exit 1; \
	  else echo "strict: $$cc not installed, skipped"; fi; \
	done
	@echo "strict: the daemon links only libc:"; \
	  gcc $(STRICT) -O2 -DOLPCIDX_MAIN -o olpcidx.strict olpcidx.c && \
	  if command -v ldd >/dev/null; then ldd olpcidx.strict; fi; \
	  rm -f olpcidx.strict

test: strict olpcidx olpcidx-test
	./olpcidx-test

test-offline: olpcidx-test
	OLPCIDX_TEST_OFFLINE=1 ./olpcidx-test

bench: olpcidx-bench
	./olpcidx-bench

demo: olpcidx olpcidx-test
	@command -v prosody >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "demo: installing prosody"; \
	    apt-get install -y prosody || { apt-get update && apt-get install -y prosody; }; \
	  else echo "demo: needs prosody: run 'sudo apt-get install prosody'"; exit 1; fi; }
	./olpcidx-test demo

sanitize: $(SRC) test.c
	$(CC) $(STD) -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined,pointer-overflow \
	  -fno-sanitize-recover=all -o olpcidx-test-asan test.c
	OLPCIDX_TEST_OFFLINE=1 ./olpcidx-test-asan $(GROUPS)

# libFuzzer over the whole component (clang); FUZZ_SECONDS to taste
fuzz: $(SRC) test.c
	clang $(STD) -g -O1 -DOLPCIDX_FUZZ -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o olpcidx-fuzz test.c
	mkdir -p fuzz-corpus && cp fixtures/core-*.xml fuzz-corpus/
	./olpcidx-fuzz -max_total_time=$${FUZZ_SECONDS:-60} -max_len=8192 fuzz-corpus

# Offline tests for the XO-1 (Geode: i586 with CMOV, no SSE) and an ARM
# school server, run under qemu-user: needs gcc-i686-linux-gnu,
# libc6-dev-i386-cross, gcc-arm-linux-gnueabihf, libc6-dev-armhf-cross and
# qemu-user.  Prints the daemon's size for each.
I586_CC  ?= i686-linux-gnu-gcc
I586_RUN ?= qemu-i386 -cpu pentium2 -L /usr/i686-linux-gnu
ARMHF_CC ?= arm-linux-gnueabihf-gcc
ARMHF_RUN ?= qemu-arm -L /usr/arm-linux-gnueabihf
cross: $(SRC) test.c
	$(I586_CC) $(STRICT) -O2 -march=geode -mtune=geode -o olpcidx-test-i586 test.c
	$(I586_CC) $(STRICT) -Os -march=geode -DOLPCIDX_MAIN -o olpcidx-i586 olpcidx.c
	OLPCIDX_TEST_OFFLINE=1 $(I586_RUN) ./olpcidx-test-i586 | tail -1
	$(ARMHF_CC) $(STRICT) -O2 -o olpcidx-test-armhf test.c
	$(ARMHF_CC) $(STRICT) -Os -DOLPCIDX_MAIN -o olpcidx-armhf olpcidx.c
	OLPCIDX_TEST_OFFLINE=1 $(ARMHF_RUN) ./olpcidx-test-armhf | tail -1
	size olpcidx-i586 olpcidx-armhf

# GROUPS: some test groups only (./olpcidx-test list), e.g. the quick set
# .ci/run uses; empty: every offline group
valgrind: olpcidx-test
	OLPCIDX_TEST_OFFLINE=1 valgrind -q --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=all ./olpcidx-test $(GROUPS)

clean:
	rm -f olpcidx olpcidx.o olpcidx-test olpcidx-test-asan olpcidx-bench \
	  olpcidx.strict olpcidx-fuzz olpcidx-test-i586 olpcidx-i586 \
	  olpcidx-test-armhf olpcidx-armhf
	rm -rf fuzz-corpus

.PHONY: all strict test test-offline bench demo sanitize valgrind fuzz cross clean
