/* What every part of the runtime uses and none of them owns: the clocks,
 * ending the run on a fatal error, the partition table's look-up, the
 * store's shared batch, the journeys' counts summed and the test probe. It calls no other part, so
 * every part may call it and the parts' calls stay one-way. */
#include "runtime_int.h"

int64_t rt_wall_ms(rt *r)
{
    if (r->o->now_ms) return r->o->now_ms(r->o->now_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Ends the run without another commit: whatever was not committed is made
 * again by the next run, with the same ids. */
void rt_fatal(rt *r, int rc, const char *msg)
{
    if (rc == CUE_EFENCED && !r->fenced) {
        /* Kafka Streams closes its tasks dirty and rejoins; its
         * transactional.id has a random per-process part, so a fence there
         * means the tasks moved. Ours is stable per instance, so a fence
         * means another live process has this instance's identity: going on
         * (a new producer) would fence it in turn, and the two would abort
         * each other's transactions for ever. So: no commit, not ready, exit
         * 75; whatever was not committed is redone by the survivor. */
        r->fenced = true;
        cue_log(CUE_LOG_ERROR,
                "fenced: another producer registered this transactional.id; exiting 75 without "
                "committing (is a second instance running with the same group.instance.id or "
                "state.dir?)",
                "s:transactional_id", r->cfg->transactional_id, "s:error", msg, NULL);
    }
    if (r->fatal_rc == 0) {
        r->fatal_rc = rc;
        cue_err_set(&r->fatal_err, rc, "%s", msg);
        cue_log(CUE_LOG_ERROR, "stopping without committing", "s:error", msg, NULL);
    }
    uv_stop(&r->loop);
}

/* The wall clock, never an injected one: it is compared with other
 * processes' clocks and with the broker's retention. */
int64_t rt_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rt_step(rt *r, rt_step_id step, int32_t partition)
{
    if (r->probe) r->probe(r, step, partition, r->probe_ctx);
}

part *rt_part_get(rt *r, int32_t p)
{
    return p >= 0 && p < r->n_parts ? &r->parts[p] : NULL;
}

void rt_on_fatal(const char *why, void *ctx)
{
    rt *r = ctx;
    rt_fatal(r, r->k && cue_kafka_fenced(r->k) ? CUE_EFENCED : CUE_EUNAVAILABLE, why);
}

/* Commits the store's shared batch: what restores and standbys applied
 * (tasks commit theirs within their own cycle). A store that cannot write
 * stops the run. */
void rt_batch_commit(rt *r)
{
    cue_err err = {0};
    if (cue_store_batch_commit(r->store, false, &err) != 0) rt_fatal(r, err.code, err.msg);
}

/* The journeys' counts over the partitions here now, with the edge totals
 * of those that left (the users per state are only the ones here). */
const cue_journey_counts *rt_journeys_sum(rt *r)
{
    cue_journey_counts_clear(r->journeys_sum);
    cue_journey_counts_add(r->journeys_sum, r->journeys_retired, false);
    for (int32_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].task && cue_task_journeys(r->parts[i].task))
            cue_journey_counts_add(r->journeys_sum, cue_task_journeys(r->parts[i].task), false);
    return r->journeys_sum;
}
