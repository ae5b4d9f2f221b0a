#!/bin/bash
# Finds dead relative links in the project's Markdown: README.md and
# docs/*.md, or the files given. A link is [text](TARGET) or ![alt](TARGET)
# outside code (fenced and indented blocks, `spans`). TARGET is a path
# relative to the file that links, which must exist, and/or #ANCHOR, which
# must be a heading of the Markdown file it points into, as GitHub makes
# anchors: the heading's text lowercased, punctuation dropped (letters,
# digits, '_' and '-' stay), each space a '-', and "-1", "-2"... after a
# repeated one. Links with a scheme (https:, mailto:) are not checked.
#
#   scripts/check-links.sh [FILE.md...]
#
# Prints one line per dead link (FILE:LINE: TARGET: why) and exits 1 if
# there is any, 0 otherwise. Needs bash, awk, sed and grep only.
set -euo pipefail
export LC_ALL=C.UTF-8

if [ $# -eq 0 ]; then
    cd "$(dirname "$0")/.."
    set -- README.md docs/*.md
fi

# prose FILE [keep]: "LINE<TAB>TEXT" for each line outside code blocks: a
# fenced block (``` or ~~~) or an indented one (four spaces or a tab after
# a blank line, as CommonMark has it; a list item's continuation is not
# code). Inline code spans are blanked unless `keep` (headings keep theirs:
# GitHub's anchors include their text).
prose() {
    awk -v keep="${2:-}" '
        /^[ ]*(```|~~~)/ { fence = !fence; blank = 0; next }
        fence { next }
        /^(    |\t)/ && (blank || code) { code = 1; next }
        { code = 0; blank = ($0 ~ /^[ \t]*$/) }
        { if (keep == "") gsub(/`[^`]*`/, ""); print NR "\t" $0 }
    ' "$1"
}

# anchors FILE: the anchor of each heading, one a line.
anchors() {
    prose "$1" keep |
        sed -n -E 's/^[0-9]+\t#{1,6}[ ]+//p' |
        sed -E 's/[ ]+#+[ ]*$//; s/[ ]+$//; s/!?\[([^]]*)\]\([^)]*\)/\1/g' |
        sed -E 's/.*/\L&/; s/[^[:alnum:] _-]//g; s/ /-/g' |
        awk '{ n = seen[$0]++; print (n ? $0 "-" n : $0) }'
}

# links FILE: "LINE<TAB>TARGET" for each link.
links() {
    prose "$1" | awk -F '\t' '{
        s = $2
        while (match(s, /\]\([^) ]+/)) {
            print $1 "\t" substr(s, RSTART + 2, RLENGTH - 2)
            s = substr(s, RSTART + RLENGTH)
        }
    }'
}

declare -A anchor_cache
dead=0
for file in "$@"; do
    [ -f "$file" ] || { echo "$file: no such file"; dead=$((dead + 1)); continue; }
    dir=$(dirname "$file")
    while IFS=$'\t' read -r line target; do
        case $target in [a-zA-Z]*:*) continue ;; esac # a scheme: not ours
        path=${target%%#*}
        anchor=
        [ "$path" != "$target" ] && anchor=${target#*#}
        dest=$file
        [ -n "$path" ] && dest=$dir/$path
        if [ ! -e "$dest" ]; then
            echo "$file:$line: $target: no such file $dest"
            dead=$((dead + 1))
            continue
        fi
        [ -z "$anchor" ] && continue
        case $dest in
        *.md) ;;
        *)
            echo "$file:$line: $target: an anchor into $dest, which is not Markdown"
            dead=$((dead + 1))
            continue
            ;;
        esac
        [ -n "${anchor_cache[$dest]+set}" ] || anchor_cache[$dest]=$(anchors "$dest")
        if [[ $'\n'${anchor_cache[$dest]}$'\n' != *$'\n'"$anchor"$'\n'* ]]; then
            echo "$file:$line: $target: no heading with the anchor #$anchor in $dest"
            dead=$((dead + 1))
        fi
    done < <(links "$file")
done
[ "$dead" -eq 0 ] || { echo "$dead dead link(s)"; exit 1; }
