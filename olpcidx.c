/*
** olpcidx.c -- the activity and buddy index for OLPC XO laptops.
**
** Copyright (c) 2026 the olpcidx authors.  MIT licence, see LICENSE.
**
** olpcidx is an XMPP server component (XEP-0114).  Laptops running Sugar
** tell it what they share and ask it which activities and buddies exist;
** it answers with paged result sets (XEP-0059) and tells them when what
** they looked at changes.  What they announced is journaled through an
** embedder-supplied storage, so that it survives crashes.  This file is
** the whole program: the library (sections 1 to 17) and, when compiled
** with -DOLPCIDX_MAIN, the daemon around it (section 18).
**
** "PROTOCOL.md N" below is section N of contrib/PROTOCOL.md, the
** protocol as olpcidx speaks it.
**
** Invariants the library keeps:
**   - no I/O and no clock: bytes in (olpcidx_feed), bytes out
**     (olpcidx_pending/olpcidx_sent), time in (olpcidx_tick);
**   - every allocation goes through the configured allocator and is
**     counted against the memory cap; a failed allocation leaves every
**     structure as it was;
**   - the XML tokenizer is resumable after any byte;
**   - every limit is configurable (OLPCIDX_LIMITS) and enforced where its
**     counter grows;
**   - a stream-level failure ends the stream with a sticky code; the
**     handle itself stays valid and keeps its state for the next stream.
**
** How a stanza travels: the tokenizer (6) turns bytes into events, the
** stream (12) assembles them into a tree (7) and hands each stanza to
** the dispatcher (16), which finds its route in the tables of the Gadget
** dialect (15), of the handlers common to both dialects (13) and of the
** seed dialect (14).  A handler parses, then calls a change (11); a
** change updates the index (8), journals it (10) and raises an event
** (9), which each watcher -- a seed result set, a Gadget view -- renders
** in its own dialect.
**
** Sections, each using only what is above it:
**   1. Configuration and includes        10. Persistence: journal, snapshot
**   2. Small utilities, UTF-8, JIDs,     11. Changes: what intake may do
**      folding                           12. Stream and XEP-0114 handshake
**   3. SHA-1                             13. Handlers common to both
**   4. Memory: cap, buffers, vectors,        dialects: routes, errors,
**      arena                                 disco, access, liveness,
**   5. Hashing, maps, property values        admin commands (XEP-0050)
**                                        14. The seed dialect
**   6. XML tokenizer                     15. The Gadget dialect
**   7. Stanzas: the handle, tree,        16. Dispatch: stanzas to routes
**      errors, output                    17. Public API
**   8. The index: buddies, activities,   18. Daemon (OLPCIDX_MAIN)
**      sorted lists, aliases, watchers
**   9. Watchers and events
**
** Compile-time options:
**   OLPCIDX_MAIN      also compile the daemon and main()
**   OLPCIDX_TLS       with OLPCIDX_MAIN: the daemon can connect with TLS
**                     (mbed TLS 2.28 or 3.x; make WITH_MBEDTLS=1)
**   OLPCIDX_DEBUG     OI_NEVER() conditions abort instead of recovering
*/

/* ==== 1. Configuration and includes ================================== */

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L /* daemon: getaddrinfo, poll, sigaction */
#endif

#include "olpcidx.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>             /* offsetof */
#include <stdio.h>              /* vsnprintf, for log lines only */
#include <stdlib.h>             /* realloc, free: the default allocator */
#include <string.h>
#ifdef OLPCIDX_DEBUG
#include <assert.h>
#endif

/* The default of each limit as OI_DEF_<field> (OLPCIDX_LIMITS). */
enum {
#define OI_DEF_(field, opt, def, lo, hi, unit, help) OI_DEF_##field = (def),
    OLPCIDX_LIMITS(OI_DEF_)
#undef OI_DEF_
    OI_DEF_END_
};

/* Timers of PROTOCOL.md 1.4 and 5.2, in milliseconds. */
#define OI_KEEPALIVE_MS     60000u  /* whitespace after outbound silence */
#define OI_READ_TIMEOUT_MS  (3 * OI_KEEPALIVE_MS)
#define OI_HANDSHAKE_MS     30000u  /* stream open to <handshake/> */
#define OI_PING_TIMEOUT_MS  30000u  /* idle participant's ping */
#define OI_JOIN_TIMEOUT_MS  30000u  /* a room's answer to the component */
#define OI_CMD_IDLE_MS      600000u /* an unfinished ad-hoc command session */

/* Namespaces (PROTOCOL.md appendix A). */
#define OI_NS_ACCEPT  "jabber:component:accept"
#define OI_NS_STREAM  "http://etherx.jabber.org/streams"
#define OI_NS_XSTREAM "urn:ietf:params:xml:ns:xmpp-streams"
#define OI_NS_XSTANZA "urn:ietf:params:xml:ns:xmpp-stanzas"
#define OI_NS_XML     "http://www.w3.org/XML/1998/namespace"
#define OI_NS_XMLNS   "http://www.w3.org/2000/xmlns/"
#define OI_NS_DINFO   "http://jabber.org/protocol/disco#info"
#define OI_NS_DITEMS  "http://jabber.org/protocol/disco#items"
#define OI_NS_VERSION "jabber:iq:version"
#define OI_NS_PING    "urn:xmpp:ping"
#define OI_NS_RSM     "http://jabber.org/protocol/rsm"
#define OI_NS_AMP     "http://jabber.org/protocol/amp"
#define OI_NS_BUDDY   "http://laptop.org/xmpp/buddy"
#define OI_NS_ACT     "http://laptop.org/xmpp/activity"
#define OI_NS_BPROPS  "http://laptop.org/xmpp/buddy-properties"
#define OI_NS_APROPS  "http://laptop.org/xmpp/activity-properties"
#define OI_NS_CURACT  "http://laptop.org/xmpp/current-activity"
#define OI_NS_ACTS    "http://laptop.org/xmpp/activities"
#define OI_NS_NICK    "http://jabber.org/protocol/nick"
#define OI_NS_CAPS    "http://jabber.org/protocol/caps"
#define OI_NS_PUBSUB  "http://jabber.org/protocol/pubsub"
#define OI_NS_PSEVENT "http://jabber.org/protocol/pubsub#event"
#define OI_NS_PSERROR "http://jabber.org/protocol/pubsub#errors"
#define OI_NS_MUC     "http://jabber.org/protocol/muc"
#define OI_NS_MUCUSER "http://jabber.org/protocol/muc#user"
#define OI_NS_COMMANDS "http://jabber.org/protocol/commands"
#define OI_NS_XDATA   "jabber:x:data"
#define OI_CAPS_NODE  "http://laptop.org/xmpp/gadget"   /* XEP-0115 node */

/* "Cannot happen, but do not take the daemon down if it does" (SQLite's
** NEVER): in release builds the condition is still tested and the caller
** recovers; built with OLPCIDX_DEBUG, a true condition aborts. */
#ifdef OLPCIDX_DEBUG
#define OI_NEVER(c) ((c) ? (assert(!#c), 1) : 0)
#else
#define OI_NEVER(c) (c)
#endif

/* ==== 2. Small utilities, UTF-8, JIDs, folding ======================= */

/* A span of bytes, not NUL-terminated, borrowed from its owner. */
typedef struct oi_str {
    const char *p;
    size_t n;
} oi_str;

#define OI_LIT(z) oi_mkstr((z), sizeof(z) - 1)

static oi_str oi_mkstr(const char *p, size_t n)
{
    oi_str s;
    s.p = p;
    s.n = n;
    return s;
}

static oi_str oi_zstr(const char *z)
{
    return oi_mkstr(z, z ? strlen(z) : 0);
}

static int oi_eq(oi_str a, const char *z)
{
    size_t n = strlen(z);
    return a.n == n && (n == 0 || memcmp(a.p, z, n) == 0);
}

/* Whether a holds the n bytes at z. */
static int oi_eqn(oi_str a, const char *z, size_t n)
{
    return a.n == n && (n == 0 || memcmp(a.p, z, n) == 0);
}

/* Whether a holds the string literal lit (no strlen at run time). */
#define OI_IS(a, lit) oi_eqn((a), (lit), sizeof(lit) - 1)

static int oi_streq(oi_str a, oi_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Whether b occurs in a (a short text: a plain scan). */
static int oi_find(oi_str a, oi_str b)
{
    size_t i;
    for (i = 0; b.n <= a.n && i <= a.n - b.n; i++)
        if (memcmp(a.p + i, b.p, b.n) == 0)
            return 1;
    return 0;
}

/* Character classes for the tokenizer (SQLite's aiClass idea).  A run
** loop skips bytes whose class has none of the bits it stops on. */
enum {
    OI_CC_WS    = 0x01,         /* space, tab, CR, LF */
    OI_CC_NSTART = 0x02,        /* may start a name (ASCII part) */
    OI_CC_NAME  = 0x04,         /* may continue a name (ASCII part) */
    OI_CC_TSTOP = 0x08,         /* ends a text run: < & CR ] ctl >=0x80 */
    OI_CC_ASTOP = 0x10,         /* ends an attribute run: < & ' " ws ctl */
    OI_CC_HIGH  = 0x20,         /* byte >= 0x80: part of a UTF-8 sequence */
    OI_CC_NSTOP = 0x40,         /* ends a name run: not [A-Za-z0-9._:-] */
    OI_CC_COLON = 0x80          /* ':', which splits a qualified name */
};

static unsigned char oi_cc[256];

static void oi_cc_init(void)
{
    int c;
    if (oi_cc['<'])
        return;
    for (c = 0; c < 256; c++) {
        unsigned char k = 0;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            k |= OI_CC_WS;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
            || c == ':')
            k |= OI_CC_NSTART | OI_CC_NAME;
        if ((c >= '0' && c <= '9') || c == '-' || c == '.')
            k |= OI_CC_NAME;
        if (c == '<' || c == '&' || c == '\r' || c == ']' || c >= 0x80
            || (c < 0x20 && c != '\t' && c != '\n'))
            k |= OI_CC_TSTOP;
        if (c == '<' || c == '&' || c == '\'' || c == '"' || c >= 0x80
            || c < 0x20)
            k |= OI_CC_ASTOP;
        if (c >= 0x80)
            k |= OI_CC_HIGH;
        if (!(k & OI_CC_NAME))
            k |= OI_CC_NSTOP;
        if (c == ':')
            k |= OI_CC_COLON;
        oi_cc[c] = k;
    }
}

/* Incremental UTF-8 validation, resumable at any byte.  Accepts exactly
** the encodings of the XML 1.0 Char production above U+007F: no
** overlongs, no surrogates, nothing above U+10FFFF, not U+FFFE/U+FFFF. */
typedef struct oi_u8 {
    unsigned char need;         /* continuation bytes still expected */
    unsigned char lo, hi;       /* range allowed for the next one */
    unsigned char lead;         /* first byte of the sequence */
} oi_u8;

/* Returns 0 if byte c (>= 0x80, or any byte while a sequence is open)
** continues a valid sequence, -1 if not. */
static int oi_u8_step(oi_u8 *u, unsigned c)
{
    if (u->need == 0) {
        if (c < 0xC2 || c > 0xF4)
            return -1;
        u->lead = (unsigned char)c;
        u->lo = 0x80;
        u->hi = 0xBF;
        if (c < 0xE0) {
            u->need = 1;
        } else if (c < 0xF0) {
            u->need = 2;
            if (c == 0xE0)
                u->lo = 0xA0;           /* overlong */
            else if (c == 0xED)
                u->hi = 0x9F;           /* surrogates */
        } else {
            u->need = 3;
            if (c == 0xF0)
                u->lo = 0x90;           /* overlong */
            else if (c == 0xF4)
                u->hi = 0x8F;           /* above U+10FFFF */
        }
        return 0;
    }
    if (c < u->lo || c > u->hi)
        return -1;
    u->need--;
    u->lo = 0x80;
    u->hi = 0xBF;
    if (u->need == 1 && u->lead == 0xEF && c == 0xBF)
        u->hi = 0xBD;                   /* U+FFFE, U+FFFF */
    return 0;
}

/* Encodes code point c (already checked to be an XML Char) as UTF-8. */
static size_t oi_u8_put(char *out, unsigned long c)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* The bare JID of a full one: everything before the first '/' (RFC 7622
** 3.1). */
static oi_str oi_bare(oi_str jid)
{
    const char *slash = (const char *)memchr(jid.p, '/', jid.n);
    return slash ? oi_mkstr(jid.p, (size_t)(slash - jid.p)) : jid;
}

/* The domain part of a JID (RFC 7622 3.2): after the '@' of the bare
** JID, or all of it. */
static oi_str oi_domain(oi_str jid)
{
    oi_str bare = oi_bare(jid);
    const char *at = (const char *)memchr(bare.p, '@', bare.n);
    return at ? oi_mkstr(at + 1, bare.n - (size_t)(at + 1 - bare.p)) : bare;
}

/* Text folded for alias searches (PROTOCOL.md 6.7): what "maria" and
** "María" have in common. */
/* The folding of U+00C0 to U+017F: two bytes each, '_' for none; "__"
** keeps the character as it is (U+00D7, U+00F7). */
static const char oi_fold_tab[] =
    "a_a_a_a_a_a_aec_e_e_e_e_i_i_i_i_d_n_o_o_o_o_o___o_u_u_u_u_y_thss"
    "a_a_a_a_a_a_aec_e_e_e_e_i_i_i_i_d_n_o_o_o_o_o___o_u_u_u_u_y_thy_"
    "a_a_a_a_a_a_c_c_c_c_c_c_c_c_d_d_d_d_e_e_e_e_e_e_e_e_e_e_g_g_g_g_"
    "g_g_g_g_h_h_h_h_i_i_i_i_i_i_i_i_i_i_ijijj_j_k_k_k_l_l_l_l_l_l_l_"
    "l_l_l_n_n_n_n_n_n_n_n_n_o_o_o_o_o_o_oeoer_r_r_r_r_r_s_s_s_s_s_s_"
    "s_s_t_t_t_t_t_t_u_u_u_u_u_u_u_u_u_u_u_u_w_w_y_y_y_z_z_z_z_z_z_s_";

/* Folds t (valid UTF-8) into out, which has room for cap bytes: ASCII
** letters to lower case, Latin letters with diacritics to their base
** letters, combining marks U+0300-U+036F dropped.  The folded text is
** never longer than t; what does not fit in cap is cut. */
static size_t oi_fold(oi_str t, char *out, size_t cap)
{
    size_t i = 0, n = 0;
    while (i < t.n && n < cap) {
        unsigned c = (unsigned char)t.p[i];
        if (c < 0x80) {
            out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            i++;
        } else if (c >= 0xC2 && c <= 0xDF && i + 1 < t.n) {
            unsigned cp = (c & 0x1F) << 6 | ((unsigned char)t.p[i + 1] & 0x3F);
            const char *f = cp >= 0xC0 && cp <= 0x17F
                            ? oi_fold_tab + 2 * (cp - 0xC0) : NULL;
            if (f && f[0] != '_') {
                out[n++] = f[0];
                if (f[1] != '_' && n < cap)
                    out[n++] = f[1];
            } else if (!(cp >= 0x300 && cp <= 0x36F) && n + 2 <= cap) {
                out[n++] = t.p[i];
                out[n++] = t.p[i + 1];
            }
            i += 2;
        } else {                        /* a longer sequence: as it is */
            out[n++] = t.p[i++];
            while (i < t.n && ((unsigned char)t.p[i] & 0xC0) == 0x80
                   && n < cap)
                out[n++] = t.p[i++];
        }
    }
    return n;
}

/* Whether the folded text needle occurs in the folding of hay. */
static int oi_alias_has(oi_str hay, const char *needle, size_t nneedle)
{
    char buf[1024];
    size_t n = oi_fold(hay, buf, sizeof buf);
    return oi_find(oi_mkstr(buf, n), oi_mkstr(needle, nneedle));
}

/* ==== 3. SHA-1 (FIPS 180-4), for the XEP-0114 handshake =============== */

typedef struct oi_sha1 {
    uint32_t h[5];
    uint64_t len;               /* bytes hashed so far */
    unsigned char block[64];
} oi_sha1;

#define OI_ROL(v, s) (((v) << (s)) | ((v) >> (32 - (s))))

static void oi_sha1_block(oi_sha1 *c, const unsigned char *b)
{
    uint32_t w[80], a, bb, cc, d, e, t;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16
             | (uint32_t)b[4 * i + 2] << 8 | (uint32_t)b[4 * i + 3];
    for (i = 16; i < 80; i++) {
        t = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
        w[i] = OI_ROL(t, 1);
    }
    a = c->h[0]; bb = c->h[1]; cc = c->h[2]; d = c->h[3]; e = c->h[4];
    for (i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (bb & cc) | (~bb & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = bb ^ cc ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (bb & cc) | (bb & d) | (cc & d);
            k = 0x8F1BBCDCu;
        } else {
            f = bb ^ cc ^ d;
            k = 0xCA62C1D6u;
        }
        t = OI_ROL(a, 5) + f + e + k + w[i];
        e = d;
        d = cc;
        cc = OI_ROL(bb, 30);
        bb = a;
        a = t;
    }
    c->h[0] += a; c->h[1] += bb; c->h[2] += cc; c->h[3] += d; c->h[4] += e;
}

static void oi_sha1_init(oi_sha1 *c)
{
    c->h[0] = 0x67452301u;
    c->h[1] = 0xEFCDAB89u;
    c->h[2] = 0x98BADCFEu;
    c->h[3] = 0x10325476u;
    c->h[4] = 0xC3D2E1F0u;
    c->len = 0;
}

static void oi_sha1_update(oi_sha1 *c, const void *data, size_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    while (n > 0) {
        size_t used = (size_t)(c->len & 63), k = 64 - used;
        if (k > n)
            k = n;
        memcpy(c->block + used, p, k);
        c->len += k;
        p += k;
        n -= k;
        if ((c->len & 63) == 0)
            oi_sha1_block(c, c->block);
    }
}

/* Ends the hash and writes the 20 bytes of the digest. */
static void oi_sha1_digest(oi_sha1 *c, unsigned char out[20])
{
    unsigned char pad[72];
    uint64_t bits = c->len * 8;
    size_t r = (size_t)(c->len % 64), i;
    size_t npad = r < 56 ? 56 - r : 120 - r;   /* 0x80, zeros, to 56 mod 64 */
    memset(pad, 0, sizeof pad);
    pad[0] = 0x80;
    for (i = 0; i < 8; i++)
        pad[npad + i] = (unsigned char)(bits >> (56 - 8 * i));
    oi_sha1_update(c, pad, npad + 8);
    for (i = 0; i < 20; i++)
        out[i] = (unsigned char)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}

/* Writes the digest as 40 lowercase hex digits and a NUL into hex. */
static void oi_sha1_hex(oi_sha1 *c, char hex[41])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[20];
    size_t i;
    oi_sha1_digest(c, d);
    for (i = 0; i < 20; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[40] = '\0';
}

/* XEP-0114 section 3: lowercase hex SHA-1 of stream id followed by the
** secret.  Both are hashed as the raw UTF-8 bytes, which is what Prosody,
** ejabberd and Openfire compare against (not the XML-escaped form). */
static void oi_handshake_digest(oi_str id, oi_str secret, char hex[41])
{
    oi_sha1 c;
    oi_sha1_init(&c);
    oi_sha1_update(&c, id.p, id.n);
    oi_sha1_update(&c, secret.p, secret.n);
    oi_sha1_hex(&c, hex);
}

/* ==== 4. Memory: cap, buffers, arena ================================= */

/*
** Every byte the library holds comes from one oi_mem: the user's
** allocator (lua_Alloc semantics) plus a byte count checked against the
** memory cap before any growth.  A refused or failed allocation returns
** NULL and changes nothing; callers then report OLPCIDX_ENOMEM.
*/
typedef struct oi_mem {
    olpcidx_alloc alloc;
    void *ud;
    size_t used;                /* bytes currently allocated */
    size_t limit;               /* 0: no cap */
} oi_mem;

static void *oi_default_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(p);
        return NULL;
    }
    return realloc(p, nsize);
}

/* Resizes p from osize to nsize bytes; nsize 0 frees.  On failure returns
** NULL and p is untouched. */
static void *oi_realloc(oi_mem *m, void *p, size_t osize, size_t nsize)
{
    void *q;
    if (nsize == 0) {
        if (p) {
            m->alloc(m->ud, p, osize, 0);
            m->used -= osize;
        }
        return NULL;
    }
    if (nsize > osize && m->limit
        && (nsize - osize > m->limit || m->used > m->limit - (nsize - osize)))
        return NULL;
    q = m->alloc(m->ud, p, p ? osize : 0, nsize);
    if (!q)
        return NULL;
    m->used = m->used - (p ? osize : 0) + nsize;
    return q;
}

static void oi_free(oi_mem *m, void *p, size_t size)
{
    oi_realloc(m, p, size, 0);
}

/* A growable byte buffer with a hard maximum size. */
typedef struct oi_buf {
    char *p;
    size_t n;                   /* bytes in use */
    size_t cap;                 /* bytes allocated */
    size_t max;                 /* cap may not grow beyond this */
} oi_buf;

/* Makes room for extra more bytes.  Returns OLPCIDX_ELIMIT beyond max,
** OLPCIDX_ENOMEM if the allocator refuses; the buffer is unchanged then. */
static int oi_buf_reserve(oi_mem *m, oi_buf *b, size_t extra)
{
    size_t want, ncap;
    char *q;
    if (extra <= b->cap - b->n)
        return OLPCIDX_OK;
    if (extra > b->max || b->n > b->max - extra)
        return OLPCIDX_ELIMIT;
    want = b->n + extra;
    ncap = b->cap ? b->cap : 64;
    while (ncap < want)
        ncap = ncap > b->max / 2 ? b->max : ncap * 2;
    if (ncap < want)
        ncap = want;
    q = (char *)oi_realloc(m, b->p, b->cap, ncap);
    if (!q)
        return OLPCIDX_ENOMEM;
    b->p = q;
    b->cap = ncap;
    return OLPCIDX_OK;
}

/* oi_buf_reserve with its common case, room enough, in line. */
#define OI_BUF_RESERVE(m, b, extra) \
    ((extra) <= (b)->cap - (b)->n ? OLPCIDX_OK : oi_buf_reserve(m, b, extra))

static int oi_buf_add(oi_mem *m, oi_buf *b, const void *data, size_t n)
{
    int rc = oi_buf_reserve(m, b, n);
    if (rc == OLPCIDX_OK && n > 0) {
        memcpy(b->p + b->n, data, n);
        b->n += n;
    }
    return rc;
}

static void oi_buf_free(oi_mem *m, oi_buf *b)
{
    oi_free(m, b->p, b->cap);
    b->p = NULL;
    b->n = b->cap = 0;
}

/*
** An owned string in one block: its length in 4 bytes, then its bytes.
** Its holder keeps one pointer, NULL for none, instead of a pointer and
** a length.
*/
/* Writes s at p as an owned string (4 + s.n bytes, s.n < 2^32);
** returns the end. */
static char *oi_lstr_put(char *p, oi_str s)
{
    uint32_t n = (uint32_t)s.n;
    memcpy(p, &n, 4);
    if (s.n)
        memcpy(p + 4, s.p, s.n);
    return p + 4 + s.n;
}

static char *oi_lstr_new(oi_mem *m, oi_str s)
{
    char *p;
    if (s.n > UINT32_MAX - 4
        || !(p = (char *)oi_realloc(m, NULL, 0, 4 + s.n)))
        return NULL;
    oi_lstr_put(p, s);
    return p;
}

/* The string at p (empty for NULL). */
static oi_str oi_lstr(const char *p)
{
    uint32_t n;
    if (!p)
        return oi_mkstr(NULL, 0);
    memcpy(&n, p, 4);
    return oi_mkstr(p + 4, n);
}

static void oi_lstr_free(oi_mem *m, char *p)
{
    if (p)
        oi_free(m, p, 4 + oi_lstr(p).n);
}

typedef struct oi_vec {         /* a growable array of pointers */
    void **v;
    size_t n;
    size_t cap;
} oi_vec;

static int oi_vec_reserve(oi_mem *m, oi_vec *a, size_t extra)
{
    size_t cap;
    void **v;
    if (extra <= a->cap - a->n)
        return OLPCIDX_OK;
    cap = a->cap ? a->cap * 2 : 4;
    while (cap - a->n < extra)
        cap *= 2;
    v = (void **)oi_realloc(m, a->v, a->cap * sizeof *v, cap * sizeof *v);
    if (!v)
        return OLPCIDX_ENOMEM;
    a->v = v;
    a->cap = cap;
    return OLPCIDX_OK;
}

/* Appends p; the caller reserved room. */
static void oi_vec_push(oi_vec *a, void *p)
{
    a->v[a->n++] = p;
}

static int oi_vec_has(const oi_vec *a, const void *p)
{
    size_t i;
    for (i = 0; i < a->n; i++)
        if (a->v[i] == p)
            return 1;
    return 0;
}

/* Removes p (order is not kept). */
static void oi_vec_drop(oi_vec *a, const void *p)
{
    size_t i;
    for (i = 0; i < a->n; i++)
        if (a->v[i] == p) {
            a->v[i] = a->v[--a->n];
            return;
        }
}

static void oi_vec_free(oi_mem *m, oi_vec *a)
{
    oi_free(m, a->v, a->cap * sizeof *a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/*
** A small vector: an array of pointers that holds its first element in
** place of the array pointer, so that the commonest lists -- a buddy in
** one activity, an activity of one participant -- take no allocation
** and 16 bytes (posting lists, section 8, do the same in a vector of
** their own).  Beyond one element it grows by half (2, 3, 4, 6, 9,
** ...): the lists are many and mostly short (an activity's participants,
** a buddy's activities), so slack costs more than the extra copies.
*/
typedef struct oi_svec {
    union {
        void *one;              /* cap <= 1: the element, if n is 1 */
        void **v;               /* cap > 1: the array */
    } u;
    uint32_t n;
    uint32_t cap;
} oi_svec;

static void **oi_svec_v(oi_svec *a)
{
    return a->cap > 1 ? a->u.v : &a->u.one;
}

static void *const *oi_svec_cv(const oi_svec *a)
{
    return a->cap > 1 ? a->u.v : &a->u.one;
}

/* Makes room for extra more elements; on failure nothing changed. */
static int oi_svec_reserve(oi_mem *m, oi_svec *a, size_t extra)
{
    size_t cap = a->cap > 1 ? a->cap : 1, ncap;
    void **v;
    if (extra <= cap - a->n) {
        a->cap = (uint32_t)cap;
        return OLPCIDX_OK;
    }
    if (extra > UINT32_MAX / 2 - a->n)
        return OLPCIDX_ENOMEM;
    ncap = cap < 2 ? 2 : cap + cap / 2;
    while (ncap - a->n < extra)
        ncap += ncap / 2;
    if (ncap > SIZE_MAX / sizeof *v)
        return OLPCIDX_ENOMEM;
    v = (void **)oi_realloc(m, a->cap > 1 ? a->u.v : NULL,
                            a->cap > 1 ? a->cap * sizeof *v : 0,
                            ncap * sizeof *v);
    if (!v)
        return OLPCIDX_ENOMEM;
    if (a->cap <= 1 && a->n)
        v[0] = a->u.one;
    a->u.v = v;
    a->cap = (uint32_t)ncap;
    return OLPCIDX_OK;
}

/* The elements of a (const or not), for reading them in place. */
#define OI_SV(a) ((a)->cap > 1 ? (a)->u.v : &(a)->u.one)

/* Appends p; the caller reserved room. */
static void oi_svec_push(oi_svec *a, void *p)
{
    oi_svec_v(a)[a->n++] = p;
}

static int oi_svec_has(const oi_svec *a, const void *p)
{
    void *const *v = oi_svec_cv(a);
    size_t i;
    for (i = 0; i < a->n; i++)
        if (v[i] == p)
            return 1;
    return 0;
}

/* Removes p (order is not kept). */
static void oi_svec_drop(oi_svec *a, const void *p)
{
    void **v = oi_svec_v(a);
    size_t i;
    for (i = 0; i < a->n; i++)
        if (v[i] == p) {
            v[i] = v[--a->n];
            return;
        }
}

static void oi_svec_free(oi_mem *m, oi_svec *a)
{
    if (a->cap > 1)
        oi_free(m, a->u.v, a->cap * sizeof *a->u.v);
    a->u.v = NULL;
    a->n = a->cap = 0;
}

/*
** The stanza arena: a list of chunks bump-allocated from, emptied after
** each stanza has been dispatched.  The first chunk is kept for the next
** stanza so that steady traffic does not call the allocator at all.  The
** total is bounded by max; beyond it allocations fail like ENOMEM.
*/
typedef union oi_align {        /* the strictest alignment we need */
    void *p;
    double d;
    uint64_t u;
    long l;
} oi_align;

typedef struct oi_chunk {
    struct oi_chunk *next;
    size_t size;                /* bytes of data after the header */
    size_t used;
    oi_align data[1];           /* size bytes, aligned */
} oi_chunk;

typedef struct oi_arena {
    oi_chunk *head;             /* chunk allocated from; list of older */
    size_t total;               /* data bytes in all chunks */
    size_t max;
    char *last;                 /* most recent allocation, for extension */
} oi_arena;

#define OI_CHUNK_HDR offsetof(oi_chunk, data)
#define OI_ALIGN_UP(n) (((n) + sizeof(oi_align) - 1) & ~(sizeof(oi_align) - 1))

static void *oi_arena_alloc(oi_mem *m, oi_arena *a, size_t n)
{
    oi_chunk *c = a->head;
    n = OI_ALIGN_UP(n ? n : 1);
    if (!c || c->size - c->used < n) {
        size_t size = c ? c->size * 2 : 4096;
        if (size < n)
            size = OI_ALIGN_UP(n);
        if (a->total + size > a->max) {
            size = a->max > a->total ? a->max - a->total : 0;
            if (size < n)
                return NULL;
        }
        c = (oi_chunk *)oi_realloc(m, NULL, 0, OI_CHUNK_HDR + size);
        if (!c)
            return NULL;
        c->next = a->head;
        c->size = size;
        c->used = 0;
        a->head = c;
        a->total += size;
    }
    a->last = (char *)c->data + c->used;
    c->used += n;
    return a->last;
}

/* Grows the most recent allocation p from n to n + extra bytes in place
** when it is last in its chunk; returns 0 if it could not. */
static int oi_arena_extend(oi_arena *a, void *p, size_t n, size_t extra)
{
    oi_chunk *c = a->head;
    size_t start, end;
    if (!c || !p || (char *)p != a->last)
        return 0;
    start = (size_t)((char *)p - (char *)c->data);
    end = OI_ALIGN_UP(start + n + extra);
    if (end > c->size)
        return 0;
    c->used = end;
    return 1;
}

/* Frees every chunk but the oldest, which is kept empty for reuse
** (keep 0: frees all). */
static void oi_arena_reset(oi_mem *m, oi_arena *a, int keep)
{
    oi_chunk *c = a->head;
    while (c && (c->next || !keep)) {
        oi_chunk *next = c->next;
        a->total -= c->size;
        oi_free(m, c, OI_CHUNK_HDR + c->size);
        c = next;
    }
    a->head = c;
    if (c)
        c->used = 0;
    a->last = NULL;
}

/* ==== 5. Keyed hashing, hash map, property values ==================== */

/*
** SipHash (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
** 2012) with c compression rounds per 8-byte word and d finalization
** rounds.  The maps use SipHash-1-3, as Rust's std and CPython do: the
** keys hashed come from the network, and only a keyed PRF keeps a peer
** from choosing keys that collide.  Words are loaded byte by byte, so the
** result does not depend on the host's byte order or alignment.
*/
#define OI_ROL64(v, s) (((v) << (s)) | ((v) >> (64 - (s))))

static uint64_t oi_le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16
         | (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32
         | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48
         | (uint64_t)p[7] << 56;
}

static void oi_sipround(uint64_t v[4], int rounds)
{
    while (rounds-- > 0) {
        v[0] += v[1]; v[1] = OI_ROL64(v[1], 13); v[1] ^= v[0];
        v[0] = OI_ROL64(v[0], 32);
        v[2] += v[3]; v[3] = OI_ROL64(v[3], 16); v[3] ^= v[2];
        v[0] += v[3]; v[3] = OI_ROL64(v[3], 21); v[3] ^= v[0];
        v[2] += v[1]; v[1] = OI_ROL64(v[1], 17); v[1] ^= v[2];
        v[2] = OI_ROL64(v[2], 32);
    }
}

/* SipHash-c-d of the n bytes at p under key (key[0] is the first eight
** key bytes read little-endian, key[1] the last eight). */
static uint64_t oi_siphash_cr(const uint64_t key[2], const void *p,
                              size_t n, int c, int d)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t v[4], m;
    size_t i, tail = n % 8;
    v[0] = key[0] ^ UINT64_C(0x736f6d6570736575);   /* "somepseu" */
    v[1] = key[1] ^ UINT64_C(0x646f72616e646f6d);   /* "dorandom" */
    v[2] = key[0] ^ UINT64_C(0x6c7967656e657261);   /* "lygenera" */
    v[3] = key[1] ^ UINT64_C(0x7465646279746573);   /* "tedbytes" */
    for (i = 0; i + 8 <= n; i += 8) {
        m = oi_le64(b + i);
        v[3] ^= m;
        oi_sipround(v, c);
        v[0] ^= m;
    }
    m = (uint64_t)(n & 0xFF) << 56;     /* length mod 256 in the top byte */
    for (i = 0; i < tail; i++)
        m |= (uint64_t)b[n - tail + i] << (8 * i);
    v[3] ^= m;
    oi_sipround(v, c);
    v[0] ^= m;
    v[2] ^= 0xFF;
    oi_sipround(v, d);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static uint64_t oi_siphash(const uint64_t key[2], const void *p, size_t n)
{
    return oi_siphash_cr(key, p, n, 1, 3);
}

/*
** oi_map: byte-string keys to void * values that hold their keys.
** open addressing, linear probing; deletion shifts entries back, no tombstones
** at least OI_MAP_MINCAP slots, at most OI_MAP_LOAD_NUM/DEN of them used
** grows by a quarter into a new table allocated before any entry moves,
**   so that it is between 3/5 and 3/4 full (by half: 1/2 to 3/4, which
**   costs a third more slots at the unlucky sizes; doubling: 3/8 to 3/4)
** after a failed allocation (ENOMEM) the map is unchanged and usable
** SipHash-1-3 under a per-table key; slots keep 32 bits of it, growth
** rehashes nothing
** keyed since keys are JIDs and values from the network: no hash flooding
**
** A slot is the value and 32 bits of its key's hash, 12 bytes, in two
** arrays of one block (val, then hash): the key is not stored but read
** from the value by the map's keyof function, so the bytes of a key live
** once, in the object the map finds (a buddy's JID after its struct).  A
** probe compares hashes first and reads a key only when they are equal.
** Values must not be NULL, which marks an empty slot and is what get,
** del and next return for "none"; a value's key must not change while
** it is in the map.  The home slot of a key is its 32-bit hash scaled
** to the size, (hash * cap) >> 32 (Lemire, "Fast random integer
** generation in an interval", 2019), which needs no power of two; tables
** stay at most 2^31 slots.
*/
typedef oi_str (*oi_keyof)(const void *val);

typedef struct oi_map {
    void **val;                 /* cap values; NULL: the slot is empty */
    uint32_t *hash;             /* cap hashes, after val in its block */
    size_t cap;                 /* slots: 0, or OI_MAP_MINCAP or more */
    size_t n;                   /* entries */
    uint64_t key[2];            /* SipHash key of this table */
    oi_keyof keyof;             /* the key of a value */
} oi_map;

#define OI_MAP_MINCAP   8
#define OI_MAP_MAXCAP   (UINT32_MAX / 2 + 1)    /* 2^31 slots */
#define OI_MAP_LOAD_NUM 3       /* at most NUM/DEN of the slots in use */
#define OI_MAP_LOAD_DEN 4
#define OI_MAP_MAXN(cap) ((cap) / OI_MAP_LOAD_DEN * OI_MAP_LOAD_NUM \
                          + (cap) % OI_MAP_LOAD_DEN * OI_MAP_LOAD_NUM \
                            / OI_MAP_LOAD_DEN)
/* The next size of a table of cap slots, and the most slots a table may
** have to grow from without passing OI_MAP_MAXCAP or SIZE_MAX bytes. */
#define OI_MAP_GROW(cap) ((cap) + (cap) / 4)
#define OI_MAP_GROWABLE(cap) ((cap) <= OI_MAP_MAXCAP / 5 * 4 \
                              && (cap) <= SIZE_MAX / 5 * 4 / OI_MAP_SLOT)

/* The home slot of hash h in a table of cap slots. */
static size_t oi_map_home(uint32_t h, size_t cap)
{
    return (size_t)(((uint64_t)h * cap) >> 32);
}
#define OI_MAP_SLOT     (sizeof(void *) + sizeof(uint32_t))

/* The key of a value whose first field is its key (an oi_str). */
static oi_str oi_key_first(const void *val)
{
    return *(const oi_str *)val;
}

/* splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
** generators", 2014): a bijective mixer, so distinct states give distinct
** outputs. */
static uint64_t oi_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* An empty map of values whose keys keyof gives; allocates nothing.
** seed is the process's random seed, salt tells the tables of one process
** apart: each (seed, salt) pair gives a different key. */
static void oi_map_init(oi_map *m, uint32_t seed, uint32_t salt,
                        oi_keyof keyof)
{
    uint64_t s = (uint64_t)seed << 32 | salt;
    m->keyof = keyof;
    m->val = NULL;
    m->hash = NULL;
    m->cap = 0;
    m->n = 0;
    m->key[0] = oi_splitmix64(&s);
    m->key[1] = oi_splitmix64(&s);
}

/* The slot holding key, or the empty slot where it would go.  The table
** has slots, and always an empty one, so the probe ends. */
static size_t oi_map_find(const oi_map *m, oi_str key, uint32_t h)
{
    size_t i = oi_map_home(h, m->cap);
    while (m->val[i]
           && (m->hash[i] != h || !oi_streq(m->keyof(m->val[i]), key)))
        i = i + 1 < m->cap ? i + 1 : 0;
    return i;
}

/* The 32 bits of the hash of key that the map keeps. */
static uint32_t oi_map_hash(const oi_map *m, oi_str key)
{
    return (uint32_t)oi_siphash(m->key, key.p, key.n);
}

static void *oi_map_get(const oi_map *m, oi_str key)
{
    size_t i;
    if (m->n == 0)
        return NULL;
    i = oi_map_find(m, key, oi_map_hash(m, key));
    return m->val[i];
}

/* Moves every entry into a new table of ncap slots.  The new table is
** complete before the old one is freed, so failure changes nothing. */
static int oi_map_resize(oi_mem *mem, oi_map *m, size_t ncap)
{
    void **nv;
    uint32_t *nh;
    size_t i, j;
    nv = (void **)oi_realloc(mem, NULL, 0, ncap * OI_MAP_SLOT);
    if (!nv)
        return OLPCIDX_ENOMEM;
    nh = (uint32_t *)(void *)(nv + ncap);
    for (i = 0; i < ncap; i++) {
        nv[i] = NULL;
        nh[i] = 0;
    }
    for (i = 0; i < m->cap; i++) {
        if (!m->val[i])
            continue;
        j = oi_map_home(m->hash[i], ncap);
        while (nv[j])
            j = j + 1 < ncap ? j + 1 : 0;
        nv[j] = m->val[i];
        nh[j] = m->hash[i];
    }
    oi_free(mem, m->val, m->cap * OI_MAP_SLOT);
    m->val = nv;
    m->hash = nh;
    m->cap = ncap;
    return OLPCIDX_OK;
}

/* Makes room for extra more entries: once this returned OLPCIDX_OK, the
** next extra puts of new keys do not allocate and cannot fail (deletions
** in between only add room).  Growth adds at least a quarter of the
** table. */
static int oi_map_reserve(oi_mem *mem, oi_map *m, size_t extra)
{
    size_t need, ncap;
    if (extra > SIZE_MAX - m->n)
        return OLPCIDX_ENOMEM;
    need = m->n + extra;
    if (need <= OI_MAP_MAXN(m->cap))
        return OLPCIDX_OK;
    ncap = m->cap ? m->cap : OI_MAP_MINCAP;
    while (ncap == m->cap || OI_MAP_MAXN(ncap) < need) {
        if (!OI_MAP_GROWABLE(ncap))
            return OLPCIDX_ENOMEM;
        ncap = OI_MAP_GROW(ncap);
    }
    return oi_map_resize(mem, m, ncap);
}

/* Gives slots back once at most 1/8 of them are in use, so that a table
** follows what it holds now, not the most it ever held: the new capacity
** is the smallest, growing as tables do from OI_MAP_MINCAP, that keeps it
** at most half full.  Not during a walk.  Out of memory it stays as it
** is: nothing is lost. */
static void oi_map_shrink(oi_mem *mem, oi_map *m)
{
    size_t ncap = OI_MAP_MINCAP;
    if (m->cap <= OI_MAP_MINCAP || m->n > m->cap / 8)
        return;
    while (ncap / 2 < m->n)
        ncap = OI_MAP_GROW(ncap);
    if (ncap < m->cap)
        oi_map_resize(mem, m, ncap);
}

/* Inserts val under its key, or replaces the value of an equal key.
** Replacing never allocates; inserting grows the table first when it is
** full.  Returns OLPCIDX_OK or OLPCIDX_ENOMEM (map unchanged). */
static int oi_map_put(oi_mem *mem, oi_map *m, void *val)
{
    oi_str key = m->keyof(val);
    uint32_t h = oi_map_hash(m, key);
    size_t i = 0;
    int rc;
    if (m->cap > 0) {
        i = oi_map_find(m, key, h);
        if (m->val[i]) {
            m->val[i] = val;
            return OLPCIDX_OK;
        }
    }
    if (m->n >= OI_MAP_MAXN(m->cap)) {
        rc = oi_map_reserve(mem, m, 1);
        if (rc != OLPCIDX_OK)
            return rc;
        i = oi_map_find(m, key, h);
    }
    m->hash[i] = h;
    m->val[i] = val;
    m->n++;
    return OLPCIDX_OK;
}

/* Removes key; returns its value, or NULL if it was absent.  The hole is
** refilled by Knuth's Algorithm R (TAOCP vol. 3, 6.4): each later entry
** of the run whose home slot is not cyclically in (hole, entry] moves
** back into the hole, which then moves to where that entry was.  Only
** the run from the deleted slot up to the next empty slot is touched.
** Never allocates, never shrinks the table. */
static void *oi_map_del(oi_map *m, oi_str key)
{
    size_t i, j, home;
    void *val;
    if (m->n == 0)
        return NULL;
    i = oi_map_find(m, key, oi_map_hash(m, key));
    if (!m->val[i])
        return NULL;
    val = m->val[i];
    j = i;
    for (;;) {
        m->val[i] = NULL;
        m->hash[i] = 0;
        do {
            j = j + 1 < m->cap ? j + 1 : 0;
            if (!m->val[j]) {
                m->n--;
                return val;
            }
            home = oi_map_home(m->hash[j], m->cap);
        } while (i <= j ? i < home && home <= j : i < home || home <= j);
        m->val[i] = m->val[j];
        m->hash[i] = m->hash[j];
        i = j;
    }
}

/*
** Iteration: set *i = 0, then each call returns the next value, and NULL
** once every entry has been returned.  While a walk is in progress:
**   - oi_map_del of the entry just returned, or of any entry returned
**     earlier, is allowed: every other entry is still returned exactly
**     once;
**   - oi_map_put of a key already present (a replacement) is allowed;
**   - inserting a new key, oi_map_reserve, or deleting an entry not yet
**     returned may make the walk skip or repeat entries.
**
** Why the deletions are safe: the walk goes down from the highest empty
** slot e to slot 0 (phase 1), then down from the top slot until it meets
** an empty slot, which is e (phase 2: slots above e were all full).  A
** deletion at slot s only moves entries within the run from s up to the
** next empty slot, wrapping; when s has been visited, that run lies in
** visited slots, and e, empty, bounds it.  No deletion fills an empty
** slot, so e and the end of phase 2 stay where they were.
**
** *i: 0 before the start; in phase 1, 1 + the number of slots still to
** look at (slots *i - 2 down to 0); in phase 2, cap + 1 + the next slot.
*/
static void *oi_map_next(const oi_map *m, size_t *i)
{
    size_t s;
    if (m->n == 0 || *i > 2 * m->cap)
        return NULL;            /* empty, or *i of a table since freed */
    if (*i == 0) {
        s = m->cap - 1;
        while (m->val[s])
            s--;
        *i = s + 1;
    }
    while (*i > 1 && *i <= m->cap) {
        s = *i - 2;
        --*i;
        if (m->val[s])
            return m->val[s];
    }
    if (*i == 1)
        *i = 2 * m->cap;        /* phase 2, from the top slot */
    s = *i - m->cap - 1;
    if (!m->val[s])
        return NULL;            /* slot e: the end; stays the end */
    --*i;
    return m->val[s];
}

/* Frees the table; the map is then empty and may be used again. */
static void oi_map_free(oi_mem *mem, oi_map *m)
{
    oi_free(mem, m->val, m->cap * OI_MAP_SLOT);
    m->val = NULL;
    m->hash = NULL;
    m->cap = 0;
    m->n = 0;
}

/*
** Property values (PROTOCOL.md 2.1): <property type='T' name='N'>
** carries a value of one of five types, stored in one canonical text
** form per type so that equal values compare equal byte for byte:
**   str    the text exactly as given;
**   int    decimal int32, optional sign, no '+' or leading zeros out,
**          "-0" is "0";
**   uint   decimal uint32, optional '+';
**   bool   "1" or "0"; "true" and "false" are accepted on input;
**   bytes  standard base64 with padding (RFC 4648 section 4).
** XML whitespace around an int, uint or bool, and anywhere in bytes, is
** not part of the value (a str keeps all of its bytes).
*/
enum { OI_PT_STR, OI_PT_INT, OI_PT_UINT, OI_PT_BOOL, OI_PT_BYTES,
       OI_PT_COUNT };

static const struct oi_ptype_row {
    char name[8];               /* padded: copied 8 bytes at a time */
    size_t len;
} oi_ptype_rows[OI_PT_COUNT] = {
#define OI_PTYPE_ROW_(name) { name, sizeof name - 1 }
    OI_PTYPE_ROW_("str"), OI_PTYPE_ROW_("int"), OI_PTYPE_ROW_("uint"),
    OI_PTYPE_ROW_("bool"), OI_PTYPE_ROW_("bytes")
#undef OI_PTYPE_ROW_
};

/* The type called name, or -1. */
static int oi_ptype(oi_str name)
{
    int t;
    for (t = 0; t < OI_PT_COUNT; t++)
        if (oi_eq(name, oi_ptype_rows[t].name))
            return t;
    return -1;
}

/* The XML S production (XML 1.0 section 2.3): space, tab, CR, LF. */
static int oi_isxmlws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* v without XML whitespace at either end. */
static oi_str oi_trimws(oi_str v)
{
    while (v.n > 0 && oi_isxmlws((unsigned char)v.p[0])) {
        v.p++;
        v.n--;
    }
    while (v.n > 0 && oi_isxmlws((unsigned char)v.p[v.n - 1]))
        v.n--;
    return v;
}

/* A decimal integer: optional '+' (and '-' when neg_ok), then one or
** more digits.  Writes its canonical form; -1 if outside [-2^31, 2^31-1]
** (neg_ok) or [0, 2^32-1]. */
static long oi_canon_int(oi_str v, int neg_ok, char *out)
{
    char tmp[10];
    unsigned long val = 0, lim = neg_ok ? 2147483647ul : 4294967295ul;
    size_t i = 0, k = 0;
    int neg = 0;
    v = oi_trimws(v);
    if (v.n > 0 && (v.p[0] == '+' || (neg_ok && v.p[0] == '-'))) {
        neg = v.p[0] == '-';
        i = 1;
    }
    if (neg)
        lim = 2147483648ul;
    if (i == v.n)
        return -1;              /* empty, or a sign alone */
    for (; i < v.n; i++) {
        unsigned d = (unsigned char)v.p[i] - (unsigned)'0';
        if (d > 9 || val > (lim - d) / 10)
            return -1;
        val = val * 10 + d;
    }
    do {
        tmp[k++] = (char)('0' + val % 10);
        val /= 10;
    } while (val > 0);
    i = 0;
    if (neg && !(k == 1 && tmp[0] == '0'))
        out[i++] = '-';
    while (k > 0)
        out[i++] = tmp[--k];
    return (long)i;
}

/* The 6-bit value of base64 symbol c (RFC 4648 table 1), or -1. */
static int oi_b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Base64 with whitespace anywhere.  Valid when, whitespace removed, the
** length is a multiple of 4, at most two '=' end it (RFC 4648 section
** 3.2), and the bits of the last symbol beyond the data are zero (section
** 3.5: otherwise two texts would decode to the same bytes).  Such a text
** is what encoding its bytes again gives, so the canonical form is the
** text without its whitespace. */
static long oi_canon_b64(oi_str v, char *out)
{
    size_t i, n = 0, pad = 0;
    int last = 0;
    for (i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (oi_isxmlws(c))
            continue;
        n++;
        if (c == '=') {
            if (++pad > 2)
                return -1;
        } else if (pad > 0 || (last = oi_b64_val(c)) < 0) {
            return -1;
        }
    }
    if (n % 4 != 0 || (pad == 1 && (last & 3)) || (pad == 2 && (last & 15)))
        return -1;
    for (i = n = 0; i < v.n; i++)
        if (!oi_isxmlws((unsigned char)v.p[i]))
            out[n++] = v.p[i];
    return (long)n;
}

/* Encodes n bytes as base64 with padding (RFC 4648 section 4) into out,
** which has room for 4 * ((n + 2) / 3) + 1 bytes; NUL-ended. */
static void oi_b64_encode(const unsigned char *p, size_t n, char *out)
{
    static const char sym[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    for (i = 0; i + 2 < n; i += 3, out += 4) {
        out[0] = sym[p[i] >> 2];
        out[1] = sym[(p[i] & 3) << 4 | p[i + 1] >> 4];
        out[2] = sym[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
        out[3] = sym[p[i + 2] & 63];
    }
    if (i < n) {
        out[0] = sym[p[i] >> 2];
        out[1] = sym[(p[i] & 3) << 4 | (i + 1 < n ? p[i + 1] >> 4 : 0)];
        out[2] = i + 1 < n ? sym[(p[i + 1] & 15) << 2] : '=';
        out[3] = '=';
        out += 4;
    }
    *out = '\0';
}

/* Writes the canonical form of v, a value of type t, into out and
** returns its length, or returns -1 if v is not a valid value of type t
** (or t is not a type).  At most v.n bytes are written (callers give
** room for v.n + 4).  out may be v.p itself; otherwise they must not
** overlap.  On -1, out is untouched. */
static long oi_prop_canon(int t, oi_str v, char *out)
{
    oi_str w;
    if (v.n > (size_t)LONG_MAX)
        return -1;
    switch (t) {
    case OI_PT_STR:
        if (v.n > 0)
            memmove(out, v.p, v.n);
        return (long)v.n;
    case OI_PT_INT:
        return oi_canon_int(v, 1, out);
    case OI_PT_UINT:
        return oi_canon_int(v, 0, out);
    case OI_PT_BOOL:
        w = oi_trimws(v);
        if (oi_eq(w, "1") || oi_eq(w, "true"))
            out[0] = '1';
        else if (oi_eq(w, "0") || oi_eq(w, "false"))
            out[0] = '0';
        else
            return -1;
        return 1;
    case OI_PT_BYTES:
        return oi_canon_b64(v, out);
    }
    return -1;
}
/* ==== 6. XML tokenizer =============================================== */

/*
** A push tokenizer for the XML subset XMPP allows (RFC 6120 section 11):
** elements, attributes in either quote style, namespaces (Namespaces in
** XML 1.0), the five predefined entities, character references, CDATA
** sections and one leading XML declaration.  Comments, processing
** instructions, DTDs and entity declarations are refused as
** restricted-xml; every other departure from well-formedness is
** not-well-formed.
**
** It is a state machine over x->state, resumable after any byte: nothing
** that must survive a return lives in a local variable.  States that
** consume runs (text, attribute values, names) loop locally over a
** character-class table instead of returning to the switch per byte.
** Text is handed to the consumer as spans of the caller's buffer, split
** only at entities and at the end of a feed; names and attribute values
** are copied into x->tag until the start tag is complete, because the
** namespace declarations of an element may follow its other attributes.
**
** Fast paths, for the common case of a tag that lies whole in one feed:
** after '<', oi_xml_fasttag reads a start tag to its '>' straight from
** the caller's buffer (ASCII names; values without references, CR, LF
** or TAB), and an end tag is compared with the open element's name in
** place; neither copies anything nor goes through the switch per token.
** They consume nothing unless the whole tag is read, so resumability is
** untouched: a tag split by a feed, or anything unusual or wrong in it,
** is read again by the state machine from its first byte, which finds
** every error as before.  Runs of text and attribute values are skipped
** a machine word at a time (oi_xml_skip_text, oi_xml_skip_aval, which
** say why that is portable: plain C99 arithmetic, the same result on
** either byte order, no SIMD, which the XO-1's Geode lacks), and UTF-8
** is validated only at bytes >= 0x80, which stop a word.
**
** Events go to three callbacks (oi_xml_handler); every pointer they get
** is valid only during the call.  A callback returning non-zero stops
** the tokenizer with that code, which is then sticky.  A callback may
** instead set x->pause: oi_xml_feed then returns 0 before the next byte,
** and the caller keeps the bytes after x->off for a later feed, once it
** has cleared x->pause (how the component holds back input while its
** output is full, section 17).
**
** Limits, checked where the counters grow: element depth (the stream
** root counts), attributes per element, bytes of a name, bytes of one
** top-level stanza (from its '<' to the end of its end tag), and bytes
** of one tag.  Errors carry the byte offset in the stream (x->err_off)
** and a message (x->err_msg).
*/
typedef struct oi_xattr {
    oi_str ns;                  /* empty: no namespace */
    oi_str name;                /* local name */
    oi_str value;               /* entities and references decoded */
} oi_xattr;

typedef struct oi_xml_handler {
    int (*start)(void *ud, oi_str ns, oi_str name, const oi_xattr *attr,
                 size_t nattr);
    int (*end)(void *ud);
    int (*text)(void *ud, const char *p, size_t n);
} oi_xml_handler;

enum oi_xml_state {
    OI_XS_PROLOG,               /* before the root: decl, ws, '<' */
    OI_XS_TEXT,                 /* character data inside the root */
    OI_XS_REF,                  /* after '&', up to ';' */
    OI_XS_LT,                   /* after '<' */
    OI_XS_BANG,                 /* after '<!': CDATA, comment or DTD */
    OI_XS_CDATA,                /* inside <![CDATA[ ... ]]> */
    OI_XS_PI,                   /* inside <? ... ?> */
    OI_XS_STAG,                 /* start tag name */
    OI_XS_ATTRS,                /* between attributes */
    OI_XS_ANAME,                /* attribute name */
    OI_XS_AEQ,                  /* after an attribute name, before '=' */
    OI_XS_AQUOTE,               /* after '=', before the quote */
    OI_XS_AVAL,                 /* attribute value */
    OI_XS_AEND,                 /* after the closing quote */
    OI_XS_EMPTY,                /* after '/' in a start tag */
    OI_XS_ETAG,                 /* end tag name */
    OI_XS_ETAGWS,               /* after the end tag name */
    OI_XS_DONE                  /* root closed: the stream is over */
};

typedef struct oi_xrec {        /* an attribute while its tag is read */
    size_t qoff, qlen;          /* qualified name in x->tag */
    size_t voff, vlen;          /* value in x->tag */
    int colon;                  /* whether the name has a ':' */
    int decl;                   /* 0, or a namespace declaration: 1 for
                                ** xmlns, 2 for xmlns:prefix */
} oi_xrec;

typedef struct oi_xbind {       /* a namespace declaration in scope */
    size_t poff, plen;          /* prefix in x->nsstr (empty: default) */
    size_t uoff, ulen;          /* namespace name in x->nsstr */
    size_t depth;               /* depth of the declaring element */
} oi_xbind;

typedef struct oi_xml {
    oi_mem *m;
    const oi_xml_handler *h;
    void *ud;
    int state;
    int ret;                    /* state to return to after a reference */
    int err;                    /* sticky: 0 or a negative result code */
    const char *err_msg;
    uint64_t off;               /* stream offset of the current byte */
    uint64_t err_off;
    size_t max_depth, max_attrs, max_name, max_stanza;
    size_t depth;               /* open elements */
    int in_stanza;              /* inside a child of the root */
    uint64_t stanza_start;      /* offset of its '<' */
    int seen_root;
    oi_u8 u8;
    char quote;                 /* quote that ends the attribute value */
    unsigned char kw;           /* progress through a keyword after '<!'
                                ** ("[CDATA[") or '<?' ("xml" and its
                                ** declaration) */
    unsigned char cr;           /* the last feed ended on a CR: its LF is
                                ** not another line end */
    unsigned brackets;          /* ']' just before, in text */
    char ref[12];               /* reference name without & and ; */
    size_t nref;
    size_t name_start;          /* offset in tag of the name being read */
    size_t qlen;                /* element qname: tag[0..qlen) */
    int qcolon;                 /* whether it has a ':' */
    oi_buf tag;                 /* current tag's names and values */
    oi_buf recs;                /* oi_xrec[] of the current start tag */
    size_t ndecl;               /* how many of them declare namespaces */
    oi_buf stack;               /* qnames of open elements, back to back */
    oi_buf stackoff;            /* size_t[]: where each one starts */
    oi_buf binds;               /* oi_xbind[] in scope */
    size_t defb;                /* 1 + the index in binds of the innermost
                                ** default namespace, 0 if none */
    oi_buf nsstr;               /* their prefixes and names */
    oi_buf attrs;               /* oi_xattr[] handed to start() */
    int pause;                  /* set by the consumer: stop before the
                                ** next byte; oi_xml_feed returns 0 and
                                ** off says how far it got */
} oi_xml;

/* Applies limits; buffers keep what they hold and obey the new bounds
** from their next growth. */
static void oi_xml_limits(oi_xml *x, size_t depth, size_t attrs, size_t name,
                          size_t stanza)
{
    x->max_depth = depth;
    x->max_attrs = attrs;
    x->max_name = name;
    x->max_stanza = stanza;
    x->tag.max = stanza + 1;            /* the stanza limit binds first */
    x->recs.max = attrs * sizeof(oi_xrec);
    x->attrs.max = attrs * sizeof(oi_xattr);
    x->stack.max = depth * (name + 1);
    x->stackoff.max = depth * sizeof(size_t);
    x->binds.max = (attrs * depth + 1) * sizeof(oi_xbind);
    x->nsstr.max = 2 * stanza + 64;     /* the root's and a stanza's */
}

static void oi_xml_init(oi_xml *x, oi_mem *m, const oi_xml_handler *h,
                        void *ud)
{
    memset(x, 0, sizeof *x);
    oi_cc_init();
    x->m = m;
    x->h = h;
    x->ud = ud;
    oi_xml_limits(x, OI_DEF_max_depth, OI_DEF_max_attrs, OI_DEF_max_name,
                  OI_DEF_max_stanza);
}

/* Forgets the stream (keeps allocations and limits) for a new one. */
static void oi_xml_reset(oi_xml *x)
{
    x->state = OI_XS_PROLOG;
    x->err = 0;
    x->err_msg = NULL;
    x->off = x->err_off = 0;
    x->depth = 0;
    x->in_stanza = 0;
    x->seen_root = 0;
    memset(&x->u8, 0, sizeof x->u8);
    x->tag.n = x->recs.n = x->stack.n = x->stackoff.n = 0;
    x->ndecl = 0;
    x->binds.n = x->nsstr.n = x->attrs.n = 0;
    x->defb = 0;
    x->nref = 0;
    x->brackets = 0;
    x->kw = x->cr = 0;
    x->pause = 0;
}

static void oi_xml_release(oi_xml *x)
{
    oi_buf_free(x->m, &x->tag);
    oi_buf_free(x->m, &x->recs);
    oi_buf_free(x->m, &x->stack);
    oi_buf_free(x->m, &x->stackoff);
    oi_buf_free(x->m, &x->binds);
    oi_buf_free(x->m, &x->nsstr);
    oi_buf_free(x->m, &x->attrs);
}

/* Records the first error and makes it sticky. */
static int oi_xml_fail(oi_xml *x, int err, const char *msg)
{
    if (!x->err) {
        x->err = err;
        x->err_msg = msg;
        x->err_off = x->off;
    }
    return x->err;
}

/* Maps a buffer failure to an error with a message naming the limit. */
static int oi_xml_bufrc(oi_xml *x, int rc, const char *limit_msg)
{
    if (rc == OLPCIDX_ENOMEM)
        return oi_xml_fail(x, rc, "out of memory");
    return oi_xml_fail(x, rc, limit_msg);
}

/* The namespace name of a declaration in scope. */
static oi_str oi_xml_bound(const oi_xml *x, const oi_xbind *b)
{
    /* xmlns='' may leave nsstr without a byte, p NULL */
    return b->ulen ? oi_mkstr(x->nsstr.p + b->uoff, b->ulen)
                   : oi_mkstr("", 0);
}

/* The default namespace in scope (empty if none is declared). */
static oi_str oi_xml_default(const oi_xml *x)
{
    if (x->defb == 0)
        return oi_mkstr("", 0);
    return oi_xml_bound(x, (const oi_xbind *)(void *)x->binds.p
                           + (x->defb - 1));
}

/* Looks up the namespace bound to a prefix (empty: the default one).
** Returns 0 and sets *ns, or -1 if the prefix is not declared. */
static int oi_xml_lookup(oi_xml *x, oi_str prefix, oi_str *ns)
{
    const oi_xbind *b = (const oi_xbind *)(void *)x->binds.p;
    size_t i = x->binds.n / sizeof(oi_xbind);
    if (prefix.n == 0) {
        *ns = oi_xml_default(x);
        return 0;
    }
    while (i-- > 0) {
        if (b[i].plen == prefix.n
            && memcmp(x->nsstr.p + b[i].poff, prefix.p, prefix.n) == 0) {
            *ns = oi_xml_bound(x, &b[i]);
            return 0;
        }
    }
    if (oi_eq(prefix, "xml")) {
        *ns = OI_LIT(OI_NS_XML);
        return 0;
    }
    return -1;
}

/* Whether two names of n bytes are the same (names are short: four
** bytes at a time costs less than a call to memcmp). */
static int oi_xml_same(const char *a, const char *b, size_t n)
{
    for (; n >= sizeof(uint32_t); n -= sizeof(uint32_t)) {
        uint32_t u, v;
        memcpy(&u, a, sizeof u);
        memcpy(&v, b, sizeof v);
        if (u != v)
            return 0;
        a += sizeof u;
        b += sizeof v;
    }
    if (n & 2) {                /* no loop for the last bytes */
        if (a[0] != b[0] || a[1] != b[1])
            return 0;
        a += 2;
        b += 2;
    }
    return !(n & 1) || *a == *b;
}

/* Copies a name of n bytes, four at a time (for the same reason). */
static void oi_xml_copy(char *d, const char *s, size_t n)
{
    uint32_t u;
    for (; n >= sizeof u; n -= sizeof u) {
        memcpy(&u, s, sizeof u);
        memcpy(d, &u, sizeof u);
        d += sizeof u;
        s += sizeof u;
    }
    if (n & 2) {                /* no loop for the last bytes either */
        d[0] = s[0];
        d[1] = s[1];
        d += 2;
        s += 2;
    }
    if (n & 1)
        *d = *s;
}

/* Splits a qualified name at its colon.  Returns -1 if it has more than
** one, or an empty prefix or local part. */
static int oi_xml_split(oi_str q, oi_str *prefix, oi_str *local)
{
    size_t i = 0, j;
    while (i < q.n && q.p[i] != ':')    /* names are short: no memchr */
        i++;
    if (i == q.n) {
        *prefix = oi_mkstr(q.p, 0);
        *local = q;
        return 0;
    }
    *prefix = oi_mkstr(q.p, i);
    *local = oi_mkstr(q.p + i + 1, q.n - i - 1);
    for (j = i + 1; j < q.n && q.p[j] != ':'; j++)
        ;
    if (i == 0 || local->n == 0 || j < q.n)
        return -1;
    return 0;
}

/* An element ended: drop the namespaces it declared and tell the
** consumer.  The caller has already popped its name, if it had one. */
static int oi_xml_close(oi_xml *x)
{
/* the declaration in scope whose bytes in x->binds end at n > 0 */
#define OI_XML_BIND_AT(n) ((const oi_xbind *)(void *)(x->binds.p + (n)) - 1)
    size_t n = x->binds.n;
    int rc;
    x->depth--;
    if (x->depth <= 1)
        x->in_stanza = 0;
    /* one test for most elements, which declare nothing */
    if (n > 0 && OI_XML_BIND_AT(n)->depth > x->depth) {
        do {
            x->nsstr.n = OI_XML_BIND_AT(n)->poff;
            n -= sizeof(oi_xbind);
        } while (n > 0 && OI_XML_BIND_AT(n)->depth > x->depth);
        x->binds.n = n;
        if (x->defb > n / sizeof(oi_xbind)) {   /* find the outer one */
            const oi_xbind *b = (const oi_xbind *)(void *)x->binds.p;
            while (--x->defb > 0 && b[x->defb - 1].plen != 0)
                ;
        }
    }
#undef OI_XML_BIND_AT
    rc = x->h->end(x->ud);
    if (rc != 0)
        return oi_xml_fail(x, rc, "stopped by the consumer");
    return 0;
}

/* The start tag is complete: declare its namespaces, resolve its names,
** check attribute uniqueness, push it and tell the consumer.  Also ends
** an empty element at once.  The offsets in x->recs and x->qlen are into
** t: x->tag, or the caller's buffer when the whole tag was in it. */
static int oi_xml_start(oi_xml *x, const char *t, int empty)
{
    const oi_xrec *r = (const oi_xrec *)(void *)x->recs.p;
    size_t nrec = x->recs.n / sizeof(oi_xrec), i, j, na = 0, npre = 0;
    oi_str qname = oi_mkstr(t, x->qlen), prefix, local, ns;
    oi_xattr *a;
    int rc;

    if (x->depth + 1 > x->max_depth)
        return oi_xml_fail(x, OLPCIDX_ELIMIT, "elements nested too deep");
    if (x->depth == 0 && x->seen_root)
        return oi_xml_fail(x, OLPCIDX_EXML, "second root element");
    for (i = 0; x->ndecl && i < nrec; i++) {  /* 1: namespace declarations */
        oi_str q, v;
        oi_xbind b;
        if (!r[i].decl)
            continue;
        q = oi_mkstr(t + r[i].qoff, r[i].qlen);
        v = oi_mkstr(t + r[i].voff, r[i].vlen);
        if (r[i].decl == 1) {
            b.plen = 0;
            if (oi_eq(v, OI_NS_XML) || oi_eq(v, OI_NS_XMLNS))
                return oi_xml_fail(x, OLPCIDX_EXML, "the xml or xmlns "
                                   "namespace as the default namespace");
        } else {                        /* 2: xmlns:prefix */
            b.plen = q.n - 6;
            if (v.n == 0)
                return oi_xml_fail(x, OLPCIDX_EXML,
                                   "prefix bound to an empty namespace");
            /* Namespaces in XML 1.0, section 3: xml is bound to its own
            ** namespace only, and nothing else to it; xmlns's namespace
            ** is bound to no prefix */
            if (oi_eq(oi_mkstr(q.p + 6, q.n - 6), "xml")
                != oi_eq(v, OI_NS_XML) || oi_eq(v, OI_NS_XMLNS))
                return oi_xml_fail(x, OLPCIDX_EXML, "the xml prefix or "
                                   "namespace misbound");
            if (oi_eq(oi_mkstr(q.p + 6, q.n - 6), "xmlns"))
                return oi_xml_fail(x, OLPCIDX_EXML,
                                   "prefix xmlns cannot be declared");
            if (memchr(q.p + 6, ':', q.n - 6))
                return oi_xml_fail(x, OLPCIDX_EXML,
                                   "malformed namespace prefix");
        }
        b.poff = x->nsstr.n;
        b.uoff = b.poff + b.plen;
        b.ulen = v.n;
        b.depth = x->depth + 1;
        /* room for both first, then copies without further checks */
        rc = OI_BUF_RESERVE(x->m, &x->nsstr, b.plen + v.n);
        if (rc == OLPCIDX_OK)
            rc = OI_BUF_RESERVE(x->m, &x->binds, sizeof b);
        if (rc != OLPCIDX_OK)
            return oi_xml_bufrc(x, rc, "too many namespace declarations");
        memcpy(x->binds.p + x->binds.n, &b, sizeof b);
        x->binds.n += sizeof b;
        if (b.plen == 0)
            x->defb = x->binds.n / sizeof(oi_xbind);
        if (b.plen + v.n > 0) {         /* xmlns='' may leave p NULL */
            oi_xml_copy(x->nsstr.p + b.poff, q.p + q.n - b.plen, b.plen);
            memcpy(x->nsstr.p + b.uoff, v.p, v.n);
            x->nsstr.n += b.plen + v.n;
        }
    }
    rc = OI_BUF_RESERVE(x->m, &x->attrs, nrec * sizeof(oi_xattr));
    if (rc != OLPCIDX_OK)
        return oi_xml_bufrc(x, rc, "too many attributes");
    a = (oi_xattr *)(void *)x->attrs.p;
    for (i = 0; i < nrec; i++) {        /* 2: other attributes */
        oi_xattr *o = a + na;           /* written in place */
        if (r[i].decl)
            continue;
        o->ns = oi_mkstr("", 0);
        o->name = oi_mkstr(t + r[i].qoff, r[i].qlen);
        o->value = oi_mkstr(t + r[i].voff, r[i].vlen);
        if (r[i].colon) {               /* prefixed: its namespace */
            if (oi_xml_split(o->name, &prefix, &o->name) < 0)
                return oi_xml_fail(x, OLPCIDX_EXML,
                                   "malformed attribute name");
            if (oi_xml_lookup(x, prefix, &o->ns) < 0)
                return oi_xml_fail(x, OLPCIDX_EXML, "undeclared prefix");
            npre++;
        }
        na++;
    }
    for (i = 0; i + 1 < nrec; i++)      /* 3: uniqueness, both ways */
        for (j = i + 1; j < nrec; j++)  /* (the first bytes: a quick no) */
            if (r[i].qlen == r[j].qlen && t[r[i].qoff] == t[r[j].qoff]
                && oi_xml_same(t + r[i].qoff, t + r[j].qoff, r[i].qlen))
                return oi_xml_fail(x, OLPCIDX_EXML, "duplicate attribute");
    for (i = 0; npre && i + 1 < na; i++)  /* none prefixed: as above */
        for (j = i + 1; j < na; j++)
            if (oi_streq(a[i].name, a[j].name) && oi_streq(a[i].ns, a[j].ns))
                return oi_xml_fail(x, OLPCIDX_EXML,
                                   "duplicate attribute after namespace "
                                   "resolution");
    if (!x->qcolon) {
        local = qname;
        ns = oi_xml_default(x);
    } else if (oi_xml_split(qname, &prefix, &local) < 0) {
        return oi_xml_fail(x, OLPCIDX_EXML, "malformed element name");
    } else if (oi_xml_lookup(x, prefix, &ns) < 0) {
        return oi_xml_fail(x, OLPCIDX_EXML, "undeclared prefix");
    }
    if (!empty) {                       /* 4: push for the end tag */
        size_t at = x->stack.n;
        rc = OI_BUF_RESERVE(x->m, &x->stack, qname.n);
        if (rc == OLPCIDX_OK)
            rc = OI_BUF_RESERVE(x->m, &x->stackoff, sizeof at);
        if (rc != OLPCIDX_OK)
            return oi_xml_bufrc(x, rc, "elements nested too deep");
        oi_xml_copy(x->stack.p + at, qname.p, qname.n);
        x->stack.n += qname.n;
        memcpy(x->stackoff.p + x->stackoff.n, &at, sizeof at);
        x->stackoff.n += sizeof at;
    }
    x->seen_root = 1;
    x->depth++;
    if (x->depth == 1)
        x->in_stanza = 0;               /* the root tag is complete */
    rc = x->h->start(x->ud, ns, local, a, na);
    if (rc != 0)
        return oi_xml_fail(x, rc, "stopped by the consumer");
    if (empty)
        return oi_xml_close(x);
    return 0;
}

/* The stanza (or the stream header) passed max_stanza bytes.  The
** offset reported is that of its first byte over the limit, however the
** input was split, so that the error is the same for any feed pattern. */
static int oi_xml_toobig(oi_xml *x)
{
    x->off = x->stanza_start + x->max_stanza;
    return oi_xml_fail(x, OLPCIDX_ELIMIT, "stanza too large");
}

/* Decodes the reference in x->ref (XML 1.0 sections 4.1 and 4.6) into
** out.  Returns its length, or a negative error code. */
static int oi_xml_deref(oi_xml *x, char out[4])
{
    static const struct { const char *name; char c; } pre[] = {
        {"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}
    };
    oi_str r = oi_mkstr(x->ref, x->nref);
    uint64_t v = 0;             /* 11 characters: 36 bits at most */
    size_t i;
    for (i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (oi_eq(r, pre[i].name)) {
            out[0] = pre[i].c;
            return 1;
        }
    if (r.n < 2 || r.p[0] != '#')
        return oi_xml_fail(x, r.n ? OLPCIDX_ERESTRICTED : OLPCIDX_EXML,
                           r.n ? "entity other than the five predefined"
                               : "empty reference");
    if (r.p[1] == 'x') {
        if (r.n < 3)
            return oi_xml_fail(x, OLPCIDX_EXML,
                               "malformed character reference");
        for (i = 2; i < r.n; i++) {
            int c = (unsigned char)r.p[i], d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                d = (c | 0x20) - 'a' + 10;
            else
                return oi_xml_fail(x, OLPCIDX_EXML,
                                   "malformed character reference");
            v = v * 16 + (uint64_t)d;
        }
    } else {
        for (i = 1; i < r.n; i++) {
            int c = (unsigned char)r.p[i];
            if (c < '0' || c > '9')
                return oi_xml_fail(x, OLPCIDX_EXML,
                                   "malformed character reference");
            v = v * 10 + (uint64_t)(c - '0');
        }
    }
    /* x->ref holds at most 11 characters: v cannot overflow 64 bits, on
    ** any target; the range test below catches what is beyond U+10FFFF. */
    if (!(v == 0x9 || v == 0xA || v == 0xD || (v >= 0x20 && v <= 0xD7FF)
          || (v >= 0xE000 && v <= 0xFFFD) || (v >= 0x10000 && v <= 0x10FFFF)))
        return oi_xml_fail(x, OLPCIDX_EXML,
                           "character reference to a character XML forbids");
    return (int)oi_u8_put(out, (unsigned long)v);
}

/* The XML declaration's body is kept whole to be checked: its longest
** useful form is under 60 bytes. */
#define OI_XML_DECL_MAX 256

/* Whether the name in p[0..n), valid UTF-8 whose ASCII bytes the class
** table already passed, has only XML 1.0 (fifth edition) name characters
** above U+007F (section 2.3, NameStartChar and NameChar).  The first
** character, and the first after a prefix's ':', must be a start
** character; the rest may also be the combining marks and the few
** punctuation characters NameChar adds. */
static int oi_xml_namechars(const unsigned char *p, size_t n)
{
    static const unsigned long start[][2] = {
        {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x2FF}, {0x370, 0x37D},
        {0x37F, 0x1FFF}, {0x200C, 0x200D}, {0x2070, 0x218F},
        {0x2C00, 0x2FEF}, {0x3001, 0xD7FF}, {0xF900, 0xFDCF},
        {0xFDF0, 0xFFFD}, {0x10000, 0xEFFFF}
    };
    size_t i = 0, k;
    int first = 1;
    while (i < n) {
        unsigned long c = p[i];
        int ok = 0;
        if (c < 0x80) {
            first = c == ':';
            i++;
            continue;
        }
        k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
        c &= 0x3F >> k;
        while (k-- && ++i < n)
            c = c << 6 | (p[i] & 0x3F);
        i++;
        for (k = 0; k < sizeof start / sizeof start[0] && !ok; k++)
            ok = c >= start[k][0] && c <= start[k][1];
        if (!ok && !first)
            ok = c == 0xB7 || (c >= 0x300 && c <= 0x36F)
                 || (c >= 0x203F && c <= 0x2040);
        if (!ok)
            return 0;
        first = 0;
    }
    return 1;
}

/* Where the whitespace (XML 1.0 S) from p[i] ends, at most at n. */
static size_t oi_xml_skipws(const char *p, size_t i, size_t n)
{
    while (i < n && (oi_cc[(unsigned char)p[i]] & OI_CC_WS))
        i++;
    return i;
}

/* Checks the body of the XML declaration, between "<?xml" and its
** whitespace and "?>" (XML 1.0 section 2.8): a version 1.x first, then
** optionally the encoding, which must be UTF-8 (RFC 6120 section 11.6),
** and standalone.  Returns NULL, or what is wrong. */
static const char *oi_xml_decl(const char *p, size_t n)
{
    static const char *const key[3] = {"version", "encoding", "standalone"};
    size_t i = 0, len = 0, v, ws;
    int k = 0;
    char q;
    for (;;) {
        ws = i;
        i = oi_xml_skipws(p, i, n);
        if (i == n)
            break;
        if (k > 0 && i == ws)
            return "malformed XML declaration";
        for (; k < 3; k++) {
            len = strlen(key[k]);
            if (n - i >= len && memcmp(p + i, key[k], len) == 0)
                break;
            if (k == 0)
                return "XML declaration without a version first";
        }
        if (k == 3)
            return "malformed XML declaration";
        i = oi_xml_skipws(p, i + len, n);
        if (i == n || p[i++] != '=')
            return "malformed XML declaration";
        i = oi_xml_skipws(p, i, n);
        if (i == n || (p[i] != '\'' && p[i] != '"'))
            return "malformed XML declaration";
        q = p[i++];
        for (v = i; i < n && p[i] != q;)
            i++;
        if (i == n)
            return "malformed XML declaration";
        if (k == 0) {
            if (i - v < 3 || p[v] != '1' || p[v + 1] != '.'
                || strspn(p + v + 2, "0123456789") < i - v - 2)
                return "XML declaration: version other than 1.x";
        } else if (k == 1) {
            if (i - v != 5 || (p[v] | 0x20) != 'u' || (p[v + 1] | 0x20) != 't'
                || (p[v + 2] | 0x20) != 'f' || p[v + 3] != '-' || p[v + 4] != '8')
                return "XML declaration: encoding other than UTF-8";
        } else if (!(i - v == 3 && memcmp(p + v, "yes", 3) == 0)
                   && !(i - v == 2 && memcmp(p + v, "no", 2) == 0)) {
            return "XML declaration: standalone other than yes or no";
        }
        i++;
        k++;
    }
    return k ? NULL : "XML declaration without a version";
}

/* Appends to the current tag, enforcing the tag and name limits. */
static int oi_xml_tagadd(oi_xml *x, const void *p, size_t n)
{
    int rc;
    if (n == 0)
        return 0;
    if (n <= x->tag.cap - x->tag.n) {   /* the common case: room enough */
        memcpy(x->tag.p + x->tag.n, p, n);
        x->tag.n += n;
        return 0;
    }
    rc = oi_buf_add(x->m, &x->tag, p, n);
    if (rc == OLPCIDX_ELIMIT)
        return oi_xml_toobig(x);
    if (rc != OLPCIDX_OK)
        return oi_xml_fail(x, rc, "out of memory");
    return 0;
}

static int oi_xml_text(oi_xml *x, const void *p, size_t n)
{
    int rc;
    if (n == 0)
        return 0;
    rc = x->h->text(x->ud, (const char *)p, n);
    if (rc != 0)
        return oi_xml_fail(x, rc, "stopped by the consumer");
    return 0;
}

/* Records an attribute whose qualified name is t[qoff, qoff + qlen), its
** value to come; notes whether it declares a namespace. */
static int oi_xml_addrec(oi_xml *x, const char *t, size_t qoff, size_t qlen,
                         int colon)
{
    oi_xrec *r;
    int rc = OI_BUF_RESERVE(x->m, &x->recs, sizeof *r);
    if (rc != OLPCIDX_OK)
        return rc;
    r = (oi_xrec *)(void *)(x->recs.p + x->recs.n);
    x->recs.n += sizeof *r;
    r->qoff = qoff;
    r->qlen = qlen;
    r->voff = r->vlen = 0;
    r->colon = colon;
    r->decl = 0;
    if (qlen >= 5 && memcmp(t + qoff, "xmlns", 5) == 0) {
        r->decl = qlen == 5 ? 1 : qlen > 6 && t[qoff + 5] == ':' ? 2 : 0;
        x->ndecl += r->decl != 0;
    }
    return OLPCIDX_OK;
}

/*
** Word-at-a-time scanning of text and attribute values.  A run of plain
** ASCII is skipped a machine word at a time (8 bytes, or 4 on 32-bit
** machines such as the XO-1) while the word holds none of the bytes that
** end the run.  The word is assembled from the bytes in memory order,
** the first one least significant, whatever the machine's byte order:
** the result is the same on little- and big-endian machines (compilers
** make the assembly one load where the byte order allows; no alignment
** is assumed, and nothing beyond C99 is needed -- the XO-1's Geode has no
** SIMD to use).
**
** The tests are the classic ones for a zero byte in a word (Hacker's
** Delight 6-1).  Of bytes below 0x80, subtracting 0x0101.. sets the top
** bit of one that is 0, or that is 1 when the byte below borrowed from
** it, and a byte borrows from the one above only if its own top bit got
** set; XOR with a byte repeated turns that byte into 0.  Subtracting a
** byte c repeated flags the bytes below c the same way, and bytes of
** 0x80 and above are flagged by v's own top bits.  A borrow starts only
** at a flagged byte and runs upwards, so the lowest flagged byte -- the
** first in memory -- is always a real one, whatever the bytes above it.
** Its index k comes from the lowest set bit by a multiply: that bit
** alone, 2^(8k+7), shifted to 2^8k, times OI_W_INDEX (whose byte j is
** w-1-j, for w bytes a word) puts byte w-1-k of it, k, in the top byte.
*/
#if SIZE_MAX > 0xFFFFFFFFu
typedef uint64_t oi_word;
#define OI_W_LOAD(p) ((oi_word)(p)[0] | (oi_word)(p)[1] << 8 \
                      | (oi_word)(p)[2] << 16 | (oi_word)(p)[3] << 24 \
                      | (oi_word)(p)[4] << 32 | (oi_word)(p)[5] << 40 \
                      | (oi_word)(p)[6] << 48 | (oi_word)(p)[7] << 56)
#define OI_W_INDEX   ((oi_word)0x0001020304050607u)
#else
typedef uint32_t oi_word;
#define OI_W_LOAD(p) ((oi_word)(p)[0] | (oi_word)(p)[1] << 8 \
                      | (oi_word)(p)[2] << 16 | (oi_word)(p)[3] << 24)
#define OI_W_INDEX   ((oi_word)0x00010203u)
#endif
#define OI_W_ONES  ((oi_word)-1 / 0xFF)         /* 0x0101...01 */
#define OI_W_HIGH  (OI_W_ONES * 0x80)           /* 0x8080...80 */
#define OI_W_HAS(v, c)  (((v) ^ (OI_W_ONES * (c))) - OI_W_ONES)
/* the index of the first flagged byte of a non-zero mask m */
#define OI_W_FIRST(m) ((size_t)(((((m) & (0 - (m))) >> 7) * OI_W_INDEX) \
                                >> (8 * sizeof(oi_word) - 8)))

/* The words that may hold a text stop ('<', '&', ']', controls and CR)
** or an attribute-value stop ('<', both quotes, '&', controls); bytes
** >= 0x80 stop both.  Each test takes as few operations as it can, at
** the price of a few bytes flagged that are no stop, which the loop
** below then passes one at a time.  Text: bytes below 0x20 (so TAB and
** LF too), '&', and '<' and ']' at once, as the bytes that become 0x7D
** when 0x61 is or-ed in (0x3C and 0x5D; also '=', backslash, '|' and
** '}').  Values: every byte below 0x28, both quotes and '&' among them
** (and ' ', '!', '#', '$', '%'), and '<'.  The extra bytes are rare in
** the values and text of XMPP. */
#define OI_W_TEXT(v) (((v) | ((v) - OI_W_ONES * 0x20) | OI_W_HAS(v, '&') \
                       | OI_W_HAS((v) | OI_W_ONES * 0x61, '}')) & OI_W_HIGH)
#define OI_W_AVAL(v) (((v) | ((v) - OI_W_ONES * 0x28) | OI_W_HAS(v, '<')) \
                      & OI_W_HIGH)

/* Where a run of bytes without the class bits stop ends in [p, end): the
** first byte with one of them, or end.  Words are tested with test, one
** of the two above, which finds every byte with those bits and maybe a
** few others. */
#define OI_XML_SKIP(name, test, stop)                                       \
static const unsigned char *name(const unsigned char *p,                    \
                                 const unsigned char *end)                  \
{                                                                           \
    oi_word v, m;                                                           \
    const unsigned char *last;  /* the last place a whole word starts */    \
    if ((size_t)(end - p) >= sizeof v) {                                    \
        last = end - sizeof v;                                              \
        while (p <= last) {                                                 \
            v = OI_W_LOAD(p);                                               \
            m = test(v);                                                    \
            if (!m) {                                                       \
                p += sizeof v;                                              \
                continue;                                                   \
            }                                                               \
            p += OI_W_FIRST(m);                                             \
            if (oi_cc[*p] & (stop))                                         \
                return p;                                                   \
            p++;                /* flagged, not a stop: passed */           \
        }                                                                   \
    }                                                                       \
    while (p < end && !(oi_cc[*p] & (stop)))                                \
        p++;                                                                \
    return p;                                                               \
}
OI_XML_SKIP(oi_xml_skip_text, OI_W_TEXT, OI_CC_TSTOP)
OI_XML_SKIP(oi_xml_skip_aval, OI_W_AVAL, OI_CC_ASTOP)

/* Where the bytes the current stanza may still take end in the feed
** [b, end) whose first byte is at stream offset base: end, or before. */
static const unsigned char *oi_xml_lim(const oi_xml *x,
                                       const unsigned char *b,
                                       const unsigned char *end,
                                       uint64_t base)
{
    uint64_t l = x->stanza_start + x->max_stanza;
    if (!x->in_stanza)
        return end;
    if (l <= base)
        return b;
    return l - base < (uint64_t)(end - b) ? b + (size_t)(l - base) : end;
}

/* Where a name of ASCII name characters from p ends, at most at lim;
** *colon tells whether it has a ':' (the loop stops at one, which is
** rare, rather than gather the classes of every byte). */
static const unsigned char *oi_xml_name(const unsigned char *p,
                                        const unsigned char *lim,
                                        int *colon)
{
    *colon = 0;
    for (;;) {
        /* four bytes a step while four remain, with one bound check
        ** for them (names are short: a test of a word at a time, as
        ** for values, costs more than it saves here) */
        for (; lim - p >= 4; p += 4) {
            if (oi_cc[p[0]] & (OI_CC_NSTOP | OI_CC_COLON))
                goto stop;
            if (oi_cc[p[1]] & (OI_CC_NSTOP | OI_CC_COLON)) {
                p += 1;
                goto stop;
            }
            if (oi_cc[p[2]] & (OI_CC_NSTOP | OI_CC_COLON)) {
                p += 2;
                goto stop;
            }
            if (oi_cc[p[3]] & (OI_CC_NSTOP | OI_CC_COLON)) {
                p += 3;
                goto stop;
            }
        }
        while (p < lim && !(oi_cc[*p] & (OI_CC_NSTOP | OI_CC_COLON)))
            p++;
    stop:
        if (p == lim || *p != ':')
            return p;
        *colon = 1;
        p++;
    }
}

/* A start tag read whole from the caller's buffer: p is just after its
** '<', lim where the feed or the stanza limit ends.  Only the plain case
** is read here -- ASCII names; values without references, TAB, CR or LF
** (which need decoding or normalising); the whole tag before lim -- and
** nothing is consumed otherwise: the state machine then reads the tag
** from p, and finds any error in it.  On success returns the byte after
** '>', with x->qlen and x->recs filled (offsets from p) and *empty set;
** else NULL. */
static const unsigned char *oi_xml_fasttag(oi_xml *x, const unsigned char *p,
                                           const unsigned char *lim,
                                           int *empty)
{
    const unsigned char *t = p, *a, *ws;
    oi_xrec *r;
    oi_u8 u;
    size_t nrec = 0;
    unsigned q;
    int colon;

    x->recs.n = x->ndecl = 0;
    p = oi_xml_name(p, lim, &x->qcolon);
    if (p == lim || p == t || (size_t)(p - t) > x->max_name
        || !(oi_cc[*t] & OI_CC_NSTART))
        return NULL;
    x->qlen = (size_t)(p - t);
    for (;;) {                  /* p < lim throughout: each step checks */
        ws = p;
        while (oi_cc[*p] & OI_CC_WS)
            if (++p == lim)
                return NULL;
        if (*p == '>') {
            *empty = 0;
            return p + 1;
        }
        if (*p == '/') {
            if (lim - p < 2 || p[1] != '>')
                return NULL;
            *empty = 1;
            return p + 2;
        }
        if (p == ws || !(oi_cc[*p] & OI_CC_NSTART) || nrec >= x->max_attrs)
            return NULL;
        a = p;
        p = oi_xml_name(p, lim, &colon);
        if (p == lim || (size_t)(p - a) > x->max_name
            || oi_xml_addrec(x, (const char *)t, (size_t)(a - t),
                             (size_t)(p - a), colon) != OLPCIDX_OK)
            return NULL;
        nrec++;
        while (oi_cc[*p] & OI_CC_WS)
            if (++p == lim)
                return NULL;
        if (*p != '=' || ++p == lim)
            return NULL;
        while (oi_cc[*p] & OI_CC_WS)
            if (++p == lim)
                return NULL;
        if (*p != '"' && *p != '\'')
            return NULL;
        q = *p++;
        for (a = p;;) {
            p = oi_xml_skip_aval(p, lim);
            if (p == lim)
                return NULL;
            if (*p == q)
                break;
            if (*p == '"' || *p == '\'') {    /* the other quote */
                p++;
                continue;
            }
            if (*p < 0x80)              /* '&', '<', a control */
                return NULL;
            memset(&u, 0, sizeof u);    /* a whole UTF-8 sequence */
            do {
                if (oi_u8_step(&u, *p++) < 0)
                    return NULL;
            } while (u.need && p < lim);
            if (u.need)
                return NULL;
        }
        r = (oi_xrec *)(void *)(x->recs.p + x->recs.n - sizeof(oi_xrec));
        r->voff = (size_t)(a - t);
        r->vlen = (size_t)(p - a);
        if (++p == lim)
            return NULL;
    }
}

/* Skips a run of bytes whose classes have none of the bits in stop,
** validating UTF-8 on the way (bytes >= 0x80 continue the run when they
** form valid sequences, and a sequence may straddle feeds).  Returns
** where it stopped: end, or an ASCII byte with a stop bit; *bad is set,
** and the return value points at the offending byte, on invalid UTF-8. */
static const unsigned char *oi_xml_run(oi_u8 *u, const unsigned char *p,
                                       const unsigned char *end,
                                       unsigned char stop, int *bad)
{
    *bad = 0;
    for (;;) {
        while (u->need && p < end) {            /* continuation bytes */
            if (oi_u8_step(u, *p) < 0) {
                *bad = 1;
                return p;
            }
            p++;
        }
        if (u->need)
            return p;                           /* continues next feed */
        if (stop == OI_CC_NSTOP)
            while (p < end && !(oi_cc[*p] & stop))
                p++;
        else
            p = stop == OI_CC_TSTOP ? oi_xml_skip_text(p, end)
                                    : oi_xml_skip_aval(p, end);
        if (p == end || *p < 0x80)
            return p;
        /* Whole sequences of two bytes, and of three whose lead byte
        ** allows every continuation (not E0, ED, EF: see oi_u8_step),
        ** are passed at once: most text beyond ASCII is made of them. */
        if (*p >= 0xC2 && *p <= 0xDF && end - p >= 2
            && (p[1] & 0xC0) == 0x80) {
            p += 2;
            continue;
        }
        if (*p >= 0xE1 && *p <= 0xEE && *p != 0xED && end - p >= 3
            && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
            p += 3;
            continue;
        }
        if (oi_u8_step(u, *p) < 0) {            /* a lead byte */
            *bad = 1;
            return p;
        }
        p++;
    }
}

/*
** Feeds n bytes.  Returns 0 when all were consumed, or the sticky error.
** The offset of buf[0] in the stream is x->off on entry.
*/
static int oi_xml_feed(oi_xml *x, const char *buf, size_t n)
{
    const unsigned char *b = (const unsigned char *)buf;
    const unsigned char *p = b, *end = b + n, *s, *full;
    uint64_t base = x->off;
    unsigned c;
    oi_xrec *rec;
    char dec[4];
    size_t top;
    int rc, bad, empty;

#define OI_POS() (x->off = base + (uint64_t)(p - b))
#define OI_FAIL(code, msg) do { OI_POS(); return oi_xml_fail(x, code, msg); \
                              } while (0)
#define OI_TRY(expr) do { if ((rc = (expr)) != 0) return rc; } while (0)
/* Whether the stanza may take no more bytes, the one at p included:
** full is where it ends in this feed.  OI_LIMIT() sets it again after a
** tag, if the tag may have started or ended a stanza (x->in_stanza and
** x->stanza_start change only at depths 0 and 1). */
#define OI_FULL() (p >= full)
#define OI_LIMIT() \
    (full = x->depth <= 1 ? oi_xml_lim(x, b, end, base) : full)

    if (x->err)
        return x->err;
    full = oi_xml_lim(x, b, end, base);
    while (p < end && !x->pause) {
        if (OI_FULL())
            return oi_xml_toobig(x);
        switch (x->state) {
        case OI_XS_PROLOG:              /* only whitespace around the root */
        case OI_XS_DONE:
            c = *p;
            if (oi_cc[c] & OI_CC_WS) {
                p++;
            } else if (c == '<' && x->state == OI_XS_PROLOG) {
                p++;
                x->state = OI_XS_LT;
            } else {
                OI_FAIL(OLPCIDX_EXML, x->state == OI_XS_DONE
                        ? "content after the root element"
                        : "text before the root element");
            }
            break;

        case OI_XS_TEXT:
            if (*p == '<' && !x->u8.need) {   /* no text between tags */
                p++;
                x->state = OI_XS_LT;
                x->cr = 0;
                x->brackets = 0;
                if (p < end && !OI_FULL())
                    goto lt;
                break;
            }
            if (x->cr && *p == '\n')   /* LF of a CR LF split by a feed */
                p++;
            x->cr = 0;
            s = p;
            /* "]]>" may not stand in text (XML 1.0 2.4): x->brackets
            ** counts the ']' just before p, across feeds too. */
            for (;;) {
                if (p < end && *p != ']') {
                    if (*p == '>' && x->brackets >= 2)
                        OI_FAIL(OLPCIDX_EXML, "']]>' in text");
                    x->brackets = 0;
                }
                p = oi_xml_run(&x->u8, p, end, OI_CC_TSTOP, &bad);
                if (bad)
                    OI_FAIL(OLPCIDX_EXML, "invalid UTF-8");
                if (p < end && *p != ']')
                    x->brackets = 0;    /* the run had other bytes */
                if (p == end || *p != ']')
                    break;
                for (; p < end && *p == ']'; p++)
                    x->brackets++;
            }
            OI_POS();
            OI_TRY(oi_xml_text(x, s, (size_t)(p - s)));
            if (p == end)
                break;
            c = *p++;
            if (c == '<') {
                x->state = OI_XS_LT;
                if (p < end && !OI_FULL())
                    goto lt;
            } else if (c == '&') {
                x->state = OI_XS_REF;
                x->ret = OI_XS_TEXT;
                x->nref = 0;
            } else if (c == '\r') {     /* XML 1.0 2.11: CR LF and CR -> LF */
                OI_TRY(oi_xml_text(x, "\n", 1));
                if (p < end && *p == '\n')
                    p++;
                else if (p == end)
                    x->cr = 1;
            } else {
                OI_FAIL(OLPCIDX_EXML, "control character in text");
            }
            break;

        case OI_XS_REF:
            c = *p++;
            if (c == ';') {
                OI_POS();
                if ((rc = oi_xml_deref(x, dec)) < 0)
                    return rc;
                x->state = x->ret;
                if (x->ret == OI_XS_TEXT) {
                    OI_TRY(oi_xml_text(x, dec, (size_t)rc));
                } else {
                    OI_TRY(oi_xml_tagadd(x, dec, (size_t)rc));
                    x->cr = 0;
                }
            } else if (x->nref < sizeof x->ref - 1 && c != ':'
                       && ((oi_cc[c] & OI_CC_NAME) || (c == '#' && !x->nref))) {
                x->ref[x->nref++] = (char)c;
            } else {
                OI_FAIL(OLPCIDX_EXML, "malformed reference");
            }
            break;

        case OI_XS_LT:
        lt:                             /* from text directly, too */
            c = *p;
            if (c == '/') {
                p++;
                if (x->depth == 0)
                    OI_FAIL(OLPCIDX_EXML, "end tag before the root element");
                /* The common case at once: the open element's name, then
                ** '>', all in this feed.  Else the state machine reads it
                ** (and the name it read is compared at its '>'). */
                top = ((size_t *)(void *)x->stackoff.p)
                      [x->stackoff.n / sizeof(size_t) - 1];
                if ((size_t)(full - p) > x->stack.n - top
                    && oi_xml_same((const char *)p, x->stack.p + top,
                                   x->stack.n - top)) {
                    s = p + (x->stack.n - top);
                    while (s < full && (oi_cc[*s] & OI_CC_WS))
                        s++;
                    if (s < full && *s == '>') {
                        x->stack.n = top;
                        x->stackoff.n -= sizeof(size_t);
                        p = s + 1;
                        OI_POS();
                        OI_TRY(oi_xml_close(x));
                        OI_LIMIT();
                        x->state = x->depth ? OI_XS_TEXT : OI_XS_DONE;
                        x->cr = 0;
                        break;
                    }
                }
                x->state = OI_XS_ETAG;
                x->tag.n = 0;
                x->name_start = 0;
            } else if (c == '!') {
                p++;
                x->state = OI_XS_BANG;
                x->kw = 0;
            } else if (c == '?') {
                /* Only the XML declaration, and only as the first bytes
                ** of the stream (XML 1.0 section 2.8, RFC 6120 11.1). */
                if (base + (uint64_t)(p - b) != 1)
                    OI_FAIL(OLPCIDX_ERESTRICTED, "processing instruction");
                p++;
                x->state = OI_XS_PI;
                x->kw = 0;
            } else if ((oi_cc[c] & OI_CC_NSTART) || c >= 0x80) {
                if (x->depth <= 1) {    /* a stanza, or the root tag */
                    x->in_stanza = 1;
                    x->stanza_start = base + (uint64_t)(p - b) - 1;
                    OI_LIMIT();
                }
                s = oi_xml_fasttag(x, p, full, &empty);
                if (s) {                /* read whole: no state to keep */
                    const unsigned char *t = p;
                    p = s;
                    OI_POS();
                    OI_TRY(oi_xml_start(x, (const char *)t, empty));
                    OI_LIMIT();
                    x->state = x->depth ? OI_XS_TEXT : OI_XS_DONE;
                    x->cr = 0;
                    break;
                }
                x->state = OI_XS_STAG;
                x->tag.n = 0;
                x->recs.n = x->ndecl = 0;
                x->name_start = 0;
            } else {
                OI_FAIL(OLPCIDX_EXML, "invalid character after '<'");
            }
            break;

        case OI_XS_BANG:                /* kw: bytes of "[CDATA[" seen */
            c = *p++;
            if (x->kw == 0 && c == '-')
                OI_FAIL(OLPCIDX_ERESTRICTED, "comment");
            if (x->kw == 0 && c == 'D')
                OI_FAIL(OLPCIDX_ERESTRICTED, "document type declaration");
            if (c != (unsigned char)"[CDATA["[x->kw])
                OI_FAIL(OLPCIDX_EXML, "malformed markup after '<!'");
            if (++x->kw == 7) {
                if (x->depth == 0)
                    OI_FAIL(OLPCIDX_EXML, "CDATA outside the root element");
                x->state = OI_XS_CDATA;
                x->brackets = 0;
            }
            break;

        case OI_XS_CDATA:               /* brackets: ']' held, at most 2 */
            if (x->cr && *p == '\n')   /* LF of a CR LF split by a feed */
                p++;
            x->cr = 0;
            s = p;
            while (p < end) {
                c = *p;
                if (c == ']') {
                    OI_POS();
                    OI_TRY(oi_xml_text(x, s, (size_t)(p - s)));
                    if (x->brackets == 2)
                        OI_TRY(oi_xml_text(x, "]", 1));
                    else
                        x->brackets++;
                    s = ++p;
                    continue;
                }
                if (x->brackets) {
                    if (c == '>' && x->brackets == 2) {
                        p++;
                        x->brackets = 0;
                        x->state = OI_XS_TEXT;
                        s = p;
                        break;
                    }
                    OI_TRY(oi_xml_text(x, "]]", x->brackets));
                    x->brackets = 0;
                }
                /* the text stops are plain here but for controls */
                p = oi_xml_run(&x->u8, p, end, OI_CC_TSTOP, &bad);
                if (bad)
                    OI_FAIL(OLPCIDX_EXML, "invalid UTF-8");
                if (p < end && *p == '\r') {  /* XML 1.0 2.11, as in text */
                    OI_POS();
                    OI_TRY(oi_xml_text(x, s, (size_t)(p - s)));
                    OI_TRY(oi_xml_text(x, "\n", 1));
                    if (++p < end && *p == '\n')
                        p++;
                    else if (p == end)
                        x->cr = 1;
                    s = p;
                } else if (p < end && *p != ']') {
                    if (*p < 0x20 && *p != '\t' && *p != '\n')
                        OI_FAIL(OLPCIDX_EXML, "control character in CDATA");
                    p++;
                }
            }
            OI_POS();
            if (x->state == OI_XS_CDATA)
                OI_TRY(oi_xml_text(x, s, (size_t)(p - s)));
            break;

        case OI_XS_PI:  /* kw: 0-2 "xml", 3 needs space, 4 body, 5 '?' */
            c = *p++;
            if (x->kw < 3) {
                if (c != (unsigned char)"xml"[x->kw])
                    OI_FAIL(OLPCIDX_ERESTRICTED, "processing instruction");
                x->kw++;
            } else if (x->kw == 3) {
                if (!(oi_cc[c] & OI_CC_WS))
                    OI_FAIL(OLPCIDX_ERESTRICTED, "processing instruction");
                x->kw = 4;
                x->tag.n = 0;           /* the body is kept to be checked */
            } else if (c == '>' && x->kw == 5) {
                const char *why = oi_xml_decl(x->tag.p, x->tag.n - 1);
                if (why)
                    OI_FAIL(OLPCIDX_EXML, why);
                x->state = OI_XS_PROLOG;
            } else if (c < 0x20 && !(oi_cc[c] & OI_CC_WS)) {
                OI_FAIL(OLPCIDX_EXML, "control character in declaration");
            } else if (c >= 0x80) {
                OI_FAIL(OLPCIDX_EXML, "non-ASCII byte in XML declaration");
            } else if (x->tag.n >= OI_XML_DECL_MAX) {
                OI_FAIL(OLPCIDX_EXML, "XML declaration too long");
            } else {
                char ch = (char)c;
                OI_TRY(oi_xml_tagadd(x, &ch, 1));
                x->kw = c == '?' ? 5 : 4;
            }
            break;

        case OI_XS_STAG:
        case OI_XS_ANAME:
        case OI_XS_ETAG:
            if (x->tag.n == x->name_start && !x->u8.need
                && !(oi_cc[*p] & OI_CC_NSTART) && *p < 0x80)
                OI_FAIL(OLPCIDX_EXML, "invalid first character of a name");
            s = p;
            p = oi_xml_run(&x->u8, p, end, OI_CC_NSTOP, &bad);
            if (bad)
                OI_FAIL(OLPCIDX_EXML, "invalid UTF-8 in a name");
            OI_POS();
            if (x->tag.n - x->name_start + (size_t)(p - s) > x->max_name) {
                /* offset of the name's first byte over the limit */
                x->off -= x->tag.n - x->name_start + (size_t)(p - s)
                          - x->max_name;
                return oi_xml_fail(x, OLPCIDX_ELIMIT, "name too long");
            }
            OI_TRY(oi_xml_tagadd(x, s, (size_t)(p - s)));
            if (p == end)
                break;
            if (x->state != OI_XS_ETAG  /* an end tag must match anyway */
                && !oi_xml_namechars((const unsigned char *)x->tag.p
                                     + x->name_start,
                                     x->tag.n - x->name_start))
                OI_FAIL(OLPCIDX_EXML, "character not allowed in a name");
            if (x->state == OI_XS_STAG) {
                x->qlen = x->tag.n;
                x->qcolon = memchr(x->tag.p, ':', x->qlen) != NULL;
                x->state = OI_XS_ATTRS;
            } else if (x->state == OI_XS_ETAG) {
                x->state = OI_XS_ETAGWS;
            } else {
                rc = oi_xml_addrec(x, x->tag.p, x->name_start,
                                   x->tag.n - x->name_start,
                                   memchr(x->tag.p + x->name_start, ':',
                                          x->tag.n - x->name_start) != NULL);
                if (rc != OLPCIDX_OK)
                    return oi_xml_bufrc(x, rc, "too many attributes");
                x->state = OI_XS_AEQ;
            }
            break;

        case OI_XS_ATTRS:
        case OI_XS_AEND:
            c = *p;
            if (oi_cc[c] & OI_CC_WS) {
                p++;
                x->state = OI_XS_ATTRS;
            } else if (c == '>') {
                p++;
                OI_POS();
                OI_TRY(oi_xml_start(x, x->tag.p, 0));
                OI_LIMIT();
                x->state = OI_XS_TEXT;
                x->cr = 0;
            } else if (c == '/') {
                p++;
                x->state = OI_XS_EMPTY;
            } else if (x->state == OI_XS_AEND) {
                OI_FAIL(OLPCIDX_EXML, "no whitespace between attributes");
            } else if ((oi_cc[c] & OI_CC_NSTART) || c >= 0x80) {
                if (x->recs.n / sizeof(oi_xrec) >= x->max_attrs)
                    OI_FAIL(OLPCIDX_ELIMIT, "too many attributes");
                x->name_start = x->tag.n;
                x->state = OI_XS_ANAME;
            } else {
                OI_FAIL(OLPCIDX_EXML, "malformed start tag");
            }
            break;

        case OI_XS_AEQ:
        case OI_XS_AQUOTE:
            c = *p++;
            if (oi_cc[c] & OI_CC_WS)
                break;
            if (x->state == OI_XS_AEQ && c == '=') {
                x->state = OI_XS_AQUOTE;
            } else if (x->state == OI_XS_AQUOTE && (c == '"' || c == '\'')) {
                rec = (oi_xrec *)(void *)(x->recs.p + x->recs.n
                                          - sizeof(oi_xrec));
                rec->voff = x->tag.n;
                x->quote = (char)c;
                x->state = OI_XS_AVAL;
                x->cr = 0;
            } else {
                p--;
                OI_FAIL(OLPCIDX_EXML, x->state == OI_XS_AEQ
                        ? "expected '=' after attribute name"
                        : "attribute value not quoted");
            }
            break;

        case OI_XS_AVAL:
            /* Attribute-value normalisation (XML 1.0 3.3.3): literal
            ** TAB, LF, CR become spaces, CR LF one space.  cr is set
            ** when the previous feed ended on a CR. */
            s = p;
            p = oi_xml_run(&x->u8, p, end, OI_CC_ASTOP, &bad);
            if (bad)
                OI_FAIL(OLPCIDX_EXML, "invalid UTF-8");
            if (p > s)
                x->cr = 0;              /* a CR before other bytes: done */
            OI_POS();
            OI_TRY(oi_xml_tagadd(x, s, (size_t)(p - s)));
            if (p == end)
                break;
            c = *p++;
            if (c == (unsigned char)x->quote) {
                rec = (oi_xrec *)(void *)(x->recs.p + x->recs.n
                                          - sizeof(oi_xrec));
                rec->vlen = x->tag.n - rec->voff;
                x->state = OI_XS_AEND;
            } else if (c == '"' || c == '\'') {
                OI_TRY(oi_xml_tagadd(x, p - 1, 1));
            } else if (c == '&') {
                x->state = OI_XS_REF;
                x->ret = OI_XS_AVAL;
                x->nref = 0;
            } else if (c == '\n' && ((p - 1 > b && p[-2] == '\r')
                                     || (p - 1 == b && x->cr))) {
                /* second half of CR LF: already a space */
            } else if (c == '\t' || c == '\n' || c == '\r') {
                OI_TRY(oi_xml_tagadd(x, " ", 1));
            } else if (c == '<') {
                p--;
                OI_FAIL(OLPCIDX_EXML, "'<' in attribute value");
            } else {
                p--;
                OI_FAIL(OLPCIDX_EXML, "control character in attribute value");
            }
            x->cr = (p == end && c == '\r');
            break;

        case OI_XS_EMPTY:
            if (*p != '>')
                OI_FAIL(OLPCIDX_EXML, "expected '>' after '/'");
            p++;
            OI_POS();
            OI_TRY(oi_xml_start(x, x->tag.p, 1));
            OI_LIMIT();
            x->state = x->depth ? OI_XS_TEXT : OI_XS_DONE;
            x->cr = 0;
            break;

        case OI_XS_ETAGWS:
            c = *p;
            if (oi_cc[c] & OI_CC_WS) {
                p++;
            } else if (c == '>') {
                size_t top = ((size_t *)(void *)x->stackoff.p)
                             [x->stackoff.n / sizeof(size_t) - 1];
                if (x->stack.n - top != x->tag.n
                    || memcmp(x->stack.p + top, x->tag.p, x->tag.n) != 0)
                    OI_FAIL(OLPCIDX_EXML, "end tag does not match start tag");
                x->stack.n = top;
                x->stackoff.n -= sizeof(size_t);
                p++;
                OI_POS();
                OI_TRY(oi_xml_close(x));
                OI_LIMIT();
                x->state = x->depth ? OI_XS_TEXT : OI_XS_DONE;
                x->cr = 0;
            } else {
                OI_FAIL(OLPCIDX_EXML, "malformed end tag");
            }
            break;

        default:                        /* every state has its case */
            (void)OI_NEVER(1);
            OI_FAIL(OLPCIDX_EXML, "tokenizer in an impossible state");
        }
    }
    OI_POS();
    if (x->in_stanza && x->off - x->stanza_start > x->max_stanza)
        return oi_xml_toobig(x);
    return 0;
#undef OI_POS
#undef OI_FAIL
#undef OI_TRY
#undef OI_FULL
#undef OI_LIMIT
}
/* ==== 7. Stanzas: the handle, tree, errors, output ================== */

/*
** Each top-level element of the stream (a stanza, or <handshake/>,
** <stream:error/>, <stream:features/>) is assembled into a tree of
** oi_node in the stanza arena, dispatched when its end tag arrives, and
** forgotten.  Text inside an element is concatenated into one span (XMPP
** payloads do not mix text and elements).  A node's strings are copies in
** the arena; a namespace equal to the parent's shares the parent's copy.
** If the arena or the memory cap refuses an allocation, the rest of the
** stanza is skipped and it is answered as resource-constraint (an iq) or
** dropped (anything else); the stream goes on.
*/
typedef struct oi_node oi_node;
struct oi_node {
    oi_str ns;
    oi_str name;
    oi_xattr *attr;             /* attributes, xmlns declarations excluded */
    size_t nattr;
    oi_node *parent;
    oi_node *child;             /* first child element */
    oi_node *last;              /* last child element */
    oi_node *next;              /* next sibling */
    char *text;                 /* character data directly inside */
    size_t ntext;
};

/* Where the stream is (section 12). */
enum oi_stream_state {
    OI_S_IDLE,                  /* no connection yet */
    OI_S_OPENING,               /* header sent, waiting for the server's */
    OI_S_HANDSHAKE,             /* <handshake> sent, waiting for the ack */
    OI_S_ONLINE,                /* stanzas flow */
    OI_S_CLOSING,               /* we sent </stream:stream> */
    OI_S_CLOSED                 /* over; x->err says why */
};

#define OI_ROUTE_KINDS 6          /* kinds of stanza routes (section 13) */
#define OI_ROUTES_MAX 64          /* rows of one kind in all the tables */

/*
** The handle: every field belongs to the section that reads and writes
** it, and is grouped under that section's number.
*/
struct olpcidx {
    /* 4, 7: memory, configuration, tree assembly, output */
    oi_mem mem;
    olpcidx_config cfg;         /* limits; its strings point below */
    oi_str jid;                 /* component JID (owned copy) */
    oi_str server;              /* its parent domain, inside jid */
    uint64_t now;               /* last time given by connect/tick */
    oi_arena arena;             /* the stanza being handled */
    oi_node *root;              /* stanza being assembled */
    oi_node *cur;               /* its innermost open element */
    int dropped;                /* assembly failed: skip to its end */
    oi_buf out;                 /* output queue: [head, n) unsent */
    size_t head;
    int oerr;                   /* first error while writing a stanza */
    int result_full;            /* an iq result did not fit the queue */
    uint64_t last_out;          /* last byte queued */
    unsigned long long nin, nout;       /* stanzas in (16) and out */
    unsigned long touch;        /* keeps oi_touch_page's reads (13.3) */
    /* 8: the index */
    oi_map buddies;             /* bare JID -> oi_buddy */
    oi_map acts;                /* activity id -> oi_act */
    oi_map rooms;               /* room JID -> oi_act */
    oi_map bposts;              /* posting key -> oi_post of buddies */
    oi_map aposts;              /* posting key -> oi_post of activities */
    oi_vec listed[2];           /* by OI_K_ACT, OI_K_BUDDY: the items a
                                ** query may return, in UID order */
    oi_buf alias_text;          /* folded aliases, NUL after each */
    oi_buf alias_ents;          /* oi_alias_ent[], in text order */
    size_t alias_dead;          /* bytes of text no entry holds */
    int alias_lost;             /* an update ran out of memory: search
                                ** every buddy instead */
    /* 9: watchers and events */
    oi_map clients;             /* full JID -> oi_client */
    oi_map online;              /* bare JID -> oi_online */
    oi_vec open[2];             /* oi_watch * taking new members, by
                                ** OI_K_ACT and OI_K_BUDDY */
    size_t nopenable[2];        /* watchers of kinds that may be open */
    unsigned long event;        /* events raised so far */
    oi_str cause;               /* full JID whose stanza is being handled */
    struct oi_pend *fq, *fq_last;       /* events still to hand out, */
    size_t fq_left;             /* oldest first, and their watchers */
    /* 10: persistence */
    oi_buf rec;                 /* journal records being written */
    size_t rec_start;           /* where the current record starts */
    int rec_err;                /* writing a record ran out of memory */
    int jbehind;                /* the storage missed changes */
    int junsynced;              /* appended since the last sync */
    size_t jbytes;              /* journal bytes since the snapshot */
    size_t snap_bytes;          /* size of the last snapshot */
    /* 12: the stream */
    oi_xml xml;
    int state;                  /* enum oi_stream_state */
    int err;                    /* sticky for this stream, 0 while live */
    oi_str secret;              /* owned copy */
    char stream_id[128];        /* server's stream id, NUL-terminated */
    uint64_t connected_at;
    uint64_t first_at;          /* the first connect, for the uptime */
    int ever_connected;
    uint64_t last_in;           /* last byte received */
    int ping_out;               /* a keepalive ping awaits any byte */
    unsigned long nping;
    oi_buf held;                /* bytes fed, not parsed while input is
                                ** held back (section 17) */
    int (*on_stanza)(olpcidx *x, const oi_node *st);  /* set by 17:  */
    void (*on_online)(olpcidx *x);      /* the dispatcher, and the
                                        ** Gadget dialect's start */
    /* 13: common handlers */
    oi_str name;                /* disco identity name (owned copy) */
    char caps_ver[32];          /* its XEP-0115 verification string */
    oi_str allow;               /* allowed domains, space-separated */
    oi_str admins;              /* admin bare JIDs, space-separated */
    unsigned long cmd_seq;      /* ad-hoc command sessions so far */
    uint64_t live_at;           /* last liveness sweep */
    uint64_t blocked_ms;        /* time input was held back, in total */
    uint64_t tick_at;           /* the last tick, and whether input was */
    int tick_blocked;           /* held back then */
    char twin_cur[128];         /* stream ids of this connection's self- */
    char twin_prev[128];        /* check pings and of the one before */
    unsigned twin_seen;         /* probes that came back as requests */
    int twin_told;              /* a second connection was logged */
    /* 14: the seed dialect */
    const char *notify_type;    /* message type of notifications */
    oi_buf seed_payload;        /* the payload of event seed_seq, written
                                ** once for all its watchers */
    unsigned long seed_seq;
    /* 15: the Gadget dialect */
    uint64_t rng;               /* splitmix64 state: random views */
    int joining;                /* a room may not have answered yet */
    int announced;              /* the start-up presence went out */
    /* 16: dispatch */
    const struct oi_route *routes[OI_ROUTE_KINDS][OI_ROUTES_MAX + 1];
                                /* per kind of stanza, its rows in order,
                                ** NULL-terminated */
};


/* Writes one log line, replacing control bytes so that text from the
** network cannot forge further lines. */
static void oi_log(olpcidx *x, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    size_t i;
    if (!x->cfg.log || level > x->cfg.log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (i = 0; line[i]; i++)
        if ((unsigned char)line[i] < 0x20)
            line[i] = '?';
    x->cfg.log(x->cfg.log_ud, level, line);
}

static char *oi_arena_dup(olpcidx *x, oi_str s)
{
    char *p = (char *)oi_arena_alloc(&x->mem, &x->arena, s.n);
    if (p && s.n)
        memcpy(p, s.p, s.n);
    return p;
}

/* Adds an element to the stanza being assembled.  Returns -1 if out of
** memory (nothing is linked then). */
static int oi_tree_start(olpcidx *x, oi_str ns, oi_str name,
                         const oi_xattr *a, size_t na)
{
    oi_node *n = (oi_node *)oi_arena_alloc(&x->mem, &x->arena, sizeof *n);
    size_t i;
    if (!n)
        return -1;
    memset(n, 0, sizeof *n);
    if (x->cur && oi_streq(ns, x->cur->ns))
        n->ns = x->cur->ns;
    else if (!(n->ns.p = oi_arena_dup(x, ns)))
        return -1;
    else
        n->ns.n = ns.n;
    if (!(n->name.p = oi_arena_dup(x, name)))
        return -1;
    n->name.n = name.n;
    if (na) {
        n->attr = (oi_xattr *)oi_arena_alloc(&x->mem, &x->arena,
                                             na * sizeof *a);
        if (!n->attr)
            return -1;
        for (i = 0; i < na; i++) {
            oi_xattr *d = &n->attr[i];
            d->ns = oi_streq(a[i].ns, n->ns) ? n->ns : a[i].ns;
            if (d->ns.n && d->ns.p != n->ns.p
                && !(d->ns.p = oi_arena_dup(x, a[i].ns)))
                return -1;
            d->name.n = a[i].name.n;
            d->value.n = a[i].value.n;
            if (!(d->name.p = oi_arena_dup(x, a[i].name))
                || !(d->value.p = oi_arena_dup(x, a[i].value)))
                return -1;
        }
        n->nattr = na;
    }
    n->parent = x->cur;
    if (x->cur) {
        if (x->cur->last)
            x->cur->last->next = n;
        else
            x->cur->child = n;
        x->cur->last = n;
    } else {
        x->root = n;
    }
    x->cur = n;
    return 0;
}

static int oi_tree_text(olpcidx *x, const char *p, size_t n)
{
    oi_node *c = x->cur;
    char *t;
    if (oi_arena_extend(&x->arena, c->text, c->ntext, n)) {
        memcpy(c->text + c->ntext, p, n);
        c->ntext += n;
        return 0;
    }
    t = (char *)oi_arena_alloc(&x->mem, &x->arena, c->ntext + n);
    if (!t)
        return -1;
    if (c->ntext)
        memcpy(t, c->text, c->ntext);
    memcpy(t + c->ntext, p, n);
    c->text = t;
    c->ntext += n;
    return 0;
}

/* The value of attribute name (in no namespace); 0 if absent. */
static int oi_attr(const oi_node *n, const char *name, oi_str *v)
{
    size_t i;
    for (i = 0; i < n->nattr; i++)
        if (n->attr[i].ns.n == 0 && oi_eq(n->attr[i].name, name)) {
            *v = n->attr[i].value;
            return 1;
        }
    *v = oi_mkstr("", 0);
    return 0;
}

/* The first child element with that namespace (NULL: any) and name. */
static const oi_node *oi_child(const oi_node *n, const char *ns,
                               const char *name)
{
    const oi_node *c;
    for (c = n->child; c; c = c->next)
        if ((!ns || oi_eq(c->ns, ns)) && oi_eq(c->name, name))
            return c;
    return NULL;
}

/*
** Stanza error conditions (RFC 6120 8.3.3; PROTOCOL.md 8.3), one row
** each: the condition, its error type, and whether the error reply
** carries the offending payload back (RFC 6120 8.3.1).  Short of memory,
** it does not: the reply is kept as small as it can be.
*/
#define OI_CONDS(X)                                                         \
    X(NONE,                NULL,                  NULL,     0)              \
    X(BAD_REQUEST,         "bad-request",         "modify", 1)              \
    X(FORBIDDEN,           "forbidden",           "auth",   1)              \
    X(ITEM_NOT_FOUND,      "item-not-found",      "cancel", 1)              \
    X(NOT_ACCEPTABLE,      "not-acceptable",      "modify", 1)              \
    X(RESOURCE_CONSTRAINT, "resource-constraint", "wait",   0)              \
    X(SERVICE_UNAVAILABLE, "service-unavailable", "cancel", 1)

enum oi_cond {
#define OI_COND_ENUM_(id, cond, type, echo) OI_C_##id,
    OI_CONDS(OI_COND_ENUM_)
#undef OI_COND_ENUM_
    OI_C_COUNT
};

static const struct oi_cond_row {
    const char *cond, *type;
    int echo;
} oi_conds[OI_C_COUNT] = {
#define OI_COND_ROW_(id, cond, type, echo) { cond, type, echo },
    OI_CONDS(OI_COND_ROW_)
#undef OI_COND_ROW_
};

/*
** The output queue.  Writers append without checking each call: the
** first failure (queue bound, memory) is kept in x->oerr, and
** oi_out_commit() then removes the partial stanza, so the queue only ever
** holds whole stanzas.  oi_out_begin() is where the queue is compacted,
** so offsets stay valid between begin and commit.
*/
static size_t oi_out_begin(olpcidx *x)
{
    if (x->head > 0 && x->head >= x->out.n / 2) {
        memmove(x->out.p, x->out.p + x->head, x->out.n - x->head);
        x->out.n -= x->head;
        x->head = 0;
    }
    x->oerr = 0;
    return x->out.n;
}

static void oi_out(olpcidx *x, const char *p, size_t n)
{
    int rc;
    if (x->oerr || n == 0)
        return;
    if (x->out.n - x->head + n > x->cfg.max_output) {
        x->oerr = OLPCIDX_EFULL;
        return;
    }
    if (n <= x->out.cap - x->out.n) {   /* the common case: room enough */
        memcpy(x->out.p + x->out.n, p, n);
        x->out.n += n;
        return;
    }
    rc = oi_buf_add(&x->mem, &x->out, p, n);
    if (rc != OLPCIDX_OK)
        x->oerr = rc == OLPCIDX_ELIMIT ? OLPCIDX_EFULL : rc;
}

static void oi_outz(olpcidx *x, const char *z)
{
    oi_out(x, z, strlen(z));
}

/* The bytes oi_out_esc must write otherwise, in text and (also) in
** attribute values. */
enum { OI_ESC_TEXT = 1, OI_ESC_ATTR = 2 };

static const unsigned char oi_esc[256] = {
    ['<'] = OI_ESC_TEXT, ['>'] = OI_ESC_TEXT, ['&'] = OI_ESC_TEXT,
    ['\''] = OI_ESC_TEXT, ['"'] = OI_ESC_TEXT, ['\r'] = OI_ESC_TEXT,
    ['\t'] = OI_ESC_ATTR, ['\n'] = OI_ESC_ATTR
};

/* The reference written for byte c, which oi_esc marks. */
static const char *oi_esc_ref(unsigned char c)
{
    switch (c) {
    case '<':  return "&lt;";
    case '>':  return "&gt;";
    case '&':  return "&amp;";
    case '\'': return "&apos;";
    case '"':  return "&quot;";
    case '\r': return "&#13;";
    case '\t': return "&#9;";
    default:   return "&#10;";
    }
}

/* The most bytes one byte becomes in oi_esc_to ("&apos;"). */
#define OI_ESC_GROWTH 6

/* The words that may hold a byte oi_esc marks (section 6's word tests,
** Hacker's Delight 6-1): '&' and '\'' (0x26, 0x27, both 0x27 once 0x01
** is or-ed in), '"', '<' and '>' (0x3C, 0x3E, both 0x3E once 0x02 is
** or-ed in), and the bytes below 0x20, of which TAB, LF and CR are
** marked.  Bytes of 0x80 and above are not flagged (& ~v): the first
** flagged byte is always one of these. */
#define OI_W_ESC(v) ((OI_W_HAS((v) | OI_W_ONES, '\'') | OI_W_HAS(v, '"') \
                      | OI_W_HAS((v) | OI_W_ONES * 0x02, '>')             \
                      | ((v) - OI_W_ONES * 0x20)) & ~(v) & OI_W_HIGH)

/* Writes v escaped at w, which has room for OI_ESC_GROWTH * v.n bytes,
** for text or (attr) an attribute value quoted with ': CR, and in
** attributes TAB and LF, are written as references so that the
** receiver's normalisation (XML 1.0 2.11, 3.3.3) gives back the same.
** Returns the end of what it wrote.  Clean bytes are copied a word at a
** time, up to the first that may need a reference; the values written
** are short (names, JIDs, colours), where a call to memcpy per run
** would cost more than its bytes. */
static char *oi_esc_to(char *w, oi_str v, int attr)
{
    const unsigned char *p = (const unsigned char *)v.p, *e = p + v.n;
    unsigned char stop = attr ? OI_ESC_TEXT | OI_ESC_ATTR : OI_ESC_TEXT;
    while (p < e) {
        const char *r;
        unsigned char c;
        if ((size_t)(e - p) >= sizeof(oi_word)) {
            oi_word m = OI_W_LOAD(p);
            if (!(m = OI_W_ESC(m))) {
                memcpy(w, p, sizeof m);
                w += sizeof m;
                p += sizeof m;
                continue;
            }
            m = OI_W_FIRST(m);
            memcpy(w, p, sizeof m);     /* the bytes before it, and more */
            w += m;
            p += m;
        }
        c = *p++;
        *w = (char)c;
        if (!(oi_esc[c] & stop)) {
            w++;
            continue;
        }
        for (r = oi_esc_ref(c); *r; r++)
            *w++ = *r;
    }
    return w;
}

/* Room at the end of the queue for a writer that knows a bound n on
** what it writes, to write it in place and keep it with oi_out_to():
** NULL when the bound does not fit (the queue's limit, memory, an earlier
** failure), and the writer then goes through oi_out, which says why. */
static char *oi_out_room(olpcidx *x, size_t n)
{
    if (x->oerr || x->out.n - x->head + n > x->cfg.max_output
        || OI_BUF_RESERVE(&x->mem, &x->out, n) != OLPCIDX_OK)
        return NULL;
    return x->out.p + x->out.n;
}

/* Keeps what was written in the room oi_out_room() gave, up to w. */
static void oi_out_to(olpcidx *x, const char *w)
{
    x->out.n = (size_t)(w - x->out.p);
}

/* Escapes v into the output, through a buffer on the stack: one oi_out
** call for each OI_ESC_CHUNK bytes of v, whatever it holds. */
#define OI_ESC_CHUNK 256

static void oi_out_esc(olpcidx *x, oi_str v, int attr)
{
    char buf[OI_ESC_CHUNK * OI_ESC_GROWTH];
    size_t at, k;
    for (at = 0; at < v.n; at += k) {
        k = v.n - at < OI_ESC_CHUNK ? v.n - at : OI_ESC_CHUNK;
        oi_out(x, buf, (size_t)(oi_esc_to(buf, oi_mkstr(v.p + at, k), attr)
                                - buf));
    }
}

/* Writes " name='value'", in place when the queue has room. */
static void oi_out_attr(olpcidx *x, const char *name, oi_str value)
{
    size_t nn = strlen(name);
    char *w = nn <= 64 && value.n <= OI_ESC_CHUNK
        ? oi_out_room(x, 68 + OI_ESC_GROWTH * value.n) : NULL;
    if (!w) {
        oi_out(x, " ", 1);
        oi_out(x, name, nn);
        oi_out(x, "='", 2);
        oi_out_esc(x, value, 1);
        oi_out(x, "'", 1);
        return;
    }
    *w++ = ' ';
    memcpy(w, name, nn);
    w += nn;
    *w++ = '=';
    *w++ = '\'';
    w = oi_esc_to(w, value, 1);
    *w++ = '\'';
    oi_out_to(x, w);
}

/* Ends a stanza: on success it stays queued, on failure the partial bytes
** are removed and the failure is logged.  Returns 0 or the error. */
static int oi_out_commit(olpcidx *x, size_t mark, const char *what)
{
    int rc = x->oerr;
    x->oerr = 0;
    if (rc) {
        if (rc == OLPCIDX_EFULL && x->out.n - mark > 17
            && memcmp(x->out.p + mark, "<iq type='result'", 17) == 0)
            x->result_full = 1;         /* answered otherwise (16) */
        x->out.n = mark;
        oi_log(x, OLPCIDX_LOG_WARN, "dropped %s: %s", what,
               olpcidx_strerror(rc));
        return rc;
    }
    x->last_out = x->now;
    if (x->out.n > mark + 1 && (x->out.p[mark + 1] == 'i'  /* iq, message */
        || x->out.p[mark + 1] == 'm' || x->out.p[mark + 1] == 'p'))
        x->nout++;              /* or presence; not stream-level bytes */
    return 0;
}

/* Serializes a tree.  parent_ns is the default namespace in scope; a
** node in another one declares it.  Attributes in a namespace other than
** xml's get a prefix declared on the element. */
static void oi_out_node(olpcidx *x, const oi_node *n, oi_str parent_ns)
{
    const oi_node *c;
    size_t i;
    oi_out(x, "<", 1);
    oi_out(x, n->name.p, n->name.n);
    if (!oi_streq(n->ns, parent_ns))
        oi_out_attr(x, "xmlns", n->ns);
    for (i = 0; i < n->nattr; i++) {
        const oi_xattr *a = &n->attr[i];
        char pfx[24];
        oi_out(x, " ", 1);
        if (oi_eq(a->ns, OI_NS_XML)) {
            oi_out(x, "xml:", 4);
        } else if (a->ns.n) {
            snprintf(pfx, sizeof pfx, "a%lu", (unsigned long)i);
            oi_out(x, "xmlns:", 6);
            oi_outz(x, pfx);
            oi_out(x, "='", 2);
            oi_out_esc(x, a->ns, 1);
            oi_out(x, "' ", 2);
            oi_outz(x, pfx);
            oi_out(x, ":", 1);
        }
        oi_out(x, a->name.p, a->name.n);
        oi_out(x, "='", 2);
        oi_out_esc(x, a->value, 1);
        oi_out(x, "'", 1);
    }
    if (!n->child && n->ntext == 0) {
        oi_out(x, "/>", 2);
        return;
    }
    oi_out(x, ">", 1);
    oi_out_esc(x, oi_mkstr(n->text, n->ntext), 0);
    for (c = n->child; c; c = c->next)
        oi_out_node(x, c, n->ns);
    oi_out(x, "</", 2);
    oi_out(x, n->name.p, n->name.n);
    oi_out(x, ">", 1);
}

/* Opens <elem type='type' from='component' to='to' id='id'>; type and
** id may be NULL. */
static void oi_out_head(olpcidx *x, const char *elem, const char *type,
                        oi_str to, const oi_str *id)
{
    oi_out(x, "<", 1);
    oi_outz(x, elem);
    if (type)
        oi_out_attr(x, "type", oi_zstr(type));
    oi_out_attr(x, "from", x->jid);
    oi_out_attr(x, "to", to);
    if (id)
        oi_out_attr(x, "id", *id);
    oi_out(x, ">", 1);
}

/* Writes <error type=T><condition xmlns=stanzas/></error>, with the
** application-specific condition <app xmlns=ns/> when app is not NULL
** (RFC 6120 8.3.2). */
static void oi_out_error_app(olpcidx *x, int cond, const char *ns,
                             const char *app)
{
    oi_outz(x, "<error type='");
    oi_outz(x, oi_conds[cond].type);
    oi_outz(x, "'><");
    oi_outz(x, oi_conds[cond].cond);
    oi_outz(x, " xmlns='" OI_NS_XSTANZA "'/>");
    if (app) {
        oi_outz(x, "<");
        oi_outz(x, app);
        oi_outz(x, " xmlns='");
        oi_outz(x, ns);
        oi_outz(x, "'/>");
    }
    oi_outz(x, "</error>");
}

static void oi_out_error(olpcidx *x, int cond)
{
    oi_out_error_app(x, cond, NULL, NULL);
}

/* ==== 8. The index: buddies, activities, who watches them ============ */

/*
** What clients told the component (PROTOCOL.md 2):
**   buddies     by bare JID, with typed properties and a current activity;
**   activities  by id and by room, with typed properties and participants
**               (bare JIDs of buddies, linked both ways).
** Every (name, type, value), canonical (oi_prop_canon), is a posting list
** in a per-kind map from "name NUL type value" to the items holding it,
** so that a query by properties starts from the shortest list instead of
** scanning every item.  The list is also where the value is stored: an
** item's properties are pointers to its lists, sorted by name, so a value
** is stored once however many items hold it.
**
** Each item also knows its watchers: the sets of items somebody was told
** about and is to hear about again (a seed result set, a Gadget view).
** What a watcher is and how it is told is section 9's; here it is only a
** set of items, linked both ways, so that an item that goes is taken out
** of every set holding it.
**
** Updates are failure-atomic: everything an update needs (new blocks,
** posting lists, map and vector room) is allocated first; only when all of
** it succeeded is anything changed, and that part cannot fail.  Nothing
** here journals or notifies: section 11's changes do, around these.
*/
typedef struct oi_prop {
    oi_str name;
    oi_str value;               /* canonical */
    int type;                   /* OI_PT_* */
} oi_prop;

typedef struct oi_props {       /* sorted by name, names unique */
    oi_prop *v;
    size_t n;
    size_t size;                /* bytes of the owned block; 0: borrowed */
} oi_props;

static int oi_str_cmp(oi_str a, oi_str b)
{
    int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    return c ? c : a.n < b.n ? -1 : a.n > b.n;
}

static int oi_prop_cmp(const void *a, const void *b)
{
    return oi_str_cmp(((const oi_prop *)a)->name, ((const oi_prop *)b)->name);
}

/* Copies a property set into one owned block. */
static int oi_props_own(oi_mem *m, const oi_props *src, oi_props *dst)
{
    size_t size = src->n * sizeof(oi_prop), i;
    char *s;
    dst->v = NULL;
    dst->n = dst->size = 0;
    if (src->n == 0)
        return OLPCIDX_OK;
    for (i = 0; i < src->n; i++)
        size += src->v[i].name.n + src->v[i].value.n;
    dst->v = (oi_prop *)oi_realloc(m, NULL, 0, size);
    if (!dst->v)
        return OLPCIDX_ENOMEM;
    s = (char *)(dst->v + src->n);
    for (i = 0; i < src->n; i++) {
        const oi_prop *p = &src->v[i];
        dst->v[i].type = p->type;
        memcpy(s, p->name.p, p->name.n);
        dst->v[i].name = oi_mkstr(s, p->name.n);
        s += p->name.n;
        if (p->value.n)
            memcpy(s, p->value.p, p->value.n);
        dst->v[i].value = oi_mkstr(s, p->value.n);
        s += p->value.n;
    }
    dst->n = src->n;
    dst->size = size;
    return OLPCIDX_OK;
}

static void oi_props_free(oi_mem *m, oi_props *p)
{
    if (p->size)
        oi_free(m, p->v, p->size);
    p->v = NULL;
    p->n = p->size = 0;
}

static const oi_prop *oi_props_getn(const oi_props *ps, oi_str name)
{
    size_t i;
    for (i = 0; i < ps->n; i++)
        if (oi_streq(ps->v[i].name, name))
            return &ps->v[i];
    return NULL;
}

static const oi_prop *oi_props_get(const oi_props *ps, const char *name)
{
    return oi_props_getn(ps, oi_zstr(name));
}

/*
** Lists of items in UID order (posting lists, the listed items): a sorted
** array.  Finding a place is a binary search; inserting or removing moves
** the tail with memmove, which at school sizes (tens of thousands of
** items in the longest list) costs microseconds, while a page of a query
** -- after a UID, at an index, or the count -- costs a binary search and
** the page, however many items match.  An order-statistic tree would make
** updates logarithmic too, at three pointers an entry; the array holds
** one.
**
** What buddies and activities have in common, and what such a list holds,
** is an item: a UID (bare JID or activity id), properties, and the
** watchers holding it.  There are hundreds of thousands of items, so the
** struct is packed to 32 bytes (24 on 32-bit targets): lengths and
** counts in 32 bits, the UID's bytes not pointed to but found at a fixed
** offset (right after the containing struct, in the same block), and the
** watchers, which most items never have, in a block of their own.
*/
typedef struct oi_item {
    struct oi_post **props;     /* its posting lists, sorted by name, in
                                ** one owned array of nprops */
    oi_vec *watch;              /* oi_watch * holding it; NULL: none has
                                ** yet (section 9) */
    uint32_t nuid;              /* bytes of its UID */
    uint32_t nprops;
    uint32_t pins;              /* events not yet handed to all their
                                ** watchers that name it (section 9) */
    uint16_t uid_at;            /* its UID's offset from the item: the
                                ** size of the containing struct */
    unsigned char doomed;       /* forgotten while pinned: freed at the
                                ** last unpin */
} oi_item;

/* The UID of an item. */
static oi_str oi_uid(const oi_item *it)
{
    return oi_mkstr((const char *)it + it->uid_at, it->nuid);
}

/* The key of an item in its map (buddies, acts): its UID. */
static oi_str oi_uid_keyof(const void *v)
{
    return oi_uid((const oi_item *)v);
}

/* The first position in sorted v[0..n) whose UID is >= uid (after 0) or
** > uid (after 1).  v holds oi_item *. */
static size_t oi_sorted_pos(void *const *v, size_t n, oi_str uid, int after)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = oi_str_cmp(oi_uid((const oi_item *)v[mid]), uid);
        if (c < 0 || (after && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Inserts item p in its place in v[0..n), which has room for one more. */
static void oi_sorted_put(void **v, size_t n, void *p)
{
    size_t at = oi_sorted_pos(v, n, oi_uid((const oi_item *)p), 0);
    memmove(v + at + 1, v + at, (n - at) * sizeof *v);
    v[at] = p;
}

/* Removes p from v[0..n), if it is there; returns 1 if it was. */
static int oi_sorted_take(void **v, size_t n, const void *p)
{
    size_t at = oi_sorted_pos(v, n, oi_uid((const oi_item *)p), 0);
    if (at >= n || v[at] != p)
        return 0;
    memmove(v + at, v + at + 1, (n - at - 1) * sizeof *v);
    return 1;
}

/* Inserts p in its place; room is reserved. */
static void oi_sorted_insert(oi_vec *a, void *p)
{
    oi_sorted_put(a->v, a->n++, p);
}

/* Removes p, if it is there. */
static void oi_sorted_remove(oi_vec *a, const void *p)
{
    a->n -= (size_t)oi_sorted_take(a->v, a->n, p);
}

/*
** A posting list: one (name, type, value) -- its key, "name NUL
** type-digit value", stored right after the struct -- and the public
** items holding it, in UID order.  It is also where those items keep the
** property: an item's properties are pointers to posting lists
** (oi_item.props), so a value is stored once however many items hold it,
** and a unique one costs the struct, its key and a map slot.  refs counts
** the items whose properties point to it (a private activity's do, though
** it is in no list); the list goes when that drops to 0.  Its low byte
** holds what a reply needs to write the property without reading it
** twice: the length of the name and whether name or value has a byte to
** escape (13.2).  Names hold no NUL
** (XML 1.0 section 2.2; restored ones are checked), so the key splits
** back into name, type and value at its first NUL.
**
** Most values are held by one item (a nick, an address, a title), so the
** struct is kept to 16 bytes (12 on 32-bit targets), as a small vector
** of its own: one item is held in place of the array pointer; an array
** keeps its capacity in the word before its first element, and a bit of
** n says there is one.  The key's length is written before the key in
** 7-bit groups, least significant first, the high bit set on each but
** the last: one byte below 128.
*/
typedef struct oi_post {
    union {
        void *one;              /* no array: the item, if n is 1 */
        void **v;               /* the array, its capacity before it */
    } u;
    uint32_t n;                 /* oi_item * in the list, in UID order;
                                ** OI_POST_ARRAY: they are in u.v */
    uint32_t refs;              /* the items referring to it, times
                                ** OI_POST_REF; plus OI_POST_ESC if the
                                ** key has a byte oi_esc marks, plus the
                                ** name's length up to OI_POST_LONG (a
                                ** longer one is measured when read) */
} oi_post;

#define OI_POST_REF  256u
#define OI_POST_ESC  128u
#define OI_POST_LONG 127u

#define OI_POST_ARRAY 0x80000000u

/* The number of items in p's list, and where they are. */
static size_t oi_post_count(const oi_post *p)
{
    return p->n & ~OI_POST_ARRAY;
}

static void **oi_post_items(oi_post *p)
{
    return p->n & OI_POST_ARRAY ? p->u.v : &p->u.one;
}

static void *const *oi_post_citems(const oi_post *p)
{
    return p->n & OI_POST_ARRAY ? p->u.v : &p->u.one;
}

/* How many items p's list has room for. */
static size_t oi_post_cap(const oi_post *p)
{
    uint32_t cap;
    if (!(p->n & OI_POST_ARRAY))
        return 1;
    memcpy(&cap, p->u.v - 1, sizeof cap);
    return cap;
}

/* Makes room for one more item in p's list, growing by half (2, 3, 4,
** 6, 9, ...); on failure nothing changed. */
static int oi_post_reserve(oi_mem *m, oi_post *p)
{
    size_t n = oi_post_count(p), cap = oi_post_cap(p), ncap;
    uint32_t c;
    void **blk;
    if (n < cap)
        return OLPCIDX_OK;
    ncap = cap < 2 ? 2 : cap + cap / 2;
    if (n >= OI_POST_ARRAY - 1 || ncap > SIZE_MAX / sizeof *blk - 1)
        return OLPCIDX_ENOMEM;
    blk = (void **)oi_realloc(m, cap > 1 ? p->u.v - 1 : NULL,
                              cap > 1 ? (cap + 1) * sizeof *blk : 0,
                              (ncap + 1) * sizeof *blk);
    if (!blk)
        return OLPCIDX_ENOMEM;
    c = (uint32_t)ncap;
    memcpy(blk, &c, sizeof c);
    if (cap == 1 && n)
        blk[1] = p->u.one;
    p->u.v = blk + 1;
    p->n |= OI_POST_ARRAY;
    return OLPCIDX_OK;
}

/* Where p's key starts, after its length, and that length. */
static oi_str oi_post_keyof_p(const oi_post *p)
{
    const unsigned char *k = (const unsigned char *)(p + 1);
    size_t n = *k & 0x7F;
    unsigned shift = 0;
    while (*k++ & 0x80)
        n |= (size_t)(*k & 0x7F) << (shift += 7);
    return oi_mkstr((const char *)k, n);
}

/* Whether s has a byte oi_esc marks (in text or in attributes). */
static int oi_esc_any(oi_str s)
{
    size_t i;
    for (i = 0; i < s.n; i++)
        if (oi_esc[(unsigned char)s.p[i]])
            return 1;
    return 0;
}

/* The low byte of refs for property p. */
static uint32_t oi_post_bits(const oi_prop *p)
{
    uint32_t b = p->name.n < OI_POST_LONG ? (uint32_t)p->name.n
                                          : OI_POST_LONG;
    if (oi_esc_any(p->name) || oi_esc_any(p->value))
        b |= OI_POST_ESC;
    return b;
}

/* The length of the name of posting list p. */
static size_t oi_post_nname(const oi_post *p)
{
    size_t nn = p->refs % OI_POST_ESC;
    return nn < OI_POST_LONG ? nn : nn + strlen(oi_post_keyof_p(p).p + nn);
}

/* The key of a posting list (its map's keyof). */
static oi_str oi_post_keyof(const void *v)
{
    return oi_post_keyof_p((const oi_post *)v);
}

/* The bytes the length of a key of nkey bytes takes before it. */
static size_t oi_post_nlen(size_t nkey)
{
    size_t n = 1;
    while (nkey >= 0x80) {
        nkey >>= 7;
        n++;
    }
    return n;
}

/* A new posting list of key, with no item and no reference, or NULL. */
static oi_post *oi_post_new(oi_mem *m, oi_str key)
{
    size_t nlen = oi_post_nlen(key.n), n = key.n;
    unsigned char *k;
    oi_post *p;
    if (key.n > UINT32_MAX
        || !(p = (oi_post *)oi_realloc(m, NULL, 0,
                                       sizeof *p + nlen + key.n)))
        return NULL;
    memset(p, 0, sizeof *p);
    k = (unsigned char *)(p + 1);
    for (; n >= 0x80; n >>= 7)
        *k++ = (unsigned char)(0x80 | (n & 0x7F));
    *k++ = (unsigned char)n;
    memcpy(k, key.p, key.n);
    return p;
}

/* Writes the posting key of p into out (room for name + value + 2). */
static oi_str oi_post_key(const oi_prop *p, char *out)
{
    memcpy(out, p->name.p, p->name.n);
    out[p->name.n] = '\0';
    out[p->name.n + 1] = (char)('0' + p->type);
    if (p->value.n)
        memcpy(out + p->name.n + 2, p->value.p, p->value.n);
    return oi_mkstr(out, p->name.n + 2 + p->value.n);
}

/* The property a posting list stands for; its strings point into it. */
static oi_prop oi_post_prop(const oi_post *p)
{
    oi_str key = oi_post_keyof_p(p);
    size_t nn = oi_post_nname(p);
    oi_prop r;
    r.name = oi_mkstr(key.p, nn);
    r.type = key.p[nn + 1] - '0';
    r.value = oi_mkstr(key.p + nn + 2, key.n - nn - 2);
    return r;
}

/* Whether p is the list of property name (any type or value). */
static int oi_post_named(const oi_post *p, oi_str name)
{
    oi_str key = oi_post_keyof_p(p);
    return key.n > name.n && key.p[name.n] == '\0'
        && (name.n == 0 || memcmp(key.p, name.p, name.n) == 0);
}

/* The properties of an item are its posting lists, sorted by name (the
** order of their keys, since a name ends at a NUL). */

/* The posting list of its property called name, or NULL. */
static const oi_post *oi_item_named(const oi_item *it, oi_str name)
{
    size_t i;
    for (i = 0; i < it->nprops; i++)
        if (oi_post_named(it->props[i], name))
            return it->props[i];
    return NULL;
}

/* The property called name of it into *out; 0 if it has none. */
static int oi_item_prop(const oi_item *it, const char *name, oi_prop *out)
{
    const oi_post *p = oi_item_named(it, oi_zstr(name));
    if (p)
        *out = oi_post_prop(p);
    return p != NULL;
}

/* Whether it holds every property of want (same name, type and value). */
static int oi_item_match(const oi_item *it, const oi_props *want)
{
    size_t i;
    for (i = 0; i < want->n; i++) {
        const oi_prop *w = &want->v[i];
        const oi_post *q = oi_item_named(it, w->name);
        oi_prop p;
        if (!q)
            return 0;
        p = oi_post_prop(q);
        if (p.type != w->type || !oi_streq(p.value, w->value))
            return 0;
    }
    return 1;
}

static void oi_post_free(oi_mem *m, oi_post *p)
{
    oi_str key = oi_post_keyof_p(p);
    size_t cap = oi_post_cap(p);
    if (cap > 1)
        oi_free(m, p->u.v - 1, (cap + 1) * sizeof *p->u.v);
    oi_free(m, p, (size_t)(key.p + key.n - (const char *)p));
}

enum { OI_K_ACT, OI_K_BUDDY };  /* what a watcher's items are */

typedef struct oi_watch oi_watch;
struct oi_watch {
    oi_vec members;             /* oi_item * it holds */
    int items;                  /* OI_K_ACT or OI_K_BUDDY */
    unsigned long stamp;        /* the last event it was told of */
    const struct oi_wkind *kind;        /* section 9: what it is */
    struct oi_client *owner;            /* section 9: whose it is */
    oi_watch *next;             /* the owner's next watcher */
    int open;                   /* section 9: in x->open[items] */
};

/* Takes an item out of every watcher holding it (it is going away, or
** nobody may see it any more), and frees its list of them. */
static void oi_unwatch(oi_mem *m, oi_item *it)
{
    size_t i;
    if (!it->watch)
        return;
    for (i = 0; i < it->watch->n; i++)
        oi_vec_drop(&((oi_watch *)it->watch->v[i])->members, it);
    oi_vec_free(m, it->watch);
    oi_free(m, it->watch, sizeof *it->watch);
    it->watch = NULL;
}

/* Makes room for one more watcher of it, creating its list of them the
** first time.  On failure nothing changed but, maybe, that the list
** exists, empty.  The list stays while the item is watchable, though it
** may empty: a fan-out may be walking it (oi_fan_out). */
static int oi_item_watch_reserve(oi_mem *m, oi_item *it)
{
    if (!it->watch) {
        it->watch = (oi_vec *)oi_realloc(m, NULL, 0, sizeof *it->watch);
        if (!it->watch)
            return OLPCIDX_ENOMEM;
        memset(it->watch, 0, sizeof *it->watch);
    }
    return oi_vec_reserve(m, it->watch, 1);
}

/* Empties watcher w. */
static void oi_watch_clear(oi_mem *m, oi_watch *w)
{
    size_t i;
    for (i = 0; i < w->members.n; i++)
        oi_vec_drop(((oi_item *)w->members.v[i])->watch, w);
    oi_vec_free(m, &w->members);
}

/* Makes items v[0..n) the members of w, replacing the old ones.
** Failure-atomic: all room is reserved before anything changes. */
static int oi_watch_set(oi_mem *m, oi_watch *w, oi_item **v, size_t n)
{
    oi_vec nv;
    size_t i;
    memset(&nv, 0, sizeof nv);
    if (n && oi_vec_reserve(m, &nv, n) != OLPCIDX_OK)
        return OLPCIDX_ENOMEM;
    for (i = 0; i < n; i++)
        if (oi_item_watch_reserve(m, v[i]) != OLPCIDX_OK) {
            oi_vec_free(m, &nv);
            return OLPCIDX_ENOMEM;
        }
    oi_watch_clear(m, w);
    for (i = 0; i < n; i++) {
        oi_vec_push(&nv, v[i]);
        oi_vec_push(v[i]->watch, w);
    }
    w->members = nv;
    return OLPCIDX_OK;
}

typedef struct oi_buddy {
    oi_item it;                 /* uid: the bare JID */
    char *cur;                  /* current activity: two oi_lstr, id then
                                ** room, in one block; NULL: none */
    oi_svec acts;               /* oi_act * it participates in */
    char *last;                 /* oi_lstr: the resource of the full JID
                                ** last heard from (its bare JID is the
                                ** uid), however long; NULL: none */
    char *nick;                 /* oi_lstr: its PEP nick, or NULL */
    uint64_t seen;              /* when, in ms */
    uint64_t ping_at;           /* while pinged: when the idle ping was
                                ** sent, by oi_ping_clock (section 13) */
    uint32_t alias_at;          /* its entry in the alias index + 1, or 0 */
    unsigned char restored;     /* from storage: to be pinged at once */
    unsigned char roster;       /* OI_ROSTER_*: publishing (PROTOCOL.md
                                ** 6.2), persisted */
    unsigned char pinged;       /* an idle ping awaits its answer */
} oi_buddy;

/* The id and the room of the buddy's current activity (empty: none). */
static oi_str oi_cur_id(const oi_buddy *b)
{
    return oi_lstr(b->cur);
}

static oi_str oi_cur_room(const oi_buddy *b)
{
    return b->cur ? oi_lstr(b->cur + 4 + oi_lstr(b->cur).n)
                  : oi_mkstr(NULL, 0);
}

enum { OI_ROSTER_NONE, OI_ROSTER_ASKED, OI_ROSTER_PUBLISHED };

/* While the component joins an activity's room (PROTOCOL.md 6.5), which
** few do at a time: a block of its own, so that the others do not carry
** it. */
typedef struct oi_joining {
    uint64_t at;                /* when the component asked to join */
    oi_svec here;               /* oi_buddy * seen in the room meanwhile,
                                ** to reconcile */
    unsigned char whole;        /* here is whole (no memory was short) */
} oi_joining;

typedef struct oi_act {
    oi_item it;                 /* uid: the activity id */
    oi_svec parts;              /* oi_buddy * participants */
    oi_joining *join;           /* while muc is OI_MUC_JOINING, but for a
                                ** restored one not yet asked: else NULL */
    uint32_t nroom;             /* bytes of its room JID, right after the
                                ** id; 0: none */
    unsigned char muc;          /* OI_MUC_*: the component in its room
                                ** (PROTOCOL.md 6.5) */
    unsigned char nick_try;     /* its nick there: 0 "inspector", else
                                ** "inspector-<nick_try + 1>" (at most 8) */
} oi_act;

enum { OI_MUC_NONE, OI_MUC_JOINING, OI_MUC_IN };

/* The room JID of an activity (empty: none). */
static oi_str oi_room(const oi_act *a)
{
    return oi_mkstr((const char *)(a + 1) + a->it.nuid, a->nroom);
}

/* The key of an activity in x->rooms. */
static oi_str oi_act_room(const void *a)
{
    return oi_room((const oi_act *)a);
}

/* Sets where the component is in a's room; what it kept while joining
** goes unless it is joining. */
static void oi_act_muc(oi_mem *m, oi_act *a, int muc)
{
    if (muc != OI_MUC_JOINING && a->join) {
        oi_svec_free(m, &a->join->here);
        oi_free(m, a->join, sizeof *a->join);
        a->join = NULL;
    }
    a->muc = (unsigned char)muc;
}

/* An activity is private when its "private" property is bool true
** (PROTOCOL.md 2.3): never returned, never notified. */
static int oi_act_private(const oi_act *a)
{
    oi_prop p;
    return oi_item_prop(&a->it, "private", &p) && p.type == OI_PT_BOOL
        && oi_eq(p.value, "1");
}

/* Takes it out of list p, if it is there. */
static void oi_post_take(oi_post *p, const oi_item *it)
{
    p->n -= (uint32_t)oi_sorted_take(oi_post_items(p), oi_post_count(p), it);
}

/* Drops one reference of every list in v[0..n), taking it out of each
** (it is there only if it was public); lists nobody refers to go. */
static void oi_post_unref(oi_mem *m, oi_map *map, oi_post **v, size_t n,
                          const oi_item *it)
{
    size_t i;
    for (i = 0; i < n; i++) {
        oi_post *post = v[i];
        oi_post_take(post, it);
        if ((post->refs -= OI_POST_REF) < OI_POST_REF) {
            oi_map_del(map, oi_post_keyof(post));
            oi_post_free(m, post);
        }
    }
}

/* Takes it out of every list it is posted in, keeping its properties
** (and their lists) for the events that still name it. */
static void oi_post_unlist(oi_item *it)
{
    size_t i;
    for (i = 0; i < it->nprops; i++)
        oi_post_take(it->props[i], it);
}

/* Takes it out of every list it is posted in and drops its properties. */
static void oi_post_remove(oi_mem *m, oi_map *map, oi_item *it)
{
    oi_post_unref(m, map, it->props, it->nprops, it);
    if (it->props)
        oi_free(m, it->props, it->nprops * sizeof *it->props);
    it->props = NULL;
    it->nprops = 0;
}

/* Replaces the properties of it by ps, posting it in the list of each
** (unless post is 0: a private activity is in no list, PROTOCOL.md 2.3).
** Makes sure every list exists and has room first, creating the missing
** ones; on ENOMEM nothing changed and the lists created here are gone
** again.  Then, which cannot fail: the lists of ps gain a reference (so
** that those it keeps stay), the old ones lose theirs and it, and the
** new ones (public) gain it -- in that order, so that a list it keeps
** holds it once whether it was and is public or not. */
static int oi_item_set_props(oi_mem *m, oi_arena *ar, oi_map *map,
                             oi_item *it, const oi_props *ps, int post)
{
    oi_post **made = NULL, **lists = NULL;
    size_t i, nmade = 0;
    if (ps->n) {
        made = (oi_post **)oi_arena_alloc(m, ar, ps->n * sizeof *made);
        lists = (oi_post **)oi_realloc(m, NULL, 0, ps->n * sizeof *lists);
        if (!made || !lists || oi_map_reserve(m, map, ps->n) != OLPCIDX_OK)
            goto fail;
    }
    for (i = 0; i < ps->n; i++) {
        const oi_prop *p = &ps->v[i];
        size_t nkey = p->name.n + 2 + p->value.n;
        char *kb = (char *)oi_arena_alloc(m, ar, nkey);
        oi_post *pl;
        oi_str key;
        if (!kb)
            goto fail;
        key = oi_post_key(p, kb);
        pl = (oi_post *)oi_map_get(map, key);
        if (!pl) {
            if (!(pl = oi_post_new(m, key)))
                goto fail;
            pl->refs = oi_post_bits(p);
            oi_map_put(m, map, pl);     /* reserved */
            made[nmade++] = pl;
        }
        if (pl->refs > UINT32_MAX - OI_POST_REF
            || (post && oi_post_reserve(m, pl) != OLPCIDX_OK))
            goto fail;
        lists[i] = pl;
    }
    for (i = 0; i < ps->n; i++)
        lists[i]->refs += OI_POST_REF;
    oi_post_remove(m, map, it);
    for (i = 0; post && i < ps->n; i++) {
        oi_sorted_put(oi_post_items(lists[i]), oi_post_count(lists[i]), it);
        lists[i]->n++;
    }
    it->props = lists;
    it->nprops = (uint32_t)ps->n;
    return OLPCIDX_OK;
fail:
    while (nmade > 0) {
        oi_post *pl = made[--nmade];
        oi_map_del(map, oi_post_keyof(pl));
        oi_post_free(m, pl);
    }
    if (lists)
        oi_free(m, lists, ps->n * sizeof *lists);
    return OLPCIDX_ENOMEM;
}

/* A new zeroed object of size bytes followed by a copy of key, entered in
** map under that copy (*copy), which is also its first field: the key
** the map reads (oi_key_first).  NULL, and nothing changed, when out of
** memory. */
static void *oi_keyed_new(oi_mem *m, oi_map *map, size_t size, oi_str key,
                          oi_str *copy)
{
    char *p;
    if (oi_map_reserve(m, map, 1) != OLPCIDX_OK)
        return NULL;
    p = (char *)oi_realloc(m, NULL, 0, size + key.n);
    if (!p)
        return NULL;
    memset(p, 0, size);
    if (key.n)
        memcpy(p + size, key.p, key.n);
    *copy = oi_mkstr(p + size, key.n);
    *(oi_str *)(void *)p = *copy;
    oi_map_put(m, map, p);              /* room reserved above */
    return p;
}

/* A new zeroed block of size bytes, the struct whose first field is an
** item, then extra more: the item's UID, copied there, and what the
** caller puts after it.  NULL when out of memory or too long. */
static oi_item *oi_item_new(oi_mem *m, size_t size, oi_str uid, size_t extra)
{
    oi_item *it;
    if (uid.n > UINT32_MAX || uid.n > SIZE_MAX - size
        || extra > SIZE_MAX - size - uid.n
        || !(it = (oi_item *)oi_realloc(m, NULL, 0, size + uid.n + extra)))
        return NULL;
    memset(it, 0, size);
    if (uid.n)
        memcpy((char *)it + size, uid.p, uid.n);
    it->uid_at = (uint16_t)size;
    it->nuid = (uint32_t)uid.n;
    return it;
}

/* The buddy with that bare JID; created (with nothing announced yet) when
** create is set.  NULL: absent, or out of memory when creating. */
static oi_buddy *oi_buddy_get(olpcidx *x, oi_str jid, int create)
{
    oi_buddy *b = (oi_buddy *)oi_map_get(&x->buddies, jid);
    if (b || !create
        || oi_vec_reserve(&x->mem, &x->listed[OI_K_BUDDY], 1) != OLPCIDX_OK
        || oi_map_reserve(&x->mem, &x->buddies, 1) != OLPCIDX_OK)
        return b;
    b = (oi_buddy *)oi_item_new(&x->mem, sizeof *b, jid, 0);
    if (b) {
        b->seen = x->now;
        oi_map_put(&x->mem, &x->buddies, b);    /* room reserved above */
        oi_sorted_insert(&x->listed[OI_K_BUDDY], &b->it);
    }
    return b;
}


/* Sets the buddy's current activity (both empty: none). */
static int oi_buddy_set_cur(olpcidx *x, oi_buddy *b, oi_str id, oi_str room)
{
    char *cur = NULL;
    if (id.n + room.n) {
        if (id.n > UINT32_MAX - 8 - room.n || room.n > UINT32_MAX
            || !(cur = (char *)oi_realloc(&x->mem, NULL, 0,
                                          8 + id.n + room.n)))
            return OLPCIDX_ENOMEM;
        oi_lstr_put(oi_lstr_put(cur, id), room);
    }
    if (b->cur)
        oi_free(&x->mem, b->cur, 8 + oi_cur_id(b).n + oi_cur_room(b).n);
    b->cur = cur;
    return OLPCIDX_OK;
}

/* Sets the buddy's PEP nick (empty: none). */
static int oi_buddy_set_nick(olpcidx *x, oi_buddy *b, oi_str nick)
{
    char *p = NULL;
    if (nick.n && !(p = oi_lstr_new(&x->mem, nick)))
        return OLPCIDX_ENOMEM;
    oi_lstr_free(&x->mem, b->nick);
    b->nick = p;
    return OLPCIDX_OK;
}

/* Where the buddy was last heard from (PROTOCOL.md 5.2): full JID jid,
** whose bare JID is the buddy's, so that only its resource is kept.  A
** JID of another bare JID, or none, changes nothing; out of memory, the
** one before stays. */
static void oi_buddy_set_last(olpcidx *x, oi_buddy *b, oi_str jid)
{
    oi_str bare = oi_bare(jid), res;
    char *p;
    if (bare.n == jid.n || !oi_streq(bare, oi_uid(&b->it)))
        return;
    res = oi_mkstr(jid.p + bare.n + 1, jid.n - bare.n - 1);
    if (b->last && oi_streq(oi_lstr(b->last), res))
        return;
    if (!(p = oi_lstr_new(&x->mem, res)))
        return;
    oi_lstr_free(&x->mem, b->last);
    b->last = p;
}

/* The full JID the buddy was last heard from, in a block of full->n
** bytes the caller frees; NULL when there is none or memory is short. */
static char *oi_buddy_last(olpcidx *x, const oi_buddy *b, oi_str *full)
{
    oi_str res = oi_lstr(b->last), uid = oi_uid(&b->it);
    char *p;
    if (!b->last || res.n > SIZE_MAX - 1 - uid.n
        || !(p = (char *)oi_realloc(&x->mem, NULL, 0, uid.n + 1 + res.n)))
        return NULL;
    memcpy(p, uid.p, uid.n);
    p[uid.n] = '/';
    if (res.n)
        memcpy(p + uid.n + 1, res.p, res.n);
    *full = oi_mkstr(p, uid.n + 1 + res.n);
    return p;
}

/* The alias a buddy is searched by (PROTOCOL.md 2.2): its PEP nick, else
** its nick property. */
static oi_str oi_buddy_alias(const oi_buddy *b)
{
    oi_prop p;
    if (b->nick)
        return oi_lstr(b->nick);
    return oi_item_prop(&b->it, "nick", &p) ? p.value : oi_mkstr("", 0);
}

/*
** The alias index: every buddy's alias, folded, back to back in one
** buffer with a NUL after each, and an entry per buddy saying where its
** alias is.  A search for part of an alias (PROTOCOL.md 3.2, 6.7) is one
** pass of memchr and memcmp over contiguous bytes -- a megabyte for
** 100 000 buddies -- instead of a walk over every buddy, each folded
** anew.  A changed alias is appended and the old bytes left dead; the
** buffer is rebuilt once dead bytes outweigh live ones.  The text stays
** below 4 GiB (beyond, searches read every buddy), so that an entry is
** 16 bytes; there are fewer entries than text bytes, so that alias_at
** fits in 32 bits too.
*/
typedef struct oi_alias_ent {
    oi_buddy *b;                /* NULL: dead */
    uint32_t off, len;
} oi_alias_ent;

#define OI_ALIAS_MAX UINT32_MAX         /* bytes of alias text */

#define OI_ALIAS_ENTS(x) ((oi_alias_ent *)(void *)(x)->alias_ents.p)

/* Drops b's entry. */
static void oi_alias_drop(olpcidx *x, oi_buddy *b)
{
    oi_alias_ent *e;
    if (!b->alias_at)
        return;
    e = &OI_ALIAS_ENTS(x)[b->alias_at - 1];
    x->alias_dead += e->len + 1;
    e->b = NULL;
    b->alias_at = 0;
}

/* Rebuilds the buffers without their dead parts, when those outweigh the
** rest; out of memory, the old ones stay. */
static void oi_alias_compact(olpcidx *x)
{
    oi_buf text, ents;
    oi_alias_ent *e = OI_ALIAS_ENTS(x);
    size_t i, n = x->alias_ents.n / sizeof *e;
    if (x->alias_dead < 65536 || x->alias_dead < x->alias_text.n / 2)
        return;
    memset(&text, 0, sizeof text);
    memset(&ents, 0, sizeof ents);
    text.max = OI_ALIAS_MAX;
    ents.max = (size_t)-1;
    if (oi_buf_reserve(&x->mem, &text, x->alias_text.n - x->alias_dead)
        || oi_buf_reserve(&x->mem, &ents, x->alias_ents.n)) {
        oi_buf_free(&x->mem, &text);
        return;
    }
    for (i = 0; i < n; i++) {
        oi_alias_ent ne;
        if (!e[i].b)
            continue;
        ne = e[i];
        ne.off = (uint32_t)text.n;
        oi_buf_add(&x->mem, &text, x->alias_text.p + e[i].off, e[i].len + 1);
        oi_buf_add(&x->mem, &ents, &ne, sizeof ne);
        ne.b->alias_at = (uint32_t)(ents.n / sizeof ne);
    }
    oi_buf_free(&x->mem, &x->alias_text);
    oi_buf_free(&x->mem, &x->alias_ents);
    x->alias_text = text;
    x->alias_ents = ents;
    x->alias_dead = 0;
}

/* b's alias changed (or b goes: gone set). */
static void oi_alias_update(olpcidx *x, oi_buddy *b, int gone)
{
    oi_str alias = gone ? OI_LIT("") : oi_buddy_alias(b);
    oi_alias_ent e;
    oi_alias_drop(x, b);
    if (!alias.n)
        return;
    if (x->alias_text.max == 0) {
        x->alias_text.max = OI_ALIAS_MAX;
        x->alias_ents.max = (size_t)-1;
    }
    if (oi_buf_reserve(&x->mem, &x->alias_text, alias.n + 1)
        || oi_buf_reserve(&x->mem, &x->alias_ents, sizeof e)) {
        x->alias_lost = 1;              /* searches read every buddy */
        return;
    }
    e.b = b;
    e.off = (uint32_t)x->alias_text.n;
    e.len = (uint32_t)oi_fold(alias, x->alias_text.p + e.off, alias.n);
    x->alias_text.p[e.off + e.len] = '\0';
    x->alias_text.n += e.len + 1;
    oi_buf_add(&x->mem, &x->alias_ents, &e, sizeof e);
    b->alias_at = (uint32_t)(x->alias_ents.n / sizeof e);
    oi_alias_compact(x);
}

/* The buddies whose folded alias holds the n bytes at needle (folded),
** each once, into an arena array.  Returns their number, or -1 when out
** of memory. */
static long oi_alias_find(olpcidx *x, const char *needle, size_t n,
                          oi_item ***out)
{
    const oi_alias_ent *e = OI_ALIAS_ENTS(x);
    size_t ne = x->alias_ents.n / sizeof *e, k = 0, cap = 16;
    const char *p = x->alias_text.p;
    const char *end = p ? p + x->alias_text.n : NULL;   /* none yet: NULL */
    oi_item **v = (oi_item **)oi_arena_alloc(&x->mem, &x->arena,
                                             cap * sizeof *v);
    if (!v)
        return -1;
    while (n && p && end - p >= (long)n
           && (p = (const char *)memchr(p, needle[0],
                                        (size_t)(end - p) - n + 1)) != NULL) {
        size_t lo = 0, hi = ne, off = (size_t)(p - x->alias_text.p);
        if (memcmp(p, needle, n) != 0) {
            p++;
            continue;
        }
        while (lo + 1 < hi) {           /* the entry holding off */
            size_t mid = lo + (hi - lo) / 2;
            if (e[mid].off <= off)
                lo = mid;
            else
                hi = mid;
        }
        p = x->alias_text.p + e[lo].off + e[lo].len + 1;  /* next entry */
        if (!e[lo].b)
            continue;
        if (k == cap) {
            oi_item **w = (oi_item **)oi_arena_alloc(&x->mem, &x->arena,
                                                     2 * cap * sizeof *w);
            if (!w)
                return -1;
            memcpy(w, v, cap * sizeof *v);
            v = w;
            cap *= 2;
        }
        v[k++] = &e[lo].b->it;
    }
    *out = v;
    return (long)k;
}

/* The memory of a forgotten buddy (it held nothing more). */
static void oi_buddy_release(olpcidx *x, oi_buddy *b)
{
    oi_free(&x->mem, b, sizeof *b + b->it.nuid);
}

/* Forgets a buddy that holds nothing any more; one that an event still
** to be handed out names keeps its memory until then (section 9). */
static void oi_buddy_trim(olpcidx *x, oi_buddy *b)
{
    if (b->it.nprops || b->cur || b->acts.n || b->roster || b->nick)
        return;
    oi_unwatch(&x->mem, &b->it);
    oi_alias_drop(x, b);
    oi_sorted_remove(&x->listed[OI_K_BUDDY], &b->it);
    oi_map_del(&x->buddies, oi_uid(&b->it));
    oi_svec_free(&x->mem, &b->acts);
    oi_lstr_free(&x->mem, b->last);
    b->last = NULL;
    b->it.doomed = 1;
    if (!b->it.pins)
        oi_buddy_release(x, b);
}

static oi_act *oi_act_find(olpcidx *x, oi_str id, oi_str room)
{
    if (id.n)
        return (oi_act *)oi_map_get(&x->acts, id);
    return room.n ? (oi_act *)oi_map_get(&x->rooms, room) : NULL;
}

/* A new activity with no participant yet.  id must not be known; a room
** already bound to another activity is left to that one. */
static oi_act *oi_act_new(olpcidx *x, oi_str id, oi_str room)
{
    oi_act *a;
    if (room.n && oi_map_get(&x->rooms, room))
        room.n = 0;
    if (oi_map_reserve(&x->mem, &x->acts, 1) != OLPCIDX_OK
        || (room.n && oi_map_reserve(&x->mem, &x->rooms, 1) != OLPCIDX_OK)
        || oi_vec_reserve(&x->mem, &x->listed[OI_K_ACT], 1) != OLPCIDX_OK)
        return NULL;
    if (room.n > UINT32_MAX
        || !(a = (oi_act *)oi_item_new(&x->mem, sizeof *a, id, room.n)))
        return NULL;
    if (room.n)
        memcpy((char *)(a + 1) + id.n, room.p, room.n);
    a->nroom = (uint32_t)room.n;
    oi_map_put(&x->mem, &x->acts, a);
    if (room.n)
        oi_map_put(&x->mem, &x->rooms, a);
    oi_sorted_insert(&x->listed[OI_K_ACT], &a->it);     /* public */
    return a;
}

/* Replaces the activity's properties: one that is private is in no list
** a query reads (PROTOCOL.md 2.3), one that is public in all of its. */
static int oi_act_set_props(olpcidx *x, oi_act *a, const oi_props *ps)
{
    const oi_prop *p = oi_props_get(ps, "private");
    int was = oi_act_private(a);
    int priv = p && p->type == OI_PT_BOOL && oi_eq(p->value, "1");
    if ((was && !priv
         && oi_vec_reserve(&x->mem, &x->listed[OI_K_ACT], 1) != OLPCIDX_OK)
        || oi_item_set_props(&x->mem, &x->arena, &x->aposts, &a->it, ps,
                             !priv) != OLPCIDX_OK)
        return OLPCIDX_ENOMEM;
    if (was && !priv)
        oi_sorted_insert(&x->listed[OI_K_ACT], &a->it);
    else if (!was && priv)
        oi_sorted_remove(&x->listed[OI_K_ACT], &a->it);
    return OLPCIDX_OK;
}

/* The memory of a forgotten activity, and its properties. */
static void oi_act_release(olpcidx *x, oi_act *a)
{
    oi_post_remove(&x->mem, &x->aposts, &a->it);
    oi_free(&x->mem, a, sizeof *a + a->it.nuid + a->nroom);
}

/* Forgets an activity: out of the maps and the posting lists, and out of
** its participants' lists.  One that an event still to be handed out
** names (pinned, section 9) keeps its memory, its id, room and
** properties, in no list a query reads, until that event is through:
** a change notification still waiting shows them. */
static void oi_act_free(olpcidx *x, oi_act *a)
{
    size_t i;
    for (i = 0; i < a->parts.n; i++) {
        oi_buddy *b = (oi_buddy *)OI_SV(&a->parts)[i];
        oi_svec_drop(&b->acts, a);
    }
    oi_map_del(&x->acts, oi_uid(&a->it));
    if (a->nroom)
        oi_map_del(&x->rooms, oi_room(a));
    if (!oi_act_private(a))
        oi_sorted_remove(&x->listed[OI_K_ACT], &a->it);
    if (a->it.pins)
        oi_post_unlist(&a->it);
    else
        oi_post_remove(&x->mem, &x->aposts, &a->it);
    oi_unwatch(&x->mem, &a->it);
    oi_svec_free(&x->mem, &a->parts);
    if (a->join)
        oi_act_muc(&x->mem, a, OI_MUC_NONE);
    a->it.doomed = 1;
    if (!a->it.pins)
        oi_act_release(x, a);
}

/* Makes b a participant of a (nothing if it is one already). */
static int oi_join(olpcidx *x, oi_act *a, oi_buddy *b)
{
    if (oi_svec_has(&a->parts, b))
        return OLPCIDX_OK;
    if (b->acts.n >= x->cfg.max_activities)
        return OLPCIDX_ELIMIT;
    if (oi_svec_reserve(&x->mem, &a->parts, 1) != OLPCIDX_OK
        || oi_svec_reserve(&x->mem, &b->acts, 1) != OLPCIDX_OK)
        return OLPCIDX_ENOMEM;
    oi_svec_push(&a->parts, b);
    oi_svec_push(&b->acts, a);
    return OLPCIDX_OK;
}

/* b leaves a; an activity without participants is closed and forgotten
** (PROTOCOL.md 2.3).  Returns 1 if it was closed. */
static int oi_leave(olpcidx *x, oi_act *a, oi_buddy *b)
{
    oi_svec_drop(&a->parts, b);
    oi_svec_drop(&b->acts, a);
    if (a->join)                        /* not in the room now; and b may
                                        ** be forgotten, its memory reused */
        oi_svec_drop(&a->join->here, b);
    if (a->parts.n > 0)
        return 0;
    oi_act_free(x, a);
    return 1;
}

/* A stanza came from full JID jid: a sign of life of its buddy
** (PROTOCOL.md 5.2), which remembers where it was last heard from.  What
** comes from a bare JID (its server: PEP) is none. */
static void oi_seen(olpcidx *x, oi_str jid)
{
    oi_buddy *b;
    if (oi_bare(jid).n == jid.n)
        return;                         /* a bare JID is no laptop */
    if (!(b = oi_buddy_get(x, oi_bare(jid), 0)))
        return;
    b->seen = x->now;
    b->pinged = 0;
    b->restored = 0;
    oi_buddy_set_last(x, b, jid);
}

/* An empty index; each map has its own hash key. */
static void oi_index_init(olpcidx *x)
{
    oi_map_init(&x->buddies, x->cfg.hash_seed, 1, oi_uid_keyof);
    oi_map_init(&x->acts, x->cfg.hash_seed, 2, oi_uid_keyof);
    oi_map_init(&x->rooms, x->cfg.hash_seed, 3, oi_act_room);
    oi_map_init(&x->bposts, x->cfg.hash_seed, 4, oi_post_keyof);
    oi_map_init(&x->aposts, x->cfg.hash_seed, 5, oi_post_keyof);
}

/* Frees the whole index; its watchers are gone already. */
static void oi_index_free(olpcidx *x)
{
    size_t i = 0;
    void *p;
    while ((p = oi_map_next(&x->acts, &i)) != NULL)
        oi_act_free(x, (oi_act *)p);
    i = 0;
    while ((p = oi_map_next(&x->buddies, &i)) != NULL) {
        oi_buddy *b = (oi_buddy *)p;
        oi_post_remove(&x->mem, &x->bposts, &b->it);
        oi_buddy_set_cur(x, b, OI_LIT(""), OI_LIT(""));
        oi_buddy_set_nick(x, b, OI_LIT(""));
        b->roster = OI_ROSTER_NONE;
        oi_buddy_trim(x, b);
    }
    oi_map_free(&x->mem, &x->buddies);
    oi_map_free(&x->mem, &x->acts);
    oi_map_free(&x->mem, &x->rooms);
    oi_map_free(&x->mem, &x->bposts);
    oi_map_free(&x->mem, &x->aposts);
    oi_vec_free(&x->mem, &x->listed[OI_K_ACT]);
    oi_vec_free(&x->mem, &x->listed[OI_K_BUDDY]);
    oi_buf_free(&x->mem, &x->alias_text);
    oi_buf_free(&x->mem, &x->alias_ents);
    x->alias_dead = 0;
    x->alias_lost = 0;
}
/* ==== 9. Watchers and events ========================================= */

/*
** Clients, the watchers they own, and the events the index raises.
**
** A client is one full JID that spoke to the component (PROTOCOL.md 5.4):
** its rate bucket, whether it sent presence, and its watchers.  A watcher
** (section 8) is a set of items its client was told about; its kind says
** which dialect owns it and how an event is written for it: a seed result
** set (section 14) is one kind, a Gadget view another.  Nothing about a
** dialect is known here.
**
** A change to the index raises one event (oi_emit): buddy properties or
** current activity changed, buddy gone (offline or unpublished), activity
** properties changed, someone joined or left, activity closed.  Its
** watchers are those holding the item it is about -- for a buddy, also
** those holding one of the buddy's public activities -- and each is
** handed the event once, in the order they started watching.  The cost is
** the number of those watchers, never the number of clients.  Each event
** has a number, so that a dialect can tell a client once of an event that
** reaches it through several watchers, and carries the full JID whose
** stanza caused it (x->cause), whom a dialect may spare.  Watchers that
** take new members (x->open) are then offered the item, at a cost of
** their number.
*/
enum oi_ev_type {
    OI_EV_BUDDY_PROPS,          /* buddy: properties replaced */
    OI_EV_BUDDY_CUR,            /* buddy: current activity set or cleared */
    OI_EV_BUDDY_NICK,           /* buddy: its PEP nick changed */
    OI_EV_BUDDY_COMES,          /* buddy: online and published from now on */
    OI_EV_BUDDY_GONE,           /* buddy: offline, or no longer published */
    OI_EV_ACT_OPENS,            /* act: new, or public from now on */
    OI_EV_ACT_PROPS,            /* act: properties replaced */
    OI_EV_JOINED,               /* act, buddy: the buddy joined */
    OI_EV_LEFT,                 /* act, buddy: the buddy left */
    OI_EV_CLOSED                /* act: closed, or private from now on */
};

typedef struct oi_event {
    int type;                   /* enum oi_ev_type */
    unsigned long seq;          /* its number */
    const oi_act *act;          /* the activity, for activity events */
    const oi_buddy *buddy;      /* the buddy, for buddy and member events */
    oi_str cause;               /* full JID whose stanza caused it */
} oi_event;

/* What a dialect does with its watchers of one kind.  A watcher that
** takes new members (a view below its size) is open: it is also offered
** every event about an item of its kind it does not hold. */
typedef struct oi_wkind {
    const char *name;           /* for log lines */
    size_t stat;                /* the olpcidx_stats figure counting its
                                ** watchers (offsetof) */
    size_t size;                /* bytes of its watchers (oi_watch first) */
    int lives_empty;            /* an empty one stays (else it goes) */
    void (*render)(olpcidx *x, oi_watch *w, const oi_event *ev);
    void (*offer)(olpcidx *x, oi_watch *w, const oi_event *ev);
    void (*drop)(olpcidx *x, oi_watch *w);      /* frees what it owns */
} oi_wkind;

typedef struct oi_client {
    oi_str jid;                 /* full JID; bytes right after the struct */
    oi_watch *watches;          /* those it owns, newest first */
    unsigned long stamp;        /* 14: the last event it was told of */
    int available;              /* 13: sent available presence */
    uint64_t tokens;            /* 13: rate bucket, in 1/1000 stanza */
    uint64_t filled;            /* 13: when it was last refilled, ms */
    unsigned long cmd_sid;      /* 13: its unfinished ad-hoc command
                                ** session (XEP-0050), 0: none */
    uint64_t cmd_at;            /* 13: when that session began, ms */
    int cmd_k;                  /* 13: the command it is of */
} oi_client;

/* How many full JIDs of one bare JID sent available presence (PROTOCOL.md
** 5.1): the bare JID is online while this is not zero.  The bare JID's
** bytes follow the struct. */
typedef struct oi_online {
    oi_str bare;
    size_t n;
} oi_online;

/* Whether bare JID bare is online. */
static int oi_is_online(olpcidx *x, oi_str bare)
{
    return oi_map_get(&x->online, bare) != NULL;
}

/* One more, or (delta -1) one fewer, available full JID of bare.
** Returns the count after, or -1 when out of memory. */
static long oi_online_add(olpcidx *x, oi_str bare, int delta)
{
    oi_online *o = (oi_online *)oi_map_get(&x->online, bare);
    if (!o) {
        if (delta < 0)
            return 0;
        o = (oi_online *)oi_keyed_new(&x->mem, &x->online, sizeof *o, bare,
                                      &bare);
        if (!o)
            return -1;
        o->bare = bare;
    }
    o->n = delta > 0 ? o->n + 1 : o->n - 1;
    if (o->n == 0) {
        oi_map_del(&x->online, o->bare);
        oi_free(&x->mem, o, sizeof *o + o->bare.n);
        return 0;
    }
    return (long)o->n;
}

/* The client with that full JID, created when create is set.  NULL:
** absent, or out of memory. */
static oi_client *oi_client_get(olpcidx *x, oi_str jid, int create)
{
    oi_client *c = (oi_client *)oi_map_get(&x->clients, jid);
    oi_str key;
    if (c || !create)
        return c;
    c = (oi_client *)oi_keyed_new(&x->mem, &x->clients, sizeof *c, jid,
                                  &key);
    if (c) {
        c->jid = key;
        c->tokens = x->cfg.rate_burst * 1000;
        c->filled = x->now;
    }
    return c;
}

/* Refills the client's rate bucket (PROTOCOL.md 8.2) for the time since
** it was last refilled: rate-per-sec stanzas a second, up to rate-burst.
** A bucket full again is as good as none (5.4). */
static void oi_client_refill(olpcidx *x, oi_client *c)
{
    uint64_t full = (uint64_t)x->cfg.rate_burst * 1000;
    c->tokens += (x->now - c->filled) * x->cfg.rate_per_sec;
    c->filled = x->now;
    if (c->tokens > full)
        c->tokens = full;
}

/* Client c's watcher of that kind over those items, or NULL. */
static oi_watch *oi_watch_find(oi_client *c, const oi_wkind *kind, int items)
{
    oi_watch *w;
    for (w = c->watches; w; w = w->next)
        if (w->kind == kind && w->items == items)
            return w;
    return NULL;
}

/* A new empty watcher of client c, or NULL when out of memory. */
static oi_watch *oi_watch_new(olpcidx *x, oi_client *c, const oi_wkind *kind,
                              int items)
{
    oi_watch *w = (oi_watch *)oi_realloc(&x->mem, NULL, 0, kind->size);
    if (!w)
        return NULL;
    memset(w, 0, kind->size);
    w->kind = kind;
    w->owner = c;
    w->items = items;
    w->next = c->watches;
    c->watches = w;
    if (kind->lives_empty)
        x->nopenable[items]++;
    return w;
}

/* Opens or closes watcher w to new members.  Never fails for a watcher
** of a kind that lives empty: oi_watch_reserve made the room. */
static void oi_watch_set_open(olpcidx *x, oi_watch *w, int open)
{
    oi_vec *o = &x->open[w->items];
    if (w->open == open
        || (open && OI_NEVER(oi_vec_reserve(&x->mem, o, 1) != OLPCIDX_OK)))
        return;
    if (open)
        oi_vec_push(o, w);
    else
        oi_vec_drop(o, w);
    w->open = open;
}

/* Makes sure that one more watcher over items of that kind can be open
** (before creating one that may be). */
static int oi_watch_reserve(olpcidx *x, int items)
{
    oi_vec *o = &x->open[items];
    return oi_vec_reserve(&x->mem, o, x->nopenable[items] + 1 - o->n);
}

/*
** Events still to be handed out: the fan-out queue (PROTOCOL.md 8.4).
** An event is handed to its watchers one at a time, oldest event first,
** while the output queue holds at most half of max-output
** (oi_fan_pump); the rest waits until olpcidx_sent() has made room, and
** input is held back meanwhile (section 17), so that no notification is
** dropped because the queue is full, and the queue never holds more
** than half of max-output plus what one watcher is told of one event.
** A waiting event keeps the list of the watchers it reaches, as they
** were when it was raised (a pointer each: never more than the watchers
** that exist), and pins the items it names: one forgotten meanwhile
** keeps its memory until the event is through (section 8).  A watcher
** freed meanwhile is taken off the lists.  What a watcher is told is
** written when it is handed the event, from the items as they are then;
** meanwhile only the rest of the stanza that raised it and the timers
** run, never another stanza.
*/
typedef struct oi_fan {
    oi_watch *w;                /* NULL: freed since */
    int offer;                  /* offered the item (else told of it) */
} oi_fan;

typedef struct oi_pend {
    struct oi_pend *next;
    oi_event ev;                /* its cause points into the block */
    size_t n, i;                /* its watchers, and the next to hand it */
    size_t size;                /* bytes of the block: this, oi_fan[n],
                                ** the cause */
} oi_pend;

static oi_fan *oi_pend_fans(oi_pend *p)
{
    return (oi_fan *)(void *)((char *)p + OI_ALIGN_UP(sizeof *p));
}

/* Watcher w is being freed: no waiting event is handed to it. */
static void oi_fq_forget(olpcidx *x, const oi_watch *w)
{
    oi_pend *p;
    size_t i;
    for (p = x->fq; p; p = p->next) {
        oi_fan *f = oi_pend_fans(p);
        for (i = p->i; i < p->n; i++)
            if (f[i].w == w)
                f[i].w = NULL;
    }
}

/* Empties watcher w and frees it. */
static void oi_watch_free(olpcidx *x, oi_watch *w)
{
    oi_watch **p = &w->owner->watches;
    if (x->fq)
        oi_fq_forget(x, w);
    while (*p != w)
        p = &(*p)->next;
    *p = w->next;
    oi_watch_set_open(x, w, 0);
    if (w->kind->lives_empty)
        x->nopenable[w->items]--;
    if (w->kind->drop)
        w->kind->drop(x, w);
    oi_watch_clear(&x->mem, w);
    oi_free(&x->mem, w, w->kind->size);
}

/* Forgets what the client no longer needs: watchers that are empty (of
** the kinds that do not live empty) and wait for no event (an emptied
** result set is still told that its activity closed), and the client
** itself once it has no watcher, no presence and a full rate bucket. */
static void oi_client_trim(olpcidx *x, oi_client *c)
{
    oi_watch *w = c->watches, *next;
    for (; w; w = next) {
        next = w->next;
        if (w->members.n == 0 && !w->kind->lives_empty
            && !(x->fq && w->stamp >= x->fq->ev.seq))
            oi_watch_free(x, w);
    }
    oi_client_refill(x, c);
    if (c->cmd_sid && x->now - c->cmd_at >= OI_CMD_IDLE_MS)
        c->cmd_sid = 0;                 /* abandoned (PROTOCOL.md 9.5) */
    if (c->watches || c->available || c->cmd_sid
        || c->tokens < x->cfg.rate_burst * 1000)
        return;
    oi_map_del(&x->clients, c->jid);
    oi_free(&x->mem, c, sizeof *c + c->jid.n);
}

/* The client is gone (offline, or its notifications bounce): all its
** watchers go (PROTOCOL.md 5.1, 5.3), and so does it. */
static void oi_client_free(olpcidx *x, oi_client *c)
{
    while (c->watches)
        oi_watch_free(x, c->watches);
    if (c->available)
        oi_online_add(x, oi_bare(c->jid), -1);
    c->available = 0;
    c->cmd_sid = 0;
    c->tokens = x->cfg.rate_burst * 1000;
    oi_client_trim(x, c);
}

static void oi_clients_init(olpcidx *x)
{
    oi_map_init(&x->clients, x->cfg.hash_seed, 6, oi_key_first);
    oi_map_init(&x->online, x->cfg.hash_seed, 7, oi_key_first);
}

/* Frees every client and watcher (before the index: olpcidx_free). */
static void oi_clients_free(olpcidx *x)
{
    size_t i = 0;
    void *p;
    while ((p = oi_map_next(&x->clients, &i)) != NULL)
        oi_client_free(x, (oi_client *)p);
    oi_map_free(&x->mem, &x->clients);
    oi_map_free(&x->mem, &x->online);
    oi_vec_free(&x->mem, &x->open[0]);
    oi_vec_free(&x->mem, &x->open[1]);
}

/* Hands ev to each watcher in ws that has not had it yet, to render
** (offer 0) or as an offer (offer 1).  A watcher may leave ws while it
** is handed the event (a view drops a member): the walk then stays where
** it is, where the last watcher of ws has moved. */
static void oi_fan_out(olpcidx *x, const oi_vec *ws, const oi_event *ev,
                       int offer)
{
    size_t i = 0;
    while (i < ws->n) {
        oi_watch *w = (oi_watch *)ws->v[i];
        if (w->stamp != ev->seq) {
            w->stamp = ev->seq;
            if (offer)
                w->kind->offer(x, w, ev);
            else
                w->kind->render(x, w, ev);
        }
        if (i < ws->n && ws->v[i] == w)
            i++;
    }
}

/* The k-th list of watchers event ev reaches, in the order they are
** handed it, or NULL after the last; *offer: whether that list's
** watchers are offered the item rather than told.  An activity's
** watchers, then the open ones of activities; a buddy's, then the open
** ones of buddies, then the watchers of each of its public activities
** (PROTOCOL.md 2.3). */
static const oi_vec *oi_ev_list(olpcidx *x, const oi_event *ev, size_t k,
                                int *offer)
{
    static const oi_vec none = { NULL, 0, 0 };
    const oi_buddy *b = ev->buddy;
    const oi_act *in;
    *offer = k == 1;
    if (ev->act) {
        if (k == 0)
            return ev->act->it.watch ? ev->act->it.watch : &none;
        return k == 1 && ev->type != OI_EV_CLOSED ? &x->open[OI_K_ACT]
                                                  : NULL;
    }
    if (k == 0)
        return b->it.watch ? b->it.watch : &none;
    if (ev->type == OI_EV_BUDDY_GONE)
        return NULL;
    if (k == 1)
        return ev->type != OI_EV_BUDDY_CUR ? &x->open[OI_K_BUDDY] : &none;
    if (ev->type == OI_EV_BUDDY_NICK || ev->type == OI_EV_BUDDY_COMES
        || k - 2 >= b->acts.n)
        return NULL;                    /* not about its activities */
    in = (const oi_act *)oi_svec_cv(&b->acts)[k - 2];
    return oi_act_private(in) || !in->it.watch ? &none : in->it.watch;
}

/* An event is through: its items are unpinned (and freed, if they were
** forgotten meanwhile), its block freed. */
static void oi_pend_free(olpcidx *x, oi_pend *p)
{
    oi_act *a = (oi_act *)(size_t)p->ev.act;
    oi_buddy *b = (oi_buddy *)(size_t)p->ev.buddy;
    x->fq_left -= p->n - p->i;
    if (a && --a->it.pins == 0 && a->it.doomed)
        oi_act_release(x, a);
    if (b && --b->it.pins == 0 && b->it.doomed)
        oi_buddy_release(x, b);
    oi_free(&x->mem, p, p->size);
}

/* Whether the output is busy: the queue holds more than half of
** max-output, or, online, events wait to be handed out.  No input is
** parsed meanwhile (PROTOCOL.md 8.4).  Before the handshake of a new
** connection waiting events do not count: they go out once it is
** online, which takes parsing the server's answer. */
static int oi_out_busy(const olpcidx *x)
{
    return x->out.n - x->head > x->cfg.max_output / 2
           || (x->fq != NULL && x->state == OI_S_ONLINE);
}

/* Hands waiting events to their watchers while the output queue has
** room, online only (notifications are stanzas).  top: called between
** stanzas (olpcidx_sent, olpcidx_tick), when the stanza arena may be
** emptied after each watcher. */
static void oi_fan_pump(olpcidx *x, int top)
{
    oi_pend *p;
    while ((p = x->fq) != NULL) {
        oi_fan *f = oi_pend_fans(p);
        while (p->i < p->n) {
            oi_fan one = f[p->i];
            if (x->state != OI_S_ONLINE
                || x->out.n - x->head > x->cfg.max_output / 2)
                return;
            p->i++;
            x->fq_left--;
            if (!one.w)
                continue;
            if (one.offer)
                one.w->kind->offer(x, one.w, &p->ev);
            else
                one.w->kind->render(x, one.w, &p->ev);
            if (top && !x->root)
                oi_arena_reset(&x->mem, &x->arena, 1);
        }
        x->fq = p->next;
        if (!x->fq)
            x->fq_last = NULL;
        oi_pend_free(x, p);
    }
}

/* Forgets every waiting event (the stream is closing, or the handle is
** freed); says how many notifications that cost when why is set. */
static void oi_fq_clear(olpcidx *x, const char *why)
{
    if (why && x->fq_left)
        oi_log(x, OLPCIDX_LOG_WARN, "%lu watchers not told of waiting "
               "events: %s", (unsigned long)x->fq_left, why);
    while (x->fq) {
        oi_pend *p = x->fq;
        x->fq = p->next;
        oi_pend_free(x, p);
    }
    x->fq_last = NULL;
}

/* Raises an event: about activity a (and buddy b, for joined and left),
** or about buddy b alone.  It joins the fan-out queue with the watchers
** it reaches, each once, and is handed out as far as the output has
** room.  Short of memory for that, it is handed out at once as far as
** the queue has room, when nothing waits before it (else it is lost,
** and logged). */
static void oi_emit(olpcidx *x, int type, const oi_act *a, const oi_buddy *b)
{
    oi_event ev;
    oi_pend *p;
    oi_fan *f;
    const oi_vec *l;
    size_t i, k, most = 0, n = 0, size;
    int offer;
    ev.type = type;
    ev.seq = ++x->event;
    ev.act = a;
    ev.buddy = b;
    ev.cause = x->cause;
    for (k = 0; (l = oi_ev_list(x, &ev, k, &offer)) != NULL; k++)
        most += l->n;
    if (most == 0)
        return;
    size = OI_ALIGN_UP(sizeof *p) + most * sizeof *f + ev.cause.n;
    p = (oi_pend *)oi_realloc(&x->mem, NULL, 0, size);
    if (!p) {
        if (x->fq) {
            oi_log(x, OLPCIDX_LOG_WARN, "dropped an event for %lu "
                   "watchers: out of memory", (unsigned long)most);
            return;
        }
        for (k = 0; (l = oi_ev_list(x, &ev, k, &offer)) != NULL; k++)
            oi_fan_out(x, l, &ev, offer);
        return;
    }
    f = oi_pend_fans(p);
    for (k = 0; (l = oi_ev_list(x, &ev, k, &offer)) != NULL; k++)
        for (i = 0; i < l->n; i++) {
            oi_watch *w = (oi_watch *)l->v[i];
            if (w->stamp == ev.seq)
                continue;               /* reached through another list */
            w->stamp = ev.seq;
            f[n].w = w;
            f[n++].offer = offer;
        }
    if (ev.cause.n)
        memcpy((char *)(f + most), ev.cause.p, ev.cause.n);
    ev.cause.p = (const char *)(f + most);
    p->ev = ev;
    p->n = n;
    p->i = 0;
    p->size = size;
    p->next = NULL;
    if (a)
        ((oi_act *)(size_t)a)->it.pins++;
    if (b)
        ((oi_buddy *)(size_t)b)->it.pins++;
    if (x->fq_last)
        x->fq_last->next = p;
    else
        x->fq = p;
    x->fq_last = p;
    x->fq_left += n;
    oi_fan_pump(x, 0);
}

/* Activity a is closed to everyone watching it (its last participant
** left, it became private): they are told, and it leaves them. */
static void oi_emit_closed(olpcidx *x, oi_act *a)
{
    oi_emit(x, OI_EV_CLOSED, a, NULL);
    oi_unwatch(&x->mem, &a->it);
}

/* ==== 10. Persistence: journal and snapshot ========================= */

/*
** What clients announced is kept (PROTOCOL.md 7) as records, each
**     u32 length | u32 CRC-32 of the rest | u8 type | fields
** (integers big-endian; a string is u16 length and bytes; a property set
** is u16 count and, per property, u8 type, name, value):
**     BUDDY  jid, properties, current activity id, room
**     ACT    id, room, properties
**     JOIN   id, bare JID, full JID            LEAVE  id, bare JID
**     ROSTER bare JID, u8 roster state, PEP nick (PROTOCOL.md 6.2, 6.4)
**     ROOM   activity id, u8: 1 the component watches its room (6.5)
** The journal is such records appended one per change, written through
** the embedder's storage (olpcidx_storage) before the notifications the
** change causes are queued.  A snapshot is the magic "OLPCIDX1", the
** records that rebuild the whole index, and an END record holding their
** count; it replaces the journal when that grows past twice the last
** snapshot (and 1 MiB).  When the storage fails, nothing is buffered:
** the journal is marked behind, and a snapshot, which holds everything,
** is retried every second until one succeeds.
*/
enum { OI_REC_BUDDY = 1, OI_REC_ACT, OI_REC_JOIN, OI_REC_LEAVE,
       OI_REC_ROSTER, OI_REC_ROOM, OI_REC_END = 255 };

#define OI_SNAP_MAGIC "OLPCIDX1"
#define OI_REC_HDR 9                    /* length, CRC, type */

static uint32_t oi_crc_table[256];

/* Builds the CRC-32 table once per process: from olpcidx_new, so that
** once a first handle exists, handles in other threads only read it. */
static void oi_crc_init(void)
{
    uint32_t k, v;
    int b;
    if (oi_crc_table[1])
        return;
    for (k = 0; k < 256; k++) {
        for (v = k, b = 0; b < 8; b++)
            v = v & 1 ? 0xEDB88320u ^ (v >> 1) : v >> 1;
        oi_crc_table[k] = v;
    }
}

/* CRC-32 of IEEE 802.3 (as zlib). */
static uint32_t oi_crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    oi_crc_init();
    for (i = 0; i < n; i++)
        c = oi_crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void oi_rec_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t oi_rec_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8
         | p[3];
}

/* Record writing into x->rec: begin, fields, end (which seals length and
** CRC).  Failures are sticky in x->rec_err. */
static void oi_rec_bytes(olpcidx *x, const void *p, size_t n)
{
    if (!x->rec_err && oi_buf_add(&x->mem, &x->rec, p, n) != OLPCIDX_OK)
        x->rec_err = 1;
}

static void oi_rec_begin(olpcidx *x, int type)
{
    unsigned char h[OI_REC_HDR];
    memset(h, 0, sizeof h);
    h[8] = (unsigned char)type;
    x->rec_start = x->rec.n;
    oi_rec_bytes(x, h, sizeof h);
}

static void oi_rec_str(olpcidx *x, oi_str s)
{
    unsigned char h[2];
    if (s.n > 0xFFFF) {
        x->rec_err = 1;
        return;
    }
    h[0] = (unsigned char)(s.n >> 8);
    h[1] = (unsigned char)s.n;
    oi_rec_bytes(x, h, 2);
    oi_rec_bytes(x, s.p, s.n);
}

/* The full JID b was last heard from, as oi_rec_str writes it (empty:
** none): its bare JID, a slash, its resource. */
static void oi_rec_last(olpcidx *x, const oi_buddy *b)
{
    oi_str res = oi_lstr(b->last);
    size_t n = b->last ? b->it.nuid + 1 + res.n : 0;
    unsigned char h[2];
    if (n > 0xFFFF) {
        x->rec_err = 1;
        return;
    }
    h[0] = (unsigned char)(n >> 8);
    h[1] = (unsigned char)n;
    oi_rec_bytes(x, h, 2);
    if (!b->last)
        return;
    oi_rec_bytes(x, oi_uid(&b->it).p, b->it.nuid);
    oi_rec_bytes(x, "/", 1);
    oi_rec_bytes(x, res.p, res.n);
}

static void oi_rec_props(olpcidx *x, const oi_item *it)
{
    unsigned char h[2];
    size_t i;
    h[0] = (unsigned char)(it->nprops >> 8);
    h[1] = (unsigned char)it->nprops;
    oi_rec_bytes(x, h, 2);
    for (i = 0; i < it->nprops; i++) {
        oi_prop p = oi_post_prop(it->props[i]);
        h[0] = (unsigned char)p.type;
        oi_rec_bytes(x, h, 1);
        oi_rec_str(x, p.name);
        oi_rec_str(x, p.value);
    }
}

static void oi_rec_end(olpcidx *x)
{
    unsigned char *r;
    size_t n;
    if (x->rec_err)
        return;
    r = (unsigned char *)x->rec.p + x->rec_start;
    n = x->rec.n - x->rec_start;
    oi_rec_u32(r, (uint32_t)(n - 8));
    oi_rec_u32(r + 4, oi_crc32(r + 8, n - 8));
}

static void oi_rec_buddy(olpcidx *x, const oi_buddy *b)
{
    if (!x->cfg.storage)
        return;                         /* nothing is persisted */
    oi_rec_begin(x, OI_REC_BUDDY);
    oi_rec_str(x, oi_uid(&b->it));
    oi_rec_props(x, &b->it);
    oi_rec_str(x, oi_cur_id(b));
    oi_rec_str(x, oi_cur_room(b));
    oi_rec_end(x);
}

static void oi_rec_act(olpcidx *x, const oi_act *a)
{
    if (!x->cfg.storage)
        return;                         /* nothing is persisted */
    oi_rec_begin(x, OI_REC_ACT);
    oi_rec_str(x, oi_uid(&a->it));
    oi_rec_str(x, oi_room(a));
    oi_rec_props(x, &a->it);
    oi_rec_end(x);
}

static void oi_rec_member(olpcidx *x, int type, const oi_act *a,
                          const oi_buddy *b)
{
    if (!x->cfg.storage)
        return;                         /* nothing is persisted */
    oi_rec_begin(x, type);
    oi_rec_str(x, oi_uid(&a->it));
    oi_rec_str(x, oi_uid(&b->it));
    if (type == OI_REC_JOIN)
        oi_rec_last(x, b);
    oi_rec_end(x);
}

static void oi_rec_roster(olpcidx *x, const oi_buddy *b)
{
    unsigned char st = (unsigned char)b->roster;
    if (!x->cfg.storage)
        return;                         /* nothing is persisted */
    oi_rec_begin(x, OI_REC_ROSTER);
    oi_rec_str(x, oi_uid(&b->it));
    oi_rec_bytes(x, &st, 1);
    oi_rec_str(x, oi_lstr(b->nick));
    oi_rec_end(x);
}

static void oi_rec_room(olpcidx *x, const oi_act *a)
{
    unsigned char in = a->muc != OI_MUC_NONE;
    if (!x->cfg.storage)
        return;                         /* nothing is persisted */
    oi_rec_begin(x, OI_REC_ROOM);
    oi_rec_str(x, oi_uid(&a->it));
    oi_rec_bytes(x, &in, 1);
    oi_rec_end(x);
}

/* Hands the records written since the last call to the storage, and
** syncs them when the storage wants every change durable at once.  Called
** before the notifications of a change are queued. */
static void oi_journal(olpcidx *x)
{
    const olpcidx_storage *st = x->cfg.storage;
    int rc;
    if (!st || x->rec.n == 0) {
        x->rec.n = 0;
        x->rec_err = 0;
        return;
    }
    if (x->rec_err) {
        oi_log(x, OLPCIDX_LOG_ERROR, "journal record lost: out of memory; "
               "a snapshot will follow");
        x->jbehind = 1;
    }
    if (!x->jbehind) {
        rc = st->append(st->ud, x->rec.p, x->rec.n);
        if (rc == 0 && st->sync_always)
            rc = st->sync(st->ud);
        if (rc != 0) {
            oi_log(x, OLPCIDX_LOG_ERROR, "cannot write the journal; serving "
                   "from memory, retrying every second");
            x->jbehind = 1;
        } else {
            x->jbytes += x->rec.n;
            x->junsynced = !st->sync_always;
        }
    }
    x->rec.n = 0;
    x->rec_err = 0;
}

/* Writes the whole index as a snapshot through the storage.  Returns 0 or
** non-zero (storage or memory failure; nothing changed then). */
static int oi_snapshot(olpcidx *x)
{
    const olpcidx_storage *st = x->cfg.storage;
    size_t i = 0, j, k, count = 0;
    unsigned char end[4];
    void *p;
    int rc;
    x->rec.n = 0;
    x->rec_err = 0;
    oi_rec_bytes(x, OI_SNAP_MAGIC, 8);
    /* in UID order, so that restoring appends to every sorted list */
    for (i = 0; i < x->listed[OI_K_BUDDY].n; i++) {
        const oi_buddy *b = (const oi_buddy *)x->listed[OI_K_BUDDY].v[i];
        oi_rec_buddy(x, b);
        count++;
        if (b->roster || b->nick) {
            oi_rec_roster(x, b);
            count++;
        }
    }
    for (i = 0, k = 0; (p = i < x->listed[OI_K_ACT].n
                        ? x->listed[OI_K_ACT].v[i++]
                        : oi_map_next(&x->acts, &k)) != NULL;) {
        const oi_act *a = (const oi_act *)p;
        if (k && !oi_act_private(a))
            continue;                   /* the public ones came first */
        oi_rec_act(x, a);
        count++;
        for (j = 0; j < a->parts.n; j++, count++)
            oi_rec_member(x, OI_REC_JOIN, a,
                          (const oi_buddy *)OI_SV(&a->parts)[j]);
        if (a->muc != OI_MUC_NONE) {
            oi_rec_room(x, a);
            count++;
        }
    }
    oi_rec_begin(x, OI_REC_END);
    oi_rec_u32(end, (uint32_t)count);
    oi_rec_bytes(x, end, 4);
    oi_rec_end(x);
    rc = x->rec_err ? -1 : st->snapshot(st->ud, x->rec.p, x->rec.n);
    if (rc == 0) {
        x->snap_bytes = x->rec.n;
        x->jbytes = 0;
        x->junsynced = 0;
    }
    x->rec.n = 0;
    x->rec_err = 0;
    oi_buf_free(&x->mem, &x->rec);      /* snapshots are large: give back */
    return rc;
}

/* Once a second: batch sync, catching up after a failure, and replacing
** a long journal by a snapshot. */
static void oi_persist_tick(olpcidx *x)
{
    const olpcidx_storage *st = x->cfg.storage;
    if (!st)
        return;
    if (x->jbehind) {
        if (oi_snapshot(x) == 0) {
            x->jbehind = 0;
            oi_log(x, OLPCIDX_LOG_INFO, "storage writable again: snapshot "
                   "of the whole index written");
        }
        return;
    }
    if (x->junsynced) {
        if (st->sync(st->ud) == 0) {
            x->junsynced = 0;
        } else {
            oi_log(x, OLPCIDX_LOG_ERROR, "cannot sync the journal; serving "
                   "from memory, retrying every second");
            x->jbehind = 1;
        }
    }
    if (x->jbytes > 1024 * 1024 && x->jbytes > 2 * x->snap_bytes
        && oi_snapshot(x) != 0) {
        oi_log(x, OLPCIDX_LOG_ERROR, "cannot write a snapshot; retrying");
        x->jbehind = 1;
    }
}

/* ---- 10.1 Restoring ------------------------------------------------- */

typedef struct oi_rd {          /* a record being read */
    const unsigned char *p, *end;
    int bad;                    /* malformed */
    int nomem;                  /* out of memory while reading it */
} oi_rd;

static oi_str oi_rd_str(oi_rd *r)
{
    size_t n;
    oi_str s = OI_LIT("");
    if (r->bad || r->end - r->p < 2) {
        r->bad = 1;
        return s;
    }
    n = (size_t)r->p[0] << 8 | r->p[1];
    r->p += 2;
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return s;
    }
    s = oi_mkstr((const char *)r->p, n);
    r->p += n;
    return s;
}

/* Reads a property set into the arena. */
static void oi_rd_props(olpcidx *x, oi_rd *r, oi_props *ps)
{
    size_t n, i;
    memset(ps, 0, sizeof *ps);
    if (r->bad || r->end - r->p < 2) {
        r->bad = 1;
        return;
    }
    n = (size_t)r->p[0] << 8 | r->p[1];
    r->p += 2;
    if (n == 0)
        return;
    ps->v = (oi_prop *)oi_arena_alloc(&x->mem, &x->arena, n * sizeof *ps->v);
    if (!ps->v) {
        r->bad = r->nomem = 1;
        return;
    }
    for (i = 0; i < n && !r->bad; i++) {
        if (r->p >= r->end || *r->p >= OI_PT_COUNT) {
            r->bad = 1;
            break;
        }
        ps->v[i].type = *r->p++;
        ps->v[i].name = oi_rd_str(r);
        ps->v[i].value = oi_rd_str(r);
        if (ps->v[i].name.n == 0
            || memchr(ps->v[i].name.p, '\0', ps->v[i].name.n))
            r->bad = 1;                 /* no XML name (section 8) */
    }
    ps->n = r->bad ? 0 : n;
}

/* Applies one record to the index.  Returns 0, 1 for a malformed record,
** or OLPCIDX_ENOMEM. */
static int oi_apply(olpcidx *x, int type, oi_rd *r)
{
    int state;
    oi_str id, room, jid, full, cur_id, cur_room;
    oi_props ps;
    oi_buddy *b;
    oi_act *a;
    switch (type) {
    case OI_REC_BUDDY:
        jid = oi_rd_str(r);
        oi_rd_props(x, r, &ps);
        cur_id = oi_rd_str(r);
        cur_room = oi_rd_str(r);
        if (r->bad || jid.n == 0)
            return 1;
        if (!(b = oi_buddy_get(x, jid, 1))
            || oi_item_set_props(&x->mem, &x->arena, &x->bposts, &b->it, &ps,
                                 1)
            || oi_buddy_set_cur(x, b, cur_id, cur_room))
            return OLPCIDX_ENOMEM;
        oi_alias_update(x, b, 0);
        oi_buddy_trim(x, b);
        return 0;
    case OI_REC_ACT:
        id = oi_rd_str(r);
        room = oi_rd_str(r);
        oi_rd_props(x, r, &ps);
        if (r->bad || id.n == 0)
            return 1;
        if (!(a = oi_act_find(x, id, OI_LIT("")))
            && !(a = oi_act_new(x, id, room)))
            return OLPCIDX_ENOMEM;
        if (oi_act_set_props(x, a, &ps))
            return OLPCIDX_ENOMEM;
        return 0;
    case OI_REC_ROSTER:
        jid = oi_rd_str(r);
        if (r->bad || r->p >= r->end || *r->p > OI_ROSTER_PUBLISHED) {
            r->bad = 1;
            return 1;
        }
        state = *r->p++;
        cur_id = oi_rd_str(r);          /* the nick */
        if (r->bad || jid.n == 0)
            return 1;
        if (!(b = oi_buddy_get(x, jid, 1))
            || oi_buddy_set_nick(x, b, cur_id))
            return OLPCIDX_ENOMEM;
        oi_alias_update(x, b, 0);
        b->roster = state;
        oi_buddy_trim(x, b);
        return 0;
    case OI_REC_ROOM:
        id = oi_rd_str(r);
        if (r->bad || id.n == 0 || r->p >= r->end || *r->p > 1)
            return 1;
        if ((a = oi_act_find(x, id, OI_LIT(""))) != NULL)
            oi_act_muc(&x->mem, a, *r->p ? OI_MUC_JOINING   /* to rejoin */
                                         : OI_MUC_NONE);
        return 0;
    case OI_REC_JOIN:
    case OI_REC_LEAVE:
        id = oi_rd_str(r);
        jid = oi_rd_str(r);
        full = type == OI_REC_JOIN ? oi_rd_str(r) : OI_LIT("");
        if (r->bad || id.n == 0 || jid.n == 0)
            return 1;
        a = oi_act_find(x, id, OI_LIT(""));
        if (type == OI_REC_LEAVE) {
            b = oi_buddy_get(x, jid, 0);
            if (a && b && oi_svec_has(&a->parts, b)) {
                oi_leave(x, a, b);
                oi_buddy_trim(x, b);
            }
            return 0;
        }
        if (!a && !(a = oi_act_new(x, id, OI_LIT(""))))
            return OLPCIDX_ENOMEM;
        if (!(b = oi_buddy_get(x, jid, 1))
            || oi_join(x, a, b) == OLPCIDX_ENOMEM)
            return OLPCIDX_ENOMEM;
        if (full.n)
            oi_buddy_set_last(x, b, full);
        return 0;
    default:
        return 1;
    }
}

/* Reads records from p..p+n; stops at the first torn or corrupt one.
** Returns the bytes of whole records applied, and the number of records
** in *count; *end is set when an END record was met (snapshots). */
static size_t oi_replay(olpcidx *x, const unsigned char *p, size_t n,
                        unsigned long *count, int *end, int *rc)
{
    size_t off = 0;
    *count = 0;
    *rc = 0;
    while (n - off >= OI_REC_HDR && !*end) {
        uint32_t len = oi_rec_get32(p + off);
        const unsigned char *body = p + off + 8;
        oi_rd r;
        int type;
        if (len < 1 || len > n - off - 8
            || oi_rec_get32(p + off + 4) != oi_crc32(body, len))
            break;                      /* torn or corrupt: stop here */
        type = body[0];
        r.p = body + 1;
        r.end = body + len;
        r.bad = r.nomem = 0;
        if (type == OI_REC_END) {
            *end = 1;
        } else {
            int a = oi_apply(x, type, &r);
            if (r.nomem)
                a = OLPCIDX_ENOMEM;
            oi_arena_reset(&x->mem, &x->arena, 1);
            if (a == OLPCIDX_ENOMEM) {
                *rc = a;
                break;
            }
            if (a != 0)
                break;                  /* checksummed but malformed */
        }
        off += 8 + len;
        (*count)++;
    }
    return off;
}

/* After a restore: activities nobody is in are gone, and every
** participant is to be pinged before it is trusted (PROTOCOL.md 7). */
static void oi_restore_finish(olpcidx *x)
{
    size_t i = 0;
    void *p;
    while ((p = oi_map_next(&x->acts, &i)) != NULL)
        if (((oi_act *)p)->parts.n == 0)
            oi_act_free(x, (oi_act *)p);
    i = 0;
    while ((p = oi_map_next(&x->buddies, &i)) != NULL) {
        oi_buddy *b = (oi_buddy *)p;
        b->seen = 0;                    /* idle: pinged at the first sweep */
        b->pinged = 0;
        b->restored = 1;
    }
}
/* ==== 11. Changes: what intake may do to the index =================== */

/*
** Every change a stanza may cause, whichever dialect brought it.  Each
** checks what the sender may do, changes the index (all or nothing),
** journals the change, then raises its events: in that order, so that
** nothing is told before it is durable (PROTOCOL.md 7).  Each returns
** OI_C_NONE, or the stanza error condition that refused it, the index
** then unchanged.  The buddy is always the sender's bare JID, or one a
** room vouches for, never one a payload names (PROTOCOL.md 4.4, 6.5).
*/

/* Buddy bare's own properties, a full replacement set (PROTOCOL.md 4.1,
** 6.4). */
static int oi_chg_buddy_props(olpcidx *x, oi_str bare, const oi_props *ps)
{
    oi_buddy *b;
    if (!(b = oi_buddy_get(x, bare, 1)))
        return OI_C_RESOURCE_CONSTRAINT;
    if (oi_item_set_props(&x->mem, &x->arena, &x->bposts, &b->it, ps, 1)) {
        oi_buddy_trim(x, b);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    oi_alias_update(x, b, 0);
    oi_rec_buddy(x, b);
    oi_journal(x);
    oi_emit(x, OI_EV_BUDDY_PROPS, NULL, b);
    oi_buddy_trim(x, b);
    return OI_C_NONE;
}

/* Buddy bare's current activity; id and room both empty clear it
** (PROTOCOL.md 4.2). */
static int oi_chg_current(olpcidx *x, oi_str bare, oi_str id, oi_str room)
{
    oi_buddy *b;
    if (!(b = oi_buddy_get(x, bare, id.n + room.n > 0)))
        return OI_C_NONE;               /* nothing to clear */
    if (oi_buddy_set_cur(x, b, id, room) != OLPCIDX_OK) {
        oi_buddy_trim(x, b);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    oi_rec_buddy(x, b);
    oi_journal(x);
    oi_emit(x, OI_EV_BUDDY_CUR, NULL, b);
    oi_buddy_trim(x, b);
    return OI_C_NONE;
}

/* Buddy bare's PEP nick, its alias (PROTOCOL.md 2.2, 6.4). */
static int oi_chg_nick(olpcidx *x, oi_str bare, oi_str nick)
{
    oi_buddy *b;
    if (!(b = oi_buddy_get(x, bare, nick.n > 0)))
        return OI_C_NONE;
    if (oi_streq(oi_lstr(b->nick), nick))
        return OI_C_NONE;
    if (oi_buddy_set_nick(x, b, nick) != OLPCIDX_OK) {
        oi_buddy_trim(x, b);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    oi_alias_update(x, b, 0);
    oi_rec_roster(x, b);
    oi_journal(x);
    oi_emit(x, OI_EV_BUDDY_NICK, NULL, b);
    oi_buddy_trim(x, b);
    return OI_C_NONE;
}

/* The nick of the component in a's room: "inspector", "inspector-2"... */
static oi_str oi_room_nick(const oi_act *a, char buf[24])
{
    if (a->nick_try == 0)
        return OI_LIT("inspector");
    snprintf(buf, 24, "inspector-%u", (unsigned)(a->nick_try % 100) + 1);
    return oi_zstr(buf);
}

/* Presence from the bare component JID to a's room: a join (with no
** history, PROTOCOL.md 6.5) or, unavailable, leaving it.  With keep,
** whether the component is in the room is journaled, for a restart.
** Short of memory for what a join keeps, the room is not joined, as if
** it had not answered. */
static void oi_room_presence(olpcidx *x, oi_act *a, int join, int keep)
{
    char nick[24], to[1024 + 24];
    oi_str n = oi_room_nick(a, nick), room = oi_room(a);
    size_t mark;
    if (room.n + 1 + n.n > sizeof to) {
        oi_log(x, OLPCIDX_LOG_INFO, "room JID of %.*s over %u bytes: not "
               "joined", (int)a->it.nuid, oi_uid(&a->it).p,
               (unsigned)(sizeof to - n.n - 1));
        return;
    }
    if (join && !a->join) {
        a->join = (oi_joining *)oi_realloc(&x->mem, NULL, 0, sizeof *a->join);
        if (!a->join) {
            oi_log(x, OLPCIDX_LOG_WARN, "room %.*s not joined: out of "
                   "memory", (int)room.n, room.p);
            oi_act_muc(&x->mem, a, OI_MUC_NONE);
            return;
        }
        memset(a->join, 0, sizeof *a->join);
    }
    memcpy(to, room.p, room.n);
    to[room.n] = '/';
    memcpy(to + room.n + 1, n.p, n.n);
    mark = oi_out_begin(x);
    oi_out_head(x, "presence", join ? NULL : "unavailable",
                oi_mkstr(to, room.n + 1 + n.n), NULL);
    if (join)
        oi_outz(x, "<x xmlns='http://jabber.org/protocol/muc'><history "
                "maxstanzas='0'/></x>");
    oi_outz(x, "</presence>");
    oi_out_commit(x, mark, join ? "room join" : "room leave");
    oi_act_muc(&x->mem, a, join ? OI_MUC_JOINING : OI_MUC_NONE);
    if (join) {
        a->join->at = x->now;
        a->join->here.n = 0;
        a->join->whole = 1;
    }
    x->joining |= join;
    if (keep) {
        oi_rec_room(x, a);
        oi_journal(x);
    }
}

/* Activity a closed for everyone (PROTOCOL.md 2.3): told, and the
** component leaves its room. */
static void oi_close_act(olpcidx *x, oi_act *a)
{
    oi_emit_closed(x, a);
    if (a->muc != OI_MUC_NONE)
        oi_room_presence(x, a, 0, 1);
}

/* New properties of a: journaled (with the JOIN of its creator, after
** the activity) and told; an activity that turns private closes for all,
** one that is new or turns public opens. */
static void oi_act_props_told(olpcidx *x, oi_act *a, const oi_buddy *creator,
                              int was_private)
{
    int created = creator != NULL;
    oi_rec_act(x, a);
    if (creator)
        oi_rec_member(x, OI_REC_JOIN, a, creator);
    oi_journal(x);
    if (oi_act_private(a)) {
        if (!was_private && !created)
            oi_close_act(x, a);
    } else if (created || was_private) {
        oi_emit(x, OI_EV_ACT_OPENS, a, NULL);
    } else {
        oi_emit(x, OI_EV_ACT_PROPS, a, NULL);
    }
}

/* Activity properties, from bare: create the activity (bare its first
** participant) or, from a participant, replace its properties
** (PROTOCOL.md 4.3). */
static int oi_chg_act_props(olpcidx *x, oi_str bare, oi_str id, oi_str room,
                            const oi_props *ps)
{
    oi_act *a;
    oi_buddy *b;
    int created = 0, was_private;
    if (!(b = oi_buddy_get(x, bare, 1)))
        return OI_C_RESOURCE_CONSTRAINT;
    a = oi_act_find(x, id, room);
    if (a && !oi_svec_has(&a->parts, b)) {
        oi_buddy_trim(x, b);
        return OI_C_FORBIDDEN;
    }
    if (!a) {
        if (b->acts.n >= x->cfg.max_activities) {
            oi_buddy_trim(x, b);
            return OI_C_NOT_ACCEPTABLE;
        }
        if (!(a = oi_act_new(x, id, room))) {
            oi_buddy_trim(x, b);
            return OI_C_RESOURCE_CONSTRAINT;
        }
        created = 1;
        if (oi_join(x, a, b) != OLPCIDX_OK) {
            oi_act_free(x, a);
            oi_buddy_trim(x, b);
            return OI_C_RESOURCE_CONSTRAINT;
        }
    }
    was_private = oi_act_private(a);
    if (oi_act_set_props(x, a, ps)) {
        if (created)
            oi_leave(x, a, b);
        oi_buddy_trim(x, b);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    if (created)
        oi_seen(x, x->cause);           /* the JOIN record names it */
    oi_act_props_told(x, a, created ? b : NULL, was_private);
    return OI_C_NONE;
}

/* Activity properties as the room of a says them (PROTOCOL.md 6.5). */
static int oi_chg_room_props(olpcidx *x, oi_act *a, const oi_props *ps)
{
    int was_private = oi_act_private(a);
    if (oi_act_set_props(x, a, ps))
        return OI_C_RESOURCE_CONSTRAINT;
    oi_act_props_told(x, a, NULL, was_private);
    return OI_C_NONE;
}

/* b leaves a, and the watchers of a are told once it has left (so that a
** view with b among its criteria sees a without b); when b was the last
** one, a closes. */
static void oi_depart(olpcidx *x, oi_act *a, oi_buddy *b)
{
    oi_rec_member(x, OI_REC_LEAVE, a, b);
    oi_journal(x);
    if (a->parts.n > 1) {
        oi_leave(x, a, b);              /* a stays */
        if (!oi_act_private(a))
            oi_emit(x, OI_EV_LEFT, a, b);
        return;
    }
    if (!oi_act_private(a)) {
        oi_emit(x, OI_EV_LEFT, a, b);
        oi_close_act(x, a);
    } else if (a->muc != OI_MUC_NONE) {
        oi_room_presence(x, a, 0, 1);
    }
    oi_leave(x, a, b);                  /* the last: a is freed */
}

/* bare joins the activity named by id and/or room, created when unknown
** (it needs its id then) (PROTOCOL.md 4.4, 6.5).  full is where it was
** heard from (empty: nowhere, as for a room without real JIDs). */
static int oi_chg_join(olpcidx *x, oi_str bare, oi_str full, oi_str id,
                       oi_str room)
{
    oi_act *a = oi_act_find(x, id, room);
    oi_buddy *b;
    int rc, fresh;
    if (id.n == 0 && !a)
        return OI_C_BAD_REQUEST;
    if (!(b = oi_buddy_get(x, bare, 1)))
        return OI_C_RESOURCE_CONSTRAINT;
    if (!a && !(a = oi_act_new(x, id, room))) {
        oi_buddy_trim(x, b);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    fresh = !oi_svec_has(&a->parts, b);
    rc = oi_join(x, a, b);
    if (rc != OLPCIDX_OK) {
        if (a->parts.n == 0)
            oi_act_free(x, a);
        oi_buddy_trim(x, b);
        return rc == OLPCIDX_ELIMIT ? OI_C_NOT_ACCEPTABLE
                                    : OI_C_RESOURCE_CONSTRAINT;
    }
    if (fresh) {
        if (full.n)
            oi_seen(x, full);           /* the JOIN record names it */
        if (a->parts.n == 1)            /* created by this join */
            oi_rec_act(x, a);
        oi_rec_member(x, OI_REC_JOIN, a, b);
        oi_journal(x);
        if (!oi_act_private(a))
            oi_emit(x, a->parts.n == 1 ? OI_EV_ACT_OPENS : OI_EV_JOINED, a,
                    b);
    }
    return OI_C_NONE;
}

/* bare leaves the activity named by id and/or room, if it is in it. */
static int oi_chg_leave(olpcidx *x, oi_str bare, oi_str id, oi_str room)
{
    oi_act *a = oi_act_find(x, id, room);
    oi_buddy *b = oi_buddy_get(x, bare, 0);
    if (a && b && oi_svec_has(&a->parts, b)) {
        oi_depart(x, a, b);
        oi_buddy_trim(x, b);
    }
    return OI_C_NONE;
}

/* Activity a closes whoever is in it (its room was destroyed, the
** component was put out of it: PROTOCOL.md 6.5). */
static void oi_chg_close(olpcidx *x, oi_act *a)
{
    size_t i;
    for (i = 0; i < a->parts.n; i++)
        oi_rec_member(x, OI_REC_LEAVE, a,
                      (const oi_buddy *)OI_SV(&a->parts)[i]);
    oi_journal(x);
    if (!oi_act_private(a))
        oi_close_act(x, a);
    else if (a->muc != OI_MUC_NONE)
        oi_room_presence(x, a, 0, 1);
    while (a->parts.n > 1) {
        oi_buddy *b = (oi_buddy *)OI_SV(&a->parts)[0];
        oi_leave(x, a, b);
        oi_buddy_trim(x, b);
    }
    if (a->parts.n == 1) {
        oi_buddy *b = (oi_buddy *)OI_SV(&a->parts)[0];
        oi_leave(x, a, b);              /* the last: a is freed */
        oi_buddy_trim(x, b);
    }
}

/* Whether buddy b is a view candidate: published and online (PROTOCOL.md
** 6.7). */
static int oi_buddy_listed(olpcidx *x, const oi_buddy *b)
{
    return b->roster == OI_ROSTER_PUBLISHED && oi_is_online(x, oi_uid(&b->it));
}

/* Full JID sent available presence (PROTOCOL.md 5.1). */
static int oi_chg_available(olpcidx *x, oi_str full)
{
    oi_client *c = oi_client_get(x, full, 1);
    oi_buddy *b;
    if (!c)
        return OI_C_RESOURCE_CONSTRAINT;
    if (c->available)
        return OI_C_NONE;
    if (oi_online_add(x, oi_bare(full), 1) < 0) {
        oi_client_trim(x, c);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    c->available = 1;
    b = oi_buddy_get(x, oi_bare(full), 0);
    if (b && b->roster == OI_ROSTER_PUBLISHED
        && ((oi_online *)oi_map_get(&x->online, oi_uid(&b->it)))->n == 1)
        oi_emit(x, OI_EV_BUDDY_COMES, NULL, b);
    return OI_C_NONE;
}

/* Buddy b goes, offline or forgotten: its watchers are told it is gone,
** it leaves its activities, and its current activity is cleared
** (journaled, and told). */
static void oi_buddy_gone(olpcidx *x, oi_buddy *b)
{
    x->cause = oi_mkstr("", 0);
    oi_emit(x, OI_EV_BUDDY_GONE, NULL, b);
    while (b->acts.n > 0)
        oi_depart(x, (oi_act *)OI_SV(&b->acts)[0], b);
    if (b->cur) {
        oi_buddy_set_cur(x, b, OI_LIT(""), OI_LIT(""));
        oi_rec_buddy(x, b);
        oi_journal(x);
        oi_emit(x, OI_EV_BUDDY_CUR, NULL, b);
    }
    b->pinged = 0;
}

/* Full JID went offline (PROTOCOL.md 5.1): its watchers go; when it was
** its buddy's last online resource, the buddy is gone, leaves its
** activities and its current activity is cleared, with the events these
** raise.  O(1) for a JID the index does not know. */
static void oi_chg_offline(olpcidx *x, oi_str full)
{
    oi_client *c = oi_client_get(x, full, 0);
    oi_str bare = oi_bare(full);
    oi_buddy *b;
    if (c)
        oi_client_free(x, c);
    if (!(b = oi_buddy_get(x, bare, 0)) || oi_is_online(x, bare))
        return;                         /* unknown, or still online */
    oi_buddy_gone(x, b);
    oi_buddy_trim(x, b);
}

/* Buddy bare is forgotten, on an admin's command (PROTOCOL.md 9.4): it
** goes as a buddy going offline does (its watchers are told it is gone,
** it leaves its activities, its current activity is cleared), and then
** what it announced (properties, nick, publishing state) is dropped and
** journaled as dropped.  A buddy that published (PROTOCOL.md 6.2) is told
** its subscription is over both ways (RFC 6121 3.2, 3.3), so that its
** server's roster says what the component's does.  Clients that sent
** presence stay online: a laptop that announces or subscribes again is a
** new buddy.  Cannot fail: it only frees (a presence that cannot be
** queued is logged).  OI_C_ITEM_NOT_FOUND when the index does not know
** bare. */
static int oi_chg_forget(olpcidx *x, oi_str bare)
{
    oi_buddy *b = oi_buddy_get(x, bare, 0);
    if (!b)
        return OI_C_ITEM_NOT_FOUND;
    oi_buddy_gone(x, b);
    oi_post_remove(&x->mem, &x->bposts, &b->it);
    oi_buddy_set_nick(x, b, OI_LIT(""));
    if (b->roster != OI_ROSTER_NONE) {
        static const char *const end[] = { "unsubscribed", "unsubscribe" };
        size_t i, mark;
        for (i = 0; i < 2; i++) {
            mark = oi_out_begin(x);
            oi_out_head(x, "presence", end[i], oi_uid(&b->it), NULL);
            oi_outz(x, "</presence>");
            oi_out_commit(x, mark, "unsubscription");
        }
    }
    b->roster = OI_ROSTER_NONE;
    oi_rec_buddy(x, b);
    oi_rec_roster(x, b);
    oi_journal(x);
    oi_buddy_trim(x, b);
    return OI_C_NONE;
}

/* Buddy bare's roster state becomes state (PROTOCOL.md 6.2).  A buddy
** that stops publishing is gone from views and forgets what PEP told. */
static int oi_chg_roster(olpcidx *x, oi_str bare, int state)
{
    oi_buddy *b = oi_buddy_get(x, bare, state != OI_ROSTER_NONE);
    int was;
    if (!b)
        return state == OI_ROSTER_NONE ? OI_C_NONE : OI_C_RESOURCE_CONSTRAINT;
    was = b->roster;
    if (was == state)
        return OI_C_NONE;
    b->roster = state;
    oi_rec_roster(x, b);
    oi_journal(x);
    if (state == OI_ROSTER_PUBLISHED && oi_is_online(x, bare)) {
        oi_emit(x, OI_EV_BUDDY_COMES, NULL, b);
    } else if (was == OI_ROSTER_PUBLISHED) {
        oi_props none;
        memset(&none, 0, sizeof none);
        oi_emit(x, OI_EV_BUDDY_GONE, NULL, b);
        oi_chg_nick(x, bare, OI_LIT(""));
        oi_chg_current(x, bare, OI_LIT(""), OI_LIT(""));
        if ((b = oi_buddy_get(x, bare, 0)) != NULL && b->it.nprops)
            oi_chg_buddy_props(x, bare, &none);
        return OI_C_NONE;
    }
    oi_buddy_trim(x, b);
    return OI_C_NONE;
}

/* ==== 12. Stream and XEP-0114 handshake ============================== */

/*
** XEP-0114 section 3, component side:
**   we:     <?xml?><stream:stream xmlns='jabber:component:accept' to=JID>
**   server: <stream:stream ... id=ID>            (state OPENING)
**   we:     <handshake>hex(SHA1(ID + secret))</handshake>
**   server: <handshake/>                          (state HANDSHAKE)
** and from then on stanzas in both directions (ONLINE).  Nothing but the
** handshake is sent before the server's <handshake/>.
**
** The stream is ours to handle at its top level: the server's header,
** <handshake/>, <stream:error/> and <stream:features/>; every complete
** stanza of jabber:component:accept once online goes to x->on_stanza, the
** dispatcher of section 16, set by olpcidx_new (PROTOCOL.md 1.1, 1.3).
**
** Stream errors (RFC 6120 4.9): the server's not-authorized, host-unknown
** and invalid-namespace, and ejabberd's conflict over one of its own
** hosts, mean our configuration is wrong (EAUTH, EHOST, ELOCAL:
** olpcidx_is_fatal); any other ends this stream only (ESTREAM).  Errors
** in what the server sends are answered with our own stream error:
** not-well-formed, restricted-xml, policy-violation for a limit,
** resource-constraint for memory, connection-timeout for silence.
*/

/* Queues our stream error (cond may be NULL: just close) and ends the
** stream with code rc. */
static int oi_stream_end(olpcidx *x, int rc, const char *cond,
                         const char *text)
{
    if (x->state != OI_S_CLOSING && x->state != OI_S_CLOSED) {
        size_t mark = oi_out_begin(x);
        if (cond) {
            oi_outz(x, "<stream:error><");
            oi_outz(x, cond);
            oi_outz(x, " xmlns='" OI_NS_XSTREAM "'/>");
            if (text) {
                oi_outz(x, "<text xmlns='" OI_NS_XSTREAM "'>");
                oi_out_esc(x, oi_zstr(text), 0);
                oi_outz(x, "</text>");
            }
            oi_outz(x, "</stream:error>");
        }
        oi_outz(x, "</stream:stream>");
        oi_out_commit(x, mark, "stream end");
    }
    x->state = OI_S_CLOSED;
    x->err = rc;
    return rc;
}

/* The server's stream header. */
static int oi_stream_open(olpcidx *x, oi_str ns, oi_str name,
                          const oi_xattr *a, size_t na)
{
    char hex[41];
    oi_str id = oi_mkstr("", 0), dflt;
    size_t i, mark;
    if (!oi_eq(ns, OI_NS_STREAM) || !oi_eq(name, "stream")) {
        oi_log(x, OLPCIDX_LOG_ERROR, "server did not open an XMPP stream "
               "(got <%.*s xmlns='%.*s'>)", (int)name.n, name.p,
               (int)ns.n, ns.p);
        return oi_stream_end(x, OLPCIDX_EPROTO, "invalid-namespace", NULL);
    }
    oi_xml_lookup(&x->xml, OI_LIT(""), &dflt);
    if (!oi_eq(dflt, OI_NS_ACCEPT)) {   /* RFC 6120 4.9.3.10 */
        oi_log(x, OLPCIDX_LOG_ERROR, "server opened a stream in namespace "
               "'%.*s', not " OI_NS_ACCEPT, (int)dflt.n, dflt.p);
        return oi_stream_end(x, OLPCIDX_EPROTO, "invalid-namespace", NULL);
    }
    for (i = 0; i < na; i++)
        if (a[i].ns.n == 0 && oi_eq(a[i].name, "id"))
            id = a[i].value;
    if (id.n == 0)      /* refusals come so (Prosody: id=''), then the */
        return 0;       /* stream error: OPENING waits for it */
    if (id.n >= sizeof x->stream_id) {
        oi_log(x, OLPCIDX_LOG_ERROR, "server stream id is too long");
        return oi_stream_end(x, OLPCIDX_EPROTO, "invalid-xml",
                             "stream id too long");
    }
    memcpy(x->stream_id, id.p, id.n);
    x->stream_id[id.n] = '\0';
    oi_handshake_digest(id, x->secret, hex);
    mark = oi_out_begin(x);
    oi_outz(x, "<handshake>");
    oi_outz(x, hex);
    oi_outz(x, "</handshake>");
    if (oi_out_commit(x, mark, "handshake") != 0)
        return oi_stream_end(x, OLPCIDX_ENOMEM, NULL, NULL);
    x->state = OI_S_HANDSHAKE;
    oi_log(x, OLPCIDX_LOG_DEBUG, "stream %s opened, handshake sent",
           x->stream_id);
    return 0;
}

/* A <stream:error/> from the server (RFC 6120 4.9.3). */
static int oi_stream_error_in(olpcidx *x, const oi_node *e)
{
    const oi_node *c, *t = oi_child(e, OI_NS_XSTREAM, "text");
    oi_str cond = OI_LIT("undefined-condition");
    int rc = OLPCIDX_ESTREAM;
    for (c = e->child; c; c = c->next)
        if (oi_eq(c->ns, OI_NS_XSTREAM) && !oi_eq(c->name, "text")) {
            cond = c->name;
            break;
        }
    if (oi_eq(cond, "not-authorized"))
        rc = OLPCIDX_EAUTH;
    else if (oi_eq(cond, "host-unknown") || oi_eq(cond, "invalid-namespace"))
        rc = OLPCIDX_EHOST;
    else if (oi_eq(cond, "conflict") && t
             && oi_find(oi_mkstr(t->text, t->ntext), OI_LIT("local domain")))
        rc = OLPCIDX_ELOCAL;    /* ejabberd: "Unable to register route on
                                ** existing local domain" (PROTOCOL.md 1.2);
                                ** another conflict (Prosody's "Component
                                ** already connected") may be a stale
                                ** connection of ours and is retried */
    oi_log(x, rc == OLPCIDX_ESTREAM ? OLPCIDX_LOG_WARN : OLPCIDX_LOG_ERROR,
           "server stream error <%.*s/>%s%.*s%s", (int)cond.n, cond.p,
           t ? " (\"" : "", t ? (int)t->ntext : 0, t ? t->text : "",
           t ? "\")" : "");
    return oi_stream_end(x, rc, NULL, NULL);
}

/* A complete top-level element of the stream. */
static int oi_stream_stanza(olpcidx *x, const oi_node *st)
{
    if (oi_eq(st->ns, OI_NS_STREAM)) {
        if (oi_eq(st->name, "error"))
            return oi_stream_error_in(x, st);
        return 0;                       /* stream:features: nothing to do */
    }
    if (oi_eq(st->name, "handshake") && x->state != OI_S_OPENING) {
        if (x->state != OI_S_HANDSHAKE) {
            oi_log(x, OLPCIDX_LOG_ERROR, "unexpected <handshake/>");
            return oi_stream_end(x, OLPCIDX_EPROTO, "not-authorized", NULL);
        }
        x->state = OI_S_ONLINE;
        oi_log(x, OLPCIDX_LOG_INFO, "online as %.*s (stream %s)",
               (int)x->jid.n, x->jid.p, x->stream_id);
        x->on_online(x);
        return 0;
    }
    if (x->state != OI_S_ONLINE) {
        if (x->state == OI_S_CLOSING)
            return 0;
        if (x->state == OI_S_OPENING) {
            oi_log(x, OLPCIDX_LOG_ERROR, "server stream header had no id");
            return oi_stream_end(x, OLPCIDX_EPROTO, "invalid-xml",
                                 "stream header without id");
        }
        oi_log(x, OLPCIDX_LOG_ERROR, "<%.*s> before the handshake completed",
               (int)st->name.n, st->name.p);
        return oi_stream_end(x, OLPCIDX_EPROTO, "not-authorized", NULL);
    }
    return x->on_stanza(x, st);
}

/* Whether a child of the stream root may stand there: a stanza, the
** handshake, or the stream's own error and features (RFC 6120 4.9.3.23:
** anything else is unsupported-stanza-type, at its start tag). */
static int oi_is_stanza(oi_str ns, oi_str name)
{
    if (OI_IS(ns, OI_NS_ACCEPT))
        return OI_IS(name, "message") || OI_IS(name, "presence")
            || OI_IS(name, "iq") || OI_IS(name, "handshake");
    return OI_IS(ns, OI_NS_STREAM)
        && (OI_IS(name, "error") || OI_IS(name, "features"));
}

/* Tokenizer callbacks: the stream root, then stanza trees. */
static int oi_on_start(void *ud, oi_str ns, oi_str name, const oi_xattr *a,
                       size_t na)
{
    olpcidx *x = (olpcidx *)ud;
    if (x->xml.depth == 1)
        return oi_stream_open(x, ns, name, a, na);
    if (x->xml.depth == 2 && !oi_is_stanza(ns, name)) {
        oi_log(x, OLPCIDX_LOG_ERROR, "server sent <%.*s xmlns='%.*s'> where "
               "a stanza belongs", (int)name.n, name.p, (int)ns.n, ns.p);
        return oi_stream_end(x, OLPCIDX_EPROTO, "unsupported-stanza-type",
                             NULL);
    }
    if (!x->dropped && oi_tree_start(x, ns, name, a, na) < 0)
        x->dropped = 1;
    return 0;
}

static int oi_on_text(void *ud, const char *p, size_t n)
{
    olpcidx *x = (olpcidx *)ud;
    if (x->xml.depth >= 2 && !x->dropped && oi_tree_text(x, p, n) < 0)
        x->dropped = 1;
    return 0;
}

static int oi_on_end(void *ud)
{
    olpcidx *x = (olpcidx *)ud;
    int rc = 0;
    if (x->xml.depth == 0) {            /* </stream:stream> */
        if (x->state == OI_S_CLOSING)
            oi_log(x, OLPCIDX_LOG_INFO, "stream closed");
        else
            oi_log(x, OLPCIDX_LOG_WARN, "server closed the stream");
        return oi_stream_end(x, OLPCIDX_ECLOSED, NULL, NULL);
    }
    if (x->xml.depth > 1) {
        if (!x->dropped)
            x->cur = x->cur->parent;
        return 0;
    }
    if (x->dropped) {
        oi_str type, to, id;
        oi_log(x, OLPCIDX_LOG_WARN, "stanza dropped: out of memory");
        if (x->root && x->state == OI_S_ONLINE && oi_eq(x->root->name, "iq")
            && oi_attr(x->root, "type", &type) && oi_attr(x->root, "from", &to)
            && (oi_eq(type, "get") || oi_eq(type, "set"))) {
            size_t mark = oi_out_begin(x);
            int has_id = oi_attr(x->root, "id", &id);
            oi_out_head(x, "iq", "error", to, has_id ? &id : NULL);
            oi_out_error(x, OI_C_RESOURCE_CONSTRAINT);
            oi_outz(x, "</iq>");
            oi_out_commit(x, mark, "resource-constraint reply");
        }
    } else if (x->root) {
        rc = oi_stream_stanza(x, x->root);
    }
    x->root = x->cur = NULL;
    x->dropped = 0;
    oi_arena_reset(&x->mem, &x->arena, 1);
    /* PROTOCOL.md 8.4: no further stanza is read while the output is
    ** over half full or events wait to be handed out */
    x->xml.pause = oi_out_busy(x);
    return rc;
}

static const oi_xml_handler oi_stream_handler = {
    oi_on_start, oi_on_end, oi_on_text
};
/* ==== 13. Handlers common to both dialects ========================== */

/*
** Routes, and what every dialect shares: stanza errors, properties in
** stanzas, discovery (XEP-0030), version (XEP-0092), ping (XEP-0199),
** who may ask (allowed domains, admins and the rate limit), liveness:
** presence, answers to our pings, bounces and the idle sweep
** (PROTOCOL.md 1, 5, 6.1, 8), and the admins' ad-hoc commands (XEP-0050;
** PROTOCOL.md 9).  Every reply is from the bare component JID, to the
** sender, with its id.
**
** A route is one row of a dialect's table (the Gadget's in section 15,
** the seed's in 14; the dispatcher of section 16 walks them all, first
** match first): the kind
** of stanza, its type, the payload's namespace and name, who may use it,
** and the handler.  An iq get or set is matched on its one payload, a
** message on each of its children in turn, presence, iq answers and
** bounces on the stanza itself.  A handler returns OI_C_NONE, a stanza
** error condition for the dispatcher to answer with, or OI_PASS to let
** the next matching row have it.
*/
enum {                          /* oi_route.on: what a row is for; one
                                ** bit per kind, OI_ROUTE_KINDS of them */
    OI_ON_GET = 1,              /* iq get */
    OI_ON_SET = 2,              /* iq set */
    OI_ON_ANSWER = 4,           /* iq result or error */
    OI_ON_MSG = 8,              /* a child of a message */
    OI_ON_BOUNCE = 16,          /* a message of type error */
    OI_ON_PRES = 32             /* presence */
};

enum {                          /* oi_route.guard bits: who may use it */
    OI_G_ANYONE = 0,
    OI_G_DOMAIN = 1,            /* allowed domains only (PROTOCOL.md 8.2):
                                ** others are refused with forbidden, or
                                ** ignored where no reply is due */
    OI_G_BARE_ERRORS = 2,       /* its error replies never carry the
                                ** request back (PROTOCOL.md 6.7) */
    OI_G_ADMIN = 4              /* admin JIDs only (PROTOCOL.md 9), from
                                ** any domain: others get forbidden */
};

#define OI_PASS (-1)            /* a handler's "not mine after all" */

typedef struct oi_ctx {         /* the stanza being routed */
    const oi_node *st;
    oi_str from;                /* sender's full JID, never empty */
    oi_str bare;                /* its bare JID */
    oi_str type;                /* type attribute; empty when absent */
    oi_str id;
    int has_id;
    int allowed;                /* from an allowed domain; -1: not known */
    int admin;                  /* from an admin JID (13.5) */
} oi_ctx;

typedef int (*oi_handler)(olpcidx *x, const oi_ctx *c, const oi_node *p);

/* A string of a route row and its length: OI_Z("query"); OI_ANY: any. */
#define OI_Z(z) z, sizeof(z) - 1
#define OI_ANY NULL, 0

typedef struct oi_route {
    unsigned on;                /* OI_ON_* bits */
    const char *type;           /* the stanza's type ("": none); NULL: any */
    size_t ntype;
    const char *ns;             /* the payload's namespace; NULL: any */
    size_t nns;
    const char *name;           /* the payload's name; NULL: any */
    size_t nname;
    int guard;                  /* OI_G_* */
    oi_handler fn;
} oi_route;

/* ---- 13.1 Stanza errors (PROTOCOL.md 8.3) ---------------------------- */

/* Replies <iq type='error'> with condition cond, carrying the request's
** payload when there is one and the condition allows (RFC 6120 8.3.1). */
static void oi_iq_error(olpcidx *x, const oi_ctx *c, const oi_node *payload,
                        int cond)
{
    size_t mark = oi_out_begin(x);
    oi_out_head(x, "iq", "error", c->from, c->has_id ? &c->id : NULL);
    if (payload && oi_conds[cond].echo)
        oi_out_node(x, payload, OI_LIT(OI_NS_ACCEPT));
    oi_out_error(x, cond);
    oi_outz(x, "</iq>");
    oi_out_commit(x, mark, "error reply");
}

/* Refuses a child of a message: <message type='error'> back to the
** sender with the offending child and the condition (RFC 6120 8.3). */
static void oi_msg_error(olpcidx *x, const oi_ctx *c, const oi_node *child,
                         int cond)
{
    size_t mark = oi_out_begin(x);
    oi_out_head(x, "message", "error", c->from, c->has_id ? &c->id : NULL);
    if (oi_conds[cond].echo)
        oi_out_node(x, child, OI_LIT(OI_NS_ACCEPT));
    oi_out_error(x, cond);
    oi_outz(x, "</message>");
    oi_out_commit(x, mark, "error message");
}

/* ---- 13.2 Properties in stanzas (PROTOCOL.md 2.1) -------------------- */

/* Reads the <property type name>value</property> children of n into a
** canonical set sorted by name, in the arena.  Strict (a request, an
** announcement): returns the stanza error condition that refuses the set
** (PROTOCOL.md 2.1, 8.1).  Lenient (what PEP or a room says): an invalid
** property is skipped, and a later one of the same name wins; a set over
** max-props is refused whole, to be ignored. */
static int oi_props_read(olpcidx *x, const oi_node *n, oi_props *out,
                         int lenient)
{
    const oi_node *c;
    size_t k = 0, i;
    out->n = out->size = 0;
    out->v = NULL;
    for (c = n->child; c; c = c->next)
        if (oi_eq(c->name, "property"))
            k++;
    if (k == 0)
        return OI_C_NONE;
    if (k > x->cfg.max_props) {
        if (lenient)
            oi_log(x, OLPCIDX_LOG_INFO, "%lu properties, over max-props: "
                   "ignored", (unsigned long)k);
        return OI_C_NOT_ACCEPTABLE;     /* lenient: ignored whole (2.1) */
    }
    out->v = (oi_prop *)oi_arena_alloc(&x->mem, &x->arena, k * sizeof *out->v);
    if (!out->v)
        return OI_C_RESOURCE_CONSTRAINT;
    for (c = n->child; c && out->n < k; c = c->next) {
        oi_prop *p = &out->v[out->n];
        oi_str type;
        char *buf;
        long len;
        int cond = OI_C_NONE;
        if (!oi_eq(c->name, "property"))
            continue;
        oi_attr(c, "type", &type);
        oi_attr(c, "name", &p->name);
        if ((p->type = oi_ptype(type)) < 0 || p->name.n == 0)
            cond = OI_C_BAD_REQUEST;
        else if (c->ntext > x->cfg.max_value)
            cond = OI_C_NOT_ACCEPTABLE;
        else if (!(buf = (char *)oi_arena_alloc(&x->mem, &x->arena,
                                                c->ntext + 4)))
            return OI_C_RESOURCE_CONSTRAINT;
        else if ((len = oi_prop_canon(p->type, oi_mkstr(c->text, c->ntext),
                                      buf)) < 0)
            cond = OI_C_BAD_REQUEST;
        else
            p->value = oi_mkstr(buf, (size_t)len);
        if (cond != OI_C_NONE) {
            if (!lenient)
                return cond;
            oi_log(x, OLPCIDX_LOG_INFO, "property '%.*s' skipped: %s",
                   (int)p->name.n, p->name.p, oi_conds[cond].cond);
            continue;
        }
        if (lenient) {                  /* a later one of that name wins */
            for (i = 0; i < out->n; i++)
                if (oi_streq(out->v[i].name, p->name))
                    break;
            if (i < out->n) {
                out->v[i] = *p;
                continue;
            }
        }
        out->n++;
    }
    qsort(out->v, out->n, sizeof *out->v, oi_prop_cmp);
    for (i = 1; i < out->n; i++)
        if (oi_streq(out->v[i - 1].name, out->v[i].name))
            return OI_C_BAD_REQUEST;
    return OI_C_NONE;
}

static int oi_props_parse(olpcidx *x, const oi_node *n, oi_props *out)
{
    return oi_props_read(x, n, out, 0);
}

/* The properties of an item element: in a <properties> wrapper of
** namespace ns, or (the seed's first shape) directly inside. */
static int oi_props_of(olpcidx *x, const oi_node *n, const char *ns,
                       oi_props *out)
{
    const oi_node *w = oi_child(n, ns, "properties");
    return oi_props_parse(x, w ? w : n, out);
}

/* Writes " activity='X' room='R'" (room only when known). */
static void oi_out_act_ids(olpcidx *x, oi_str id, oi_str room)
{
    oi_out_attr(x, "activity", id);
    if (room.n)
        oi_out_attr(x, "room", room);
}

/* The most bytes oi_put_prop writes for p: 42 of markup with the
** longest type name, each byte escaped at most to OI_ESC_GROWTH, and the
** padded type name's 8 bytes copied whole. */
static size_t oi_prop_bound(const oi_prop *p)
{
    return 48 + OI_ESC_GROWTH * (p->name.n + p->value.n);
}

/* Writes <property type name>value</property> at w, which has room for
** oi_prop_bound(p) bytes; returns the end. */
static char *oi_put_prop(char *w, const oi_prop *p)
{
    const struct oi_ptype_row *t = &oi_ptype_rows[p->type];
    memcpy(w, "<property type='", 16);
    memcpy(w + 16, t->name, sizeof t->name);  /* room: bound's slack */
    w += 16 + t->len;
    memcpy(w, "' name='", 8);
    w = oi_esc_to(w + 8, p->name, 1);
    *w++ = '\'';
    *w++ = '>';
    w = oi_esc_to(w, p->value, 0);
    memcpy(w, "</property>", 11);
    return w + 11;
}

/* Writes the property of posting list p like oi_put_prop, at w, which
** has room for 40 + OI_ESC_GROWTH * (its key's length) bytes, which is
** at least oi_prop_bound (the key adds 2 to name and value); names and values
** without a byte to escape, most of them, are copied as they are. */
static char *oi_put_post(char *w, const oi_post *p)
{
    oi_str key = oi_post_keyof_p(p);
    const char *k = key.p;
    size_t nn = oi_post_nname(p), nv = key.n - nn - 2;
    const struct oi_ptype_row *t = &oi_ptype_rows[k[nn + 1] - '0'];
    if (p->refs & OI_POST_ESC) {
        oi_prop r = oi_post_prop(p);
        return oi_put_prop(w, &r);
    }
    memcpy(w, "<property type='", 16);
    memcpy(w + 16, t->name, sizeof t->name);
    w += 16 + t->len;
    memcpy(w, "' name='", 8);
    memcpy(w + 8, k, nn);
    w += 8 + nn;
    memcpy(w, "'>", 2);
    memcpy(w + 2, k + nn + 2, nv);
    w += 2 + nv;
    memcpy(w, "</property>", 11);
    return w + 11;
}

/* Writes a property, in place when the queue has room (a reply lists
** many, and most are short), else piece by piece. */
static void oi_out_prop(olpcidx *x, const oi_prop *p)
{
    char *w = p->name.n <= OI_ESC_CHUNK && p->value.n <= OI_ESC_CHUNK
        ? oi_out_room(x, oi_prop_bound(p)) : NULL;
    if (!w) {
        const struct oi_ptype_row *t = &oi_ptype_rows[p->type];
        oi_outz(x, "<property");
        oi_out_attr(x, "type", oi_mkstr(t->name, t->len));
        oi_out_attr(x, "name", p->name);
        oi_out(x, ">", 1);
        oi_out_esc(x, p->value, 0);
        oi_outz(x, "</property>");
        return;
    }
    oi_out_to(x, oi_put_prop(w, p));
}

/* Writes <properties xmlns=ns>, with the activity's ids when a is given
** (the form of change notifications, PROTOCOL.md 3.6).  Without them,
** the whole element is written in place when the queue has room for
** its bound. */
static void oi_out_props(olpcidx *x, const oi_item *it, oi_str ns,
                         const oi_act *a)
{
    size_t i, need = 48 + ns.n;
    char *w = NULL;
    if (!a) {
        for (i = 0; i < it->nprops; i++)
            need += 40 + OI_ESC_GROWTH * oi_post_keyof_p(it->props[i]).n;
        w = oi_out_room(x, need);
    }
    if (w) {
        memcpy(w, "<properties xmlns='", 19);
        memcpy(w + 19, ns.p, ns.n);
        w += 19 + ns.n;
        *w++ = '\'';
        if (it->nprops == 0) {
            memcpy(w, "/>", 2);
            oi_out_to(x, w + 2);
            return;
        }
        *w++ = '>';
        for (i = 0; i < it->nprops; i++)
            w = oi_put_post(w, it->props[i]);
        memcpy(w, "</properties>", 13);
        oi_out_to(x, w + 13);
        return;
    }
    oi_outz(x, "<properties xmlns='");
    oi_out(x, ns.p, ns.n);
    oi_out(x, "'", 1);
    if (a)
        oi_out_act_ids(x, oi_uid(&a->it), oi_room(a));
    if (it->nprops == 0) {
        oi_outz(x, "/>");
        return;
    }
    oi_out(x, ">", 1);
    for (i = 0; i < it->nprops; i++) {
        oi_prop p = oi_post_prop(it->props[i]);
        oi_out_prop(x, &p);
    }
    oi_outz(x, "</properties>");
}

/* Writes <buddy jid><properties/></buddy>: a participant as both
** dialects list it, and a buddy of a Gadget view. */
static void oi_out_member(olpcidx *x, const oi_buddy *b)
{
    oi_outz(x, "<buddy");
    oi_out_attr(x, "jid", oi_uid(&b->it));
    oi_out(x, ">", 1);
    oi_out_props(x, &b->it, OI_LIT(OI_NS_BPROPS), NULL);
    oi_outz(x, "</buddy>");
}

/* ---- 13.3 Finding items, and telling of them ------------------------ */

static int oi_item_cmp(const void *a, const void *b)
{
    return oi_str_cmp(oi_uid(*(oi_item *const *)a),
                      oi_uid(*(oi_item *const *)b));
}

/* Whether item it passes a query's criteria crit. */
typedef int (*oi_keep_fn)(olpcidx *x, const oi_item *it, const void *crit);

/* The items of kind kind (OI_K_ACT, OI_K_BUDDY) that match a query, in
** UID order: those of the shortest posting list among the wanted
** properties (every listed item when none is wanted) that keep() keeps.
** With exact set, the caller says that nothing but at most one property
** is asked, so that the list itself is the answer: it is returned as it
** is, borrowed, and the query then costs the page the caller cuts, not
** the matches.  With an alias (folded; buddies), the alias index gives
** the candidates.  Returns their number, or -1 when out of memory. */
static long oi_collect(olpcidx *x, int kind, const oi_props *want,
                       const char *alias, size_t nalias, oi_keep_fn keep,
                       const void *crit, int exact, oi_item ***out)
{
    oi_map *posts = kind == OI_K_ACT ? &x->aposts : &x->bposts;
    void *const *best = x->listed[kind].v;
    size_t i, n = 0, nbest = x->listed[kind].n;
    long k;
    oi_item **v;
    if (nalias && kind == OI_K_BUDDY && !x->alias_lost) {
        if ((k = oi_alias_find(x, alias, nalias, &v)) < 0)
            return -1;                  /* the alias index: few to read */
        for (i = 0; i < (size_t)k; i++)
            if (keep(x, v[i], crit))
                v[n++] = v[i];
        if (n > 1)
            qsort(v, n, sizeof *v, oi_item_cmp);
        *out = v;
        return (long)n;
    }
    for (i = 0; i < want->n; i++) {
        char *kb = (char *)oi_arena_alloc(&x->mem, &x->arena,
                                          want->v[i].name.n + 2
                                          + want->v[i].value.n);
        const oi_post *p;
        if (!kb)
            return -1;
        p = (const oi_post *)oi_map_get(posts, oi_post_key(&want->v[i], kb));
        if (!p) {
            *out = NULL;
            return 0;                   /* nobody has that property */
        }
        if (oi_post_count(p) < nbest || i == 0) {
            best = oi_post_citems(p);
            nbest = oi_post_count(p);
        }
    }
    if (exact && want->n <= 1) {
        *out = (oi_item **)best;
        return (long)nbest;
    }
    v = (oi_item **)oi_arena_alloc(&x->mem, &x->arena, (nbest ? nbest : 1)
                                   * sizeof *v);
    if (!v)
        return -1;
    for (i = 0; i < nbest; i++)
        if (keep(x, (const oi_item *)best[i], crit))
            v[n++] = (oi_item *)best[i];
    *out = v;
    return (long)n;
}

/* Opens a notification to full JID to (PROTOCOL.md 3.6, 6.8); returns
** the mark for oi_note_end. */
static size_t oi_note_begin(olpcidx *x, oi_str to)
{
    size_t mark = oi_out_begin(x);
    oi_out_head(x, "message", x->notify_type, to, NULL);
    return mark;
}

/* Ends it with the AMP rule: deliver now, or bounce. */
static void oi_note_end(olpcidx *x, size_t mark)
{
    oi_outz(x, "<amp xmlns='" OI_NS_AMP "'><rule condition='deliver-at' "
            "value='stored' action='error'/></amp></message>");
    oi_out_commit(x, mark, "notification");
}

/* ---- 13.4 Discovery, version, ping ----------------------------------- */

/* What disco#info lists after the identity: the services, then the PEP
** nodes whose events the component wants (XEP-0163 "+notify"). */
static const char *const oi_features[] = {
    OI_NS_BUDDY, OI_NS_ACT, OI_NS_RSM, OI_NS_DINFO, OI_NS_PING, OI_NS_VERSION,
    OI_NS_COMMANDS,
    OI_NS_BPROPS "+notify", OI_NS_ACTS "+notify", OI_NS_CURACT "+notify",
    OI_NS_APROPS "+notify", OI_NS_NICK "+notify"
};

#define OI_NFEATURES (sizeof oi_features / sizeof oi_features[0])

static int oi_cmp_z(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The XEP-0115 5.1 verification string of the identity and features,
** into x->caps_ver (PROTOCOL.md 6.1). */
static void oi_caps_init(olpcidx *x)
{
    const char *sorted[OI_NFEATURES];
    unsigned char d[20];
    oi_sha1 c;
    size_t i;
    memcpy(sorted, oi_features, sizeof sorted);
    qsort(sorted, OI_NFEATURES, sizeof *sorted, oi_cmp_z);
    oi_sha1_init(&c);
    oi_sha1_update(&c, "collaboration/gadget//", 22);
    oi_sha1_update(&c, x->name.p, x->name.n);
    oi_sha1_update(&c, "<", 1);
    for (i = 0; i < OI_NFEATURES; i++) {
        oi_sha1_update(&c, sorted[i], strlen(sorted[i]));
        oi_sha1_update(&c, "<", 1);
    }
    oi_sha1_digest(&c, d);
    oi_b64_encode(d, sizeof d, x->caps_ver);
}

/* Whether node is the component's caps node, "NODE#VER". */
static int oi_is_caps_node(olpcidx *x, oi_str node)
{
    size_t n = sizeof OI_CAPS_NODE - 1;
    return node.n == n + 1 + strlen(x->caps_ver)
        && memcmp(node.p, OI_CAPS_NODE, n) == 0 && node.p[n] == '#'
        && memcmp(node.p + n + 1, x->caps_ver, node.n - n - 1) == 0;
}

/* The ad-hoc commands (XEP-0050; PROTOCOL.md 9), one row each: its id,
** node, name, and handler (13.7). */
#define OI_COMMANDS(X)                                                      \
    X(STATS,  "stats",           "Statistics",      oi_cmd_stats)           \
    X(LIST,   "list-activities", "List activities", oi_cmd_list)            \
    X(FORGET, "forget-buddy",    "Forget a buddy",  oi_cmd_forget)

enum {
#define OI_CMD_ENUM_(id, node, name, fn) OI_CMD_##id,
    OI_COMMANDS(OI_CMD_ENUM_)
#undef OI_CMD_ENUM_
    OI_NCOMMANDS
};

static const struct oi_cmd_row {
    const char *node, *name;
} oi_cmds[OI_NCOMMANDS] = {
#define OI_CMD_ROW_(id, node, name, fn) { node, name },
    OI_COMMANDS(OI_CMD_ROW_)
#undef OI_CMD_ROW_
};

/* The command whose node is node, or -1. */
static int oi_cmd_find(oi_str node)
{
    int k;
    for (k = 0; k < OI_NCOMMANDS; k++)
        if (oi_eq(node, oi_cmds[k].node))
            return k;
    return -1;
}

/* disco#info on the node of a command (XEP-0050): its
** identity and features to an admin, forbidden to anyone else, as
** Prosody answers; on the command list node, that identity. */
static int oi_disco_cmd_info(olpcidx *x, const oi_ctx *c, oi_str node,
                             int k)
{
    size_t mark;
    if (k >= 0 && !c->admin)
        return OI_C_FORBIDDEN;
    mark = oi_out_begin(x);
    oi_out_head(x, "iq", "result", c->from, &c->id);
    oi_outz(x, "<query xmlns='" OI_NS_DINFO "'");
    oi_out_attr(x, "node", node);
    if (k < 0) {
        oi_outz(x, "><identity category='automation' type='command-list' "
                "name='Commands'/></query></iq>");
    } else {
        oi_outz(x, "><identity category='automation' type='command-node'");
        oi_out_attr(x, "name", oi_zstr(oi_cmds[k].name));
        oi_outz(x, "/><feature var='" OI_NS_COMMANDS "'/><feature var='"
                OI_NS_XDATA "'/></query></iq>");
    }
    oi_out_commit(x, mark, "disco#info reply");
    return OI_C_NONE;
}

/* disco#info (XEP-0030; PROTOCOL.md 6.1): the identity the Sugar client
** looks for first, then the features; on the caps node the same (XEP-0115
** 6.2), on the commands' nodes theirs (PROTOCOL.md 9.1), another node is
** item-not-found. */
static int oi_disco_info(olpcidx *x, const oi_ctx *c, const oi_node *q)
{
    size_t mark, i;
    oi_str node;
    int has_node = oi_attr(q, "node", &node), k;
    if (has_node && OI_IS(node, OI_NS_COMMANDS))
        return oi_disco_cmd_info(x, c, node, -1);
    if (has_node && (k = oi_cmd_find(node)) >= 0)
        return oi_disco_cmd_info(x, c, node, k);
    if (has_node && !oi_is_caps_node(x, node))
        return OI_C_ITEM_NOT_FOUND;
    mark = oi_out_begin(x);
    oi_out_head(x, "iq", "result", c->from, &c->id);
    oi_outz(x, "<query xmlns='" OI_NS_DINFO "'");
    if (has_node)
        oi_out_attr(x, "node", node);
    oi_outz(x, "><identity category='collaboration' type='gadget'");
    oi_out_attr(x, "name", x->name);
    oi_outz(x, "/>");
    for (i = 0; i < OI_NFEATURES; i++) {
        oi_outz(x, "<feature var='");
        oi_outz(x, oi_features[i]);
        oi_outz(x, "'/>");
    }
    oi_outz(x, "</query></iq>");
    oi_out_commit(x, mark, "disco#info reply");
    return OI_C_NONE;
}

/* Replies a result whose payload is the literal body (may be empty). */
static int oi_reply_fixed(olpcidx *x, const oi_ctx *c, const char *body,
                          const char *what)
{
    size_t mark = oi_out_begin(x);
    oi_out_head(x, "iq", "result", c->from, &c->id);
    oi_outz(x, body);
    oi_outz(x, "</iq>");
    oi_out_commit(x, mark, what);
    return OI_C_NONE;
}

/* disco#items: no items; on the command list node (XEP-0050 2.2) the
** commands, to an admin only: anyone else gets the list empty, as from
** Prosody. */
static int oi_disco_items(olpcidx *x, const oi_ctx *c, const oi_node *q)
{
    size_t mark;
    oi_str node;
    int k;
    if (!oi_attr(q, "node", &node) || !OI_IS(node, OI_NS_COMMANDS))
        return oi_reply_fixed(x, c, "<query xmlns='" OI_NS_DITEMS "'/>",
                              "disco#items reply");
    mark = oi_out_begin(x);
    oi_out_head(x, "iq", "result", c->from, &c->id);
    oi_outz(x, "<query xmlns='" OI_NS_DITEMS "' node='" OI_NS_COMMANDS "'>");
    for (k = 0; c->admin && k < OI_NCOMMANDS; k++) {
        oi_outz(x, "<item");
        oi_out_attr(x, "jid", x->jid);
        oi_out_attr(x, "node", oi_zstr(oi_cmds[k].node));
        oi_out_attr(x, "name", oi_zstr(oi_cmds[k].name));
        oi_outz(x, "/>");
    }
    oi_outz(x, "</query></iq>");
    oi_out_commit(x, mark, "disco#items reply");
    return OI_C_NONE;
}

static int oi_version(olpcidx *x, const oi_ctx *c, const oi_node *q)
{
    (void)q;
    return oi_reply_fixed(x, c, "<query xmlns='" OI_NS_VERSION "'><name>"
                          "olpcidx</name><version>" OLPCIDX_VERSION
                          "</version></query>", "version reply");
}

/* A second connection for the domain (PROTOCOL.md 1.2).  ejabberd accepts
** another component connection for a domain that has one and delivers
** each stanza to either at random, which would split the index.  Online,
** the component pings itself OI_TWIN_PROBES times (XEP-0199), with ids
** naming this stream.  Alone, each probe reaches it as a request before
** its answer does; another connection shows as a probe answered without
** its request having come here, or as a probe or answer naming a stream
** that is neither this one nor the one before (stale after a reconnect).
** With random delivery the connection already there sees the newcomer
** with probability 1 - 2^-8, the newcomer itself with 1 - (3/4)^8 (0.9).
** It is logged, as an error, once per stream: what to do is the
** operator's choice. */
#define OI_TWIN_PROBES 8

static void oi_twin_probe(olpcidx *x)
{
    char n[2] = {0, 0};
    int i;
    memcpy(x->twin_prev, x->twin_cur, sizeof x->twin_prev);
    memcpy(x->twin_cur, x->stream_id, sizeof x->twin_cur);
    x->twin_seen = 0;
    x->twin_told = 0;
    for (i = 0; i < OI_TWIN_PROBES; i++) {
        size_t mark = oi_out_begin(x);
        n[0] = (char)('0' + i);
        oi_outz(x, "<iq type='get'");
        oi_out_attr(x, "from", x->jid);
        oi_out_attr(x, "to", x->jid);
        oi_outz(x, " id='twin-");
        oi_out_esc(x, oi_zstr(x->twin_cur), 1);
        oi_outz(x, "-");
        oi_outz(x, n);
        oi_outz(x, "'><ping xmlns='" OI_NS_PING "'/></iq>");
        oi_out_commit(x, mark, "self-check ping");
    }
}

/* Which probe c is about: 0 to OI_TWIN_PROBES-1 for this stream's, -1
** for another connection's, -2 for no probe or the previous stream's. */
static int oi_twin_which(const olpcidx *x, const oi_ctx *c)
{
    oi_str id = c->id;
    size_t n;
    if (!oi_streq(c->from, x->jid) || id.n < 7 || memcmp(id.p, "twin-", 5))
        return -2;
    id.p += 5;
    id.n -= 7;                          /* the stream id, without "-N" */
    if (id.p[id.n] != '-')
        return -2;
    n = strlen(x->twin_cur);
    if (id.n == n && memcmp(id.p, x->twin_cur, n) == 0)
        return id.p[n + 1] >= '0' && id.p[n + 1] < '0' + OI_TWIN_PROBES
               ? id.p[n + 1] - '0' : -2;
    n = strlen(x->twin_prev);
    if (id.n == n && memcmp(id.p, x->twin_prev, n) == 0)
        return -2;
    return -1;
}

static void oi_twin_found(olpcidx *x, const char *how)
{
    if (x->twin_told)
        return;
    x->twin_told = 1;
    oi_log(x, OLPCIDX_LOG_ERROR, "another connection is online as %.*s "
           "(%s): the server hands each stanza to one of them, so the "
           "index is split; run one olpcidx per component domain",
           (int)x->jid.n, x->jid.p, how);
}

/* An answer to a probe; returns 0 if c is none. */
static int oi_twin_answer(olpcidx *x, const oi_ctx *c)
{
    int k = oi_twin_which(x, c);
    if (k == -1)
        oi_twin_found(x, "the answer to its self-check came here");
    else if (k >= 0 && !(x->twin_seen >> k & 1))
        oi_twin_found(x, "it answered a self-check of this one");
    return k != -2;
}

static int oi_pong(olpcidx *x, const oi_ctx *c, const oi_node *q)
{
    int k = oi_twin_which(x, c);
    (void)q;
    if (k >= 0)
        x->twin_seen |= 1u << k;
    else if (k == -1)
        oi_twin_found(x, "its self-check came here");
    return oi_reply_fixed(x, c, "", "ping reply");
}

/* ---- 13.5 Who may ask (PROTOCOL.md 8.2) ------------------------------- */

/* Whether s is one of the words of list, separated by spaces; with
** fold, ASCII letters match in either case. */
static int oi_in_list(oi_str list, oi_str s, int fold)
{
    const char *p = list.p, *end = p + list.n;
    size_t i;
    while (p < end) {
        const char *sp = (const char *)memchr(p, ' ', (size_t)(end - p));
        size_t n = sp ? (size_t)(sp - p) : (size_t)(end - p);
        for (i = 0; n && n == s.n && i < n; i++) {
            unsigned char a = (unsigned char)p[i], b = (unsigned char)s.p[i];
            if (fold && a >= 'A' && a <= 'Z')
                a = (unsigned char)(a - 'A' + 'a');
            if (fold && b >= 'A' && b <= 'Z')
                b = (unsigned char)(b - 'A' + 'a');
            if (a != b)
                break;
        }
        if (n && n == s.n && i == n)
            return 1;
        p += n + 1;
    }
    return 0;
}

/* Whether jid belongs to one of the allowed domains (x->allow: names
** separated by spaces). */
static int oi_allowed(olpcidx *x, oi_str jid)
{
    return oi_in_list(x->allow, oi_domain(jid), 0);
}

/* Whether bare JID bare is one of the admins (x->admins: bare JIDs
** separated by spaces; PROTOCOL.md 9).  ASCII letters match in either
** case: the server stamps 'from' prepared (RFC 7622 3.2, 3.3), lowercase,
** and an operator may have written the JID otherwise. */
static int oi_is_admin(olpcidx *x, oi_str bare)
{
    return oi_in_list(x->admins, bare, 1);
}

/* Takes one stanza from full JID's token bucket (PROTOCOL.md 8.2; burst
** rate_burst, refilled at rate_per_sec).  Returns 0 when it is empty. */
static int oi_rate_take(olpcidx *x, oi_str jid)
{
    oi_client *c = oi_client_get(x, jid, 1);
    if (!c)
        return 1;                       /* no memory to track: let it be */
    oi_client_refill(x, c);
    if (c->tokens < 1000)
        return 0;
    c->tokens -= 1000;
    return 1;
}

/* ---- 13.6 Liveness (PROTOCOL.md 5) ------------------------------------ */

/* Directed available presence marks the full JID online. */
static int oi_pres_available(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    (void)p;
    oi_chg_available(x, c->from);
    return OI_C_NONE;
}

/* Unavailable presence takes it offline. */
static int oi_pres_unavailable(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    (void)p;
    oi_chg_offline(x, c->from);
    return OI_C_NONE;
}

/* An iq result or error is never answered (RFC 6120 8.2.3) but is a sign
** of life; an error answering an idle ping means the client is gone. */
static int oi_answer(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    (void)p;
    if (oi_twin_answer(x, c))
        return OI_C_NONE;
    if (oi_eq(c->type, "error") && oi_eq(c->id, "idle"))
        oi_chg_offline(x, c->from);
    else
        oi_seen(x, c->from);
    return OI_C_NONE;
}

/* A notification bounced (the AMP rule, or the client is offline): the
** full JID's watchers go (PROTOCOL.md 5.3). */
static int oi_bounce(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    const oi_node *amp = oi_child(c->st, OI_NS_AMP, "amp");
    oi_str to;
    oi_client *cl;
    (void)p;
    /* an AMP failure comes from the server and names the recipient
    ** (XEP-0079 3.7); only the server may say so of another JID */
    if (amp && oi_attr(amp, "to", &to) && oi_streq(c->from, x->server))
        cl = oi_client_get(x, to, 0);
    else
        cl = oi_client_get(x, c->from, 0);
    if (cl) {
        while (cl->watches)
            oi_watch_free(x, cl->watches);
        oi_client_trim(x, cl);
    }
    return OI_C_NONE;
}

/* Rooms that did not let the component in within OI_JOIN_TIMEOUT_MS are
** given up (PROTOCOL.md 6.5); the activity is then left to announcements
** and liveness.  Looked at only while a join is pending. */
static void oi_room_timeouts(olpcidx *x)
{
    size_t i = 0;
    void *p;
    int pending = 0;
    if (!x->joining)
        return;
    while ((p = oi_map_next(&x->acts, &i)) != NULL) {
        oi_act *a = (oi_act *)p;
        if (!a->join)
            continue;                   /* not joining, or not asked yet */
        if (x->now - a->join->at < OI_JOIN_TIMEOUT_MS) {
            pending = 1;
            continue;
        }
        oi_log(x, OLPCIDX_LOG_INFO, "room %.*s did not answer the component "
               "within %u s: not watched", (int)a->nroom, oi_room(a).p,
               OI_JOIN_TIMEOUT_MS / 1000);
        oi_act_muc(&x->mem, a, OI_MUC_NONE);
    }
    x->joining = pending;
}

/* The clock idle pings wait on: the time less the time input was held
** back (PROTOCOL.md 8.4), when an answer could have arrived and not been
** read.  A buddy keeps one reading of it, not both times. */
static uint64_t oi_ping_clock(const olpcidx *x)
{
    return x->now - x->blocked_ms;
}

/* How long b's idle ping has waited for its answer. */
static uint64_t oi_ping_waited(const olpcidx *x, const oi_buddy *b)
{
    uint64_t now = oi_ping_clock(x);
    return now >= b->ping_at ? now - b->ping_at : 0;
}

/* Once a second (PROTOCOL.md 5.2): pings participants silent for idle
** seconds at their last full JID (XEP-0199), takes offline those whose
** ping went unanswered for 30 s, and forgets clients that hold nothing.
** Nobody is taken offline while input is held back or waits to be
** parsed: the answer may be in it. */
static void oi_liveness(olpcidx *x)
{
    uint64_t idle = (uint64_t)x->cfg.idle * 1000;
    size_t i = 0;
    void *p;
    int held = oi_out_busy(x) || x->held.n > 0;
    oi_room_timeouts(x);
    while ((p = oi_map_next(&x->clients, &i)) != NULL)
        oi_client_trim(x, (oi_client *)p);
    oi_map_shrink(&x->mem, &x->clients);
    i = 0;
    while ((p = oi_map_next(&x->buddies, &i)) != NULL) {
        oi_buddy *b = (oi_buddy *)p;
        if (b->acts.n == 0 || !b->last)
            continue;
        if (b->pinged && !held
            && oi_ping_waited(x, b) >= OI_PING_TIMEOUT_MS) {
            oi_str full;
            char *fp = oi_buddy_last(x, b, &full);
            if (!fp)
                continue;               /* memory is short: next second */
            oi_log(x, OLPCIDX_LOG_INFO, "%.*s did not answer a ping: "
                   "offline", (int)full.n, full.p);
            oi_chg_offline(x, full);
            oi_free(&x->mem, fp, full.n);
            i = 0;                      /* the maps changed: start again */
        } else if (!b->pinged && (b->restored
                                   || (idle && x->now - b->seen >= idle))) {
            b->restored = 0;
            size_t mark = oi_out_begin(x);
            oi_outz(x, "<iq type='get'");
            oi_out_attr(x, "from", x->jid);
            oi_outz(x, " to='");        /* the full JID: bare/resource */
            oi_out_esc(x, oi_uid(&b->it), 1);
            oi_out(x, "/", 1);
            oi_out_esc(x, oi_lstr(b->last), 1);
            oi_outz(x, "'");
            oi_outz(x, " id='idle'><ping xmlns='" OI_NS_PING "'/></iq>");
            if (oi_out_commit(x, mark, "idle ping") == 0) {
                b->ping_at = oi_ping_clock(x);
                b->pinged = 1;
            }
        }
    }
}

/* ---- 13.7 Admin commands (XEP-0050; PROTOCOL.md 9) -------------------- */

/* The figures of olpcidx_stats (PROTOCOL.md 9.2): each watcher counts
** under the figure its kind names; the journal and snapshot sizes are the
** bytes the storage took; the uptime runs on the clock of connect and
** tick. */
static void oi_stats(const olpcidx *x, olpcidx_stats *s)
{
    size_t i = 0;
    const void *p;
    memset(s, 0, sizeof *s);
    s->buddies = x->buddies.n;
    s->activities = x->acts.n;
    s->clients = x->clients.n;
    while ((p = oi_map_next(&x->clients, &i)) != NULL) {
        const oi_watch *w;
        for (w = ((const oi_client *)p)->watches; w; w = w->next)
            ++*(unsigned long long *)(void *)((char *)s + w->kind->stat);
    }
    s->memory = x->mem.used;
    s->memory_cap = x->mem.limit;
    s->queued = x->out.n - x->head;
    s->waiting = x->fq_left;
    s->held = x->held.n;
    s->stanzas_in = x->nin;
    s->stanzas_out = x->nout;
    s->journal = x->jbytes;
    s->snapshot = x->snap_bytes;
    s->uptime = x->ever_connected ? (x->now - x->first_at) / 1000 : 0;
}

/* Answers the command with an error: the stanza condition and the
** command's own (XEP-0050), carrying the request back. */
static int oi_cmd_error(olpcidx *x, const oi_ctx *c, const oi_node *cmd,
                        int cond, const char *app)
{
    size_t mark = oi_out_begin(x);
    oi_out_head(x, "iq", "error", c->from, &c->id);
    if (oi_conds[cond].echo)
        oi_out_node(x, cmd, OI_LIT(OI_NS_ACCEPT));
    oi_out_error_app(x, cond, OI_NS_COMMANDS, app);
    oi_outz(x, "</iq>");
    oi_out_commit(x, mark, "command error");
    return OI_C_NONE;
}

/* Opens the reply to command k: <command node sessionid status>. */
static size_t oi_cmd_begin(olpcidx *x, const oi_ctx *c, int k,
                           unsigned long sid, const char *status)
{
    char id[24];
    size_t mark = oi_out_begin(x);
    oi_out_head(x, "iq", "result", c->from, &c->id);
    oi_outz(x, "<command xmlns='" OI_NS_COMMANDS "'");
    oi_out_attr(x, "node", oi_zstr(oi_cmds[k].node));
    snprintf(id, sizeof id, "%lu", sid);
    oi_out_attr(x, "sessionid", oi_zstr(id));
    oi_out_attr(x, "status", oi_zstr(status));
    oi_out(x, ">", 1);
    return mark;
}

static void oi_cmd_end(olpcidx *x, size_t mark)
{
    oi_outz(x, "</command></iq>");
    oi_out_commit(x, mark, "command reply");
}

/* Writes <note type=type>text</note> (XEP-0050). */
static void oi_cmd_note(olpcidx *x, const char *type, const char *text)
{
    oi_outz(x, "<note");
    oi_out_attr(x, "type", oi_zstr(type));
    oi_out(x, ">", 1);
    oi_out_esc(x, oi_zstr(text), 0);
    oi_outz(x, "</note>");
}

/* Writes a data form field (XEP-0004 3.2) with one value; type and label
** may be NULL (the fields of a reported item carry neither). */
static void oi_out_field(olpcidx *x, const char *var, const char *type,
                         const char *label, oi_str value)
{
    oi_outz(x, "<field");
    oi_out_attr(x, "var", oi_zstr(var));
    if (type)
        oi_out_attr(x, "type", oi_zstr(type));
    if (label)
        oi_out_attr(x, "label", oi_zstr(label));
    oi_outz(x, "><value>");
    oi_out_esc(x, value, 0);
    oi_outz(x, "</value></field>");
}

/* stats (PROTOCOL.md 9.2): one stage, the figures as a result form, one
** text-single field per row of OLPCIDX_STATS. */
static int oi_cmd_stats(olpcidx *x, const oi_ctx *c, const oi_node *cmd,
                        oi_client *cl)
{
    static const char *const vars[] = {
#define OI_STAT_VAR_(name, text) #name,
        OLPCIDX_STATS(OI_STAT_VAR_)
#undef OI_STAT_VAR_
    };
    static const char *const labels[] = {
#define OI_STAT_LABEL_(name, text) text,
        OLPCIDX_STATS(OI_STAT_LABEL_)
#undef OI_STAT_LABEL_
    };
    unsigned long long v[sizeof vars / sizeof vars[0]];
    char num[24];
    olpcidx_stats s;
    size_t mark, k = 0;
    (void)cmd;
    (void)cl;
    oi_stats(x, &s);
#define OI_STAT_VALUE_(name, text) v[k++] = s.name;
    OLPCIDX_STATS(OI_STAT_VALUE_)
#undef OI_STAT_VALUE_
    mark = oi_cmd_begin(x, c, OI_CMD_STATS, ++x->cmd_seq, "completed");
    oi_outz(x, "<x xmlns='" OI_NS_XDATA "' type='result'><title>olpcidx "
            "statistics</title>");
    for (k = 0; k < sizeof vars / sizeof vars[0]; k++) {
        snprintf(num, sizeof num, "%llu", v[k]);
        oi_out_field(x, vars[k], "text-single", labels[k], oi_zstr(num));
    }
    oi_outz(x, "</x>");
    oi_cmd_end(x, mark);
    return OI_C_NONE;
}

/* list-activities (PROTOCOL.md 9.3): one stage, a multi-item result form
** (XEP-0004 3.4) of at most max-page activities, the public ones in id
** order and then the private ones, with a note of how many there are. */
static int oi_cmd_list(olpcidx *x, const oi_ctx *c, const oi_node *cmd,
                       oi_client *cl)
{
    static const char *const cols[][2] = {
        { "id", "Activity" }, { "room", "Room" }, { "type", "Type" },
        { "title", "Title" }, { "buddies", "Participants" },
        { "private", "Private" }
    };
    const oi_vec *listed = &x->listed[OI_K_ACT];
    size_t total = x->acts.n, shown = total, mark, i, k, n;
    char note[96], num[24];
    void *p;
    (void)cmd;
    (void)cl;
    if (shown > x->cfg.max_page)
        shown = x->cfg.max_page;
    snprintf(note, sizeof note, "activities known: %lu, listed: %lu%s",
             (unsigned long)total, (unsigned long)shown,
             shown < total ? " (max-page)" : "");
    mark = oi_cmd_begin(x, c, OI_CMD_LIST, ++x->cmd_seq, "completed");
    oi_cmd_note(x, "info", note);
    oi_outz(x, "<x xmlns='" OI_NS_XDATA "' type='result'><title>Activities"
            "</title><reported>");
    for (k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        oi_outz(x, "<field type='text-single'");
        oi_out_attr(x, "var", oi_zstr(cols[k][0]));
        oi_out_attr(x, "label", oi_zstr(cols[k][1]));
        oi_outz(x, "/>");
    }
    oi_outz(x, "</reported>");
    for (i = 0, k = 0, n = 0; n < shown && (p = i < listed->n
                                ? listed->v[i++]
                                : oi_map_next(&x->acts, &k)) != NULL;) {
        const oi_act *a = (const oi_act *)p;
        oi_prop type, title;
        if (k && !oi_act_private(a))
            continue;                   /* the public ones came first */
        n++;
        snprintf(num, sizeof num, "%lu", (unsigned long)a->parts.n);
        oi_outz(x, "<item>");
        oi_out_field(x, "id", NULL, NULL, oi_uid(&a->it));
        oi_out_field(x, "room", NULL, NULL, oi_room(a));
        oi_out_field(x, "type", NULL, NULL, oi_item_prop(&a->it, "type",
                     &type) ? type.value : OI_LIT(""));
        oi_out_field(x, "title", NULL, NULL, oi_item_prop(&a->it,
                     "title", &title) ? title.value : OI_LIT(""));
        oi_out_field(x, "buddies", NULL, NULL, oi_zstr(num));
        oi_out_field(x, "private", NULL, NULL, oi_act_private(a)
                     ? OI_LIT("1") : OI_LIT("0"));
        oi_outz(x, "</item>");
    }
    oi_outz(x, "</x>");
    oi_cmd_end(x, mark);
    return OI_C_NONE;
}

/* The bare JID submitted in the jid field of form f (XEP-0004), or an
** empty one when f is no submitted form or the value is no JID: empty,
** longer than a JID may be (RFC 7622 3.1), or with a space or a control
** character.  A full JID stands for its bare JID. */
static oi_str oi_form_jid(const oi_node *f)
{
    const oi_node *fld, *v;
    oi_str type, var, jid = OI_LIT("");
    size_t i;
    if (!f || !oi_attr(f, "type", &type) || !OI_IS(type, "submit"))
        return jid;
    for (fld = f->child; fld; fld = fld->next)
        if (oi_eq(fld->name, "field") && oi_attr(fld, "var", &var)
            && OI_IS(var, "jid")
            && (v = oi_child(fld, OI_NS_XDATA, "value")) != NULL)
            jid = oi_bare(oi_trimws(oi_mkstr(v->text, v->ntext)));
    if (jid.n > 3071)
        return OI_LIT("");
    for (i = 0; i < jid.n; i++)
        if ((unsigned char)jid.p[i] <= ' ')
            return OI_LIT("");
    return jid;
}

/* forget-buddy (PROTOCOL.md 9.4), two stages: the first opens a session
** of the sender's full JID and asks for the buddy's JID; the second
** (cl: the session's client) forgets that buddy through oi_chg_forget,
** journaled and told as if it had gone, and ends the session. */
static int oi_cmd_forget(olpcidx *x, const oi_ctx *c, const oi_node *cmd,
                         oi_client *cl)
{
    char note[160];
    oi_str jid;
    size_t mark;
    unsigned long sid;
    int cond;
    if (!cl) {
        if (!(cl = oi_client_get(x, c->from, 1)))
            return OI_C_RESOURCE_CONSTRAINT;
        cl->cmd_sid = ++x->cmd_seq;
        cl->cmd_k = OI_CMD_FORGET;
        cl->cmd_at = x->now;
        mark = oi_cmd_begin(x, c, OI_CMD_FORGET, cl->cmd_sid, "executing");
        oi_outz(x, "<actions execute='complete'><complete/></actions>"
                "<x xmlns='" OI_NS_XDATA "' type='form'><title>Forget a "
                "buddy</title><instructions>The buddy leaves its "
                "activities and what it announced is dropped; its watchers "
                "are told it is gone.</instructions><field var='jid' "
                "type='jid-single' label='Buddy JID'><required/></field>"
                "</x>");
        oi_cmd_end(x, mark);
        return OI_C_NONE;
    }
    jid = oi_form_jid(oi_child(cmd, OI_NS_XDATA, "x"));
    if (jid.n == 0)
        return oi_cmd_error(x, c, cmd, OI_C_BAD_REQUEST, "bad-payload");
    sid = cl->cmd_sid;
    cl->cmd_sid = 0;
    cond = oi_chg_forget(x, jid);
    snprintf(note, sizeof note, "%.*s %s", jid.n > 100 ? 100 : (int)jid.n,
             jid.p, cond == OI_C_NONE ? "is forgotten"
                                      : "is not in the index");
    oi_log(x, OLPCIDX_LOG_INFO, "%.*s: forget-buddy: %s", (int)c->from.n,
           c->from.p, note);
    mark = oi_cmd_begin(x, c, OI_CMD_FORGET, sid, "completed");
    oi_cmd_note(x, cond == OI_C_NONE ? "info" : "error", note);
    oi_cmd_end(x, mark);
    if ((cl = oi_client_get(x, c->from, 0)) != NULL)
        oi_client_trim(x, cl);
    return OI_C_NONE;
}

/* Whether client cl holds an open session of command k with id sid. */
static int oi_cmd_session(const olpcidx *x, const oi_client *cl, int k,
                          oi_str sid)
{
    char id[24];
    if (!cl || !cl->cmd_sid || cl->cmd_k != k
        || x->now - cl->cmd_at >= OI_CMD_IDLE_MS)
        return 0;
    snprintf(id, sizeof id, "%lu", cl->cmd_sid);
    return oi_eq(sid, id);
}

/* An iq set <command/> from an admin (XEP-0050 2.4): the command its node
** names, with action execute (or none) and complete going forward, cancel
** ending its session, and the errors XEP-0050 names: an unknown node is
** item-not-found, an unknown session bad-sessionid, an unknown action
** malformed-action, prev and next (no command has such stages)
** bad-action. */
static int oi_command(olpcidx *x, const oi_ctx *c, const oi_node *cmd)
{
    static int (*const fns[OI_NCOMMANDS])(olpcidx *, const oi_ctx *,
                                          const oi_node *, oi_client *) = {
#define OI_CMD_FN_(id, node, name, fn) fn,
        OI_COMMANDS(OI_CMD_FN_)
#undef OI_CMD_FN_
    };
    oi_str node, sid, action;
    oi_client *cl = NULL;
    int k, has_sid;
    size_t mark;
    oi_attr(cmd, "node", &node);
    has_sid = oi_attr(cmd, "sessionid", &sid);
    oi_attr(cmd, "action", &action);
    if ((k = oi_cmd_find(node)) < 0)
        return OI_C_ITEM_NOT_FOUND;
    if (action.n && !OI_IS(action, "execute") && !OI_IS(action, "complete")
        && !OI_IS(action, "cancel") && !OI_IS(action, "next")
        && !OI_IS(action, "prev"))
        return oi_cmd_error(x, c, cmd, OI_C_BAD_REQUEST, "malformed-action");
    if (has_sid || OI_IS(action, "cancel")) {
        cl = oi_client_get(x, c->from, 0);
        if (!oi_cmd_session(x, cl, k, sid))
            return oi_cmd_error(x, c, cmd, OI_C_BAD_REQUEST,
                                "bad-sessionid");
    }
    if (OI_IS(action, "cancel")) {
        mark = oi_cmd_begin(x, c, k, cl->cmd_sid, "canceled");
        cl->cmd_sid = 0;
        oi_client_trim(x, cl);
        oi_cmd_end(x, mark);
        return OI_C_NONE;
    }
    if (OI_IS(action, "next") || OI_IS(action, "prev"))
        return oi_cmd_error(x, c, cmd, OI_C_BAD_REQUEST, "bad-action");
    return fns[k](x, c, cmd, cl);
}

/* ---- 13.8 The routes both dialects share ------------------------------ */

static const oi_route oi_common_routes[] = {
    { OI_ON_GET, OI_ANY, OI_Z(OI_NS_DINFO), OI_Z("query"), OI_G_ANYONE,
      oi_disco_info },
    { OI_ON_GET, OI_ANY, OI_Z(OI_NS_DITEMS), OI_Z("query"), OI_G_ANYONE,
      oi_disco_items },
    { OI_ON_GET, OI_ANY, OI_Z(OI_NS_VERSION), OI_Z("query"), OI_G_ANYONE,
      oi_version },
    { OI_ON_GET, OI_ANY, OI_Z(OI_NS_PING), OI_Z("ping"), OI_G_ANYONE,
      oi_pong },
    { OI_ON_SET, OI_ANY, OI_Z(OI_NS_COMMANDS), OI_Z("command"), OI_G_ADMIN,
      oi_command },
    { OI_ON_ANSWER, OI_ANY, OI_ANY, OI_ANY, OI_G_ANYONE, oi_answer },
    { OI_ON_BOUNCE, OI_ANY, OI_ANY, OI_ANY, OI_G_ANYONE, oi_bounce },
    { OI_ON_PRES, OI_Z(""), OI_ANY, OI_ANY, OI_G_DOMAIN, oi_pres_available },
    { OI_ON_PRES, OI_Z("unavailable"), OI_ANY, OI_ANY, OI_G_DOMAIN,
      oi_pres_unavailable },
    { 0, OI_ANY, OI_ANY, OI_ANY, 0, NULL }
};

/* ==== 14. The seed dialect ========================================== */

/*
** The 2007 protocol (PROTOCOL.md 3, 4): queries answered with paged
** result sets, each page becoming the client's current result set -- a
** watcher of the seed's kind, one per client and namespace -- which hears
** of changes to its items; and announcements, messages whose children say
** what their sender shares.
*/

/* ---- 14.1 Notifications (PROTOCOL.md 3.6) ----------------------------- */

/* A buddy's current activity is shown unless the index knows it to be
** private. */
static void oi_out_cur(olpcidx *x, const oi_buddy *b)
{
    const oi_act *a;
    if (!b->cur)
        return;
    a = oi_cur_id(b).n ? (const oi_act *)oi_map_get(&x->acts, oi_cur_id(b))
        : NULL;
    if (a && oi_act_private(a))
        return;
    oi_outz(x, "<activity xmlns='" OI_NS_CURACT "'");
    oi_out_attr(x, "id", oi_cur_id(b));
    if (oi_cur_room(b).n)
        oi_out_attr(x, "room", oi_cur_room(b));
    oi_outz(x, "/>");
}

/*
** Writes an event for a seed result set.  A client hears of an event
** once, however many of its items it reaches (its buddy result set and an
** activity of that buddy in the other), and never of its own doing.  The
** message carries the AMP rule: deliver now, or bounce.
*/
static void oi_seed_render(olpcidx *x, oi_watch *w, const oi_event *ev)
{
    oi_client *c = w->owner;
    const oi_act *a = ev->act;
    const oi_buddy *b = ev->buddy;
    size_t mark, at;
    if (ev->type == OI_EV_BUDDY_GONE || ev->type == OI_EV_BUDDY_NICK
        || ev->type == OI_EV_BUDDY_COMES || ev->type == OI_EV_ACT_OPENS)
        return;                         /* the seed has no word for these */
    if (c->stamp == ev->seq || oi_streq(c->jid, ev->cause))
        return;
    c->stamp = ev->seq;
    mark = oi_note_begin(x, c->jid);
    if (x->seed_seq == ev->seq) {       /* the same payload for everyone */
        oi_out(x, x->seed_payload.p, x->seed_payload.n);
        oi_note_end(x, mark);
        return;
    }
    at = x->out.n;
    switch (ev->type) {
    case OI_EV_ACT_PROPS:
        oi_outz(x, "<change xmlns='" OI_NS_ACT "'");
        oi_out_act_ids(x, oi_uid(&a->it), oi_room(a));
        oi_out(x, ">", 1);
        oi_out_props(x, &a->it, OI_LIT(OI_NS_APROPS), a);
        oi_outz(x, "</change>");
        break;
    case OI_EV_JOINED:
    case OI_EV_LEFT:
    case OI_EV_CLOSED:
        oi_outz(x, "<activity xmlns='" OI_NS_ACT "'");
        oi_out_act_ids(x, oi_uid(&a->it), oi_room(a));
        if (ev->type == OI_EV_JOINED) {
            oi_outz(x, "><joined");
            oi_out_attr(x, "jid", oi_uid(&b->it));
            oi_out(x, ">", 1);
            oi_out_props(x, &b->it, OI_LIT(OI_NS_BPROPS), NULL);
            oi_outz(x, "</joined>");
        } else if (ev->type == OI_EV_LEFT) {
            oi_outz(x, "><left");
            oi_out_attr(x, "jid", oi_uid(&b->it));
            oi_outz(x, "/>");
        } else {
            oi_outz(x, "><closed/>");
        }
        oi_outz(x, "</activity>");
        break;
    default:                            /* buddy properties or current */
        oi_outz(x, "<change xmlns='" OI_NS_BUDDY "'");
        oi_out_attr(x, "jid", oi_uid(&b->it));
        oi_out(x, ">", 1);
        if (ev->type == OI_EV_BUDDY_PROPS)
            oi_out_props(x, &b->it, OI_LIT(OI_NS_BPROPS), NULL);
        else if (b->cur)
            oi_out_cur(x, b);
        else
            oi_outz(x, "<activity xmlns='" OI_NS_CURACT "'/>");
        oi_outz(x, "</change>");
        break;
    }
    x->seed_payload.n = 0;              /* kept for the other watchers */
    if (!x->oerr && oi_buf_add(&x->mem, &x->seed_payload, x->out.p + at,
                               x->out.n - at) == OLPCIDX_OK)
        x->seed_seq = ev->seq;
    oi_note_end(x, mark);
}

/* A result set that empties is no result set. */
static const oi_wkind oi_seed_kind = {
    "result set", offsetof(olpcidx_stats, result_sets), sizeof(oi_watch),
    0, oi_seed_render, NULL, NULL
};

/* ---- 14.2 Queries and paging (PROTOCOL.md 3.1-3.5) -------------------- */


/* Reads a non-negative decimal <max>/<index>; -1 if malformed. */
static long oi_rsm_num(const oi_node *n)
{
    long v = 0;
    size_t i;
    if (n->ntext == 0 || n->ntext > 9)
        return -1;
    for (i = 0; i < n->ntext; i++) {
        if (n->text[i] < '0' || n->text[i] > '9')
            return -1;
        v = v * 10 + (n->text[i] - '0');
    }
    return v;
}

/* The first position in the sorted items whose UID is > uid (after) or
** >= uid (before): positional, so a vanished UID still has its place
** (XEP-0059 2.6). */
static size_t oi_rsm_pos(oi_item **v, size_t n, oi_str uid, int after)
{
    return oi_sorted_pos((void *const *)v, n, uid, after);
}

static void oi_out_act(olpcidx *x, const oi_act *a)
{
    size_t i;
    oi_outz(x, "<activity");
    oi_out_attr(x, "id", oi_uid(&a->it));
    oi_out_attr(x, "activity", oi_uid(&a->it));
    if (a->nroom)
        oi_out_attr(x, "room", oi_room(a));
    oi_out(x, ">", 1);
    oi_out_props(x, &a->it, OI_LIT(OI_NS_APROPS), NULL);
    for (i = 0; i < a->parts.n; i++)
        oi_out_member(x, (const oi_buddy *)OI_SV(&a->parts)[i]);
    oi_outz(x, "</activity>");
}

static void oi_out_buddy(olpcidx *x, const oi_buddy *b)
{
    oi_outz(x, "<buddy");
    oi_out_attr(x, "jid", oi_uid(&b->it));
    oi_out(x, ">", 1);
    oi_out_props(x, &b->it, OI_LIT(OI_NS_BPROPS), NULL);
    oi_out_cur(x, b);
    oi_outz(x, "</buddy>");
}

/*
** Before a page is written, the memory it will read is read once, level
** by level: the items; then their property arrays and an activity's
** participants; then the posting lists and the participants' own
** arrays; then theirs.  Writing meets each of these a few hundred
** instructions after the last, one cache miss at a time (a random page
** of 20 activities reads some 600 lines that are not in the cache); read
** a level at a time, the loads are independent of one another and the
** processor overlaps them.  C has no prefetch: plain reads whose sum is
** kept (x->touch) do the same.  Past OI_TOUCH_MAX it stops: it is only
** a hint.
*/
#define OI_TOUCH_MAX 256

static void oi_touch_page(olpcidx *x, oi_item *const *v, size_t n,
                          int buddies)
{
    const oi_item *it[OI_TOUCH_MAX];
    const oi_post *post[OI_TOUCH_MAX];
    size_t ni = 0, np = 0, from = 0, pfrom = 0, i, j;
    unsigned long sum = 0;
    int level;
    for (i = 0; i < n && ni < OI_TOUCH_MAX; i++)
        it[ni++] = v[i];
    for (i = 0; i < ni; i++)
        sum += it[i]->nprops + (unsigned char)oi_uid(it[i]).p[0];
    for (level = 0; level < 2; level++) {
        size_t to = ni;
        for (i = from; i < to; i++) {
            const oi_item *t = it[i];
            for (j = 0; j < t->nprops && np < OI_TOUCH_MAX; j++)
                post[np++] = t->props[j];
            if (!buddies && level == 0) {
                const oi_act *a = (const oi_act *)(const void *)t;
                for (j = 0; j < a->parts.n && ni < OI_TOUCH_MAX; j++)
                    it[ni++] = (const oi_item *)OI_SV(&a->parts)[j];
            }
        }
        for (i = to; i < ni; i++)
            sum += it[i]->nprops + (unsigned char)oi_uid(it[i]).p[0];
        for (i = pfrom; i < np; i++) {
            oi_str key = oi_post_keyof_p(post[i]);
            sum += (unsigned char)key.p[key.n - 1];
        }
        from = to;
        pfrom = np;
    }
    x->touch += sum;
}

/* Cuts the page the <set> asks for from the matches v (in UID order, as
** oi_collect gives them; maybe borrowed: only read), makes it the
** client's current result set and replies (XEP-0059 as PROTOCOL.md 3.4
** decides).  Costs a binary search and the page.  Returns the condition
** that refuses the request. */
static int oi_reply_page(olpcidx *x, const oi_ctx *ctx, const char *ns,
                         const oi_node *set, oi_item **v, size_t n,
                         int buddies)
{
    const oi_node *c;
    oi_client *cl;
    oi_watch *w;
    long max = 20, index = -1;
    size_t start = 0, end = n, i, mark;
    int before = 0, after = 0, empty_before = 0, k;
    oi_str before_uid = OI_LIT(""), after_uid = OI_LIT("");
    if (set) {
        for (c = set->child; c; c = c->next) {
            if (oi_eq(c->name, "max")) {
                if ((max = oi_rsm_num(c)) < 0)
                    return OI_C_BAD_REQUEST;
            } else if (oi_eq(c->name, "index")) {
                if ((index = oi_rsm_num(c)) < 0)
                    return OI_C_BAD_REQUEST;
            } else if (oi_eq(c->name, "after")) {
                after = 1;
                after_uid = oi_mkstr(c->text, c->ntext);
                if (c->ntext == 0)
                    return OI_C_BAD_REQUEST;
            } else if (oi_eq(c->name, "before")) {
                before = 1;
                before_uid = oi_mkstr(c->text, c->ntext);
                empty_before = c->ntext == 0;
            }
        }
    }
    if ((size_t)max > x->cfg.max_page)
        max = (long)x->cfg.max_page;
    if (index >= 0) {
        start = (size_t)index < n ? (size_t)index : n;
    } else if (after) {
        start = oi_rsm_pos(v, n, after_uid, 1);
    } else if (before) {
        end = empty_before ? n : oi_rsm_pos(v, n, before_uid, 0);
        start = end > (size_t)max ? end - (size_t)max : 0;
    }
    if (end - start > (size_t)max)
        end = start + (size_t)max;
    /* The page becomes the client's current result set (PROTOCOL.md 3.5):
    ** the seed watcher of this namespace, one per client. */
    if (!(cl = oi_client_get(x, ctx->from, 1)))
        return OI_C_RESOURCE_CONSTRAINT;
    k = buddies ? OI_K_BUDDY : OI_K_ACT;
    if ((!(w = oi_watch_find(cl, &oi_seed_kind, k))
         && !(w = oi_watch_new(x, cl, &oi_seed_kind, k)))
        || oi_watch_set(&x->mem, w, end > start ? v + start : NULL,
                        end - start) != OLPCIDX_OK) {
        oi_client_trim(x, cl);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    oi_client_trim(x, cl);
    oi_touch_page(x, v + start, end - start, buddies);
    mark = oi_out_begin(x);
    oi_out_head(x, "iq", "result", ctx->from, &ctx->id);
    oi_outz(x, "<query xmlns='");
    oi_outz(x, ns);
    oi_outz(x, "'>");
    for (i = start; i < end; i++) {
        if (buddies)
            oi_out_buddy(x, (const oi_buddy *)(void *)v[i]);
        else
            oi_out_act(x, (const oi_act *)(void *)v[i]);
    }
    if (n > 0 && (set || end - start < n)) {
        char num[24];
        oi_outz(x, "<set xmlns='" OI_NS_RSM "'>");
        if (end > start) {
            snprintf(num, sizeof num, "%lu", (unsigned long)start);
            oi_outz(x, "<first index='");
            oi_outz(x, num);
            oi_outz(x, "'>");
            oi_out_esc(x, oi_uid(v[start]), 0);
            oi_outz(x, "</first><last>");
            oi_out_esc(x, oi_uid(v[end - 1]), 0);
            oi_outz(x, "</last>");
        }
        snprintf(num, sizeof num, "%lu", (unsigned long)n);
        oi_outz(x, "<count>");
        oi_outz(x, num);
        oi_outz(x, "</count></set>");
    } else if (n == 0 && set && max == 0) {
        oi_outz(x, "<set xmlns='" OI_NS_RSM "'><count>0</count></set>");
    }
    oi_outz(x, "</query></iq>");
    oi_out_commit(x, mark, "query result");
    return OI_C_NONE;
}


typedef struct oi_acrit {       /* an activity query's criteria */
    oi_props props;
    const oi_node *q;           /* for its <buddy jid> children */
} oi_acrit;

static int oi_keep_act(olpcidx *x, const oi_item *it, const void *crit)
{
    const oi_act *a = (const oi_act *)(const void *)it;
    const oi_acrit *c = (const oi_acrit *)crit;
    const oi_node *b;
    oi_str jid;
    if (oi_act_private(a) || !oi_item_match(it, &c->props))
        return 0;
    for (b = c->q->child; b; b = b->next) {
        const oi_buddy *bd;
        if (!oi_eq(b->name, "buddy") || !oi_attr(b, "jid", &jid))
            continue;
        bd = (const oi_buddy *)oi_map_get(&x->buddies, oi_bare(jid));
        if (!bd || !oi_svec_has(&a->parts, bd))
            return 0;
    }
    return 1;
}

/* The activities matching participants-only criteria: they are among
** the activities of each participant named, so those of the one in the
** fewest are read (at most max-activities), then sorted.  Returns their
** number, or -1 when out of memory. */
static long oi_acts_of_parts(olpcidx *x, const oi_acrit *c, oi_item ***out)
{
    const oi_node *b;
    const oi_buddy *least = NULL;
    oi_str jid;
    size_t i;
    long n = 0;
    oi_item **v;
    *out = NULL;
    for (b = c->q->child; b; b = b->next) {
        const oi_buddy *bd;
        if (!oi_eq(b->name, "buddy") || !oi_attr(b, "jid", &jid))
            continue;
        if (!(bd = (const oi_buddy *)oi_map_get(&x->buddies, oi_bare(jid))))
            return 0;                   /* in no activity at all */
        if (!least || bd->acts.n < least->acts.n)
            least = bd;
    }
    if (!least || least->acts.n == 0)
        return 0;
    v = (oi_item **)oi_arena_alloc(&x->mem, &x->arena,
                                   least->acts.n * sizeof *v);
    if (!v)
        return -1;
    for (i = 0; i < least->acts.n; i++) {
        oi_act *a = (oi_act *)OI_SV(&least->acts)[i];
        if (oi_keep_act(x, &a->it, c))
            v[n++] = &a->it;
    }
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, oi_item_cmp);
    *out = v;
    return n;
}

/* <query xmlns=A><activity ...criteria/></query> (PROTOCOL.md 3.1) */
static int oi_query_acts(olpcidx *x, const oi_ctx *ctx, const oi_node *q)
{
    const oi_node *crit = oi_child(q, NULL, "activity");
    const oi_node *set = oi_child(q, OI_NS_RSM, "set");
    oi_acrit c;
    oi_str aid;
    oi_item **v = NULL;
    long n;
    int err;
    if (!crit)
        return OI_C_BAD_REQUEST;
    if ((err = oi_props_of(x, crit, OI_NS_APROPS, &c.props)) != OI_C_NONE)
        return err;
    c.q = crit;
    if (oi_attr(crit, "id", &aid) || oi_attr(crit, "activity", &aid)) {
        oi_act *a = (oi_act *)oi_map_get(&x->acts, aid);
        v = (oi_item **)oi_arena_alloc(&x->mem, &x->arena, sizeof *v);
        if (!v)
            return OI_C_RESOURCE_CONSTRAINT;
        n = a && oi_keep_act(x, &a->it, &c) ? 1 : 0;
        if (n)
            v[0] = &a->it;
    } else if (c.props.n == 0 && oi_child(crit, NULL, "buddy")) {
        n = oi_acts_of_parts(x, &c, &v);        /* participants only */
        if (n < 0)
            return OI_C_RESOURCE_CONSTRAINT;
    } else {
        n = oi_collect(x, OI_K_ACT, &c.props, NULL, 0, oi_keep_act, &c,
                       !oi_child(crit, NULL, "buddy"), &v);
        if (n < 0)
            return OI_C_RESOURCE_CONSTRAINT;
    }
    return oi_reply_page(x, ctx, OI_NS_ACT, set, v, (size_t)n, 0);
}

typedef struct oi_bcrit {       /* a buddy query's criteria */
    oi_props props;
    oi_str alias;               /* part of the alias, any case or accent */
    char *fold;                 /* it folded (arena) */
    size_t nfold;
} oi_bcrit;


static int oi_keep_buddy(olpcidx *x, const oi_item *it, const void *crit)
{
    const oi_bcrit *c = (const oi_bcrit *)crit;
    (void)x;
    return oi_item_match(it, &c->props)
        && (!c->nfold || oi_alias_has(oi_buddy_alias((const oi_buddy *)
                                                     (const void *)it),
                                      c->fold, c->nfold));
}

/* <query xmlns=B> with <buddy jid/> children, or one <buddy> holding
** properties and/or an alias; or the seed's bare <buddy xmlns=B jid/>
** (PROTOCOL.md 3.2). */
static int oi_query_buddies(olpcidx *x, const oi_ctx *ctx, const oi_node *q)
{
    const oi_node *set = oi_child(q, OI_NS_RSM, "set"), *b;
    oi_bcrit c;
    oi_str jid;
    oi_item **v = NULL;
    size_t k = 0;
    long n = 0;
    int err;
    int bare_form = oi_eq(q->name, "buddy");
    for (b = bare_form ? q : q->child; b; b = bare_form ? NULL : b->next)
        if (oi_eq(b->name, "buddy") && oi_attr(b, "jid", &jid))
            k++;
    if (k > 0) {                        /* lookup by JID */
        v = (oi_item **)oi_arena_alloc(&x->mem, &x->arena, k * sizeof *v);
        if (!v)
            return OI_C_RESOURCE_CONSTRAINT;
        for (b = bare_form ? q : q->child; b; b = bare_form ? NULL : b->next) {
            oi_buddy *bd;
            size_t i;
            if (!oi_eq(b->name, "buddy") || !oi_attr(b, "jid", &jid))
                continue;
            bd = (oi_buddy *)oi_map_get(&x->buddies, oi_bare(jid));
            for (i = 0; bd && i < (size_t)n; i++)
                if (v[i] == &bd->it)
                    bd = NULL;          /* asked twice */
            if (bd)
                v[n++] = &bd->it;
        }
        if (n > 1)
            qsort(v, (size_t)n, sizeof *v, oi_item_cmp);
    } else {
        b = oi_child(q, NULL, "buddy");
        if (!b)
            return OI_C_BAD_REQUEST;
        if ((err = oi_props_of(x, b, OI_NS_BPROPS, &c.props)) != OI_C_NONE)
            return err;
        oi_attr(b, "alias", &c.alias);
        c.fold = NULL;
        if (c.alias.n && !(c.fold = (char *)oi_arena_alloc(&x->mem,
                                                          &x->arena,
                                                          c.alias.n)))
            return OI_C_RESOURCE_CONSTRAINT;
        c.nfold = c.alias.n ? oi_fold(c.alias, c.fold, c.alias.n) : 0;
        n = oi_collect(x, OI_K_BUDDY, &c.props, c.fold, c.nfold,
                       oi_keep_buddy, &c, c.alias.n == 0, &v);
        if (n < 0)
            return OI_C_RESOURCE_CONSTRAINT;
    }
    return oi_reply_page(x, ctx, OI_NS_BUDDY, set, v, (size_t)n, 1);
}


/* ---- 14.3 Announcements (PROTOCOL.md 4) ------------------------------- */

/* <close xmlns=A|B/>: the result set of that namespace goes
** (PROTOCOL.md 3.5). */
static int oi_seed_close(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    oi_client *cl = oi_client_get(x, c->from, 0);
    oi_watch *w;
    if (cl) {
        w = oi_watch_find(cl, &oi_seed_kind,
                          oi_eq(p->ns, OI_NS_ACT) ? OI_K_ACT : OI_K_BUDDY);
        if (w)
            oi_watch_free(x, w);
        oi_client_trim(x, cl);
    }
    return OI_C_NONE;
}

/* <properties xmlns=BP>: the sender's own properties (PROTOCOL.md 4.1). */
static int oi_seed_buddy_props(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    oi_props ps;
    int err = oi_props_parse(x, p, &ps);
    return err ? err : oi_chg_buddy_props(x, c->bare, &ps);
}

/* <change xmlns=B [jid=own]><properties xmlns=BP>: the same. */
static int oi_seed_buddy_change(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    const oi_node *w;
    oi_str jid;
    if (oi_attr(p, "jid", &jid) && !oi_streq(jid, c->bare))
        return OI_C_FORBIDDEN;
    if (!(w = oi_child(p, OI_NS_BPROPS, "properties")))
        return OI_C_BAD_REQUEST;
    return oi_seed_buddy_props(x, c, w);
}

/* <activity xmlns=CA id|type room/>: the sender's current activity
** (PROTOCOL.md 4.2). */
static int oi_seed_current(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    oi_str id, room;
    if (!oi_attr(p, "id", &id))
        oi_attr(p, "type", &id);
    oi_attr(p, "room", &room);
    return oi_chg_current(x, c->bare, id, room);
}

/* The activity an announcement names by id (or the seed's activity
** attribute) and/or room. */
static void oi_seed_ids(const oi_node *n, oi_str *id, oi_str *room)
{
    if (!oi_attr(n, "id", id))
        oi_attr(n, "activity", id);
    oi_attr(n, "room", room);
}

/* Activity properties in wrapper, the activity named on n or on the
** wrapper (PROTOCOL.md 4.3). */
static int oi_seed_act_props_in(olpcidx *x, const oi_ctx *c, const oi_node *n,
                                const oi_node *wrapper)
{
    oi_str id, room;
    oi_props ps;
    int err;
    oi_seed_ids(n, &id, &room);
    if (id.n == 0 && wrapper != n)
        oi_seed_ids(wrapper, &id, &room);
    if (id.n == 0)
        return OI_C_BAD_REQUEST;
    if ((err = oi_props_parse(x, wrapper, &ps)) != OI_C_NONE)
        return err;
    return oi_chg_act_props(x, c->bare, id, room, &ps);
}

/* <properties xmlns=AP activity room> */
static int oi_seed_act_props(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    return oi_seed_act_props_in(x, c, p, p);
}

/* <change xmlns=A activity room><properties xmlns=AP> */
static int oi_seed_act_change(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    const oi_node *w = oi_child(p, OI_NS_APROPS, "properties");
    return w ? oi_seed_act_props_in(x, c, p, w) : OI_C_BAD_REQUEST;
}

/* <activity xmlns=A id|activity room><joined/> or <left/></activity>:
** for the sender's bare JID only (PROTOCOL.md 4.4). */
static int oi_seed_member(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    oi_str id, room;
    int joined = oi_child(p, NULL, "joined") != NULL;
    if (!joined && !oi_child(p, NULL, "left"))
        return OI_C_BAD_REQUEST;
    oi_seed_ids(p, &id, &room);
    if (id.n == 0 && room.n == 0)
        return OI_C_BAD_REQUEST;
    return joined ? oi_chg_join(x, c->bare, c->from, id, room)
                  : oi_chg_leave(x, c->bare, id, room);
}

/* Anything else in the seed's namespaces: nothing to do, but from a
** domain that is not allowed it is refused like the rest. */
static int oi_seed_other(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    (void)x;
    (void)c;
    (void)p;
    return OI_C_NONE;
}

/* ---- 14.4 The seed's routes ------------------------------------------- */

#define OI_ON_IQ (OI_ON_GET | OI_ON_SET)  /* the seed accepts set too */

static const oi_route oi_seed_routes[] = {
    { OI_ON_IQ, OI_ANY, OI_Z(OI_NS_ACT), OI_Z("query"), OI_G_DOMAIN,
      oi_query_acts },
    { OI_ON_IQ, OI_ANY, OI_Z(OI_NS_BUDDY), OI_Z("query"), OI_G_DOMAIN,
      oi_query_buddies },
    { OI_ON_IQ, OI_ANY, OI_Z(OI_NS_BUDDY), OI_Z("buddy"), OI_G_DOMAIN,
      oi_query_buddies },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_ACT), OI_Z("close"), OI_G_DOMAIN,
      oi_seed_close },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_BUDDY), OI_Z("close"), OI_G_DOMAIN,
      oi_seed_close },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_BPROPS), OI_Z("properties"), OI_G_DOMAIN,
      oi_seed_buddy_props },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_BUDDY), OI_Z("change"), OI_G_DOMAIN,
      oi_seed_buddy_change },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_CURACT), OI_Z("activity"), OI_G_DOMAIN,
      oi_seed_current },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_APROPS), OI_Z("properties"), OI_G_DOMAIN,
      oi_seed_act_props },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_ACT), OI_Z("change"), OI_G_DOMAIN,
      oi_seed_act_change },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_ACT), OI_Z("activity"), OI_G_DOMAIN,
      oi_seed_member },
    /* the rest of the seed's namespaces: refused from other domains */
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_ACT), OI_ANY, OI_G_DOMAIN, oi_seed_other },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_BUDDY), OI_ANY, OI_G_DOMAIN,
      oi_seed_other },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_APROPS), OI_ANY, OI_G_DOMAIN,
      oi_seed_other },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_BPROPS), OI_ANY, OI_G_DOMAIN,
      oi_seed_other },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_CURACT), OI_ANY, OI_G_DOMAIN,
      oi_seed_other },
    { 0, OI_ANY, OI_ANY, OI_ANY, 0, NULL }
};

/* ==== 15. The Gadget dialect ========================================= */

/*
** What the Sugar client speaks (PROTOCOL.md 6): live views over the same
** index, publishing by presence subscription, buddy data from PEP and
** activities from the MUC rooms the component is invited into.
**
** A view is a watcher of its own kind (section 9), keyed by its client's
** full JID and the client's id.  It holds at most size members, the
** first matches in UID order or a random sample; while it holds fewer it
** is open, so that every item that starts to match is offered to it.
** Views live until closed, or their client goes; they are not persisted.
** The roster (who publishes) and PEP nicks are, as ROSTER records.
*/

/* ---- 15.1 Views (PROTOCOL.md 6.7-6.9) -------------------------------- */

typedef struct oi_view {
    oi_watch w;                 /* first: its members, of kind w.items */
    char id[10];                /* the client's id: 1 to 9 digits */
    size_t size;                /* the most members it holds */
    oi_props props;             /* criteria: properties (owned) */
    char *alias;                /* criteria: the alias, folded (owned) */
    size_t nalias;
    char *parts;                /* criteria: participants' bare JIDs, each
                                ** NUL-ended (owned) */
    size_t nparts, partsz;
} oi_view;

static int oi_view_random(const oi_view *v)
{
    return v->props.n == 0 && !v->alias && v->nparts == 0;
}

static const oi_wkind oi_view_kind;    /* below, after its functions */

/* Whether item it may be a member of v (PROTOCOL.md 6.7): a candidate of
** its kind that meets every criterion. */
static int oi_view_matches(olpcidx *x, const oi_view *v, const oi_item *it)
{
    if (!oi_item_match(it, &v->props))
        return 0;
    if (v->w.items == OI_K_BUDDY) {
        const oi_buddy *b = (const oi_buddy *)(const void *)it;
        return oi_buddy_listed(x, b)
            && !oi_streq(oi_uid(&b->it), oi_bare(v->w.owner->jid))
            && (!v->alias || oi_alias_has(oi_buddy_alias(b), v->alias,
                                          v->nalias));
    } else {
        const oi_act *a = (const oi_act *)(const void *)it;
        const char *p = v->parts;
        size_t i;
        if (oi_act_private(a) || a->nroom == 0)
            return 0;
        for (i = 0; i < v->nparts; i++, p += strlen(p) + 1) {
            const oi_buddy *b = (const oi_buddy *)oi_map_get(&x->buddies,
                                                             oi_zstr(p));
            if (!b || !oi_svec_has(&a->parts, b))
                return 0;
        }
        return 1;
    }
}

static int oi_view_keep(olpcidx *x, const oi_item *it, const void *v)
{
    return oi_view_matches(x, (const oi_view *)v, it);
}

/* The matching items not in v but exclude, in an arena array sorted by
** UID; -1 when out of memory. */
static long oi_view_candidates(olpcidx *x, const oi_view *v,
                               const oi_item *exclude, oi_item ***out)
{
    long n, i, k = 0;
    n = oi_collect(x, v->w.items, &v->props, v->alias, v->nalias,
                   oi_view_keep, v, 0, out);
    for (i = 0; i < n; i++)
        if ((*out)[i] != exclude && !oi_vec_has(&v->w.members, (*out)[i]))
            (*out)[k++] = (*out)[i];
    return n < 0 ? n : k;
}

/* A random number below n (n > 0). */
static size_t oi_random_below(olpcidx *x, size_t n)
{
    return (size_t)(oi_splitmix64(&x->rng) % n);
}

/* Chooses at most want of the n sorted items v: the first ones, or (a
** random view) a uniform sample, moved to the front in UID order.
** Returns how many. */
static size_t oi_view_choose(olpcidx *x, const oi_view *view, oi_item **v,
                             size_t n, size_t want)
{
    size_t i;
    if (n <= want)
        return n;
    if (oi_view_random(view)) {
        for (i = 0; i < want; i++) {    /* partial Fisher-Yates */
            size_t j = i + oi_random_below(x, n - i);
            oi_item *t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        qsort(v, want, sizeof *v, oi_item_cmp);
    }
    return want;
}

/* Writes <activity id room> with its properties and participants. */
static void oi_view_out_act(olpcidx *x, const oi_act *a)
{
    size_t i;
    oi_outz(x, "<activity");
    oi_out_attr(x, "id", oi_uid(&a->it));
    oi_out_attr(x, "room", oi_room(a));
    oi_out(x, ">", 1);
    oi_out_props(x, &a->it, OI_LIT(OI_NS_APROPS), NULL);
    for (i = 0; i < a->parts.n; i++)
        oi_out_member(x, (const oi_buddy *)OI_SV(&a->parts)[i]);
    oi_outz(x, "</activity>");
}

static void oi_view_out_item(olpcidx *x, const oi_view *v, const oi_item *it)
{
    if (v->w.items == OI_K_BUDDY)
        oi_out_member(x, (const oi_buddy *)(const void *)it);
    else
        oi_view_out_act(x, (const oi_act *)(const void *)it);
}

/* Opens <what xmlns=B|A id=ID> of view v. */
static void oi_view_out_open(olpcidx *x, const oi_view *v, const char *what)
{
    oi_out(x, "<", 1);
    oi_outz(x, what);
    oi_out_attr(x, "xmlns", oi_zstr(v->w.items == OI_K_BUDDY ? OI_NS_BUDDY
                                                            : OI_NS_ACT));
    oi_out_attr(x, "id", oi_zstr(v->id));
}

/* it joins v, and the client is told (<added>). */
static void oi_view_add(olpcidx *x, oi_view *v, oi_item *it)
{
    size_t mark;
    if (oi_vec_reserve(&x->mem, &v->w.members, 1) != OLPCIDX_OK
        || oi_item_watch_reserve(&x->mem, it) != OLPCIDX_OK) {
        oi_log(x, OLPCIDX_LOG_WARN, "view %s of %.*s: no memory to add a "
               "member", v->id, (int)v->w.owner->jid.n, v->w.owner->jid.p);
        return;
    }
    oi_vec_push(&v->w.members, it);
    oi_vec_push(it->watch, &v->w);
    if (v->w.members.n >= v->size)
        oi_watch_set_open(x, &v->w, 0);
    mark = oi_note_begin(x, v->w.owner->jid);
    oi_view_out_open(x, v, "added");
    oi_out(x, ">", 1);
    oi_view_out_item(x, v, it);
    oi_outz(x, "</added>");
    oi_note_end(x, mark);
}

/* Adds matching items until v is full or none is left (PROTOCOL.md 6.8,
** fill-up); exclude is an item on its way out. */
static void oi_view_fill(olpcidx *x, oi_view *v, const oi_item *exclude)
{
    oi_item **c;
    long n;
    size_t k, i;
    if (v->w.members.n >= v->size)
        return;
    n = oi_view_candidates(x, v, exclude, &c);
    if (n <= 0)
        return;
    k = oi_view_choose(x, v, c, (size_t)n, v->size - v->w.members.n);
    for (i = 0; i < k; i++)
        oi_view_add(x, v, c[i]);
}

/* it leaves v, and the client is told (<removed>); v fills up again. */
static void oi_view_remove(olpcidx *x, oi_view *v, oi_item *it)
{
    size_t mark;
    oi_vec_drop(&v->w.members, it);
    if (it->watch)                      /* NULL: it left every watcher */
        oi_vec_drop(it->watch, &v->w);
    oi_watch_set_open(x, &v->w, 1);
    mark = oi_note_begin(x, v->w.owner->jid);
    oi_view_out_open(x, v, "removed");
    oi_out(x, ">", 1);
    if (v->w.items == OI_K_BUDDY) {
        oi_outz(x, "<buddy");
        oi_out_attr(x, "jid", oi_uid(it));
        oi_outz(x, "/>");
    } else {
        oi_outz(x, "<activity");
        oi_out_attr(x, "id", oi_uid(it));
        oi_out_attr(x, "room", oi_room((const oi_act *)(const void *)it));
        oi_outz(x, "/>");
    }
    oi_outz(x, "</removed>");
    oi_note_end(x, mark);
    oi_view_fill(x, v, it);
}

/* Whether activity a is in one of client c's activity views. */
static int oi_client_sees(const oi_client *c, const oi_act *a)
{
    const oi_watch *w;
    for (w = c->watches; w; w = w->next)
        if (w->kind == &oi_view_kind && w->items == OI_K_ACT
            && oi_vec_has(&w->members, a))
            return 1;
    return 0;
}

/* A buddy change for view v (PROTOCOL.md 6.8): its properties, or its
** current activity as the client may see it. */
static void oi_view_note_buddy(olpcidx *x, oi_view *v, const oi_buddy *b,
                               int props)
{
    size_t mark = oi_note_begin(x, v->w.owner->jid);
    const oi_act *a;
    oi_outz(x, "<change xmlns='" OI_NS_BUDDY "'");
    oi_out_attr(x, "jid", oi_uid(&b->it));
    oi_out_attr(x, "id", oi_zstr(v->id));
    oi_out(x, ">", 1);
    if (props) {
        oi_out_props(x, &b->it, OI_LIT(OI_NS_BPROPS), NULL);
    } else {
        a = oi_cur_id(b).n ? (const oi_act *)oi_map_get(&x->acts,
                                                        oi_cur_id(b))
            : oi_cur_room(b).n ? (const oi_act *)oi_map_get(&x->rooms,
                                                            oi_cur_room(b))
            : NULL;
        oi_outz(x, "<activity xmlns='" OI_NS_CURACT "'");
        if (a && !oi_act_private(a) && oi_client_sees(v->w.owner, a)) {
            oi_out_attr(x, "id", oi_uid(&a->it));
            oi_out_attr(x, "room", oi_room(a));
        } else {
            oi_outz(x, " id='' room=''");
        }
        oi_outz(x, "/>");
    }
    oi_outz(x, "</change>");
    oi_note_end(x, mark);
}

/* An event for view v (PROTOCOL.md 6.8). */
static void oi_view_render(olpcidx *x, oi_watch *w, const oi_event *ev)
{
    oi_view *v = (oi_view *)(void *)w;
    oi_buddy *b = (oi_buddy *)(size_t)ev->buddy;
    oi_act *a = (oi_act *)(size_t)ev->act;
    size_t mark;
    if (oi_streq(w->owner->jid, ev->cause))
        return;                         /* never of its own doing */
    if (w->items == OI_K_BUDDY || !a) { /* a buddy: member or participant */
        if (!b || ev->type == OI_EV_BUDDY_COMES)
            return;
        if (w->items == OI_K_BUDDY && ev->type != OI_EV_BUDDY_CUR
            && (ev->type == OI_EV_BUDDY_GONE
                || !oi_view_matches(x, v, &b->it)))
            oi_view_remove(x, v, &b->it);
        else if (ev->type == OI_EV_BUDDY_PROPS
                 || ev->type == OI_EV_BUDDY_CUR)
            oi_view_note_buddy(x, v, b, ev->type == OI_EV_BUDDY_PROPS);
        return;
    }
    if (ev->type == OI_EV_CLOSED || !oi_view_matches(x, v, &a->it)) {
        oi_view_remove(x, v, &a->it);
        return;
    }
    if (ev->type != OI_EV_ACT_PROPS && ev->type != OI_EV_JOINED
        && ev->type != OI_EV_LEFT)
        return;
    mark = oi_note_begin(x, w->owner->jid);
    if (ev->type == OI_EV_ACT_PROPS) {
        oi_view_out_open(x, v, "change");
        oi_out_act_ids(x, oi_uid(&a->it), oi_room(a));
        oi_out(x, ">", 1);
        oi_out_props(x, &a->it, OI_LIT(OI_NS_APROPS), a);
        oi_outz(x, "</change>");
    } else {
        oi_outz(x, "<activity xmlns='" OI_NS_ACT "'");
        oi_out_attr(x, "room", oi_room(a));
        oi_out_attr(x, "view", oi_zstr(v->id));
        if (ev->type == OI_EV_JOINED) {
            oi_outz(x, "><joined");
            oi_out_attr(x, "jid", oi_uid(&b->it));
            oi_out(x, ">", 1);
            oi_out_props(x, &b->it, OI_LIT(OI_NS_BPROPS), NULL);
            oi_outz(x, "</joined></activity>");
        } else {
            oi_outz(x, "><left");
            oi_out_attr(x, "jid", oi_uid(&b->it));
            oi_outz(x, "/></activity>");
        }
    }
    oi_note_end(x, mark);
}

/* An item that may start to match open view w. */
static void oi_view_offer(olpcidx *x, oi_watch *w, const oi_event *ev)
{
    oi_view *v = (oi_view *)(void *)w;
    oi_item *it = w->items == OI_K_BUDDY
                  ? (ev->buddy ? &((oi_buddy *)(size_t)ev->buddy)->it : NULL)
                  : (ev->act ? &((oi_act *)(size_t)ev->act)->it : NULL);
    if (!it || oi_streq(w->owner->jid, ev->cause)
        || w->members.n >= v->size || oi_vec_has(&w->members, it)
        || !oi_view_matches(x, v, it))
        return;
    oi_view_add(x, v, it);
}

static void oi_view_drop(olpcidx *x, oi_watch *w)
{
    oi_view *v = (oi_view *)(void *)w;
    oi_props_free(&x->mem, &v->props);
    if (v->alias)
        oi_free(&x->mem, v->alias, v->nalias + 1);
    if (v->parts)
        oi_free(&x->mem, v->parts, v->partsz);
}

/* A view lives empty: it waits for matches. */
static const oi_wkind oi_view_kind = {
    "view", offsetof(olpcidx_stats, views), sizeof(oi_view), 1,
    oi_view_render, oi_view_offer, oi_view_drop
};

/* The view with that id among client c's, or NULL. */
static oi_view *oi_view_find(oi_client *c, oi_str id)
{
    oi_watch *w;
    for (w = c->watches; w; w = w->next)
        if (w->kind == &oi_view_kind
            && oi_streq(oi_zstr(((oi_view *)(void *)w)->id), id))
            return (oi_view *)(void *)w;
    return NULL;
}

/* A decimal of 1 to maxdigits digits, clamped to max (at most
** LONG_MAX).  Returns -1 if it is not one. */
static long oi_view_num(oi_str s, size_t max, size_t maxdigits)
{
    size_t i, v = 0;
    if (s.n == 0 || s.n > maxdigits)
        return -1;
    if (max > (size_t)LONG_MAX)
        max = (size_t)LONG_MAX;
    for (i = 0; i < s.n; i++) {
        size_t d = (size_t)(s.p[i] - '0');
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v > (max - d) / 10 ? max : v * 10 + d;
    }
    return (long)v;
}

/* <view xmlns=B|A id size> (PROTOCOL.md 6.7).  Errors carry no payload:
** the route says so. */
static int oi_view_request(olpcidx *x, const oi_ctx *c, const oi_node *q)
{
    int items = oi_eq(q->ns, OI_NS_BUDDY) ? OI_K_BUDDY : OI_K_ACT;
    const oi_node *crit = q->child, *p;
    oi_view tmp, *v, *old;
    oi_client *cl;
    oi_str id, size, alias = OI_LIT("");
    oi_item **cand;
    size_t nv = 0, k, i, nparts = 0, partsz = 0, mark;
    long n, sz;
    int cond;
    oi_watch *w;
    char *pp, num[24];
    if (!oi_attr(q, "id", &id) || oi_view_num(id, 999999999, 9) < 0
        || !oi_attr(q, "size", &size)
        || (sz = oi_view_num(size, x->cfg.max_page, 64)) <= 0
        || !crit || crit->next || !oi_streq(crit->ns, q->ns)
        || !oi_eq(crit->name, items == OI_K_BUDDY ? "buddy" : "activity"))
        return OI_C_BAD_REQUEST;
    memset(&tmp, 0, sizeof tmp);
    cond = oi_props_of(x, crit, items == OI_K_BUDDY ? OI_NS_BPROPS
                       : OI_NS_APROPS, &tmp.props);
    if (cond != OI_C_NONE)
        return cond;
    if (items == OI_K_BUDDY && oi_attr(crit, "alias", &alias) && alias.n) {
        if (!(tmp.alias = (char *)oi_arena_alloc(&x->mem, &x->arena,
                                                 alias.n)))
            return OI_C_RESOURCE_CONSTRAINT;
        tmp.nalias = oi_fold(alias, tmp.alias, alias.n);
    }
    for (p = crit->child; p && items == OI_K_ACT; p = p->next) {
        oi_str j;
        if (oi_eq(p->name, "buddy") && oi_attr(p, "jid", &j) && j.n) {
            nparts++;
            partsz += oi_bare(j).n + 1;
        }
    }
    if (partsz) {
        if (!(pp = tmp.parts = (char *)oi_arena_alloc(&x->mem, &x->arena,
                                                      partsz)))
            return OI_C_RESOURCE_CONSTRAINT;
        for (p = crit->child; p; p = p->next) {
            oi_str j;
            if (!oi_eq(p->name, "buddy") || !oi_attr(p, "jid", &j) || !j.n)
                continue;
            j = oi_bare(j);
            memcpy(pp, j.p, j.n);
            pp[j.n] = '\0';
            pp += j.n + 1;
        }
        tmp.nparts = nparts;
        tmp.partsz = partsz;
    }
    if (!(cl = oi_client_get(x, c->from, 1)))
        return OI_C_RESOURCE_CONSTRAINT;
    old = oi_view_find(cl, id);
    for (w = cl->watches; w; w = w->next)
        nv += w->kind == &oi_view_kind;
    if (!old && nv >= x->cfg.max_views) {
        oi_log(x, OLPCIDX_LOG_INFO, "%.*s holds %lu views, the most it may: "
               "view %.*s refused", (int)c->from.n, c->from.p,
               (unsigned long)nv, (int)id.n, id.p);
        oi_client_trim(x, cl);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    tmp.w.items = items;
    tmp.w.owner = cl;
    tmp.size = (size_t)sz;
    n = oi_view_candidates(x, &tmp, NULL, &cand);
    if (n < 0 || oi_watch_reserve(x, items) != OLPCIDX_OK
        || !(v = (oi_view *)(void *)oi_watch_new(x, cl, &oi_view_kind,
                                                 items))) {
        oi_client_trim(x, cl);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    k = oi_view_choose(x, &tmp, cand, (size_t)n, (size_t)sz);
    memcpy(v->id, id.p, id.n);
    v->size = (size_t)sz;
    if (tmp.alias && (v->alias = (char *)oi_realloc(&x->mem, NULL, 0,
                                                    tmp.nalias + 1)) != NULL)
        memcpy(v->alias, tmp.alias, v->nalias = tmp.nalias);
    if (tmp.parts && (v->parts = (char *)oi_realloc(&x->mem, NULL, 0,
                                                    partsz)) != NULL) {
        memcpy(v->parts, tmp.parts, v->partsz = partsz);
        v->nparts = nparts;
    }
    if ((tmp.alias && !v->alias) || (tmp.parts && !v->parts)
        || oi_props_own(&x->mem, &tmp.props, &v->props) != OLPCIDX_OK
        || oi_watch_set(&x->mem, &v->w, cand, k) != OLPCIDX_OK) {
        oi_watch_free(x, &v->w);
        oi_client_trim(x, cl);
        return OI_C_RESOURCE_CONSTRAINT;
    }
    if (old)                            /* a live id: replaced (6.7) */
        oi_watch_free(x, &old->w);
    oi_watch_set_open(x, &v->w, k < v->size);
    mark = oi_out_begin(x);
    oi_out_head(x, "iq", "result", c->from, &c->id);
    oi_view_out_open(x, v, "view");
    snprintf(num, sizeof num, "%lu", (unsigned long)v->size);
    oi_out_attr(x, "size", oi_zstr(num));
    if (k == 0) {
        oi_outz(x, "/></iq>");
    } else {
        oi_out(x, ">", 1);
        for (i = 0; i < k; i++)
            oi_view_out_item(x, v, cand[i]);
        oi_outz(x, "</view></iq>");
    }
    oi_out_commit(x, mark, "view reply");
    return OI_C_NONE;
}

/* <close xmlns=B|A id/>: that view goes, an unknown id is ignored
** (PROTOCOL.md 6.9); without id it is the seed's close. */
static int oi_view_close(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    oi_client *cl;
    oi_view *v;
    oi_str id;
    if (!oi_attr(p, "id", &id))
        return OI_PASS;
    if ((cl = oi_client_get(x, c->from, 0)) != NULL) {
        if ((v = oi_view_find(cl, id)) != NULL)
            oi_watch_free(x, &v->w);
        oi_client_trim(x, cl);
    }
    return OI_C_NONE;
}
/* ---- 15.2 Publishing, and the presence the component sends ----------- */

/* Presence from the bare component JID to bare JID to: available with
** caps (type NULL: PROTOCOL.md 6.3 says when), or of type type. */
static void oi_send_presence(olpcidx *x, oi_str to, const char *type)
{
    size_t mark = oi_out_begin(x);
    oi_out_head(x, "presence", type, to, NULL);
    if (!type) {
        oi_outz(x, "<c xmlns='" OI_NS_CAPS "' hash='sha-1' node='"
                OI_CAPS_NODE "'");
        oi_out_attr(x, "ver", oi_zstr(x->caps_ver));
        oi_outz(x, "/>");
    }
    oi_outz(x, "</presence>");
    oi_out_commit(x, mark, "presence");
}

/* The PEP nodes the component reads (PROTOCOL.md 6.4), in the order of
** the digit in the ids of its fetches. */
static const char *const oi_pep_nodes[] = {
    OI_NS_BPROPS, OI_NS_CURACT, OI_NS_ACTS, OI_NS_APROPS, OI_NS_NICK
};

#define OI_NPEP (sizeof oi_pep_nodes / sizeof oi_pep_nodes[0])

/* Asks the buddy's server for each PEP node of bare JID to. */
static void oi_pep_fetch(olpcidx *x, oi_str to)
{
    size_t i, mark;
    char id[8];
    for (i = 0; i < OI_NPEP; i++) {
        snprintf(id, sizeof id, "pep%u", (unsigned)i);
        mark = oi_out_begin(x);
        oi_outz(x, "<iq type='get'");
        oi_out_attr(x, "id", oi_zstr(id));
        oi_out_attr(x, "from", x->jid);
        oi_out_attr(x, "to", to);
        oi_outz(x, "><pubsub xmlns='" OI_NS_PUBSUB "'><items node='");
        oi_outz(x, oi_pep_nodes[i]);
        oi_outz(x, "'/></pubsub></iq>");
        oi_out_commit(x, mark, "PEP fetch");
    }
}

/* The roster state of bare JID bare. */
static int oi_roster_of(olpcidx *x, oi_str bare)
{
    const oi_buddy *b = oi_buddy_get(x, bare, 0);
    return b ? b->roster : OI_ROSTER_NONE;
}

/* subscribe: subscribed and subscribe back, from an allowed domain;
** unsubscribed from another (PROTOCOL.md 6.2). */
static int oi_sub_subscribe(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    (void)p;
    if (!oi_allowed(x, c->bare)) {
        oi_send_presence(x, c->bare, "unsubscribed");
        return OI_C_NONE;
    }
    oi_send_presence(x, c->bare, "subscribed");
    oi_send_presence(x, c->bare, "subscribe");
    if (oi_roster_of(x, c->bare) == OI_ROSTER_NONE)
        oi_chg_roster(x, c->bare, OI_ROSTER_ASKED);
    return OI_C_NONE;
}

/* subscribed: the buddy publishes; its PEP nodes are read, and it gets
** the component's presence with caps, which is what makes its server send
** PEP events (PROTOCOL.md 6.3): Prosody probes for it once the
** subscription is mutual, ejabberd does not. */
static int oi_sub_subscribed(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    int was = oi_roster_of(x, c->bare);
    (void)p;
    if (was == OI_ROSTER_NONE)
        return OI_C_NONE;               /* not asked for: ignored */
    oi_chg_roster(x, c->bare, OI_ROSTER_PUBLISHED);
    if (was == OI_ROSTER_ASKED) {
        oi_send_presence(x, c->bare, NULL);
        oi_pep_fetch(x, c->bare);
    }
    return OI_C_NONE;
}

/* unsubscribe: unsubscribed, and the buddy no longer publishes. */
static int oi_sub_unsubscribe(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    (void)p;
    oi_send_presence(x, c->bare, "unsubscribed");
    oi_chg_roster(x, c->bare, OI_ROSTER_NONE);
    return OI_C_NONE;
}

/* unsubscribed: the buddy no longer publishes. */
static int oi_sub_unsubscribed(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    (void)p;
    oi_chg_roster(x, c->bare, OI_ROSTER_NONE);
    return OI_C_NONE;
}

/* probe: available presence, to a subscriber only. */
static int oi_sub_probe(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    (void)p;
    if (oi_roster_of(x, c->bare) != OI_ROSTER_NONE)
        oi_send_presence(x, c->bare, NULL);
    return OI_C_NONE;
}

/* ---- 15.3 PEP intake (PROTOCOL.md 6.4) ------------------------------- */

/* The buddy's public activities as its activities node lists them: it
** joins the known ones, and leaves those no longer listed whose rooms the
** component does not watch (where it does, the room says who leaves). */
static void oi_pep_acts(olpcidx *x, oi_str bare, const oi_node *list)
{
    const oi_node *e;
    oi_buddy *b;
    oi_str id, room;
    size_t i;
    for (e = list ? list->child : NULL; e; e = e->next) {
        oi_act *a;
        if (!oi_eq(e->name, "activity"))
            continue;
        oi_attr(e, "type", &id);
        oi_attr(e, "room", &room);
        a = oi_act_find(x, id, room);
        if (!a && id.n)
            a = oi_act_find(x, OI_LIT(""), room);
        if (a)                          /* also where the room hides
                                        ** real JIDs: Sugar's nicks are
                                        ** aliases, not names */
            oi_chg_join(x, bare, OI_LIT(""), oi_uid(&a->it), oi_room(a));
    }
    if (!(b = oi_buddy_get(x, bare, 0)))
        return;
    for (i = b->acts.n; i-- > 0;) {
        oi_act *a = (oi_act *)OI_SV(&b->acts)[i];
        int listed = 0;
        if (a->muc != OI_MUC_NONE)
            continue;
        for (e = list ? list->child : NULL; e && !listed; e = e->next) {
            oi_attr(e, "type", &id);
            oi_attr(e, "room", &room);
            listed = oi_eq(e->name, "activity")
                     && (oi_streq(id, oi_uid(&a->it))
                         || (room.n && oi_streq(room, oi_room(a))));
        }
        if (!listed)
            oi_chg_leave(x, bare, oi_uid(&a->it), oi_room(a));
        if (!(b = oi_buddy_get(x, bare, 0)))
            return;
    }
}

/* What one PEP node of published buddy bare now holds (payload NULL:
** nothing). */
static void oi_pep_node(olpcidx *x, oi_str bare, oi_str node,
                        const oi_node *payload)
{
    oi_props ps;
    oi_str id = OI_LIT(""), room = OI_LIT("");
    const oi_node *e;
    memset(&ps, 0, sizeof ps);
    if (oi_eq(node, OI_NS_BPROPS)) {
        if (!payload || oi_props_read(x, payload, &ps, 1) == OI_C_NONE)
            oi_chg_buddy_props(x, bare, &ps);
    } else if (oi_eq(node, OI_NS_CURACT)) {
        if (payload) {
            oi_attr(payload, "type", &id);
            oi_attr(payload, "room", &room);
        }
        oi_chg_current(x, bare, id, room);
    } else if (oi_eq(node, OI_NS_ACTS)) {
        oi_pep_acts(x, bare, payload);
    } else if (oi_eq(node, OI_NS_APROPS)) {
        for (e = payload ? payload->child : NULL; e; e = e->next) {
            oi_act *a;
            oi_buddy *b = oi_buddy_get(x, bare, 0);
            if (!oi_eq(e->name, "properties"))
                continue;
            oi_attr(e, "activity", &id);
            oi_attr(e, "room", &room);
            a = oi_act_find(x, id, room);
            if (a && b && a->muc == OI_MUC_NONE && oi_svec_has(&a->parts, b)
                && oi_props_read(x, e, &ps, 1) == OI_C_NONE)
                oi_chg_room_props(x, a, &ps);
        }
    } else if (oi_eq(node, OI_NS_NICK)) {
        oi_chg_nick(x, bare, payload ? oi_mkstr(payload->text, payload->ntext)
                                     : OI_LIT(""));
    }
}

/* <items node> of an event or of a fetch: its last item is what the node
** holds; a retraction empties it; an item without payload is fetched.  A
** node with no item says nothing: what the buddy announced otherwise
** stays. */
static void oi_pep_items(olpcidx *x, oi_str bare, const oi_node *items)
{
    const oi_node *e, *last = NULL;
    oi_str node;
    int retracted = 0;
    oi_attr(items, "node", &node);
    for (e = items->child; e; e = e->next) {
        if (oi_eq(e->name, "item"))
            last = e;
        else if (oi_eq(e->name, "retract"))
            retracted = 1;
    }
    if (last && !last->child)
        oi_pep_fetch(x, bare);          /* a notification without payload */
    else if (last || retracted)
        oi_pep_node(x, bare, node, last ? last->child : NULL);
}

/* A PEP event from a published buddy (the bare JID itself). */
static int oi_pep_event(olpcidx *x, const oi_ctx *c, const oi_node *ev)
{
    const oi_node *e;
    oi_str node;
    if (c->from.n != c->bare.n
        || oi_roster_of(x, c->bare) != OI_ROSTER_PUBLISHED)
        return OI_C_NONE;
    for (e = ev->child; e; e = e->next) {
        if (oi_eq(e->name, "items"))
            oi_pep_items(x, c->bare, e);
        else if ((oi_eq(e->name, "purge") || oi_eq(e->name, "delete"))
                 && oi_attr(e, "node", &node))
            oi_pep_node(x, c->bare, node, NULL);
    }
    return OI_C_NONE;
}

/* The answer to one of our fetches (id "pepN"); anything else is for the
** next route. */
static int oi_pep_answer(olpcidx *x, const oi_ctx *c, const oi_node *q)
{
    const oi_node *e, *err;
    size_t k;
    if (c->id.n != 4 || memcmp(c->id.p, "pep", 3) != 0
        || (k = (size_t)(c->id.p[3] - '0')) >= OI_NPEP
        || c->from.n != c->bare.n)
        return OI_PASS;
    if (oi_roster_of(x, c->bare) != OI_ROSTER_PUBLISHED)
        return OI_C_NONE;
    if (OI_IS(c->type, "result")) {
        if (q && oi_eq(q->name, "pubsub")
            && (e = oi_child(q, NULL, "items")) != NULL)
            oi_pep_items(x, c->bare, e);
        return OI_C_NONE;
    }
    if (!(err = oi_child(c->st, NULL, "error")))
        return OI_C_NONE;
    if (oi_child(err, OI_NS_PSERROR, "presence-subscription-required")
        || oi_child(err, OI_NS_XSTANZA, "forbidden")
        || oi_child(err, OI_NS_XSTANZA, "not-authorized")) {
        oi_log(x, OLPCIDX_LOG_INFO, "%.*s no longer lets the component read "
               "its PEP: it stops publishing", (int)c->bare.n, c->bare.p);
        oi_chg_roster(x, c->bare, OI_ROSTER_NONE);
    } else if (oi_child(err, OI_NS_XSTANZA, "item-not-found")) {
        ;                               /* no such node: nothing to learn */
    } else {
        oi_log(x, OLPCIDX_LOG_INFO, "reading %s of %.*s failed",
               oi_pep_nodes[k], (int)c->bare.n, c->bare.p);
    }
    return OI_C_NONE;
}

/* ---- 15.4 MUC intake (PROTOCOL.md 6.5) ------------------------------- */

/* An invitation relayed by a room (from its bare JID; an occupant's own
** message is no invitation): accepted from a published buddy (or,
** in a room that hides real JIDs, for an activity a published buddy is
** in), for a public activity the component is not watching yet. */
static int oi_muc_invite(olpcidx *x, const oi_ctx *c, const oi_node *xu)
{
    const oi_node *inv = oi_child(xu, OI_NS_MUCUSER, "invite");
    oi_act *a;
    oi_str inviter;
    const oi_buddy *b;
    size_t i;
    int ok = 0;
    if (!inv || !oi_attr(inv, "from", &inviter) || c->from.n != c->bare.n)
        return OI_C_NONE;               /* only the room itself relays */
    if (!(a = (oi_act *)oi_map_get(&x->rooms, c->bare))) {
        oi_log(x, OLPCIDX_LOG_INFO, "invitation to %.*s ignored: no activity "
               "is known in that room", (int)c->bare.n, c->bare.p);
        return OI_C_NONE;
    }
    if (oi_act_private(a) || a->muc != OI_MUC_NONE)
        return OI_C_NONE;
    if (oi_streq(oi_bare(inviter), c->bare)) {  /* room/nick */
        for (i = 0; i < a->parts.n && !ok; i++)
            ok = ((const oi_buddy *)OI_SV(&a->parts)[i])->roster
                 == OI_ROSTER_PUBLISHED;
    } else {
        b = oi_buddy_get(x, oi_bare(inviter), 0);
        ok = b && b->roster == OI_ROSTER_PUBLISHED
             && oi_allowed(x, oi_bare(inviter));
    }
    if (!ok) {
        oi_log(x, OLPCIDX_LOG_INFO, "invitation to %.*s from %.*s ignored: "
               "not from a published buddy", (int)c->bare.n, c->bare.p,
               (int)inviter.n, inviter.p);
        return OI_C_NONE;
    }
    a->nick_try = 0;
    oi_room_presence(x, a, 1, 1);
    return OI_C_NONE;
}

/* Activity properties said in a room the component is in: the room is
** the sender's bare JID, an occupant's message relayed by the room
** (room/nick); a room attribute naming another room counts for nothing. */
static int oi_muc_props(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    oi_props ps;
    oi_act *a = (oi_act *)oi_map_get(&x->rooms, c->bare);
    if (c->from.n == c->bare.n || !a || a->muc != OI_MUC_IN)
        return OI_C_NONE;               /* not from a room we are in */
    if (oi_props_read(x, p, &ps, 1) == OI_C_NONE)
        oi_chg_room_props(x, a, &ps);
    return OI_C_NONE;
}

/* Whether MUC status code code is among those of xu. */
static int oi_muc_status(const oi_node *xu, const char *code)
{
    const oi_node *s;
    oi_str v;
    for (s = xu ? xu->child : NULL; s; s = s->next)
        if (oi_eq(s->name, "status") && oi_attr(s, "code", &v)
            && oi_eq(v, code))
            return 1;
    return 0;
}

/* The component is in a's room: the participants the room did not list
** while it was joining have left (after a reconnect: PROTOCOL.md 6.5). */
static void oi_muc_reconcile(olpcidx *x, oi_act *a)
{
    oi_str id = oi_uid(&a->it), room = oi_room(a);
    oi_joining *j = a->join;            /* NULL: not asked, so not whole */
    size_t i;
    a->join = NULL;                     /* j is freed here, whatever the
                                        ** leaves below do to a */
    oi_act_muc(&x->mem, a, OI_MUC_IN);
    for (i = j && j->whole ? a->parts.n : 0; i-- > 0;) {
        oi_buddy *b = (oi_buddy *)OI_SV(&a->parts)[i];
        if (oi_svec_has(&j->here, b))
            continue;
        if (a->parts.n == 1) {          /* the last one: a goes */
            oi_chg_leave(x, oi_uid(&b->it), id, room);
            break;
        }
        oi_chg_leave(x, oi_uid(&b->it), id, room);
    }
    if (j) {
        oi_svec_free(&x->mem, &j->here);
        oi_free(&x->mem, j, sizeof *j);
    }
}

/* Presence from a room the component is in, or joining: its own, an
** occupant's, or an error; presence from anyone else is for the next
** route. */
static int oi_muc_presence(olpcidx *x, const oi_ctx *c, const oi_node *p)
{
    oi_act *a = (oi_act *)oi_map_get(&x->rooms, c->bare);
    const oi_node *xu, *item;
    oi_str nick, jid = OI_LIT(""), bare, id, room;
    char own[24], buf[1100];
    int gone = OI_IS(c->type, "unavailable");
    oi_buddy *b;
    (void)p;
    if (!a || a->muc == OI_MUC_NONE || c->from.n == c->bare.n)
        return OI_PASS;
    nick = oi_mkstr(c->from.p + c->bare.n + 1, c->from.n - c->bare.n - 1);
    if (OI_IS(c->type, "error")) {
        const oi_node *err = oi_child(c->st, NULL, "error");
        if (a->muc == OI_MUC_JOINING && err
            && oi_child(err, OI_NS_XSTANZA, "conflict") && a->nick_try < 8) {
            a->nick_try++;              /* nick taken: the next one */
            oi_room_presence(x, a, 1, 0);
        } else {
            oi_log(x, OLPCIDX_LOG_INFO, "cannot watch room %.*s: it refused "
                   "the component", (int)c->bare.n, c->bare.p);
            oi_act_muc(&x->mem, a, OI_MUC_NONE);
        }
        return OI_C_NONE;
    }
    xu = oi_child(c->st, OI_NS_MUCUSER, "x");
    item = xu ? oi_child(xu, OI_NS_MUCUSER, "item") : NULL;
    if (item)
        oi_attr(item, "jid", &jid);
    if (oi_muc_status(xu, "110") || oi_streq(nick, oi_room_nick(a, own))) {
        if (gone) {                     /* put out, or the room went */
            oi_act_muc(&x->mem, a, OI_MUC_NONE);
            oi_chg_close(x, a);
        } else if (oi_muc_status(xu, "201")) {
            oi_log(x, OLPCIDX_LOG_INFO, "room %.*s no longer existed: its "
                   "activity is closed", (int)c->bare.n, c->bare.p);
            oi_room_presence(x, a, 0, 1);
            oi_chg_close(x, a);
        } else if (a->muc == OI_MUC_JOINING) {
            oi_muc_reconcile(x, a);
        }
        return OI_C_NONE;
    }
    if (jid.n) {
        bare = oi_bare(jid);
    } else {                            /* real JIDs hidden: nick@server */
        if (nick.n + 1 + x->server.n > sizeof buf)
            return OI_C_NONE;
        memcpy(buf, nick.p, nick.n);
        buf[nick.n] = '@';
        memcpy(buf + nick.n + 1, x->server.p, x->server.n);
        bare = oi_mkstr(buf, nick.n + 1 + x->server.n);
        if (!oi_buddy_get(x, bare, 0)) {
            if (a->join && !gone)
                a->join->whole = 0;     /* someone we cannot name: so no
                                        ** one is taken out for being
                                        ** unseen (a Sugar nick is an
                                        ** alias, not the JID's node) */
            return OI_C_NONE;
        }
    }
    if (oi_streq(bare, x->jid) || !oi_allowed(x, bare))
        return OI_C_NONE;               /* never the inspector itself */
    id = oi_uid(&a->it);
    room = oi_room(a);
    if (gone) {
        oi_chg_leave(x, bare, id, room);
    } else {
        oi_chg_join(x, bare, jid, id, room);
        if (a->join && (b = oi_buddy_get(x, bare, 0))) {
            if (oi_svec_reserve(&x->mem, &a->join->here, 1) == OLPCIDX_OK)
                oi_svec_push(&a->join->here, b);
            else
                a->join->whole = 0;     /* then nobody is taken out */
        }
    }
    return OI_C_NONE;
}

/* ---- 15.5 Start, and the Gadget's routes ------------------------------ */

/* Online (x->on_online): once per process, available presence to every
** subscriber, which tells their clients that views were lost, a probe of
** every publisher (its server answers with the resources online: views
** need them) and a fresh read of its PEP (PROTOCOL.md 6.3, 6.4); and
** every time, the rooms the component was in (before a reconnect, or a
** restart) are joined again (6.5). */
static void oi_gadget_online(olpcidx *x)
{
    size_t i = 0;
    void *p;
    if (!x->announced) {
        x->announced = 1;
        while ((p = oi_map_next(&x->buddies, &i)) != NULL) {
            const oi_buddy *b = (const oi_buddy *)p;
            if (b->roster != OI_ROSTER_NONE)
                oi_send_presence(x, oi_uid(&b->it), NULL);
            if (b->roster == OI_ROSTER_PUBLISHED) {
                oi_send_presence(x, oi_uid(&b->it), "probe");  /* who is on */
                oi_pep_fetch(x, oi_uid(&b->it));
            }
        }
        i = 0;
    }
    while ((p = oi_map_next(&x->acts, &i)) != NULL) {
        oi_act *a = (oi_act *)p;
        if (a->muc != OI_MUC_NONE) {
            a->nick_try = 0;
            oi_room_presence(x, a, 1, 0);
        }
    }
}

/* A clean stop (olpcidx_close): unavailable presence to subscribers
** (the Sugar client keeps its views on it) and out of every room. */
static void oi_gadget_closing(olpcidx *x)
{
    size_t i = 0;
    void *p;
    if (x->state != OI_S_ONLINE)
        return;
    while ((p = oi_map_next(&x->buddies, &i)) != NULL)
        if (((const oi_buddy *)p)->roster != OI_ROSTER_NONE)
            oi_send_presence(x, oi_uid(&((const oi_buddy *)p)->it),
                             "unavailable");
    i = 0;
    while ((p = oi_map_next(&x->acts, &i)) != NULL)
        if (((oi_act *)p)->muc != OI_MUC_NONE)
            oi_room_presence(x, (oi_act *)p, 0, 0);
}

#define OI_ON_IQS (OI_ON_GET | OI_ON_SET)

static const oi_route oi_gadget_routes[] = {
    { OI_ON_IQS, OI_ANY, OI_Z(OI_NS_BUDDY), OI_Z("view"),
      OI_G_DOMAIN | OI_G_BARE_ERRORS, oi_view_request },
    { OI_ON_IQS, OI_ANY, OI_Z(OI_NS_ACT), OI_Z("view"),
      OI_G_DOMAIN | OI_G_BARE_ERRORS, oi_view_request },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_BUDDY), OI_Z("close"), OI_G_DOMAIN,
      oi_view_close },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_ACT), OI_Z("close"), OI_G_DOMAIN,
      oi_view_close },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_PSEVENT), OI_Z("event"), OI_G_ANYONE,
      oi_pep_event },
    { OI_ON_MSG, OI_ANY, OI_Z(OI_NS_MUCUSER), OI_Z("x"), OI_G_ANYONE,
      oi_muc_invite },
    { OI_ON_MSG, OI_Z("groupchat"), OI_Z(OI_NS_APROPS), OI_Z("properties"),
      OI_G_ANYONE, oi_muc_props },
    { OI_ON_ANSWER, OI_ANY, OI_ANY, OI_ANY, OI_G_ANYONE, oi_pep_answer },
    { OI_ON_PRES, OI_ANY, OI_ANY, OI_ANY, OI_G_ANYONE, oi_muc_presence },
    { OI_ON_PRES, OI_Z("subscribe"), OI_ANY, OI_ANY, OI_G_ANYONE,
      oi_sub_subscribe },
    { OI_ON_PRES, OI_Z("subscribed"), OI_ANY, OI_ANY, OI_G_DOMAIN,
      oi_sub_subscribed },
    { OI_ON_PRES, OI_Z("unsubscribe"), OI_ANY, OI_ANY, OI_G_ANYONE,
      oi_sub_unsubscribe },
    { OI_ON_PRES, OI_Z("unsubscribed"), OI_ANY, OI_ANY, OI_G_ANYONE,
      oi_sub_unsubscribed },
    { OI_ON_PRES, OI_Z("probe"), OI_ANY, OI_ANY, OI_G_DOMAIN, oi_sub_probe },
    { 0, OI_ANY, OI_ANY, OI_ANY, 0, NULL }
};

/* ==== 16. Dispatch: stanzas to routes ================================ */

/*
** The route tables of every dialect, searched in this order, first match
** first (by kind of stanza: x->routes).  The stream lets through no
** other stanza than iq, message and presence (section 12).
*/
static const oi_route *const oi_tables[] = {
    oi_gadget_routes, oi_common_routes, oi_seed_routes
};

/* Sorts the rows of every table by the kind of stanza they are for, in
** the tables' order, into x->routes: a stanza is then matched against
** the rows of its kind only. */
static void oi_routes_init(olpcidx *x)
{
    size_t t, r, n[OI_ROUTE_KINDS];
    int k;
    memset(n, 0, sizeof n);
    for (t = 0; t < sizeof oi_tables / sizeof oi_tables[0]; t++)
        for (r = 0; oi_tables[t][r].fn; r++)
            for (k = 0; k < OI_ROUTE_KINDS; k++)
                if ((oi_tables[t][r].on & 1u << k)
                    && !OI_NEVER(n[k] == OI_ROUTES_MAX))
                    x->routes[k][n[k]++] = &oi_tables[t][r];
    for (k = 0; k < OI_ROUTE_KINDS; k++)
        x->routes[k][n[k]] = NULL;
}

typedef struct oi_rcur {        /* where a search of the rows is */
    const oi_route *const *at;  /* the next row to look at */
} oi_rcur;

/* The next row, from *cur on, that matches type and payload p (NULL:
** none). */
static const oi_route *oi_route_next(oi_rcur *cur, oi_str type,
                                     const oi_node *p)
{
    const oi_route *r;
    while ((r = *cur->at) != NULL) {
        cur->at++;
        if ((!r->name || (p && oi_eqn(p->name, r->name, r->nname)))
            && (!r->ns || (p && oi_eqn(p->ns, r->ns, r->nns)))
            && (!r->type || oi_eqn(type, r->type, r->ntype)))
            return r;
    }
    return NULL;
}

/* The first row for stanzas of kind on (one OI_ON_* bit) that matches;
** *cur is where to look for the next. */
static const oi_route *oi_route_first(olpcidx *x, oi_rcur *cur, unsigned on,
                                      oi_str type, const oi_node *p)
{
    int k = 0;
    while (!(on & 1u << k))
        k++;
    cur->at = x->routes[k];
    return oi_route_next(cur, type, p);
}

/* Whether the sender is from an allowed domain, found out once. */
static int oi_ctx_allowed(olpcidx *x, oi_ctx *c)
{
    if (c->allowed < 0)
        c->allowed = oi_allowed(x, c->from);
    return c->allowed;
}

/* Runs row r and the rows after it for p until one takes it.  Returns
** the condition to answer with (OI_C_NONE if none), or OI_PASS when no
** row took it.  A row for allowed domains only refuses the others with
** forbidden. */
static int oi_run_routes(olpcidx *x, oi_ctx *c, const oi_node *p,
                         oi_rcur *cur, const oi_route *r)
{
    int cond = OI_PASS;
    for (; r; r = oi_route_next(cur, c->type, p)) {
        if (((r->guard & OI_G_DOMAIN) && !oi_ctx_allowed(x, c))
            || ((r->guard & OI_G_ADMIN) && !c->admin))
            return OI_C_FORBIDDEN;
        if ((cond = r->fn(x, c, p)) != OI_PASS)
            break;
    }
    return cond;
}

/* Routes the stanza's own payload p (an answer, a bounce, presence). */
static int oi_route_stanza(olpcidx *x, oi_ctx *c, unsigned on,
                           const oi_node *p)
{
    oi_rcur cur;
    return oi_run_routes(x, c, p, &cur,
                         oi_route_first(x, &cur, on, c->type, p));
}

/* An iq (RFC 6120 8.2.3): a get or set has an id and exactly one payload,
** and is answered, with service-unavailable when no route takes it
** (PROTOCOL.md 8.3); a result or error never is. */
static void oi_iq(olpcidx *x, oi_ctx *c)
{
    const oi_node *q = c->st->child;
    oi_rcur cur;
    const oi_route *r;
    unsigned on = OI_IS(c->type, "get") ? OI_ON_GET
                : OI_IS(c->type, "set") ? OI_ON_SET : 0;
    int cond;
    if (OI_IS(c->type, "result") || OI_IS(c->type, "error")) {
        oi_route_stanza(x, c, OI_ON_ANSWER, q);
        return;
    }
    oi_seen(x, c->from);
    if (!on || !c->has_id || !q || q->next) {
        oi_iq_error(x, c, NULL, OI_C_BAD_REQUEST);
        return;
    }
    /* refused before it costs a token (PROTOCOL.md 8.2) */
    r = oi_route_first(x, &cur, on, c->type, q);
    if (r && (((r->guard & OI_G_DOMAIN) && !oi_ctx_allowed(x, c))
              || ((r->guard & OI_G_ADMIN) && !c->admin)))
        cond = OI_C_FORBIDDEN;
    else if (!oi_streq(c->from, x->jid) && !oi_rate_take(x, c->from))
        cond = OI_C_RESOURCE_CONSTRAINT;        /* the component's own
                                                ** self-check is not rated */
    else {
        x->result_full = 0;
        cond = oi_run_routes(x, c, q, &cur, r);
        if (cond == OI_PASS)
            cond = OI_C_SERVICE_UNAVAILABLE;
        else if (cond == OI_C_NONE && x->result_full)
            cond = OI_C_RESOURCE_CONSTRAINT;    /* its result alone is
                                                ** over max-output (8.4) */
    }
    if (cond != OI_C_NONE)
        oi_iq_error(x, c, r && (r->guard & OI_G_BARE_ERRORS) ? NULL : q,
                    cond);
}

/* A message: every child a route takes is handled in order, and a
** refused one answered; the rest (<body/> and the like) is not ours.
** Over the rate, it is dropped silently (PROTOCOL.md 8.2).  After
** OI_MAX_REFUSALS refusals the rest of it is not read: what one stanza
** may cost, in work and in replies, is bounded (8.4). */
#define OI_MAX_REFUSALS 8

static void oi_message(olpcidx *x, oi_ctx *c)
{
    const oi_node *p;
    oi_rcur cur;
    int cond, refused = 0;
    if (OI_IS(c->type, "error")) {
        oi_route_stanza(x, c, OI_ON_BOUNCE, c->st->child);
        return;
    }
    if (!oi_rate_take(x, c->from))
        return;
    x->cause = c->from;
    for (p = c->st->child; p; p = p->next) {
        cond = oi_run_routes(x, c, p, &cur,
                             oi_route_first(x, &cur, OI_ON_MSG, c->type, p));
        if (cond == OI_C_NONE || cond == OI_PASS)
            continue;
        oi_msg_error(x, c, p, cond);
        if (++refused == OI_MAX_REFUSALS && p->next) {
            oi_log(x, OLPCIDX_LOG_WARN, "message from %.*s: %d children "
                   "refused, the rest not read", (int)c->from.n, c->from.p,
                   refused);
            break;
        }
    }
    x->cause = oi_mkstr("", 0);
    oi_seen(x, c->from);                /* after: it may be a new buddy */
}

/* A stanza of the online stream (x->on_stanza). */
static int oi_dispatch(olpcidx *x, const oi_node *st)
{
    oi_ctx c;
    int has_from, kind;
    x->nin++;
    memset(&c, 0, sizeof c);
    c.st = st;
    c.allowed = -1;
    has_from = oi_attr(st, "from", &c.from);
    oi_attr(st, "type", &c.type);
    c.has_id = oi_attr(st, "id", &c.id);
    c.bare = oi_bare(c.from);
    c.admin = x->admins.n && oi_is_admin(x, c.bare);
    if (x->cfg.log_level >= OLPCIDX_LOG_DEBUG)
        oi_log(x, OLPCIDX_LOG_DEBUG, "%.*s%s%.*s from %.*s", (int)st->name.n,
               st->name.p, c.type.n ? " " : "", (int)c.type.n, c.type.p,
               (int)c.from.n, c.from.p);
    kind = OI_IS(st->name, "iq") ? 'i' : OI_IS(st->name, "message") ? 'm'
         : OI_IS(st->name, "presence") ? 'p' : 0;
    if (OI_NEVER(!kind))                /* the stream lets no other pass */
        return 0;
    if (!has_from || c.from.n == 0) {
        if (kind == 'i')
            oi_log(x, OLPCIDX_LOG_WARN, "iq without 'from' ignored");
        return 0;
    }
    if (kind == 'i')
        oi_iq(x, &c);
    else if (kind == 'm')
        oi_message(x, &c);
    else                                /* never answered with an error */
        oi_route_stanza(x, &c, OI_ON_PRES, st->child);
    return 0;
}

/* The stream is online (x->on_online): the self-check of 13.4, then the
** Gadget dialect's start (15). */
static void oi_went_online(olpcidx *x)
{
    oi_twin_probe(x);
    oi_gadget_online(x);
}

/* ==== 17. Public API ================================================ */

/* The limits as data (OLPCIDX_LIMITS): ranges for the checks here, names,
** units and help for the daemon. */
enum { OI_BYTES, OI_COUNT, OI_SECONDS };

enum {
#define OI_LIM_ENUM_(field, opt, def, lo, hi, unit, help) OI_LIM_##field,
    OLPCIDX_LIMITS(OI_LIM_ENUM_)
#undef OI_LIM_ENUM_
    OI_NLIMITS
};

static const struct oi_limit {
    const char *opt;            /* option name and config key */
    size_t off;                 /* the field in olpcidx_config */
    size_t def, lo, hi;         /* default and range */
    int unit;                   /* OI_BYTES, OI_COUNT or OI_SECONDS */
    const char *help;
} oi_limits[OI_NLIMITS] = {
#define OI_LIM_ROW_(field, opt, def, lo, hi, unit, help)                    \
    { opt, offsetof(olpcidx_config, field), def, lo, hi, OI_##unit, help },
    OLPCIDX_LIMITS(OI_LIM_ROW_)
#undef OI_LIM_ROW_
};

/* Limit k of configuration c, to set and to read. */
static size_t *oi_limit(olpcidx_config *c, int k)
{
    return (size_t *)(void *)((char *)c + oi_limits[k].off);
}

static size_t oi_limit_of(const olpcidx_config *c, int k)
{
    return *(const size_t *)(const void *)((const char *)c
                                           + oi_limits[k].off);
}


const char *olpcidx_strerror(int err)
{
    switch (err) {
#define OI_CASE_(name, value, text) case value: return text;
    OLPCIDX_ERRORS(OI_CASE_)
#undef OI_CASE_
    default:
        return "unknown error";
    }
}

int olpcidx_is_fatal(int err)
{
    return err == OLPCIDX_EAUTH || err == OLPCIDX_EHOST
           || err == OLPCIDX_ELOCAL;
}

void olpcidx_config_init(olpcidx_config *c)
{
    int k;
    memset(c, 0, sizeof *c);
    c->log_level = OLPCIDX_LOG_INFO;
    for (k = 0; k < OI_NLIMITS; k++)
        *oi_limit(c, k) = oi_limits[k].def;
}

/* Every limit within its range: non-zero where zero means nothing, and
** small enough that the products computed from them cannot overflow. */
static int oi_check_limits(const olpcidx_config *c)
{
    int k;
    for (k = 0; k < OI_NLIMITS; k++) {
        size_t v = oi_limit_of(c, k);
        if (v < oi_limits[k].lo || v > oi_limits[k].hi)
            return OLPCIDX_EINVAL;
    }
    return OLPCIDX_OK;
}

/* Applies the limits of x->cfg where copies of them are kept. */
static void oi_apply_limits(olpcidx *x)
{
    x->mem.limit = x->cfg.mem_limit;
    oi_xml_limits(&x->xml, x->cfg.max_depth, x->cfg.max_attrs,
                  x->cfg.max_name, x->cfg.max_stanza);
    x->arena.max = x->cfg.max_stanza * 32;  /* a stanza's tree, generously */
}

/* A component JID is a domain: no node, no resource, no characters that
** would need escaping in an attribute, at most 1023 bytes (RFC 7622). */
static int oi_check_jid(const char *z)
{
    size_t n = z ? strlen(z) : 0, i;
    if (n == 0 || n > 1023)
        return OLPCIDX_EINVAL;
    for (i = 0; i < n; i++)
        if ((unsigned char)z[i] <= ' ' || strchr("@/<>&'\"", z[i]))
            return OLPCIDX_EINVAL;
    return OLPCIDX_OK;
}

/* Admins are bare JIDs separated by spaces: no resource, no control
** character, at most 3071 bytes each (RFC 7622 3.1). */
static int oi_check_admins(const char *z)
{
    size_t n = 0;
    for (; *z; z++) {
        if (*z == ' ') {
            n = 0;
            continue;
        }
        if ((unsigned char)*z < ' ' || *z == '/' || ++n > 3071)
            return OLPCIDX_EINVAL;
    }
    return OLPCIDX_OK;
}

static int oi_dupstr(oi_mem *m, const char *z, oi_str *out)
{
    size_t n = strlen(z);
    char *p = (char *)oi_realloc(m, NULL, 0, n + 1);
    if (!p)
        return OLPCIDX_ENOMEM;
    memcpy(p, z, n + 1);
    *out = oi_mkstr(p, n);
    return OLPCIDX_OK;
}

static void oi_freestr(oi_mem *m, oi_str *s)
{
    if (s->p)
        oi_free(m, (void *)(size_t)s->p, s->n + 1);
    s->p = NULL;
}

int olpcidx_new(olpcidx **out, const olpcidx_config *cfg)
{
    oi_mem m;
    olpcidx *x;
    const char *dot;
    *out = NULL;
    if (!cfg || oi_check_jid(cfg->jid) || !cfg->secret || oi_check_limits(cfg)
        || (cfg->admins && oi_check_admins(cfg->admins)))
        return OLPCIDX_EINVAL;
    m.alloc = cfg->alloc ? cfg->alloc : oi_default_alloc;
    m.ud = cfg->alloc_ud;
    m.used = 0;
    m.limit = cfg->mem_limit;
    x = (olpcidx *)oi_realloc(&m, NULL, 0, sizeof *x);
    if (!x)
        return OLPCIDX_ENOMEM;
    memset(x, 0, sizeof *x);
    x->mem = m;
    x->cfg = *cfg;
    if (oi_dupstr(&x->mem, cfg->jid, &x->jid)
        || oi_dupstr(&x->mem, cfg->secret, &x->secret)
        || oi_dupstr(&x->mem, cfg->name ? cfg->name : "OLPC Gadget",
                     &x->name)) {
        olpcidx_free(x);
        return OLPCIDX_ENOMEM;
    }
    x->cfg.jid = x->jid.p;
    x->cfg.secret = x->secret.p;
    x->cfg.name = x->name.p;
    dot = strchr(x->jid.p, '.');
    x->server = dot ? oi_zstr(dot + 1) : oi_mkstr("", 0);
    if (oi_dupstr(&x->mem, cfg->allow_domains ? cfg->allow_domains
                  : x->server.p, &x->allow)
        || oi_dupstr(&x->mem, cfg->admins ? cfg->admins : "", &x->admins)) {
        olpcidx_free(x);
        return OLPCIDX_ENOMEM;
    }
    oi_xml_init(&x->xml, &x->mem, &oi_stream_handler, x); /* oi_cc too */
    oi_crc_init();
    oi_apply_limits(x);
    x->out.max = (size_t)-1;
    x->rec.max = (size_t)-1;
    x->seed_payload.max = (size_t)-1;
    x->held.max = (size_t)-1;
    oi_index_init(x);
    oi_clients_init(x);
    x->on_stanza = oi_dispatch;
    x->on_online = oi_went_online;
    x->rng = (uint64_t)cfg->hash_seed << 32 | 0x9e3779b9u;
    oi_caps_init(x);
    oi_routes_init(x);
    x->notify_type = cfg->notify_type && strcmp(cfg->notify_type, "notice") == 0
                     ? "notice" : "headline";
    x->state = OI_S_IDLE;
    *out = x;
    return OLPCIDX_OK;
}

void olpcidx_free(olpcidx *x)
{
    oi_mem m;
    if (!x)
        return;
    oi_fq_clear(x, NULL);               /* unpins: before the index */
    oi_clients_free(x);
    oi_index_free(x);
    oi_buf_free(&x->mem, &x->held);
    oi_buf_free(&x->mem, &x->rec);
    oi_buf_free(&x->mem, &x->seed_payload);
    oi_xml_release(&x->xml);
    oi_arena_reset(&x->mem, &x->arena, 0);
    oi_buf_free(&x->mem, &x->out);
    oi_freestr(&x->mem, &x->jid);
    oi_freestr(&x->mem, &x->secret);
    oi_freestr(&x->mem, &x->name);
    oi_freestr(&x->mem, &x->allow);
    oi_freestr(&x->mem, &x->admins);
    m = x->mem;
    oi_free(&m, x, sizeof *x);
}

int olpcidx_reconfigure(olpcidx *x, const olpcidx_config *cfg)
{
    int k;
    if (oi_check_limits(cfg))
        return OLPCIDX_EINVAL;
    x->cfg.log_level = cfg->log_level;
    for (k = 0; k < OI_NLIMITS; k++)
        *oi_limit(&x->cfg, k) = oi_limit_of(cfg, k);
    oi_apply_limits(x);
    return OLPCIDX_OK;
}

int olpcidx_connect(olpcidx *x, uint64_t now_ms)
{
    size_t mark;
    oi_xml_reset(&x->xml);
    oi_arena_reset(&x->mem, &x->arena, 1);
    x->root = x->cur = NULL;
    x->dropped = 0;
    x->out.n = x->head = 0;
    x->held.n = 0;                      /* the old stream's bytes */
    x->err = 0;
    x->now = x->connected_at = x->last_in = x->last_out = now_ms;
    if (!x->ever_connected)
        x->first_at = now_ms;
    x->ever_connected = 1;
    x->tick_at = now_ms;
    x->tick_blocked = 0;
    x->ping_out = 0;
    x->stream_id[0] = '\0';
    x->state = OI_S_OPENING;
    mark = oi_out_begin(x);
    oi_outz(x, "<?xml version='1.0'?><stream:stream xmlns='" OI_NS_ACCEPT
            "' xmlns:stream='" OI_NS_STREAM "'");
    oi_out_attr(x, "to", x->jid);
    oi_out(x, ">", 1);
    if (oi_out_commit(x, mark, "stream header") != 0)
        return oi_stream_end(x, OLPCIDX_ENOMEM, NULL, NULL);
    return OLPCIDX_OK;
}

/* The tokenizer stopped on the server's bytes (rc), or a stanza ended
** the stream: say why, and end. */
static int oi_feed_failed(olpcidx *x, int rc)
{
    if (rc == 0 || x->state == OI_S_CLOSED)
        return rc;
    oi_log(x, OLPCIDX_LOG_ERROR, "bad XML from the server at byte %lu: %s",
           (unsigned long)x->xml.err_off, x->xml.err_msg);
    switch (rc) {
    case OLPCIDX_ERESTRICTED:
        return oi_stream_end(x, rc, "restricted-xml", x->xml.err_msg);
    case OLPCIDX_ELIMIT:
        return oi_stream_end(x, rc, "policy-violation", x->xml.err_msg);
    case OLPCIDX_ENOMEM:
        return oi_stream_end(x, rc, "resource-constraint", NULL);
    default:
        return oi_stream_end(x, rc, "not-well-formed", x->xml.err_msg);
    }
}

/* Parses what it can of p[0..n): up to the end, or to the end of a
** stanza after which the output is busy (oi_on_end).  *used gets the
** bytes parsed.  Returns 0 or the code that ended the stream. */
static int oi_parse(olpcidx *x, const char *p, size_t n, size_t *used)
{
    uint64_t from = x->xml.off;
    int rc;
    x->xml.pause = 0;
    rc = oi_xml_feed(&x->xml, p, n);
    *used = rc ? n : (size_t)(x->xml.off - from);
    if (rc || x->state == OI_S_CLOSED)
        return oi_feed_failed(x, rc);
    return 0;
}

/* Parses the held bytes while the output is not busy.  Returns 0 or the
** code that ended the stream. */
static int oi_parse_held(olpcidx *x)
{
    size_t used;
    int rc;
    while (x->held.n > 0 && !oi_out_busy(x) && !x->err) {
        rc = oi_parse(x, x->held.p, x->held.n, &used);
        if (rc)
            return rc;
        memmove(x->held.p, x->held.p + used, x->held.n - used);
        x->held.n -= used;
    }
    return x->err;
}

int olpcidx_feed(olpcidx *x, const void *buf, size_t n)
{
    const char *p = (const char *)buf;
    size_t used;
    int rc;
    if (x->err)
        return x->err;
    if (x->state == OI_S_IDLE)
        return OLPCIDX_ESTATE;
    if (n > 0) {
        x->last_in = x->now;
        x->ping_out = 0;
    }
    if (x->held.n == 0 && !oi_out_busy(x)) {
        if ((rc = oi_parse(x, p, n, &used)) != 0)
            return rc;
        p += used;
        n -= used;
    } else if (x->held.n > 0 && (x->held.n >= x->cfg.max_output
                                 || n > x->cfg.max_output - x->held.n)) {
        oi_log(x, OLPCIDX_LOG_ERROR, "more than max-output (%lu bytes) fed "
               "while olpcidx_wants_input() said 0",
               (unsigned long)x->cfg.max_output);
        return oi_stream_end(x, OLPCIDX_ELIMIT, "resource-constraint", NULL);
    }
    if (n > 0 && oi_buf_add(&x->mem, &x->held, p, n) != OLPCIDX_OK) {
        oi_log(x, OLPCIDX_LOG_ERROR, "no memory to hold %lu bytes of input",
               (unsigned long)n);
        return oi_stream_end(x, OLPCIDX_ENOMEM, "resource-constraint", NULL);
    }
    return oi_parse_held(x);
}

size_t olpcidx_pending(olpcidx *x, const void **buf)
{
    *buf = x->out.p + x->head;
    return x->out.n - x->head;
}

void olpcidx_sent(olpcidx *x, size_t n)
{
    if (n > x->out.n - x->head)
        n = x->out.n - x->head;
    x->head += n;
    if (x->head == x->out.n)
        x->head = x->out.n = 0;
    oi_fan_pump(x, 1);
}

int olpcidx_wants_input(const olpcidx *x)
{
    return !oi_out_busy(x) && x->held.n == 0;
}

void olpcidx_get_stats(const olpcidx *x, olpcidx_stats *s)
{
    oi_stats(x, s);
}

int olpcidx_tick(olpcidx *x, uint64_t now_ms, int *wait_ms)
{
    uint64_t next;
    int rc, held;
    x->now = now_ms;
    *wait_ms = 1000;
    if (x->err)
        return x->err;
    if (x->state == OI_S_IDLE || x->state == OI_S_CLOSING)
        return OLPCIDX_OK;
    /* what waits is handed out and parsed before any timer runs, and
    ** the time input was held back is not counted against a ping's
    ** answer (PROTOCOL.md 5.2, 8.4) */
    oi_fan_pump(x, 1);
    if ((rc = oi_parse_held(x)) != 0)
        return rc;
    held = oi_out_busy(x) || x->held.n > 0;
    if ((x->tick_blocked || held) && now_ms > x->tick_at)
        x->blocked_ms += now_ms - x->tick_at;
    x->tick_at = now_ms;
    x->tick_blocked = held;
    if (x->state != OI_S_ONLINE) {      /* waiting for <handshake/> */
        if (now_ms - x->connected_at >= OI_HANDSHAKE_MS) {
            oi_log(x, OLPCIDX_LOG_ERROR, "no handshake answer from the "
                   "server within %u s", OI_HANDSHAKE_MS / 1000);
            return oi_stream_end(x, OLPCIDX_ETIMEOUT, "connection-timeout",
                                 NULL);
        }
        next = x->connected_at + OI_HANDSHAKE_MS;
    } else {
        /* PROTOCOL.md 1.4: whitespace after 60 s of outbound silence; after
        ** 60 s of inbound silence a ping to the server, and no byte for
        ** 180 s while it is outstanding ends the stream. */
        if (x->ping_out && now_ms - x->last_in >= OI_READ_TIMEOUT_MS) {
            oi_log(x, OLPCIDX_LOG_WARN, "nothing from the server for %u s",
                   OI_READ_TIMEOUT_MS / 1000);
            return oi_stream_end(x, OLPCIDX_ETIMEOUT, "connection-timeout",
                                 NULL);
        }
        if (!x->ping_out && now_ms - x->last_in >= OI_KEEPALIVE_MS
            && x->server.n) {
            size_t mark = oi_out_begin(x);
            char id[32];
            snprintf(id, sizeof id, "keepalive%lu", ++x->nping);
            oi_out(x, "<iq type='get'", 14);
            oi_out_attr(x, "from", x->jid);
            oi_out_attr(x, "to", x->server);
            oi_out_attr(x, "id", oi_zstr(id));
            oi_outz(x, "><ping xmlns='" OI_NS_PING "'/></iq>");
            if (oi_out_commit(x, mark, "keepalive ping") == 0)
                x->ping_out = 1;
        }
        if (now_ms - x->last_out >= OI_KEEPALIVE_MS) {
            size_t mark = oi_out_begin(x);
            oi_out(x, " ", 1);
            oi_out_commit(x, mark, "keepalive");
        }
        if (now_ms - x->live_at >= 1000) {
            x->live_at = now_ms;
            oi_liveness(x);
            oi_persist_tick(x);
        }
        next = x->last_out + OI_KEEPALIVE_MS;
        if (x->live_at + 1000 < next)
            next = x->live_at + 1000;
        if (x->ping_out && x->last_in + OI_READ_TIMEOUT_MS < next)
            next = x->last_in + OI_READ_TIMEOUT_MS;
        else if (!x->ping_out && x->last_in + OI_KEEPALIVE_MS < next)
            next = x->last_in + OI_KEEPALIVE_MS;
    }
    *wait_ms = next <= now_ms ? 0 : next - now_ms > INT_MAX ? INT_MAX
             : (int)(next - now_ms);
    if (x->held.n > 0 && !oi_out_busy(x))
        *wait_ms = 0;
    return OLPCIDX_OK;
}

int olpcidx_close(olpcidx *x)
{
    size_t mark;
    if (x->state == OI_S_IDLE || x->state == OI_S_CLOSED
        || x->state == OI_S_CLOSING)
        return x->err ? x->err : OLPCIDX_ESTATE;
    oi_fq_clear(x, "the stream is closing");
    oi_gadget_closing(x);
    mark = oi_out_begin(x);
    oi_outz(x, "</stream:stream>");
    if (oi_out_commit(x, mark, "stream close") != 0)
        return OLPCIDX_ENOMEM;
    x->state = OI_S_CLOSING;
    return OLPCIDX_OK;
}

int olpcidx_restore(olpcidx *x, const void *snap, size_t nsnap,
                    const void *journal, size_t njournal, size_t *journal_ok)
{
    unsigned long count = 0, jcount = 0;
    int end = 0, rc = OLPCIDX_OK, corrupt = 0;
    *journal_ok = 0;
    if (x->state != OI_S_IDLE)
        return OLPCIDX_ESTATE;
    if (nsnap > 0) {
        const unsigned char *p = (const unsigned char *)snap;
        size_t used = 0;
        if (nsnap >= 8 && memcmp(p, OI_SNAP_MAGIC, 8) == 0)
            used = 8 + oi_replay(x, p + 8, nsnap - 8, &count, &end, &rc);
        if (rc)
            return rc;
        if (!end || used != nsnap) {
            /* nothing of a damaged snapshot is trusted */
            oi_index_free(x);
            oi_index_init(x);
            corrupt = 1;
            count = 0;
        }
        x->snap_bytes = nsnap;
    }
    end = 0;
    *journal_ok = oi_replay(x, (const unsigned char *)journal, njournal,
                            &jcount, &end, &rc);
    x->jbytes = *journal_ok;
    if (rc)
        return rc;
    oi_restore_finish(x);
    oi_log(x, OLPCIDX_LOG_INFO, "restored %lu buddies and %lu activities "
           "(%lu snapshot records, %lu journal records)",
           (unsigned long)x->buddies.n, (unsigned long)x->acts.n, count,
           jcount);
    if (*journal_ok < njournal)
        oi_log(x, OLPCIDX_LOG_WARN, "journal: %lu bytes after record %lu are "
               "torn or corrupt and were dropped",
               (unsigned long)(njournal - *journal_ok), jcount);
    return corrupt ? OLPCIDX_ECORRUPT : OLPCIDX_OK;
}

int olpcidx_online(const olpcidx *x)
{
    return x->state == OI_S_ONLINE;
}

/* ==== 18. Daemon (OLPCIDX_MAIN) ===================================== */

#ifdef OLPCIDX_MAIN
/*
** The olpcidx program: options and config file, logging to stderr or
** (--syslog) to syslog, one TCP connection to the server's component
** port (XEP-0114) driven by a poll() loop, reconnection with backoff, and
** signals.  It uses only the public API above plus POSIX.1-2001 (syslog
** from its XSI option, which glibc and musl declare without
** _XOPEN_SOURCE).
**
** Exit status: 0 after SIGTERM/SIGINT, 1 when the handle cannot be
** created, 2 for usage and configuration errors, 3 when the server
** refuses the component's configuration (olpcidx_is_fatal()) or, with
** TLS, its certificate or its port does not pass (18.2.1).
*/
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>             /* --syslog; POSIX XSI, in glibc and musl */
#include <time.h>
#include <unistd.h>
#ifdef OLPCIDX_TLS
#include <arpa/inet.h>          /* inet_pton: is --server's host a name */
#include <mbedtls/version.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>  /* only for its MBEDTLS_ERR_NET_ codes */
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>         /* 3.x: TLS 1.3 runs on PSA */
#endif
#endif

#define DM_SERVER_DEFAULT "127.0.0.1:5347"
#define DM_STATE_DEFAULT "/var/lib/olpcidx"
#define DM_CONNECT_MS 10000   /* bound on one non-blocking connect */
#define DM_FLUSH_MS 2000      /* bound on writing the last bytes */
#define DM_POLL_MS 1000       /* longest poll, so flags are seen */
#define DM_DRAIN_MS 100       /* longest read of queued input at once */
#define DM_BACKOFF_MIN 1000   /* reconnect delay, doubled per failure */
#define DM_BACKOFF_MAX 60000
#define DM_HOSTLEN 256

/* ---- 18.1 Options, configuration, logging ---------------------------- */

/* Option keys: the options below, then the limits (OLPCIDX_LIMITS) in
** their order, then --config.  Config file keys are the long option
** names, except config itself. */
enum {
    DM_DOMAIN, DM_SERVER, DM_SECRET_FILE, DM_SECRET,
    DM_ALLOW, DM_ADMIN,         /* repeatable: the values add up */
    DM_STATE, DM_SYNC, DM_NOTIFY,
    DM_TLS_CA, DM_TLS_NAME, DM_TLS_INSECURE,
    DM_LOG_LEVEL,               /* from here on: applied on SIGHUP */
    DM_LIMIT0,                  /* the first limit */
    DM_NKEYS = DM_LIMIT0 + OI_NLIMITS,
    DM_CONFIG = DM_NKEYS        /* command line only */
};

#define DM_INDENT "\n                           "    /* --help columns */

static const struct dm_opt {
    const char *name;           /* long option name and config key */
    const char *arg;            /* value placeholder in --help; NULL: a
                                ** flag, "yes" or "no" in a config file */
    const char *help;           /* --help text */
} dm_opts[DM_LIMIT0] = {
    { "domain", "JID", "component JID (required)" },
    { "server", "HOST:PORT", "the server's component port, an IPv6 "
      "address as" DM_INDENT "[addr]:PORT (default " DM_SERVER_DEFAULT ")" },
    { "secret-file", "FILE", "read the shared secret from the first line "
      "of FILE" DM_INDENT "(default: the OLPCIDX_SECRET environment "
      "variable)" },
    { "secret", "S", "the shared secret; for tests only, visible to ps" },
    { "allow-domain", "DOMAIN", "a domain whose users may query and "
      "announce;" DM_INDENT "repeat for more (default: the parent domain"
      DM_INDENT "of --domain)" },
    { "admin", "JID", "a bare JID that may run the ad-hoc commands"
      DM_INDENT "(XEP-0050: stats, list-activities, forget-buddy);"
      DM_INDENT "repeat for more (default: nobody)" },
    { "state", "DIR", "where announcements are kept (created 0700, "
      "locked)" DM_INDENT "(default " DM_STATE_DEFAULT ")" },
    { "sync", "MODE", "always: fsync before notifications leave; batch: "
      "at" DM_INDENT "most 1 s apart; off: never (default batch)" },
    { "notify-type", "TYPE", "message type of notifications: headline "
      "or" DM_INDENT "the seed's notice (default headline)" },
    { "tls-ca", "FILE", "connect with TLS (builds made with WITH_MBEDTLS="
      "1):" DM_INDENT "the server's certificate must be signed by a CA"
      DM_INDENT "in FILE, PEM (default: no TLS)" },
    { "tls-name", "NAME", "the name the server's certificate must carry, "
      "also" DM_INDENT "sent as SNI (default: the host of --server if a "
      "name," DM_INDENT "else the parent domain of --domain)" },
    { "tls-insecure", NULL, "TLS without checking the certificate; "
      "warned of" DM_INDENT "at every connect; for tests only" },
    { "log-level", "LEVEL", "error, warn, info or debug (default info)" }
};

static const struct dm_opt dm_config_opt = {
    "config", "FILE", "read \"key = value\" lines, keys being the long "
    "option" DM_INDENT "names; the command line wins; SIGHUP re-reads it"
    DM_INDENT "for log-level and limits (default: none)"
};

/* The name of option k. */
static const char *dm_name(int k)
{
    return k < DM_LIMIT0 ? dm_opts[k].name
         : k < DM_NKEYS ? oi_limits[k - DM_LIMIT0].opt : dm_config_opt.name;
}

static const char *const dm_levels[] = { "error", "warn", "info", "debug" };

/* What the daemon holds: signals seen, option values, the running
** configuration, and buffers. */
static struct dm_globals {
    volatile sig_atomic_t stop; /* SIGTERM or SIGINT seen */
    volatile sig_atomic_t hup;  /* SIGHUP seen */
    volatile sig_atomic_t usr1; /* SIGUSR1 seen */
    const char *state;          /* the state directory in use */
    int level;                  /* most verbose level logged */
    int syslog;                 /* --syslog: log there, not to stderr */
    uint32_t rng;               /* xorshift32 state for jitter */
    const char *argv[DM_NKEYS + 1];     /* from argv, not owned */
    char *file[DM_NKEYS];       /* from --config, malloc'd */
    olpcidx_config cfg;         /* the running configuration */
    char secret[1024];          /* first line of the secret file */
    char joined[2][1024];       /* --allow-domain, --admin values */
    unsigned char buf[65536];   /* socket reads */
} dm;

static uint64_t dm_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Writes the log line "2026-11-23T20:41:07Z info: msg" to stderr, or
** msg to syslog at the matching priority.  Also the library's log sink
** (cfg.log), hence the signature. */
static void dm_emit(void *ud, int level, const char *msg)
{
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    char ts[32] = "-";
    struct tm tm;
    time_t t;

    (void)ud;
    if (level > dm.level)
        return;
    if (level < OLPCIDX_LOG_ERROR)
        level = OLPCIDX_LOG_ERROR;
    if (dm.syslog) {
        syslog(prio[level], "%s", msg);
        return;
    }
    t = time(NULL);
    if (gmtime_r(&t, &tm) != NULL)
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s %s: %s\n", ts, dm_levels[level], msg);
}

static void dm_log(int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dm_emit(NULL, level, msg);
}

/* Reports a usage or configuration error at startup, on stderr and with
** --syslog also to syslog, and exits 2. */
static void dm_die(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "olpcidx: %s\n", msg);
    if (dm.syslog)
        syslog(LOG_ERR, "%s", msg);
    exit(2);
}

static void dm_free_vals(char **vals)
{
    int k;

    for (k = 0; k < DM_NKEYS; k++) {
        free(vals[k]);
        vals[k] = NULL;
    }
}

static int dm_key(const char *name, size_t n, int nkeys)
{
    int k;

    for (k = 0; k < nkeys; k++)
        if (strlen(dm_name(k)) == n && memcmp(dm_name(k), name, n) == 0)
            return k;
    return -1;
}

/* Parses a decimal count or, with bytes set, a byte size with an optional
** k, m or g suffix (powers of 1024).  Returns NULL or what is wrong. */
static const char *dm_size(const char *v, int bytes, size_t *out)
{
    static const char units[] = "kKmMgG";
    const char *u;
    size_t n = 0, mult = 1;

    if (*v < '0' || *v > '9')
        return "not a number";
    for (; *v >= '0' && *v <= '9'; v++) {
        if (n > (SIZE_MAX - (size_t)(*v - '0')) / 10)
            return "too large";
        n = n * 10 + (size_t)(*v - '0');
    }
    if (bytes && *v != '\0' && (u = strchr(units, *v)) != NULL) {
        mult = (size_t)1 << (10 * (1 + (u - units) / 2));
        v++;
    }
    if (*v != '\0')
        return bytes ? "expected a number with an optional k, m or g suffix"
                     : "not a number";
    if (n > SIZE_MAX / mult)
        return "too large";
    *out = n * mult;
    return NULL;
}

/* Splits "host:port", or "[v6addr]:port" with the brackets of RFC 3986
** section 3.2.2, into host (DM_HOSTLEN bytes) and port (6 bytes).
** Returns NULL or what is wrong with v. */
static const char *dm_split(const char *v, char *host, char *port)
{
    const char *h = v, *c;
    size_t n;

    if (*v == '[') {
        h = v + 1;
        if ((c = strchr(h, ']')) == NULL || c[1] != ':')
            return "expected [IPv6-address]:PORT";
        n = (size_t)(c++ - h);
    } else {
        if ((c = strchr(v, ':')) == NULL || strchr(c + 1, ':') != NULL)
            return "expected HOST:PORT (an IPv6 address as [addr]:PORT)";
        n = (size_t)(c - v);
    }
    c++;
    if (n == 0 || n >= DM_HOSTLEN)
        return "bad host";
    if (*c == '\0' || strlen(c) > 5 || strspn(c, "0123456789") != strlen(c)
        || atol(c) < 1 || atol(c) > 65535)
        return "port must be a number from 1 to 65535";
    memcpy(host, h, n);
    host[n] = '\0';
    strcpy(port, c);
    return NULL;
}

/* Parses value v of option k into c.  Returns NULL, or what is wrong
** with v.  Strings are not copied: v must outlive the use of c. */
static const char *dm_set(olpcidx_config *c, int k, const char *v)
{
    char host[DM_HOSTLEN], port[6];
    const char *e = NULL;
    size_t n;
    int i;

    if (*v == '\0')
        return "empty value";
    if (k == DM_DOMAIN)
        c->jid = v;
    else if (k == DM_ALLOW)
        c->allow_domains = v;
    else if (k == DM_ADMIN) {
        if (strpbrk(v, "/ \t") != NULL || strchr(v, '@') == v)
            e = "expected a bare JID (user@domain)";
        c->admins = v;
    }
    else if (k == DM_SYNC) {
        if (strcmp(v, "always") != 0 && strcmp(v, "batch") != 0
            && strcmp(v, "off") != 0)
            e = "expected always, batch or off";
    } else if (k == DM_NOTIFY) {
        if (strcmp(v, "headline") != 0 && strcmp(v, "notice") != 0)
            e = "expected headline or notice";
        c->notify_type = v;
    }
    else if (k == DM_SERVER)
        e = dm_split(v, host, port);
    else if (k < DM_LIMIT0 && dm_opts[k].arg == NULL) {
        if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
            e = "expected yes or no";
    } else if (k == DM_TLS_NAME) {
        if (strlen(v) >= DM_HOSTLEN || strcspn(v, " \t/:[]@") != strlen(v))
            e = "expected a DNS name";
    } else if (k == DM_LOG_LEVEL) {
        e = "expected error, warn, info or debug";
        for (i = OLPCIDX_LOG_ERROR; i <= OLPCIDX_LOG_DEBUG; i++)
            if (strcmp(v, dm_levels[i]) == 0) {
                c->log_level = i;
                e = NULL;
            }
    } else if (k >= DM_LIMIT0 && k < DM_NKEYS) {
        const struct oi_limit *l = &oi_limits[k - DM_LIMIT0];
        static char range[64];
        e = dm_size(v, l->unit == OI_BYTES, &n);
        if (e == NULL && (n < l->lo || n > l->hi)) {
            if (l->hi == (size_t)-1)
                snprintf(range, sizeof range, "must be at least %lu",
                         (unsigned long)l->lo);
            else
                snprintf(range, sizeof range, "must be from %lu to %lu",
                         (unsigned long)l->lo, (unsigned long)l->hi);
            e = range;
        }
        if (e == NULL)
            *oi_limit(c, k - DM_LIMIT0) = n;
    }
    return e;
}

/* Library defaults, with the daemon's logger and default level. */
static void dm_base(olpcidx_config *c)
{
    olpcidx_config_init(c);
    c->log = dm_emit;
    c->log_level = OLPCIDX_LOG_INFO;
}

/* The value of key k: the command line's, else the config file's. */
static const char *dm_get(char *const *file, int k)
{
    return dm.argv[k] != NULL ? dm.argv[k] : file[k];
}

/* Sets c from the option values.  Values were checked when read, so this
** cannot fail.  With all 0, only the settings olpcidx_reconfigure()
** applies are touched. */
static void dm_apply(olpcidx_config *c, char *const *file, int all)
{
    int k;

    for (k = all ? 0 : DM_LOG_LEVEL; k < DM_NKEYS; k++)
        if (dm_get(file, k) != NULL)
            (void)dm_set(c, k, dm_get(file, k));
}

static char *dm_trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    for (e = s + strlen(s); e > s && strchr(" \t\r\n", e[-1]) != NULL; e--)
        e[-1] = '\0';
    return s;
}

/* Reads the config file path into vals (NULL-initialised; one malloc'd
** string per key present, the last one winning).  Lines are "key = value",
** blank, or comments starting with '#'; a '#' after a key is part of the
** value, as secrets may contain one.  Returns 0, or -1 with vals empty
** and a message "path:line: key: problem" in err. */
static int dm_read_config(const char *path, char **vals, char *err,
                            size_t nerr)
{
    olpcidx_config scratch;
    char line[1024], *k = NULL, *v;
    const char *e = NULL;
    unsigned no = 0;
    int i;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, nerr, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (e == NULL && fgets(line, sizeof line, f) != NULL) {
        no++;
        k = NULL;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            e = "line too long";
            break;
        }
        k = dm_trim(line);
        if (*k == '\0' || *k == '#')
            continue;
        if ((v = strchr(k, '=')) == NULL || v == k) {
            k = NULL;
            e = "expected key = value";
            break;
        }
        *v = '\0';
        k = dm_trim(k);
        v = dm_trim(v + 1);
        if ((i = dm_key(k, strlen(k), DM_NKEYS)) < 0)
            e = "unknown key";
        else if ((e = dm_set(&scratch, i, v)) == NULL) {
            /* the last line of a key wins; allow-domain and admin
            ** lines add up */
            size_t keep = (i == DM_ALLOW || i == DM_ADMIN) && vals[i]
                          ? strlen(vals[i]) : 0;
            char *nv = (char *)malloc(keep + 1 + strlen(v) + 1);
            if (nv == NULL) {
                e = "out of memory";
            } else {
                if (keep)
                    memcpy(nv, vals[i], keep);
                nv[keep] = ' ';
                strcpy(nv + (keep ? keep + 1 : 0), v);
                free(vals[i]);
                vals[i] = nv;
            }
        }
    }
    if (e == NULL && ferror(f))
        e = "read error";
    fclose(f);
    if (e == NULL)
        return 0;
    snprintf(err, nerr, "%s:%u: %s%s%s", path, no, k ? k : "", k ? ": " : "",
             e);
    dm_free_vals(vals);
    return -1;
}

/* SIGHUP: re-reads --config and applies log level and limits through
** olpcidx_reconfigure(), the command line still winning.  A broken file
** is logged and the running configuration kept.  domain, server and
** secret keep their startup values, so their strings stay allocated. */
static void dm_reload(olpcidx *x)
{
    char *vals[DM_NKEYS] = { NULL }, *old, err[512], limits[512];
    const char *path = dm.argv[DM_CONFIG];
    olpcidx_config c;
    size_t n;
    int k, rc;

    dm.hup = 0;
    if (path == NULL) {
        dm_log(OLPCIDX_LOG_INFO, "SIGHUP: no --config file to re-read");
        return;
    }
    if (dm_read_config(path, vals, err, sizeof err) != 0) {
        dm_log(OLPCIDX_LOG_ERROR, "SIGHUP: %s; configuration unchanged",
                 err);
        return;
    }
    dm_base(&c);
    c.jid = dm.cfg.jid;
    c.secret = dm.cfg.secret;
    c.hash_seed = dm.cfg.hash_seed;
    dm_apply(&c, vals, 0);
    if ((rc = olpcidx_reconfigure(x, &c)) != 0) {
        dm_log(OLPCIDX_LOG_ERROR, "SIGHUP: %s: %s; configuration unchanged",
                 path, olpcidx_strerror(rc));
        dm_free_vals(vals);
        return;
    }
    for (k = DM_LOG_LEVEL; k < DM_NKEYS; k++) {
        old = dm.file[k];
        dm.file[k] = vals[k];
        vals[k] = old;
    }
    dm_free_vals(vals);
    dm.cfg = c;
    dm.level = c.log_level;
    for (k = 0, n = 0; k < OI_NLIMITS && n < sizeof limits; k++)
        n += (size_t)snprintf(limits + n, sizeof limits - n, ", %s %lu",
                              oi_limits[k].opt,
                              (unsigned long)oi_limit_of(&c, k));
    dm_log(OLPCIDX_LOG_INFO, "SIGHUP: re-read %s: log-level %s%s (domain, "
           "server and secret change only on restart)", path,
           dm_levels[c.log_level], limits);
}

/* SIGUSR1: the library's figures (olpcidx_get_stats, the same as the
** stats ad-hoc command's), on one log line at info. */
static void dm_report(olpcidx *x)
{
    static const char *const names[] = {
#define DM_STAT_NAME_(name, text) #name,
        OLPCIDX_STATS(DM_STAT_NAME_)
#undef DM_STAT_NAME_
    };
    char line[1024];
    unsigned long long v[sizeof names / sizeof names[0]];
    olpcidx_stats s;
    size_t k, n = 0;
    dm.usr1 = 0;
    olpcidx_get_stats(x, &s);
    k = 0;
#define DM_STAT_VALUE_(name, text) v[k++] = s.name;
    OLPCIDX_STATS(DM_STAT_VALUE_)
#undef DM_STAT_VALUE_
    line[0] = '\0';
    for (k = 0; k < sizeof names / sizeof names[0] && n < sizeof line; k++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s %llu",
                              k ? ", " : "", names[k], v[k]);
    dm_log(OLPCIDX_LOG_INFO, "SIGUSR1: %s", line);
}

static void dm_help(void)
{
    olpcidx_config c;
    int k;

    olpcidx_config_init(&c);
    printf("usage: olpcidx --domain JID [option...]\n"
           "The OLPC activity and buddy index, an XMPP server component "
           "(XEP-0114).\n\n");
    for (k = 0; k <= DM_CONFIG; k++) {
        const struct oi_limit *l = k >= DM_LIMIT0 && k < DM_NKEYS
                                   ? &oi_limits[k - DM_LIMIT0] : NULL;
        const struct dm_opt *o = k < DM_LIMIT0 ? &dm_opts[k]
                                 : &dm_config_opt;
        const char *arg = !l ? (o->arg ? o->arg : "")
                          : l->unit == OI_SECONDS ? "SECONDS" : "N";
        printf("  --%s %-*s%s", dm_name(k), (int)(22 - strlen(dm_name(k))),
               arg, l ? l->help : o->help);
        if (l)
            printf(" (default %lu)", (unsigned long)l->def);
        putchar('\n');
    }
    printf("  --syslog                 log to syslog (facility daemon) "
           "instead of stderr\n"
           "  --help                   print this text and exit\n"
           "  --version                print the version and exit\n\n"
           "Byte sizes take a k, m or g suffix (powers of 1024).  Both "
           "--opt value\nand --opt=value work.  Exit status: 0 stopped by "
           "SIGTERM or SIGINT,\n1 startup failure, 2 usage or configuration "
           "error, 3 the server refused\nthe domain or the secret, or "
           "(TLS) its certificate did not pass.\n");
}

/* Fills dm.argv from "--opt value" and "--opt=value" arguments, checking
** each value.  Handles --help and --version itself. */
static void dm_parse_args(int argc, char **argv)
{
    olpcidx_config scratch;
    const char *a, *v, *e;
    size_t n;
    int i, k;

    for (i = 1; i < argc; i++) {
        a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            dm_die("unexpected argument '%s' (see --help)", a);
        a += 2;
        v = strchr(a, '=');
        n = v != NULL ? (size_t)(v++ - a) : strlen(a);
        if (v == NULL && strcmp(a, "help") == 0) {
            dm_help();
            exit(0);
        }
        if (v == NULL && strcmp(a, "version") == 0) {
#ifdef OLPCIDX_TLS
            printf("olpcidx %s (TLS: mbed TLS %s)\n", OLPCIDX_VERSION,
                   MBEDTLS_VERSION_STRING);
#else
            printf("olpcidx %s (no TLS)\n", OLPCIDX_VERSION);
#endif
            exit(0);
        }
        if (n == 6 && strncmp(a, "syslog", 6) == 0) {
            if (v != NULL)
                dm_die("--syslog takes no value");
            if (!dm.syslog)
                openlog("olpcidx", LOG_PID, LOG_DAEMON);
            dm.syslog = 1;
            continue;
        }
        if ((k = dm_key(a, n, DM_CONFIG + 1)) < 0)
            dm_die("unknown option '%s' (see --help)", argv[i]);
        if (v == NULL && k < DM_LIMIT0 && dm_opts[k].arg == NULL)
            v = "yes";                  /* a flag: --opt, or --opt=no */
        if (v == NULL && (v = argv[++i]) == NULL)
            dm_die("--%s needs a value", dm_name(k));
        if ((e = dm_set(&scratch, k, v)) != NULL)
            dm_die("--%s: %s", dm_name(k), e);
        if (k == DM_ALLOW || k == DM_ADMIN) {   /* repeatable */
            char *j = dm.joined[k - DM_ALLOW];
            if (strlen(j) + strlen(v) + 2 > sizeof dm.joined[0])
                dm_die("--%s: too many values", dm_name(k));
            if (j[0])
                strcat(j, " ");
            strcat(j, v);
            v = j;
        }
        dm.argv[k] = v;
    }
}

/* Sets dm.cfg.secret from the command line (--secret-file, else
** --secret), else the config file (the same two keys), else the variable
** OLPCIDX_SECRET.  A secret file holds the secret on its first line. */
static void dm_pick_secret(void)
{
    const char *path = dm.argv[DM_SECRET_FILE];
    const char *s = dm.argv[DM_SECRET];
    FILE *f;
    int ok;

    if (path == NULL && s == NULL) {
        path = dm.file[DM_SECRET_FILE];
        s = dm.file[DM_SECRET];
    }
    if (path == NULL && s == NULL)
        s = getenv("OLPCIDX_SECRET");
    if (path != NULL) {
        if ((f = fopen(path, "r")) == NULL)
            dm_die("secret-file %s: %s", path, strerror(errno));
        ok = fgets(dm.secret, sizeof dm.secret, f) != NULL
             && (strchr(dm.secret, '\n') != NULL || feof(f));
        fclose(f);
        dm.secret[strcspn(dm.secret, "\r\n")] = '\0';
        if (!ok || dm.secret[0] == '\0')
            dm_die("secret-file %s: the first line is empty or longer "
                     "than %u bytes", path, (unsigned)sizeof dm.secret - 2);
        s = dm.secret;
    } else if (s == dm.argv[DM_SECRET] && s != NULL) {
        dm_log(OLPCIDX_LOG_WARN, "--secret is visible in the process "
                 "list; use --secret-file or OLPCIDX_SECRET outside tests");
    }
    if (s == NULL || *s == '\0')
        dm_die("no secret: give --secret-file FILE or set OLPCIDX_SECRET");
    dm.cfg.secret = s;
}

/* ---- 18.2 The socket loop -------------------------------------------- */

/* A per-process seed from the clock, the pid and /dev/urandom when
** readable, mixed by the murmur3 finaliser. */
static uint32_t dm_seed(void)
{
    unsigned char b[4];
    uint32_t s = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16)
               ^ (uint32_t)dm_now();
    int fd = open("/dev/urandom", O_RDONLY);

    if (fd >= 0) {
        if (read(fd, b, sizeof b) == (ssize_t)sizeof b)
            s ^= (uint32_t)b[0] | (uint32_t)b[1] << 8
               | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        close(fd);
    }
    s ^= s >> 16;
    s *= 0x85ebca6bu;
    s ^= s >> 13;
    s *= 0xc2b2ae35u;
    return s ^ (s >> 16);
}

/* ms with a uniform jitter of +-25% (xorshift32), so that components
** restarted together do not reconnect in lockstep. */
static int dm_jitter(int ms)
{
    dm.rng ^= dm.rng << 13;
    dm.rng ^= dm.rng >> 17;
    dm.rng ^= dm.rng << 5;
    return ms - ms / 4 + (int)(dm.rng % ((uint32_t)ms / 2 + 1));
}

/* A poll timeout: ms capped to DM_POLL_MS; negative means no limit. */
static int dm_cap(int64_t ms)
{
    return ms < 0 || ms > DM_POLL_MS ? DM_POLL_MS : (int)ms;
}

static void dm_on_signal(int sig)
{
    if (sig == SIGHUP)
        dm.hup = 1;
    else if (sig == SIGUSR1)
        dm.usr1 = 1;
    else
        dm.stop = 1;
}

/* 1 when a failed read or write on the non-blocking socket is no error. */
static int dm_again(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* Connects socket fd to ai without blocking, waiting up to
** DM_CONNECT_MS or until a stop signal.  Returns 0, or -1 with errno. */
static int dm_connect_one(int fd, const struct addrinfo *ai)
{
    struct pollfd p;
    uint64_t now, end = dm_now() + DM_CONNECT_MS;
    socklen_t len = sizeof(int);
    int err, n = 0, fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0
        || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    p.fd = fd;
    p.events = POLLOUT;
    while (n <= 0) {
        now = dm_now();
        if (dm.stop || now >= end) {
            errno = dm.stop ? EINTR : ETIMEDOUT;
            return -1;
        }
        n = poll(&p, 1, dm_cap((int64_t)(end - now)));
        if (n < 0 && errno != EINTR)
            return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    errno = err;
    return err == 0 ? 0 : -1;
}

/* Opens a TCP connection to host:port, trying each address in turn.
** Returns the connected non-blocking socket, or -1 after logging why. */
static int dm_dial(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1, rc, err = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        dm_log(OLPCIDX_LOG_WARN, "cannot resolve %s: %s", host,
                 gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0 && !dm.stop; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && dm_connect_one(fd, ai) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        } else if (fd < 0) {
            err = errno;
        }
    }
    freeaddrinfo(res);
    if (fd < 0 && !dm.stop)
        dm_log(OLPCIDX_LOG_WARN, "cannot connect: %s", strerror(err));
    return fd;
}

/* Results of dm_session() besides the library's negative codes. */
#define DM_LOST 0             /* the TCP connection failed */
#define DM_STOPPED 1          /* stopped by SIGTERM or SIGINT */

static int dm_lost(const char *why)
{
    dm_log(OLPCIDX_LOG_WARN, "connection lost: %s", why);
    return DM_LOST;
}

/* ---- 18.2.1 The transport: TCP, or TLS over it ------------------------ */

/*
** A connection is the socket and, in a TLS build with TLS configured, an
** mbed TLS context over it.  dm_recv() and dm_send() move bytes either
** way; rd and wr are the poll() events the next read and the next write
** wait for: POLLIN and POLLOUT, except that TLS may have to send before
** it can go on reading, or receive before it can go on writing (a
** renegotiation, a TLS 1.3 key update).
**
** TLS is direct (PROTOCOL.md 1.5): the handshake runs as soon as TCP
** connects, before the stream of XEP-0114 starts.  The certificate is
** checked against --tls-ca and --tls-name (RFC 6125 section 6: the
** server's DNS name, in its subjectAltName or, lacking one, its CN).  A
** certificate that does not pass, and a server that does not answer in
** TLS, are configuration errors: exit 3 with the reason, as for a secret
** the server refuses.  TLS 1.2 is the minimum.
*/
typedef struct dm_conn {
    int fd;
    short rd, wr;               /* events the next read, write wait for */
    const char *why;            /* what failed, after DM_IO_ERR */
#ifdef OLPCIDX_TLS
    int tls;                    /* ssl is set up */
    int err;                    /* errno of the socket's last failure */
    size_t wlen;                /* a write to retry with this length */
    mbedtls_ssl_context ssl;
#endif
} dm_conn;

#define DM_IO_ERR (-1)          /* dm_recv(), dm_send(): failed, see why */
#define DM_IO_AGAIN (-2)        /* wait for rd or wr, then call again */

#define DM_TLS_LOST 1           /* dm_tls_open(): try again later */
#define DM_TLS_REFUSED 2        /* dm_tls_open(): a configuration error */

#ifdef OLPCIDX_TLS
/* What the TLS client is configured with (once, at start-up), and what
** the last handshake found out about the server's certificate. */
static struct dm_tls {
    int on;                     /* --tls-ca or --tls-insecure given */
    int insecure;               /* --tls-insecure */
    const char *ca;             /* --tls-ca FILE, or NULL */
    char name[DM_HOSTLEN];      /* --tls-name, or its default */
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cacert;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    uint32_t flags;             /* MBEDTLS_X509_BADCERT_ flags seen */
    char names[DM_HOSTLEN];     /* the DNS names the certificate carries */
    char from[16], until[16];   /* its validity, YYYY-MM-DD */
} dm_tls;

/* The socket under mbed TLS (mbedtls_ssl_set_bio()). */
static int dm_tls_out(void *ud, const unsigned char *p, size_t n)
{
    dm_conn *c = (dm_conn *)ud;
    ssize_t w = write(c->fd, p, n > INT_MAX ? (size_t)INT_MAX : n);

    if (w >= 0)
        return (int)w;
    if (dm_again(errno))
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    c->err = errno;
    return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int dm_tls_in(void *ud, unsigned char *p, size_t n)
{
    dm_conn *c = (dm_conn *)ud;
    ssize_t r = read(c->fd, p, n > INT_MAX ? (size_t)INT_MAX : n);

    if (r >= 0)
        return (int)r;          /* 0: end of file, MBEDTLS_ERR_SSL_CONN_EOF */
    if (dm_again(errno))
        return MBEDTLS_ERR_SSL_WANT_READ;
    c->err = errno;
    return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* The text of an mbed TLS error code. */
static const char *dm_tls_err(const dm_conn *c, int rc)
{
    static char msg[200];

    if ((rc == MBEDTLS_ERR_NET_SEND_FAILED
         || rc == MBEDTLS_ERR_NET_RECV_FAILED) && c != NULL && c->err != 0)
        return strerror(c->err);
    if (rc == MBEDTLS_ERR_SSL_CONN_EOF)
        return "the server closed the connection";
#ifdef MBEDTLS_ERROR_C
    mbedtls_strerror(rc, msg, sizeof msg);
#else
    snprintf(msg, sizeof msg, "mbed TLS error -0x%04x", (unsigned)-rc);
#endif
    return msg;
}

/* Appends n bytes of certificate text to out (size DM_HOSTLEN), each
** byte outside printable ASCII as '?': it goes into log lines. */
static void dm_tls_add(char *out, const char *sep, const unsigned char *p,
                       size_t n)
{
    size_t k = strlen(out), i;

    if (out[0] != '\0')
        for (; *sep && k + 1 < DM_HOSTLEN; sep++)
            out[k++] = *sep;
    for (i = 0; i < n && k + 1 < DM_HOSTLEN; i++)
        out[k++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    out[k] = '\0';
}

static void dm_tls_date(char *out, const mbedtls_x509_time *t)
{
    snprintf(out, 16, "%04d-%02d-%02d", t->year % 10000, t->mon % 100,
             t->day % 100);
}

/* mbed TLS's verification callback: notes the flags of every
** certificate of the chain, and the names and validity of the server's
** own (depth 0).  Changes nothing: the flags decide as they are. */
static int dm_tls_verify(void *ud, mbedtls_x509_crt *crt, int depth,
                         uint32_t *flags)
{
    const mbedtls_x509_sequence *s;
    const mbedtls_x509_name *dn;

    (void)ud;
    dm_tls.flags |= *flags;
    if (depth != 0)
        return 0;
    dm_tls.names[0] = '\0';
    for (s = &crt->subject_alt_names; s != NULL && s->buf.p != NULL;
         s = s->next)
        if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC
                           | MBEDTLS_X509_SAN_DNS_NAME))
            dm_tls_add(dm_tls.names, ", ", s->buf.p, s->buf.len);
    for (dn = &crt->subject; dm_tls.names[0] == '\0' && dn != NULL;
         dn = dn->next)
        if (dn->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN,
                                                 &dn->oid) == 0)
            dm_tls_add(dm_tls.names, "", dn->val.p, dn->val.len);
    if (dm_tls.names[0] == '\0')
        strcpy(dm_tls.names, "no DNS name");
    dm_tls_date(dm_tls.from, &crt->valid_from);
    dm_tls_date(dm_tls.until, &crt->valid_to);
    return 0;
}

/* Why the certificate did not pass, from the flags: the usual reasons in
** words that name the setting to check, the rest as mbed TLS words it. */
static const char *dm_tls_why(uint32_t flags)
{
    static char msg[800];
    char rest[400], *nl;
    size_t n = 0;

    msg[0] = '\0';
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%sthe server's "
                              "certificate is not signed by a CA in %s",
                              n ? "; " : "", dm_tls.ca);
    if ((flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) && n < sizeof msg)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%sthe server's "
                              "certificate is for %s, not %s (--tls-name)",
                              n ? "; " : "", dm_tls.names, dm_tls.name);
    if ((flags & MBEDTLS_X509_BADCERT_EXPIRED) && n < sizeof msg)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%sthe server's "
                              "certificate expired on %s", n ? "; " : "",
                              dm_tls.until);
    if ((flags & MBEDTLS_X509_BADCERT_FUTURE) && n < sizeof msg)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%sthe server's "
                              "certificate is not valid before %s",
                              n ? "; " : "", dm_tls.from);
    flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_NOT_TRUSTED
                         | MBEDTLS_X509_BADCERT_CN_MISMATCH
                         | MBEDTLS_X509_BADCERT_EXPIRED
                         | MBEDTLS_X509_BADCERT_FUTURE);
    if (flags != 0 && n < sizeof msg) {
        if (mbedtls_x509_crt_verify_info(rest, sizeof rest, "", flags) < 0)
            snprintf(rest, sizeof rest, "verification flags 0x%lx",
                     (unsigned long)flags);
        while ((nl = strchr(rest, '\n')) != NULL)
            *nl = nl[1] ? ';' : '\0';
        snprintf(msg + n, sizeof msg - n, "%sthe server's certificate: %s",
                 n ? "; " : "", rest);
    }
    return msg;
}

/* Sets up the TLS client from the options, once: TLS is on when --tls-ca
** or --tls-insecure is given.  host is --server's host; the name to
** verify defaults to it unless it is an IP address, then to the parent
** domain of --domain (what the server's certificate usually names).
** Exits 2 on a bad option or CA file. */
static void dm_tls_setup(const char *host)
{
    const char *ca = dm_get(dm.file, DM_TLS_CA);
    const char *name = dm_get(dm.file, DM_TLS_NAME);
    const char *ins = dm_get(dm.file, DM_TLS_INSECURE);
    unsigned char addr[16];
    int rc;

    dm_tls.ca = ca;
    dm_tls.insecure = ins != NULL && strcmp(ins, "yes") == 0;
    dm_tls.on = ca != NULL || dm_tls.insecure;
    if (!dm_tls.on) {
        if (name != NULL)
            dm_die("--tls-name needs --tls-ca FILE (or --tls-insecure)");
        return;
    }
    if (name == NULL) {
        name = host;
        if (inet_pton(AF_INET, host, addr) == 1
            || inet_pton(AF_INET6, host, addr) == 1)
            name = strchr(dm.cfg.jid, '.') && strchr(dm.cfg.jid, '.')[1]
                   ? strchr(dm.cfg.jid, '.') + 1 : dm.cfg.jid;
    }
    if (strlen(name) >= sizeof dm_tls.name)
        dm_die("--tls-name %s: too long", name);
    strcpy(dm_tls.name, name);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
    if (psa_crypto_init() != PSA_SUCCESS) {
        dm_log(OLPCIDX_LOG_ERROR, "TLS: cannot start PSA crypto");
        exit(1);
    }
#endif
    mbedtls_ssl_config_init(&dm_tls.conf);
    mbedtls_x509_crt_init(&dm_tls.cacert);
    mbedtls_entropy_init(&dm_tls.entropy);
    mbedtls_ctr_drbg_init(&dm_tls.drbg);
    if (ca != NULL) {
        FILE *f = fopen(ca, "r");   /* mbed TLS would say only "file I/O" */
        if (f == NULL)
            dm_die("--tls-ca %s: %s", ca, strerror(errno));
        fclose(f);
        rc = mbedtls_x509_crt_parse_file(&dm_tls.cacert, ca);
        if (rc < 0)
            dm_die("--tls-ca %s: %s", ca, dm_tls_err(NULL, rc));
        if (dm_tls.cacert.version == 0)
            dm_die("--tls-ca %s: no certificate in it", ca);
        if (rc > 0)
            dm_log(OLPCIDX_LOG_WARN, "--tls-ca %s: %d certificates in it "
                   "could not be read and are not used", ca, rc);
    }
    if ((rc = mbedtls_ctr_drbg_seed(&dm_tls.drbg, mbedtls_entropy_func,
                                    &dm_tls.entropy,
                                    (const unsigned char *)"olpcidx",
                                    7)) != 0
        || (rc = mbedtls_ssl_config_defaults(&dm_tls.conf,
                                             MBEDTLS_SSL_IS_CLIENT,
                                             MBEDTLS_SSL_TRANSPORT_STREAM,
                                             MBEDTLS_SSL_PRESET_DEFAULT))
           != 0) {
        dm_log(OLPCIDX_LOG_ERROR, "TLS: cannot start: %s",
               dm_tls_err(NULL, rc));
        exit(1);
    }
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    /* 3.x has no TLS below 1.2 at all */
    mbedtls_ssl_conf_min_version(&dm_tls.conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
#endif
    mbedtls_ssl_conf_rng(&dm_tls.conf, mbedtls_ctr_drbg_random, &dm_tls.drbg);
    if (ca != NULL) {
        mbedtls_ssl_conf_ca_chain(&dm_tls.conf, &dm_tls.cacert, NULL);
        mbedtls_ssl_conf_verify(&dm_tls.conf, dm_tls_verify, NULL);
    }
    /* --tls-insecure with a CA still checks, to say what would fail */
    mbedtls_ssl_conf_authmode(&dm_tls.conf, ca == NULL
                              ? MBEDTLS_SSL_VERIFY_NONE : dm_tls.insecure
                              ? MBEDTLS_SSL_VERIFY_OPTIONAL
                              : MBEDTLS_SSL_VERIFY_REQUIRED);
}

/* Frees what dm_tls_setup() made, at exit. */
static void dm_tls_free(void)
{
    if (!dm_tls.on)
        return;
    mbedtls_ssl_config_free(&dm_tls.conf);
    mbedtls_x509_crt_free(&dm_tls.cacert);
    mbedtls_ctr_drbg_free(&dm_tls.drbg);
    mbedtls_entropy_free(&dm_tls.entropy);
}

/* The handshake over c, bounded by DM_CONNECT_MS, then the checks of the
** certificate.  Returns 0, DM_TLS_LOST or DM_TLS_REFUSED (logged). */
static int dm_tls_open(dm_conn *c, const char *server)
{
    struct pollfd p;
    uint64_t now, end = dm_now() + DM_CONNECT_MS;
    int rc;

    if (!dm_tls.on)
        return 0;
    mbedtls_ssl_init(&c->ssl);
    c->tls = 1;
    if ((rc = mbedtls_ssl_setup(&c->ssl, &dm_tls.conf)) != 0
        || (rc = mbedtls_ssl_set_hostname(&c->ssl, dm_tls.name)) != 0) {
        dm_log(OLPCIDX_LOG_WARN, "TLS: %s", dm_tls_err(c, rc));
        return DM_TLS_LOST;
    }
    mbedtls_ssl_set_bio(&c->ssl, c, dm_tls_out, dm_tls_in, NULL);
    dm_tls.flags = 0;
    dm_tls.names[0] = '\0';
    p.fd = c->fd;
    while ((rc = mbedtls_ssl_handshake(&c->ssl)) != 0) {
        if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
            dm_log(OLPCIDX_LOG_ERROR, "TLS to %s refused: %s", server,
                   dm_tls_why(dm_tls.flags));
            return DM_TLS_REFUSED;
        }
        if (rc == MBEDTLS_ERR_SSL_CONN_EOF || rc == MBEDTLS_ERR_NET_SEND_FAILED
            || rc == MBEDTLS_ERR_NET_RECV_FAILED) {
            dm_lost(dm_tls_err(c, rc));
            return DM_TLS_LOST;
        }
        if (rc != MBEDTLS_ERR_SSL_WANT_READ
            && rc != MBEDTLS_ERR_SSL_WANT_WRITE) {
            dm_log(OLPCIDX_LOG_ERROR, "TLS handshake with %s failed: %s; "
                   "does the server speak TLS on this port? (ejabberd: "
                   "tls: true on the ejabberd_service listener; Prosody's "
                   "component port has no TLS)", server,
                   dm_tls_err(c, rc));
            return DM_TLS_REFUSED;
        }
        now = dm_now();
        if (dm.stop)
            return DM_TLS_LOST;
        if (now >= end) {
            dm_lost("no TLS handshake within the connect timeout");
            return DM_TLS_LOST;
        }
        p.events = rc == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT;
        if (poll(&p, 1, dm_cap((int64_t)(end - now))) < 0 && errno != EINTR) {
            dm_lost(strerror(errno));
            return DM_TLS_LOST;
        }
    }
    if (dm_tls.insecure)
        dm_log(OLPCIDX_LOG_WARN, "--tls-insecure: THE SERVER'S CERTIFICATE "
               "IS NOT CHECKED; whoever answers at %s can pose as the "
               "server and read the component's traffic%s%s%s", server,
               dm_tls.ca == NULL ? "" : " (the check against --tls-ca says: ",
               dm_tls.ca == NULL ? "" : dm_tls.flags == 0 ? "it passes"
               : dm_tls_why(dm_tls.flags), dm_tls.ca == NULL ? "" : ")");
    dm_log(OLPCIDX_LOG_INFO, "TLS with %s: %s, %s%s%s%s%s", server,
           mbedtls_ssl_get_version(&c->ssl),
           mbedtls_ssl_get_ciphersuite(&c->ssl),
           dm_tls.insecure ? "" : ", certificate for ",
           dm_tls.insecure ? "" : dm_tls.name,
           dm_tls.insecure ? "" : " signed by a CA in ",
           dm_tls.insecure ? "" : dm_tls.ca);
    return 0;
}

static ssize_t dm_tls_recv(dm_conn *c, void *buf, size_t n)
{
    int r;

    c->rd = POLLIN;
    do
        r = mbedtls_ssl_read(&c->ssl, (unsigned char *)buf, n);
#ifdef MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET
    while (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET);  /* 3.x */
#else
    while (0);
#endif
    if (r > 0)
        return r;
    if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY
        || r == MBEDTLS_ERR_SSL_CONN_EOF)
        return 0;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        c->rd = r == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT;
        return DM_IO_AGAIN;
    }
    c->why = dm_tls_err(c, r);
    return DM_IO_ERR;
}

/* mbedtls_ssl_write() that returned WANT_ must be called again with the
** same length: it holds the record already and returns that length. */
static ssize_t dm_tls_send(dm_conn *c, const void *buf, size_t n)
{
    int r;

    if (c->wlen != 0 && c->wlen <= n)
        n = c->wlen;
    c->wr = POLLOUT;
    r = mbedtls_ssl_write(&c->ssl, (const unsigned char *)buf, n);
    if (r >= 0) {
        c->wlen = 0;
        return r;
    }
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        c->wlen = n;
        c->wr = r == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT;
        return DM_IO_AGAIN;
    }
    c->why = dm_tls_err(c, r);
    return DM_IO_ERR;
}
#else /* !OLPCIDX_TLS */

/* Refuses the TLS options in a build without TLS (exit 2). */
static void dm_tls_none(void)
{
    static const int keys[] = { DM_TLS_CA, DM_TLS_NAME, DM_TLS_INSECURE };
    const char *v;
    size_t i;

    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if ((v = dm_get(dm.file, keys[i])) != NULL
            && (keys[i] != DM_TLS_INSECURE || strcmp(v, "yes") == 0))
            dm_die("--%s: this olpcidx is built without TLS; rebuild "
                   "with make WITH_MBEDTLS=1", dm_name(keys[i]));
}
#endif /* OLPCIDX_TLS */

/* Reads up to n bytes: their count, 0 at the end of the stream,
** DM_IO_AGAIN or DM_IO_ERR. */
static ssize_t dm_recv(dm_conn *c, void *buf, size_t n)
{
    ssize_t r;

#ifdef OLPCIDX_TLS
    if (c->tls)
        return dm_tls_recv(c, buf, n);
#endif
    if ((r = read(c->fd, buf, n)) >= 0)
        return r;
    if (dm_again(errno))
        return DM_IO_AGAIN;
    c->why = strerror(errno);
    return DM_IO_ERR;
}

/* Writes up to n bytes: the count taken, DM_IO_AGAIN or DM_IO_ERR. */
static ssize_t dm_send(dm_conn *c, const void *buf, size_t n)
{
    ssize_t w;

#ifdef OLPCIDX_TLS
    if (c->tls)
        return dm_tls_send(c, buf, n);
#endif
    if ((w = write(c->fd, buf, n)) >= 0)
        return w;
    if (dm_again(errno))
        return DM_IO_AGAIN;
    c->why = strerror(errno);
    return DM_IO_ERR;
}

static int dm_is_tls(const dm_conn *c)
{
#ifdef OLPCIDX_TLS
    return c->tls;
#else
    (void)c;
    return 0;
#endif
}

/* 1 when input already read from the socket waits in the TLS layer, so
** poll() would not report it. */
static int dm_buffered(const dm_conn *c)
{
#ifdef OLPCIDX_TLS
    return c->tls && mbedtls_ssl_check_pending(&c->ssl);
#else
    (void)c;
    return 0;
#endif
}

/* Ends the connection: TLS's close_notify (RFC 5246 section 7.2.1), if
** the socket takes it now, then the socket. */
static void dm_close(dm_conn *c)
{
#ifdef OLPCIDX_TLS
    if (c->tls) {
        (void)mbedtls_ssl_close_notify(&c->ssl);
        mbedtls_ssl_free(&c->ssl);
        c->tls = 0;
    }
#endif
    close(c->fd);
}

/* ---- 18.2.2 Moving bytes ---------------------------------------------- */

/* Writes what the library has queued, for at most DM_FLUSH_MS: after a
** stream error or olpcidx_close() the queue ends with <stream:error/>
** and/or </stream:stream> (RFC 6120 sections 4.4 and 4.9), which the
** server should see before the TCP connection closes. */
static void dm_flush(olpcidx *x, dm_conn *c)
{
    struct pollfd p;
    const void *buf;
    uint64_t now, end = dm_now() + DM_FLUSH_MS;
    size_t n;
    ssize_t w;
    int r;

    p.fd = c->fd;
    while ((n = olpcidx_pending(x, &buf)) > 0 && (now = dm_now()) < end) {
        p.events = c->wr;
        r = poll(&p, 1, dm_cap((int64_t)(end - now)));
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if ((w = dm_send(c, buf, n)) > 0)
            olpcidx_sent(x, (size_t)w);
        else if (w == DM_IO_ERR)
            break;
    }
}

/* Reads what the server sent and feeds it, until the connection has no
** more (or DM_DRAIN_MS have passed: the timers must run too), so that the
** timers look at everything that arrived: an answer to an idle ping that
** is already here is never taken for silence (PROTOCOL.md 5.2).  Returns
** 0, 1 when the connection is lost (logged), or the library's negative
** code. */
static int dm_drain(olpcidx *x, dm_conn *c, int *online)
{
    uint64_t end = dm_now() + DM_DRAIN_MS;
    ssize_t r;
    int rc;
    do {
        r = dm_recv(c, dm.buf, sizeof dm.buf);
        if (r == 0) {
            dm_lost("the server closed the connection");
            return 1;
        }
        if (r == DM_IO_AGAIN)
            return 0;
        if (r < 0) {
            dm_lost(c->why);
            return 1;
        }
        if ((rc = olpcidx_feed(x, dm.buf, (size_t)r)) < 0)
            return rc;
        *online |= olpcidx_online(x);
        /* a short read emptied the socket; TLS reads a record at a time
        ** and says when the socket is empty (DM_IO_AGAIN) */
    } while (((size_t)r == sizeof dm.buf || dm_is_tls(c))
             && dm_now() < end && olpcidx_wants_input(x));
    return 0;
}

/* Runs one stream over the connection c until it ends; sets *online
** once the server has accepted the handshake.  Returns DM_LOST,
** DM_STOPPED, or the library's negative code (last bytes flushed). */
static int dm_session(olpcidx *x, dm_conn *c, int *online)
{
    struct pollfd p;
    const void *buf;
    size_t n;
    ssize_t r;
    int rc, wait = 0, ready;

    p.fd = c->fd;
    rc = olpcidx_connect(x, dm_now());
    while (rc >= 0) {
        if (dm.stop) {
            dm_log(OLPCIDX_LOG_INFO, "stopping");
            olpcidx_close(x);
            dm_flush(x, c);
            return DM_STOPPED;
        }
        if (dm.hup)
            dm_reload(x);
        if (dm.usr1)
            dm_report(x);
        /* back-pressure: no reading while the server is slow to take
        ** what the component has to say (PROTOCOL.md 8.4); input the TLS
        ** layer holds already is read without waiting */
        ready = olpcidx_wants_input(x) && dm_buffered(c);
        p.events = (short)((olpcidx_wants_input(x) ? c->rd : 0)
                           | (olpcidx_pending(x, &buf) > 0 ? c->wr : 0));
        if (poll(&p, 1, ready ? 0 : dm_cap(wait)) < 0) {
            if (errno == EINTR)
                continue;
            return dm_lost(strerror(errno));
        }
        if ((ready || (p.revents & (c->rd | POLLHUP | POLLERR | POLLNVAL)))
            && olpcidx_wants_input(x)
            && (rc = dm_drain(x, c, online)) != 0) {
            if (rc == 1)
                return DM_LOST;
            break;
        }
        if ((p.revents & c->wr) && (n = olpcidx_pending(x, &buf)) > 0) {
            r = dm_send(c, buf, n);
            if (r > 0)
                olpcidx_sent(x, (size_t)r);
            else if (r == DM_IO_ERR)
                return dm_lost(c->why);
        }
        rc = olpcidx_tick(x, dm_now(), &wait);  /* after the input */
    }
    dm_flush(x, c);
    return rc;
}

/* Waits ms before reconnecting, in slices so that signals are acted
** upon.  Returns 1 if a stop was requested. */
static int dm_sleep(olpcidx *x, int ms)
{
    uint64_t now, end = dm_now() + (uint64_t)ms;

    while (!dm.stop && (now = dm_now()) < end) {
        if (dm.hup)
            dm_reload(x);
        if (dm.usr1)
            dm_report(x);
        (void)poll(NULL, 0, dm_cap((int64_t)(end - now)));
    }
    return dm.stop != 0;
}

/* ---- 18.3 The state directory ---------------------------------------- */

/*
** The state directory (PROTOCOL.md 7): "snapshot" and "journal", written
** through olpcidx_storage, and "lock", held with fcntl() so that two
** daemons never share one.  A write that fails is cut back to the
** journal's previous length, so no half record stays behind for the next
** start to misread.  A snapshot is written to "snapshot.tmp", synced,
** renamed over "snapshot" and the directory synced; only then is the
** journal emptied.
*/
typedef struct dm_statedir {
    const char *dir;
    int dirfd;
    int jfd;                    /* journal, opened for appending */
    off_t jlen;                 /* its length: what is whole */
    int sync;                   /* 0 off, 1 batch, 2 always */
} dm_statedir;

static dm_statedir dm_state;

static int dm_write_all(int fd, const void *p, size_t n)
{
    const char *c = (const char *)p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int dm_st_append(void *ud, const void *p, size_t n)
{
    dm_statedir *st = (dm_statedir *)ud;
    if (dm_write_all(st->jfd, p, n) != 0) {
        int e = errno;
        if (ftruncate(st->jfd, st->jlen) != 0 || lseek(st->jfd, st->jlen,
                                                       SEEK_SET) < 0)
            dm_log(OLPCIDX_LOG_ERROR, "journal: cannot cut back a failed "
                     "write: %s", strerror(errno));
        dm_log(OLPCIDX_LOG_DEBUG, "journal write: %s", strerror(e));
        return -1;
    }
    st->jlen += (off_t)n;
    return 0;
}

static int dm_st_sync(void *ud)
{
    dm_statedir *st = (dm_statedir *)ud;
    return st->sync ? fsync(st->jfd) : 0;
}

static int dm_path(char *out, size_t n, const char *name)
{
    return snprintf(out, n, "%s/%s", dm_state.dir, name) < (int)n ? 0 : -1;
}

static int dm_st_snapshot(void *ud, const void *p, size_t n)
{
    dm_statedir *st = (dm_statedir *)ud;
    char tmp[1100], fin[1100];
    int fd;
    if (dm_path(tmp, sizeof tmp, "snapshot.tmp")
        || dm_path(fin, sizeof fin, "snapshot"))
        return -1;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    if (dm_write_all(fd, p, n) != 0 || (st->sync && fsync(fd) != 0)) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) != 0 || rename(tmp, fin) != 0) {
        unlink(tmp);
        return -1;
    }
    if (st->sync)
        fsync(st->dirfd);
    if (ftruncate(st->jfd, 0) == 0 && lseek(st->jfd, 0, SEEK_SET) == 0)
        st->jlen = 0;
    return 0;
}

/* Reads a whole file into a malloc'd buffer; a missing file is empty. */
static char *dm_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL, *q;
    size_t cap = 0, k;
    *n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 65536;
            if (!(q = (char *)realloc(p, cap))) {
                free(p);
                fclose(f);
                dm_die("%s: out of memory reading it", path);
            }
            p = q;
        }
        k = fread(p + *n, 1, cap - *n, f);
        if (k == 0)
            break;
        *n += k;
    }
    fclose(f);
    return p;
}

/* Opens and locks the state directory and sets up the storage in
** dm.cfg.  Exits 2 when the directory cannot be used. */
static void dm_open_state(const char *dir, const char *sync)
{
    static olpcidx_storage storage;
    char path[1100];
    struct flock lk;
    struct stat sb;
    int fd;
    dm_state.dir = dir;
    dm_state.sync = strcmp(sync, "off") == 0 ? 0
                   : strcmp(sync, "always") == 0 ? 2 : 1;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        dm_die("--state %s: cannot create it: %s", dir, strerror(errno));
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        dm_die("--state %s: not a directory", dir);
    if (dm_path(path, sizeof path, "lock"))
        dm_die("--state %s: path too long", dir);
    fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0)
        dm_die("--state %s: cannot write there: %s", dir, strerror(errno));
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &lk) != 0)
        dm_die("--state %s is in use by another olpcidx", dir);
    dm_state.dirfd = open(dir, O_RDONLY);
    dm_path(path, sizeof path, "journal");
    dm_state.jfd = open(path, O_WRONLY | O_CREAT, 0600);
    if (dm_state.jfd < 0)
        dm_die("--state %s: cannot write the journal: %s", dir,
                 strerror(errno));
    storage.append = dm_st_append;
    storage.sync = dm_st_sync;
    storage.snapshot = dm_st_snapshot;
    storage.ud = &dm_state;
    storage.sync_always = dm_state.sync == 2;
    dm.cfg.storage = &storage;
}

/* Loads the snapshot and the journal into x: a damaged snapshot is moved
** aside, a torn or corrupt journal tail cut away (PROTOCOL.md 7). */
static void dm_load_state(olpcidx *x)
{
    char path[1100], aside[1200];
    size_t nsnap, njour, ok;
    char *snap, *jour;
    int rc;
    dm_path(path, sizeof path, "snapshot");
    snap = dm_slurp(path, &nsnap);
    dm_path(path, sizeof path, "journal");
    jour = dm_slurp(path, &njour);
    rc = olpcidx_restore(x, snap, nsnap, jour, njour, &ok);
    free(snap);
    free(jour);
    if (rc == OLPCIDX_ECORRUPT) {
        dm_path(path, sizeof path, "snapshot");
        snprintf(aside, sizeof aside, "%s.corrupt-%ld", path,
                 (long)time(NULL));
        if (rename(path, aside) != 0)
            dm_die("%s is damaged and cannot be moved aside: %s", path,
                     strerror(errno));
        dm_log(OLPCIDX_LOG_ERROR, "%s is damaged and was not used; moved "
                 "aside to %s", path, aside);
    } else if (rc != 0) {
        dm_die("--state %s: %s", dm_state.dir, olpcidx_strerror(rc));
    }
    if (ok < njour && ftruncate(dm_state.jfd, (off_t)ok) != 0)
        dm_die("--state %s: cannot cut the damaged journal: %s",
                 dm_state.dir, strerror(errno));
    dm_state.jlen = (off_t)ok;
    lseek(dm_state.jfd, dm_state.jlen, SEEK_SET);
}

/* ---- 18.4 main -------------------------------------------------------- */

int main(int argc, char **argv)
{
    char err[512], host[DM_HOSTLEN], port[6];
    const char *server;
    struct sigaction sa;
    dm_conn c;
    olpcidx *x;
    int rc, online, tls = 0, backoff = DM_BACKOFF_MIN;

    dm.level = OLPCIDX_LOG_INFO;
    dm.rng = 1;
    dm_parse_args(argc, argv);
    if (dm.argv[DM_CONFIG] != NULL && dm_read_config(
            dm.argv[DM_CONFIG], dm.file, err, sizeof err) != 0)
        dm_die("%s", err);
    dm_base(&dm.cfg);
    dm_apply(&dm.cfg, dm.file, 1);
    dm.level = dm.cfg.log_level;
    if (dm.cfg.jid == NULL)
        dm_die("--domain JID is required (the component JID)");
    if ((server = dm_get(dm.file, DM_SERVER)) == NULL)
        server = DM_SERVER_DEFAULT;
    (void)dm_split(server, host, port);
#ifdef OLPCIDX_TLS
    dm_tls_setup(host);
#else
    dm_tls_none();
#endif
    dm_pick_secret();
    dm.cfg.hash_seed = dm_seed();
    dm.rng = dm_seed() | 1u;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dm_on_signal;     /* no SA_RESTART: poll sees EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    dm.state = dm_get(dm.file, DM_STATE) ? dm_get(dm.file, DM_STATE)
                                         : DM_STATE_DEFAULT;
    dm_open_state(dm.state,
                    dm_get(dm.file, DM_SYNC)
                    ? dm_get(dm.file, DM_SYNC) : "batch");
    if ((rc = olpcidx_new(&x, &dm.cfg)) != 0) {
        dm_log(OLPCIDX_LOG_ERROR, "cannot start: %s", olpcidx_strerror(rc));
        dm_free_vals(dm.file);
        return rc == OLPCIDX_EINVAL ? 2 : 1;
    }
    dm_load_state(x);
    while (!dm.stop) {
        dm_log(OLPCIDX_LOG_INFO, "connecting to %s", server);
        memset(&c, 0, sizeof c);
        c.rd = POLLIN;
        c.wr = POLLOUT;
        if ((c.fd = dm_dial(host, port)) >= 0) {
            dm_log(OLPCIDX_LOG_INFO, "connected to %s", server);
            online = 0;
#ifdef OLPCIDX_TLS
            tls = dm_tls_open(&c, server);
#endif
            rc = tls == 0 ? dm_session(x, &c, &online) : DM_LOST;
            dm_close(&c);
            if (rc == DM_STOPPED)
                break;
            if (tls == DM_TLS_REFUSED || olpcidx_is_fatal(rc)) {
                if (tls != DM_TLS_REFUSED)
                    dm_log(OLPCIDX_LOG_ERROR, "%s (domain %s, server %s)",
                           olpcidx_strerror(rc), dm.cfg.jid, server);
                olpcidx_free(x);
                dm_free_vals(dm.file);
#ifdef OLPCIDX_TLS
                dm_tls_free();
#endif
                return 3;
            }
            if (rc < 0)
                dm_log(OLPCIDX_LOG_WARN, "stream ended: %s",
                         olpcidx_strerror(rc));
            if (online)
                backoff = DM_BACKOFF_MIN;
        }
        if (dm.stop)
            break;
        rc = dm_jitter(backoff);
        dm_log(OLPCIDX_LOG_INFO, "reconnecting in %d ms", rc);
        if (dm_sleep(x, rc))
            break;
        backoff = backoff < DM_BACKOFF_MAX / 2 ? backoff * 2
                                                 : DM_BACKOFF_MAX;
    }
    olpcidx_free(x);
    dm_free_vals(dm.file);
#ifdef OLPCIDX_TLS
    dm_tls_free();
#endif
    dm_log(OLPCIDX_LOG_INFO, "stopped");
    return 0;
}

#endif /* OLPCIDX_MAIN */
