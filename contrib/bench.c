/*
** contrib/bench.c -- the benchmark of `make bench`.  MIT licence, see
** LICENSE.
**
** Throughput of the XML tokenizer alone and of the whole component (feed,
** dispatch, reply), next to a memchr scan (the ceiling) and, when compiled
** in, expat with namespaces and libxml2's SAX2 push parser, all on the
** same bytes in 64 KiB feeds: the file $BENCH_INPUT, or about 8 MiB of
** generated component traffic (a live stream: the root is never closed).
** Each figure is the best of BENCH_RUNS runs of at least BENCH_MIN_RUN
** seconds.  MB is 10^6 bytes.  The last line is machine-readable.
**
** `olpcidx-bench tokenizer` measures the parsers only (tokenizer, memchr,
** expat, libxml2: a quick run).  `olpcidx-bench once` makes one tokenizer
** pass and nothing else, for an instruction count: `make bench-instr` runs
** it under callgrind, collecting only inside bench_tok_pass, and divides
** by the input's bytes (on this machine and for the XO-1's i586 Geode).
**
** Like test.c it includes olpcidx.c, for the tokenizer and the snapshot;
** its few helpers (a growable buffer, a storage in memory) are its own.
*/
#define _POSIX_C_SOURCE 200809L       /* clock_gettime */
#include "../olpcidx.c"

#include <time.h>

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

/* ---- Helpers -------------------------------------------------------- */

/* A growable byte buffer, NUL-terminated. */
typedef struct bench_buf {
    char *p;
    size_t n, cap;
} bench_buf;

static void bench_add(bench_buf *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->p = (char *)realloc(b->p, cap);
        if (!b->p) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void bench_addz(bench_buf *b, const char *z)
{
    bench_add(b, z, strlen(z));
}

/* A storage in memory (olpcidx_storage): the journal and the latest
** snapshot, for the start-up measurement. */
typedef struct bench_store {
    bench_buf journal;
    bench_buf snap;
} bench_store;

static int bench_st_append(void *ud, const void *p, size_t n)
{
    bench_add(&((bench_store *)ud)->journal, p, n);
    return 0;
}

static int bench_st_sync(void *ud)
{
    (void)ud;
    return 0;
}

static int bench_st_snapshot(void *ud, const void *p, size_t n)
{
    bench_store *s = (bench_store *)ud;
    s->snap.n = 0;
    bench_add(&s->snap, p, n);
    s->journal.n = 0;
    return 0;
}

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
static int bench_read_file(const char *path, bench_buf *b)
{
    FILE *f = fopen(path, "rb");
    char buf[4096];
    size_t k;
    if (!f) {
        fprintf(stderr, "bench: cannot read %s\n", path);
        return -1;
    }
    bench_add(b, "", 0);
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        bench_add(b, buf, k);
    fclose(f);
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
static void bench_stanza(bench_buf *b, uint32_t *s, unsigned long id)
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
        /* drawn in a fixed order (that of gcc's arguments before): the
        ** order in which arguments are evaluated is unspecified, and the
        ** stream must be the same whatever compiled this */
        unsigned key = (unsigned)bench_rand(s);
        unsigned c2 = (unsigned)(bench_rand(s) & 0xFFFFFF);
        unsigned c1 = (unsigned)(bench_rand(s) & 0xFFFFFF);
        const char *nick = BENCH_PICK(s, bench_nicks);
        const char *body = BENCH_PICK(s, bench_bodies);
        snprintf(t, sizeof t, "<message type='normal' id='m%lu' %s><body>"
                 "%s</body><properties xmlns="
                 "'http://laptop.org/xmpp/buddy-properties'><property "
                 "type='str' name='nick'>%s</property><property "
                 "type='str' name='color'>#%06X,#%06X</property><property "
                 "type='bytes' name='key'>AAAAB3NzaC1kc3MAAACBAN%08X"
                 "</property></properties></message>", id, from, body, nick,
                 c1, c2, key);
    } else if (r < 95) {                /* presence with caps */
        unsigned ver = (unsigned)(bench_rand(s) & 0xFFFF);
        const char *status = BENCH_PICK(s, bench_status);
        snprintf(t, sizeof t, "<presence %s xml:lang='es'><show>chat"
                 "</show><status>%s</status><priority>0</priority><c "
                 "xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                 "node='http://sugarlabs.org/xmpp' ver='QgayPKawpkPSDYmw"
                 "T/WM94u%04X='/></presence>", from, status, ver);
    } else if (r < 98) {
        snprintf(t, sizeof t, "<presence type='unavailable' %s/>", from);
    } else {                            /* the server's ping */
        snprintf(t, sizeof t, "<iq type='get' id='s2c%lu' from='jabber.test'"
                 " to='" BENCH_JID "'><ping xmlns='urn:xmpp:ping'/></iq>",
                 id);
    }
    bench_addz(b, t);
    if (bench_rand(s) % 64 == 0)        /* whitespace keepalive */
        bench_addz(b, "\n");
}

static void bench_generate(bench_buf *b)
{
    uint32_t seed = 0x2545F491u;
    unsigned long id = 1;
    bench_addz(b, "<?xml version='1.0'?><stream:stream "
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
static int bench_went_online;

static void bench_log(void *ud, int level, const char *msg)
{
    (void)ud;
    if (strncmp(msg, "online as ", 10) == 0)
        bench_went_online = 1;
    else if (level <= OLPCIDX_LOG_WARN)
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
/* The component JID a captured stream was sent to: the `from` of the
** server's stream header (a stream as a server sends it to a component),
** else BENCH_JID.  Written into jid (NUL-ended). */
static void bench_stream_jid(const char *p, size_t n, char *jid, size_t cap)
{
    const char *h = NULL, *f, *q, *end = p + n;
    size_t i;
    snprintf(jid, cap, "%s", BENCH_JID);
    for (i = 0; i + 14 < n && i < 4096 && !h; i++)
        if (memcmp(p + i, "<stream:stream", 14) == 0)
            h = p + i;
    if (!h || !(q = memchr(h, '>', (size_t)(end - h))))
        return;
    for (f = h; f + 7 < q; f++)
        if ((f[0] == ' ' || f[0] == '\n' || f[0] == '\t')
            && memcmp(f + 1, "from=", 5) == 0 && (f[6] == '\'' || f[6] == '"')) {
            const char *v = f + 7, *e = memchr(v, f[6], (size_t)(q - v));
            if (e && (size_t)(e - v) < cap) {
                memcpy(jid, v, (size_t)(e - v));
                jid[e - v] = '\0';
            }
            return;
        }
}

static int bench_core_pass(const char *p, size_t n, bench_count *c)
{
    olpcidx_config cfg;
    olpcidx *x;
    size_t off, k;
    int rc;
    char jid[1024];

    bench_stream_jid(p, n, jid, sizeof jid);
    olpcidx_config_init(&cfg);
    cfg.jid = jid;
    cfg.secret = "secret";
    cfg.log = bench_log;                /* a few lines: off the hot path */
    cfg.log_level = OLPCIDX_LOG_INFO;
    bench_went_online = 0;
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
        while (rc == 0 && !olpcidx_wants_input(x)) {
            rc = olpcidx_feed(x, NULL, 0);      /* what was held back */
            bench_drain(x, c);
        }
    }
    if (rc == OLPCIDX_ECLOSED && off >= n)
        rc = 0;                         /* a capture ends with the stream */
    if (rc == 0 && !bench_went_online) {
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

/*
** Start-up from storage: an index of 100 000 buddies with properties and
** 50 000 activities of two participants each is built through the
** component (announcements as laptops send them, journaled in memory),
** written as a snapshot, and restored into a fresh component (best of
** three).  Also reports the journal's bytes per announcement.
*/
static int bench_restore(double *ms, double *per_ann)
{
    bench_store st;
    olpcidx_storage s;
    olpcidx_config c;
    olpcidx *x;
    char buf[512];
    size_t i, ok, nann = 0;
    double best = 1e9;
    int run, rc = 0;
    const void *p;
    memset(&st, 0, sizeof st);
    memset(&s, 0, sizeof s);
    s.append = bench_st_append;
    s.sync = bench_st_sync;
    s.snapshot = bench_st_snapshot;
    s.ud = &st;
    olpcidx_config_init(&c);
    c.jid = BENCH_JID;
    c.secret = "secret";
    c.storage = &s;
    c.rate_burst = 1000000;
    if (olpcidx_new(&x, &c) != 0 || olpcidx_connect(x, 0) != 0)
        return -1;
    snprintf(buf, sizeof buf, "<stream:stream xmlns:stream='" OI_NS_STREAM
             "' xmlns='" OI_NS_ACCEPT "' id='1'><handshake/>");
    rc |= olpcidx_feed(x, buf, strlen(buf));
    for (i = 0; i < 100000 && rc == 0; i++) {
        snprintf(buf, sizeof buf, "<message from='u%lu@jabber.test/xo' to='"
                 BENCH_JID "'><properties xmlns='" OI_NS_BPROPS "'><property "
                 "type='str' name='nick'>Kid %lu</property><property "
                 "type='str' name='color'>#005FE4,#00A0FF</property>"
                 "</properties>"
                 "</message>", (unsigned long)i, (unsigned long)i);
        rc |= olpcidx_feed(x, buf, strlen(buf));
        nann++;
        if (i % 2 == 0) {
            snprintf(buf, sizeof buf, "<message from='u%lu@jabber.test/xo' "
                     "to='" BENCH_JID "'><properties xmlns='" OI_NS_APROPS
                     "' activity='act%lu' room='act%lu@conference.jabber."
                     "test'><property type='str' name='type'>org.laptop."
                     "Paint</property></properties></message>",
                     (unsigned long)i, (unsigned long)i, (unsigned long)i);
            rc |= olpcidx_feed(x, buf, strlen(buf));
            nann++;
        } else {
            snprintf(buf, sizeof buf, "<message from='u%lu@jabber.test/xo' "
                     "to='" BENCH_JID "'><activity xmlns='" OI_NS_ACT
                     "' id='act%lu'><joined/></activity></message>",
                     (unsigned long)i, (unsigned long)(i - 1));
            rc |= olpcidx_feed(x, buf, strlen(buf));
            nann++;
        }
        while (olpcidx_pending(x, &p) > 0)
            olpcidx_sent(x, olpcidx_pending(x, &p));
    }
    *per_ann = (double)st.journal.n / (double)nann;
    if (rc != 0 || x->buddies.n != 100000 || x->acts.n != 50000
        || oi_snapshot(x) != 0) {
        fprintf(stderr, "bench: building the index failed (%d)\n", rc);
        return -1;
    }
    olpcidx_free(x);
    for (run = 0; run < 3; run++) {
        double t0;
        c.storage = NULL;
        if (olpcidx_new(&x, &c) != 0)
            return -1;
        t0 = bench_now();
        rc = olpcidx_restore(x, st.snap.p, st.snap.n, NULL, 0, &ok);
        t0 = bench_now() - t0;
        if (rc != 0 || x->buddies.n != 100000 || x->acts.n != 50000) {
            fprintf(stderr, "bench: restore failed (%d)\n", rc);
            return -1;
        }
        olpcidx_free(x);
        if (t0 < best)
            best = t0;
    }
    *ms = best * 1000;
    printf("restore: %lu-byte snapshot of 100000 buddies and 50000 "
           "activities in %.0f ms; journal %.0f bytes per announcement\n",
           (unsigned long)st.snap.n, *ms, *per_ann);
    free(st.snap.p);
    free(st.journal.p);
    return 0;
}

/*
** The index at school-server scale (as the scaling figures are stated):
** 100 000 buddies (nick, colour, ip4-address, a base64 key in one in
** three) and 50 000 activities (20 types in a Zipf mix, 1 to 6
** participants), built through the component as laptops announce them.
** Each figure is measured through olpcidx_feed on that index, one stanza
** at a time: median and 99th percentile in microseconds.
*/
#define SCALE_BUDDIES 100000
#define SCALE_ACTS    50000
#define SCALE_TYPES   20
#define SCALE_COLOURS 180               /* about 555 buddies a colour */

typedef struct scale {
    olpcidx *x;
    char buf[4096];
    unsigned long n;                    /* stanzas fed */
    uint64_t now;                       /* the clock given to the handle */
} scale;

static void scale_drain(olpcidx *x)
{
    const void *p;
    size_t n;
    while ((n = olpcidx_pending(x, &p)) > 0) {
        bench_sink += ((const unsigned char *)p)[n - 1];
        olpcidx_sent(x, n);
    }
}

/* Feeds s->buf and returns how long it took, in microseconds. */
static double scale_feed(scale *s)
{
    double t0 = bench_now(), t;
    if (olpcidx_feed(s->x, s->buf, strlen(s->buf)) != 0) {
        fprintf(stderr, "bench: the component refused %.80s\n", s->buf);
        exit(1);
    }
    scale_drain(s->x);
    t = bench_now() - t0;
    s->n++;
    return t * 1e6;
}

static int scale_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median and 99th percentile of n samples (sorted here). */
static void scale_stats(double *v, size_t n, double *med, double *p99)
{
    qsort(v, n, sizeof *v, scale_cmp);
    *med = v[n / 2];
    *p99 = v[n * 99 / 100];
}

/* A type by a Zipf law over SCALE_TYPES: type k with weight 1/(k+1). */
static unsigned scale_type(uint32_t *r)
{
    static double cum[SCALE_TYPES];
    double u;
    unsigned k;
    if (cum[0] == 0) {
        double t = 0;
        for (k = 0; k < SCALE_TYPES; k++)
            cum[k] = (t += 1.0 / (k + 1));
    }
    u = (double)(bench_rand(r) % 1000000) / 1e6 * cum[SCALE_TYPES - 1];
    for (k = 0; k < SCALE_TYPES - 1 && u > cum[k]; k++)
        ;
    return k;
}

#define SCALE_FROM(i) "from='u%lu@jabber.test/xo' to='" BENCH_JID "'"

/* Bytes the handle holds for the clients it knows (PROTOCOL.md 5.4):
** their structs, full JIDs and map slots. */
static size_t scale_client_bytes(const olpcidx *x)
{
    size_t i = 0, n = x->clients.cap * OI_MAP_SLOT;
    const void *p;
    while ((p = oi_map_next(&x->clients, &i)) != NULL)
        n += sizeof(oi_client) + ((const oi_client *)p)->jid.n;
    return n;
}

/* Two seconds pass: the rate buckets of the clients that announced are
** full again and the liveness sweep forgets those clients (PROTOCOL.md
** 5.4), as on a server where laptops announced and then kept quiet. */
static void scale_idle(scale *s)
{
    int wait;
    s->now += 2000;
    olpcidx_tick(s->x, s->now, &wait);
    scale_drain(s->x);
}

static void scale_build(scale *s, size_t *bprop, size_t *aprop,
                        size_t *mem_b, size_t *mem_a, size_t *cl_b)
{
    uint32_t r = 12345;
    size_t i, used0, cl0;
    unsigned long j;
    used0 = s->x->mem.used;
    cl0 = scale_client_bytes(s->x);
    for (i = 0; i < SCALE_BUDDIES; i++) {
        char key[128] = "";
        unsigned c = bench_rand(&r) % SCALE_COLOURS;
        if (i % 3 == 0)
            snprintf(key, sizeof key, "<property type='bytes' name='key'>"
                     "AAAAB3NzaC1kc3MAAACBAN%08lXAA</property>",
                     (unsigned long)bench_rand(&r));
        snprintf(s->buf, sizeof s->buf, "<message " SCALE_FROM(i) "><"
                 "properties xmlns='" OI_NS_BPROPS "'><property type='str' "
                 "name='nick'>Kid %lu</property><property type='str' "
                 "name='color'>#%06X,#00A0FF</property><property type='str' "
                 "name='ip4-address'>10.%u.%u.%u</property>%s</properties>"
                 "</message>", (unsigned long)i, (unsigned long)i, c * 977,
                 (unsigned)(i >> 16) & 255, (unsigned)(i >> 8) & 255,
                 (unsigned)i & 255, key);
        scale_feed(s);
    }
    *cl_b = scale_client_bytes(s->x) - cl0;
    scale_idle(s);
    *mem_b = s->x->mem.used - used0;
    *bprop = 0;
    for (i = 0; i < SCALE_BUDDIES; i++) {
        const oi_buddy *b;
        snprintf(s->buf, sizeof s->buf, "u%lu@jabber.test", (unsigned long)i);
        b = (const oi_buddy *)oi_map_get(&s->x->buddies, oi_zstr(s->buf));
        for (j = 0; b && j < b->it.nprops; j++)
            *bprop += oi_post_prop(b->it.props[j]).name.n
                + oi_post_prop(b->it.props[j]).value.n;
    }
    used0 = s->x->mem.used;
    for (i = 0; i < SCALE_ACTS; i++) {
        unsigned long creator = (unsigned long)(bench_rand(&r)
                                                % SCALE_BUDDIES);
        unsigned parts = 1 + bench_rand(&r) % 6, k;
        snprintf(s->buf, sizeof s->buf, "<message " SCALE_FROM(creator)
                 "><properties xmlns='" OI_NS_APROPS "' activity='act%06lu' "
                 "room='act%06lu@conference.jabber.test'><property type='str' "
                 "name='type'>org.laptop.Type%02u</property><property "
                 "type='str' name='title'>Activity %lu</property><property "
                 "type='bool' name='private'>0</property></properties>"
                 "</message>", creator, (unsigned long)i, (unsigned long)i,
                 scale_type(&r), (unsigned long)i);
        scale_feed(s);
        for (k = 1; k < parts; k++) {
            unsigned long who = (unsigned long)(bench_rand(&r)
                                                % SCALE_BUDDIES);
            snprintf(s->buf, sizeof s->buf, "<message " SCALE_FROM(who)
                     "><activity xmlns='" OI_NS_ACT "' id='act%06lu'><joined"
                     "/></activity></message>", who, (unsigned long)i);
            scale_feed(s);
        }
    }
    scale_idle(s);
    *mem_a = s->x->mem.used - used0;
    *aprop = 0;
    for (i = 0; i < SCALE_ACTS; i++) {
        const oi_act *a;
        snprintf(s->buf, sizeof s->buf, "act%06lu", (unsigned long)i);
        a = (const oi_act *)oi_map_get(&s->x->acts, oi_zstr(s->buf));
        for (j = 0; a && j < a->it.nprops; j++)
            *aprop += oi_post_prop(a->it.props[j]).name.n
                + oi_post_prop(a->it.props[j]).value.n;
    }
}

static int bench_scale(double *out)
{
    static double v[2000];
    scale s;
    olpcidx_config c;
    uint32_t r = 777;
    size_t i, k, bprop, aprop, mem_b, mem_a, cl_b;
    double t0, med, p99, first, after;
    char tmp[256];
    olpcidx_config_init(&c);
    c.jid = BENCH_JID;
    c.secret = "secret";
    c.rate_burst = 1000000;
    c.rate_per_sec = 1000000;
    memset(&s, 0, sizeof s);
    if (olpcidx_new(&s.x, &c) != 0 || olpcidx_connect(s.x, 0) != 0)
        return -1;
    snprintf(s.buf, sizeof s.buf, "<stream:stream xmlns:stream='"
             OI_NS_STREAM "' xmlns='" OI_NS_ACCEPT "' id='1'><handshake/>");
    scale_feed(&s);
    t0 = bench_now();
    scale_build(&s, &bprop, &aprop, &mem_b, &mem_a, &cl_b);
    printf("scale: %lu buddies, %lu activities built in %.1f s from %lu "
           "stanzas\n", (unsigned long)s.x->buddies.n,
           (unsigned long)s.x->acts.n, bench_now() - t0, s.n);
    out[0] = (double)(mem_b - bprop) / SCALE_BUDDIES;
    out[1] = (double)(mem_a - aprop) / SCALE_ACTS;
    printf("scale: %.0f bytes per buddy and %.0f per activity beyond their "
           "property bytes (members and posting lists included)\n", out[0],
           out[1]);
    printf("scale: a client entry (the full JID that announced, its rate "
           "bucket, PROTOCOL.md 5.4) takes %.0f bytes while the client is "
           "active; those above were measured once the clients that only "
           "announced were forgotten, 2 s later\n",
           (double)cl_b / SCALE_BUDDIES);

    /* 20-item activity pages by type, some after a UID */
    for (i = 0; i < 400; i++) {
        unsigned t = (unsigned)(i % SCALE_TYPES);
        if (i % 2)
            snprintf(tmp, sizeof tmp, "<after>act%06lu</after>",
                     (unsigned long)(bench_rand(&r) % SCALE_ACTS));
        else
            tmp[0] = '\0';
        snprintf(s.buf, sizeof s.buf, "<iq type='get' id='q' "
                 SCALE_FROM(1) "><query xmlns='" OI_NS_ACT "'><activity>"
                 "<properties xmlns='" OI_NS_APROPS "'><property type='str' "
                 "name='type'>org.laptop.Type%02u</property></properties>"
                 "</activity><set xmlns='" OI_NS_RSM "'><max>20</max>%s</set>"
                 "</query></iq>", 1ul, t, tmp);
        v[i] = scale_feed(&s);
    }
    scale_stats(v, 400, &out[2], &out[3]);
    for (i = 0; i < 50; i++) {          /* the commonest type alone */
        snprintf(s.buf, sizeof s.buf, "<iq type='get' id='q' "
                 SCALE_FROM(1) "><query xmlns='" OI_NS_ACT "'><activity>"
                 "<properties xmlns='" OI_NS_APROPS "'><property type='str' "
                 "name='type'>org.laptop.Type00</property></properties>"
                 "</activity><set xmlns='" OI_NS_RSM "'><max>20</max></set>"
                 "</query></iq>", 1ul);
        v[i] = scale_feed(&s);
    }
    scale_stats(v, 50, &out[4], &p99);
    for (i = 0; i < 200; i++) {         /* buddies by colour */
        snprintf(s.buf, sizeof s.buf, "<iq type='get' id='q' "
                 SCALE_FROM(1) "><query xmlns='" OI_NS_BUDDY "'><buddy>"
                 "<properties xmlns='" OI_NS_BPROPS "'><property type='str' "
                 "name='color'>#%06X,#00A0FF</property></properties>"
                 "</buddy></query></iq>", 1ul,
                 (unsigned)(bench_rand(&r) % SCALE_COLOURS) * 977);
        v[i] = scale_feed(&s);
    }
    scale_stats(v, 200, &out[5], &p99);
    for (i = 0; i < 200; i++) {         /* activities by participant */
        snprintf(s.buf, sizeof s.buf, "<iq type='get' id='q' "
                 SCALE_FROM(1) "><query xmlns='" OI_NS_ACT "'><activity>"
                 "<buddy jid='u%lu@jabber.test'/></activity></query></iq>",
                 1ul, (unsigned long)(bench_rand(&r) % SCALE_BUDDIES));
        v[i] = scale_feed(&s);
    }
    scale_stats(v, 200, &out[6], &p99);
    for (i = 0; i < 40; i++) {          /* buddies by alias */
        snprintf(s.buf, sizeof s.buf, "<iq type='get' id='q' "
                 SCALE_FROM(1) "><query xmlns='" OI_NS_BUDDY "'><buddy "
                 "alias='id %lu'/></query></iq>", 1ul,
                 (unsigned long)(bench_rand(&r) % SCALE_BUDDIES));
        v[i] = scale_feed(&s);
    }
    scale_stats(v, 40, &out[7], &p99);
    for (i = 0; i < 1000; i++) {        /* unavailable from strangers */
        snprintf(s.buf, sizeof s.buf, "<presence type='unavailable' "
                 "from='stranger%lu@jabber.test/xo' to='" BENCH_JID "'/>",
                 (unsigned long)i);
        v[i] = scale_feed(&s);
    }
    scale_stats(v, 1000, &out[8], &p99);
    /* one activity change watched by 1 000 clients */
    for (i = 0; i < 1000; i++) {
        snprintf(s.buf, sizeof s.buf, "<iq type='get' id='w' from='watcher%lu"
                 "@jabber.test/xo' to='" BENCH_JID "'><query xmlns='"
                 OI_NS_ACT "'><activity id='act000007'/></query></iq>",
                 (unsigned long)i);
        scale_feed(&s);
    }
    {
        const oi_act *a = (const oi_act *)oi_map_get(&s.x->acts,
                                                     OI_LIT("act000007"));
        const oi_buddy *b = a ? (const oi_buddy *)OI_SV(&a->parts)[0] : NULL;
        if (!b) {
            fprintf(stderr, "bench: act000007 has no participant\n");
            return -1;
        }
        for (k = 0; k < 2; k++) {
            snprintf(s.buf, sizeof s.buf, "<message from='%.*s/xo' to='"
                     BENCH_JID "'><properties xmlns='" OI_NS_APROPS "' "
                     "activity='act000007'><property type='str' name='type'>"
                     "org.laptop.Type00</property><property type='str' "
                     "name='title'>Round %lu</property><property "
                     "type='bool' name='private'>0</property></properties>"
                     "</message>", (int)b->it.nuid, oi_uid(&b->it).p,
                     (unsigned long)k);
            if (k == 0)
                first = scale_feed(&s) / 1000;
            else
                after = scale_feed(&s) / 1000;
        }
    }
    out[9] = first;
    out[10] = after;
    /* a mixed stream: queries, announcements, joins, presence */
    t0 = bench_now();
    for (i = 0; i < 20000; i++) {
        unsigned long u = (unsigned long)(bench_rand(&r) % SCALE_BUDDIES);
        switch (i % 5) {
        case 0:
            snprintf(s.buf, sizeof s.buf, "<iq type='get' id='m' "
                     SCALE_FROM(u) "><query xmlns='" OI_NS_ACT "'><activity>"
                     "<properties xmlns='" OI_NS_APROPS "'><property "
                     "type='str' name='type'>org.laptop.Type%02u</property>"
                     "</properties></activity><set xmlns='" OI_NS_RSM
                     "'><max>20</max></set></query></iq>", u,
                     scale_type(&r));
            break;
        case 1:
            snprintf(s.buf, sizeof s.buf, "<message " SCALE_FROM(u) "><"
                     "properties xmlns='" OI_NS_BPROPS "'><property "
                     "type='str' name='nick'>Kid %lu</property><property "
                     "type='str' name='color'>#%06X,#00A0FF</property>"
                     "</properties></message>", u, u,
                     (unsigned)(bench_rand(&r) % SCALE_COLOURS) * 977);
            break;
        case 2:
            snprintf(s.buf, sizeof s.buf, "<message " SCALE_FROM(u) "><"
                     "activity xmlns='" OI_NS_ACT "' id='act%06lu'><joined/>"
                     "</activity></message>", u,
                     (unsigned long)(bench_rand(&r) % SCALE_ACTS));
            break;
        case 3:
            snprintf(s.buf, sizeof s.buf, "<presence " SCALE_FROM(u) "/>",
                     u);
            break;
        default:
            snprintf(s.buf, sizeof s.buf, "<iq type='get' id='m' "
                     SCALE_FROM(u) "><query xmlns='" OI_NS_BUDDY "'><buddy "
                     "jid='u%lu@jabber.test'/></query></iq>", u,
                     (unsigned long)(bench_rand(&r) % SCALE_BUDDIES));
        }
        scale_feed(&s);
    }
    out[11] = 20000 / (bench_now() - t0);
    med = p99 = 0;
    printf("scale: activity page by type median %.0f us p99 %.0f us "
           "(commonest type %.0f us); buddies by colour %.0f us; activities "
           "by participant %.0f us; buddies by alias %.0f us; unavailable "
           "from an unknown JID %.1f us\n", out[2], out[3], out[4], out[5],
           out[6], out[7], out[8]);
    printf("scale: one activity change watched by 1000 clients: %.2f ms "
           "first, %.2f ms after; mixed stream %.0f stanzas/s\n", out[9],
           out[10], out[11]);
    (void)med;
    olpcidx_free(s.x);
    return 0;
}

int main(int argc, char **argv)
{
    bench_buf in = {NULL, 0, 0};
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
    double restore_ms, per_ann, sc[12];

    const char *mode = argc > 1 ? argv[1] : "";
    bench_pass_fn once = bench_tok_pass;  /* called through a pointer, so
                                          ** that callgrind sees the pass */

    if (*mode && strcmp(mode, "tokenizer") != 0 && strcmp(mode, "once") != 0) {
        fprintf(stderr, "usage: olpcidx-bench [tokenizer | once]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
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
    if (strcmp(mode, "once") == 0) {
        memset(&tok, 0, sizeof tok);
        if (once(in.p, in.n, &tok.c) != 0)
            return 1;
        printf("once: %lu bytes, %lu start, %lu end, %lu text\n",
               (unsigned long)in.n, tok.c.start, tok.c.end, tok.c.text);
        free(in.p);
        return 0;
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
    memset(&core, 0, sizeof core);
    if ((!*mode && bench_measure("core", bench_core_pass, in.p, in.n,
                                 stanzas, &core))
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
    if (!*mode) {
        snprintf(ev, sizeof ev, "%lu reply bytes", core.c.bytes);
        bench_row(&core, ev);
    }
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
    if (*mode) {                        /* the parsers only */
        printf("tokenizer_mb_s=%.1f strlen_mb_s=%.1f", tok.mb_s, mc.mb_s);
#ifdef HAVE_EXPAT
        printf(" expat_ns_mb_s=%.1f", ex.mb_s);
#endif
#ifdef HAVE_LIBXML2
        printf(" libxml2_sax_mb_s=%.1f", lx.mb_s);
        xmlCleanupParser();
#endif
        printf("\n");
        free(in.p);
        return 0;
    }
    if (core.c.bytes == 0)
        printf("WARNING: the core sent no replies\n");
    if (bench_restore(&restore_ms, &per_ann) != 0)
        return 1;
    if (bench_scale(sc) != 0)
        return 1;

    printf("tokenizer_mb_s=%.1f core_mb_s=%.1f core_stanzas_s=%.0f "
           "strlen_mb_s=%.1f", tok.mb_s, core.mb_s, core.stanzas_s, mc.mb_s);
#ifdef HAVE_EXPAT
    printf(" expat_ns_mb_s=%.1f", ex.mb_s);
#endif
#ifdef HAVE_LIBXML2
    printf(" libxml2_sax_mb_s=%.1f", lx.mb_s);
#endif
    printf(" restore_100k_ms=%.0f journal_bytes_per_announcement=%.0f",
           restore_ms, per_ann);
    printf(" bytes_per_buddy=%.0f bytes_per_activity=%.0f act_page_us=%.1f "
           "act_page_p99_us=%.1f act_page_common_us=%.1f buddy_colour_us=%.1f "
           "act_participant_us=%.1f buddy_alias_us=%.1f "
           "unknown_unavail_us=%.2f "
           "fanout_1000_first_ms=%.2f fanout_1000_after_ms=%.2f "
           "mixed_stanzas_s=%.0f\n", sc[0], sc[1], sc[2], sc[3], sc[4],
           sc[5], sc[6], sc[7], sc[8], sc[9], sc[10], sc[11]);
#ifdef HAVE_LIBXML2
    xmlCleanupParser();
#endif
    free(in.p);
    return 0;
}
