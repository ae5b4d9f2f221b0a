/* Admin HTTP path handling (http.c): the path of a request target, as any
 * client of admin.listen can send it, through cue_http_path_decode (what the
 * server does to every request before the handler sees it), then the
 * runtime's reading of /v1/users/{id} (runtime.c). The decoder's UTF-8 check
 * is its own, so the utf8 module's judges what it lets through. */
#include "cuepoint/http.h"

#include "cuepoint/limits.h"
#include "cuepoint/utf8.h"

#include "fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = fuzz_dup(data, size);
    char *out = malloc(size + 1);
    if (out == NULL) abort();
    size_t len = 0;
    cue_err err = {0};
    int rc = cue_http_path_decode(raw ? raw : "", size, out, size + 1, &len, &err);
    if (rc == 0) {
        /* Never longer, NUL-terminated, no NUL inside, well-formed UTF-8. */
        if (len > size || out[len] != '\0' || memchr(out, '\0', len) != NULL ||
            !cue_utf8_valid(out, len))
            abort();
        /* In place (as the header allows), the same. */
        char *inplace = malloc(size + 1);
        if (inplace == NULL) abort();
        memcpy(inplace, data, size);
        size_t again = 0;
        if (cue_http_path_decode(inplace, size, inplace, size + 1, &again, NULL) != 0 ||
            again != len || memcmp(inplace, out, len + 1) != 0)
            abort();
        free(inplace);
        /* Without room for the NUL, refused (unless it decodes shorter again). */
        if (memchr(out, '%', len) == NULL &&
            cue_http_path_decode(out, len, out, len, &(size_t){0}, NULL) != CUE_ELIMIT)
            abort();
        /* The runtime's user path: an id of 1 to 128 bytes after the prefix. */
        if (strncmp(out, "/v1/users/", 10) == 0) {
            size_t n = len - 10;
            if (n != strlen(out + 10)) abort();
            (void)(n > 0 && n <= CUE_USER_ID_BYTES_MAX);
        }
    } else if ((rc != CUE_EPARSE && rc != CUE_ELIMIT) || err.msg[0] == '\0') {
        abort();
    }
    free(out);
    free(raw);
    return 0;
}
