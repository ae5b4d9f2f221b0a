# Writes OUT, a C file defining NAME (a NUL-terminated string holding the
# bytes of IN) and NAME_len, so that a page is served from the binary alone.
# Runs at build time (see CMakeLists.txt).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" escaped "${hex}")
# Lines of 32 bytes: compilers and editors prefer short lines.
string(REGEX REPLACE "((\\\\x[0-9a-f][0-9a-f]){32})" "\\1\"\n    \"" escaped "${escaped}")
file(WRITE ${OUT}.tmp "#include <stddef.h>\n\nextern const char ${NAME}[];\nextern const size_t ${NAME}_len;\n\nconst char ${NAME}[] =\n    \"${escaped}\";\nconst size_t ${NAME}_len = ${n};\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
