/* The Kafka commands: run, dev-broker, and the demo on an embedded broker. */
#include "cuepoint/cli.h"

#include "cuepoint/buf.h"
#include "cuepoint/config.h"
#include "cuepoint/gen.h"
#include "cuepoint/kafka.h"
#include "cuepoint/log.h"
#include "cuepoint/machine.h"
#include "cuepoint/policy.h"
#include "cuepoint/runtime.h"
#include "cuepoint/timefmt.h"

#include "cli_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

/* ---- cuepoint run ------------------------------------------------------ */

static const char run_help[] =
    "Usage: cuepoint run --config FILE [options]\n"
    "\n"
    "Runs the Kafka pipeline: joins the consumer group application.id on\n"
    "input.topic (or input.topics, read as one stream per partition number),\n"
    "runs each record through the journeys in machines.dir with\n"
    "per-user state in state.dir (RocksDB), produces triggers to trigger.topic\n"
    "and records that cannot be used to the dead-letter topic. Every\n"
    "commit.interval.ms it waits for the triggers to be acknowledged, commits the\n"
    "state with the input offsets, then commits the offsets to the group. Admin\n"
    "HTTP on admin.listen: /healthz /readyz /metrics /v1/users/{id}. With\n"
    "policies set, every trigger passes the policy stage and each decision goes\n"
    "to decisions.topic (default <application.id>-decisions).\n"
    "With changelog.enabled, each commit also writes the changed users to\n"
    "<application.id>-changelog, and a partition that moves here is rebuilt\n"
    "from it first (/readyz false meanwhile); num.standby.replicas=N keeps N\n"
    "copies of each partition current on other instances (placed through\n"
    "<application.id>-members), so a fail-over restores only the tail.\n"
    "num.stream.threads=N processes the partitions on N threads (each\n"
    "partition's records in order on one).\n"
    "SIGTERM or SIGINT: finish the commit cycle, leave the group, exit 0; a second\n"
    "signal exits at once (the last commit is on disk, nothing is lost).\n"
    "\n"
    "Options:\n"
    "  --config FILE          the configuration (docs/configuration.md), required;\n"
    "                         relative paths in it are taken from its directory\n"
    "  --set KEY=VALUE        override one setting (repeatable)\n"
    "  --state-dir DIR        same as --set state.dir=DIR\n"
    "  --machines DIR         same as --set machines.dir=DIR\n"
    "  --policies FILE        same as --set policies=FILE\n"
    "  --print-config         check the configuration as run does (machines, policies,\n"
    "                         librdkafka properties, admin address), print it as JSON\n"
    "                         (secrets redacted) and exit: 0, or run's exit status\n"
    "  --stop-at-end          stop once every assigned partition is at its end\n"
    "  --admin-addr-file PATH write the bound admin address there (for admin.listen\n"
    "                         port 0)\n"
    "  -h, --help             this text\n"
    "\n"
    "Environment: CUEPOINT_CLOCK=TIME (RFC 3339 or epoch ms) fixes the wall clock\n"
    "that caught-up partitions follow: a seam for tests, not for production.\n"
    "\n"
    "Logs are JSON lines on stderr (log.level: debug, info, warn, error). Exit\n"
    "status: 0 stopped cleanly, 64 usage (no --config), 66 the config file or\n"
    "the input topic does not exist, 69 no broker answered within\n"
    "startup.timeout.ms or a delivery failed (nothing past it was committed),\n"
    "74 state directory I/O, 75 fenced under processing.guarantee=exactly_once_v2\n"
    "(another producer took over this instance's transactional.id; nothing was\n"
    "committed after the last transaction), 78 configuration (config file,\n"
    "librdkafka property, machines, admin address).\n";

typedef struct run_args {
    bool print_config, stop_at_end;
    const char *addr_file;
} run_args;

static int run_parse(args *a, cue_config *cfg, run_args *ra, cue_err *err)
{
    for (a->i = 2; a->i < a->argc; a->i++) {
        int rc = cli_common_opt(a, cfg, err);
        if (rc < 0) return -rc;
        if (rc == 1) continue;
        const char *arg = a->argv[a->i];
        if (strcmp(arg, "--print-config") == 0)
            ra->print_config = true;
        else if (strcmp(arg, "--stop-at-end") == 0)
            ra->stop_at_end = true;
        else if (cli_opt_value(a, "--admin-addr-file", &ra->addr_file)) {
            if (a->bad) return EX_USAGE;
        } else
            return cli_usage_error(a->cmd, "unknown option '%s'", arg);
    }
    return 0;
}

static int64_t demo_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

static void run_summary(const cue_runtime_result *r);

/* The pipeline itself, on a wall clock that CUEPOINT_CLOCK may fix (so tests
 * can show time-driven triggers without waiting for them). An exit code. */
static int run_pipeline(cue_runtime_opts *o, cue_err *err)
{
    int64_t fixed_now = 0;
    const char *clock = getenv("CUEPOINT_CLOCK");
    if (clock && *clock) {
        if (cli_parse_time(clock, &fixed_now) != 0)
            return cli_usage_error("run", "CUEPOINT_CLOCK: '%s' is not a time", clock);
        o->now_ms = demo_clock;
        o->now_ctx = &fixed_now;
    }
    cue_runtime_result res;
    int rc = cue_runtime_run(o, &res, err);
    if (rc == 0 || res.consumed > 0) run_summary(&res);
    /* A failure met while running was logged when it stopped the run, at
     * the time it happened; once is enough. */
    if (rc != 0 && res.error_logged) return cli_exit_for(rc);
    return rc == 0 ? 0 : cli_fail("run", rc, err);
}

/* The run's peak resident memory, for sizing a container: what the state
 * cache, RocksDB, librdkafka's prefetch and the cycle's buffers came to. */
static uint64_t peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0 ? (uint64_t)ru.ru_maxrss * 1024 : 0;
}

static void run_summary(const cue_runtime_result *r)
{
    cue_log(CUE_LOG_INFO, "stopped", "u:consumed", r->consumed, "u:triggers", r->triggers,
            "u:dead_letters", r->dead_letters, "u:applied", r->applied, "u:duplicates",
            r->duplicates, "u:commits", r->commits, "d:seconds", r->seconds, "d:active_seconds",
            r->active_seconds, "i:signal", (int64_t)r->signal, "u:peak_rss_bytes", peak_rss_bytes(),
            NULL);
}

static int print_config(const cue_config *cfg)
{
    cue_buf b;
    cue_buf_init(&b, 4096);
    int rc = cue_config_dump(cfg, &b);
    if (rc == 0) fputs(b.data, stdout);
    cue_buf_deinit(&b);
    return rc == 0 ? 0 : EX_SOFTWARE;
}

/* Everything `run` reads and checks before it reaches a broker: the
 * machines, the policy file, and cue_runtime_check. --print-config goes
 * through the same, so it refuses (with the same exit code) what run would. */
static int run_prepare(cue_runtime_opts *o, cue_machines **ms, cue_policy **pol, cue_err *err)
{
    int rc = cue_machines_load(ms, o->cfg->machines_dir, NULL, err);
    if (rc == 0 && o->cfg->policies[0]) rc = cue_policy_load(pol, o->cfg->policies, *ms, err);
    o->ms = *ms;
    o->policy = *pol;
    if (rc == 0) rc = cue_runtime_check(o, err);
    return rc;
}

int cli_cmd_run(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(run_help, stdout);
        return 0;
    }
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    args a = {.argc = argc, .argv = argv, .cmd = "run"};
    run_args ra = {0};
    int rc = run_parse(&a, &cfg, &ra, &err);
    if (rc != 0) return rc;
    /* Defaults alone name a broker on localhost and a state directory in
     * the working directory: a deployment that lost its --config must not
     * start on them and wait for a broker that is not there. */
    if (!a.config_seen)
        return cli_usage_error("run", "%s",
                               "--config FILE is required (settings still default to "
                               "docs/configuration.md for every key the file leaves out)");
    cue_machines *ms = NULL;
    cue_policy *pol = NULL;
    cue_runtime_opts o = {
        .cfg = &cfg, .stop_at_end = ra.stop_at_end, .admin_addr_file = ra.addr_file};
    rc = run_prepare(&o, &ms, &pol, &err);
    if (rc != 0)
        rc = cli_fail("run", rc, &err);
    else if (ra.print_config)
        rc = print_config(&cfg);
    else
        rc = run_pipeline(&o, &err);
    cue_policy_free(pol);
    cue_machines_free(ms);
    return rc;
}

/* ---- cuepoint dev-broker ----------------------------------------------- */

static const char broker_help[] =
    "Usage: cuepoint dev-broker [options]\n"
    "\n"
    "Runs librdkafka's mock Kafka cluster on 127.0.0.1 for trying cuepoint and for\n"
    "tests, prints its bootstrap address as the first line on stdout, and stays up\n"
    "until SIGTERM or SIGINT. Any Kafka client (kcat, cuepoint run) can use it.\n"
    "It keeps about 5 MB per partition: older records are dropped.\n"
    "\n"
    "Options:\n"
    "  --partitions N   partitions of each created topic (default 4)\n"
    "  --brokers N      brokers in the cluster (default 1)\n"
    "  --topic NAME[:N] create this topic, with N partitions (default --partitions)\n"
    "                   (repeatable; default: events, triggers,\n"
    "                   cuepoint-dead-letters). Other topics are created with 4\n"
    "                   partitions when first used: a changelog\n"
    "                   (<application.id>-changelog) must have as many partitions as\n"
    "                   its input, so name it here when that is not 4.\n"
    "  --port P         also accept bootstrap connections on 127.0.0.1:P (the\n"
    "                   brokers themselves stay on the ports the mock picked)\n"
    "  --debug CONTEXTS librdkafka debug contexts for the cluster, logged on stderr\n"
    "                   (e.g. 'mock': every request served and every log append,\n"
    "                   each with its time: a timeline of what the clients did)\n"
    "\n"
    "Faults, one command per line on stdin (for tests):\n"
    "  down B | up B                 broker B stops or resumes answering\n"
    "  leader TOPIC PARTITION B      move a partition's leader to broker B\n"
    "  coordinator group ID B        move a group's coordinator to broker B\n"
    "  produce-errors N              fail the next N produce requests (retriable)\n"
    "  rtt B MS                      add MS of round-trip time to broker B\n"
    "  errors API ERROR N            answer the next N requests of API (Produce,\n"
    "                                InitProducerId, AddPartitionsToTxn,\n"
    "                                AddOffsetsToTxn, EndTxn, TxnOffsetCommit, or a\n"
    "                                number) with ERROR (a Kafka error name such as\n"
    "                                PRODUCER_FENCED, or a number): e.g. 'errors\n"
    "                                EndTxn PRODUCER_FENCED 1' fences a transactional\n"
    "                                producer, 'errors AddPartitionsToTxn\n"
    "                                TOPIC_AUTHORIZATION_FAILED 1' makes its\n"
    "                                transaction abort\n";

static volatile sig_atomic_t broker_stop;
static void on_broker_signal(int sig)
{
    broker_stop = sig;
}

#define FORWARDS_MAX 64

/* A bootstrap forwarder for --port: the mock picks its own ports, so a fixed
 * port can only be a relay to the first broker. Clients then learn the
 * brokers' real addresses from metadata. */
typedef struct forwarder {
    int listen_fd;
    struct sockaddr_in target;
    int fds[FORWARDS_MAX][2]; /* client, broker; -1 when free */
} forwarder;

static int forwarder_open(forwarder *f, int port, const char *bootstrap, cue_err *err)
{
    for (int i = 0; i < FORWARDS_MAX; i++)
        f->fds[i][0] = f->fds[i][1] = -1;
    const char *colon = strrchr(bootstrap, ':');
    f->target.sin_family = AF_INET;
    f->target.sin_port = htons((uint16_t)atoi(colon ? colon + 1 : "0"));
    inet_pton(AF_INET, "127.0.0.1", &f->target.sin_addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(f->listen_fd, 16) != 0) {
        close(f->listen_fd);
        return cue_err_set(err, CUE_EIO, "--port: cannot listen on 127.0.0.1:%d: %s", port,
                           strerror(errno));
    }
    return 0;
}

static void forwarder_accept(forwarder *f)
{
    int c = accept(f->listen_fd, NULL, NULL);
    if (c < 0) return;
    int b = socket(AF_INET, SOCK_STREAM, 0);
    int slot = -1;
    for (int i = 0; i < FORWARDS_MAX && slot < 0; i++)
        if (f->fds[i][0] < 0) slot = i;
    if (slot < 0 || b < 0 || connect(b, (struct sockaddr *)&f->target, sizeof f->target) != 0) {
        close(c);
        if (b >= 0) close(b);
        return;
    }
    f->fds[slot][0] = c;
    f->fds[slot][1] = b;
}

/* Copies what is readable on one side to the other; closes the pair at EOF. */
static void forwarder_pump(forwarder *f, int slot, int from)
{
    char buf[65536];
    ssize_t n = read(f->fds[slot][from], buf, sizeof buf);
    bool ok = n > 0;
    for (ssize_t off = 0; ok && off < n;) {
        ssize_t w = write(f->fds[slot][1 - from], buf + off, (size_t)(n - off));
        ok = w > 0;
        off += w > 0 ? w : 0;
    }
    if (!ok) {
        close(f->fds[slot][0]);
        close(f->fds[slot][1]);
        f->fds[slot][0] = f->fds[slot][1] = -1;
    }
}

static int broker_loop(cue_kafka_mock *m, forwarder *f)
{
    bool stdin_open = true;
    char line[512];
    size_t len = 0;
    while (!broker_stop) {
        struct pollfd p[2 + 2 * FORWARDS_MAX];
        int slots[2 + 2 * FORWARDS_MAX];
        nfds_t n = 0;
        if (stdin_open) p[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
        if (f) {
            p[n++] = (struct pollfd){.fd = f->listen_fd, .events = POLLIN};
            for (int i = 0; i < FORWARDS_MAX; i++)
                for (int s = 0; s < 2 && f->fds[i][0] >= 0; s++) {
                    slots[n] = i * 2 + s;
                    p[n++] = (struct pollfd){.fd = f->fds[i][s], .events = POLLIN};
                }
        }
        if (poll(p, n, 200) <= 0) continue;
        for (nfds_t i = 0; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (p[i].fd == 0) {
                ssize_t r = read(0, line + len, sizeof line - 1 - len);
                if (r <= 0) {
                    stdin_open = false;
                    continue;
                }
                len += (size_t)r;
                line[len] = '\0';
                char *nl;
                while ((nl = strchr(line, '\n')) != NULL) {
                    *nl = '\0';
                    cue_err err = {0};
                    if (line[0] && cue_kafka_mock_command(m, line, &err) != 0)
                        cue_log(CUE_LOG_ERROR, err.msg, "s:command", "dev-broker", NULL);
                    else if (line[0])
                        cue_log(CUE_LOG_INFO, "fault applied", "s:fault", line, NULL);
                    len -= (size_t)(nl + 1 - line);
                    memmove(line, nl + 1, len + 1);
                }
                if (len == sizeof line - 1) len = 0; /* an over-long line is dropped */
            } else if (f && p[i].fd == f->listen_fd) {
                forwarder_accept(f);
            } else if (f && f->fds[slots[i] / 2][0] >= 0) {
                forwarder_pump(f, slots[i] / 2, slots[i] % 2);
            }
        }
    }
    return 0;
}

typedef struct broker_args {
    size_t partitions, brokers, port;
    const char *debug; /* librdkafka debug contexts, or NULL */
    const char *topics[32];
    size_t n_topics;
} broker_args;

/* The options after `dev-broker`; an exit status when they are wrong. */
static int broker_args_parse(int argc, char **argv, broker_args *b)
{
    args a = {.argc = argc, .argv = argv, .cmd = "dev-broker"};
    *b = (broker_args){.partitions = 4, .brokers = 1};
    for (a.i = 2; a.i < argc; a.i++) {
        bool m = false;
        const char *v = NULL;
        int rc = cli_size_opt(&a, "--partitions", &b->partitions, &m);
        if (!m) rc = cli_size_opt(&a, "--brokers", &b->brokers, &m);
        if (!m) rc = cli_size_opt(&a, "--port", &b->port, &m);
        if (rc != 0 || a.bad) return EX_USAGE;
        if (m) continue;
        if (cli_opt_value(&a, "--debug", &v)) {
            if (a.bad) return EX_USAGE;
            b->debug = v;
            continue;
        }
        if (cli_opt_value(&a, "--topic", &v)) {
            if (a.bad) return EX_USAGE;
            if (b->n_topics == 32) return cli_usage_error("dev-broker", "%s", "at most 32 --topic");
            b->topics[b->n_topics++] = v;
            continue;
        }
        return cli_usage_error("dev-broker", "unknown option '%s'", argv[a.i]);
    }
    if (b->partitions < 1 || b->partitions > 1000 || b->brokers < 1 || b->brokers > 9 ||
        b->port > 65535)
        return cli_usage_error("dev-broker", "%s",
                               "--partitions 1-1000, --brokers 1-9, --port 0-65535");
    if (b->n_topics == 0) {
        b->topics[b->n_topics++] = "events";
        b->topics[b->n_topics++] = "triggers";
        b->topics[b->n_topics++] = "cuepoint-dead-letters";
    }
    return 0;
}

/* Creates each topic (NAME or NAME:PARTITIONS); stops the cluster and
 * returns an exit status when one cannot be. */
static int broker_topics(cue_kafka_mock *m, const broker_args *b)
{
    cue_err err = {0};
    for (size_t i = 0; i < b->n_topics; i++) {
        char name[CUE_TOPIC_BYTES_MAX + 1];
        snprintf(name, sizeof name, "%s", b->topics[i]);
        char *colon = strrchr(name, ':');
        size_t count = b->partitions;
        if (colon) {
            *colon = '\0';
            if (cli_parse_size(colon + 1, &count) != 0 || count < 1 || count > 1000) {
                cue_kafka_mock_stop(m);
                return cli_usage_error(
                    "dev-broker", "--topic '%s': NAME or NAME:PARTITIONS (1-1000)", b->topics[i]);
            }
        }
        if (cue_kafka_mock_topic_create(m, name, (int)count, &err) != 0) {
            cue_kafka_mock_stop(m);
            return cli_fail("dev-broker", err.code, &err);
        }
    }
    return 0;
}

int cli_cmd_dev_broker(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(broker_help, stdout);
        return 0;
    }
    broker_args b;
    int rc = broker_args_parse(argc, argv, &b);
    if (rc != 0) return rc;
    cue_err err = {0};
    cue_kafka_mock *m = NULL;
    if (b.debug) cue_log_set_level(CUE_LOG_DEBUG);
    if (cue_kafka_mock_start_debug(&m, (int)b.brokers, b.debug, &err) != 0)
        return cli_fail("dev-broker", err.code, &err);
    if ((rc = broker_topics(m, &b)) != 0) return rc;
    forwarder fw;
    bool forwarding = b.port != 0;
    if (forwarding && forwarder_open(&fw, (int)b.port, cue_kafka_mock_bootstraps(m), &err) != 0) {
        cue_kafka_mock_stop(m);
        return cli_fail("dev-broker", CUE_EUSAGE, &err);
    }
    struct sigaction sa = {.sa_handler = on_broker_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (forwarding)
        printf("127.0.0.1:%zu\n", b.port);
    else
        printf("%s\n", cue_kafka_mock_bootstraps(m));
    fflush(stdout);
    cue_log(CUE_LOG_INFO, "mock cluster up", "s:bootstrap_servers", cue_kafka_mock_bootstraps(m),
            "i:brokers", (int64_t)b.brokers, "i:partitions", (int64_t)b.partitions, NULL);
    broker_loop(m, forwarding ? &fw : NULL);
    cue_log(CUE_LOG_INFO, "mock cluster stopping", "i:signal", (int64_t)broker_stop, NULL);
    if (forwarding) close(fw.listen_fd);
    cue_kafka_mock_stop(m);
    return 0;
}

/* ---- cuepoint demo ----------------------------------------------------- */

static const char demo_help[] =
    "Usage: cuepoint demo [options]\n"
    "\n"
    "The whole pipeline in one process, needing nothing but this binary: starts\n"
    "librdkafka's mock Kafka cluster, produces a generated stream of product\n"
    "events (users onboarding, some stalling, deadlines set and missed, projects\n"
    "delivered) plus a few bad records, runs `cuepoint run` on it with the example\n"
    "journeys compiled into this binary, prints a sample of the triggers as they\n"
    "are made and a summary, and exits. The clock is set to 15 days after the last\n"
    "event, so stalled onboardings and missed deadlines fire. State goes to a\n"
    "temporary directory.\n"
    "\n"
    "Options:\n"
    "  --users N       users (default 2000)\n"
    "  --events N      events (default 10 per user)\n"
    "  --seed S        random seed (default 42)\n"
    "  --partitions N  partitions of the events topic (default 4)\n"
    "  --sample N      triggers to print (default 24; 0 for none)\n"
    "  --machines DIR  use these journeys instead of the built-in examples\n"
    "  --keep          keep the temporary directory (state) and print it\n"
    "  --file          the same journeys without Kafka (the file mode)\n";

typedef struct demo_opts {
    gen_args g;
    const char *machines;
    bool keep;
    size_t sample, partitions;
} demo_opts;

static int demo_parse(args *a, demo_opts *d)
{
    for (int first = 2;;) {
        int rc = cli_gen_parse(a, &d->g, first);
        if (rc >= 0) return rc;
        bool m = false;
        rc = cli_size_opt(a, "--sample", &d->sample, &m);
        if (!m) rc = cli_size_opt(a, "--partitions", &d->partitions, &m);
        if (rc != 0) return rc;
        if (!m && cli_opt_value(a, "--machines", &d->machines)) m = true;
        if (!m && strcmp(a->argv[a->i], "--keep") == 0) m = d->keep = true;
        if (!m) return cli_usage_error("demo", "unknown option '%s'", a->argv[a->i]);
        if (a->bad) return EX_USAGE;
        first = a->i + 1;
    }
}

/* The generator's user id ("user_id":"u0000042"), for the record key. */
static size_t gen_user(const char *rec, const char **uid)
{
    const char *p = strstr(rec, "\"user_id\":\"");
    if (p == NULL) return 0;
    *uid = p + 11;
    const char *q = strchr(*uid, '"');
    return q ? (size_t)(q - *uid) : 0;
}

/* Produces the generated events, and a few records that cannot be used, so
 * the dead-letter topic has something to show. Sets `*last_ms`. */
static int demo_load(const char *bootstrap, const demo_opts *d, int64_t *last_ms, cue_err *err)
{
    cue_kafka_loader *l = NULL;
    cue_gen *gen = NULL;
    int rc = cue_kafka_loader_new(&l, bootstrap, NULL, 0, err);
    if (rc == 0)
        rc = cue_gen_new(&gen,
                         &(cue_gen_opts){.seed = d->g.seed,
                                         .users = d->g.users,
                                         .events = d->g.events,
                                         .start_ms = d->g.start_ms},
                         err);
    cue_buf b;
    cue_buf_init(&b, 512);
    int64_t ts = 0;
    *last_ms = d->g.start_ms;
    size_t n = 0;
    while (rc == 0 && cue_gen_next(gen, &b, &ts) == 1) {
        const char *uid = NULL;
        size_t ulen = gen_user(b.data, &uid);
        if (ts > *last_ms) *last_ms = ts;
        rc = cue_kafka_loader_send(l, "events", -1, uid, ulen, b.data, b.len, err);
        /* Four bad records, one after each fifth of the stream. */
        if (++n % (d->g.events / 5 + 1) == 0 && n / (d->g.events / 5 + 1) <= 4) {
            static const struct {
                const char *key, *val;
            } bad[] = {
                {"u0000001", "this is not JSON"},
                {"u0000002",
                 "{\"user_id\":\"u0000003\",\"type\":\"signed_up\",\"ts\":1767603600000}"},
                {"u0000004", "{\"type\":\"signed_up\",\"ts\":1767603600000}"},
                {"u0000005",
                 "{\"user_id\":\"u0000005\",\"type\":\"signed_up\",\"ts\":\"yesterday\"}"},
            };
            size_t k = n / (d->g.events / 5 + 1) - 1;
            if (rc == 0)
                rc = cue_kafka_loader_send(l, "events", -1, bad[k].key, strlen(bad[k].key),
                                           bad[k].val, strlen(bad[k].val), err);
        }
    }
    if (rc == 0) rc = cue_kafka_loader_flush(l, 30000, err);
    cue_buf_deinit(&b);
    cue_gen_free(gen);
    cue_kafka_loader_free(l);
    return rc;
}

static void demo_summary(const cue_machines *ms, const cue_runtime_result *r, double load_s)
{
    printf("\nSummary:\n  %llu records consumed in %.2f s from the first to the last (%.0f "
           "records/s); the whole run took %.1f s with the group join, producing them %.1f s\n",
           (unsigned long long)r->consumed, r->active_seconds,
           r->active_seconds > 0 ? (double)r->consumed / r->active_seconds : 0.0, r->seconds,
           load_s);
    printf("  %llu triggers produced to the 'triggers' topic:\n", (unsigned long long)r->triggers);
    for (size_t m = 0; m < cue_machines_count(ms); m++) {
        const cue_machine *mc = cue_machines_get(ms, m);
        for (int t = 0; t < mc->n_triggers; t++)
            if (r->by_trigger[m][t])
                printf("    %-28s %-14s %llu\n", mc->triggers[t].name, mc->name,
                       (unsigned long long)r->by_trigger[m][t]);
    }
    printf("  %llu dead letters on 'cuepoint-demo-dead-letters':",
           (unsigned long long)r->dead_letters);
    for (int k = CUE_REASON_NONE + 1; k < CUE_REASON_COUNT; k++)
        if (r->dead_by_reason[k])
            printf(" %s %llu", cue_reason_name(k), (unsigned long long)r->dead_by_reason[k]);
    printf("\n  %llu commit cycles\n", (unsigned long long)r->commits);
}

static int demo_kafka(const char *dir, const demo_opts *d, demo_ctx *dc, cue_err *err)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_config_set(&cfg, "application.id", "cuepoint-demo", NULL);
    snprintf(cfg.state_dir, sizeof cfg.state_dir, "%.900s/state", dir);
    snprintf(cfg.machines_dir, sizeof cfg.machines_dir, "%.900s/machines", dir);
    if (d->machines) snprintf(cfg.machines_dir, sizeof cfg.machines_dir, "%s", d->machines);
    snprintf(cfg.admin_listen, sizeof cfg.admin_listen, "127.0.0.1:0");
    cue_config_set(&cfg, "kafka", "{\"consumer\": {\"fetch.wait.max.ms\": 10}}", NULL);
    if (d->machines == NULL && cli_write_embedded(cfg.machines_dir) != 0)
        return cue_err_set(err, CUE_EIO, "cannot write the example machines to %s", dir);
    cue_machines *ms = NULL;
    int rc = cue_machines_load(&ms, cfg.machines_dir, NULL, err);
    if (rc != 0) return rc;
    cue_kafka_mock *m = NULL;
    rc = cue_kafka_mock_start(&m, 1, err);
    /* The changelog has the input's count: the mock would make it with 4
     * on first use, and cuepoint cannot create topics there. */
    const char *topics[] = {"events", "triggers", "cuepoint-demo-dead-letters",
                            cue_config_changelog_topic(&cfg)};
    for (size_t i = 0; rc == 0 && i < 4; i++)
        rc = cue_kafka_mock_topic_create(m, topics[i], i == 0 || i == 3 ? (int)d->partitions : 4,
                                         err);
    int64_t last_ms = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rc == 0) {
        snprintf(cfg.bootstrap_servers, sizeof cfg.bootstrap_servers, "%s",
                 cue_kafka_mock_bootstraps(m));
        printf("cuepoint demo: a mock Kafka cluster at %s; producing %zu events of %zu users "
               "(and 4 bad records) to 'events'...\n",
               cfg.bootstrap_servers, d->g.events, d->g.users);
        fflush(stdout);
        rc = demo_load(cfg.bootstrap_servers, d, &last_ms, err);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double load_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (rc == 0) {
        int64_t now = last_ms + (int64_t)15 * 86400000;
        printf("Running the pipeline with %zu journeys (joining the group takes ~3 s).\n"
               "A sample of the triggers, as they are made:\n",
               cue_machines_count(ms));
        fflush(stdout);
        cue_log_set_level(CUE_LOG_ERROR);
        cue_runtime_opts o = {.cfg = &cfg,
                              .ms = ms,
                              .now_ms = demo_clock,
                              .now_ctx = &now,
                              .stop_at_end = true,
                              .on_trigger = cli_demo_trigger,
                              .on_trigger_ctx = dc};
        cue_runtime_result res;
        rc = cue_runtime_run(&o, &res, err);
        cue_log_set_level(CUE_LOG_INFO);
        demo_summary(ms, &res, load_s);
    }
    cue_kafka_mock_stop(m);
    cue_machines_free(ms);
    return rc;
}

int cli_cmd_demo(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(demo_help, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--file") == 0) return cli_demo_file(argc, argv);
    args a = {.argc = argc, .argv = argv, .cmd = "demo"};
    demo_opts d = {.g = {.users = 2000, .seed = 42, .start_ms = 1767603600000LL},
                   .sample = 24,
                   .partitions = 4};
    int rc = demo_parse(&a, &d);
    if (rc != 0) return rc;
    if (d.partitions < 1 || d.partitions > 256)
        return cli_usage_error("demo", "%s", "--partitions takes 1 to 256");
    char dir[CUE_PATH_MAX];
    if (cli_demo_dir(dir, sizeof dir) != 0) return EX_CANTCREAT;
    demo_ctx dc = {.sample_max = d.sample};
    cue_buf_init(&dc.line, 256);
    cue_err err = {0};
    rc = demo_kafka(dir, &d, &dc, &err);
    cue_buf_deinit(&dc.line);
    if (rc != 0) cli_error("demo", cli_err_name(&err), "%s", err.msg);
    if (d.keep)
        printf("\nState is in %s\n", dir);
    else
        cli_remove_tree(dir);
    return rc == 0 ? 0 : cli_exit_for(rc);
}
