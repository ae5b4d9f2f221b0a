/*
 * metrics_watch: times `cuepoint run` from outside, for bench/pipeline.sh.
 * Polls GET /metrics on the admin address (read from the file that
 * `cuepoint run --admin-addr-file` writes) every --interval-ms and follows
 * cuepoint_records_consumed_total.
 *
 *   metrics_watch --addr-file PATH --target N [--interval-ms 10] [--timeout-s 300]
 *                 [--trace PATH]   (every sample: seconds since start, count or -1)
 *
 * The rate covers the interval from the first sample that shows records
 * consumed (count c0 at time t0) to the first sample that shows all N
 * (time t1): rate = (N - c0) / (t1 - t0). The end is late by at most one
 * interval, so the rate errs low, never high. Each sample's time is the
 * midpoint of its request. Keeps polling until the admin server goes away
 * (the process exited) and reports that too. Prints one line:
 *   cuepoint_run records=N seconds=S rate=R
 * interval=first_sample_consuming_to_first_sample_at_target sample_ms=I first_to_exit_seconds=X
 * Exit 0 when the target was reached, 1 otherwise.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* One GET /metrics; the counter's value, or -1 when nothing answered. */
static double scrape(const struct sockaddr_in *sa)
{
    static char buf[1 << 20];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0) {
        close(fd);
        return -1;
    }
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    static const char name[] = "\ncuepoint_records_consumed_total ";
    const char *p = strstr(buf, name);
    return p ? atof(p + sizeof name - 1) : -1;
}

int main(int argc, char **argv)
{
    const char *addr_file = NULL, *trace_path = NULL;
    double target = -1, timeout = 300;
    int interval = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--addr-file") == 0)
            addr_file = argv[i + 1];
        else if (strcmp(argv[i], "--target") == 0)
            target = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--interval-ms") == 0)
            interval = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--timeout-s") == 0)
            timeout = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--trace") == 0)
            trace_path = argv[i + 1];
    }
    if (addr_file == NULL || target <= 0 || interval < 1) {
        fputs("usage: metrics_watch --addr-file PATH --target N [--interval-ms 10] "
              "[--timeout-s 300]\n",
              stderr);
        return 2;
    }
    double start = now_s();
    char addr[128] = "";
    while (now_s() - start < timeout) {
        FILE *f = fopen(addr_file, "r");
        if (f) {
            bool ok = fgets(addr, sizeof addr, f) != NULL;
            fclose(f);
            if (ok) break;
        }
        sleep_ms(interval);
    }
    char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        fprintf(stderr, "metrics_watch: no admin address in %s\n", addr_file);
        return 1;
    }
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "metrics_watch: bad admin address %s\n", addr);
        return 1;
    }
    FILE *trace = trace_path ? fopen(trace_path, "w") : NULL;
    double t0 = -1, c0 = 0, t1 = -1, t_exit = -1;
    bool answered = false;
    while (now_s() - start < timeout) {
        double a = now_s();
        double v = scrape(&sa);
        double t = (a + now_s()) / 2;
        if (trace) fprintf(trace, "%.4f %.0f\n", t - start, v);
        if (v < 0) {
            if (answered) {
                t_exit = a;
                break;
            }
        } else {
            answered = true;
            if (t0 < 0 && v > 0) {
                t0 = t;
                c0 = v;
            }
            if (t1 < 0 && v >= target) t1 = t;
        }
        sleep_ms(interval);
    }
    if (trace) fclose(trace);
    double secs = t0 >= 0 && t1 > t0 ? t1 - t0 : 0;
    printf("cuepoint_run records=%.0f seconds=%.3f rate=%.0f "
           "interval=first_sample_consuming_to_first_sample_at_target sample_ms=%d "
           "first_to_exit_seconds=%.3f\n",
           target, secs, secs > 0 ? (target - c0) / secs : 0.0, interval,
           t0 >= 0 && t_exit > t0 ? t_exit - t0 : -1.0);
    fflush(stdout);
    return t1 >= 0 ? 0 : 1;
}
