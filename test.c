/*
** test.c -- tests for olpcidx.  MIT licence, see LICENSE.
**
** Includes olpcidx.c itself, so the static internals are testable.
**
**   ./olpcidx-test            offline tests, then interop tests against a
**                             private Prosody started on 127.0.0.1
**   OLPCIDX_TEST_OFFLINE=1    offline tests only (no server, no sockets):
**                             how it runs under emulators
**   ./olpcidx-test demo       the scene of `make demo`
**   OLPCIDX_FIXTURE_WRITE=1   (re)writes the fixtures' .out files from the current
**                             behaviour; review the diff before committing
**
** Offline: SHA-1 and handshake vectors; every fixtures/xml-*.xml through
** the tokenizer and every fixtures/core-*.xml through the whole component,
** each fed whole, one byte at a time, split at every point and in random
** chunks (fixed seeds), all giving the .out beside it; allocation failure
** injected at every allocation of each fixture; serializer and timers.
** The last line is "N passed, N failed".
*/
#define _POSIX_C_SOURCE 200809L       /* mkdtemp */
#define _FILE_OFFSET_BITS 64            /* readdir of 64-bit inodes on i586 */
#include "olpcidx.c"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

/* ---- tiny harness ---------------------------------------------------- */

static int t_passed, t_failed;
static const char *t_fixdir = "fixtures";

#define CHECK(cond) t_check((cond) != 0, #cond, __FILE__, __LINE__)

static int t_check(int ok, const char *what, const char *file, int line)
{
    if (ok) {
        t_passed++;
    } else {
        t_failed++;
        printf("FAIL %s:%d: %s\n", file, line, what);
    }
    return ok;
}

/* Compares two strings; on a difference shows where. */
static int t_same(const char *name, const char *got, size_t ngot,
                  const char *want, size_t nwant)
{
    size_t i = 0;
    if (ngot == nwant && memcmp(got, want, ngot) == 0) {
        t_passed++;
        return 1;
    }
    while (i < ngot && i < nwant && got[i] == want[i])
        i++;
    t_failed++;
    printf("FAIL %s: differs at byte %lu\n  got:  %.*s\n  want: %.*s\n",
           name, (unsigned long)i, (int)(ngot - i > 160 ? 160 : ngot - i),
           got + i, (int)(nwant - i > 160 ? 160 : nwant - i), want + i);
    return 0;
}

/* A growable string for transcripts. */
typedef struct t_str {
    char *p;
    size_t n, cap;
} t_str;

static void t_add(t_str *s, const void *p, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->n + n + 1)
            cap *= 2;
        s->p = (char *)realloc(s->p, cap);
        if (!s->p) {
            fprintf(stderr, "test: out of memory\n");
            exit(1);
        }
        s->cap = cap;
    }
    if (n)
        memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = '\0';
}

static void t_addz(t_str *s, const char *z)
{
    t_add(s, z, strlen(z));
}

static void t_addf(t_str *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t_addz(s, buf);
}

/* Appends bytes with control characters and backslashes escaped. */
static void t_addesc(t_str *s, const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\')
            t_addz(s, "\\\\");
        else if (c == '\n')
            t_addz(s, "\\n");
        else if (c < 0x20 || c == 0x7F)
            t_addf(s, "\\x%02x", c);
        else
            t_add(s, &p[i], 1);
    }
}

static int t_count(const char *hay, const char *needle)
{
    int n = 0;
    while ((hay = strstr(hay, needle)) != NULL) {
        n++;
        hay++;
    }
    return n;
}

static char *t_readfile(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    t_str s;
    char buf[4096];
    size_t k;
    memset(&s, 0, sizeof s);
    if (!f)
        return NULL;
    t_add(&s, "", 0);
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        t_add(&s, buf, k);
    fclose(f);
    *n = s.n;
    return s.p;
}

static void t_writefile(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "test: cannot write %s\n", path);
        exit(1);
    }
}

static const char *t_errname(int rc)
{
    switch (rc) {
#define T_NAME_(name, value, text) case value: return #name;
    OLPCIDX_ERRORS(T_NAME_)
#undef T_NAME_
    default:
        return "?";
    }
}

/* Deterministic pseudo-random numbers (xorshift32), for chunk sizes. */
static uint32_t t_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* ---- a test allocator: counts, checks sizes, fails on demand --------- */

/*
** Every block carries its size in a header, so a wrong osize from the
** library is caught; fail_at makes exactly the n-th allocation or growth
** fail (Lua's ltests.c does the same).  live must be 0 after free.
*/
typedef struct t_alloc {
    long calls;                 /* allocations and growths so far */
    long fail_at;               /* 0: never fail */
    long failed;
    long blocks;
    size_t live;
    long bad_osize;
} t_alloc;

typedef union t_hdr {
    size_t n;
    oi_align align;
} t_hdr;

static void *t_alloc_fn(void *ud, void *p, size_t osize, size_t nsize)
{
    t_alloc *a = (t_alloc *)ud;
    t_hdr *h = p ? (t_hdr *)p - 1 : NULL, *q;
    if (h && h->n != osize)
        a->bad_osize++;
    if (nsize == 0) {
        if (h) {
            a->live -= h->n;
            a->blocks--;
            free(h);
        }
        return NULL;
    }
    a->calls++;
    if (a->fail_at && a->calls == a->fail_at) {
        a->failed++;
        return NULL;
    }
    q = (t_hdr *)realloc(h, sizeof *q + nsize);
    if (!q)
        return NULL;
    if (!h)
        a->blocks++;
    a->live = a->live - (h ? q->n : 0) + nsize;
    q->n = nsize;
    return q + 1;
}

/* ---- feeding patterns ------------------------------------------------ */

/* How a fixture is cut into feeds: 0 whole, 1 byte by byte, 2 split at
** `at`, 3 random chunks from `seed`. */
typedef struct t_feed {
    int mode;
    size_t at;
    uint32_t seed;
} t_feed;

typedef int (*t_feedfn)(void *ctx, const char *p, size_t n);

/* Feeds in..n with the pattern; stops at the first non-zero return. */
static int t_feed_all(const t_feed *f, const char *in, size_t n,
                      t_feedfn fn, void *ctx)
{
    size_t off = 0, k;
    uint32_t seed = f->seed ? f->seed : 1;
    int rc = 0;
    while (off < n && rc == 0) {
        switch (f->mode) {
        case 0: k = n; break;
        case 1: k = 1; break;
        case 2: k = off < f->at ? f->at - off : n - off; break;
        default: k = 1 + t_rand(&seed) % 97; break;
        }
        if (k > n - off)
            k = n - off;
        rc = fn(ctx, in + off, k);
        off += k;
    }
    return rc;
}

/* ---- 1. SHA-1 and the handshake digest ------------------------------- */

static void t_sha1(void)
{
    static const struct { const char *in; const char *hex; } v[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
         "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "a49b2446a02c645bf419f995b67091253a04a259"}
    };
    static const struct { const char *id, *secret, *hex; } hs[] = {
        {"3BF96D32", "secret", "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"},
        {"3BF96D32", "s3cr&t", "c9a476d217f509268437833b50014156dc57c382"},
        {"4e2a1c9f", "gadgetsecret", "daa64c2f51bf63b93d9b4c807d7a256c67054c21"},
        {"", "secret", "e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4"}
    };
    char hex[41], a[1001];
    oi_sha1 c;
    size_t i;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        oi_sha1_init(&c);
        oi_sha1_update(&c, v[i].in, strlen(v[i].in));
        oi_sha1_hex(&c, hex);
        t_same("sha1 vector", hex, 40, v[i].hex, 40);
    }
    /* FIPS 180 long message: a million 'a', fed in uneven pieces */
    memset(a, 'a', sizeof a);
    oi_sha1_init(&c);
    for (i = 0; i < 1000; i++)
        oi_sha1_update(&c, a, i % 2 ? 999 : 1001);
    oi_sha1_hex(&c, hex);
    t_same("sha1 million a", hex, 40,
           "34aa973cd4c4daa4f61eeb2bdbad27316534016f", 40);
    for (i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        oi_handshake_digest(oi_zstr(hs[i].id), oi_zstr(hs[i].secret), hex);
        t_same("handshake vector", hex, 40, hs[i].hex, 40);
    }
}

/* ---- 2. the tokenizer on fixtures/xml-*.xml -------------------------- */

/* The trace of events: one line per start, attribute, text run
** (coalesced across feeds, so identical for any split), end. */
typedef struct t_tok {
    oi_mem mem;
    t_alloc alloc;
    oi_xml xml;
    t_str trace;
    t_str text;                 /* pending character data */
} t_tok;

static void t_tok_flush(t_tok *t)
{
    if (t->text.n) {
        t_addz(&t->trace, "text ");
        t_addesc(&t->trace, t->text.p, t->text.n);
        t_addz(&t->trace, "\n");
        t->text.n = 0;
    }
}

static int t_tok_start(void *ud, oi_str ns, oi_str name, const oi_xattr *a,
                       size_t na)
{
    t_tok *t = (t_tok *)ud;
    size_t i;
    t_tok_flush(t);
    t_addf(&t->trace, "start {%.*s}%.*s\n", (int)ns.n, ns.p, (int)name.n,
           name.p);
    for (i = 0; i < na; i++) {
        t_addf(&t->trace, "  attr {%.*s}%.*s=", (int)a[i].ns.n, a[i].ns.p,
               (int)a[i].name.n, a[i].name.p);
        t_addesc(&t->trace, a[i].value.p, a[i].value.n);
        t_addz(&t->trace, "\n");
    }
    return 0;
}

static int t_tok_end(void *ud)
{
    t_tok *t = (t_tok *)ud;
    t_tok_flush(t);
    t_addz(&t->trace, "end\n");
    return 0;
}

static int t_tok_text(void *ud, const char *p, size_t n)
{
    t_add(&((t_tok *)ud)->text, p, n);
    return 0;
}

static const oi_xml_handler t_tok_handler = {
    t_tok_start, t_tok_end, t_tok_text
};

static int t_tok_feed(void *ctx, const char *p, size_t n)
{
    return oi_xml_feed(&((t_tok *)ctx)->xml, p, n);
}

/* Runs one fixture through a fresh tokenizer; returns the trace (caller
** frees) and leaves allocation statistics in *stats. */
static char *t_tok_run(const char *in, size_t n, const t_feed *f,
                       long fail_at, t_alloc *stats)
{
    t_tok t;
    int rc;
    memset(&t, 0, sizeof t);
    t.alloc.fail_at = fail_at;
    t.mem.alloc = t_alloc_fn;
    t.mem.ud = &t.alloc;
    oi_xml_init(&t.xml, &t.mem, &t_tok_handler, &t);
    /* small limits, so that fixtures can reach each of them */
    oi_xml_limits(&t.xml, 8, 8, 32, 1024);
    rc = t_feed_all(f, in, n, t_tok_feed, &t);
    /* Text before an error may or may not have been delivered, depending
    ** on where the feeds were cut; the trace keeps only what is certain. */
    if (rc == 0)
        t_tok_flush(&t);
    if (rc)
        t_addf(&t.trace, "error %s at %lu: %s\n", t_errname(rc),
               (unsigned long)t.xml.err_off, t.xml.err_msg);
    else
        t_addf(&t.trace, "%s depth %lu\n", t.xml.state == OI_XS_DONE
               ? "done" : "open", (unsigned long)t.xml.depth);
    oi_xml_release(&t.xml);
    *stats = t.alloc;
    free(t.text.p);
    return t.trace.p;
}

/* ---- 3. the whole component on fixtures/core-*.xml ------------------- */

typedef struct t_core {
    t_alloc alloc;
    olpcidx *x;
    t_str out;                  /* bytes the component sent */
    t_str log;
} t_core;

static void t_core_log(void *ud, int level, const char *msg)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    t_addf(&((t_core *)ud)->log, "%s: %s\n", names[level], msg);
}

static void t_core_drain(t_core *t)
{
    const void *p;
    size_t n;
    while ((n = olpcidx_pending(t->x, &p)) > 0) {
        t_add(&t->out, p, n > 7 ? n - 7 : n);   /* partial writes too */
        olpcidx_sent(t->x, n > 7 ? n - 7 : n);
    }
}

static int t_core_feed(void *ctx, const char *p, size_t n)
{
    t_core *t = (t_core *)ctx;
    int rc = olpcidx_feed(t->x, p, n);
    t_core_drain(t);
    return rc;
}

static void t_core_config(olpcidx_config *c, t_core *t)
{
    olpcidx_config_init(c);
    c->jid = "index.jabber.test";
    c->secret = "secret";
    c->alloc = t_alloc_fn;
    c->alloc_ud = &t->alloc;
    c->log = t_core_log;
    c->log_ud = t;
    c->log_level = OLPCIDX_LOG_DEBUG;
}

/* Runs one server transcript through a component; returns what it sent,
** the final code and its log, as one string (caller frees). */
static char *t_core_run(const char *in, size_t n, const t_feed *f,
                        long fail_at, t_alloc *stats)
{
    t_core t;
    olpcidx_config c;
    int rc;
    memset(&t, 0, sizeof t);
    t_core_config(&c, &t);
    t.alloc.fail_at = fail_at;
    t_add(&t.out, "", 0);
    t_add(&t.log, "", 0);
    rc = olpcidx_new(&t.x, &c);
    if (rc == 0) {
        rc = olpcidx_connect(t.x, 1000);
        t_core_drain(&t);
        if (rc == 0)
            rc = t_feed_all(f, in, n, t_core_feed, &t);
    }
    t_addf(&t.out, "\n== %s\n", t_errname(rc));
    t_addz(&t.out, t.log.p);
    olpcidx_free(t.x);
    *stats = t.alloc;
    free(t.log.p);
    return t.out.p;
}

typedef char *(*t_runfn)(const char *in, size_t n, const t_feed *f,
                         long fail_at, t_alloc *stats);

/* Every fixture with the prefix: all feeding patterns must give the .out
** file; then allocation failure at each allocation must neither crash
** nor leak. */
static int t_cmpname(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names (without .xml) of the fixtures with that prefix, sorted. */
static size_t t_list(const char *prefix, char ***out)
{
    DIR *d = opendir(t_fixdir);
    struct dirent *e;
    char **v = NULL;
    size_t n = 0, len;
    if (!d) {
        printf("FAIL cannot open %s: %s\n", t_fixdir, strerror(errno));
        t_failed++;
        *out = NULL;
        return 0;
    }
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        len = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || len < 5
            || strcmp(e->d_name + len - 4, ".xml") != 0)
            continue;
        v = (char **)realloc(v, (n + 1) * sizeof *v);
        v[n] = (char *)malloc(len - 3);
        if (!v || !v[n])
            exit(1);
        memcpy(v[n], e->d_name, len - 4);
        v[n][len - 4] = '\0';
        n++;
    }
    if (errno != 0) {
        printf("FAIL reading %s: %s\n", t_fixdir, strerror(errno));
        t_failed++;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, t_cmpname);
    *out = v;
    return n;
}

static void t_fixtures(const char *prefix, t_runfn run)
{
    char **names;
    size_t i, count = t_list(prefix, &names);
    CHECK(count > 0);
    for (i = 0; i < count; i++) {
        char path[512], label[600];
        size_t n, nwant, at;
        char *in, *want, *got;
        t_feed f;
        t_alloc st;
        long k, calls;
        int ok = 1;
        snprintf(path, sizeof path, "%s/%s.xml", t_fixdir, names[i]);
        in = t_readfile(path, &n);
        if (!CHECK(in != NULL)) {
            printf("  cannot read %s\n", path);
            continue;
        }
        memset(&f, 0, sizeof f);
        got = run(in, n, &f, 0, &st);
        calls = st.calls;
        CHECK(st.live == 0 && st.blocks == 0 && st.bad_osize == 0);
        snprintf(path, sizeof path, "%s/%s.out", t_fixdir, names[i]);
        if (getenv("OLPCIDX_FIXTURE_WRITE"))
            t_writefile(path, got, strlen(got));
        want = t_readfile(path, &nwant);
        if (!CHECK(want != NULL)) {
            printf("  cannot read %s\n", path);
            free(in);
            free(got);
            continue;
        }
        snprintf(label, sizeof label, "%s whole", names[i]);
        t_same(label, got, strlen(got), want, nwant);
        free(got);
        for (f.mode = 1; f.mode <= 3 && ok; f.mode++) {
            size_t reps = f.mode == 2 ? n : f.mode == 3 ? 8 : 1;
            for (at = 1; at <= reps && ok; at++) {
                f.at = at;
                f.seed = (uint32_t)at * 2654435761u;
                got = run(in, n, &f, 0, &st);
                if (strlen(got) != nwant || memcmp(got, want, nwant) != 0) {
                    snprintf(label, sizeof label, "%s fed %s %lu", names[i],
                             f.mode == 1 ? "bytewise" : f.mode == 2
                             ? "split at" : "random seed", (unsigned long)at);
                    ok = t_same(label, got, strlen(got), want, nwant);
                }
                free(got);
            }
        }
        if (ok)
            t_passed++;
        /* every allocation fails once, fed whole and bytewise */
        for (k = 1; k <= calls; k++) {
            for (f.mode = 0; f.mode <= 1; f.mode++) {
                got = run(in, n, &f, k, &st);
                free(got);
                if (st.live != 0 || st.blocks != 0 || st.bad_osize != 0) {
                    printf("FAIL %s: allocation %ld failing leaks %lu bytes"
                           "\n", names[i], k, (unsigned long)st.live);
                    ok = 0;
                }
            }
        }
        CHECK(ok);
        free(in);
        free(want);
        free(names[i]);
    }
    free(names);
}

/* ---- 4. serializer, limits, timers ----------------------------------- */

/* Parses a stanza with the component's own assembly and writes it back. */
static void t_serializer(void)
{
    static const char in[] =
        "<?xml version='1.0'?><stream:stream xmlns:stream='"
        OI_NS_STREAM "' xmlns='" OI_NS_ACCEPT "' id='1'><handshake/>"
        "<iq type='get' id='&lt;&amp;&quot;&apos;&gt;' from='a@b/c' "
        "to='index.jabber.test'><q xmlns='urn:q' xmlns:z='urn:z' "
        "z:at='v&#9;&#10;&#13;' xml:lang='fr'>t&lt;&#13;\n<c/></q></iq>";
    t_core t;
    olpcidx_config c;
    char *p;
    memset(&t, 0, sizeof t);
    t_core_config(&c, &t);
    CHECK(olpcidx_new(&t.x, &c) == 0);
    CHECK(olpcidx_connect(t.x, 0) == 0);
    CHECK(olpcidx_feed(t.x, in, sizeof in - 1) == 0);
    t_core_drain(&t);
    /* the unknown payload comes back in the error reply, escaped */
    p = strstr(t.out.p, "<iq type='error'");
    CHECK(p != NULL);
    if (p)
        t_same("serializer", p, strlen(p),
               "<iq type='error' from='index.jabber.test' to='a@b/c' "
               "id='&lt;&amp;&quot;&apos;&gt;'><q xmlns='urn:q' "
               "xmlns:a0='urn:z' a0:at='v&#9;&#10;&#13;' xml:lang='fr'>"
               "t&lt;&#13;\n<c/></q><error type='cancel'>"
               "<service-unavailable xmlns='" OI_NS_XSTANZA "'/></error>"
               "</iq>", strlen(p));
    olpcidx_free(t.x);
    free(t.out.p);
    free(t.log.p);
    CHECK(t.alloc.live == 0);
}

/* Keepalive, ping, read timeout and handshake timeout, driven by tick. */
static void t_timers(void)
{
    static const char hdr[] =
        "<stream:stream xmlns:stream='" OI_NS_STREAM "' xmlns='"
        OI_NS_ACCEPT "' id='abc'>";
    t_core t;
    olpcidx_config c;
    int wait;
    memset(&t, 0, sizeof t);
    t_core_config(&c, &t);
    CHECK(olpcidx_new(&t.x, &c) == 0);

    /* no <handshake/> within 30 s: connection-timeout */
    CHECK(olpcidx_connect(t.x, 0) == 0);
    CHECK(olpcidx_feed(t.x, hdr, sizeof hdr - 1) == 0);
    CHECK(olpcidx_tick(t.x, 29999, &wait) == 0 && wait == 1);
    CHECK(olpcidx_tick(t.x, 30000, &wait) == OLPCIDX_ETIMEOUT);
    t_core_drain(&t);
    CHECK(strstr(t.out.p, "<connection-timeout") != NULL);
    CHECK(olpcidx_feed(t.x, " ", 1) == OLPCIDX_ETIMEOUT);     /* sticky */

    /* online: whitespace after 60 s of silence out, ping after 60 s of
    ** silence in, timeout 180 s after the last byte in */
    t.out.n = 0;
    CHECK(olpcidx_connect(t.x, 100000) == 0);
    CHECK(olpcidx_feed(t.x, hdr, sizeof hdr - 1) == 0);
    CHECK(olpcidx_feed(t.x, "<handshake/>", 12) == 0);
    CHECK(olpcidx_online(t.x));
    t_core_drain(&t);
    t.out.n = 0;
    CHECK(olpcidx_tick(t.x, 159999, &wait) == 0 && wait == 1);
    t_core_drain(&t);
    CHECK(t.out.n == 0);
    CHECK(olpcidx_tick(t.x, 160000, &wait) == 0);
    t_core_drain(&t);
    CHECK(t.out.n > 0 && strstr(t.out.p, "<ping xmlns='urn:xmpp:ping'/>")
          && strstr(t.out.p, "to='jabber.test'"));
    t.out.n = 0;
    CHECK(olpcidx_tick(t.x, 219999, &wait) == 0);
    CHECK(olpcidx_tick(t.x, 220000, &wait) == 0);
    t_core_drain(&t);
    CHECK(t.out.n == 1 && t.out.p[0] == ' ');           /* keepalive */
    CHECK(olpcidx_tick(t.x, 279999, &wait) == 0 && wait == 1);
    CHECK(olpcidx_tick(t.x, 280000, &wait) == OLPCIDX_ETIMEOUT);

    /* any byte in clears the outstanding ping */
    CHECK(olpcidx_connect(t.x, 300000) == 0);
    CHECK(olpcidx_feed(t.x, hdr, sizeof hdr - 1) == 0);
    CHECK(olpcidx_feed(t.x, "<handshake/>", 12) == 0);
    t.out.n = 0;
    CHECK(olpcidx_tick(t.x, 360000, &wait) == 0);       /* ping 1 */
    CHECK(olpcidx_tick(t.x, 370000, &wait) == 0);
    CHECK(olpcidx_feed(t.x, " ", 1) == 0);              /* at 370000 */
    CHECK(olpcidx_tick(t.x, 429999, &wait) == 0 && wait == 1);
    t_core_drain(&t);
    CHECK(t_count(t.out.p, "<ping ") == 1);
    CHECK(olpcidx_tick(t.x, 430000, &wait) == 0);       /* ping 2 */
    t_core_drain(&t);
    CHECK(t_count(t.out.p, "<ping ") == 2);
    CHECK(olpcidx_tick(t.x, 549999, &wait) == 0);
    CHECK(olpcidx_tick(t.x, 550000, &wait) == OLPCIDX_ETIMEOUT);

    /* a clean close */
    CHECK(olpcidx_connect(t.x, 600000) == 0);
    CHECK(olpcidx_feed(t.x, hdr, sizeof hdr - 1) == 0);
    CHECK(olpcidx_feed(t.x, "<handshake/>", 12) == 0);
    CHECK(olpcidx_close(t.x) == 0);
    t.out.n = 0;
    t_core_drain(&t);
    CHECK(t.out.n >= 16 && strstr(t.out.p, "</stream:stream>") != NULL);
    CHECK(olpcidx_feed(t.x, "</stream:stream>", 16) == OLPCIDX_ECLOSED);
    olpcidx_free(t.x);
    free(t.out.p);
    free(t.log.p);
    CHECK(t.alloc.live == 0);
}

/* Configuration checks, error strings, the memory cap and the output
** bound. */
static void t_api(void)
{
    t_core t;
    olpcidx_config c;
    olpcidx *x;
    int i;
    memset(&t, 0, sizeof t);
    t_core_config(&c, &t);
    c.jid = "bad jid";
    CHECK(olpcidx_new(&x, &c) == OLPCIDX_EINVAL && x == NULL);
    c.jid = "user@index.jabber.test";
    CHECK(olpcidx_new(&x, &c) == OLPCIDX_EINVAL);
    c.jid = "index.jabber.test";
    c.max_depth = 0;
    CHECK(olpcidx_new(&x, &c) == OLPCIDX_EINVAL);
    t_core_config(&c, &t);
    c.secret = NULL;
    CHECK(olpcidx_new(&x, &c) == OLPCIDX_EINVAL);
    for (i = 0; i >= OLPCIDX_ELAST_ + 1; i--)
        CHECK(strcmp(olpcidx_strerror(i), "unknown error") != 0);
    CHECK(olpcidx_is_fatal(OLPCIDX_EAUTH) && olpcidx_is_fatal(OLPCIDX_EHOST)
          && !olpcidx_is_fatal(OLPCIDX_ESTREAM));
    CHECK(strstr(olpcidx_strerror(OLPCIDX_EAUTH), "secret") != NULL);

    /* a memory cap below what a handle needs */
    t_core_config(&c, &t);
    c.mem_limit = 64;
    CHECK(olpcidx_new(&x, &c) == OLPCIDX_ENOMEM);
    CHECK(t.alloc.live == 0);

    /* feed before connect */
    t_core_config(&c, &t);
    CHECK(olpcidx_new(&x, &c) == 0);
    CHECK(olpcidx_feed(x, "<", 1) == OLPCIDX_ESTATE);
    CHECK(olpcidx_close(x) == OLPCIDX_ESTATE);
    olpcidx_free(x);
    CHECK(t.alloc.live == 0);
    free(t.log.p);
}

/* The smallest output bound: replies beyond it are dropped whole, the
** queue keeps only complete stanzas, and the stream goes on. */
static void t_backpressure(void)
{
    static const char hdr[] =
        "<stream:stream xmlns:stream='" OI_NS_STREAM "' xmlns='"
        OI_NS_ACCEPT "' id='abc'><handshake/>";
    static const char iq[] =
        "<iq type='get' id='d' from='a@jabber.test/x' to='index.jabber.test'>"
        "<query xmlns='" OI_NS_DINFO "'/></iq>";
    t_core t;
    olpcidx_config c;
    const void *p;
    size_t n, before;
    int i;
    memset(&t, 0, sizeof t);
    t_core_config(&c, &t);
    c.max_output = 4096;
    CHECK(olpcidx_new(&t.x, &c) == 0);
    CHECK(olpcidx_connect(t.x, 0) == 0);
    CHECK(olpcidx_feed(t.x, hdr, sizeof hdr - 1) == 0);
    for (i = 0; i < 20; i++)
        CHECK(olpcidx_feed(t.x, iq, sizeof iq - 1) == 0);
    n = olpcidx_pending(t.x, &p);
    CHECK(n <= 4096);
    CHECK(n > 3000);
    /* it ends exactly after a whole reply */
    CHECK(n >= 5 && memcmp((const char *)p + n - 5, "</iq>", 5) == 0);
    CHECK(strstr(t.log.p, "dropped disco#info reply: output queue full")
          != NULL);
    before = n;
    olpcidx_sent(t.x, before);
    CHECK(olpcidx_feed(t.x, iq, sizeof iq - 1) == 0);
    CHECK(olpcidx_pending(t.x, &p) > 0);
    olpcidx_free(t.x);
    free(t.log.p);
    CHECK(t.alloc.live == 0);
}

/* ---- 5. the index: rate, idle pings, failure atomicity --------------- */

#define T_HDR "<stream:stream xmlns:stream='" OI_NS_STREAM "' xmlns='" \
              OI_NS_ACCEPT "' id='abc'><handshake/>"
#define T_TO  " to='index.jabber.test'"

/* A component online at time now, with the config tweaked by the caller
** beforehand through c. */
static void t_core_online(t_core *t, olpcidx_config *c, uint64_t now)
{
    CHECK(olpcidx_new(&t->x, c) == 0);
    CHECK(olpcidx_connect(t->x, now) == 0);
    CHECK(olpcidx_feed(t->x, T_HDR, strlen(T_HDR)) == 0);
    t_core_drain(t);
    t->out.n = 0;
}

static void t_core_done(t_core *t)
{
    olpcidx_free(t->x);
    CHECK(t->alloc.live == 0);
    free(t->out.p);
    free(t->log.p);
    memset(t, 0, sizeof *t);
}

static void t_send(t_core *t, uint64_t now, const char *z)
{
    int wait;
    olpcidx_tick(t->x, now, &wait);
    CHECK(olpcidx_feed(t->x, z, strlen(z)) == 0);
    t_core_drain(t);
}

static void t_rate(void)
{
    static const char iq[] = "<iq type='get' id='p' from='a@jabber.test/x'"
        T_TO "><ping xmlns='urn:xmpp:ping'/></iq>";
    t_core t;
    olpcidx_config c;
    int i;
    memset(&t, 0, sizeof t);
    t_core_config(&c, &t);
    c.rate_burst = 3;
    c.rate_per_sec = 2;
    t_core_online(&t, &c, 1000);
    for (i = 0; i < 5; i++)
        t_send(&t, 1000, iq);
    CHECK(t_count(t.out.p, "type='result'") == 3);
    CHECK(t_count(t.out.p, "<resource-constraint") == 2);
    t.out.n = 0;
    t_send(&t, 1500, iq);               /* 500 ms: one stanza's worth */
    t_send(&t, 1500, iq);
    CHECK(t_count(t.out.p, "type='result'") == 1);
    CHECK(t_count(t.out.p, "<resource-constraint") == 1);
    /* announcements beyond the rate are dropped without an answer */
    t.out.n = 0;
    t_send(&t, 1500, "<message from='a@jabber.test/x'" T_TO "><properties "
           "xmlns='" OI_NS_APROPS "' activity='z'/></message>");
    CHECK(t.out.n == 0);
    CHECK(oi_map_get(&t.x->acts, OI_LIT("z")) == NULL);
    /* another full JID has its own bucket */
    t_send(&t, 1500, "<iq type='get' id='q' from='b@jabber.test/x'" T_TO
           "><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK(t_count(t.out.p, "type='result'") == 1);
    t_core_done(&t);
}

static void t_idle(void)
{
    t_core t;
    olpcidx_config c;
    memset(&t, 0, sizeof t);
    t_core_config(&c, &t);
    c.idle = 300;
    t_core_online(&t, &c, 0);
    t_send(&t, 1000, "<message from='a@jabber.test/xo'" T_TO "><properties "
           "xmlns='" OI_NS_APROPS "' activity='a1'/></message>");
    t_send(&t, 2000, "<message from='b@jabber.test/xo'" T_TO "><activity "
           "xmlns='" OI_NS_ACT "' id='a1'><joined/></activity></message>");
    t_send(&t, 3000, "<iq type='get' id='c' from='c@jabber.test/xo'" T_TO
           "><query xmlns='" OI_NS_ACT "'><activity/></query></iq>");
    t.out.n = 0;
    t_send(&t, 300999, " ");            /* liveness runs once a second */
    CHECK(t_count(t.out.p, "id='idle'") == 0);
    t_send(&t, 302500, " ");            /* a and b: 300 s silent */
    CHECK(t_count(t.out.p, "to='a@jabber.test/xo' id='idle'") == 1);
    CHECK(t_count(t.out.p, "to='b@jabber.test/xo' id='idle'") == 1);
    CHECK(t_count(t.out.p, "to='c@jabber.test/xo' id='idle'") == 0);
    t_send(&t, 310000, "<iq type='result' id='idle' from='b@jabber.test/xo'"
           T_TO "/>");                  /* b answers, a does not */
    t.out.n = 0;
    t_send(&t, 332000, " ");
    CHECK(t_count(t.out.p, "<left") == 0);
    t_send(&t, 333500, " ");            /* 30 s after the ping */
    CHECK(t_count(t.out.p, "<left jid='a@jabber.test'/>") == 1);
    CHECK(t_count(t.out.p, "<closed/>") == 0);
    CHECK(strstr(t.log.p, "a@jabber.test/xo did not answer a ping") != NULL);
    /* b pinged again after its next 300 s; an error answer is offline */
    t.out.n = 0;
    t_send(&t, 610500, " ");
    CHECK(t_count(t.out.p, "to='b@jabber.test/xo' id='idle'") == 1);
    t_send(&t, 611000, "<iq type='error' id='idle' from='b@jabber.test/xo'"
           T_TO "/>");
    CHECK(t_count(t.out.p, "<left jid='b@jabber.test'/>") == 1);
    CHECK(t_count(t.out.p, "<closed/>") == 1);
    CHECK(t.x->acts.n == 0 && t.x->buddies.n == 0);
    t_core_done(&t);
}

/* A canonical dump of the index, to compare states. */
static int t_cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void t_dump_props(t_str *s, const oi_props *ps)
{
    size_t i;
    for (i = 0; i < ps->n; i++)
        t_addf(s, " %.*s:%d=%.*s", (int)ps->v[i].name.n, ps->v[i].name.p,
               ps->v[i].type, (int)ps->v[i].value.n, ps->v[i].value.p);
}

static char *t_dump(olpcidx *x)
{
    char *lines[512];
    size_t n = 0, i = 0, j;
    void *p;
    t_str s, all;
    memset(&all, 0, sizeof all);
    t_add(&all, "", 0);
    while ((p = oi_map_next(&x->buddies, &i)) != NULL && n < 512) {
        oi_buddy *b = (oi_buddy *)p;
        memset(&s, 0, sizeof s);
        t_addf(&s, "buddy %.*s cur=%.*s/%.*s acts=%lu watch=%lu",
               (int)b->it.uid.n, b->it.uid.p, (int)b->cur_id.n,
               b->cur_id.p ? b->cur_id.p : "", (int)b->cur_room.n,
               b->cur_room.p ? b->cur_room.p : "", (unsigned long)b->acts.n,
               (unsigned long)b->it.watch.n);
        t_dump_props(&s, &b->it.props);
        lines[n++] = s.p;
    }
    i = 0;
    while ((p = oi_map_next(&x->acts, &i)) != NULL && n < 512) {
        oi_act *a = (oi_act *)p;
        memset(&s, 0, sizeof s);
        t_addf(&s, "act %.*s room=%.*s watch=%lu", (int)a->it.uid.n,
               a->it.uid.p, (int)a->room.n, a->room.n ? a->room.p : "",
               (unsigned long)a->it.watch.n);
        t_dump_props(&s, &a->it.props);
        for (j = 0; j < a->parts.n; j++)
            t_addf(&s, " part=%.*s", (int)((oi_buddy *)a->parts.v[j])->it.uid.n,
                   ((oi_buddy *)a->parts.v[j])->it.uid.p);
        lines[n++] = s.p;
    }
    i = 0;
    while ((p = oi_map_next(&x->clients, &i)) != NULL && n < 512) {
        oi_client *c = (oi_client *)p;
        if (!c->rs[0].n && !c->rs[1].n && !c->available)
            continue;                   /* a rate bucket only */
        memset(&s, 0, sizeof s);
        t_addf(&s, "client %.*s rs=%lu/%lu avail=%d", (int)c->jid.n, c->jid.p,
               (unsigned long)c->rs[0].n, (unsigned long)c->rs[1].n,
               c->available);
        lines[n++] = s.p;
    }
    t_addf(&all, "posts %lu/%lu\n", (unsigned long)x->aposts.n,
           (unsigned long)x->bposts.n);
    qsort(lines, n, sizeof *lines, t_cmpstr);
    for (i = 0; i < n; i++) {
        t_addz(&all, lines[i]);
        t_addz(&all, "\n");
        free(lines[i]);
    }
    return all.p;
}

/* Every update is all or nothing: with allocation k failing during one
** stanza, the index afterwards equals either the state before it or the
** state a faultless run reaches.  The stanzas are applied one after the
** other on top of those before them. */
static void t_atomic(void)
{
    static const char *const steps[] = {
        "<presence from='a@jabber.test/xo'" T_TO "/>",
        "<message from='a@jabber.test/xo'" T_TO "><properties xmlns='"
        OI_NS_BPROPS "'><property type='str' name='nick'>A</property>"
        "<property type='int' name='n'>7</property></properties></message>",
        "<message from='a@jabber.test/xo'" T_TO "><properties xmlns='"
        OI_NS_APROPS "' activity='a1' room='r1@c.jabber.test'><property "
        "type='str' name='type'>Connect</property></properties></message>",
        "<iq type='get' id='q' from='c@jabber.test/xo'" T_TO "><query xmlns='"
        OI_NS_ACT "'><activity/></query></iq>",
        "<iq type='get' id='q' from='c@jabber.test/xo'" T_TO "><query xmlns='"
        OI_NS_BUDDY "'><buddy jid='a@jabber.test'/></query></iq>",
        "<message from='b@jabber.test/xo'" T_TO "><activity xmlns='" OI_NS_ACT
        "' id='a1'><joined/></activity></message>",
        "<message from='b@jabber.test/xo'" T_TO "><activity xmlns='"
        OI_NS_CURACT "' id='a1'/></message>",
        "<message from='a@jabber.test/xo'" T_TO "><change xmlns='" OI_NS_ACT
        "' activity='a1'><properties xmlns='" OI_NS_APROPS "'><property "
        "type='str' name='type'>Chess</property><property type='bool' "
        "name='x'>1</property></properties></change></message>",
        "<message from='b@jabber.test/xo'" T_TO "><properties xmlns='"
        OI_NS_APROPS "' activity='a2'><property type='str' name='type'>"
        "Chess</property></properties></message>",
        "<message from='a@jabber.test/xo'" T_TO "><activity xmlns='" OI_NS_ACT
        "' id='a1'><left/></activity></message>",
        "<presence type='unavailable' from='b@jabber.test/xo'" T_TO "/>",
        NULL
    };
    size_t s, j;
    long k;
    int ok = 1;
    for (s = 0; steps[s] && ok; s++) {
        t_core t;
        olpcidx_config c;
        char *before, *good, *got;
        long calls0, calls1;
        memset(&t, 0, sizeof t);
        t_core_config(&c, &t);
        t_core_online(&t, &c, 0);
        for (j = 0; j < s; j++)
            t_send(&t, 1, steps[j]);
        before = t_dump(t.x);
        calls0 = t.alloc.calls;
        t_send(&t, 1, steps[s]);
        good = t_dump(t.x);
        calls1 = t.alloc.calls;
        t_core_done(&t);
        for (k = 1; k <= calls1 - calls0 && ok; k++) {
            memset(&t, 0, sizeof t);
            t_core_config(&c, &t);
            t_core_online(&t, &c, 0);
            for (j = 0; j < s; j++)
                t_send(&t, 1, steps[j]);
            t.alloc.fail_at = t.alloc.calls + k;
            olpcidx_feed(t.x, steps[s], strlen(steps[s]));
            t_core_drain(&t);
            got = t_dump(t.x);
            if (strcmp(got, before) != 0 && strcmp(got, good) != 0) {
                printf("FAIL step %lu, allocation %ld failing: state is\n%s"
                       "before:\n%sgood:\n%s", (unsigned long)s, k, got,
                       before, good);
                ok = 0;
            }
            free(got);
            t_core_done(&t);
        }
        free(before);
        free(good);
    }
    CHECK(ok);
}

static void t_offline(void)
{
    t_sha1();
    t_fixtures("xml-", t_tok_run);
    t_fixtures("core-", t_core_run);
    t_serializer();
    t_timers();
    t_api();
    t_backpressure();
    t_rate();
    t_idle();
    t_atomic();
}

/* ---- 5. a private Prosody and processes ------------------------------ */

/*
** The interop tests start everything they use and stop it again: a
** Prosody (Debian's package) in a temporary directory, listening on
** 127.0.0.1 only, on ports picked free at start; the olpcidx daemon built
** beside this program; and c2s clients written here.  Every child is
** killed and the directory removed on the way out, whatever happened.
*/
#define T_DOMAIN "jabber.test"
#define T_COMP   "index.jabber.test"
#define T_SECRET "secret"

static char t_dir[64];                  /* temporary directory */
static int t_c2s_port, t_comp_port;
static pid_t t_children[16];
static int t_verbose;                   /* demo: print the exchanges */

static void t_cleanup(void)
{
    size_t i;
    for (i = 0; i < sizeof t_children / sizeof t_children[0]; i++)
        if (t_children[i] > 0) {
            kill(t_children[i], SIGKILL);
            waitpid(t_children[i], NULL, 0);
            t_children[i] = 0;
        }
    if (t_dir[0] && getenv("OLPCIDX_TEST_KEEP")) {
        printf("kept %s\n", t_dir);
        t_dir[0] = '\0';
    }
    if (t_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test: could not remove %s\n", t_dir);
        t_dir[0] = '\0';
    }
}

static void t_on_signal(int sig)
{
    (void)sig;
    t_cleanup();
    _exit(2);
}

static uint64_t t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void t_sleep_ms(int ms)
{
    poll(NULL, 0, ms);
}

/* A TCP port on 127.0.0.1 that nobody listens on right now. */
static int t_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int t_dial(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Starts argv[0] with stdout and stderr appended to logfile. */
static pid_t t_spawn(char *const argv[], const char *logfile)
{
    pid_t pid = fork();
    size_t i;
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (i = 0; pid > 0 && i < sizeof t_children / sizeof t_children[0]; i++)
        if (t_children[i] <= 0) {
            t_children[i] = pid;
            break;
        }
    return pid;
}

static void t_forget(pid_t pid)
{
    size_t i;
    for (i = 0; i < sizeof t_children / sizeof t_children[0]; i++)
        if (t_children[i] == pid)
            t_children[i] = 0;
}

/* Waits up to ms for pid to exit; returns its exit status, 128+signal,
** or -1 if it is still running. */
static int t_wait_exit(pid_t pid, int ms)
{
    uint64_t end = t_now() + (uint64_t)ms;
    int st;
    do {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            t_forget(pid);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        t_sleep_ms(20);
    } while (t_now() < end);
    return -1;
}

static void t_stop(pid_t pid, int sig)
{
    kill(pid, sig);
    if (t_wait_exit(pid, 5000) < 0) {
        kill(pid, SIGKILL);
        t_wait_exit(pid, 5000);
    }
}

/* Waits up to ms until file holds at least n copies of needle. */
static int t_wait_log(const char *file, const char *needle, int n, int ms)
{
    uint64_t end = t_now() + (uint64_t)ms;
    do {
        size_t len;
        char *p = t_readfile(file, &len);
        int k = p ? t_count(p, needle) : 0;
        free(p);
        if (k >= n)
            return 1;
        t_sleep_ms(50);
    } while (t_now() < end);
    return 0;
}

static int t_file_has(const char *file, const char *needle)
{
    size_t len;
    char *p = t_readfile(file, &len);
    int k = p ? t_count(p, needle) : 0;
    free(p);
    return k > 0;
}

static void t_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", t_dir, name);
}

/* An account file in dir: the user's password is "pw-" and its name. */
static void t_account(const char *dir, const char *user)
{
    char file[300], body[128];
    snprintf(file, sizeof file, "%s/%s.dat", dir, user);
    snprintf(body, sizeof body, "return {\n\t[\"password\"] = \"pw-%s\";"
             "\n};\n", user);
    t_writefile(file, body, strlen(body));
}

/* Writes the Prosody configuration and the test accounts.  Accounts are
** internal_plain files, the format mod_storage_internal reads
** (data/<host, dots as %2e>/accounts/<user>.dat), so no prosodyctl run
** is needed. */
static int t_prosody_setup(void)
{
    static const char *const users[] = {"alice", "bob", "carol", "dave",
                                        "eve"};
    char path[256], cfg[2048];
    size_t i;
    t_path(path, sizeof path, "data");
    mkdir(path, 0700);
    t_path(path, sizeof path, "data/jabber%2etest");
    mkdir(path, 0700);
    t_path(path, sizeof path, "data/other%2etest");
    mkdir(path, 0700);
    t_path(path, sizeof path, "data/other%2etest/accounts");
    mkdir(path, 0700);
    t_account(path, "mallory");
    t_path(path, sizeof path, "data/jabber%2etest/accounts");
    mkdir(path, 0700);
    for (i = 0; i < sizeof users / sizeof users[0]; i++)
        t_account(path, users[i]);
    snprintf(cfg, sizeof cfg,
        "-- private test instance, generated by olpcidx-test\n"
        "run_as_root = true\n"
        "pidfile = \"%s/prosody.pid\"\n"
        "data_path = \"%s/data\"\n"
        "certificates = \"%s\"\n"
        "log = { { levels = { min = \"info\" }, to = \"file\","
        " filename = \"%s/prosody.log\" } }\n"
        "plugin_paths = {}\n"
        "interfaces = { \"127.0.0.1\" }\n"
        "c2s_ports = { %d }\n"
        "c2s_interfaces = { \"127.0.0.1\" }\n"
        "c2s_direct_tls_ports = {}\n"
        "legacy_ssl_ports = {}\n"
        "component_ports = { %d }\n"
        "component_interfaces = { \"127.0.0.1\" }\n"
        "s2s_ports = {}\n"
        "s2s_direct_tls_ports = {}\n"
        "http_ports = {}\n"
        "https_ports = {}\n"
        "modules_enabled = { \"roster\"; \"saslauth\"; \"disco\";"
        " \"ping\" }\n"
        "modules_disabled = { \"s2s\"; \"s2s_auth_certs\"; \"offline\" }\n"
        "c2s_require_encryption = false\n"
        "allow_unencrypted_plain_auth = true\n"
        "authentication = \"internal_plain\"\n"
        "storage = \"internal\"\n"
        "VirtualHost \"" T_DOMAIN "\"\n"
        "VirtualHost \"other.test\"\n"
        "Component \"" T_COMP "\"\n"
        "\tcomponent_secret = \"" T_SECRET "\"\n",
        t_dir, t_dir, t_dir, t_dir, t_c2s_port, t_comp_port);
    t_path(path, sizeof path, "prosody.cfg.lua");
    t_writefile(path, cfg, strlen(cfg));
    return 0;
}

/* Starts Prosody and waits until its c2s port accepts connections. */
static pid_t t_prosody_start(void)
{
    char cfg[256], log[256];
    char *argv[5];
    pid_t pid;
    uint64_t end;
    t_path(cfg, sizeof cfg, "prosody.cfg.lua");
    t_path(log, sizeof log, "prosody.out");
    argv[0] = (char *)"prosody";
    argv[1] = (char *)"--config";
    argv[2] = cfg;
    argv[3] = (char *)"-F";             /* foreground */
    argv[4] = NULL;
    pid = t_spawn(argv, log);
    end = t_now() + 15000;
    while (pid > 0 && t_now() < end) {
        int fd = t_dial(t_c2s_port), fd2;
        if (fd >= 0) {
            fd2 = t_dial(t_comp_port);
            close(fd);
            if (fd2 >= 0) {
                close(fd2);
                return pid;
            }
        }
        if (t_wait_exit(pid, 50) >= 0)
            break;
    }
    printf("FAIL prosody did not start; see its log:\n");
    if (system("cat \"$OLPCIDX_TEST_DIR\"/prosody.out "
               "\"$OLPCIDX_TEST_DIR\"/prosody.log 2>/dev/null | tail -20"))
        printf("  (no log)\n");
    t_failed++;
    return -1;
}

/* Starts the daemon against the private server, logging to log.  The
** right secret goes through a file, a wrong one on the command line. */
static pid_t t_olpcidx_start(const char *domain, const char *secret,
                             const char *log)
{
    char server[64], path[256], file[256];
    char *argv[12];
    snprintf(server, sizeof server, "127.0.0.1:%d", t_comp_port);
    argv[0] = (char *)"./olpcidx";
    if (!domain) {                              /* all from the file */
        t_path(file, sizeof file, "olpcidx.conf");
        argv[1] = (char *)"--config";
        argv[2] = file;
        argv[3] = NULL;
        t_path(path, sizeof path, log);
        return t_spawn(argv, path);
    }
    argv[1] = (char *)"--domain";
    argv[2] = (char *)domain;
    argv[3] = (char *)"--server";
    argv[4] = server;
    if (strcmp(secret, T_SECRET) == 0) {        /* the way to run it */
        t_path(file, sizeof file, "secret");
        t_writefile(file, T_SECRET "\n", strlen(T_SECRET) + 1);
        argv[5] = (char *)"--secret-file";
        argv[6] = file;
    } else {                                    /* the tests-only way */
        argv[5] = (char *)"--secret";
        argv[6] = (char *)secret;
    }
    t_path(path, sizeof path, log);
    argv[7] = (char *)"--log-level";
    argv[8] = (char *)"debug";
    argv[9] = NULL;
    return t_spawn(argv, path);
}

/* Writes olpcidx.conf for the daemon: everything it needs, with the log
** level and stanza limit given. */
static void t_write_config(const char *level, int max_stanza)
{
    char path[256], secret[256], body[1024];
    t_path(secret, sizeof secret, "secret");
    t_writefile(secret, T_SECRET "\n", strlen(T_SECRET) + 1);
    snprintf(body, sizeof body,
             "# olpcidx test configuration\n"
             "domain = " T_COMP "\n"
             "server = 127.0.0.1:%d\n"
             "secret-file = %s\n"
             "\n"
             "idle = 5\n"
             "log-level = %s\n"
             "max-stanza = %d\n", t_comp_port, secret, level, max_stanza);
    t_path(path, sizeof path, "olpcidx.conf");
    t_writefile(path, body, strlen(body));
}

/* Runs the daemon with args and returns its exit status. */
static int t_run(const char *const *args, const char *log)
{
    char *argv[12], path[256];
    size_t i;
    pid_t pid;
    argv[0] = (char *)"./olpcidx";
    for (i = 0; args[i] && i < 10; i++)
        argv[i + 1] = (char *)args[i];
    argv[i + 1] = NULL;
    t_path(path, sizeof path, log);
    pid = t_spawn(argv, path);
    return pid > 0 ? t_wait_exit(pid, 5000) : -1;
}

/* Usage and configuration errors: exit 2 and a message that names what
** is wrong.  None of these connects anywhere. */
static void t_usage_errors(void)
{
    static const char *const nodomain[] = { "--secret", "x", NULL };
    static const char *const bogus[] = { "--domain", "a.b", "--bogus", NULL };
    static const char *const depth[] = {
        "--domain", "a.b", "--secret", "x", "--max-depth", "0", NULL };
    static const char *const nosecret[] = { "--domain", "a.b", NULL };
    static const char *const help[] = { "--help", NULL };
    char path[256], conf[256];
    const char *cargs[3];
    t_path(path, sizeof path, "usage.log");
    CHECK(t_run(nodomain, "usage.log") == 2);
    CHECK(t_file_has(path, "--domain"));
    CHECK(t_run(bogus, "usage.log") == 2);
    CHECK(t_file_has(path, "--bogus"));
    CHECK(t_run(depth, "usage.log") == 2);
    CHECK(t_file_has(path, "max-depth"));
    unsetenv("OLPCIDX_SECRET");
    CHECK(t_run(nosecret, "usage.log") == 2);
    CHECK(t_file_has(path, "OLPCIDX_SECRET"));
    t_path(conf, sizeof conf, "bad.conf");
    t_writefile(conf, "domain = a.b\nsecret = x\ncolour = blue\n", 35);
    cargs[0] = "--config";
    cargs[1] = conf;
    cargs[2] = NULL;
    CHECK(t_run(cargs, "usage.log") == 2);
    CHECK(t_file_has(path, "bad.conf:3"));
    CHECK(t_run(help, "help.log") == 0);
    t_path(path, sizeof path, "help.log");
    CHECK(t_file_has(path, "--max-stanza"));
}

/* ---- 6. a small c2s client -------------------------------------------- */

/*
** Enough of RFC 6120 for tests: stream, SASL PLAIN (loopback only), resource
** binding, then stanzas.  It reads with the olpcidx tokenizer and stanza
** assembly; each stanza received is serialized back to a string and
** queued, and tests wait for the one that contains some text (an id).
*/
typedef struct t_cl {
    int fd;
    olpcidx *x;                 /* storage for tokenizer and tree only */
    char *queue[256];           /* stanzas received, not yet taken */
    size_t nqueue;
    int closed;
    char jid[128];              /* full JID after binding */
    char name[16];              /* for the demo's transcript */
    char domain[32];            /* its server's domain */
    int answered;               /* pings from the component answered */
} t_cl;

static int t_cl_start(void *ud, oi_str ns, oi_str name, const oi_xattr *a,
                      size_t na)
{
    olpcidx *x = ((t_cl *)ud)->x;
    if (x->xml.depth >= 2 && !x->dropped
        && oi_tree_start(x, ns, name, a, na) < 0)
        x->dropped = 1;
    return 0;
}

static int t_cl_text(void *ud, const char *p, size_t n)
{
    olpcidx *x = ((t_cl *)ud)->x;
    if (x->xml.depth >= 2 && !x->dropped && oi_tree_text(x, p, n) < 0)
        x->dropped = 1;
    return 0;
}

static int t_cmpattr(const void *a, const void *b)
{
    return oi_str_cmp(((const oi_xattr *)a)->name,
                      ((const oi_xattr *)b)->name);
}

/* Servers may reorder attributes (Prosody does): the client writes them
** sorted by name, so that tests can expect one spelling. */
static void t_sort_attrs(oi_node *n)
{
    oi_node *c;
    if (n->nattr > 1)
        qsort(n->attr, n->nattr, sizeof *n->attr, t_cmpattr);
    for (c = n->child; c; c = c->next)
        t_sort_attrs(c);
}

static int t_cl_end(void *ud)
{
    t_cl *c = (t_cl *)ud;
    olpcidx *x = c->x;
    oi_str type;
    if (x->xml.depth == 0) {
        c->closed = 1;
        return 0;
    }
    if (x->xml.depth > 1) {
        if (!x->dropped)
            x->cur = x->cur->parent;
        return 0;
    }
    if (x->root && !x->dropped && oi_eq(x->root->name, "iq")
        && oi_attr(x->root, "type", &type) && oi_eq(type, "get")
        && oi_child(x->root, OI_NS_PING, "ping")) {
        /* XEP-0199: a client answers pings, the component's included */
        oi_str id, from;
        size_t mark = oi_out_begin(x);
        oi_attr(x->root, "id", &id);
        oi_attr(x->root, "from", &from);
        oi_outz(x, "<iq type='result'");
        oi_out_attr(x, "to", from);
        oi_out_attr(x, "id", id);
        oi_outz(x, "/>");
        if (write(c->fd, x->out.p + mark, x->out.n - mark) > 0)
            c->answered++;
        x->out.n = mark;
    } else if (x->root && !x->dropped && c->nqueue < 256) {
        size_t mark = oi_out_begin(x);
        char *s;
        t_sort_attrs(x->root);
        oi_out_node(x, x->root, OI_LIT("jabber:client"));
        s = (char *)malloc(x->out.n - mark + 1);
        if (s) {
            memcpy(s, x->out.p + mark, x->out.n - mark);
            s[x->out.n - mark] = '\0';
            c->queue[c->nqueue++] = s;
            if (t_verbose)
                printf("  %-6s <- %s\n", c->name, s);
        }
        x->out.n = mark;
    }
    x->root = x->cur = NULL;
    x->dropped = 0;
    oi_arena_reset(&x->mem, &x->arena, 1);
    return 0;
}

static const oi_xml_handler t_cl_handler = {
    t_cl_start, t_cl_end, t_cl_text
};

static int t_cl_send(t_cl *c, const char *z)
{
    size_t n = strlen(z), off = 0;
    if (t_verbose && z[0] == '<' && z[1] != '?' && strncmp(z, "<stream", 7))
        printf("  %-6s -> %s\n", c->name, z);
    while (off < n) {
        ssize_t k = write(c->fd, z + off, n - off);
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    return 0;
}

/* The clients open now, all read whenever one of them waits. */
#define T_MAXCL 8
static t_cl *t_clients[T_MAXCL];

static void t_cl_read(t_cl *c)
{
    char buf[4096];
    ssize_t k = read(c->fd, buf, sizeof buf);
    if (k <= 0) {
        c->closed = 1;
        return;
    }
    if (oi_xml_feed(&c->x->xml, buf, (size_t)k) != 0) {
        printf("FAIL client %s: bad XML from the server: %s\n", c->name,
               c->x->xml.err_msg);
        c->closed = 1;
    }
}

/* Waits up to ms for a stanza containing needle; returns it (caller
** frees) or NULL.  Other stanzas stay queued. */
static char *t_cl_wait(t_cl *c, const char *needle, int ms)
{
    uint64_t end = t_now() + (uint64_t)ms;
    for (;;) {
        size_t i, n = 0;
        struct pollfd pfd[T_MAXCL];
        t_cl *who[T_MAXCL];
        uint64_t now;
        for (i = 0; i < c->nqueue; i++)
            if (strstr(c->queue[i], needle)) {
                char *s = c->queue[i];
                memmove(&c->queue[i], &c->queue[i + 1],
                        (c->nqueue - i - 1) * sizeof c->queue[0]);
                c->nqueue--;
                return s;
            }
        now = t_now();
        if (now >= end || c->closed || c->fd < 0)
            return NULL;
        /* read every open client, so that all answer pings in time */
        for (i = 0; i < T_MAXCL; i++)
            if (t_clients[i] && t_clients[i]->fd >= 0
                && !t_clients[i]->closed) {
                pfd[n].fd = t_clients[i]->fd;
                pfd[n].events = POLLIN;
                who[n++] = t_clients[i];
            }
        if (poll(pfd, n, (int)(end - now)) <= 0)
            continue;
        for (i = 0; i < n; i++)
            if (pfd[i].revents)
                t_cl_read(who[i]);
    }
}

static void t_cl_close(t_cl *c)
{
    size_t i;
    for (i = 0; i < T_MAXCL; i++)
        if (t_clients[i] == c)
            t_clients[i] = NULL;
    if (c->fd >= 0) {
        t_cl_send(c, "</stream:stream>");
        close(c->fd);
    }
    c->fd = -1;
    for (i = 0; i < c->nqueue; i++)
        free(c->queue[i]);
    c->nqueue = 0;
    olpcidx_free(c->x);
    c->x = NULL;
}

static void t_base64(const char *in, size_t n, char *out)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    for (i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        *out++ = b64[v >> 18];
        *out++ = b64[(v >> 12) & 63];
        *out++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *out++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *out = '\0';
}

static int t_cl_stream(t_cl *c)
{
    char *s;
    char hdr[256];
    oi_xml_reset(&c->x->xml);
    c->closed = 0;
    snprintf(hdr, sizeof hdr, "<?xml version='1.0'?><stream:stream to='%s' "
             "xmlns='jabber:client' xmlns:stream='" OI_NS_STREAM "' "
             "version='1.0'>", c->domain);
    if (t_cl_send(c, hdr) != 0)
        return -1;
    s = t_cl_wait(c, "<features", 5000);
    if (!s)
        return -1;
    free(s);
    return 0;
}

/* Connects, authenticates user@domain with SASL PLAIN and binds
** resource. */
static int t_cl_open_at(t_cl *c, const char *user, const char *domain,
                        const char *resource)
{
    olpcidx_config cfg;
    char plain[64], auth[128], bind[256], *s;
    int n;
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", user);
    snprintf(c->domain, sizeof c->domain, "%s", domain);
    olpcidx_config_init(&cfg);
    cfg.jid = "client.invalid";
    cfg.secret = "";
    if (olpcidx_new(&c->x, &cfg) != 0)
        return -1;
    c->x->xml.h = &t_cl_handler;
    c->x->xml.ud = c;
    c->fd = t_dial(t_c2s_port);
    for (n = 0; n < T_MAXCL; n++)
        if (!t_clients[n]) {
            t_clients[n] = c;
            break;
        }
    if (c->fd < 0 || t_cl_stream(c) != 0)
        return -1;
    n = snprintf(plain, sizeof plain, "%c%s%cpw-%s", 0, user, 0, user);
    t_base64(plain, (size_t)n, auth);
    snprintf(bind, sizeof bind, "<auth xmlns='urn:ietf:params:xml:ns:"
             "xmpp-sasl' mechanism='PLAIN'>%s</auth>", auth);
    t_cl_send(c, bind);
    s = t_cl_wait(c, "xmpp-sasl", 5000);
    if (!s || !strstr(s, "<success")) {
        free(s);
        return -1;
    }
    free(s);
    if (t_cl_stream(c) != 0)
        return -1;
    snprintf(bind, sizeof bind, "<iq type='set' id='bind1'><bind xmlns="
             "'urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource>"
             "</bind></iq>", resource);
    t_cl_send(c, bind);
    s = t_cl_wait(c, "id='bind1'", 5000);
    if (!s || !strstr(s, "type='result'")) {
        free(s);
        return -1;
    }
    snprintf(c->jid, sizeof c->jid, "%s@%s/%s", user, domain, resource);
    free(s);
    return 0;
}

static int t_cl_open(t_cl *c, const char *user, const char *resource)
{
    return t_cl_open_at(c, user, T_DOMAIN, resource);
}

/* Sends an iq to the component and returns the reply (caller frees). */
static char *t_cl_iq(t_cl *c, const char *id, const char *type,
                     const char *payload)
{
    char buf[2048], needle[64];
    snprintf(buf, sizeof buf, "<iq type='%s' id='%s' to='" T_COMP "'>%s"
             "</iq>", type, id, payload);
    snprintf(needle, sizeof needle, "id='%s'", id);
    t_cl_send(c, buf);
    return t_cl_wait(c, needle, 5000);
}

/* Checks that reply exists and contains every string of want. */
static void t_expect(const char *what, const char *reply,
                     const char *const *want)
{
    int ok = reply != NULL;
    for (; ok && *want; want++)
        if (!strstr(reply, *want)) {
            printf("FAIL %s: no \"%s\" in %s\n", what, *want, reply);
            ok = 0;
        }
    if (!reply)
        printf("FAIL %s: no reply\n", what);
    if (ok)
        t_passed++;
    else
        t_failed++;
}

/* The exchanges every client should see from a live component. */
static void t_cl_basics(t_cl *c)
{
    static const char *const info[] = {
        "type='result'", "from='" T_COMP "'",
        "<identity ", "category='collaboration'", "type='gadget'",
        "name='OLPC Gadget'",
        "<feature var='" OI_NS_BUDDY "'/>", "<feature var='" OI_NS_ACT "'/>",
        "<feature var='" OI_NS_RSM "'/>", "<feature var='" OI_NS_DINFO "'/>",
        "<feature var='" OI_NS_PING "'/>", "<feature var='" OI_NS_VERSION "'/>",
        NULL
    };
    static const char *const unknown[] = {
        "type='error'", "from='" T_COMP "'", "<service-unavailable", NULL
    };
    static const char *const items[] = {
        "type='result'", "<query xmlns='" OI_NS_DITEMS "'/>", NULL
    };
    static const char *const version[] = {
        "type='result'", "<name>olpcidx</name>",
        "<version>" OLPCIDX_VERSION "</version>", NULL
    };
    static const char *const pong[] = { "type='result'", NULL };
    char *r;
    r = t_cl_iq(c, "info1", "get", "<query xmlns='" OI_NS_DINFO "'/>");
    t_expect("disco#info", r, info);
    if (r && !CHECK(strstr(r, c->jid) != NULL))
        printf("  reply not addressed to %s: %s\n", c->jid, r);
    free(r);
    r = t_cl_iq(c, "unk1", "get", "<query xmlns='urn:example:nothing'/>");
    t_expect("unknown iq", r, unknown);
    free(r);
    r = t_cl_iq(c, "items1", "get", "<query xmlns='" OI_NS_DITEMS "'/>");
    t_expect("disco#items", r, items);
    free(r);
    r = t_cl_iq(c, "ver1", "get", "<query xmlns='" OI_NS_VERSION "'/>");
    t_expect("version", r, version);
    free(r);
    r = t_cl_iq(c, "ping1", "get", "<ping xmlns='" OI_NS_PING "'/>");
    t_expect("ping", r, pong);
    free(r);
}

/* Creates the directory, picks ports, writes the server configuration. */
static int t_env_setup(void)
{
    strcpy(t_dir, "/tmp/olpcidx-test-XXXXXX");
    if (!mkdtemp(t_dir)) {
        t_dir[0] = '\0';
        printf("FAIL mkdtemp: %s\n", strerror(errno));
        t_failed++;
        return -1;
    }
    setenv("OLPCIDX_TEST_DIR", t_dir, 1);
    atexit(t_cleanup);
    signal(SIGINT, t_on_signal);
    signal(SIGTERM, t_on_signal);
    signal(SIGPIPE, SIG_IGN);
    t_c2s_port = t_free_port();
    do
        t_comp_port = t_free_port();
    while (t_comp_port == t_c2s_port);
    return t_prosody_setup();
}

static int t_have_prosody(void)
{
    if (system("command -v prosody >/dev/null 2>&1") == 0)
        return 1;
    printf("FAIL ============================================================\n"
           "FAIL Prosody is not installed: the interop tests cannot run.\n"
           "FAIL Install it (apt-get install prosody) or run the offline\n"
           "FAIL tests alone with OLPCIDX_TEST_OFFLINE=1.\n"
           "FAIL ============================================================\n");
    t_failed++;
    return 0;
}

/* Sends a message to the component. */
static void t_cl_msg(t_cl *c, const char *payload)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "<message to='" T_COMP "'>%s</message>",
             payload);
    t_cl_send(c, buf);
}

/* A round trip to the component: everything it sent this client before
** handling the ping has arrived once the answer is here (one stream each
** way, kept in order). */
static void t_cl_sync(t_cl *c)
{
    static int n;
    char id[32], *r;
    snprintf(id, sizeof id, "sync%d", ++n);
    r = t_cl_iq(c, id, "get", "<ping xmlns='" OI_NS_PING "'/>");
    if (!CHECK(r != NULL))
        printf("  %s: no answer to %s\n", c->name, id);
    free(r);
}

/* Expects a stanza containing every string of want within 5 s. */
static void t_cl_expect(t_cl *c, const char *what, const char *const *want)
{
    char *s = t_cl_wait(c, want[0], 5000);
    t_expect(what, s, want);
    free(s);
}

/* Expects no stanza containing needle so far (after a t_cl_sync). */
static void t_cl_none(t_cl *c, const char *what, const char *needle)
{
    char *s = t_cl_wait(c, needle, 0);
    if (!CHECK(s == NULL))
        printf("  %s: unexpected %s\n", what, s);
    free(s);
}

#define T_AP  "xmlns='" OI_NS_APROPS "'"
#define T_BP  "xmlns='" OI_NS_BPROPS "'"
#define T_Q_A "<query xmlns='" OI_NS_ACT "'>"
#define T_RSM "<set xmlns='" OI_NS_RSM "'>"
#define T_CONNECT "<property type='str' name='type'>org.laptop.Connect" \
                  "</property>"

/* The seed protocol through Prosody, with several clients at once:
** announcements, every query form, RSM, notifications and their absence,
** refusals, presence- and ping-driven departures, domain and rate limits
** (PROTOCOL.md 2-5 and 8; reference scenarios D.12 50-56). */
static void t_interop_seed(void)
{
    t_cl alice, bob, carol, dave, eve, mallory;
    char *r;
    int i, results, limited;
    /* resource "laptop": alice and bob are online as "xo" too */
    if (!CHECK(t_cl_open(&alice, "alice", "laptop") == 0)
        || !CHECK(t_cl_open(&bob, "bob", "laptop") == 0)
        || !CHECK(t_cl_open(&carol, "carol", "laptop") == 0))
        return;
    /* directed presence: the server tells the component when they go */
    t_cl_send(&alice, "<presence to='" T_COMP "'/>");
    t_cl_send(&bob, "<presence to='" T_COMP "'/>");
    t_cl_send(&carol, "<presence to='" T_COMP "'/>");

    /* announcements (PROTOCOL.md 4) */
    t_cl_msg(&alice, "<properties " T_BP "><property type='str' name='nick'>"
             "Alice</property><property type='str' name='color'>#005FE4,"
             "#00A0FF</property></properties>");
    t_cl_msg(&alice, "<properties " T_AP " activity='a1' room='a1@conference."
             T_DOMAIN "'>" T_CONNECT "<property type='str' name='title'>"
             "Draw &amp; chat</property></properties>"
             "<activity xmlns='" OI_NS_CURACT "' id='a1' room='a1@conference."
             T_DOMAIN "'/>");
    t_cl_msg(&bob, "<change xmlns='" OI_NS_BUDDY "'><properties " T_BP ">"
             "<property type='str' name='nick'>Bob</property></properties>"
             "</change>");
    t_cl_msg(&bob, "<change xmlns='" OI_NS_ACT "' activity='a2'><properties "
             T_AP ">" T_CONNECT "</properties></change>");
    t_cl_msg(&bob, "<properties " T_AP " activity='a3'><property type='str' "
             "name='type'>org.laptop.Chess</property></properties>");
    t_cl_msg(&bob, "<properties " T_AP " activity='a4'>" T_CONNECT
             "<property type='bool' name='private'>true</property>"
             "</properties>");
    t_cl_sync(&alice);
    t_cl_sync(&bob);

    /* D.12 50, 51: by properties, wrapped and flat; private a4 unseen */
    {
        static const char *const want[] = {
            "id='q50'", "<activity activity='a1' id='a1' room='a1@conference."
            T_DOMAIN "'>", "<property name='title' type='str'>Draw &amp; "
            "chat</property>", "<buddy jid='alice@" T_DOMAIN "'>",
            "<property name='nick' type='str'>Alice</property>",
            "<activity activity='a2' id='a2'>",
            "<buddy jid='bob@" T_DOMAIN "'>", NULL
        };
        r = t_cl_iq(&carol, "q50", "get", T_Q_A "<activity><properties "
                    T_AP ">" T_CONNECT "</properties></activity></query>");
        t_expect("D.12 50 query by properties", r, want);
        CHECK(r && strstr(r, "a1") < strstr(r, "a2") && !strstr(r, "a4")
              && !strstr(r, "a3") && !strstr(r, "<set"));
        free(r);
        r = t_cl_iq(&carol, "q51", "get", T_Q_A "<activity>" T_CONNECT
                    "</activity></query>");
        t_expect("D.12 51 flat properties", r, want + 1);
        free(r);
    }
    /* D.12 52: by id, known and unknown */
    {
        static const char *const one[] = {
            "id='q52'", "<activity activity='a3' id='a3'>", NULL };
        static const char *const none[] = {
            "id='q52b'", "<query xmlns='" OI_NS_ACT "'/>", NULL };
        r = t_cl_iq(&carol, "q52", "get", T_Q_A "<activity id='a3'/>"
                    "</query>");
        t_expect("D.12 52 query by id", r, one);
        free(r);
        r = t_cl_iq(&carol, "q52b", "get", T_Q_A "<activity activity='zz'/>"
                    "</query>");
        t_expect("D.12 52 unknown id", r, none);
        free(r);
    }
    /* by participants, and buddies by JID, alias and the seed's bare form */
    {
        static const char *const part[] = {
            "id='qp'", "<activity activity='a1' id='a1'", NULL };
        static const char *const buds[] = {
            "id='qb'", "<buddy jid='alice@" T_DOMAIN "'>",
            "<activity xmlns='" OI_NS_CURACT "' id='a1'",
            "<buddy jid='bob@" T_DOMAIN "'>", NULL };
        static const char *const alias[] = {
            "id='qa'", "<buddy jid='alice@" T_DOMAIN "'>", NULL };
        r = t_cl_iq(&carol, "qp", "get", T_Q_A "<activity><buddy jid='alice@"
                    T_DOMAIN "'/></activity></query>");
        t_expect("query by participant", r, part);
        CHECK(r && !strstr(r, "a2"));
        free(r);
        r = t_cl_iq(&carol, "qb", "get", "<query xmlns='" OI_NS_BUDDY "'>"
                    "<buddy jid='alice@" T_DOMAIN "'/><buddy jid='bob@"
                    T_DOMAIN "'/><buddy jid='nobody@" T_DOMAIN "'/></query>");
        t_expect("buddies by JID", r, buds);
        free(r);
        r = t_cl_iq(&carol, "qa", "get", "<query xmlns='" OI_NS_BUDDY "'>"
                    "<buddy alias='LIC'/></query>");
        t_expect("buddies by alias", r, alias);
        CHECK(r && !strstr(r, "bob@"));
        free(r);
        r = t_cl_iq(&carol, "qa", "get", "<buddy xmlns='" OI_NS_BUDDY
                    "' jid='alice@" T_DOMAIN "'/>");
        t_expect("the seed's bare buddy query", r, alias);
        free(r);
    }
    /* D.12 53: RSM over the three public activities a1 a2 a3 */
    {
        static const char *const p1[] = { "id='r1'", "id='a1'",
            "<first index='0'>a1</first><last>a1</last><count>3</count>",
            NULL };
        static const char *const p2[] = { "id='r2'", "id='a2'",
            "<first index='1'>a2</first><last>a2</last><count>3</count>",
            NULL };
        static const char *const last[] = { "id='r3'", "id='a3'",
            "<first index='2'>a3</first><last>a3</last><count>3</count>",
            NULL };
        static const char *const count[] = { "id='r4'",
            "<query xmlns='" OI_NS_ACT "'><set xmlns='" OI_NS_RSM "'>"
            "<count>3</count></set></query>", NULL };
        static const char *const beyond[] = { "id='r5'",
            "<query xmlns='" OI_NS_ACT "'><set xmlns='" OI_NS_RSM "'>"
            "<count>3</count></set></query>", NULL };
        static const char *const gone[] = { "id='r6'", "id='a2'",
            "<first index='1'>a2</first><last>a3</last>", NULL };
        static const char *const bad[] = { "id='r7'", "type='error'",
            "<bad-request", NULL };
        static const char *const idx[] = { "id='r8'", "id='a2'",
            "<first index='1'>a2</first><last>a2</last>", NULL };
        r = t_cl_iq(&carol, "r1", "get", T_Q_A "<activity/>" T_RSM
                    "<max>1</max></set></query>");
        t_expect("D.12 53 first page", r, p1);
        free(r);
        r = t_cl_iq(&carol, "r2", "get", T_Q_A "<activity/>" T_RSM
                    "<max>1</max><after>a1</after></set></query>");
        t_expect("D.12 53 after", r, p2);
        free(r);
        r = t_cl_iq(&carol, "r3", "get", T_Q_A "<activity/>" T_RSM
                    "<max>1</max><before/></set></query>");
        t_expect("D.12 53 empty before: last page", r, last);
        free(r);
        r = t_cl_iq(&carol, "r4", "get", T_Q_A "<activity/>" T_RSM
                    "<max>0</max></set></query>");
        t_expect("D.12 53 max 0: count only", r, count);
        free(r);
        r = t_cl_iq(&carol, "r5", "get", T_Q_A "<activity/>" T_RSM
                    "<index>5</index></set></query>");
        t_expect("D.12 53 index beyond count: empty page", r, beyond);
        free(r);
        r = t_cl_iq(&carol, "r6", "get", T_Q_A "<activity/>" T_RSM
                    "<after>a15</after></set></query>");
        t_expect("after a vanished UID: positional", r, gone);
        free(r);
        r = t_cl_iq(&carol, "r7", "get", T_Q_A "<activity/>" T_RSM
                    "<max>ten</max></set></query>");
        t_expect("malformed max", r, bad);
        free(r);
        r = t_cl_iq(&carol, "r8", "get", T_Q_A "<activity/>" T_RSM
                    "<max>1</max><before>a3</before></set></query>");
        t_expect("before a UID", r, idx);
        free(r);
    }

    /* D.12 54: carol's current result set is {a1, a2}; a change of a1
    ** reaches her, not bob (who looked at nothing) nor alice (the cause) */
    {
        static const char *const chg[] = {
            "<change xmlns='" OI_NS_ACT "' activity='a1' room='a1@conference."
            T_DOMAIN "'>", "type='headline'", "from='" T_COMP "'",
            "<properties xmlns='" OI_NS_APROPS "' activity='a1'",
            "<property name='title' type='str'>Round two</property>",
            "<rule action='error' condition='deliver-at' value='stored'/>",
            NULL };
        free(t_cl_iq(&carol, "q54", "get", T_Q_A "<activity>" T_CONNECT
                     "</activity></query>"));
        t_cl_msg(&alice, "<change xmlns='" OI_NS_ACT "' activity='a1'>"
                 "<properties " T_AP ">" T_CONNECT "<property type='str' "
                 "name='title'>Round two</property></properties></change>");
        t_cl_expect(&carol, "D.12 54 change notification", chg);
        t_cl_sync(&bob);
        t_cl_sync(&alice);
        t_cl_none(&bob, "no change to a client not looking", "<change");
        t_cl_none(&alice, "no change to the cause", "<change");
    }
    /* D.12 55: bob joins by room only; carol hears it with his properties */
    {
        static const char *const joined[] = {
            "<activity xmlns='" OI_NS_ACT "' activity='a1'",
            "<joined jid='bob@" T_DOMAIN "'>",
            "<property name='nick' type='str'>Bob</property>", NULL };
        t_cl_msg(&bob, "<activity xmlns='" OI_NS_ACT "' room='a1@conference."
                 T_DOMAIN "'><joined/></activity>");
        t_cl_expect(&carol, "D.12 55 joined", joined);
    }
    /* buddy changes: reach carol once although bob is in a1 and a2 */
    {
        static const char *const chg[] = {
            "<change xmlns='" OI_NS_BUDDY "' jid='bob@" T_DOMAIN "'>",
            "<property name='nick' type='str'>Bobby</property>", NULL };
        t_cl_msg(&bob, "<properties " T_BP "><property type='str' name='nick'>"
                 "Bobby</property></properties>");
        t_cl_expect(&carol, "buddy change", chg);
        t_cl_sync(&bob);
        t_cl_sync(&carol);
        t_cl_none(&carol, "buddy change only once", "Bobby");
    }
    /* refusals: not a participant, bad values, another's JID */
    {
        static const char *const forb[] = { "type='error'",
            "<properties xmlns='" OI_NS_APROPS "' activity='a3'",
            "<forbidden", NULL };
        static const char *const badv[] = { "type='error'", "<bad-request",
            NULL };
        t_cl_msg(&carol, "<properties " T_AP " activity='a3'>" T_CONNECT
                 "</properties>");
        t_cl_expect(&carol, "refused: not a participant", forb);
        t_cl_msg(&carol, "<properties " T_BP "><property type='int' "
                 "name='n'>12x</property></properties>");
        t_cl_expect(&carol, "refused: bad value", badv);
        t_cl_msg(&carol, "<change xmlns='" OI_NS_BUDDY "' jid='alice@"
                 T_DOMAIN "'><properties " T_BP "/></change>");
        t_cl_expect(&carol, "refused: another's JID", forb + 2);
        r = t_cl_iq(&carol, "ref", "get", T_Q_A "<activity id='a3'/></query>");
        CHECK(r && strstr(r, "org.laptop.Chess") && !strstr(r, "Connect"));
        free(r);
    }
    /* a new query replaces the result set; close drops it */
    free(t_cl_iq(&carol, "q54b", "get", T_Q_A "<activity id='a3'/></query>"));
    t_cl_msg(&alice, "<change xmlns='" OI_NS_ACT "' activity='a1'><properties "
             T_AP ">" T_CONNECT "</properties></change>");
    t_cl_sync(&alice);
    t_cl_sync(&carol);
    t_cl_none(&carol, "D.12 54 replaced result set", "<change");
    t_cl_msg(&carol, "<close xmlns='" OI_NS_ACT "'/>");
    t_cl_sync(&carol);
    t_cl_msg(&bob, "<properties " T_AP " activity='a3'><property type='str' "
             "name='type'>org.laptop.Chess</property><property type='int' "
             "name='round'>2</property></properties>");
    t_cl_sync(&bob);
    t_cl_sync(&carol);
    t_cl_none(&carol, "closed result set", "<change");

    /* D.12 56 and presence: carol watches a1, a2; bob goes offline: he
    ** leaves a1, and a2, his alone, closes */
    {
        static const char *const left[] = {
            "activity='a1'", "<left jid='bob@" T_DOMAIN "'/>", NULL };
        static const char *const left2[] = {
            "activity='a2'", "<left jid='bob@" T_DOMAIN "'/>", NULL };
        static const char *const closed[] = {
            "activity='a2'", "<closed/>", NULL };
        free(t_cl_iq(&carol, "q56", "get", T_Q_A "<activity>" T_CONNECT
                     "</activity></query>"));
        t_cl_close(&bob);
        t_cl_expect(&carol, "left on unavailable presence", left);
        t_cl_expect(&carol, "left the other activity", left2);
        t_cl_expect(&carol, "D.12 56 closed", closed);
        r = t_cl_iq(&carol, "q56b", "get", T_Q_A "<activity/></query>");
        CHECK(r && strstr(r, "id='a1'") && !strstr(r, "id='a2'")
              && !strstr(r, "id='a3'"));
        free(r);
    }
    /* a participant that never sent presence: after idle seconds it is
    ** pinged at its last full JID; gone, the server bounces the ping */
    if (CHECK(t_cl_open(&eve, "eve", "laptop") == 0)) {
        static const char *const left[] = {
            "activity='a1'", "<left jid='eve@" T_DOMAIN "'/>", NULL };
        t_cl_msg(&eve, "<activity xmlns='" OI_NS_ACT "' id='a1'><joined/>"
                 "</activity>");
        t_cl_sync(&eve);
        free(t_cl_wait(&carol, "<joined jid='eve@", 5000));
        t_cl_close(&eve);
        r = t_cl_wait(&carol, left[1], 15000);
        t_expect("idle participant pinged and gone", r, left);
        free(r);
    }
    /* other domains may not query or announce (PROTOCOL.md 8) */
    if (CHECK(t_cl_open_at(&mallory, "mallory", "other.test", "x") == 0)) {
        static const char *const forb[] = { "type='error'", "<forbidden",
            NULL };
        r = t_cl_iq(&mallory, "m1", "get", T_Q_A "<activity/></query>");
        t_expect("query from another domain", r, forb);
        free(r);
        t_cl_msg(&mallory, "<activity xmlns='" OI_NS_ACT "' id='a1'>"
                 "<joined/></activity>");
        t_cl_expect(&mallory, "announcement from another domain", forb);
        t_cl_close(&mallory);
    }
    /* the rate limit: a burst beyond rate-burst is refused in part */
    if (CHECK(t_cl_open(&dave, "dave", "laptop") == 0)) {
        t_str burst;
        memset(&burst, 0, sizeof burst);
        for (i = 0; i < 150; i++)
            t_addf(&burst, "<iq type='get' id='b%d' to='" T_COMP "'><ping "
                   "xmlns='" OI_NS_PING "'/></iq>", i);
        t_cl_send(&dave, burst.p);
        free(burst.p);
        results = limited = 0;
        for (i = 0; i < 150; i++) {
            char id[32];
            snprintf(id, sizeof id, "id='b%d'", i);
            r = t_cl_wait(&dave, id, 5000);
            if (r && strstr(r, "<resource-constraint"))
                limited++;
            else if (r && strstr(r, "type='result'"))
                results++;
            free(r);
        }
        if (!CHECK(results >= 100 && limited >= 1 && results + limited == 150))
            printf("  %d answered, %d limited\n", results, limited);
        t_cl_close(&dave);
    }
    t_cl_close(&alice);
    t_cl_close(&carol);
}

static void t_interop(void)
{
    char log[256], refused[256];
    pid_t server, comp;
    t_cl alice, bob;
    char *r;
    int rc;
    if (!t_have_prosody() || t_env_setup() != 0)
        return;
    server = t_prosody_start();
    if (server < 0)
        return;
    printf("interop: prosody on 127.0.0.1:%d (c2s) and :%d (component)\n",
           t_c2s_port, t_comp_port);

    /* A wrong secret is a configuration error: exit 3, and say so. */
    comp = t_olpcidx_start(T_COMP, "wrong", "refused.log");
    rc = t_wait_exit(comp, 15000);
    t_path(refused, sizeof refused, "refused.log");
    if (!CHECK(rc == 3) || !CHECK(t_file_has(refused, "check the secret")))
        printf("  exit status %d; see %s\n", rc, refused);
    if (rc < 0)
        t_stop(comp, SIGKILL);

    /* A domain the server does not serve: exit 3 too. */
    comp = t_olpcidx_start("nothere." T_DOMAIN, T_SECRET, "refused2.log");
    rc = t_wait_exit(comp, 15000);
    t_path(refused, sizeof refused, "refused2.log");
    if (!CHECK(rc == 3) || !CHECK(t_file_has(refused, "component domain")))
        printf("  exit status %d; see %s\n", rc, refused);
    if (rc < 0)
        t_stop(comp, SIGKILL);

    t_usage_errors();

    /* The component online, configured by a file, and two clients asking
    ** it things. */
    t_write_config("info", 65536);
    comp = t_olpcidx_start(NULL, NULL, "olpcidx.log");
    t_path(log, sizeof log, "olpcidx.log");
    CHECK(t_wait_log(log, "online as " T_COMP, 1, 10000));
    if (!CHECK(t_cl_open(&alice, "alice", "xo") == 0))
        printf("  alice could not log in\n");
    if (!CHECK(t_cl_open(&bob, "bob", "xo") == 0))
        printf("  bob could not log in\n");
    t_cl_basics(&alice);
    t_cl_basics(&bob);
    t_interop_seed();

    /* SIGHUP applies the file's new log level and limits: debug lines
    ** appear, and a stanza over the new max-stanza ends that stream with
    ** policy-violation; the component reconnects and bob, who sent it,
    ** gets nothing back while alice's next query is answered. */
    CHECK(!t_file_has(log, " debug: "));
    t_write_config("debug", 1024);
    kill(comp, SIGHUP);
    CHECK(t_wait_log(log, "SIGHUP: re-read", 1, 5000));
    CHECK(t_file_has(log, "log-level debug, max-stanza 1024"));
    t_cl_send(&bob, "<message to='" T_COMP "'><body>hello</body></message>");
    CHECK(t_wait_log(log, "debug: message from bob@" T_DOMAIN "/xo", 1, 5000));
    {
        char big[1600];
        static const char *const pong[] = { "type='result'", NULL };
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        t_cl_send(&bob, "<iq type='get' id='big1' to='" T_COMP "'>"
                  "<query xmlns='urn:example:big'>");
        t_cl_send(&bob, big);
        t_cl_send(&bob, "</query></iq>");
        CHECK(t_wait_log(log, "stanza too large", 1, 5000));
        CHECK(t_wait_log(log, "online as " T_COMP, 2, 10000));
        r = t_cl_iq(&alice, "ping2", "get", "<ping xmlns='" OI_NS_PING "'/>");
        t_expect("ping after a reconnect", r, pong);
        free(r);
    }
    t_write_config("info", 65536);
    kill(comp, SIGHUP);
    CHECK(t_wait_log(log, "SIGHUP: re-read", 2, 5000));
    t_cl_close(&alice);
    t_cl_close(&bob);

    /* Prosody stops and comes back: the component reconnects by itself. */
    t_stop(server, SIGTERM);
    CHECK(t_wait_exit(comp, 500) < 0);          /* still running */
    server = t_prosody_start();
    if (server < 0)
        return;
    if (!CHECK(t_wait_log(log, "online as " T_COMP, 3, 20000)))
        printf("  no reconnect; see %s\n", log);
    CHECK(t_file_has(log, "reconnecting"));
    if (CHECK(t_cl_open(&alice, "alice", "xo2") == 0))
        t_cl_basics(&alice);
    t_cl_close(&alice);

    /* SIGTERM: the stream is closed cleanly and the exit status is 0. */
    kill(comp, SIGTERM);
    rc = t_wait_exit(comp, 5000);
    if (!CHECK(rc == 0))
        printf("  exit status %d after SIGTERM\n", rc);
    t_stop(server, SIGTERM);
    t_cleanup();
}

/* make demo: the same scene, with the exchanges printed. */
static int t_demo(int argc, char **argv)
{
    char log[256];
    pid_t server, comp;
    t_cl alice;
    char *r;
    (void)argc;
    (void)argv;
    if (!t_have_prosody() || t_env_setup() != 0)
        return 1;
    printf("demo: starting a private Prosody in %s\n", t_dir);
    server = t_prosody_start();
    if (server < 0)
        return 1;
    printf("demo: c2s on 127.0.0.1:%d, component port 127.0.0.1:%d\n",
           t_c2s_port, t_comp_port);
    comp = t_olpcidx_start(T_COMP, T_SECRET, "olpcidx.log");
    t_path(log, sizeof log, "olpcidx.log");
    if (!t_wait_log(log, "online as", 1, 10000)) {
        printf("demo: olpcidx did not come online; its log:\n");
        if (system("cat \"$OLPCIDX_TEST_DIR\"/olpcidx.log")) {}
        return 1;
    }
    printf("demo: ./olpcidx --domain " T_COMP " --server 127.0.0.1:%d is "
           "online\n\n", t_comp_port);
    if (t_cl_open(&alice, "alice", "xo") != 0) {
        printf("demo: alice could not log in\n");
        return 1;
    }
    printf("alice@" T_DOMAIN "/xo asks the component what it is:\n");
    t_verbose = 1;
    free(t_cl_iq(&alice, "info1", "get", "<query xmlns='" OI_NS_DINFO "'/>"));
    free(t_cl_iq(&alice, "ver1", "get", "<query xmlns='" OI_NS_VERSION
                 "'/>"));
    free(t_cl_iq(&alice, "ping1", "get", "<ping xmlns='" OI_NS_PING "'/>"));
    r = t_cl_iq(&alice, "x1", "get", "<query xmlns='urn:example:other'/>");
    free(r);
    t_verbose = 0;
    t_cl_close(&alice);
    printf("\ndemo: the component's log:\n");
    if (system("sed 's/^/  /' \"$OLPCIDX_TEST_DIR\"/olpcidx.log")) {}
    t_stop(comp, SIGTERM);
    t_stop(server, SIGTERM);
    t_cleanup();
    printf("demo: stopped everything\n");
    return 0;
}

#ifdef OLPCIDX_BENCH
/* ---- 7. the benchmark (make bench) ----------------------------------- */

/*
** Throughput of the XML tokenizer alone and of the whole component (feed,
** dispatch, reply), next to a memchr scan (the ceiling) and, when compiled
** in, expat with namespaces and libxml2's SAX2 push parser, all on the
** same bytes in 64 KiB feeds: the file $BENCH_INPUT, or about 8 MiB of
** generated component traffic (a live stream: the root is never closed).
** Each figure is the best of BENCH_RUNS runs of at least BENCH_MIN_RUN
** seconds.  MB is 10^6 bytes.  The last line is machine-readable.
*/
#ifdef HAVE_EXPAT
#include <expat.h>
#endif
#ifdef HAVE_LIBXML2
#include <libxml/parser.h>
#endif

#define BENCH_CHUNK     (64u * 1024)            /* bytes per feed */
#define BENCH_GEN_SIZE  (8u * 1024 * 1024)      /* generated input size */
#define BENCH_MIN_RUN   0.5                     /* seconds per run */
#define BENCH_RUNS      3                       /* runs, best one kept */
#define BENCH_JID       "index.jabber.test"

/* What one pass over the input saw.  Parsers count their own events and
** track depth themselves, so that stanza counts can be compared too. */
typedef struct bench_count {
    unsigned long start;        /* start-element events */
    unsigned long end;          /* end-element events */
    unsigned long text;         /* character-data events */
    unsigned long stanzas;      /* start events at depth 2 */
    unsigned long depth;        /* currently open elements */
    unsigned long bytes;        /* memchr: '<' bytes; core: reply bytes */
} bench_count;

/* Parses the whole input once; 0 on success, -1 after printing why. */
typedef int (*bench_pass_fn)(const char *p, size_t n, bench_count *c);

typedef struct bench_result {
    const char *name;
    double mb_s;                /* best run */
    double stanzas_s;           /* 0: not meaningful */
    bench_count c;              /* counts of one pass */
} bench_result;

/* Keeps the memchr loop from being optimised away. */
static volatile unsigned long bench_sink;

/* Last error line logged by the core, for the failure message. */
static char bench_log_line[512];

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- Input ---------------------------------------------------------- */

/* Reads a whole file; returns 0, or -1 after printing why. */
static int bench_read_file(const char *path, t_str *b)
{
    size_t n;
    char *p = t_readfile(path, &n);
    if (!p) {
        fprintf(stderr, "bench: cannot read %s\n", path);
        return -1;
    }
    b->p = p;
    b->n = b->cap = n;
    return 0;
}

/* xorshift32: fixed seed, so every run measures the same bytes. */
static uint32_t bench_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static const char *bench_pick(uint32_t *s, const char *const *v, size_t n)
{
    return v[bench_rand(s) % n];
}

#define BENCH_PICK(s, v) bench_pick((s), (v), sizeof(v) / sizeof((v)[0]))

/* Text as laptops send it: entities, character references, and
** non-ASCII UTF-8 of two, three and four bytes. */
static const char *const bench_bodies[] = {
    "Tom &amp; Jerry &lt;3 the caf&#233; in the plaza",
    "\xc2\xbfVamos a jugar? El \xc3\x91" "and\xc3\xba corre m\xc3\xa1s "
    "r\xc3\xa1pido que t\xc3\xba",
    "x &lt; y &amp;&amp; y &gt; z, so the turtle turns left",
    "Ol\xc3\xa1! A reuni\xc3\xa3o \xc3\xa9 \xc3\xa0s 15h &#x263A;",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86 and ASCII",
    "Shall we share the Memorize activity with the whole class?",
    "Nice drawing \xf0\x9f\x98\x80 can I join &quot;Paint&quot;?"
};

static const char *const bench_nicks[] = {
    "\xc3\x91" "and\xc3\xba", "J\xc3\xbcrgen", "Zo\xc3\xab",
    "Mar\xc3\xad" "a Jos\xc3\xa9", "Kofi", "\xe6\x9d\x8e\xe5\xb0\x8f"
    "\xe9\xbe\x99", "Tom &amp; Co", "Ana"
};

static const char *const bench_acts[] = {
    "org.laptop.Connect", "org.laptop.Chat", "org.laptop.WebActivity",
    "org.laptop.Memorize", "org.laptop.TurtleArtActivity",
    "org.laptop.AbiWordActivity"
};

static const char *const bench_status[] = {
    "Jugando con el \xc3\x91" "and\xc3\xba &amp; amigos", "En clase",
    "Writing a story &lt;draft&gt;", "Ausente", "Leyendo \xe2\x80\x9c"
    "El Principito\xe2\x80\x9d"
};

/* Appends one stanza; the mix averages about 330 bytes. */
static void bench_stanza(t_str *b, uint32_t *s, unsigned long id)
{
    char t[2048];
    unsigned user = bench_rand(s) % 500, r = bench_rand(s) % 100;
    char from[128];

    snprintf(from, sizeof from, "from='user%u@jabber.test/xo' to='"
             BENCH_JID "'", user);
    if (r < 20) {                       /* disco#info: answered */
        snprintf(t, sizeof t, "<iq type='get' id='%lu' %s><query xmlns="
                 "'http://jabber.org/protocol/disco#info'/></iq>", id, from);
    } else if (r < 28) {                /* unknown namespace: error */
        snprintf(t, sizeof t, "<iq type='get' id='%lu' %s><query xmlns="
                 "'urn:example:unknown:%u'><item name='x%u'/></query></iq>",
                 id, from, r, user);
    } else if (r < 53) {                /* OLPC activity query */
        snprintf(t, sizeof t, "<iq type='get' id='%lu' %s><query xmlns="
                 "'http://laptop.org/xmpp/activity'><activity><properties "
                 "xmlns='http://laptop.org/xmpp/activity-properties'>"
                 "<property type='str' name='type'>%s</property>"
                 "</properties></activity><set xmlns="
                 "'http://jabber.org/protocol/rsm'><max>20</max>%s</set>"
                 "</query></iq>", id, from, BENCH_PICK(s, bench_acts),
                 r & 1 ? "<after>activity-40</after>" : "");
    } else if (r < 78) {                /* message with buddy properties */
        snprintf(t, sizeof t, "<message type='normal' id='m%lu' %s><body>"
                 "%s</body><properties xmlns="
                 "'http://laptop.org/xmpp/buddy-properties'><property "
                 "type='str' name='nick'>%s</property><property "
                 "type='str' name='color'>#%06X,#%06X</property><property "
                 "type='bytes' name='key'>AAAAB3NzaC1kc3MAAACBAN%08X"
                 "</property></properties></message>", id, from,
                 BENCH_PICK(s, bench_bodies), BENCH_PICK(s, bench_nicks),
                 (unsigned)(bench_rand(s) & 0xFFFFFF),
                 (unsigned)(bench_rand(s) & 0xFFFFFF),
                 (unsigned)bench_rand(s));
    } else if (r < 95) {                /* presence with caps */
        snprintf(t, sizeof t, "<presence %s xml:lang='es'><show>chat"
                 "</show><status>%s</status><priority>0</priority><c "
                 "xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                 "node='http://sugarlabs.org/xmpp' ver='QgayPKawpkPSDYmw"
                 "T/WM94u%04X='/></presence>", from,
                 BENCH_PICK(s, bench_status),
                 (unsigned)(bench_rand(s) & 0xFFFF));
    } else if (r < 98) {
        snprintf(t, sizeof t, "<presence type='unavailable' %s/>", from);
    } else {                            /* the server's ping */
        snprintf(t, sizeof t, "<iq type='get' id='s2c%lu' from='jabber.test'"
                 " to='" BENCH_JID "'><ping xmlns='urn:xmpp:ping'/></iq>",
                 id);
    }
    t_addz(b, t);
    if (bench_rand(s) % 64 == 0)        /* whitespace keepalive */
        t_addz(b, "\n");
}

static void bench_generate(t_str *b)
{
    uint32_t seed = 0x2545F491u;
    unsigned long id = 1;
    t_addz(b, "<?xml version='1.0'?><stream:stream "
               "xmlns='jabber:component:accept' "
               "xmlns:stream='http://etherx.jabber.org/streams' "
               "from='" BENCH_JID "' id='3BF96D32'><handshake/>");
    while (b->n < BENCH_GEN_SIZE)
        bench_stanza(b, &seed, id++);
}

/* ---- Passes --------------------------------------------------------- */

static size_t bench_chunk(size_t n, size_t off)
{
    return n - off < BENCH_CHUNK ? n - off : BENCH_CHUNK;
}

static void bench_on_start(bench_count *c)
{
    c->start++;
    if (++c->depth == 2)
        c->stanzas++;
}

static void bench_on_end(bench_count *c)
{
    c->end++;
    c->depth--;
}

/* The tokenizer with callbacks that only count. */
static int bench_tok_start(void *ud, oi_str ns, oi_str name,
                           const oi_xattr *a, size_t na)
{
    (void)ns;
    (void)name;
    (void)a;
    (void)na;
    bench_on_start((bench_count *)ud);
    return 0;
}

static int bench_tok_end(void *ud)
{
    bench_on_end((bench_count *)ud);
    return 0;
}

static int bench_tok_text(void *ud, const char *p, size_t n)
{
    (void)p;
    (void)n;
    ((bench_count *)ud)->text++;
    return 0;
}

static const oi_xml_handler bench_tok_handler = {
    bench_tok_start, bench_tok_end, bench_tok_text
};

static int bench_tok_pass(const char *p, size_t n, bench_count *c)
{
    oi_mem m;
    oi_xml x;
    size_t off, k;
    int rc = 0;

    memset(&m, 0, sizeof m);
    m.alloc = oi_default_alloc;
    oi_xml_init(&x, &m, &bench_tok_handler, c);
    for (off = 0; off < n && rc == 0; off += k) {
        k = bench_chunk(n, off);
        rc = oi_xml_feed(&x, p + off, k);
    }
    if (rc != 0)
        fprintf(stderr, "bench: tokenizer: %s at byte %lu: %s\n",
                olpcidx_strerror(rc), (unsigned long)x.err_off,
                x.err_msg ? x.err_msg : "?");
    oi_xml_release(&x);
    return rc ? -1 : 0;
}

/* The core's log sink: keeps the last error line for the message. */
static void bench_log(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    snprintf(bench_log_line, sizeof bench_log_line, "%s", msg);
}

/* Reads and discards what the component queued, as a socket write of
** everything would. */
static void bench_drain(olpcidx *x, bench_count *c)
{
    const void *out;
    size_t k;
    while ((k = olpcidx_pending(x, &out)) > 0) {
        c->bytes += k;
        olpcidx_sent(x, k);
    }
}

/* The whole component on a fresh handle.  Stanza counts come from the
** tokenizer pass; this one only counts reply bytes. */
static int bench_core_pass(const char *p, size_t n, bench_count *c)
{
    olpcidx_config cfg;
    olpcidx *x;
    size_t off, k;
    int rc;

    olpcidx_config_init(&cfg);
    cfg.jid = BENCH_JID;
    cfg.secret = "secret";
    cfg.log = bench_log;                /* errors only: off the hot path */
    cfg.log_level = OLPCIDX_LOG_ERROR;
    rc = olpcidx_new(&x, &cfg);
    if (rc != 0) {
        fprintf(stderr, "bench: core: olpcidx_new: %s\n",
                olpcidx_strerror(rc));
        return -1;
    }
    rc = olpcidx_connect(x, 0);
    bench_drain(x, c);
    for (off = 0; off < n && rc == 0; off += k) {
        k = bench_chunk(n, off);
        rc = olpcidx_feed(x, p + off, k);
        bench_drain(x, c);
    }
    if (rc == 0 && !olpcidx_online(x)) {
        fprintf(stderr, "bench: core: the stream never went online\n");
        rc = -1;
    } else if (rc != 0) {
        fprintf(stderr, "bench: core: %s (last error: %s)\n",
                olpcidx_strerror(rc),
                bench_log_line[0] ? bench_log_line : "none logged");
    }
    olpcidx_free(x);
    return rc ? -1 : 0;
}

/* The ceiling: one memchr sweep for '<' over the same chunks. */
static int bench_memchr_pass(const char *p, size_t n, bench_count *c)
{
    size_t off, k;
    for (off = 0; off < n; off += k) {
        const char *s = p + off, *e;
        k = bench_chunk(n, off);
        e = s + k;
        while ((s = (const char *)memchr(s, '<', (size_t)(e - s))) != NULL) {
            c->bytes++;
            s++;
        }
    }
    bench_sink += c->bytes;
    return 0;
}

#ifdef HAVE_EXPAT
static void XMLCALL bench_expat_start(void *ud, const XML_Char *name,
                                      const XML_Char **atts)
{
    (void)name;
    (void)atts;
    bench_on_start((bench_count *)ud);
}

static void XMLCALL bench_expat_end(void *ud, const XML_Char *name)
{
    (void)name;
    bench_on_end((bench_count *)ud);
}

static void XMLCALL bench_expat_text(void *ud, const XML_Char *s, int len)
{
    (void)s;
    (void)len;
    ((bench_count *)ud)->text++;
}

static int bench_expat_pass(const char *p, size_t n, bench_count *c)
{
    XML_Parser xp = XML_ParserCreateNS(NULL, ' ');
    size_t off, k;
    int rc = 0;

    if (!xp) {
        fprintf(stderr, "bench: expat: out of memory\n");
        return -1;
    }
    XML_SetUserData(xp, c);
    XML_SetElementHandler(xp, bench_expat_start, bench_expat_end);
    XML_SetCharacterDataHandler(xp, bench_expat_text);
#if XML_MAJOR_VERSION > 2 \
    || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
    /* Reparse deferral (2.6) may hold events back across feeds. */
    XML_SetReparseDeferralEnabled(xp, XML_FALSE);
#endif
    for (off = 0; off < n; off += k) {
        k = bench_chunk(n, off);
        if (XML_Parse(xp, p + off, (int)k, 0) == XML_STATUS_ERROR) {
            fprintf(stderr, "bench: expat: %s at line %lu\n",
                    XML_ErrorString(XML_GetErrorCode(xp)),
                    (unsigned long)XML_GetCurrentLineNumber(xp));
            rc = -1;
            break;
        }
    }
    XML_ParserFree(xp);
    return rc;
}
#endif /* HAVE_EXPAT */

#ifdef HAVE_LIBXML2
static void bench_lx_start(void *ud, const xmlChar *local,
                           const xmlChar *prefix, const xmlChar *uri,
                           int nns, const xmlChar **ns, int nattr,
                           int ndefaulted, const xmlChar **attr)
{
    (void)local;
    (void)prefix;
    (void)uri;
    (void)nns;
    (void)ns;
    (void)nattr;
    (void)ndefaulted;
    (void)attr;
    bench_on_start((bench_count *)ud);
}

static void bench_lx_end(void *ud, const xmlChar *local,
                         const xmlChar *prefix, const xmlChar *uri)
{
    (void)local;
    (void)prefix;
    (void)uri;
    bench_on_end((bench_count *)ud);
}

static void bench_lx_text(void *ud, const xmlChar *s, int len)
{
    (void)s;
    (void)len;
    ((bench_count *)ud)->text++;
}

static int bench_lx_pass(const char *p, size_t n, bench_count *c)
{
    xmlSAXHandler sax;
    xmlParserCtxtPtr ctx;
    size_t off, k;
    int rc = 0;

    memset(&sax, 0, sizeof sax);
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = bench_lx_start;
    sax.endElementNs = bench_lx_end;
    sax.characters = bench_lx_text;
    ctx = xmlCreatePushParserCtxt(&sax, c, NULL, 0, NULL);
    if (!ctx) {
        fprintf(stderr, "bench: libxml2: cannot create a parser\n");
        return -1;
    }
    for (off = 0; off < n; off += k) {
        k = bench_chunk(n, off);
        if (xmlParseChunk(ctx, p + off, (int)k, 0) != 0) {
            fprintf(stderr, "bench: libxml2: parse error near byte %lu\n",
                    (unsigned long)off);
            rc = -1;
            break;
        }
    }
    xmlFreeParserCtxt(ctx);
    return rc;
}
#endif /* HAVE_LIBXML2 */

/* ---- Driver --------------------------------------------------------- */

/* Times fn: one warm-up pass (which also fills r->c and sizes the runs),
** then BENCH_RUNS runs of enough passes to last BENCH_MIN_RUN seconds;
** the fastest run counts.  Returns 0, or -1 if any pass failed. */
static int bench_measure(const char *name, bench_pass_fn fn, const char *p,
                         size_t n, unsigned long stanzas, bench_result *r)
{
    bench_count scratch;
    double t0, t, best = 0;
    unsigned long reps, i;
    int run;

    memset(r, 0, sizeof *r);
    r->name = name;
    t0 = bench_now();
    if (fn(p, n, &r->c) != 0)
        return -1;
    t = bench_now() - t0;
    reps = t > 0 ? (unsigned long)(BENCH_MIN_RUN / t) + 1 : 1000;
    for (run = 0; run < BENCH_RUNS; run++) {
        t0 = bench_now();
        for (i = 0; i < reps; i++) {
            memset(&scratch, 0, sizeof scratch);
            if (fn(p, n, &scratch) != 0)
                return -1;
        }
        t = (bench_now() - t0) / (double)reps;
        if (run == 0 || t < best)
            best = t;
    }
    r->mb_s = (double)n / best / 1e6;
    r->stanzas_s = stanzas ? (double)stanzas / best : 0;
    return 0;
}

static void bench_row(const bench_result *r, const char *events)
{
    char ss[32];
    if (r->stanzas_s > 0)
        snprintf(ss, sizeof ss, "%.0f", r->stanzas_s);
    else
        snprintf(ss, sizeof ss, "-");
    printf("%-12s %10.1f %12s  %s\n", r->name, r->mb_s, ss, events);
}

/* Prints the counts of a parser row. */
static void bench_parser_row(const bench_result *r)
{
    char ev[96];
    snprintf(ev, sizeof ev, "%lu start, %lu end, %lu text", r->c.start,
             r->c.end, r->c.text);
    bench_row(r, ev);
}

#if defined(HAVE_EXPAT) || defined(HAVE_LIBXML2)
/* Warns when another parser disagrees with the tokenizer on what it
** saw: then one of them is wrong and the comparison is unfair. */
static void bench_agree(const bench_result *tok, const bench_result *r)
{
    if (r->c.start != tok->c.start || r->c.stanzas != tok->c.stanzas)
        printf("WARNING: %s saw %lu start elements (%lu stanzas), the "
               "tokenizer %lu (%lu)\n", r->name, r->c.start, r->c.stanzas,
               tok->c.start, tok->c.stanzas);
}
#endif

static int bench_main(int argc, char **argv)
{
    t_str in = {NULL, 0, 0};
    const char *path = getenv("BENCH_INPUT");
    bench_result tok, core, mc;
#ifdef HAVE_EXPAT
    bench_result ex;
#endif
#ifdef HAVE_LIBXML2
    bench_result lx;
#endif
    char ev[96];
    unsigned long stanzas;

    (void)argc;
    (void)argv;
    if (path && *path) {
        if (bench_read_file(path, &in) != 0)
            return 1;
    } else {
        bench_generate(&in);
    }
    if (in.n == 0) {
        fprintf(stderr, "bench: empty input\n");
        return 1;
    }
#ifdef HAVE_LIBXML2
    xmlInitParser();
#endif

    /* The tokenizer first: its pass also counts the stanzas. */
    if (bench_measure("tokenizer", bench_tok_pass, in.p, in.n, 0, &tok))
        return 1;
    stanzas = tok.c.stanzas;
    tok.stanzas_s = tok.mb_s * 1e6 / (double)in.n * (double)stanzas;
    printf("input: %s, %lu bytes (%.2f MiB), %lu stanzas "
           "(%.0f bytes each), fed in %u KiB chunks\n",
           path && *path ? path : "generated", (unsigned long)in.n,
           (double)in.n / 1048576.0, stanzas,
           stanzas ? (double)in.n / (double)stanzas : 0.0,
           BENCH_CHUNK / 1024);
    if (bench_measure("core", bench_core_pass, in.p, in.n, stanzas, &core)
        || bench_measure("strlen", bench_memchr_pass, in.p, in.n, 0, &mc))
        return 1;
#ifdef HAVE_EXPAT
    if (bench_measure("expat_ns", bench_expat_pass, in.p, in.n, stanzas,
                      &ex))
        return 1;
#endif
#ifdef HAVE_LIBXML2
    if (bench_measure("libxml2_sax", bench_lx_pass, in.p, in.n, stanzas,
                      &lx))
        return 1;
#endif

    printf("%-12s %10s %12s  %s\n", "name", "MB/s", "stanzas/s", "events");
    bench_parser_row(&tok);
    snprintf(ev, sizeof ev, "%lu reply bytes", core.c.bytes);
    bench_row(&core, ev);
    snprintf(ev, sizeof ev, "%lu '<' bytes (memchr)", mc.c.bytes);
    bench_row(&mc, ev);
#ifdef HAVE_EXPAT
    bench_parser_row(&ex);
    bench_agree(&tok, &ex);
#endif
#ifdef HAVE_LIBXML2
    bench_parser_row(&lx);
    bench_agree(&tok, &lx);
#endif
    if (core.c.bytes == 0)
        printf("WARNING: the core sent no replies\n");

    printf("tokenizer_mb_s=%.1f core_mb_s=%.1f core_stanzas_s=%.0f "
           "strlen_mb_s=%.1f", tok.mb_s, core.mb_s, core.stanzas_s, mc.mb_s);
#ifdef HAVE_EXPAT
    printf(" expat_ns_mb_s=%.1f", ex.mb_s);
#endif
#ifdef HAVE_LIBXML2
    printf(" libxml2_sax_mb_s=%.1f", lx.mb_s);
#endif
    printf("\n");
#ifdef HAVE_LIBXML2
    xmlCleanupParser();
#endif
    free(in.p);
    return 0;
}
#endif /* OLPCIDX_BENCH */

#ifdef OLPCIDX_FUZZ
/* ---- 8. fuzzing (make fuzz) ------------------------------------------ */

/*
** libFuzzer entry: the input is what a server sends, fed to a component
** in pieces whose sizes come from the input's first byte, under a small
** memory cap.  Whatever it is, the component must neither crash nor leak,
** and everything it queues must itself be well-formed for the tokenizer.
*/
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    t_core t;
    olpcidx_config c;
    size_t off = 1, step = size ? 1 + data[0] % 61 : 1;
    memset(&t, 0, sizeof t);
    t_core_config(&c, &t);
    c.log = NULL;
    c.max_stanza = 4096;
    c.mem_limit = 256 * 1024;
    if (olpcidx_new(&t.x, &c) != 0)
        abort();
    olpcidx_connect(t.x, 0);
    while (off < size) {
        size_t k = size - off < step ? size - off : step;
        if (olpcidx_feed(t.x, data + off, k) != 0)
            break;
        t_core_drain(&t);
        off += k;
    }
    t_core_drain(&t);
    olpcidx_free(t.x);
    free(t.out.p);
    if (t.alloc.live != 0 || t.alloc.bad_osize != 0)
        abort();
    return 0;
}
#define main t_main_unused
#endif /* OLPCIDX_FUZZ */

int main(int argc, char **argv)
{
    const char *dir = getenv("OLPCIDX_FIXTURES");
    int offline = getenv("OLPCIDX_TEST_OFFLINE") != NULL;
    setvbuf(stdout, NULL, _IONBF, 0);
#ifdef OLPCIDX_BENCH
    return bench_main(argc, argv);
#endif
    if (dir)
        t_fixdir = dir;
    if (argc > 1 && strcmp(argv[1], "demo") == 0)
        return t_demo(argc, argv);
    t_offline();
    printf("offline: %d passed, %d failed\n", t_passed, t_failed);
    if (!offline)
        t_interop();
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}
