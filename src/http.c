/*
 * The admin HTTP server: libmicrohttpd in "external polling" mode, driven by
 * the libuv loop. libmicrohttpd keeps its own epoll set (listening socket and
 * connections); that epoll fd turns readable whenever one of them is ready, so
 * one uv_poll_t on it is all the loop needs to watch. libmicrohttpd also has
 * work that no socket announces: connection timeouts, and data it has read but
 * not yet processed (its epoll set is edge-triggered). MHD_get_timeout() tells
 * when it next needs to run, and a one-shot uv_timer_t re-armed after every
 * MHD_run() honours it; a timeout of 0 means "again, at once".
 */
#include "cuepoint/http.h"

#include "cuepoint/buf.h"
#include "cuepoint/err.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* "255.255.255.255:65535" and its NUL, with room for a message to quote a
 * longer, malformed one in part. */
#define LISTEN_TEXT_MAX 64

#define DEFAULT_CONTENT_TYPE "text/plain; charset=utf-8"

struct cue_http {
    uv_poll_t poll; /* on libmicrohttpd's epoll fd */
    uv_timer_t timer;
    uv_loop_t *loop; /* borrowed */
    struct MHD_Daemon *daemon;
    cue_http_handler fn;
    void *ctx;
    cue_buf body; /* reused for every response */
    struct sockaddr_in addr;
    uint16_t port;
    int handles_open; /* loop handles whose close callback has not run */
    bool in_run;      /* inside MHD_run(), where stopping is not allowed */
    bool starting;    /* libmicrohttpd's messages are kept only while starting */
    char listen[LISTEN_TEXT_MAX];
    char start_msg[256]; /* libmicrohttpd's first complaint during start-up */
};

static void on_poll(uv_poll_t *poll, int status, int events);
static void on_timer(uv_timer_t *timer);

/* ---- start-up ----------------------------------------------------------- */

static int parse_listen(const char *listen, struct sockaddr_in *sa, cue_err *err)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char host[INET_ADDRSTRLEN];
    size_t host_len = colon ? (size_t)(colon - listen) : 0;
    if (host_len == 0 || host_len >= sizeof host) goto bad;
    memcpy(host, listen, host_len);
    host[host_len] = '\0';
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) goto bad;
    unsigned port = 0, digits = 0;
    for (const char *p = colon + 1; *p; p++, digits++) {
        if (*p < '0' || *p > '9' || digits == 5) goto bad;
        port = port * 10 + (unsigned)(*p - '0');
    }
    if (digits == 0 || port > 65535) goto bad;
    sa->sin_port = htons((uint16_t)port);
    return 0;
bad:
    return cue_err_set(err, CUE_EINVAL,
                       "http listen address \"%.64s\": expected HOST:PORT with an IPv4 host, "
                       "such as 127.0.0.1:9464",
                       listen ? listen : "(none)");
}

/* libmicrohttpd explains a failed start (a bind error, say) only through its
 * logger. Its messages after start-up are about single clients and go nowhere:
 * they are not actionable, and stderr carries JSON lines only. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    cue_http *h = cls;
    if (!h->starting || h->start_msg[0] != '\0') return;
    vsnprintf(h->start_msg, sizeof h->start_msg, fmt, ap);
    size_t n = strlen(h->start_msg);
    while (n > 0 && (h->start_msg[n - 1] == '\n' || h->start_msg[n - 1] == '.'))
        h->start_msg[--n] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **req);

/* Starts libmicrohttpd bound to h->addr; *epoll_fd is the fd for the loop to watch. */
static int start_daemon(cue_http *h, int *epoll_fd, cue_err *err)
{
    if (!MHD_is_feature_supported(MHD_FEATURE_EPOLL))
        return cue_err_set(err, CUE_EIO, "http: this libmicrohttpd has no epoll support");
    h->starting = true;
    /* The logger goes first so that it also hears about the options that follow.
     * SOCK_ADDR makes libmicrohttpd bind exactly the address asked for. */
    h->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, ntohs(h->addr.sin_port), NULL,
                                 NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                                 MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&h->addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)CUE_HTTP_CONNECTIONS_MAX,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CUE_HTTP_IDLE_TIMEOUT_S,
                                 MHD_OPTION_END);
    h->starting = false;
    if (h->daemon == NULL)
        return cue_err_set(err, CUE_EIO, "http: cannot listen on %s: %s", h->listen,
                           h->start_msg[0] ? h->start_msg : "libmicrohttpd did not start");
    const union MHD_DaemonInfo *fd = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *port = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (fd == NULL || port == NULL) {
        MHD_stop_daemon(h->daemon);
        h->daemon = NULL;
        return cue_err_set(err, CUE_EIO, "http: %s: no epoll fd or port from libmicrohttpd",
                           h->listen);
    }
    h->port = port->port;
    *epoll_fd = fd->epoll_fd;
    return 0;
}

int cue_http_start(cue_http **out, uv_loop_t *loop, const char *listen, cue_http_handler fn,
                   void *ctx, cue_err *err)
{
    *out = NULL;
    struct sockaddr_in addr;
    int rc = parse_listen(listen, &addr, err);
    if (rc != 0) return rc;
    cue_http *h = calloc(1, sizeof *h);
    if (h == NULL) return cue_err_set(err, CUE_ENOMEM, "http: out of memory");
    h->loop = loop;
    h->fn = fn;
    h->ctx = ctx;
    h->addr = addr;
    snprintf(h->listen, sizeof h->listen, "%s", listen);
    rc = cue_buf_init(&h->body, 4096);
    if (rc != 0) {
        cue_err_set(err, rc, "http: out of memory");
        goto free_struct;
    }
    int epoll_fd = -1;
    rc = start_daemon(h, &epoll_fd, err);
    if (rc != 0) goto free_body;
    rc = uv_poll_init(loop, &h->poll, epoll_fd);
    if (rc != 0) {
        cue_err_set(err, CUE_EIO, "http: %s: cannot watch libmicrohttpd's epoll fd: %s", h->listen,
                    uv_strerror(rc));
        rc = CUE_EIO;
        goto stop_daemon;
    }
    /* From here the loop knows the handles, and only cue_http_stop() (through
     * the close callbacks) may free the struct. uv_timer_init cannot fail. */
    uv_timer_init(loop, &h->timer);
    h->poll.data = h->timer.data = h;
    h->handles_open = 2;
    rc = uv_poll_start(&h->poll, UV_READABLE, on_poll);
    if (rc != 0) {
        cue_err_set(err, CUE_EIO, "http: %s: cannot poll libmicrohttpd's epoll fd: %s", h->listen,
                    uv_strerror(rc));
        cue_http_stop(h);
        return CUE_EIO;
    }
    *out = h;
    return 0;

stop_daemon:
    MHD_stop_daemon(h->daemon);
free_body:
    cue_buf_deinit(&h->body);
free_struct:
    free(h);
    return rc;
}

uint16_t cue_http_port(const cue_http *h)
{
    return h->port;
}

/* ---- running ------------------------------------------------------------ */

/* Lets libmicrohttpd do all it can without blocking, then sets the timer for
 * when it next has to run even if no socket stirs. */
static void run_daemon(cue_http *h)
{
    h->in_run = true;
    MHD_run(h->daemon);
    h->in_run = false;
    MHD_UNSIGNED_LONG_LONG timeout_ms;
    if (MHD_get_timeout(h->daemon, &timeout_ms) == MHD_YES)
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    else
        uv_timer_stop(&h->timer);
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    /* An error status (the fd went bad) is libmicrohttpd's to find out about:
     * running it is the same either way. */
    run_daemon(poll->data);
}

static void on_timer(uv_timer_t *timer)
{
    run_daemon(timer->data);
}

/* Queues `len` bytes (copied) as the response, with an Allow header if given.
 * MHD_NO makes libmicrohttpd close the connection: the only way left to
 * answer when even a response cannot be built. */
static enum MHD_Result respond(struct MHD_Connection *conn, int status, const char *data,
                               size_t len, const char *content_type, const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) return MHD_NO;
    enum MHD_Result ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (ok == MHD_YES && allow) ok = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (ok == MHD_YES) ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **req)
{
    static const char not_allowed[] = "method not allowed\n";
    cue_http *h = cls;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (!get && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        /* Answered on the first call, before any body is read: libmicrohttpd
         * then discards the body and closes the connection. */
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, sizeof not_allowed - 1,
                       DEFAULT_CONTENT_TYPE, "GET, HEAD");
    /* The first call comes after the headers; answering then would leave the
     * request incomplete and cost the keep-alive connection. Answer on the call
     * that says the request is complete. A GET that carries a body is not
     * something a scraper sends: close the connection rather than read it. */
    if (*req == NULL) {
        *req = h;
        return MHD_YES;
    }
    if (*upload_len != 0) return MHD_NO;
    const char *content_type = DEFAULT_CONTENT_TYPE;
    cue_buf_reset(&h->body);
    int status = h->fn(method, url, &h->body, &content_type, h->ctx);
    CUE_ASSERT(status >= 100 && status <= 599);
    CUE_ASSERT(content_type != NULL);
    return respond(conn, status, h->body.data, h->body.len, content_type, NULL);
}

/* ---- stopping ----------------------------------------------------------- */

static void on_closed(uv_handle_t *handle)
{
    cue_http *h = handle->data;
    CUE_ASSERT(h->handles_open > 0);
    if (--h->handles_open > 0) return;
    cue_buf_deinit(&h->body);
    free(h);
}

void cue_http_stop(cue_http *h)
{
    if (h == NULL) return;
    CUE_ASSERT(!h->in_run);
    CUE_ASSERT(h->handles_open == 2);
    /* The poll handle first: closing it takes the epoll fd out of libuv's own
     * set, which must happen before libmicrohttpd closes that fd. */
    uv_close((uv_handle_t *)&h->poll, on_closed);
    uv_close((uv_handle_t *)&h->timer, on_closed);
    MHD_stop_daemon(h->daemon);
    h->daemon = NULL;
}
