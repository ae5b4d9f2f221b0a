/*
 * http: the small admin HTTP server (metrics, health) that runs on cuepoint's
 * libuv loop. libmicrohttpd parses HTTP; it runs without threads of its own,
 * in its epoll mode, and the loop wakes it: a uv_poll_t on its epoll fd for
 * socket activity, a uv_timer_t for its connection timeouts and the
 * server's own deadlines.
 *
 * Everything, the handler included, runs on the loop's thread, inside
 * uv_run(). Only GET and HEAD reach the handler; other methods get 405 with an
 * Allow header, and a path that is not valid percent-encoded UTF-8 gets 400.
 * The server owns its daemon, its two loop handles, its connection table and
 * one body buffer that it reuses for every response. Start-up fails on a
 * malformed address or one that cannot be bound (in use, not local), with a
 * message naming it; after that nothing fails but single requests, which
 * libmicrohttpd answers or closes by itself.
 *
 * It cannot be wedged by its clients. The probes that keep cuepoint alive
 * (kubelet, Prometheus) must be answered whatever else is connected, and they
 * may come from the same address as a flood. So a connection that has not
 * yet sent a whole request head, or sits between keep-alive requests, is
 * "waiting": it has a deadline, and it gives way when room is needed. A
 * client past its own limit loses one of its waiting connections; when the
 * table is full, the client holding the most loses one. The one to go is the
 * longest idle of those answered already (they had their turn), else the
 * oldest of those without a whole request yet. One whose request already
 * waits in its socket never goes (it is answered next), nor one accepted in
 * the last quarter second that sent nothing yet (it may be a probe whose
 * request is on its way). Connections in the middle of a request never
 * give way: the handler runs to completion at once, and a response the
 * client does not read is closed after CUE_HTTP_IDLE_TIMEOUT_S. While they
 * are all busy the limits are exceeded, up to CUE_HTTP_CONNECTIONS_SLACK;
 * past that, new connections wait in the listen backlog.
 */
#ifndef CUEPOINT_HTTP_H
#define CUEPOINT_HTTP_H

#include "cuepoint/buf.h"
#include "cuepoint/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Connections served at once. Scrapers and probes open one or two each; a
 * bound keeps clients from holding file descriptors and memory (each has a
 * CUE_HTTP_CONNECTION_BYTES pool). Past it, a waiting connection gives way. */
#define CUE_HTTP_CONNECTIONS_MAX 64

/* Connections one client address holds at once. A kubelet or a Prometheus
 * opens one or two. A flood from one address churns through its own
 * connections, never more than half the table, and leaves the other half to
 * the others. And a probe from the flooding address itself is safe until 32
 * newer connections from there have been accepted: that is the time it has
 * to send its request, a few milliseconds even against thousands of
 * reconnections a second. */
#define CUE_HTTP_CLIENT_CONNECTIONS_MAX 32

/* Connections accepted beyond CUE_HTTP_CONNECTIONS_MAX while the ones that
 * gave way are being closed: libmicrohttpd accepts up to 11 connections per
 * run, room is made after the run, and the connections shut down then are
 * closed in the next one, so a burst runs up to about 22 ahead. Beyond max +
 * slack, libmicrohttpd stops accepting until a slot is free; new connections
 * then wait in the listen backlog. */
#define CUE_HTTP_CONNECTIONS_SLACK 32

/* Seconds a new connection has to send a whole request head. A probe sends
 * its request at once; a slow client dribbling its headers byte by byte
 * ("slowloris") is closed after this however busy it looks. */
#define CUE_HTTP_REQUEST_TIMEOUT_S 5

/* Seconds a keep-alive connection may wait between the end of one response
 * and the whole head of its next request; also how long any connection may
 * sit without traffic (a response its client does not read). Long enough for
 * a scraper to reuse its connection within one interval, short enough to
 * reclaim the slots of clients that went away. */
#define CUE_HTTP_IDLE_TIMEOUT_S 10

/* Memory libmicrohttpd gives one connection for its request head and the
 * response's headers. Probes and scrapes send well under 1 KiB of headers; a
 * longer head gets 414 or 431. */
#define CUE_HTTP_CONNECTION_BYTES (16 * 1024)

typedef struct cue_http cue_http;

/* The bounds above, for tests that cannot wait seconds; 0 for a field means
 * its default. NULL opts means every default. */
typedef struct cue_http_opts {
    unsigned connections_max;        /* CUE_HTTP_CONNECTIONS_MAX */
    unsigned client_connections_max; /* CUE_HTTP_CLIENT_CONNECTIONS_MAX */
    unsigned connections_slack;      /* CUE_HTTP_CONNECTIONS_SLACK */
    unsigned request_timeout_ms;     /* CUE_HTTP_REQUEST_TIMEOUT_S */
    unsigned idle_timeout_ms;        /* CUE_HTTP_IDLE_TIMEOUT_S, rounded up to seconds where
                                        libmicrohttpd's inactivity timeout applies */
} cue_http_opts;

/* What the server did with its connections, since it started. */
typedef struct cue_http_stats {
    uint64_t accepted;
    uint64_t closed_client_limit; /* gave way: their client held too many */
    uint64_t closed_table_full;   /* gave way: the table was full */
    uint64_t closed_timeout;      /* no whole request in time */
    uint64_t bad_paths;           /* answered 400 for a path that did not decode */
    unsigned connections;         /* open now */
} cue_http_stats;

/* One request, borrowed for the handler's call. */
typedef struct cue_http_request {
    const char *method; /* "GET" or "HEAD" */
    /* The URL path without the query string ("/metrics?x=1" arrives as
     * "/metrics"), percent-decoded by cue_http_path_decode(): valid UTF-8
     * without NUL bytes. */
    const char *path;
    const char *authorization; /* the Authorization header's value; NULL without one */
} cue_http_request;

/* What the handler answers besides the status. */
typedef struct cue_http_reply {
    cue_buf *body; /* borrowed, empty on entry: the server reuses it */
    /* Strings that outlive the call: the Content-Type, which starts as
     * "text/plain; charset=utf-8", and a WWW-Authenticate header to send
     * (with a 401), which starts NULL. */
    const char *content_type;
    const char *www_authenticate;
    /* A Content-Security-Policy header to send (NULL: none), for a page. */
    const char *security_policy;
} cue_http_reply;

/* Answers one request: fills `reply` and returns the status code (100..599).
 * For HEAD it may fill the body as for GET: only its length is sent. */
typedef int (*cue_http_handler)(const cue_http_request *req, cue_http_reply *reply, void *ctx);

/* Binds `listen`, "HOST:PORT", and starts serving on `loop` (borrowed; it
 * must outlive the server). HOST is an IPv4 address ("127.0.0.1" is loopback
 * only, "0.0.0.0" every interface), an IPv6 address in brackets ("[::1]";
 * "[::]" is every interface, and takes IPv4 too where the system lets it),
 * or a host name, resolved once here: its first address that can be bound
 * ("localhost" is loopback). PORT 0 asks for any free port. `opts` is
 * borrowed for the call and may be NULL. CUE_EINVAL for a malformed address
 * or a name that does not resolve, CUE_EIO when it cannot be bound or the
 * daemon cannot start, with `err` naming the address and why. */
int cue_http_start(cue_http **out, uv_loop_t *loop, const char *listen, const cue_http_opts *opts,
                   cue_http_handler fn, void *ctx, cue_err *err);

/* The address bound, as "127.0.0.1:9464" or "[::1]:9464", the port the real
 * one after asking for port 0. Borrowed: valid until cue_http_stop(). */
const char *cue_http_address(const cue_http *h);

/* Whether the address bound is a loopback one (127.0.0.0/8, ::1), which
 * only this host can reach. */
bool cue_http_loopback(const cue_http *h);

/* The port bound, useful after asking for port 0. */
uint16_t cue_http_port(const cue_http *h);

/* The server's counts, borrowed: valid until cue_http_stop(). */
const cue_http_stats *cue_http_stats_get(const cue_http *h);

/* Closes the listening socket and every connection at once (a response being
 * sent is cut), and closes the loop handles. The struct is freed by the loop's
 * close callbacks, so the caller runs the loop once more (uv_run with
 * UV_RUN_DEFAULT or UV_RUN_NOWAIT) before it closes it. Call from the loop's
 * thread, not from inside the handler. NULL is a no-op. */
void cue_http_stop(cue_http *h);

/* Percent-decodes `raw`, the path of a request target as it came on the
 * request line (`raw_len` bytes, without the query string), into `out`:
 * `cap` bytes of room, NUL-terminated, `*out_len` the decoded length.
 * Decoding never lengthens, so `cap` = `raw_len` + 1 always suffices, and
 * `out` may be `raw` itself. Nothing is guessed or cut: CUE_EPARSE, with
 * `err` (may be NULL) naming the byte offset, for a '%' not followed by two
 * hex digits, a NUL byte (raw or "%00"), or a result that is not UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included);
 * CUE_ELIMIT when `cap` is too small. '+' stays '+': that is a query
 * string's convention, not a path's. Pure: no allocation, any thread. */
int cue_http_path_decode(const char *raw, size_t raw_len, char *out, size_t cap, size_t *out_len,
                         cue_err *err);

/* Whether `authorization`, an Authorization header's value (may be NULL),
 * is "Bearer " and then exactly `token` (not empty). The comparison takes as
 * long whatever the bytes given, so that its time tells nothing about the
 * token. Pure. */
bool cue_http_bearer_is(const char *authorization, const char *token);

#endif
