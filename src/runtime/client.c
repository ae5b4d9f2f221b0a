/* A librdkafka client on the libuv loop (rt_client in runtime_int.h): the
 * same three handles for the pipeline's consumer, the changelog reader, the
 * members topic and the repartition stage. librdkafka signals a queue that
 * has something by writing to a pipe; the loop watches the pipe and serves
 * the queue a batch at a time, with an idle handle for what is left, so one
 * busy client never holds the loop (HTTP, timers, the other clients). */
#include "runtime_int.h"

static void on_more(uv_idle_t *h)
{
    rt_client_pump(h->data);
}

static void on_consumer(uv_poll_t *h, int status, int events)
{
    rt_client *c = h->data;
    (void)status;
    (void)events;
    cue_kafka_drain_fd(cue_kafka_consumer_fd(c->k));
    rt_client_pump(c);
}

static void on_producer(uv_poll_t *h, int status, int events)
{
    rt_client *c = h->data;
    (void)status;
    (void)events;
    cue_kafka_drain_fd(cue_kafka_producer_fd(c->k));
    cue_kafka_serve_producer(c->k);
    if (c->produced) c->produced(c->ctx);
}

void rt_client_start(rt_client *c, uv_loop_t *loop, cue_kafka *k, bool producer)
{
    c->k = k;
    c->producer = producer;
    uv_poll_init(loop, &c->cpoll, cue_kafka_consumer_fd(k));
    uv_idle_init(loop, &c->more);
    c->cpoll.data = c->more.data = c;
    uv_poll_start(&c->cpoll, UV_READABLE, on_consumer);
    if (producer) {
        uv_poll_init(loop, &c->ppoll, cue_kafka_producer_fd(k));
        c->ppoll.data = c;
        uv_poll_start(&c->ppoll, UV_READABLE, on_producer);
    }
    c->started = true;
}

void rt_client_pump(rt_client *c)
{
    if (!c->started) return;
    if (c->may_serve && !c->may_serve(c->ctx)) {
        uv_idle_stop(&c->more);
        return;
    }
    size_t n = c->serve ? c->serve(c->ctx) : cue_kafka_consume(c->k, c->batch);
    if (n < c->batch)
        uv_idle_stop(&c->more); /* the pipe says when there is more */
    else if (!uv_is_active((uv_handle_t *)&c->more))
        uv_idle_start(&c->more, on_more);
}

void rt_client_resume(rt_client *c)
{
    if (c->started && !uv_is_active((uv_handle_t *)&c->more)) uv_idle_start(&c->more, on_more);
}

void rt_client_close(rt_client *c)
{
    if (!c->started) return;
    uv_handle_t *hs[] = {(uv_handle_t *)&c->cpoll, (uv_handle_t *)&c->more,
                         c->producer ? (uv_handle_t *)&c->ppoll : NULL};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        if (hs[i] && !uv_is_closing(hs[i])) uv_close(hs[i], NULL);
    c->started = false;
}
