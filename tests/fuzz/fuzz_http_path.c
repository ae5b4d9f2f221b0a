/* Admin HTTP path handling (http.c): a request line's target, as any client
 * of admin.listen can send it, through the server (libmicrohttpd parses and
 * percent-decodes it, cue_http hands the path to the handler) to a handler
 * that takes the user id out of /v1/users/{id} as the runtime's does.
 *
 * The server runs on a libuv loop in this process, on 127.0.0.1, port 0;
 * each input is one request on a fresh connection ("Connection: close").
 * TODO(lead): when http.c has its pure path-decoding function, fuzz that
 * directly; this target is the entry that exists now. */
#include "cuepoint/http.h"

#include "cuepoint/limits.h"

#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uv_loop_t loop;
static cue_http *http;
static uint64_t users_asked;

/* The runtime's user path (runtime.c, on_http and user_json), without the
 * partitions to ask. */
static int handler(const char *method, const char *path, cue_buf *body, const char **ctype,
                   void *ctx)
{
    *ctype = "application/json";
    if (path == NULL || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)) abort();
    if (strncmp(path, "/v1/users/", 10) == 0) {
        const char *uid = path + 10;
        size_t n = strlen(uid);
        if (n == 0 || n > CUE_USER_ID_BYTES_MAX) return 404;
        users_asked++;
        cue_buf_append_json_str(body, uid, n);
        return 200;
    }
    cue_buf_append_str(body, "{\"error\":\"not found\"}\n");
    return 404;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cue_err err = {0};
    if (uv_loop_init(&loop) != 0 ||
        cue_http_start(&http, &loop, "127.0.0.1:0", handler, NULL, &err) != 0) {
        fprintf(stderr, "fuzz: %s\n", err.msg);
        abort();
    }
    return 0;
}

static int connect_local(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cue_http_port(http))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0;; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) abort();
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
        int e = errno;
        close(fd);
        fprintf(stderr, "fuzz: connect to 127.0.0.1:%u: %s\n", cue_http_port(http), strerror(e));
        if (tries == 100) abort();
        uv_run(&loop, UV_RUN_NOWAIT);
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
}

/* Sends all of `req` and reads until the server closes, running the loop
 * meanwhile. A server that never answers is a finding (libFuzzer's
 * -timeout). */
static void exchange(int fd, const char *req, size_t len)
{
    size_t sent = 0;
    char buf[4096];
    for (;;) {
        if (sent < len) {
            ssize_t w = send(fd, req + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                sent = len; /* closed early: read what is left */
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return;
        /* Until the answer comes in or the server has something to do. */
        struct pollfd fds[2] = {{.fd = fd, .events = POLLIN},
                                {.fd = uv_backend_fd(&loop), .events = POLLIN}};
        if (r < 0) poll(fds, 2, 10);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) return 0;
    char *req = malloc(size + 64);
    if (req == NULL) abort();
    memcpy(req, "GET ", 4);
    memcpy(req + 4, data, size);
    static const char tail[] = " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    memcpy(req + 4 + size, tail, sizeof tail - 1);
    int fd = connect_local();
    exchange(fd, req, 4 + size + sizeof tail - 1);
    /* Closed with a reset: hundreds of thousands of connections must not
     * leave as many in TIME_WAIT, holding the ephemeral ports. */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){.l_onoff = 1, .l_linger = 0},
               sizeof(struct linger));
    close(fd);
    free(req);
    return 0;
}
