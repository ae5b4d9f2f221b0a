/* The members topic and the instance id (src/runtime/members.c) on the mock
 * cluster: this instance's record read back names what it owns, a
 * revocation is published, another instance's partition becomes a standby
 * here, and the instance id (and so the transactional.id) is the same at
 * every start from one state directory. */
#include "runtime_harness.h"

static void members_init(harness *h)
{
    harness_init(h, 2);
    cue_err err = {0};
    cr_assert(cue_kafka_mock_topic_create(h->mock, "unit-changelog", 2, &err) == 0, "%s", err.msg);
    cr_assert(cue_kafka_mock_topic_create(h->mock, "unit-members", 1, &err) == 0, "%s", err.msg);
    h->cfg.changelog = true;
    h->cfg.standby_replicas = 1;
}

static bool owns_both(harness *h)
{
    const char *o0 = cue_members_owner(h->r->mem.view, 0, rt_real_ms());
    const char *o1 = cue_members_owner(h->r->mem.view, 1, rt_real_ms());
    return h->r->mem.read && o0 && o1 && strcmp(o0, h->r->mem.name) == 0 &&
           strcmp(o1, h->r->mem.name) == 0;
}

static bool gave_up_1(harness *h)
{
    return cue_members_owner(h->r->mem.view, 1, rt_real_ms()) == NULL;
}

Test(runtime_members, what_this_instance_owns_is_published_and_read_back, .timeout = 90)
{
    harness h;
    members_init(&h);
    harness_open(&h);
    cr_assert_not_null(h.r->mem.k, "standby replicas are off");
    harness_until(&h, owns_both, 20000, "this instance's record to be read back");
    cr_expect_eq(cue_members_live(h.r->mem.view, rt_real_ms()), 1);
    int32_t gone = 1;
    rt_on_revoked(&gone, 1, false, h.r);
    harness_until(&h, gave_up_1, 20000, "the revocation to be read back");
    cue_err err = {0};
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

static bool standby_of_1(harness *h)
{
    return h->r->parts[1].standby;
}

/* Another instance claims partition 1 (its record written to the topic):
 * with one replica wanted, this instance keeps a standby of it. */
Test(runtime_members, another_instances_partition_becomes_a_standby_here, .timeout = 90)
{
    harness h;
    members_init(&h);
    harness_open(&h);
    harness_until(&h, owns_both, 20000, "this instance's record to be read back");
    int32_t gone = 1;
    rt_on_revoked(&gone, 1, false, h.r);
    cue_buf rec;
    cue_buf_init(&rec, 256);
    cr_assert_eq(cue_members_encode("other", &gone, 1, rt_real_ms(), 60000, &rec), 0);
    cue_err err = {0};
    cr_assert_eq(
        cue_kafka_loader_send(h.loader, "unit-members", 0, "other", 5, rec.data, rec.len, &err), 0,
        "%s", err.msg);
    cr_assert_eq(cue_kafka_loader_flush(h.loader, 10000, &err), 0, "%s", err.msg);
    cue_buf_deinit(&rec);
    harness_until(&h, standby_of_1, 20000, "a standby of partition 1");
    cr_expect_str_eq(cue_members_owner(h.r->mem.view, 1, rt_real_ms()), "other");
    cr_expect_eq(h.r->reader.standbys, 1);
    cr_expect_eq(harness_close(&h, &err), 0, "%s", err.msg);
}

Test(runtime_members, the_instance_id_is_kept_in_the_state_directory)
{
    char dir[64];
    temp_dir(dir);
    cue_config c;
    cue_config_defaults(&c);
    snprintf(c.application_id, sizeof c.application_id, "app");
    snprintf(c.state_dir, sizeof c.state_dir, "%s", dir);
    cue_err err = {0};
    cr_assert_eq(rt_txn_id_derive(&c, &err), 0, "%s", err.msg);
    char first[sizeof c.transactional_id];
    snprintf(first, sizeof first, "%s", c.transactional_id);
    cr_expect_eq(strlen(first), strlen("app-") + 32, "%s", first);
    cr_expect_eq(strncmp(first, "app-", 4), 0, "%s", first);
    cr_assert_eq(rt_txn_id_derive(&c, &err), 0, "%s", err.msg);
    cr_expect_str_eq(c.transactional_id, first, "a new id at the second start");
    /* Static membership names the instance instead. */
    cr_assert_eq(
        cue_config_set(&c, "kafka", "{\"consumer\": {\"group.instance.id\": \"node-3\"}}", &err), 0,
        "%s", err.msg);
    cr_assert_eq(rt_txn_id_derive(&c, &err), 0, "%s", err.msg);
    cr_expect_str_eq(c.transactional_id, "app-node-3");
    remove_tree(dir);
}
