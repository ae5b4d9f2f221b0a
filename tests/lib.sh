# Shared by the shell tests: the binary under test, a scratch directory that
# is removed on exit, and pass/fail counting with the closing line CI reads.
# Source it as:  . "$(dirname "$0")/../lib.sh" "$1"
cuepoint=$(realpath "$1")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
