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
} seen;

static int handler(const char *method, const char *path, cue_buf *body, const char **content_type,
                   void *ctx)
{
    seen *s = ctx;
    s->calls++;
    snprintf(s->method, sizeof s->method, "%s", method);
    snprintf(s->path, sizeof s->path, "%s", path);
    if (strcmp(path, "/metrics") == 0) {
        cue_buf_append_str(body, "up 1\n");
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        cue_buf_append_str(body, "ok\n");
        return 200;
    }
    cue_buf_append_str(body, "not found\n");
    return 404;
}

/* ---- a minimal HTTP/1.1 client -------------------------------------------- */

typedef struct response {
    bool ok; /* a whole response was read */
    int status;
    long content_length;
    char content_type[128];
    char allow[64];
    char connection[32];
    char body[256];
    size_t body_len;
} response;

typedef struct conn {
    int fd;
    char buf[8192];
    size_t len;
} conn;

static bool conn_open(conn *c, const char *ip, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return false;
    /* A server bug must fail the test, not hang it. */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
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
};

static void on_wake(uv_async_t *a) {}

static void fixture_start(fixture *f)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    cr_assert_eq(uv_async_init(&f->loop, &f->wake, on_wake), 0);
    cue_err err = {0};
    int rc = cue_http_start(&f->http, &f->loop, "127.0.0.1:0", handler, &f->seen, &err);
    cr_assert_eq(rc, 0, "start: %s", err.msg);
    f->port = cue_http_port(f->http);
    cr_assert_neq(f->port, 0, "port 0 becomes a real port");
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
    int rc = cue_http_start(&second, &f.loop, listen, handler, NULL, &err);
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
        "localhost:9464",  "127.0.0.1",        "127.0.0.1:",      ":9464",
        "127.0.0.1:65536", "127.0.0.1:-1",     "127.0.0.1:94x",   "[::1]:9464",
        "1.2.3:9464",      "127.0.0.1:000001", "127.0.0.1:9464 ", "",
    };
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    for (size_t i = 0; i < COUNT(cases); i++) {
        cue_http *h = NULL;
        cue_err err = {0};
        int rc = cue_http_start(&h, &loop, cases[i], handler, NULL, &err);
        cr_expect_eq(rc, CUE_EINVAL, "'%s': rc %d", cases[i], rc);
        cr_expect_null(h);
        cr_expect(strstr(err.msg, cases[i]) != NULL, "'%s' not named in '%s'", cases[i], err.msg);
    }
    cr_expect_eq(uv_loop_close(&loop), 0, "a failed start leaves nothing on the loop");
}
