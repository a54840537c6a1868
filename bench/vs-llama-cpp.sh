#!/bin/sh
# koto against llama.cpp on the same GGUF files, alternating runs (this machine is
# shared and noisy: only same-run ratios mean much). llama.cpp comes prebuilt from npm
# (node-llama-cpp@3.21.1, its CPU builds), installed into build/npm-peer; it is never
# part of koto or its tests.
#
#   bench/vs-llama-cpp.sh MODEL.gguf [MODEL.gguf ...]
#   ROUNDS=3 PP=512 TG=128 THREADS=2 bench/vs-llama-cpp.sh ...
#
# Prints, per model, both tools' pp and tg of every round, their medians, and the
# ratios koto / llama.cpp of the medians.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
koto="${KOTO:-$root/build/koto}"
peer="$root/build/npm-peer"
rounds="${ROUNDS:-3}"
pp="${PP:-512}"
tg="${TG:-128}"
threads="${THREADS:-2}"

if [ ! -d "$peer/node_modules/node-llama-cpp" ]; then
  mkdir -p "$peer"
  (cd "$peer" && npm init -y >/dev/null && npm install --no-audit --no-fund node-llama-cpp@3.21.1 >&2)
fi
cp "$here/peer/llama-cpp-bench.mjs" "$peer/"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for model in "$@"; do
  : > /tmp/koto-vs-pp.koto; : > /tmp/koto-vs-tg.koto; : > /tmp/koto-vs-pp.peer; : > /tmp/koto-vs-tg.peer
  for round in $(seq 1 "$rounds"); do
    k=$("$koto" bench -m "$model" -p "$pp" -n "$tg" -r 1 -t "$threads" --bandwidth-mb 0 --json 2>/dev/null)
    kp=$(printf '%s' "$k" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pp_tokens_per_s.mean))')
    kt=$(printf '%s' "$k" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tg_tokens_per_s.mean))')
    l=$(node "$peer/llama-cpp-bench.mjs" "$model" "$pp" "$tg" "$threads" 2>/dev/null | tail -1)
    lp=$(printf '%s' "$l" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pp_tokens_per_s))')
    lt=$(printf '%s' "$l" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tg_tokens_per_s))')
    echo "$kp" >> /tmp/koto-vs-pp.koto; echo "$kt" >> /tmp/koto-vs-tg.koto
    echo "$lp" >> /tmp/koto-vs-pp.peer; echo "$lt" >> /tmp/koto-vs-tg.peer
    printf '%s round %s: koto pp%s %.1f tg%s %.1f | llama.cpp pp %.1f tg %.1f tokens/s\n' \
      "$(basename "$model")" "$round" "$pp" "$kp" "$tg" "$kt" "$lp" "$lt"
  done
  mkp=$(median < /tmp/koto-vs-pp.koto); mkt=$(median < /tmp/koto-vs-tg.koto)
  mlp=$(median < /tmp/koto-vs-pp.peer); mlt=$(median < /tmp/koto-vs-tg.peer)
  awk -v m="$(basename "$model")" -v kp="$mkp" -v kt="$mkt" -v lp="$mlp" -v lt="$mlt" -v pp="$pp" -v tg="$tg" 'BEGIN {
    printf "%s medians: koto pp%d %.1f tg%d %.1f | llama.cpp pp %.1f tg %.1f | koto/llama.cpp pp %.2fx tg %.2fx\n",
      m, pp, kp, tg, kt, lp, lt, kp / lp, kt / lt }'
done
