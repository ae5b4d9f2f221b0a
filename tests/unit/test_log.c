/* Log lines are single JSON objects with escaped fields. */
#include "cuepoint/log.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

Test(log, one_json_object_per_line, .init = cr_redirect_stderr)
{
    cue_log(CUE_LOG_WARN, "bad \"record\"\n", "s:topic", "events", "i:offset", (int64_t)42,
            "u:count", (uint64_t)7, "b:retry", 1, NULL);
    cue_log(CUE_LOG_DEBUG, "dropped below the level", NULL);
    fflush(stderr);
    char line[512] = {0};
    FILE *f = cr_get_redirected_stderr();
    cr_assert(fgets(line, sizeof line, f) != NULL);
    cr_assert(strstr(line,
                     "\"level\":\"warn\",\"msg\":\"bad \\\"record\\\"\\n\",\"topic\":\"events\","
                     "\"offset\":42,\"count\":7,\"retry\":true}") != NULL,
              "%s", line);
    cr_assert_eq(strncmp(line, "{\"ts\":\"", 7), 0);
    cr_assert(fgets(line, sizeof line, f) == NULL, "a debug line passed the default level");
}
