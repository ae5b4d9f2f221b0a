#!/bin/bash
# The documentation holds together: no dead relative link or heading anchor
# in README.md and docs/*.md (scripts/check-links.sh), and every page under
# docs/ is linked from the README. The checker is first shown to catch a
# dead file, a dead anchor and a dead anchor into another page, so that a
# checker that stopped seeing them cannot pass. The binary ($1) is not used.
. "$(dirname "$0")/../lib.sh" "${1:-/dev/null}"
set -uo pipefail
check=$root/scripts/check-links.sh

mkdir -p "$tmp/docs"
cat > "$tmp/README.md" <<'EOF'
# Top

## Who may read `/v1/users/{id}`

Fine: [a page](docs/page.md), [its section](docs/page.md#what-the-input-may-not-do),
[here](#who-may-read-v1usersid), [a scheme](https://example.com/none.md),
`[in code](nowhere.md)`.

    [an indented block](nowhere.md)

Dead: [a file](docs/nope.md), [an anchor](#nope), [another page's](docs/page.md#nope).
EOF
printf '# Page\n\n## What the input may *not* do\n\n[back](../README.md#top)\n' > "$tmp/docs/page.md"
"$check" "$tmp/README.md" "$tmp/docs/page.md" > "$tmp/out" 2>&1
rc=$?
[ "$rc" = 1 ] && ok || bad "the checker exits $rc on dead links, not 1: $(cat "$tmp/out")"
for dead in 'docs/nope.md: no such file' '#nope: no heading' 'docs/page.md#nope: no heading'; do
    grep -qF -- "$dead" "$tmp/out" && ok || bad "the checker missed '$dead': $(cat "$tmp/out")"
done
[ "$(grep -c 'README.md:[0-9]*: ' "$tmp/out")" = 3 ] && ok \
    || bad "the checker flags links that are fine: $(cat "$tmp/out")"

if (cd "$root" && "$check") > "$tmp/out" 2>&1; then ok
else bad "dead links in the documentation:"; cat "$tmp/out"; fi

for page in "$root"/docs/*.md; do
    name=docs/$(basename "$page")
    grep -qF "]($name" "$root/README.md" && ok || bad "$name is not linked from README.md"
done
finish
