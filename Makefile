# olpcidx -- build, test, benchmark, demo.  GNU make.
#
#   make            the daemon ./olpcidx (and olpcidx.o, the library)
#   make WITH_MBEDTLS=1   the daemon able to connect with TLS (--tls-ca),
#                   linked with mbed TLS 2.28 or 3.x (libmbedtls-dev)
#   make olpcidx-tls    that daemon as ./olpcidx-tls, beside the plain one:
#                   what the test group tls runs
#   make test       strict builds with gcc, clang and tcc, then every test,
#                   including interop against private Prosody and ejabberd
#                   (plain and TLS)
#   make test-offline   the tests that need no server
#   make loadtest   LOAD_CLIENTS c2s clients (500) through a private Prosody
#                   for LOAD_SECONDS (60) at each of LOAD_RATES changes a
#                   second (4,12: one Prosody carries here, one it cannot):
#                   stanzas/s, notification latency, CPU, peak RSS, lost
#                   and duplicated notifications (loopback; stops by itself)
#   make bench      tokenizer and core throughput, next to expat/libxml2
#   make bench-instr    the tokenizer's instructions per byte (callgrind),
#                   here and for the XO-1's i586
#   make demo       a private Prosody, olpcidx, and clients talking to it
#   make sanitize   the tests and the daemon under ASan and UBSan
#                   (GROUPS=... offline, IGROUPS=... interop)
#   make valgrind   the same under valgrind
#   make fuzz       libFuzzer over the component (FUZZ_SECONDS=60)
#   make cross      offline tests for i586 (XO-1), ARM, AArch64 and big-endian
#                   MIPS under qemu-user (TARGET=triple for one of them;
#                   CROSS=gcc for the gcc-<triple> compilers instead of
#                   clang --target; CROSS_CC=compiler for any other;
#                   CROSS_STRICT=1 fails instead of skipping a target
#                   whose toolchain is missing), e.g.
#                     make cross TARGET=arm-linux-gnueabihf CROSS=gcc
#                     make cross CROSS_CC=arm-linux-gnueabihf-gcc \
#                       TARGET=arm-linux-gnueabihf
#   make xo1        a static i586 (Geode) daemon for the XO-1, tested under qemu
#   make size       stripped daemon sizes: x86-64, i586, armhf, aarch64, mips
#   make SMALL=1    the daemon built for size (SIZE_CFLAGS, SIZE_LDFLAGS),
#                   as make size and make xo1 build it; on the XO itself
#   make CC=arm-linux-gnueabihf-gcc   any cross compiler builds the daemon
#   make lib        libolpcidx.a
#   make olpcidx-host   contrib/host.c, an example program embedding the
#                   library (its own socket and poll loop), on olpcidx.o
#   make install    daemon, man page, systemd unit, sample config, docs
#                   (PREFIX=/usr/local, DESTDIR, BINDIR, MANDIR, SYSCONFDIR)
#   make uninstall  removes what make install put there, not the config
#   make deb        a Debian package, olpcidx_VERSION_ARCH.deb

CC      ?= cc
# For size (the XO-1): -Os, and no unwind tables (.eh_frame is a fifth of
# the code; C needs them only for a debugger's backtrace without -g)
SIZE_CFLAGS  = -Os -fno-asynchronous-unwind-tables -fno-unwind-tables \
               -ffunction-sections -fdata-sections
SIZE_LDFLAGS = -Wl,--gc-sections
CFLAGS  ?= $(if $(SMALL),$(SIZE_CFLAGS),-O2)
LDFLAGS ?= $(if $(SMALL),$(SIZE_LDFLAGS))
STD      = -std=c99 -pedantic -Wall -Wextra
STRICT   = $(STD) -Werror
LDLIBS  ?=
CPPFLAGS ?=
AR      ?= ar
INSTALL ?= install

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DOCDIR     ?= $(PREFIX)/share/doc/olpcidx
VERSION    := $(shell sed -n 's/^\#define OLPCIDX_VERSION "\(.*\)"/\1/p' olpcidx.h)

SRC = olpcidx.c olpcidx.h

# TLS in the daemon only (the library does no I/O): mbed TLS
TLS_DEFS = -DOLPCIDX_TLS
TLS_LIBS = -lmbedtls -lmbedx509 -lmbedcrypto
HAVE_MBEDTLS := $(shell printf '\043include <mbedtls/ssl.h>\nint main(void){return 0;}\n' \
                  | $(CC) -x c - $(TLS_LIBS) -o /dev/null 2>/dev/null && echo 1)
DAEMON_DEFS = -DOLPCIDX_MAIN $(if $(WITH_MBEDTLS),$(TLS_DEFS))
DAEMON_LIBS = $(if $(WITH_MBEDTLS),$(TLS_LIBS))

# expat and libxml2 only for the benchmark's comparison columns
HAVE_EXPAT   := $(shell printf '\043include <expat.h>\nint main(void){return 0;}\n' \
                  | $(CC) -x c - -lexpat -o /dev/null 2>/dev/null && echo 1)
HAVE_LIBXML2 := $(shell printf '\043include <libxml/parser.h>\nint main(void){return 0;}\n' \
                  | $(CC) -x c - -I/usr/include/libxml2 -lxml2 -o /dev/null 2>/dev/null && echo 1)
BENCH_DEFS = $(if $(HAVE_EXPAT),-DHAVE_EXPAT) \
             $(if $(HAVE_LIBXML2),-DHAVE_LIBXML2 -I/usr/include/libxml2)
BENCH_LIBS = $(if $(HAVE_EXPAT),-lexpat) $(if $(HAVE_LIBXML2),-lxml2)

all: olpcidx olpcidx.o

# ./olpcidx is rebuilt when WITH_MBEDTLS changes: .olpcidx-build holds
# the choice it was built with
.olpcidx-build: FORCE
	@echo '$(DAEMON_DEFS) $(DAEMON_LIBS)' | cmp -s - $@ \
	  || echo '$(DAEMON_DEFS) $(DAEMON_LIBS)' >$@

olpcidx: $(SRC) .olpcidx-build
	$(CC) $(STD) $(CPPFLAGS) $(CFLAGS) $(DAEMON_DEFS) -o $@ olpcidx.c $(LDFLAGS) $(DAEMON_LIBS) $(LDLIBS)

# The daemon with TLS under another name, so that make test runs both
# without changing what make builds (./olpcidx stays libc-only)
olpcidx-tls: $(SRC)
	$(CC) $(STD) $(CPPFLAGS) $(CFLAGS) -DOLPCIDX_MAIN $(TLS_DEFS) -o $@ olpcidx.c $(LDFLAGS) $(TLS_LIBS) $(LDLIBS)

olpcidx.o: $(SRC)
	$(CC) $(STD) $(CPPFLAGS) $(CFLAGS) -c -o $@ olpcidx.c

libolpcidx.a: olpcidx.o
	rm -f $@
	$(AR) rcs $@ olpcidx.o

lib: libolpcidx.a

# contrib/host.c uses only olpcidx.h; it links the library as a unit
olpcidx-host: contrib/host.c olpcidx.h olpcidx.o
	$(CC) $(STD) $(CPPFLAGS) $(CFLAGS) -I. -o $@ contrib/host.c olpcidx.o $(LDFLAGS) $(LDLIBS)

olpcidx-test: test.c $(SRC)
	$(CC) $(STD) $(CPPFLAGS) $(CFLAGS) -g -o $@ test.c $(LDFLAGS) $(LDLIBS)

olpcidx-bench: contrib/bench.c $(SRC)
	$(CC) $(STD) $(CPPFLAGS) -O2 $(BENCH_DEFS) -o $@ contrib/bench.c $(BENCH_LIBS)

# -Werror builds of library, daemon, tests, benchmark and example host
# with each compiler, and of the TLS daemon with gcc and clang when mbed
# TLS is installed (its headers refuse tcc)
strict:
	@for cc in gcc clang tcc; do \
	  if command -v $$cc >/dev/null; then \
	    echo "strict: $$cc"; \
	    $$cc $(STRICT) -O2 -c -o /dev/null olpcidx.c || exit 1; \
	    $$cc $(STRICT) -O2 -DOLPCIDX_MAIN -o /dev/null olpcidx.c || exit 1; \
	    $$cc $(STRICT) -O2 -o /dev/null test.c || exit 1; \
	    $$cc $(STRICT) -O2 $(BENCH_DEFS) -c -o /dev/null contrib/bench.c \
	      || exit 1; \
	    $$cc $(STRICT) -O2 -I. -c -o /dev/null contrib/host.c || exit 1; \
	    if [ "$$cc" != tcc ] && [ -n "$(HAVE_MBEDTLS)" ]; then \
	      echo "strict: $$cc, the daemon with TLS"; \
	      $$cc $(STRICT) -O2 -DOLPCIDX_MAIN $(TLS_DEFS) -o /dev/null \
	        olpcidx.c $(TLS_LIBS) || exit 1; fi; \
	  else echo "strict: $$cc not installed, skipped"; fi; \
	done
	@[ -n "$(HAVE_MBEDTLS)" ] || echo "strict: mbed TLS not installed" \
	  "(libmbedtls-dev): the TLS daemon was not built"
	@echo "strict: the daemon links only libc:"; \
	  gcc $(STRICT) -O2 -DOLPCIDX_MAIN -o olpcidx.strict olpcidx.c && \
	  if command -v ldd >/dev/null; then ldd olpcidx.strict; fi; \
	  rm -f olpcidx.strict

# The group tls needs ./olpcidx-tls: without mbed TLS it fails and says so
test: strict olpcidx olpcidx-test olpcidx-host $(if $(HAVE_MBEDTLS),olpcidx-tls)
	./olpcidx-test

test-offline: olpcidx-test
	OLPCIDX_TEST_OFFLINE=1 ./olpcidx-test

bench: olpcidx-bench
	./olpcidx-bench

# Instructions per byte of the tokenizer: one pass over the generated
# stream (olpcidx-bench once) under callgrind, counted only inside the
# pass (bench_tok_pass), divided by the stream's bytes.  On this machine,
# then built for the XO-1 (i586 Geode, BENCH_I586_CC, no expat or
# libxml2): valgrind runs 32-bit x86 programs where the i386 libc is
# installed (libc6-i386 on Debian; the build needs libc6-dev-i386-cross).
# A build that cannot be made or run is skipped with a message.
BENCH_I586_CC ?= clang --target=i686-linux-gnu -march=geode -mtune=geode
bench-instr: olpcidx-bench
	@command -v valgrind >/dev/null || { echo "bench-instr: needs valgrind"; exit 1; }
	@for t in host i586; do \
	  bin=./olpcidx-bench; \
	  if [ $$t = i586 ]; then bin=./olpcidx-bench-i586; \
	    $(BENCH_I586_CC) $(STD) $(CPPFLAGS) -O2 -o $$bin contrib/bench.c \
	      >/dev/null 2>&1 || { echo "bench-instr: i586 skipped, '$(BENCH_I586_CC)'" \
	        "cannot build here"; continue; }; fi; \
	  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
	    --toggle-collect=bench_tok_pass $$bin once 2>&1 | awk -v t=$$t \
	    '/^once:/ {b = $$2} /Collected :/ {i = $$NF} \
	     END {if (b && i) printf "bench-instr: %s: %d instructions, %d bytes, %.1f instructions/byte\n", t, i, b, i / b; \
	          else {print "bench-instr: " t ": no count (valgrind failed?)"; exit 1}}' \
	    || exit 1; \
	done

LOAD_CLIENTS ?= 500
LOAD_SECONDS ?= 60
LOAD_RATES   ?= 4,12
loadtest: olpcidx olpcidx-test
	OLPCIDX_LOAD_CLIENTS=$(LOAD_CLIENTS) OLPCIDX_LOAD_SECONDS=$(LOAD_SECONDS) \
	  OLPCIDX_LOAD_RATES=$(LOAD_RATES) ./olpcidx-test load

demo: olpcidx olpcidx-test
	@command -v prosody >/dev/null 2>&1 || { \
	  echo "demo: prosody is missing (the demo runs a private one);" \
	       "install it, e.g. on Debian: sudo apt-get install prosody"; \
	  exit 1; }
	./olpcidx-test demo

# make sanitize: the tests and the daemon built with ASan and UBSan
# (every report fatal), the offline groups (GROUPS), then the interop
# groups (IGROUPS; default all) with that daemon, whose reports go to
# sanitize-logs/: any there fails the run.
ASAN_FLAGS = -g -O1 -fno-omit-frame-pointer \
  -fsanitize=address,undefined,pointer-overflow -fno-sanitize-recover=all
IGROUPS ?=
# the interop groups: IGROUPS, or all of them
igroups = g="$(IGROUPS)"; [ -n "$$g" ] || g=$$(./olpcidx-test list \
  | awk '$$2 == "interop" {print $$1}')
sanitize: $(SRC) test.c olpcidx-test olpcidx-host
	$(CC) $(STD) $(CPPFLAGS) $(ASAN_FLAGS) -o olpcidx-test-asan test.c
	$(CC) $(STD) $(CPPFLAGS) $(ASAN_FLAGS) -DOLPCIDX_MAIN -o olpcidx-asan olpcidx.c
	OLPCIDX_TEST_OFFLINE=1 ./olpcidx-test-asan $(GROUPS)
	rm -rf sanitize-logs && mkdir sanitize-logs
	$(igroups); ASAN_OPTIONS=log_path=$(CURDIR)/sanitize-logs/asan \
	UBSAN_OPTIONS=log_path=$(CURDIR)/sanitize-logs/ubsan:print_stacktrace=1 \
	OLPCIDX_TEST_DAEMON=./olpcidx-asan ./olpcidx-test-asan $$g
	@if ls sanitize-logs/* >/dev/null 2>&1; then cat sanitize-logs/*; \
	  echo "sanitize: the daemon reported the above"; exit 1; fi
	@echo "sanitize: no report from the daemon"

# libFuzzer over the whole component (clang); FUZZ_SECONDS to taste
fuzz: $(SRC) test.c
	clang $(STD) $(CPPFLAGS) -g -O1 -DOLPCIDX_FUZZ -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o olpcidx-fuzz test.c
	mkdir -p fuzz-corpus && cp fixtures/core-*.xml fuzz-corpus/
	./olpcidx-fuzz -max_total_time=$${FUZZ_SECONDS:-60} -max_len=8192 fuzz-corpus

# Cross builds, run under qemu-user.  By default the compiler is
# clang --target=<triple> (no gcc cross driver needed): each target needs
# its libc6-dev-<arch>-cross, libgcc-12-dev-<arch>-cross and
# binutils-<triple> packages, and qemu-user.  CROSS=gcc uses the
# gcc-<triple> compilers (package gcc-<triple>, e.g. gcc-arm-linux-gnueabihf,
# plus libc6-dev-<arch>-cross) instead; CROSS_CC=compiler replaces the
# compiler altogether, for one TARGET (e.g. CROSS_CC=aarch64-linux-gnu-gcc
# TARGET=aarch64-linux-gnu).  A target whose toolchain or emulator is
# missing is skipped with a message, or fails with CROSS_STRICT=1 (as in
# CI).  TARGET=triple (or a list) picks targets; GROUPS limits the test
# groups.  i686 is built for the XO-1's Geode and run on a CPU with CMOV
# but no SSE.  The daemon and the tests are built with SIZE_CFLAGS, as
# the daemon ships.
TARGETS  = i686-linux-gnu arm-linux-gnueabihf aarch64-linux-gnu mips-linux-gnu
TARGET  ?= $(TARGETS)
CROSS   ?= clang
CROSS_CC ?=
CROSS_STRICT ?=
# how a missing toolchain ends a target: skipped (0) or failed (1)
xskip  = exit $(if $(CROSS_STRICT),1,0)

# $(call xflags,triple): flags and emulator for one target
xflags = $(if $(filter i686-%,$1),-march=geode -mtune=geode) \
         $(if $(filter mips%,$1),-fuse-ld=bfd)
xrun   = $(if $(filter i686-%,$1),qemu-i386 -cpu pentium2,$(if \
           $(filter arm-%,$1),qemu-arm,$(if $(filter aarch64-%,$1),qemu-aarch64,$(if \
           $(filter mips-%,$1),qemu-mips,$(if $(filter mipsel-%,$1),qemu-mipsel,qemu-$(firstword \
           $(subst -, ,$1))))))) -L /usr/$1
xcc    = $(or $(CROSS_CC),$(if $(filter gcc,$(CROSS)),$1-gcc,clang --target=$1))

# The strip for a target: its binutils' (llvm-strip mishandles static i686)
xstrip = $(if $(shell command -v $1-strip),$1-strip,llvm-strip)

# Prints "ok" when $(1) can compile and link a C program: the probe
# used to skip missing toolchains.
xprobe = printf '\043include <stdio.h>\nint main(void){puts("");return 0;}\n' \
         | $1 -x c - -o /dev/null >/dev/null 2>&1

cross: $(SRC) test.c
	@fail=0; for t in $(TARGET); do \
	  $(MAKE) --no-print-directory cross-one T=$$t || fail=1; \
	done; exit $$fail

cross-one:
	@cc='$(call xcc,$(T)) $(call xflags,$(T))'; run='$(call xrun,$(T))'; \
	if ! $(call xprobe,$$cc); then \
	  echo "cross $(T): $(if $(CROSS_STRICT),FAILED,skipped), '$$cc' cannot build here" \
	       "(libc6-dev, libgcc-12-dev and binutils for $(T) needed)"; $(xskip); fi; \
	if ! command -v $${run%% *} >/dev/null; then \
	  echo "cross $(T): $(if $(CROSS_STRICT),FAILED,skipped), $${run%% *} missing (qemu-user)"; $(xskip); fi; \
	echo "cross $(T): $$cc"; \
	$$cc $(STRICT) $(CPPFLAGS) $(SIZE_CFLAGS) -o olpcidx-test-$(T) test.c \
	  || exit 1; \
	$$cc $(STRICT) $(CPPFLAGS) $(SIZE_CFLAGS) $(SIZE_LDFLAGS) -DOLPCIDX_MAIN \
	  -o olpcidx-$(T) olpcidx.c || exit 1; \
	OLPCIDX_TEST_OFFLINE=1 $$run ./olpcidx-test-$(T) $(GROUPS) \
	  >olpcidx-test-$(T).log 2>&1; rc=$$?; \
	echo "cross $(T): $$(tail -1 olpcidx-test-$(T).log)"; \
	if [ $$rc != 0 ]; then echo "cross $(T): FAILED, see olpcidx-test-$(T).log"; \
	  exit 1; fi; \
	$$run ./olpcidx-$(T) --version || exit 1; \
	llvm-size olpcidx-$(T) 2>/dev/null || size olpcidx-$(T) 2>/dev/null || true

# The XO-1: a static daemon for i586 with the Geode's CMOV (glibc needs
# it), so it runs on the XO's own old glibc userland; its offline tests,
# built the same way, run under qemu on a CPU without SSE.  A static glibc
# resolves host names only through the machine's NSS modules of the same
# glibc version (hence the linker's warning about getaddrinfo): give
# --server a numeric address.
XO1_CC ?= clang --target=i686-linux-gnu
XO1_FLAGS = -march=geode -mtune=geode -static
XO1_RUN ?= qemu-i386 -cpu pentium2
xo1: $(SRC) test.c
	@if ! $(call xprobe,$(XO1_CC) $(XO1_FLAGS)); then \
	  echo "xo1: $(if $(CROSS_STRICT),FAILED,skipped), '$(XO1_CC) $(XO1_FLAGS)' cannot build here" \
	       "(libc6-dev-i386-cross, libgcc-12-dev-i386-cross and" \
	       "binutils-i686-linux-gnu needed)"; $(xskip); fi; \
	if ! command -v $(firstword $(XO1_RUN)) >/dev/null; then \
	  echo "xo1: $(if $(CROSS_STRICT),FAILED,skipped), $(firstword $(XO1_RUN)) missing (qemu-user)"; $(xskip); fi; \
	rm -f olpcidx-xo1; set -x; \
	$(XO1_CC) $(STRICT) $(CPPFLAGS) $(SIZE_CFLAGS) $(XO1_FLAGS) $(SIZE_LDFLAGS) \
	  -DOLPCIDX_MAIN -o olpcidx-xo1 olpcidx.c || exit 1; \
	$(XO1_CC) $(STRICT) $(CPPFLAGS) $(SIZE_CFLAGS) $(XO1_FLAGS) \
	  -o olpcidx-test-xo1 test.c || exit 1; \
	{ set +x; } 2>/dev/null; \
	OLPCIDX_TEST_OFFLINE=1 $(XO1_RUN) ./olpcidx-test-xo1 $(GROUPS) \
	  >olpcidx-test-xo1.log 2>&1; rc=$$?; \
	echo "xo1: $$(tail -1 olpcidx-test-xo1.log)"; \
	if [ $$rc != 0 ]; then echo "xo1: FAILED, see olpcidx-test-xo1.log"; exit 1; fi; \
	$(XO1_RUN) ./olpcidx-xo1 --version || exit 1; \
	$(call xstrip,i686-linux-gnu) -o olpcidx-xo1.stripped olpcidx-xo1 && \
	echo "xo1: olpcidx-xo1, static i586 (Geode), $$(wc -c <olpcidx-xo1.stripped) bytes stripped"

# Stripped sizes of the daemon, built for size with clang (SIZE_CFLAGS,
# SIZE_LDFLAGS, as make SMALL=1 builds it): x86-64, i586 (Geode) dynamic
# and static, armhf, aarch64, big-endian mips; and x86-64 with TLS (the
# mbed TLS libraries shared, not counted) when they are installed.  A target whose toolchain
# is missing is skipped with a message (fails with CROSS_STRICT=1).  File
# sizes include page padding; text and data are what the code takes.
SIZE_FLAGS = $(STD) $(CPPFLAGS) $(SIZE_CFLAGS) $(SIZE_LDFLAGS) -DOLPCIDX_MAIN
# triple:name:flags (_ for spaces):compiler (empty: clang --target, gcc:
# the gcc-<triple> cross compiler, what an XO-1 would build with)
SIZE_BUILDS = x86_64-linux-gnu:x86-64:: \
              i686-linux-gnu:i586-geode:-march=geode_-mtune=geode: \
              i686-linux-gnu:i586-geode-static:-march=geode_-mtune=geode_-static: \
              i686-linux-gnu:i586-geode-gcc:-march=geode_-mtune=geode:gcc \
              arm-linux-gnueabihf:armhf:: \
              arm-linux-gnueabihf:armhf-gcc::gcc \
              aarch64-linux-gnu:aarch64:: \
              mips-linux-gnu:mips:-fuse-ld=bfd:
size: $(SRC)
	@printf '%-20s %10s %8s %6s %6s\n' build stripped text data bss
	@for b in $(SIZE_BUILDS); do \
	  t=$${b%%:*}; r=$${b#*:}; name=$${r%%:*}; r=$${r#*:}; \
	  fl=$$(echo "$${r%%:*}" | tr _ ' '); cc="clang --target=$$t $$fl"; \
	  [ "$${r#*:}" = gcc ] && cc="$$t-gcc $$fl"; \
	  if ! $(call xprobe,$$cc); then \
	    echo "$$name: $(if $(CROSS_STRICT),FAILED,skipped), '$$cc' cannot build here"; \
	    $(if $(CROSS_STRICT),exit 1,continue); fi; \
	  $$cc $(SIZE_FLAGS) -o olpcidx-size-$$name olpcidx.c 2>/dev/null \
	    || { echo "$$name: build failed"; exit 1; }; \
	  strip=$$t-strip; command -v $$strip >/dev/null || strip=llvm-strip; \
	  $$strip olpcidx-size-$$name || exit 1; \
	  llvm-size olpcidx-size-$$name | awk -v n=$$name \
	    -v f=$$(wc -c <olpcidx-size-$$name) \
	    'NR==2 {printf "%-20s %10d %8d %6d %6d\n", n, f, $$1, $$2, $$3}'; \
	done
	@if [ -n "$(HAVE_MBEDTLS)" ]; then \
	  clang $(SIZE_FLAGS) $(TLS_DEFS) -o olpcidx-size-tls olpcidx.c \
	    $(TLS_LIBS) || { echo "x86-64 TLS: build failed"; exit 1; }; \
	  llvm-strip olpcidx-size-tls || exit 1; \
	  llvm-size olpcidx-size-tls | awk -v f=$$(wc -c <olpcidx-size-tls) \
	    'NR==2 {printf "%-20s %10d %8d %6d %6d\n", "x86-64, TLS", f, $$1, $$2, $$3}'; \
	else echo "x86-64, TLS: skipped, mbed TLS not installed"; fi
	@clang $(STD) $(CPPFLAGS) $(SIZE_CFLAGS) -c \
	  -o olpcidx-size.o olpcidx.c && llvm-size olpcidx-size.o | awk \
	  'NR==2 {printf "%-20s %10s %8d %6d %6d\n", "library .o, x86-64", "-", $$1, $$2, $$3}'

# GROUPS: some test groups only (./olpcidx-test list), e.g. the quick set
# .ci/run uses; empty: every offline group
# make valgrind: the offline groups (GROUPS) under valgrind, then the
# interop groups (IGROUPS) with the daemon under valgrind through a
# script (olpcidx-vg); its reports go to valgrind-logs/, and any fails
# the run.
valgrind: olpcidx-test olpcidx olpcidx-host
	OLPCIDX_TEST_OFFLINE=1 valgrind -q --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=all ./olpcidx-test $(GROUPS)
	rm -rf valgrind-logs && mkdir valgrind-logs
	printf '#!/bin/sh\nexec valgrind -q --leak-check=full --errors-for-leak-kinds=all --log-file=%s/valgrind-logs/vg.%%p %s/olpcidx "$$@"\n' \
	  "$(CURDIR)" "$(CURDIR)" >olpcidx-vg && chmod +x olpcidx-vg
	$(igroups); OLPCIDX_TEST_DAEMON=./olpcidx-vg ./olpcidx-test $$g
	@find valgrind-logs -type f -size +0 | grep -q . && { \
	  cat valgrind-logs/*; echo "valgrind: the daemon reported the above"; \
	  exit 1; } || echo "valgrind: no report from the daemon"

# Installation.  The unit's paths follow BINDIR and SYSCONFDIR.  The
# sample config is installed as olpcidx.conf.sample: olpcidx.conf, the
# one in use, is never written, and uninstall leaves it (and the state
# directory) alone.
install: olpcidx
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(SYSCONFDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 755 olpcidx $(DESTDIR)$(BINDIR)/olpcidx
	$(INSTALL) -m 644 contrib/olpcidx.8 $(DESTDIR)$(MANDIR)/man8/olpcidx.8
	$(INSTALL) -m 644 contrib/olpcidx.conf \
	  $(DESTDIR)$(SYSCONFDIR)/olpcidx.conf.sample
	sed -e 's|/usr/bin/olpcidx|$(BINDIR)/olpcidx|' \
	    -e 's|/etc/olpcidx.conf|$(SYSCONFDIR)/olpcidx.conf|g' \
	    contrib/olpcidx.service >$(DESTDIR)$(UNITDIR)/olpcidx.service
	chmod 644 $(DESTDIR)$(UNITDIR)/olpcidx.service
	$(INSTALL) -m 644 README.md LICENSE contrib/PROTOCOL.md \
	  contrib/olpcidx.conf contrib/prosody.cfg.lua contrib/ejabberd.yml \
	  $(DESTDIR)$(DOCDIR)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/olpcidx $(DESTDIR)$(MANDIR)/man8/olpcidx.8 \
	  $(DESTDIR)$(SYSCONFDIR)/olpcidx.conf.sample \
	  $(DESTDIR)$(UNITDIR)/olpcidx.service
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/LICENSE \
	  $(DESTDIR)$(DOCDIR)/PROTOCOL.md $(DESTDIR)$(DOCDIR)/olpcidx.conf \
	  $(DESTDIR)$(DOCDIR)/prosody.cfg.lua $(DESTDIR)$(DOCDIR)/ejabberd.yml
	-rmdir $(DESTDIR)$(DOCDIR)

# A Debian package of the daemon (PREFIX=/usr) for this machine's
# architecture, built with dpkg-deb from a staging tree.  The sample is
# /etc/olpcidx.conf, a conffile; postinst creates the system user
# olpcidx and enables and starts nothing; purge removes the user and
# /var/lib/olpcidx.  make deb WITH_MBEDTLS=1 packages the daemon with TLS,
# depending on the packages of the mbed TLS libraries it links.
DEB_ARCH = $(shell dpkg --print-architecture 2>/dev/null)
DEB_ROOT = olpcidx-deb
DEB      = olpcidx_$(VERSION)_$(DEB_ARCH).deb
deb: $(SRC) contrib/olpcidx.8 contrib/olpcidx.service contrib/olpcidx.conf
	@command -v dpkg-deb >/dev/null || { echo "deb: needs dpkg-deb"; exit 1; }
	rm -rf $(DEB_ROOT) $(DEB)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) \
	  PREFIX=/usr SYSCONFDIR=/etc
	strip --strip-unneeded $(DEB_ROOT)/usr/bin/olpcidx
	mv $(DEB_ROOT)/etc/olpcidx.conf.sample $(DEB_ROOT)/etc/olpcidx.conf
	gzip -9n $(DEB_ROOT)/usr/share/man/man8/olpcidx.8
	cd $(DEB_ROOT)/usr/share/doc/olpcidx && gzip -9n README.md PROTOCOL.md \
	  && mv LICENSE copyright
	mkdir -p $(DEB_ROOT)/DEBIAN
	echo /etc/olpcidx.conf >$(DEB_ROOT)/DEBIAN/conffiles
	glibc=$$(objdump -T $(DEB_ROOT)/usr/bin/olpcidx \
	  | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -V | tail -1); \
	tls=$$(objdump -p $(DEB_ROOT)/usr/bin/olpcidx | awk '/NEEDED.*libmbed/ \
	  {print $$2}' | while read l; do dpkg -S "*/$$l" 2>/dev/null \
	  | head -1 | cut -d: -f1; done | sort -u | sed 's/^/, /' | tr -d '\n'); \
	{ echo "Package: olpcidx"; \
	  echo "Version: $(VERSION)"; \
	  echo "Architecture: $(DEB_ARCH)"; \
	  echo "Maintainer: olpcidx authors <olpcidx@localhost>"; \
	  echo "Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)"; \
	  echo "Depends: libc6$${glibc:+ (>= $$glibc)}$$tls, adduser | passwd, procps"; \
	  echo "Section: net"; \
	  echo "Priority: optional"; \
	  echo "Description: activity and buddy index for OLPC XO laptops"; \
	  echo " olpcidx is an XMPP server component (XEP-0114) that indexes the"; \
	  echo " buddies and shared activities of OLPC XO laptops running Sugar,"; \
	  echo " answers their searches with paged result sets (XEP-0059) and"; \
	  echo " notifies them of changes.  It speaks the 2007 OLPC component"; \
	  echo " protocol and the Gadget dialect of telepathy-gabble 0.10."; \
	  echo " ."; \
	  echo " The service is installed but neither enabled nor started: set"; \
	  echo " the domain and the secret in /etc/olpcidx.conf, declare the"; \
	  echo " component in the XMPP server, then run"; \
	  echo " systemctl enable --now olpcidx."; \
	} >$(DEB_ROOT)/DEBIAN/control
	$(INSTALL) -m 755 contrib/debian/postinst contrib/debian/prerm \
	  contrib/debian/postrm $(DEB_ROOT)/DEBIAN/
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB)

clean:
	rm -f olpcidx olpcidx.o olpcidx-test olpcidx-test-asan olpcidx-bench \
	  olpcidx-host olpcidx-tls .olpcidx-build olpcidx-bench-i586 \
	  olpcidx-asan olpcidx-vg \
	  olpcidx.strict olpcidx-fuzz olpcidx-test-i586 olpcidx-i586 \
	  olpcidx-test-armhf olpcidx-armhf libolpcidx.a olpcidx-size-* \
	  olpcidx-size.o olpcidx-xo1 olpcidx-xo1.stripped olpcidx-test-xo1 \
	  olpcidx-test-xo1.log
	for t in $(TARGETS); do \
	  rm -f olpcidx-$$t olpcidx-test-$$t olpcidx-test-$$t.log; done
	rm -rf fuzz-corpus olpcidx-deb olpcidx_*.deb sanitize-logs valgrind-logs

.PHONY: FORCE all lib strict test test-offline loadtest bench bench-instr demo \
  sanitize \
  valgrind fuzz \
  cross cross-one xo1 size install uninstall deb clean
