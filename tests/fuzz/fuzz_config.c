/* The configuration loader (config.c) from JSON text: the file over the
 * defaults, then the effective settings written back out, as
 * `cuepoint run --print-config` does. A value {"file": PATH} reads that
 * file: scripts/fuzz.sh runs the targets with stdin from /dev/null. */
#include "cuepoint/config.h"

#include "fuzz.h"

#include <string.h>

static cue_config cfg;
static cue_buf out;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cue_buf_init(&out, 4096);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_dup(data, size);
    cue_config_defaults(&cfg);
    cue_err err = {0};
    int rc = cue_config_load_text(&cfg, "fuzz.json", text ? text : "", size, &err);
    if (rc == 0) {
        cue_buf_reset(&out);
        if (cue_config_dump(&cfg, &out) != 0) abort();
        (void)cue_config_dead_letter_topic(&cfg);
        (void)cue_config_changelog_topic(&cfg);
        (void)cue_config_repartition_topic(&cfg);
        (void)cue_config_members_topic(&cfg);
        (void)cue_config_decisions_topic(&cfg);
        for (size_t i = 0; i < cfg.kafka_len; i++)
            if (strlen(cue_config_kafka_key(&cfg, i)) == 0) abort();
    } else if (rc != CUE_ECONFIG || err.msg[0] == '\0') {
        abort();
    }
    free(text);
    return 0;
}
