#!/usr/bin/env bash
# The same manual in three formats: Debian's `debian-reference-ja` ships its Japanese
# text as HTML, PDF and plain text. Each form is indexed on its own and asked the
# questions of bench/questions/debian-reference-ja-qa.jsonl; the evidence ranks show
# whether the same passages are found whatever the format.
#   bench/debian-reference.sh [build dir] [results dir]
set -euo pipefail
build=${1:-build}
results=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
if ! dpkg-query -W -f='${Status}' debian-reference-ja 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debian-reference-ja
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=/usr/share/debian-reference
mkdir -p "$work/debian-reference-txt" "$work/debian-reference-html" "$work/debian-reference-pdf"
zcat "$src/debian-reference.ja.txt.gz" > "$work/debian-reference-txt/debian-reference.ja.txt"
cp "$src"/*.ja.html "$work/debian-reference-html/"
cp "$src/debian-reference.ja.pdf" "$work/debian-reference-pdf/"
for form in txt html pdf; do
  args=(bench --retrieval --corpus "$work/debian-reference-$form" --questions "$root/bench/questions/debian-reference-ja-qa.jsonl")
  [ -n "$results" ] && args+=(--results-dir "$results")
  echo "== $form"
  "$build/koto" "${args[@]}" --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("passages", r["chunks"], "index s %.2f" % r["index_seconds"], "evidence@5 %.3f" % r["evidence_recall_at_5"],
      "ranks", [q["evidence_rank"] for q in r["questions"]])'
done
