/* The admin HTTP server over real sockets: each test starts it on
 * 127.0.0.1:0 on a fresh libuv loop, which the test's thread drives while a
 * client thread speaks HTTP/1.1 over a plain TCP socket. The client thread
 * only records what it got (Criterion's assertions belong to the test's own
 * thread); the test checks it after joining. No sleeps: the client wakes the
 * loop with a uv_async_t when it is done. */
#include "cuepoint/http.h"

#include "cuepoint/buf.h"
#include "cuepoint/err.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* ---- the handler ---------------------------------------------------------- */

typedef struct seen {
    int calls;
    char method[16];
    char path[128];
    char authorization[128]; /* "(none)" without the header */
} seen;

static int handler(const cue_http_request *req, cue_http_reply *reply, void *ctx)
{
    seen *s = ctx;
    s->calls++;
    snprintf(s->method, sizeof s->method, "%s", req->method);
    snprintf(s->path, sizeof s->path, "%s", req->path);
    snprintf(s->authorization, sizeof s->authorization, "%s",
             req->authorization ? req->authorization : "(none)");
    if (strcmp(req->path, "/metrics") == 0) {
        cue_buf_append_str(reply->body, "up 1\n");
        reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
        return 200;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        cue_buf_append_str(reply->body, "ok\n");
        return 200;
    }
    if (strcmp(req->path, "/private") == 0 && !cue_http_bearer_is(req->authorization, "s3cret")) {
        cue_buf_append_str(reply->body, "who are you\n");
        reply->www_authenticate = "Bearer realm=\"test\"";
        return 401;
    }
    cue_buf_append_str(reply->body, "not found\n");
    return 404;
}

/* ---- a minimal HTTP/1.1 client -------------------------------------------- */

typedef struct response {
    bool ok; /* a whole response was read */
    int status;
    long content_length;
    char content_type[128];
    char allow[64];
    char www_authenticate[64];
    char connection[32];
    char body[256];
    size_t body_len;
} response;

typedef struct conn {
    int fd;
    char buf[8192];
    size_t len;
} conn;

/* Connects from `from` (an address of 127.0.0.0/8, all local on Linux, so
 * that one test can be several clients), or from the default if NULL. */
static bool conn_open_from(conn *c, const char *from, const char *ip, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return false;
    /* A server bug must fail the test, not hang it. */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (from) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        inet_pton(AF_INET, from, &local.sin_addr);
        if (bind(c->fd, (struct sockaddr *)&local, sizeof local) != 0) return false;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0;
}

static bool conn_open(conn *c, const char *ip, uint16_t port)
{
    return conn_open_from(c, NULL, ip, port);
}

static bool conn_open6(conn *c, const char *ip, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (c->fd < 0) return false;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, ip, &sa.sin6_addr);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0;
}

static bool conn_send(conn *c, const char *text)
{
    size_t n = strlen(text);
    return send(c->fd, text, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/* Reads more into c->buf; false on EOF, error or timeout. */
static bool conn_fill(conn *c)
{
    if (c->len == sizeof c->buf) return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0) return false;
    c->len += (size_t)n;
    return true;
}

/* The value of header `name` in the head (case-insensitive name), or "". */
static void header(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n, *end = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(end - v), v);
            return;
        }
    }
}

/* Where the head ends ("\r\n\r\n" included), or 0 if not yet read. */
static size_t head_end(const conn *c)
{
    for (size_t i = 0; i + 4 <= c->len; i++)
        if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0) return i + 4;
    return 0;
}

/* Reads one response; a HEAD response has no body whatever its length says. */
static void read_response(conn *c, bool head, response *r)
{
    memset(r, 0, sizeof *r);
    size_t head_len;
    while ((head_len = head_end(c)) == 0)
        if (!conn_fill(c)) return;
    char text[4096], value[64];
    if (head_len >= sizeof text) return;
    memcpy(text, c->buf, head_len);
    text[head_len] = '\0';
    if (sscanf(text, "HTTP/1.1 %d ", &r->status) != 1) return;
    header(text, "Content-Type", r->content_type, sizeof r->content_type);
    header(text, "Allow", r->allow, sizeof r->allow);
    header(text, "WWW-Authenticate", r->www_authenticate, sizeof r->www_authenticate);
    header(text, "Connection", r->connection, sizeof r->connection);
    header(text, "Content-Length", value, sizeof value);
    r->content_length = value[0] ? atol(value) : -1;
    size_t body_len = head || r->content_length < 0 ? 0 : (size_t)r->content_length;
    if (body_len >= sizeof r->body) return;
    while (c->len < head_len + body_len)
        if (!conn_fill(c)) return;
    memcpy(r->body, c->buf + head_len, body_len);
    r->body_len = body_len;
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
    r->ok = true;
}

/* Sends one request and reads its response. */
static void exchange(conn *c, const char *request, response *r)
{
    memset(r, 0, sizeof *r);
    if (conn_send(c, request)) read_response(c, strncmp(request, "HEAD ", 5) == 0, r);
}

/* ---- the fixture: a loop, the server, a client thread --------------------- */

typedef struct fixture fixture;
typedef void (*script_fn)(fixture *f);

struct fixture {
    uv_loop_t loop;
    uv_async_t wake;
    cue_http *http;
    seen seen;
    uint16_t port;
    script_fn script;
    atomic_bool finished;
    response r[8];
    bool eof_after;    /* the server closed the connection after the last response */
    int connect_errno; /* for scripts that expect a refusal */
    bool closed[8];    /* scripts' findings: which connections the server closed */
    long ms[4];        /* and how long something took */
};

static void on_wake(uv_async_t *a) {}

static void fixture_start_at(fixture *f, const char *listen, const cue_http_opts *opts)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    cr_assert_eq(uv_async_init(&f->loop, &f->wake, on_wake), 0);
    cue_err err = {0};
    int rc = cue_http_start(&f->http, &f->loop, listen, opts, handler, &f->seen, &err);
    cr_assert_eq(rc, 0, "start: %s", err.msg);
    f->port = cue_http_port(f->http);
    cr_assert_neq(f->port, 0, "port 0 becomes a real port");
}

static void fixture_start_opts(fixture *f, const cue_http_opts *opts)
{
    fixture_start_at(f, "127.0.0.1:0", opts);
}

static void fixture_start(fixture *f)
{
    fixture_start_opts(f, NULL);
}

static void *client_main(void *arg)
{
    fixture *f = arg;
    f->script(f);
    atomic_store(&f->finished, true);
    uv_async_send(&f->wake);
    return NULL;
}

/* Runs `script` on a client thread while this thread drives the loop. */
static void drive(fixture *f, script_fn script)
{
    pthread_t t;
    f->script = script;
    atomic_store(&f->finished, false);
    cr_assert_eq(pthread_create(&t, NULL, client_main, f), 0);
    while (!atomic_load(&f->finished))
        uv_run(&f->loop, UV_RUN_ONCE);
    pthread_join(t, NULL);
}

/* Stops the server and checks that the loop ends with nothing left open. */
static void fixture_stop(fixture *f)
{
    uv_close((uv_handle_t *)&f->wake, NULL);
    cue_http_stop(f->http);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&f->loop), 0, "a handle is still open after stop");
}

static void expect_response(const response *r, int status, const char *content_type,
                            const char *body, const char *what)
{
    cr_expect(r->ok, "%s: no whole response", what);
    cr_expect_eq(r->status, status, "%s: status %d, expected %d", what, r->status, status);
    cr_expect_str_eq(r->content_type, content_type, "%s: content type '%s'", what, r->content_type);
    cr_expect(r->body_len == strlen(body) && memcmp(r->body, body, r->body_len) == 0,
              "%s: body '%.*s', expected '%s'", what, (int)r->body_len, r->body, body);
}

/* ---- requests ------------------------------------------------------------- */

static bool peer_closed(conn *c)
{
    char byte;
    return recv(c->fd, &byte, 1, 0) == 0;
}

static void get_metrics_script(fixture *f)
{
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[0]);
    close(c.fd);
}

Test(http, get)
{
    fixture f;
    fixture_start(&f);
    drive(&f, get_metrics_script);
    expect_response(&f.r[0], 200, "text/plain; version=0.0.4; charset=utf-8", "up 1\n", "GET");
    cr_expect_eq(f.r[0].content_length, 5);
    cr_expect_str_eq(f.seen.method, "GET");
    cr_expect_str_eq(f.seen.path, "/metrics");
    fixture_stop(&f);
}

static void head_script(fixture *f)
{
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[0]);
    /* Had the HEAD response carried a body, this one would read it as its head. */
    exchange(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[1]);
    close(c.fd);
}

Test(http, head_sends_the_length_but_no_body)
{
    fixture f;
    fixture_start(&f);
    drive(&f, head_script);
    expect_response(&f.r[0], 200, "text/plain; version=0.0.4; charset=utf-8", "", "HEAD");
    cr_expect_eq(f.r[0].content_length, 5, "HEAD tells the GET's length");
    expect_response(&f.r[1], 200, "text/plain; charset=utf-8", "ok\n", "GET after HEAD");
    cr_expect_eq(f.seen.calls, 2);
    fixture_stop(&f);
}

static void not_found_script(fixture *f)
{
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "GET /nope?x=1&y=%41 HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[0]);
    close(c.fd);
}

Test(http, unknown_path_and_the_query_string)
{
    fixture f;
    fixture_start(&f);
    drive(&f, not_found_script);
    expect_response(&f.r[0], 404, "text/plain; charset=utf-8", "not found\n", "GET /nope");
    cr_expect_str_eq(f.seen.path, "/nope", "the handler gets the path without the query");
    fixture_stop(&f);
}

static void keep_alive_script(fixture *f)
{
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[0]);
    exchange(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &f->r[1]);
    f->eof_after = peer_closed(&c);
    close(c.fd);
}

Test(http, two_requests_on_one_connection)
{
    fixture f;
    fixture_start(&f);
    drive(&f, keep_alive_script);
    expect_response(&f.r[0], 200, "text/plain; version=0.0.4; charset=utf-8", "up 1\n", "first");
    cr_expect(strcasecmp(f.r[0].connection, "close") != 0, "the first response closes");
    expect_response(&f.r[1], 200, "text/plain; charset=utf-8", "ok\n", "second, same socket");
    cr_expect(f.eof_after, "the server closes after a request that asked it to");
    cr_expect_eq(f.seen.calls, 2);
    fixture_stop(&f);
}

static void post_script(fixture *f)
{
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", &f->r[0]);
    f->eof_after = peer_closed(&c);
    close(c.fd);
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[1]);
    close(c.fd);
}

Test(http, methods_other_than_get_and_head_get_405)
{
    fixture f;
    fixture_start(&f);
    drive(&f, post_script);
    static const char *const what[] = {"POST", "DELETE"};
    for (size_t i = 0; i < COUNT(what); i++) {
        expect_response(&f.r[i], 405, "text/plain; charset=utf-8", "method not allowed\n", what[i]);
        cr_expect_str_eq(f.r[i].allow, "GET, HEAD", "%s: Allow '%s'", what[i], f.r[i].allow);
    }
    cr_expect(f.eof_after, "a body not read means the connection is closed");
    cr_expect_eq(f.seen.calls, 0, "the handler never sees other methods");
    fixture_stop(&f);
}

static void other_address_script(fixture *f)
{
    /* All of 127.0.0.0/8 is local on Linux: a server bound to 0.0.0.0 would
     * answer on 127.0.0.2 too. */
    conn c;
    errno = 0;
    if (conn_open(&c, "127.0.0.2", f->port))
        f->connect_errno = 0;
    else
        f->connect_errno = errno;
    if (c.fd >= 0) close(c.fd);
}

Test(http, binds_exactly_the_address_given)
{
    fixture f;
    fixture_start(&f);
    drive(&f, other_address_script);
    cr_expect_eq(f.connect_errno, ECONNREFUSED, "127.0.0.2: %s", strerror(f.connect_errno));
    fixture_stop(&f);
}

/* ---- start-up failures ---------------------------------------------------- */

Test(http, a_port_in_use_fails_with_the_address)
{
    fixture f;
    fixture_start(&f);
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)f.port);
    cue_http *second = (cue_http *)&f; /* must be reset to NULL */
    cue_err err = {0};
    int rc = cue_http_start(&second, &f.loop, listen, NULL, handler, NULL, &err);
    cr_expect_eq(rc, CUE_EIO, "rc %d (%s)", rc, err.msg);
    cr_expect_eq(err.code, CUE_EIO);
    cr_expect_null(second);
    cr_expect(strstr(err.msg, listen) != NULL, "'%s' does not name %s", err.msg, listen);
    cr_expect(strstr(err.msg, "in use") != NULL, "'%s' does not say why", err.msg);
    cr_log_info("port in use: %s", err.msg);
    /* The first server still answers. */
    drive(&f, get_metrics_script);
    expect_response(&f.r[0], 200, "text/plain; version=0.0.4; charset=utf-8", "up 1\n", "GET");
    fixture_stop(&f);
}

Test(http, malformed_addresses)
{
    static const char *const cases[] = {
        "127.0.0.1",        "127.0.0.1:",     "127.0.0.1:65536",  ":9464",           "127.0.0.1:-1",
        "127.0.0.1:94x",    "1.2.3:9464",     "127.0.0.1:000001", "127.0.0.1:9464 ", "",
        "::1:9464",         "[::1]",          "[::1:9464",        "::1]:9464",       "[]:9464",
        "[127.0.0.1]:9464", "[::g]:9464",     "[:::::]:9464",     "local host:9464", "-x:9464",
        "local_host:9464",  "999.1.1.1:9464",
    };
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    for (size_t i = 0; i < COUNT(cases); i++) {
        cue_http *h = NULL;
        cue_err err = {0};
        int rc = cue_http_start(&h, &loop, cases[i], NULL, handler, NULL, &err);
        cr_expect_eq(rc, CUE_EINVAL, "'%s': rc %d", cases[i], rc);
        cr_expect_null(h);
        cr_expect(strstr(err.msg, cases[i]) != NULL, "'%s' not named in '%s'", cases[i], err.msg);
    }
    cr_expect_eq(uv_loop_close(&loop), 0, "a failed start leaves nothing on the loop");
}

/* ---- the connection table ------------------------------------------------- */

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Fills the table with keep-alive connections, one more than it serves,
 * closes them all, then asks again. */
static void fill_then_close_script(fixture *f)
{
    static conn held[CUE_HTTP_CONNECTIONS_MAX + 1];
    size_t n = 0, want = (size_t)f->ms[0];
    for (; n < want; n++) {
        if (!conn_open(&held[n], "127.0.0.1", f->port)) break;
        exchange(&held[n], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[0]);
        if (!f->r[0].ok) break;
    }
    for (size_t i = 0; i < n; i++)
        close(held[i].fd);
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[1]);
    close(c.fd);
}

static void fill_then_close(const cue_http_opts *opts, size_t connections)
{
    fixture f;
    fixture_start_opts(&f, opts);
    f.ms[0] = (long)connections;
    drive(&f, fill_then_close_script);
    expect_response(&f.r[0], 200, "text/plain; charset=utf-8", "ok\n", "the last of the table");
    expect_response(&f.r[1], 200, "text/plain; charset=utf-8", "ok\n", "after all closed");
    fixture_stop(&f);
}

Test(http, a_full_table_that_empties_serves_again)
{
    fill_then_close(NULL, CUE_HTTP_CONNECTIONS_MAX);
}

static void past_the_limit_script(fixture *f)
{
    conn idle[4], e, g;
    for (int i = 0; i < 4; i++) {
        if (!conn_open(&idle[i], "127.0.0.1", f->port)) return;
        exchange(&idle[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[0]);
    }
    /* Two at once: the first fills libmicrohttpd's table (4 served, one
     * giving way), so the second waits in the backlog until that one has
     * closed and libmicrohttpd listens again. */
    if (!conn_open(&e, "127.0.0.1", f->port) || !conn_open(&g, "127.0.0.1", f->port)) return;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    exchange(&g, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[1]);
    f->ms[0] = ms_since(&t0);
    for (int i = 0; i < 4; i++)
        close(idle[i].fd);
    close(e.fd);
    close(g.fd);
}

/* At its own limit (max + slack) libmicrohttpd takes its listening socket
 * out of its epoll set, and puts it back only in a run after a connection
 * closed: that run must come at once, not at the next deadline. */
Test(http, past_libmicrohttpd_limit_a_newcomer_waits_only_for_room)
{
    fixture f;
    cue_http_opts opts = {.connections_max = 4,
                          .connections_slack = 1,
                          .request_timeout_ms = 60000,
                          .idle_timeout_ms = 60000};
    fixture_start_opts(&f, &opts);
    drive(&f, past_the_limit_script);
    expect_response(&f.r[0], 200, "text/plain; charset=utf-8", "ok\n", "the table's last");
    expect_response(&f.r[1], 200, "text/plain; charset=utf-8", "ok\n", "past the limit");
    cr_expect(f.ms[0] < 1000, "the newcomer past the limit waited %ld ms", f.ms[0]);
    fixture_stop(&f);
}

static const char healthz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/* Opens a keep-alive connection from `from` and makes one request on it:
 * once answered, the server has it in its table, in the order opened. */
static bool open_idle(fixture *f, conn *c, const char *from)
{
    response r;
    if (!conn_open_from(c, from, "127.0.0.1", f->port)) return false;
    exchange(c, healthz, &r);
    return r.ok && r.status == 200;
}

/* Whether the server closed `c` (EOF within SO_RCVTIMEO), and closes it here. */
static bool closed_by_server(conn *c)
{
    bool eof = peer_closed(c);
    close(c->fd);
    return eof;
}

static void client_limit_script(fixture *f)
{
    conn two[3], one, late;
    for (int i = 0; i < 3; i++)
        if (!open_idle(f, &two[i], "127.0.0.2")) return;
    if (!open_idle(f, &one, "127.0.0.1")) return;
    /* 127.0.0.2's fourth: its first gives way, no one else's. */
    if (!conn_open_from(&late, "127.0.0.2", "127.0.0.1", f->port)) return;
    exchange(&late, healthz, &f->r[0]);
    exchange(&two[1], healthz, &f->r[1]);
    exchange(&one, healthz, &f->r[2]);
    f->closed[0] = closed_by_server(&two[0]);
    close(two[1].fd);
    close(two[2].fd);
    close(one.fd);
    close(late.fd);
}

Test(http, a_client_past_its_limit_loses_its_oldest_waiting_connection)
{
    fixture f;
    cue_http_opts opts = {.connections_max = 8, .client_connections_max = 3};
    fixture_start_opts(&f, &opts);
    drive(&f, client_limit_script);
    expect_response(&f.r[0], 200, "text/plain; charset=utf-8", "ok\n", "the newcomer");
    expect_response(&f.r[1], 200, "text/plain; charset=utf-8", "ok\n", "its second connection");
    expect_response(&f.r[2], 200, "text/plain; charset=utf-8", "ok\n", "another client's");
    cr_expect(f.closed[0], "the client's oldest connection is still open");
    const cue_http_stats *st = cue_http_stats_get(f.http);
    cr_expect_eq(st->closed_client_limit, 1);
    cr_expect_eq(st->closed_table_full, 0);
    fixture_stop(&f);
}

static void table_full_script(fixture *f)
{
    conn one, two[3], late;
    /* The oldest connection of all is 127.0.0.1's, but 127.0.0.2 holds most. */
    if (!open_idle(f, &one, "127.0.0.1")) return;
    for (int i = 0; i < 3; i++)
        if (!open_idle(f, &two[i], "127.0.0.2")) return;
    if (!conn_open_from(&late, "127.0.0.3", "127.0.0.1", f->port)) return;
    exchange(&late, healthz, &f->r[0]);
    exchange(&one, healthz, &f->r[1]);
    exchange(&two[1], healthz, &f->r[2]);
    f->closed[0] = closed_by_server(&two[0]);
    close(one.fd);
    close(two[1].fd);
    close(two[2].fd);
    close(late.fd);
}

Test(http, a_full_table_takes_from_the_client_holding_most)
{
    fixture f;
    cue_http_opts opts = {.connections_max = 4, .client_connections_max = 4};
    fixture_start_opts(&f, &opts);
    drive(&f, table_full_script);
    expect_response(&f.r[0], 200, "text/plain; charset=utf-8", "ok\n", "the newcomer");
    expect_response(&f.r[1], 200, "text/plain; charset=utf-8", "ok\n", "the lighter client's");
    expect_response(&f.r[2], 200, "text/plain; charset=utf-8", "ok\n", "the heavier's second");
    cr_expect(f.closed[0], "the heavier client's oldest connection is still open");
    const cue_http_stats *st = cue_http_stats_get(f.http);
    cr_expect_eq(st->closed_table_full, 1);
    cr_expect_eq(st->closed_client_limit, 0);
    fixture_stop(&f);
}

static void pause_ms(long ms)
{
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
    nanosleep(&pause, NULL);
}

static void silent_table_script(fixture *f)
{
    /* More than the table holds, from the probe's own address: some send
     * nothing, some half a head. */
    static conn held[40];
    size_t n = 0;
    for (; n < COUNT(held); n++) {
        if (!conn_open(&held[n], "127.0.0.1", f->port)) break;
        if (n % 2 && !conn_send(&held[n], "GET /healthz HTTP/1.1\r\nHo")) break;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    conn c;
    if (conn_open(&c, "127.0.0.1", f->port)) {
        exchange(&c, healthz, &f->r[0]);
        close(c.fd);
    }
    f->ms[0] = ms_since(&t0);
    /* Past the shelter of the just accepted (FRESH_SPARE_MS in http.c):
     * once the table had room again, the last of them waited it out. */
    pause_ms(150);
    for (size_t i = 0; i < n; i++)
        close(held[i].fd);
}

Test(http, a_table_full_of_silent_and_slow_connections_still_answers)
{
    fixture f;
    /* Deadlines far beyond the test: only giving way can make room. */
    cue_http_opts opts = {.connections_max = 8,
                          .client_connections_max = 8,
                          .request_timeout_ms = 60000,
                          .idle_timeout_ms = 60000};
    fixture_start_opts(&f, &opts);
    drive(&f, silent_table_script);
    expect_response(&f.r[0], 200, "text/plain; charset=utf-8", "ok\n", "the probe");
    cr_expect(f.ms[0] < 1000, "the probe took %ld ms", f.ms[0]);
    const cue_http_stats *st = cue_http_stats_get(f.http);
    cr_expect_geq(st->closed_client_limit, 40 - 8 + 1 - 8, "only %llu gave way",
                  (unsigned long long)st->closed_client_limit);
    cr_expect_eq(st->closed_timeout, 0);
    fixture_stop(&f);
}

/* The bursts below: four connections a client, eight in all, deadlines far
 * beyond the tests, so only giving way can make room. */
static void burst_start(fixture *f)
{
    cue_http_opts opts = {.connections_max = 8,
                          .client_connections_max = 4,
                          .request_timeout_ms = 60000,
                          .idle_timeout_ms = 60000};
    fixture_start_opts(f, &opts);
}

static void close_all(conn *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(c[i].fd);
}

/* A burst from the probe's own address, all accepted in one run: six
 * silent connections, the probe with its whole request, eighteen more. */
static conn burst[24], burst_probe;

static void burst_script(fixture *f)
{
    read_response(&burst_probe, false, &f->r[0]);
    close(burst_probe.fd);
    close_all(burst, COUNT(burst));
}

Test(http, a_probe_inside_a_burst_is_answered_though_more_came_after_it)
{
    fixture f;
    burst_start(&f);
    /* Made before the loop runs, so the server meets them together: all
     * within the grace of the just accepted, the probe's request unread. */
    for (size_t i = 0; i < COUNT(burst); i++) {
        cr_assert(conn_open(&burst[i], "127.0.0.1", f.port));
        if (i == 5) {
            cr_assert(conn_open(&burst_probe, "127.0.0.1", f.port));
            cr_assert(conn_send(&burst_probe, healthz));
        }
    }
    drive(&f, burst_script);
    expect_response(&f.r[0], 200, "text/plain; charset=utf-8", "ok\n", "the probe");
    const cue_http_stats *st = cue_http_stats_get(f.http);
    cr_expect_gt(st->closed_client_limit, 0, "nothing gave way");
    fixture_stop(&f);
}

/* A burst of slow clients from the probe's address, each with one byte
 * sent, then the probe, whose request comes only after the server has
 * accepted it and made room: few enough that the server accepts them all
 * in one run (it takes about a dozen a run) and makes room among them
 * while each slow client's byte is still unread. */
static conn dribble[6], dribble_probe;

/* After `before_ms`, the probe's request and its answer (into f->r[0]);
 * the probe closed, after `after_ms` the `n` others too. */
static void probe_late(fixture *f, conn *probe, long before_ms, conn *others, size_t n,
                       long after_ms)
{
    pause_ms(before_ms);
    if (conn_send(probe, healthz)) read_response(probe, false, &f->r[0]);
    close(probe->fd);
    pause_ms(after_ms);
    close_all(others, n);
}

/* Past the grace in which a connection that sent nothing yet does not give
 * way (FRESH_GRACE_MS in http.c), with a margin: a burst kept open this long
 * has given way by then. A slow client's byte, once libmicrohttpd has read
 * it, is nothing waiting either. */
#define PAST_GRACE_MS 400

/* The probe answered, and at least `n` connections past the client's limit
 * gave way. */
static void expect_probe_and_room(fixture *f, size_t n)
{
    expect_response(&f->r[0], 200, "text/plain; charset=utf-8", "ok\n", "the probe");
    const cue_http_stats *st = cue_http_stats_get(f->http);
    cr_expect_geq(st->closed_client_limit, n, "only %llu gave way",
                  (unsigned long long)st->closed_client_limit);
}

static void dribble_script(fixture *f)
{
    /* Past the run that accepts and the room made after it, well within
     * the grace of the just accepted. */
    probe_late(f, &dribble_probe, 100, dribble, COUNT(dribble), PAST_GRACE_MS);
}

/* A byte waiting in a socket is no request: counted as one, the burst's
 * older connections outranked the younger probe, and it was closed before
 * its request arrived (the admin flood test's slow clients, on a loaded
 * machine). */
Test(http, a_probe_younger_than_a_burst_of_one_byte_clients_is_answered)
{
    fixture f;
    burst_start(&f);
    for (size_t i = 0; i < COUNT(dribble); i++) {
        cr_assert(conn_open(&dribble[i], "127.0.0.1", f.port));
        cr_assert(conn_send(&dribble[i], "G"));
    }
    cr_assert(conn_open(&dribble_probe, "127.0.0.1", f.port));
    drive(&f, dribble_script);
    expect_probe_and_room(&f, COUNT(dribble) + 1 - 4);
    fixture_stop(&f);
}

/* The probe first, then a burst of silent connections from its address,
 * more than its limit; the probe's request comes a moment after. */
static conn crowd[10], crowd_probe;

static void crowd_script(fixture *f)
{
    /* The burst kept past the grace of the just accepted, when it gives way. */
    probe_late(f, &crowd_probe, 20, crowd, COUNT(crowd), PAST_GRACE_MS);
}

/* Oldest of a burst over its client's limit, its request not there yet, the
 * probe went first (the admin flood test's keep-alive case, on a loaded
 * machine): the just accepted now wait a moment before any gives way. */
Test(http, a_probe_older_than_a_burst_from_its_address_is_answered)
{
    fixture f;
    burst_start(&f);
    cr_assert(conn_open(&crowd_probe, "127.0.0.1", f.port));
    for (size_t i = 0; i < COUNT(crowd); i++)
        cr_assert(conn_open(&crowd[i], "127.0.0.1", f.port));
    drive(&f, crowd_script);
    expect_probe_and_room(&f, COUNT(crowd) + 1 - 4);
    fixture_stop(&f);
}

/* The probe first, silent for a moment, then a burst of one-byte clients
 * from its address, past its limit, with a table too small to spare the
 * just accepted. */
static conn trickle[8], trickle_probe;

static void trickle_script(fixture *f)
{
    probe_late(f, &trickle_probe, 20, trickle, COUNT(trickle), 0);
}

/* Oldest of a burst of slow clients, its request not there yet, and no
 * room to spare: the slow clients' first bytes gave them no rank over it,
 * so it went first (the admin flood test's slow case, on a loaded
 * machine). Those that sent part of a head now give way before those that
 * sent nothing yet. */
/* Four connections a client, eight in all and four of slack: a table too
 * small ever to spare the just accepted (URGENT_ROOM in http.c); deadlines
 * far beyond the tests, so only giving way can make room. */
static void tight_start(fixture *f)
{
    cue_http_opts opts = {.connections_max = 8,
                          .client_connections_max = 4,
                          .connections_slack = 4,
                          .request_timeout_ms = 60000,
                          .idle_timeout_ms = 60000};
    fixture_start_opts(f, &opts);
}

Test(http, a_probe_older_than_a_burst_of_one_byte_clients_is_answered_in_a_full_table)
{
    fixture f;
    tight_start(&f);
    cr_assert(conn_open(&trickle_probe, "127.0.0.1", f.port));
    for (size_t i = 0; i < COUNT(trickle); i++) {
        cr_assert(conn_open(&trickle[i], "127.0.0.1", f.port));
        cr_assert(conn_send(&trickle[i], "G"));
    }
    drive(&f, trickle_script);
    expect_probe_and_room(&f, COUNT(trickle) + 1 - 4);
    fixture_stop(&f);
}

/* A burst from the probe's address in a table too small to spare the just
 * accepted: silent connections, the probe, silent for a moment, and more
 * silent connections after it. */
static conn before[3], after[7], between_probe;

static void between_script(fixture *f)
{
    probe_late(f, &between_probe, 100, before, COUNT(before), PAST_GRACE_MS);
    close_all(after, COUNT(after));
}

/* Ranked with the other connections that had sent nothing yet, oldest
 * first, the probe went once more came after it than its client's limit
 * leaves (a flood reconnecting from the probe's address as fast as it is
 * closed, the admin flood test's long case): one that sent nothing now
 * waits out its grace before it may give way, and then does. */
Test(http, a_probe_silent_for_a_moment_inside_a_burst_of_silent_connections_is_answered)
{
    fixture f;
    tight_start(&f);
    for (size_t i = 0; i < COUNT(before); i++)
        cr_assert(conn_open(&before[i], "127.0.0.1", f.port));
    cr_assert(conn_open(&between_probe, "127.0.0.1", f.port));
    for (size_t i = 0; i < COUNT(after); i++)
        cr_assert(conn_open(&after[i], "127.0.0.1", f.port));
    drive(&f, between_script);
    expect_probe_and_room(&f, COUNT(before) + COUNT(after) - 4);
    fixture_stop(&f);
}

static void slow_head_script(fixture *f)
{
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* A byte every 50 ms: the whole head would take 1.7 s. */
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (const char *p = head; *p; p++) {
        char byte[2] = {*p, '\0'};
        if (!conn_send(&c, byte)) break;
        struct timespec pause = {.tv_nsec = 50 * 1000000};
        nanosleep(&pause, NULL);
    }
    f->ms[0] = ms_since(&t0);
    read_response(&c, false, &f->r[0]);
    close(c.fd);
}

Test(http, a_head_sent_byte_by_byte_is_cut_at_the_request_deadline)
{
    fixture f;
    cue_http_opts opts = {.request_timeout_ms = 300};
    fixture_start_opts(&f, &opts);
    drive(&f, slow_head_script);
    cr_expect(!f.r[0].ok, "the slow head got a response (status %d)", f.r[0].status);
    cr_expect_eq(f.seen.calls, 0);
    cr_expect_eq(cue_http_stats_get(f.http)->closed_timeout, 1);
    fixture_stop(&f);
}

static void idle_script(fixture *f)
{
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    /* Requests closer together than the idle deadline keep the connection. */
    for (int i = 0; i < 3; i++) {
        exchange(&c, healthz, &f->r[i]);
        struct timespec pause = {.tv_nsec = 150 * 1000000};
        nanosleep(&pause, NULL);
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    f->closed[0] = closed_by_server(&c);
    f->ms[0] = ms_since(&t0);
}

Test(http, an_idle_keep_alive_connection_is_closed_at_its_deadline)
{
    fixture f;
    cue_http_opts opts = {.idle_timeout_ms = 400};
    fixture_start_opts(&f, &opts);
    drive(&f, idle_script);
    for (int i = 0; i < 3; i++)
        expect_response(&f.r[i], 200, "text/plain; charset=utf-8", "ok\n", "a request in time");
    cr_expect(f.closed[0], "the idle connection was not closed");
    /* 400 ms after the last response, 150 of which passed before t0. */
    cr_expect(f.ms[0] >= 150 && f.ms[0] < 1500, "closed after %ld ms", f.ms[0]);
    cr_expect_eq(cue_http_stats_get(f.http)->closed_timeout, 1);
    fixture_stop(&f);
}

/* ---- paths ------------------------------------------------------------------ */

typedef struct path_case {
    const char *raw;
    size_t raw_len; /* 0: strlen(raw) */
    int rc;
    const char *decoded; /* when rc is 0 */
    const char *why;     /* a part of the message, when rc is not 0 */
} path_case;

Test(http, path_decode_cases)
{
    static const path_case cases[] = {
        {"/v1/users/u0000001", 0, 0, "/v1/users/u0000001", NULL},
        {"", 0, 0, "", NULL},
        {"/a%20b", 0, 0, "/a b", NULL},
        {"/a+b", 0, 0, "/a+b", NULL},
        {"/%2Fx%2fy", 0, 0, "//x/y", NULL},
        {"/%3F%23", 0, 0, "/?#", NULL},
        {"/j%C3%BCrgen", 0, 0, "/j\xc3\xbcrgen", NULL},
        {"/j\xc3\xbcrgen", 0, 0, "/j\xc3\xbcrgen", NULL},
        {"/%F0%9F%98%80", 0, 0, "/\xf0\x9f\x98\x80", NULL},
        {"/%EF%BF%BF", 0, 0, "/\xef\xbf\xbf", NULL},
        {"/%25", 0, 0, "/%", NULL},
        {"/%2500", 0, 0, "/%00", NULL},
        {"/v1/users/abc%00junk", 0, CUE_EPARSE, NULL, "\"%00\" at offset 13"},
        {"/v1/users/abc\0junk", 18, CUE_EPARSE, NULL, "NUL byte at offset 13"},
        {"/v1/users/%zz", 0, CUE_EPARSE, NULL, "'%' at offset 10"},
        {"/v1/users/%4", 0, CUE_EPARSE, NULL, "'%' at offset 10"},
        {"/v1/users/%", 0, CUE_EPARSE, NULL, "'%' at offset 10"},
        {"/%4g", 0, CUE_EPARSE, NULL, "two hex digits"},
        {"/%g4", 0, CUE_EPARSE, NULL, "two hex digits"},
        {"/%C3%28", 0, CUE_EPARSE, NULL, "not UTF-8 (at its byte 1)"},
        {"/\xff", 0, CUE_EPARSE, NULL, "not UTF-8"},
        {"/%C0%AF", 0, CUE_EPARSE, NULL, "not UTF-8"},       /* overlong '/' */
        {"/%E0%80%AF", 0, CUE_EPARSE, NULL, "not UTF-8"},    /* overlong, 3 bytes */
        {"/%ED%A0%80", 0, CUE_EPARSE, NULL, "not UTF-8"},    /* a surrogate */
        {"/%F4%90%80%80", 0, CUE_EPARSE, NULL, "not UTF-8"}, /* past U+10FFFF */
        {"/%F0%9F%98", 0, CUE_EPARSE, NULL, "not UTF-8"},    /* cut short */
        {"/%80", 0, CUE_EPARSE, NULL, "not UTF-8"},          /* a lone continuation */
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        const path_case *c = &cases[i];
        size_t raw_len = c->raw_len ? c->raw_len : strlen(c->raw);
        char out[64];
        memset(out, 'x', sizeof out);
        size_t out_len = 99;
        cue_err err = {0};
        int rc = cue_http_path_decode(c->raw, raw_len, out, raw_len + 1, &out_len, &err);
        cr_expect_eq(rc, c->rc, "case %zu '%s': rc %d, expected %d (%s)", i, c->raw, rc, c->rc,
                     err.msg);
        if (c->rc == 0 && rc == 0) {
            cr_expect_eq(out_len, strlen(c->decoded), "case %zu: length %zu", i, out_len);
            cr_expect(memcmp(out, c->decoded, strlen(c->decoded) + 1) == 0,
                      "case %zu '%s': decoded '%s'", i, c->raw, out);
        } else if (c->rc != 0) {
            cr_expect(strstr(err.msg, c->why) != NULL, "case %zu '%s': '%s' lacks '%s'", i, c->raw,
                      err.msg, c->why);
            cr_expect_eq(out_len, 0, "case %zu: a length for a failure", i);
        }
        /* In place gives the same. */
        char copy[64];
        memcpy(copy, c->raw, raw_len);
        size_t copy_len = 0;
        cr_expect_eq(cue_http_path_decode(copy, raw_len, copy, sizeof copy, &copy_len, NULL), c->rc,
                     "case %zu in place", i);
        if (c->rc == 0) cr_expect_str_eq(copy, c->decoded, "case %zu in place", i);
    }
}

Test(http, path_decode_room)
{
    char out[8];
    size_t n = 99;
    cue_err err = {0};
    cr_expect_eq(cue_http_path_decode("/abcdefgh", 9, out, sizeof out, &n, &err), CUE_ELIMIT);
    cr_expect(strstr(err.msg, "7 bytes") != NULL, "'%s'", err.msg);
    /* Escapes shrink: 19 raw bytes fit 8 bytes of room. */
    cr_expect_eq(cue_http_path_decode("/%61%62%63%64%65%66", 19, out, sizeof out, &n, &err), 0,
                 "%s", err.msg);
    cr_expect_str_eq(out, "/abcdef");
    cr_expect_eq(cue_http_path_decode("", 0, out, 0, &n, NULL), CUE_ELIMIT, "no room for a NUL");
    cr_expect_eq(cue_http_path_decode("", 0, out, 1, &n, NULL), 0);
    cr_expect_eq(n, 0);
}

static void bad_paths_script(fixture *f)
{
    static const char *const requests[] = {
        "GET /v1/users/abc%00junk HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/users/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/users/%4 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/users/%C3%28 HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /healthz%00 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/users/j%C3%BCrgen?x=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    for (size_t i = 0; i < COUNT(requests); i++)
        exchange(&c, requests[i], &f->r[i]);
    close(c.fd);
}

Test(http, a_path_that_does_not_decode_gets_400)
{
    fixture f;
    fixture_start(&f);
    drive(&f, bad_paths_script);
    static const char *const bodies[] = {
        "bad request path: \"%00\" at offset 13 decodes to a NUL byte\n",
        "bad request path: '%' at offset 10 is not followed by two hex digits\n",
        "bad request path: '%' at offset 10 is not followed by two hex digits\n",
        "bad request path: the decoded path is not UTF-8 (at its byte 10)\n",
        "",
    };
    for (size_t i = 0; i < COUNT(bodies); i++)
        expect_response(&f.r[i], 400, "text/plain; charset=utf-8", bodies[i], "a bad path");
    /* The query string is not the path's business, and the same connection
     * still serves. */
    expect_response(&f.r[5], 404, "text/plain; charset=utf-8", "not found\n", "a good path");
    cr_expect_str_eq(f.seen.path, "/v1/users/j\xc3\xbcrgen");
    cr_expect_eq(f.seen.calls, 1, "the handler saw a bad path");
    cr_expect_eq(cue_http_stats_get(f.http)->bad_paths, 5);
    fixture_stop(&f);
}

static void nul_script(fixture *f)
{
    /* Sent as such, not percent-encoded: no client library does this. */
    static const char req[] = "GET /v1/users/abc\0junk HTTP/1.1\r\nHost: x\r\n\r\n";
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    if (send(c.fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) return;
    read_response(&c, false, &f->r[0]);
    close(c.fd);
    /* A query string also ends the path as a NUL does: still whole. */
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "GET /metrics? HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[1]);
    exchange(&c, "GET  /metrics  HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[2]);
    close(c.fd);
}

Test(http, a_nul_byte_in_the_request_line_gets_400)
{
    fixture f;
    fixture_start(&f);
    drive(&f, nul_script);
    expect_response(&f.r[0], 400, "text/plain; charset=utf-8",
                    "bad request path: a NUL byte in the request line\n", "a NUL byte");
    expect_response(&f.r[1], 200, "text/plain; version=0.0.4; charset=utf-8", "up 1\n",
                    "an empty query");
    cr_expect(f.r[2].ok && f.r[2].status != 400, "spaces around the target: %d", f.r[2].status);
    cr_expect_eq(f.seen.calls, 2, "the handler saw the request with a NUL");
    fixture_stop(&f);
}

static void long_head_script(fixture *f)
{
    static char req[CUE_HTTP_CONNECTION_BYTES + 64];
    int n = snprintf(req, sizeof req, "GET /");
    memset(req + n, 'a', CUE_HTTP_CONNECTION_BYTES);
    snprintf(req + n + CUE_HTTP_CONNECTION_BYTES,
             sizeof req - (size_t)n - CUE_HTTP_CONNECTION_BYTES, " HTTP/1.1\r\nHost: x\r\n\r\n");
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    if (conn_send(&c, req)) read_response(&c, false, &f->r[0]);
    close(c.fd);
}

Test(http, a_head_longer_than_a_connection_may_hold_gets_414)
{
    fixture f;
    fixture_start(&f);
    drive(&f, long_head_script);
    cr_expect(f.r[0].ok, "no whole response");
    cr_expect_eq(f.r[0].status, 414);
    cr_expect_eq(f.seen.calls, 0);
    fixture_stop(&f);
}

/* ---- addresses ---------------------------------------------------------------- */

static void get_healthz6_script(fixture *f)
{
    conn c;
    if (!conn_open6(&c, "::1", f->port)) return;
    exchange(&c, healthz, &f->r[0]);
    close(c.fd);
    /* Bound to ::1 only: not to IPv4's loopback. */
    errno = 0;
    f->connect_errno = conn_open(&c, "127.0.0.1", f->port) ? 0 : errno;
    if (c.fd >= 0) close(c.fd);
}

Test(http, an_ipv6_address_in_brackets)
{
    fixture f;
    fixture_start_at(&f, "[::1]:0", NULL);
    char want[32];
    snprintf(want, sizeof want, "[::1]:%u", (unsigned)f.port);
    cr_expect_str_eq(cue_http_address(f.http), want);
    cr_expect(cue_http_loopback(f.http));
    drive(&f, get_healthz6_script);
    expect_response(&f.r[0], 200, "text/plain; charset=utf-8", "ok\n", "GET over IPv6");
    cr_expect_eq(f.connect_errno, ECONNREFUSED, "127.0.0.1: %s", strerror(f.connect_errno));
    fixture_stop(&f);
}

static void both_families_script(fixture *f)
{
    conn c;
    if (conn_open6(&c, "::1", f->port)) exchange(&c, healthz, &f->r[0]);
    close(c.fd);
    if (conn_open(&c, "127.0.0.1", f->port)) exchange(&c, healthz, &f->r[1]);
    close(c.fd);
}

Test(http, every_ipv6_interface_takes_ipv4_too)
{
    fixture f;
    fixture_start_at(&f, "[::]:0", NULL);
    cr_expect(!cue_http_loopback(f.http), "[::] is reachable from other hosts");
    drive(&f, both_families_script);
    expect_response(&f.r[0], 200, "text/plain; charset=utf-8", "ok\n", "over IPv6");
    expect_response(&f.r[1], 200, "text/plain; charset=utf-8", "ok\n", "over IPv4");
    fixture_stop(&f);
}

Test(http, a_host_name)
{
    fixture f;
    fixture_start_at(&f, "localhost:0", NULL);
    /* localhost is 127.0.0.1 or ::1, depending on the host's files. */
    const char *addr = cue_http_address(f.http);
    cr_expect(strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0, "bound %s", addr);
    cr_expect(cue_http_loopback(f.http), "localhost (%s) is loopback", addr);
    fixture_stop(&f);
}

Test(http, which_addresses_are_loopback)
{
    static const struct {
        const char *listen;
        bool loopback;
    } cases[] = {{"127.0.0.1:0", true},
                 {"127.0.0.2:0", true},
                 {"0.0.0.0:0", false},
                 {"[::1]:0", true},
                 {"[::]:0", false}};
    for (size_t i = 0; i < COUNT(cases); i++) {
        fixture f;
        fixture_start_at(&f, cases[i].listen, NULL);
        cr_expect_eq(cue_http_loopback(f.http), cases[i].loopback, "%s (bound %s)", cases[i].listen,
                     cue_http_address(f.http));
        fixture_stop(&f);
    }
}

/* ---- tokens --------------------------------------------------------------------- */

Test(http, bearer_tokens)
{
    static const struct {
        const char *authorization;
        bool ok;
    } cases[] = {
        {"Bearer s3cret", true}, {"bearer s3cret", true},   {"Bearer   s3cret", true},
        {"Bearer s3cre", false}, {"Bearer s3cretx", false}, {"Bearer S3cret", false},
        {"Bearer", false},       {"Bearer ", false},        {"Basic s3cret", false},
        {"Bearers3cret", false}, {"s3cret", false},         {"", false},
        {NULL, false},           {"Bearer s3cret ", false}, {"Bearer \x01s3cret", false},
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        cr_expect_eq(cue_http_bearer_is(cases[i].authorization, "s3cret"), cases[i].ok, "'%s'",
                     cases[i].authorization ? cases[i].authorization : "(null)");
    cr_expect(!cue_http_bearer_is("Bearer ", ""), "an empty token matches nothing");
    cr_expect(!cue_http_bearer_is("Bearer x", NULL));
}

static void auth_script(fixture *f)
{
    conn c;
    if (!conn_open(&c, "127.0.0.1", f->port)) return;
    exchange(&c, "GET /private HTTP/1.1\r\nHost: x\r\n\r\n", &f->r[0]);
    exchange(&c, "GET /private HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n",
             &f->r[1]);
    close(c.fd);
}

Test(http, the_handler_sees_authorization_and_sets_www_authenticate)
{
    fixture f;
    fixture_start(&f);
    drive(&f, auth_script);
    expect_response(&f.r[0], 401, "text/plain; charset=utf-8", "who are you\n", "no token");
    cr_expect_str_eq(f.r[0].www_authenticate, "Bearer realm=\"test\"");
    expect_response(&f.r[1], 404, "text/plain; charset=utf-8", "not found\n", "the token");
    cr_expect_str_eq(f.r[1].www_authenticate, "", "a WWW-Authenticate on a 404");
    cr_expect_str_eq(f.seen.authorization, "Bearer s3cret");
    fixture_stop(&f);
}
