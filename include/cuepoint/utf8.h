/*
 * utf8: well-formed UTF-8 (RFC 3629), the one definition the tokenizer, the
 * JSON writer and the dead-letter writer share. Pure; any thread.
 */
#ifndef CUEPOINT_UTF8_H
#define CUEPOINT_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed sequence at s (n > 0 bytes available): 1 for
 * ASCII, 2 to 4 otherwise, 0 when the bytes are not UTF-8 (overlong forms,
 * surrogates, code points past U+10FFFF, a sequence cut short). */
size_t cue_utf8_len(const unsigned char *s, size_t n);

/* Whether all n bytes at s are UTF-8. */
bool cue_utf8_valid(const char *s, size_t n);

#endif
