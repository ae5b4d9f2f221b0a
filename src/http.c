/*
 * The admin HTTP server: libmicrohttpd in "external polling" mode, driven by
 * the libuv loop. libmicrohttpd keeps its own epoll set (listening socket and
 * connections); that epoll fd turns readable whenever one of them is ready, so
 * one uv_poll_t on it is all the loop needs to watch. libmicrohttpd also has
 * work that no socket announces: connection timeouts, and data it has read but
 * not yet processed (its epoll set is edge-triggered). MHD_get_timeout() tells
 * when it next needs to run, and a one-shot uv_timer_t re-armed after every
 * MHD_run() honours it; a timeout of 0 means "again, at once".
 *
 * Why the server once wedged for good: at its connection limit libmicrohttpd
 * 0.9.75 takes the listening socket out of its epoll set, and puts it back only
 * at the start of a later run, once a connection has closed. When the last
 * connections closed, nothing was left in the set to make the epoll fd
 * readable, and MHD_get_timeout() had no connection left to time out: that
 * later run never came, and new connections queued in the backlog for ever.
 * So a run in which a connection closed is followed at once by another.
 *
 * The connection table. libmicrohttpd tells of each connection opened and
 * closed (MHD_OPTION_NOTIFY_CONNECTION) and of each request completed
 * (MHD_OPTION_NOTIFY_COMPLETED); the handler's first call for a request says
 * its head is complete. From these the server knows which connections are
 * waiting (no whole request head yet, or between keep-alive requests), since
 * when, and from which address, and applies the limits and deadlines of
 * http.h. libmicrohttpd 0.9.75 has no call to close a connection, and its own
 * timeout is one of inactivity, which a client sending a byte a second never
 * reaches. So a connection that must give way or is past its deadline is shut
 * down (shutdown(2) on its socket, which stays libmicrohttpd's to close): the
 * socket reports a hang-up, and libmicrohttpd closes it on its next run as it
 * would any connection whose client left.
 *
 * Paths: libmicrohttpd's own unescaping writes "%00" as a NUL that cuts the
 * path short and passes bad escapes through. It is replaced by one that
 * leaves the path as sent, and cue_http_path_decode() decodes it strictly.
 * A NUL byte sent as such cuts the path before anything can decode it:
 * libmicrohttpd before 1.0 hands the request line's parts over as C strings
 * (1.0 refuses the NUL itself). See target_intact().
 */
#include "cuepoint/http.h"

#include "cuepoint/buf.h"
#include "cuepoint/err.h"

#include "cuepoint/limits.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* The bound address as text: "[" an IPv6 address with its zone "]:65535". */
#define ADDRESS_TEXT_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 16)

#define DEFAULT_CONTENT_TYPE "text/plain; charset=utf-8"

/* A connection's place in the table. FRESH and IDLE connections are waiting:
 * they are on the list of their state, oldest first, and may give way. */
enum slot_state { SLOT_FREE, SLOT_FRESH, SLOT_BUSY, SLOT_IDLE, SLOT_CLOSING };

typedef struct slot slot;
struct slot {
    slot *prev, *next;   /* on h->fresh or h->idle while waiting; next links free slots */
    uint64_t since_ms;   /* loop time it started waiting */
    int fd;              /* libmicrohttpd's socket, for shutdown(2) only */
    uint32_t target_len; /* the request line's target, as long as it read as a C string */
    uint16_t client;     /* index in h->clients */
    uint8_t state;
};

typedef struct slot_list {
    slot *head, *tail;
} slot_list;

/* A client address and the connections it holds. */
typedef struct client {
    uint8_t addr[16]; /* IPv4 in the first 4 bytes */
    int family;
    uint16_t refs; /* slots pointing here, closing ones included; 0: a free entry */
    uint16_t live; /* of which not closing */
} client;

struct cue_http {
    uv_poll_t poll; /* on libmicrohttpd's epoll fd */
    uv_timer_t timer;
    uv_loop_t *loop; /* borrowed */
    struct MHD_Daemon *daemon;
    cue_http_handler fn;
    void *ctx;
    cue_buf body; /* reused for every response */
    struct sockaddr_storage addr;
    uint16_t port;
    int handles_open; /* loop handles whose close callback has not run */
    bool in_run;      /* inside MHD_run(), where stopping is not allowed */
    bool starting;    /* libmicrohttpd's messages are kept only while starting */
    bool closed;      /* a connection closed since the last run began */
    /* The table: slots_n = connections max + slack, libmicrohttpd's own limit,
     * so that it never opens a connection without a slot. */
    slot *slots;
    client *clients; /* slots_n: at most one per connection */
    slot *free_slots;
    slot_list fresh, idle;
    unsigned slots_n;
    unsigned live; /* connections open and not closing */
    unsigned conn_max, client_max;
    uint64_t request_timeout_ms, idle_timeout_ms;
    uint64_t room_due; /* when a connection spared by make_room may give way; UINT64_MAX: none */
    cue_http_stats stats;
    char listen[CUE_LISTEN_BYTES_MAX];
    char address[ADDRESS_TEXT_MAX];
    char start_msg[256]; /* libmicrohttpd's first complaint during start-up */
    /* A request's path decoded: never longer than the request head. */
    char path[CUE_HTTP_CONNECTION_BYTES + 1];
};

static void on_poll(uv_poll_t *poll, int status, int events);
static void on_timer(uv_timer_t *timer);

/* ---- start-up ----------------------------------------------------------- */

static int bad_listen(const char *listen, cue_err *err)
{
    return cue_err_set(err, CUE_EINVAL,
                       "http listen address \"%.*s\": expected HOST:PORT, HOST an IPv4 address, "
                       "a host name or an IPv6 address in brackets, such as 127.0.0.1:9464, "
                       "localhost:9464 or [::1]:9464",
                       CUE_LISTEN_BYTES_MAX, listen ? listen : "(none)");
}

/* Splits "HOST:PORT" or "[IPV6]:PORT" into `host` (`cap` bytes) and `port`,
 * and checks HOST's characters: a name or an IPv4 address, or in brackets an
 * IPv6 address, with a zone after '%'. */
static int split_listen(const char *listen, char *host, size_t cap, bool *bracketed, uint16_t *port,
                        cue_err *err)
{
    static const char name_chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
    static const char ipv6_chars[] = "0123456789abcdefABCDEF:.";
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (colon == NULL) return bad_listen(listen, err);
    const char *from = listen, *to = colon;
    *bracketed = listen[0] == '[';
    if (*bracketed) {
        if (colon - listen < 2 || colon[-1] != ']') return bad_listen(listen, err);
        from++, to--;
    }
    size_t n = (size_t)(to - from);
    if (n == 0 || n >= cap) return bad_listen(listen, err);
    memcpy(host, from, n);
    host[n] = '\0';
    const char *zone = *bracketed ? strchr(host, '%') : NULL;
    size_t plain = zone ? (size_t)(zone - host) : n;
    if (strspn(host, *bracketed ? ipv6_chars : name_chars) < plain || host[0] == '-')
        return bad_listen(listen, err);
    unsigned value = 0, digits = 0;
    for (const char *p = colon + 1; *p; p++, digits++) {
        if (*p < '0' || *p > '9' || digits == 5) return bad_listen(listen, err);
        value = value * 10 + (unsigned)(*p - '0');
    }
    if (digits == 0 || value > 65535) return bad_listen(listen, err);
    *port = (uint16_t)value;
    return 0;
}

/* The addresses `listen` names, for start_any() to try in turn: the address
 * itself for a literal, what the resolver says for a name (once, at
 * start-up). A name all digits and dots must be an IPv4 address in full:
 * the resolver would read "1.2.3" as 1.2.0.3. */
static int resolve_listen(const char *listen, struct addrinfo **out, uint16_t *port, cue_err *err)
{
    char host[CUE_LISTEN_BYTES_MAX];
    bool bracketed;
    int rc = split_listen(listen, host, sizeof host, &bracketed, port, err);
    if (rc != 0) return rc;
    bool numeric = bracketed || strspn(host, "0123456789.") == strlen(host);
    struct in_addr v4;
    if (numeric && !bracketed && inet_pton(AF_INET, host, &v4) != 1) return bad_listen(listen, err);
    struct addrinfo hints = {.ai_family = bracketed ? AF_INET6 : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = numeric ? AI_NUMERICHOST : 0};
    int gai = getaddrinfo(host, NULL, &hints, out);
    if (gai != 0 && numeric) return bad_listen(listen, err);
    if (gai != 0)
        return cue_err_set(err, CUE_EINVAL, "http listen address \"%s\": cannot resolve %s: %s",
                           listen, host, gai_strerror(gai));
    return 0;
}

static bool sockaddr_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return sa->ss_family == AF_INET6 &&
           (IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127));
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
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode what);
static void on_completed(void *cls, struct MHD_Connection *conn, void **req,
                         enum MHD_RequestTerminationCode why);
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *text);
static void *on_target(void *cls, const char *target, struct MHD_Connection *conn);

/* Starts libmicrohttpd bound to h->addr; *epoll_fd is the fd for the loop to watch. */
static int start_daemon(cue_http *h, int *epoll_fd, cue_err *err)
{
    if (!MHD_is_feature_supported(MHD_FEATURE_EPOLL))
        return cue_err_set(err, CUE_EIO, "http: this libmicrohttpd has no epoll support");
    /* Its inactivity timeout is in seconds: what waits is timed by the table
     * to the millisecond, this only catches responses that are not read. */
    unsigned idle_s = (unsigned)((h->idle_timeout_ms + 999) / 1000);
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&h->addr;
    if (h->addr.ss_family == AF_INET6)
        flags |= IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    h->start_msg[0] = '\0';
    h->starting = true;
    /* The logger goes first so that it also hears about the options that follow.
     * SOCK_ADDR makes libmicrohttpd bind exactly the address asked for. */
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&h->addr, MHD_OPTION_CONNECTION_LIMIT,
        h->slots_n, MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CUE_HTTP_CONNECTION_BYTES, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, h,
        MHD_OPTION_URI_LOG_CALLBACK, on_target, h, MHD_OPTION_END);
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

/* Binds the first of `addrs` that can be, on `port`; a failure is told as
 * the last address's. h->address then names the address bound. */
static int start_any(cue_http *h, const struct addrinfo *addrs, uint16_t port, int *epoll_fd,
                     cue_err *err)
{
    int rc = cue_err_set(err, CUE_EIO, "http: %s names no IPv4 or IPv6 address", h->listen);
    for (const struct addrinfo *a = addrs; a && rc != 0; a = a->ai_next) {
        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) || a->ai_addrlen > sizeof h->addr)
            continue;
        memset(&h->addr, 0, sizeof h->addr);
        memcpy(&h->addr, a->ai_addr, a->ai_addrlen);
        if (a->ai_family == AF_INET)
            ((struct sockaddr_in *)&h->addr)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&h->addr)->sin6_port = htons(port);
        rc = start_daemon(h, epoll_fd, err);
    }
    if (rc != 0) return rc;
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    socklen_t len =
        h->addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (getnameinfo((const struct sockaddr *)&h->addr, len, host, sizeof host, NULL, 0,
                    NI_NUMERICHOST) != 0)
        snprintf(host, sizeof host, "?");
    snprintf(h->address, sizeof h->address, h->addr.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
             host, (unsigned)h->port);
    return 0;
}

static void free_server(cue_http *h)
{
    cue_buf_deinit(&h->body);
    free(h->slots);
    free(h->clients);
    free(h);
}

/* The table and the bounds, from `opts` (may be NULL) or the defaults. */
static int init_table(cue_http *h, const cue_http_opts *opts)
{
    const cue_http_opts none = {0};
    if (opts == NULL) opts = &none;
    h->conn_max = opts->connections_max ? opts->connections_max : CUE_HTTP_CONNECTIONS_MAX;
    h->client_max = opts->client_connections_max ? opts->client_connections_max
                                                 : CUE_HTTP_CLIENT_CONNECTIONS_MAX;
    h->request_timeout_ms =
        opts->request_timeout_ms ? opts->request_timeout_ms : CUE_HTTP_REQUEST_TIMEOUT_S * 1000;
    h->idle_timeout_ms =
        opts->idle_timeout_ms ? opts->idle_timeout_ms : CUE_HTTP_IDLE_TIMEOUT_S * 1000;
    h->room_due = UINT64_MAX;
    /* At least one: a newcomer is accepted, and so can make room, only while
     * libmicrohttpd is below its limit. */
    h->slots_n = h->conn_max +
                 (opts->connections_slack ? opts->connections_slack : CUE_HTTP_CONNECTIONS_SLACK);
    CUE_ASSERT(h->slots_n <= UINT16_MAX);
    h->slots = calloc(h->slots_n, sizeof *h->slots);
    h->clients = calloc(h->slots_n, sizeof *h->clients);
    if (h->slots == NULL || h->clients == NULL) return CUE_ENOMEM;
    for (unsigned i = h->slots_n; i-- > 0;) {
        h->slots[i].next = h->free_slots;
        h->free_slots = &h->slots[i];
    }
    return cue_buf_init(&h->body, 4096);
}

int cue_http_start(cue_http **out, uv_loop_t *loop, const char *listen, const cue_http_opts *opts,
                   cue_http_handler fn, void *ctx, cue_err *err)
{
    *out = NULL;
    struct addrinfo *addrs = NULL;
    uint16_t port = 0;
    int rc = resolve_listen(listen, &addrs, &port, err);
    if (rc != 0) return rc;
    cue_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        rc = cue_err_set(err, CUE_ENOMEM, "http: out of memory");
        goto free_addrs;
    }
    h->loop = loop;
    h->fn = fn;
    h->ctx = ctx;
    snprintf(h->listen, sizeof h->listen, "%s", listen);
    rc = init_table(h, opts);
    if (rc != 0) {
        cue_err_set(err, rc, "http: out of memory");
        goto free_server;
    }
    int epoll_fd = -1;
    rc = start_any(h, addrs, port, &epoll_fd, err);
    if (rc != 0) goto free_server;
    freeaddrinfo(addrs);
    addrs = NULL;
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
free_server:
    free_server(h);
free_addrs:
    if (addrs) freeaddrinfo(addrs);
    return rc;
}

const char *cue_http_address(const cue_http *h)
{
    return h->address;
}

bool cue_http_loopback(const cue_http *h)
{
    return sockaddr_loopback(&h->addr);
}

uint16_t cue_http_port(const cue_http *h)
{
    return h->port;
}

const cue_http_stats *cue_http_stats_get(const cue_http *h)
{
    return &h->stats;
}

/* ---- the connection table ------------------------------------------------ */

static void list_push(slot_list *l, slot *s)
{
    s->next = NULL;
    s->prev = l->tail;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
}

static void list_remove(slot_list *l, slot *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->prev = s->next = NULL;
}

static slot_list *list_of(cue_http *h, const slot *s)
{
    return s->state == SLOT_FRESH ? &h->fresh : s->state == SLOT_IDLE ? &h->idle : NULL;
}

/* Moves a slot into a waiting state (FRESH or IDLE), or out of one. */
static void slot_set(cue_http *h, slot *s, enum slot_state state)
{
    slot_list *from = list_of(h, s);
    if (from) list_remove(from, s);
    s->state = (uint8_t)state;
    slot_list *to = list_of(h, s);
    if (to) {
        s->since_ms = uv_now(h->loop);
        list_push(to, s);
    }
}

/* The entry for the address `sa` (NULL when libmicrohttpd does not know it:
 * all such connections count as one client), added if new. */
static uint16_t client_ref(cue_http *h, const struct sockaddr *sa)
{
    client key = {.family = sa ? sa->sa_family : AF_UNSPEC};
    if (key.family == AF_INET)
        memcpy(key.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    else if (key.family == AF_INET6)
        memcpy(key.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    unsigned free_at = h->slots_n;
    for (unsigned i = 0; i < h->slots_n; i++) {
        client *c = &h->clients[i];
        if (c->refs == 0) {
            if (free_at == h->slots_n) free_at = i;
        } else if (c->family == key.family && memcmp(c->addr, key.addr, sizeof key.addr) == 0) {
            free_at = i;
            break;
        }
    }
    /* One entry per connection at most, and this connection has none yet. */
    CUE_ASSERT(free_at < h->slots_n);
    client *c = &h->clients[free_at];
    if (c->refs == 0) *c = key;
    c->refs++;
    c->live++;
    return (uint16_t)free_at;
}

/* The shortest whole request, "GET / HTTP/1.0\r\n\r\n". */
#define REQUEST_BYTES_MIN 18

/* The bytes in the connection's socket that libmicrohttpd has not read yet.
 * A request's worth (REQUEST_BYTES_MIN) is a request that has arrived whole
 * (a probe's) and may wait there for a run that has not come: closing it
 * would turn away the client that behaved. A byte or two is a slow
 * client's dribble, not a request: counted as one, a burst of slow clients
 * accepted together outranked a probe a few ms younger whose request had
 * not arrived yet, and the probe was closed first (CI, on a loaded
 * machine). */
static int bytes_waiting(const slot *s)
{
    int n = 0;
    return ioctl(s->fd, FIONREAD, &n) == 0 ? n : 0;
}

/* make_room runs again at `when` at the latest: a connection it spared may
 * give way then. */
static void room_due_at(cue_http *h, uint64_t when)
{
    if (when < h->room_due) h->room_due = when;
}

/* A connection accepted this long ago or less has not had time to send its
 * request: a probe's arrives a moment after its connect, later when the
 * machine is loaded, and slow clients that just sent a byte would
 * otherwise outlast it. */
#define FRESH_GRACE_MS 250

/* A connection accepted this long ago or less does not give way at all
 * while the table has room to spare (URGENT_ROOM slots or more): room is
 * made among the others, or again once it is older. Within the grace it
 * still went before older connections that had sent part of a request, so
 * a probe accepted with a flood from its own address, its request still on
 * the way, was closed 7 ms after its connect (CI, on a loaded machine: 64
 * keep-alive connections, more than the client's limit, all accepted at
 * once). Near a full table those that sent part of a head may give way
 * within the grace, so that libmicrohttpd keeps accepting; those that sent
 * nothing wait out the grace (next_victim). */
#define FRESH_SPARE_MS 50
#define URGENT_ROOM    16

/* The waiting connection of client `ci` (any client if -1) that gives way
 * first: the one idle longest among those answered already, which had
 * their turn; else the oldest of those without a whole request yet; then
 * those just accepted that sent part of a head (a slow client's first
 * byte). Two kinds never give way. One whose request waits in its socket
 * is served in the next run, after which it is idle and may. One just
 * accepted that sent nothing yet waits out its grace (make_room is called
 * again then): its request may be on the way. Ranked last, oldest first,
 * such a probe still went as soon as enough came after it from its own
 * address, and a flood reconnecting from there as fast as it is closed
 * brings that many within a few ms; docs/kafka.md said so, and the admin
 * flood test, whose long case is such a flood, failed once on CI (its
 * output cut before the case). While these fill the table, newcomers wait
 * in the listen backlog: about a quarter second at most. */
static slot *next_victim(cue_http *h, int ci, bool spare)
{
    slot_list *lists[2] = {&h->idle, &h->fresh};
    uint64_t now = uv_now(h->loop);
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < 2; k++)
            for (slot *s = lists[k]->head; s; s = s->next) {
                if (ci >= 0 && s->client != ci) continue;
                bool fresh = s->state == SLOT_FRESH;
                if (spare && fresh && s->since_ms + FRESH_SPARE_MS > now) {
                    room_due_at(h, s->since_ms + FRESH_SPARE_MS);
                    continue;
                }
                int n = bytes_waiting(s);
                if (n >= REQUEST_BYTES_MIN) continue;
                bool young = fresh && s->since_ms + FRESH_GRACE_MS > now;
                if (young && n == 0) {
                    room_due_at(h, s->since_ms + FRESH_GRACE_MS);
                    continue;
                }
                if ((young ? 1 : 0) <= pass) return s;
            }
    return NULL;
}

/* The client holding the most connections. */
static int heaviest_client(const cue_http *h)
{
    int best = -1;
    for (unsigned i = 0; i < h->slots_n; i++)
        if (h->clients[i].refs > 0 && (best < 0 || h->clients[i].live > h->clients[best].live))
            best = (int)i;
    return best;
}

/* Shuts a connection down; libmicrohttpd closes it on its next run. A
 * shutdown that fails finds a socket whose client has gone already, which
 * libmicrohttpd is about to find out by itself. */
static void evict(cue_http *h, slot *s, uint64_t *count)
{
    CUE_ASSERT(s->state == SLOT_FRESH || s->state == SLOT_IDLE);
    shutdown(s->fd, SHUT_RDWR);
    slot_set(h, s, SLOT_CLOSING);
    CUE_ASSERT(h->live > 0 && h->clients[s->client].live > 0);
    h->live--;
    h->clients[s->client].live--;
    (*count)++;
}

/* Brings each client within its limit, then the table within its own, by
 * shutting down waiting connections. Called after each run rather than as
 * connections are accepted: libmicrohttpd accepts before it reads from the
 * connections already open, so a newcomer accepted in one run is read in the
 * next, and had that run's accepts made room at once, they could have
 * closed it before its request, there all along, was read. Connections all
 * busy leave a client or the table over its limit until they finish. */
static void make_room(cue_http *h)
{
    h->room_due = UINT64_MAX;
    bool spare = h->live + URGENT_ROOM < h->slots_n;
    for (unsigned i = 0; i < h->slots_n; i++) {
        slot *victim;
        while (h->clients[i].live > h->client_max && (victim = next_victim(h, (int)i, spare)))
            evict(h, victim, &h->stats.closed_client_limit);
    }
    while (h->live > h->conn_max) {
        slot *victim = next_victim(h, heaviest_client(h), spare);
        if (victim == NULL) victim = next_victim(h, -1, spare);
        if (victim == NULL) break;
        evict(h, victim, &h->stats.closed_table_full);
    }
}

static void connection_started(cue_http *h, struct MHD_Connection *conn, void **socket_ctx)
{
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    slot *s = h->free_slots;
    /* libmicrohttpd's own limit is the number of slots. */
    CUE_ASSERT(s != NULL && fd != NULL);
    h->free_slots = s->next;
    s->next = NULL;
    s->fd = fd->connect_fd;
    s->client = client_ref(h, addr ? addr->client_addr : NULL);
    slot_set(h, s, SLOT_FRESH);
    h->live++;
    h->stats.accepted++;
    h->stats.connections++;
    *socket_ctx = s;
}

static void connection_closed(cue_http *h, slot *s)
{
    client *c = &h->clients[s->client];
    if (s->state != SLOT_CLOSING) {
        h->live--;
        c->live--;
    }
    slot_set(h, s, SLOT_FREE);
    if (--c->refs == 0) memset(c, 0, sizeof *c);
    s->next = h->free_slots;
    h->free_slots = s;
    h->stats.connections--;
    h->closed = true;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode what)
{
    cue_http *h = cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED)
        connection_started(h, conn, socket_ctx);
    else if (*socket_ctx != NULL)
        connection_closed(h, *socket_ctx);
}

static slot *slot_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* A response was sent (or the request failed): a keep-alive connection now
 * waits for its next request. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req,
                         enum MHD_RequestTerminationCode why)
{
    slot *s = slot_of(conn);
    if (s && s->state == SLOT_BUSY) slot_set(cls, s, SLOT_IDLE);
}

/* Shuts down every waiting connection past its deadline. */
static void expire(cue_http *h, uint64_t now_ms)
{
    while (h->fresh.head && h->fresh.head->since_ms + h->request_timeout_ms <= now_ms)
        evict(h, h->fresh.head, &h->stats.closed_timeout);
    while (h->idle.head && h->idle.head->since_ms + h->idle_timeout_ms <= now_ms)
        evict(h, h->idle.head, &h->stats.closed_timeout);
}

/* The earliest deadline of a waiting connection, or moment a spared one may
 * give way (make_room); UINT64_MAX if none. */
static uint64_t next_deadline(const cue_http *h)
{
    uint64_t due = h->room_due;
    if (h->fresh.head && h->fresh.head->since_ms + h->request_timeout_ms < due)
        due = h->fresh.head->since_ms + h->request_timeout_ms;
    if (h->idle.head && h->idle.head->since_ms + h->idle_timeout_ms < due)
        due = h->idle.head->since_ms + h->idle_timeout_ms;
    return due;
}

/* ---- running ------------------------------------------------------------ */

/* Sets the timer for the earliest of: at once, when a connection closed
 * (see the top of this file); libmicrohttpd's own timeout; the table's next
 * deadline, or the moment a spared connection may give way. */
static void schedule(cue_http *h)
{
    uint64_t wait_ms = UINT64_MAX;
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    if (h->closed)
        wait_ms = 0;
    else if (MHD_get_timeout(h->daemon, &mhd_ms) == MHD_YES)
        wait_ms = (uint64_t)mhd_ms;
    h->closed = false;
    uint64_t due = next_deadline(h), now = uv_now(h->loop);
    if (due != UINT64_MAX && (due <= now ? 0 : due - now) < wait_ms)
        wait_ms = due <= now ? 0 : due - now;
    if (wait_ms == UINT64_MAX)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, wait_ms, 0);
}

/* Closes what is past its deadline, lets libmicrohttpd do all it can without
 * blocking, makes room for the connections it accepted, then sets the timer
 * for when it next has to run even if no socket stirs. */
static void run_daemon(cue_http *h)
{
    expire(h, uv_now(h->loop));
    h->closed = false;
    h->in_run = true;
    MHD_run(h->daemon);
    h->in_run = false;
    make_room(h);
    schedule(h);
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

/* ---- requests ------------------------------------------------------------ */

/* Leaves the path as sent, for on_request to decode strictly. libmicrohttpd
 * also passes each query argument through here: those are not used. */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *text)
{
    return strlen(text);
}

/* Sees each request line's target (path and query, as sent) before
 * libmicrohttpd splits it: its length as a C string, for target_intact(). */
static void *on_target(void *cls, const char *target, struct MHD_Connection *conn)
{
    slot *s = slot_of(conn);
    size_t n = strlen(target);
    if (s) s->target_len = n < UINT32_MAX ? (uint32_t)n : UINT32_MAX;
    return NULL;
}

/* Whether the target reached the handler whole. libmicrohttpd 0.9 parses the
 * request line in place: it writes a NUL over the space before the version
 * and hands over pointers into the line, the version right after that NUL.
 * So a target read up to that NUL ends where the version begins, and one
 * that ends sooner held a NUL byte of its own. (1.0 keeps the parts apart
 * but refuses a NUL in the request line with 400 itself.) */
static bool target_intact(const slot *s, const char *url, const char *version)
{
#if MHD_VERSION < 0x01000000
    return s == NULL || version == url + s->target_len + 1;
#else
    return true;
#endif
}

/* Queues `len` bytes (copied) as the response, with one more header if
 * `header` and `value` are not NULL. MHD_NO makes libmicrohttpd close the
 * connection: the only way left to answer when even a response cannot be
 * built. */
static enum MHD_Result respond(struct MHD_Connection *conn, int status, const char *data,
                               size_t len, const char *content_type, const char *header,
                               const char *value, const char *csp)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) return MHD_NO;
    enum MHD_Result ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (ok == MHD_YES && header && value) ok = MHD_add_response_header(r, header, value);
    if (ok == MHD_YES && csp) ok = MHD_add_response_header(r, "Content-Security-Policy", csp);
    if (ok == MHD_YES) ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Answers a complete GET or HEAD: 400 for a path that does not decode, else
 * what the handler says. */
static enum MHD_Result answer(cue_http *h, struct MHD_Connection *conn, const char *method,
                              const char *url)
{
    cue_buf_reset(&h->body);
    cue_http_reply reply = {.body = &h->body, .content_type = DEFAULT_CONTENT_TYPE};
    size_t path_len;
    cue_err why;
    int status;
    if (cue_http_path_decode(url, strlen(url), h->path, sizeof h->path, &path_len, &why) != 0) {
        h->stats.bad_paths++;
        status = 400;
        cue_buf_printf(&h->body, "bad request path: %s\n", why.msg);
    } else {
        cue_http_request req = {
            .method = method,
            .path = h->path,
            .authorization =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        };
        status = h->fn(&req, &reply, h->ctx);
        CUE_ASSERT(status >= 100 && status <= 599);
        CUE_ASSERT(reply.content_type != NULL);
    }
    return respond(conn, status, h->body.data, h->body.len, reply.content_type,
                   MHD_HTTP_HEADER_WWW_AUTHENTICATE, reply.www_authenticate, reply.security_policy);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **req)
{
    static const char not_allowed[] = "method not allowed\n";
    static const char nul[] = "bad request path: a NUL byte in the request line\n";
    cue_http *h = cls;
    if (*req == NULL) {
        /* The head is complete: the connection no longer waits, unless it
         * was told to give way already (then it is closed at once). */
        slot *s = slot_of(conn);
        if (s && s->state == SLOT_CLOSING) return MHD_NO;
        if (s) slot_set(h, s, SLOT_BUSY);
        if (!target_intact(s, url, version)) {
            h->stats.bad_paths++;
            return respond(conn, MHD_HTTP_BAD_REQUEST, nul, sizeof nul - 1, DEFAULT_CONTENT_TYPE,
                           NULL, NULL, NULL);
        }
    }
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (!get && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        /* Answered on the first call, before any body is read: libmicrohttpd
         * then discards the body and closes the connection. */
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, sizeof not_allowed - 1,
                       DEFAULT_CONTENT_TYPE, MHD_HTTP_HEADER_ALLOW, "GET, HEAD", NULL);
    /* The first call comes after the headers; answering then would leave the
     * request incomplete and cost the keep-alive connection. Answer on the call
     * that says the request is complete. A GET that carries a body is not
     * something a scraper sends: close the connection rather than read it. */
    if (*req == NULL) {
        *req = h;
        return MHD_YES;
    }
    if (*upload_len != 0) return MHD_NO;
    return answer(h, conn, method, url);
}

/* ---- paths --------------------------------------------------------------- */

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The length of the UTF-8 sequence that starts `s` (`n` bytes left), 0 if
 * it is not a well-formed one (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1fu, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0fu, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07u, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

int cue_http_path_decode(const char *raw, size_t raw_len, char *out, size_t cap, size_t *out_len,
                         cue_err *err)
{
    const unsigned char *in = (const unsigned char *)raw;
    size_t n = 0;
    *out_len = 0;
    for (size_t i = 0; i < raw_len; i++, n++) {
        if (n + 1 >= cap)
            return cue_err_set(err, CUE_ELIMIT, "the path is longer than %zu bytes",
                               cap > 0 ? cap - 1 : 0);
        unsigned char c = in[i];
        if (c == '%') {
            int hi = i + 1 < raw_len ? hex_digit(in[i + 1]) : -1;
            int lo = i + 2 < raw_len ? hex_digit(in[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return cue_err_set(err, CUE_EPARSE,
                                   "'%%' at offset %zu is not followed by two hex digits", i);
            c = (unsigned char)(hi << 4 | lo);
            if (c == 0)
                return cue_err_set(err, CUE_EPARSE, "\"%%00\" at offset %zu decodes to a NUL byte",
                                   i);
            i += 2;
        } else if (c == 0) {
            return cue_err_set(err, CUE_EPARSE, "a NUL byte at offset %zu", i);
        }
        out[n] = (char)c;
    }
    if (cap == 0) return cue_err_set(err, CUE_ELIMIT, "no room for the path");
    out[n] = '\0';
    for (size_t i = 0; i < n;) {
        size_t len = utf8_sequence((const unsigned char *)out + i, n - i);
        if (len == 0)
            return cue_err_set(err, CUE_EPARSE, "the decoded path is not UTF-8 (at its byte %zu)",
                               i);
        i += len;
    }
    *out_len = n;
    return 0;
}

/* ---- tokens -------------------------------------------------------------- */

bool cue_http_bearer_is(const char *authorization, const char *token)
{
    if (authorization == NULL || token == NULL || token[0] == '\0') return false;
    if (strncasecmp(authorization, "Bearer ", 7) != 0) return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    /* Every byte of the token is compared, whatever differs and where. */
    size_t given_len = strlen(given), token_len = strlen(token);
    unsigned diff = given_len != token_len;
    for (size_t i = 0; i < token_len; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

/* ---- stopping ----------------------------------------------------------- */

static void on_closed(uv_handle_t *handle)
{
    cue_http *h = handle->data;
    CUE_ASSERT(h->handles_open > 0);
    if (--h->handles_open > 0) return;
    free_server(h);
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
