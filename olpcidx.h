/*
** olpcidx.h -- the activity and buddy index for OLPC XO laptops, as an
** XMPP server component (XEP-0114).  MIT licence, see LICENSE.
**
** The library does no I/O and reads no clock.  The embedder connects a
** TCP socket to the server's component port, then loops:
**
**     olpcidx_connect(x, now)            once per new TCP connection
**     olpcidx_feed(x, buf, n)            bytes received from the socket
**     olpcidx_pending(x, &p) / _sent()   bytes to write to the socket
**     olpcidx_wants_input(x)             whether to read more now
**     olpcidx_tick(x, now, &wait_ms)     timers; poll() at most wait_ms
**     olpcidx_get_stats(x, &s)           figures for an operator
**
** A negative return from feed or tick means the stream is over: close the
** socket, and reconnect unless olpcidx_is_fatal() says the server refused
** the component's configuration.  The index survives reconnects.
** contrib/host.c is a complete, small host written this way.
**
** Back-pressure (PROTOCOL.md 8.4): nothing is dropped because the output
** is full.  Once more than half of max_output is queued, or an event
** still has watchers to be told (a fan-out is written as the output
** drains, from olpcidx_sent), the library parses no further stanza:
** olpcidx_feed keeps the bytes it did not parse and olpcidx_wants_input
** says 0.  Stop reading the socket then, so that the server feels the
** pressure; olpcidx_sent writes waiting notifications as room appears,
** and olpcidx_tick (or olpcidx_feed(x, NULL, 0)) parses the held bytes
** once the output has room, before any timer runs.  Memory stays bounded:
** the queue by max_output, held bytes by what was fed past the point
** where olpcidx_wants_input said 0 (more than max_output of it ends the
** stream), a waiting event by a pointer per watcher it reaches.
**
** Results: every function returning int returns OLPCIDX_OK (0) or one of
** the negative OLPCIDX_E* codes listed in its comment, but for
** olpcidx_wants_input, olpcidx_online and olpcidx_is_fatal (0 or 1).
** OLPCIDX_EFULL is never returned: an iq result too large for max_output
** on its own is answered with resource-constraint instead, any other
** stanza that large is dropped whole and logged (PROTOCOL.md 8.4).
**
** Threads: there is no locking inside.  A handle belongs to one thread
** at a time: no two calls on it may run at once (moving it to another
** thread needs the caller's own synchronisation).  Callbacks run in the
** thread of the call that triggered them, never on their own.
** Distinct handles share no mutable state and may be used in parallel,
** once one olpcidx_new has returned: the first olpcidx_new of the
** process fills two process-wide tables (character classes, CRC-32)
** that are only read afterwards, so create a first handle before other
** threads call olpcidx_new.  The library keeps no other global state and
** calls nothing that is not thread-safe in POSIX.
**
** Re-entrancy: the callbacks (allocator, log, storage) run inside the
** library's calls, in the middle of handling a stanza or a timer, while
** the bytes they receive point into the handle's own buffers.  They must
** not call olpcidx_connect, _feed, _pending, _sent, _tick, _close,
** _restore, _reconfigure or _free on the same handle: that would corrupt
** the stanza in progress, the output queue or the record being handed
** over.  The read-only olpcidx_online, olpcidx_wants_input and
** olpcidx_get_stats, and
** olpcidx_strerror and olpcidx_is_fatal, are safe there, as is any call
** on another handle.
*/
#ifndef OLPCIDX_H
#define OLPCIDX_H

#include <stddef.h>
#include <stdint.h>

#define OLPCIDX_VERSION "0.1.0"

/* Result codes: 0 is success, every error is negative. */
#define OLPCIDX_ERRORS(X)                                                   \
    X(OK,       0,  "success")                                              \
    X(ENOMEM,  -1,  "out of memory (allocator failed or memory cap hit)")   \
    X(EINVAL,  -2,  "invalid argument or configuration")                    \
    X(EXML,    -3,  "XML from the server is not well-formed")               \
    X(ERESTRICTED, -4, "restricted XML (DTD, comment or PI) from the server") \
    X(ELIMIT,  -5,  "a configured limit was exceeded")                      \
    X(EPROTO,  -6,  "XMPP stream protocol violation by the server")         \
    X(EAUTH,   -7,  "server refused the handshake (not-authorized): "       \
                    "check the secret, and that the server declares the "   \
                    "component domain as a component")                      \
    X(EHOST,   -8,  "server does not serve this component (host-unknown): " \
                    "check the component domain and the server's "          \
                    "Component declaration")                                \
    X(ESTREAM, -9,  "the server ended the stream with a stream error")      \
    X(ECLOSED, -10, "the stream is closed")                                 \
    X(ETIMEOUT, -11, "the server did not answer in time")                   \
    X(EFULL,   -12, "output queue full")                                    \
    X(ESTATE,  -13, "call not valid in the current stream state")        \
    X(ECORRUPT, -14, "the snapshot is damaged; it was not used")           \
    X(ELOCAL,  -15, "the component domain is one of the server's own "      \
                    "hosts (conflict): choose another domain")

enum olpcidx_result {
#define OLPCIDX_ENUM_(name, value, text) OLPCIDX_##name = value,
    OLPCIDX_ERRORS(OLPCIDX_ENUM_)
#undef OLPCIDX_ENUM_
    OLPCIDX_ELAST_ = -16
};

enum olpcidx_level {            /* log levels, most severe first */
    OLPCIDX_LOG_ERROR, OLPCIDX_LOG_WARN, OLPCIDX_LOG_INFO, OLPCIDX_LOG_DEBUG
};

/* The allocator, with lua_Alloc semantics: nsize 0 frees ptr (returns
** NULL); otherwise behaves like realloc(ptr, nsize), osize being the size
** ptr was allocated with (0 when ptr is NULL).  May return NULL. */
typedef void *(*olpcidx_alloc)(void *ud, void *ptr, size_t osize,
                               size_t nsize);

/* Log sink.  msg is one line without newline, valid during the call. */
typedef void (*olpcidx_log)(void *ud, int level, const char *msg);

typedef struct olpcidx olpcidx;                 /* opaque handle */

/* Where what clients announced is kept (PROTOCOL.md 7): the library hands
** over journal records and snapshots as bytes, the embedder stores them.
** Each function returns 0, or non-zero when it failed (nothing, or
** nothing whole, was stored); the library then retries with a snapshot
** every second.  The bytes are valid during the call only. */
typedef struct olpcidx_storage {
    int (*append)(void *ud, const void *p, size_t n);  /* to the journal */
    int (*sync)(void *ud);              /* make appended bytes durable */
    int (*snapshot)(void *ud, const void *p, size_t n); /* replace the
                                ** snapshot durably, then empty the journal */
    void *ud;
    int sync_always;            /* sync each change before notifications
                                ** leave; else at most 1 s later */
} olpcidx_storage;

/*
** The limits (PROTOCOL.md 8.1), one row each, from which everything else
** about them is generated: the fields of olpcidx_config below, the
** defaults of olpcidx_config_init(), the range checks of olpcidx_new()
** and olpcidx_reconfigure() (which applies them all to a live handle),
** and the daemon's options, config file keys, --help and SIGHUP reload.
**
**   X(field, option name, default, least, greatest, unit, what it bounds)
**
** unit: BYTES takes a k, m or g suffix in the daemon; COUNT and SECONDS
** do not.  Every limit is a size_t.
*/
#define OLPCIDX_LIMITS(X)                                                   \
    X(max_stanza, "max-stanza", 65536, 512, 268435456, BYTES,               \
      "bytes of one incoming stanza")                                       \
    X(max_depth, "max-depth", 32, 3, 1024, COUNT,                           \
      "element nesting, stream root included")                              \
    X(max_attrs, "max-attrs", 64, 1, 4096, COUNT,                           \
      "attributes per element")                                             \
    X(max_name, "max-name", 256, 8, 4096, BYTES,                            \
      "bytes of an element or attribute name")                              \
    X(max_output, "max-output", 4194304, 4096, (size_t)-1, BYTES,           \
      "bytes queued for sending")                                           \
    X(mem_limit, "mem-limit", 0, 0, (size_t)-1, BYTES,                      \
      "bytes the index may hold, 0: no cap")                                \
    X(max_props, "max-props", 64, 1, 65535, COUNT,                          \
      "properties per buddy or activity")                                   \
    X(max_value, "max-value", 4096, 1, 65535, BYTES,                        \
      "bytes of one property value")                                        \
    X(max_activities, "max-activities", 32, 1, (size_t)-1, COUNT,           \
      "activities one buddy may be in")                                     \
    X(max_page, "max-page", 100, 1, (size_t)-1, COUNT,                      \
      "items per result page (XEP-0059) and per view")                      \
    X(max_views, "max-views", 16, 1, 4096, COUNT,                           \
      "views one client may hold open (Gadget)")                            \
    X(rate_burst, "rate-burst", 100, 1, 1000000, COUNT,                     \
      "stanzas one client may send at once")                                \
    X(rate_per_sec, "rate", 50, 1, 1000000, COUNT,                          \
      "stanzas per second per client, sustained")                           \
    X(idle, "idle", 300, 0, 86400, SECONDS,                                 \
      "silence before a participant is pinged, 0: never")

typedef struct olpcidx_config {
    const char *jid;            /* component JID, e.g. index.jabber.test */
    const char *secret;         /* shared secret of the XEP-0114 handshake */
    const char *name;           /* disco identity name; NULL: "OLPC Gadget" */
    olpcidx_alloc alloc;        /* NULL: realloc/free */
    void *alloc_ud;
    olpcidx_log log;            /* NULL: no logging */
    void *log_ud;
    int log_level;              /* most verbose level passed to log */
#define OLPCIDX_FIELD_(field, opt, def, lo, hi, unit, help) size_t field;
    OLPCIDX_LIMITS(OLPCIDX_FIELD_)
#undef OLPCIDX_FIELD_
    const char *notify_type;    /* "headline" (NULL) or the seed's "notice" */
    const char *allow_domains;  /* who may query and announce: domains
                                ** separated by spaces; NULL: the parent
                                ** domain of jid */
    const char *admins;         /* who may run the ad-hoc commands
                                ** (XEP-0050; PROTOCOL.md 9): bare JIDs
                                ** separated by spaces; NULL: nobody */
    const olpcidx_storage *storage; /* NULL: nothing is persisted; else
                                ** retained, must outlive the handle */
    uint32_t hash_seed;         /* per-process random seed for hashing */
} olpcidx_config;

/* Fills c with the defaults (every limit of OLPCIDX_LIMITS, log_level
** OLPCIDX_LOG_INFO, everything else 0 or NULL); jid and secret must be
** set before olpcidx_new.  Cannot fail. */
void olpcidx_config_init(olpcidx_config *c);

/* Creates a handle.  The strings in cfg are copied; cfg is not retained.
** On success *out owns the handle until olpcidx_free.  Returns
** OLPCIDX_OK; OLPCIDX_EINVAL when jid is not a valid domain, secret is
** NULL, a limit is out of its range or admins holds a full JID;
** OLPCIDX_ENOMEM.  On error *out is NULL. */
int olpcidx_new(olpcidx **out, const olpcidx_config *cfg);
/* Frees the handle and everything it holds; x may be NULL.  Closes no
** socket: the host owns it. */
void olpcidx_free(olpcidx *x);

/* Applies new limits (all of OLPCIDX_LIMITS) and log level, not jid,
** secret, alloc, allow_domains or admins, to a live handle, as after
** SIGHUP.  Takes effect from the next stanza.  Returns OLPCIDX_OK, or
** OLPCIDX_EINVAL, and nothing changed, when a limit is out of its
** range. */
int olpcidx_reconfigure(olpcidx *x, const olpcidx_config *cfg);

/* Starts a new stream on a fresh connection: discards what was queued for
** the old one and queues the stream header.  now_ms: any monotonic clock
** in milliseconds, the same one passed to olpcidx_tick.  Valid in any
** state.  Returns OLPCIDX_OK, or OLPCIDX_ENOMEM when the header could not
** be queued (the stream is then over, as after a failed feed). */
int olpcidx_connect(olpcidx *x, uint64_t now_ms);

/* Feeds n received bytes; buf is only read during the call.  Every byte
** is taken: those after a stanza that left the output busy (see
** olpcidx_wants_input) are kept, unparsed, and parsed by a later
** olpcidx_feed or olpcidx_tick once it has room; n 0 (buf may be NULL)
** only parses those.  Fed while olpcidx_wants_input() is 0, bytes are
** kept too, up to max_output of them; beyond, the stream ends with
** OLPCIDX_ELIMIT.  Held bytes belong to the stream: olpcidx_connect
** discards them.  Returns OLPCIDX_OK; OLPCIDX_ESTATE before the first
** olpcidx_connect; or, once the stream is over, the code that ended it,
** sticky until the next olpcidx_connect: OLPCIDX_EXML, ERESTRICTED,
** ELIMIT (a limit of the server's XML, or more than max_output fed while
** olpcidx_wants_input() was 0), ENOMEM, EPROTO, EAUTH, EHOST, ESTREAM
** (the server's stream error), ECLOSED (the server closed the stream),
** or ETIMEOUT (set by olpcidx_tick). */
int olpcidx_feed(olpcidx *x, const void *buf, size_t n);

/* Bytes waiting to be sent: *buf points at them, valid until the next
** call on x.  Returns their count (0: nothing to send); no error code. */
size_t olpcidx_pending(olpcidx *x, const void **buf);
/* Marks the first n pending bytes as written (n larger than pending
** counts as all of them), and writes notifications waiting for room in
** their place: call olpcidx_pending again.  Cannot fail. */
void olpcidx_sent(olpcidx *x, size_t n);

/* 1 when the caller should read from the server; 0 while the bytes
** waiting to be sent exceed half of max_output, an event's notifications
** wait to be written, or received bytes wait to be parsed: stop reading
** until olpcidx_sent() has made room and olpcidx_tick() has parsed what
** was held, so that back-pressure reaches the server through TCP instead
** of anything being dropped (PROTOCOL.md 8.4).  Not a result code. */
int olpcidx_wants_input(const olpcidx *x);

/* What the handle holds and has done, one row per figure: the field of
** olpcidx_stats and what it counts. */
#define OLPCIDX_STATS(X)                                                    \
    X(buddies,     "buddies known")                                         \
    X(activities,  "activities known")                                      \
    X(clients,     "full JIDs with state (watchers, presence, rate)")       \
    X(result_sets, "open result sets (seed dialect)")                       \
    X(views,       "open views (Gadget dialect)")                           \
    X(memory,      "bytes held by the handle")                              \
    X(memory_cap,  "bytes it may hold, 0: no cap (mem_limit)")              \
    X(queued,      "bytes waiting to be sent")                              \
    X(waiting,     "watchers still to be handed an event, as the "         \
                   "output drains")                                         \
    X(held,        "bytes received and not yet parsed, held back while "    \
                   "the output is busy")                                    \
    X(stanzas_in,  "stanzas received online since olpcidx_new")             \
    X(stanzas_out, "iq, message and presence stanzas queued since then")  \
    X(journal,     "journal bytes handed to storage since the snapshot")    \
    X(snapshot,    "bytes of the last snapshot written or restored")        \
    X(uptime,      "seconds since the first olpcidx_connect")

typedef struct olpcidx_stats {
#define OLPCIDX_STAT_FIELD_(name, text) unsigned long long name;
    OLPCIDX_STATS(OLPCIDX_STAT_FIELD_)
#undef OLPCIDX_STAT_FIELD_
} olpcidx_stats;

/* Fills *s.  Counting the open result sets and views walks the clients
** (not the index): meant for an operator's request, not for every tick.
** Cannot fail; read-only, so a callback may call it. */
void olpcidx_get_stats(const olpcidx *x, olpcidx_stats *s);

/* Parses received bytes held back (olpcidx_feed) if the output has room,
** then runs timers at time now_ms (keepalive, ping, timeouts) and sets
** *wait_ms to the longest the caller may wait before the next tick (0
** while held bytes could be parsed).  No client is taken offline for an
** unanswered ping while input is held back, and the time it was held
** back does not count against the answer (PROTOCOL.md 5.2).
** Returns OLPCIDX_OK (also before olpcidx_connect and while closing), or
** the sticky code of a stream that is over, as olpcidx_feed does;
** OLPCIDX_ETIMEOUT when the server did not answer the handshake within
** 30 s, or sent nothing for 180 s with a keepalive ping outstanding. */
int olpcidx_tick(olpcidx *x, uint64_t now_ms, int *wait_ms);

/* Queues a clean end of stream: unavailable presence to the Gadget
** subscribers, out of every room (PROTOCOL.md 6.3), then
** </stream:stream>.  Notifications still waiting for room are dropped
** (logged with their count).  Once the bytes are sent the caller may close the
** socket.  Returns OLPCIDX_OK; OLPCIDX_ENOMEM when the closing tag could
** not be queued; OLPCIDX_ESTATE before olpcidx_connect or when already
** closing; the sticky code when the stream is already over (then
** olpcidx_pending may still hold its stream error: send it). */
int olpcidx_close(olpcidx *x);

/* Rebuilds the index from a snapshot and a journal (either may be empty),
** before the first olpcidx_connect.  *journal_ok gets the bytes of whole,
** valid journal records; the embedder cuts the journal there.  Returns 0,
** OLPCIDX_ECORRUPT when the snapshot is damaged (it was ignored: move it
** aside; the journal was still replayed), OLPCIDX_ENOMEM, or
** OLPCIDX_ESTATE after olpcidx_connect. */
int olpcidx_restore(olpcidx *x, const void *snap, size_t nsnap,
                    const void *journal, size_t njournal, size_t *journal_ok);

/* 1 once the server accepted the handshake on this connection, else 0
** (also after the stream ended or while closing).  Not a result code. */
int olpcidx_online(const olpcidx *x);

/* 1 when err means the server refused our configuration (EAUTH, EHOST):
** reconnecting would only be refused again. */
int olpcidx_is_fatal(int err);

/* A static English message for a result code; never NULL, also for an
** unknown code. */
const char *olpcidx_strerror(int err);

#endif /* OLPCIDX_H */
