/*
 * standby: where the standby replicas of each partition live
 * (num.standby.replicas), decided by every instance from the same data.
 *
 * librdkafka's assignors are built in and tell a member only its own
 * partitions, so the group's membership reaches each instance through a
 * topic instead: <application.id>-members (one partition, compacted). Every
 * instance writes a record keyed by its instance name when its partitions
 * change and as a heartbeat:
 *
 *     {"v":1,"instance":"NAME","owned":[0,5],"ts_ms":T,"ttl_ms":L}
 *
 * and a tombstone when it stops cleanly. Every instance reads the whole
 * topic into a cue_members view. A member is live while its last record is
 * younger than its ttl_ms (by the reader's wall clock: instances' clocks must
 * agree to well within a ttl). A partition's owner is the live member whose
 * latest record claims it; when two claim it (a rebalance in flight, or a
 * member killed after its partition moved), the later record in the topic
 * wins. Its standbys are the `replicas` live members other than the owner
 * that rank highest by a hash of (partition, member name): rendezvous
 * hashing, so every reader that sees the same records picks the same
 * members, copies are never on the owner, they spread evenly, and a member
 * joining or leaving moves only the standbys it takes or gives up.
 *
 * Pure (no Kafka, no clock of its own); one thread. The view owns its
 * memory.
 */
#ifndef CUEPOINT_STANDBY_H
#define CUEPOINT_STANDBY_H

#include "cuepoint/buf.h"
#include "cuepoint/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An instance name: group.instance.id when set, else made at start-up. */
#define CUE_MEMBER_NAME_BYTES_MAX 128
/* Members a view keeps; more live members than this is refused (an
 * error per record), which bounds the view's memory and each decision. */
#define CUE_MEMBERS_MAX 1024

typedef struct cue_members cue_members;

/* A view for a topic of `partitions` partitions, seen by instance `self`
 * (copied). *out is the caller's, freed with cue_members_free. */
int cue_members_new(cue_members **out, int32_t partitions, const char *self, cue_err *err);
void cue_members_free(cue_members *m);

/* Takes one record of the members topic (`offset` is its position there;
 * records must come in offset order). A tombstone (val NULL or empty)
 * removes the member. CUE_EPARSE naming the offset and the problem for a
 * record that is not a member record; the view is then unchanged. */
int cue_members_apply(cue_members *m, const char *key, size_t key_len, const char *val, size_t len,
                      int64_t offset, cue_err *err);

/* This instance's record: `owned` are the partitions it owns (any order). */
int cue_members_encode(const char *self, const int32_t *owned, size_t n_owned, int64_t now_ms,
                       int64_t ttl_ms, cue_buf *out);

/* Members live at `now_ms`, this instance included when it has written. */
size_t cue_members_live(const cue_members *m, int64_t now_ms);

/* The owner of `partition` at `now_ms` as a member name, or NULL when no live
 * member claims it. Borrowed until the next apply. */
const char *cue_members_owner(const cue_members *m, int32_t partition, int64_t now_ms);

/* Sets want[p] (one per partition) when this instance should keep a standby
 * of partition p: p has a live owner other than this instance, and this
 * instance is among the `replicas` highest-ranked other live members.
 * Returns how many are set. This instance counts as a candidate only once
 * its own record has been read back (so every reader agrees it exists). */
size_t cue_members_standbys(const cue_members *m, int64_t now_ms, int replicas, bool *want);

#endif
