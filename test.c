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

static void t_offline(void)
{
    t_sha1();
    t_fixtures("xml-", t_tok_run);
    t_fixtures("core-", t_core_run);
    t_serializer();
    t_timers();
    t_api();
    t_backpressure();
}

static void t_interop(void) {}
static int t_demo(int argc, char **argv) { (void)argc; (void)argv; return 1; }

int main(int argc, char **argv)
{
    const char *dir = getenv("OLPCIDX_FIXTURES");
    int offline = getenv("OLPCIDX_TEST_OFFLINE") != NULL;
    setvbuf(stdout, NULL, _IONBF, 0);
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
