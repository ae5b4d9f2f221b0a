/*
 * http: the small admin HTTP server (metrics, health) that runs on cuepoint's
 * libuv loop. libmicrohttpd parses HTTP; it runs without threads of its own,
 * in its epoll mode, and the loop wakes it: a uv_poll_t on its epoll fd for
 * socket activity, a uv_timer_t for its connection timeouts.
 *
 * Everything, the handler included, runs on the loop's thread, inside
 * uv_run(). Only GET and HEAD reach the handler; other methods get 405 with an
 * Allow header. At most CUE_HTTP_CONNECTIONS_MAX connections at once, and one
 * idle for CUE_HTTP_IDLE_TIMEOUT_S seconds is closed. The server owns its
 * daemon, its two loop handles and one body buffer that it reuses for every
 * response. Start-up fails on a malformed address or one that cannot be bound
 * (in use, not local), with a message naming it; after that nothing fails but
 * single requests, which libmicrohttpd answers or closes by itself.
 */
#ifndef CUEPOINT_HTTP_H
#define CUEPOINT_HTTP_H

#include "cuepoint/buf.h"
#include "cuepoint/err.h"

#include <stdint.h>
#include <uv.h>

/* Connections served at once: scrapers and probes open one or two each, and
 * a bound keeps a misbehaving client from holding file descriptors. */
#define CUE_HTTP_CONNECTIONS_MAX 64

/* Seconds a connection may sit without traffic: longer than any scrape
 * interval's pause between keep-alive requests, short enough to reclaim the
 * slots of clients that went away. */
#define CUE_HTTP_IDLE_TIMEOUT_S 10

typedef struct cue_http cue_http;

/* Answers one request. `method` is "GET" or "HEAD"; `path` is the URL path
 * as libmicrohttpd gives it: without the query string ("/metrics?x=1" arrives
 * as "/metrics") and percent-decoded. Both borrowed for the call. The handler
 * appends the response to `body` (borrowed, empty on entry; the server reuses
 * it), may set `*content_type` (a string that outlives the call; it starts as
 * "text/plain; charset=utf-8"), and returns the status code (100..599). For
 * HEAD it may fill the body as for GET: only its length is sent. */
typedef int (*cue_http_handler)(const char *method, const char *path, cue_buf *body,
                                const char **content_type, void *ctx);

/* Binds `listen`, "HOST:PORT" with HOST an IPv4 literal (exactly that address:
 * "127.0.0.1:9464" is loopback only, "0.0.0.0:9464" every interface), PORT 0
 * for any free port, and starts serving on `loop` (borrowed; it must outlive
 * the server). CUE_EINVAL for a malformed address, CUE_EIO when it cannot be
 * bound or the daemon cannot start, with `err` naming the address and why. */
int cue_http_start(cue_http **out, uv_loop_t *loop, const char *listen, cue_http_handler fn,
                   void *ctx, cue_err *err);

/* The port bound, useful after asking for port 0. */
uint16_t cue_http_port(const cue_http *h);

/* Closes the listening socket and every connection at once (a response being
 * sent is cut), and closes the loop handles. The struct is freed by the loop's
 * close callbacks, so the caller runs the loop once more (uv_run with
 * UV_RUN_DEFAULT or UV_RUN_NOWAIT) before it closes it. Call from the loop's
 * thread, not from inside the handler. NULL is a no-op. */
void cue_http_stop(cue_http *h);

#endif
