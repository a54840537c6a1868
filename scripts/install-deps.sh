#!/usr/bin/env bash
# Installs the Debian packages koto needs to build and test, if any are missing.
# Runs `apt-get update` once, only when something has to be installed.
set -euo pipefail
packages=(
  cmake ninja-build g++ pkg-config   # build
  clang libclang-rt-14-dev           # libFuzzer + ASan/UBSan for the GGUF fuzz target
  libgtest-dev libgmock-dev          # unit tests
  libbenchmark-dev                   # kernel micro-benchmarks
  nlohmann-json3-dev                 # JSON (fixtures' meta, --json output, stats)
  libcli11-dev                       # command line
  libfmt-dev                         # message formatting (positional args for Japanese word order)
  libicu-dev                         # Unicode classes and regex for the BPE pre-tokenizers
  libxxhash-dev                      # fast hashes: prefix-cache keys and checksums, model identity
  libcpp-httplib-dev                 # HTTP server of `koto serve` (and the test clients)
  libsqlite3-dev                     # the document index (WAL, FTS5 full-text search)
  libmecab-dev mecab-ipadic-utf8     # Japanese words for search (morphological analysis)
  libpoppler-cpp-dev                 # text of PDF pages
  libxml2-dev                        # HTML documents (tolerant parser)
  libedit-dev                        # koto chat: line editing and history (BSD licence)
  libcurl4-openssl-dev libssl-dev    # koto pull: downloads (libcurl) and SHA-256 (OpenSSL)
  chromium                           # the web page's tests run in a real browser (playwright-core drives it)
)
missing=()
for p in "${packages[@]}"; do
  case "$p" in '#'*) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the server's end-to-end tests (the official openai client); a
# machine may already have them from elsewhere (NodeSource), so only the commands count.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "koto: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
