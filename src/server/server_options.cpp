#include "server/server_options.h"

#include <arpa/inet.h>

#include <climits>
#include <cstring>

#include "koto/i18n.h"

namespace koto::server {
namespace {

using O = ServerOptions;

// The table. Help texts name units; defaults come from ServerOptions and show in --help.
const ServerOptionRow kServerOptions[] = {
    {"-m,--model", "KOTO_MODEL", "GGUF model file", "GGUF モデルファイル", &O::model},
    {"--alias", "KOTO_MODEL_ALIAS", "The model's id in the API (default: the file name without .gguf)",
     "API でのモデル名 (既定: ファイル名から .gguf を除いたもの)", &O::alias},
    {"--host", "KOTO_HOST", "Address to listen on; anything but loopback needs an API key",
     "待ち受けるアドレス。ループバック以外では API キーが必要", &O::host},
    {"--port", "KOTO_PORT", "Port to listen on (0: any free port)", "待ち受けるポート (0: 空いているポート)", &O::port, 0, 65535},
    {"--port-file", nullptr, "Write the port to this file once listening (for scripts)",
     "待ち受け開始後にポート番号をこのファイルに書く (スクリプト用)", &O::port_file},
    {"-c,--ctx", "KOTO_CTX", "Context size per slot in tokens (0: the model's, at most 4096)",
     "系列ごとのコンテキスト長 (0: モデルの値、最大 4096)", &O::n_ctx, 0, INT32_MAX},
    {"--parallel", "KOTO_PARALLEL", "Sequences generated at once (slots)", "同時に生成する系列の数 (処理枠)",
     &O::parallel, 1, 256},
    {"--kv-type", "KOTO_KV_TYPE", "KV cache type: f16, or q8_0 (about half the memory)",
     "KV キャッシュの型: f16、または q8_0 (メモリ約半分)", &O::kv_type},
    {"--lookup", "KOTO_LOOKUP",
     "Lookup decoding: tokens guessed from the prompt and checked in one pass (0: off; greedy "
     "output unchanged, sampled output keeps its distribution)",
     "先読み復号: プロンプトから推測して 1 回で確かめるトークン数 (0: 無効。貪欲法の出力は変わらず、サンプリングの分布も変わらない)",
     &O::lookup, 0, 16},
    {"--queue", "KOTO_QUEUE", "Requests that may wait for a slot; more get 503 with Retry-After",
     "処理枠を待てる依頼の数。超えると 503 (Retry-After 付き)", &O::queue, 0, 100000},
    {"--batch", "KOTO_BATCH", "Tokens per forward pass: one per generating slot, the rest for prompts",
     "1 回の順伝播で処理するトークン数 (生成中の系列に 1 つずつ、残りをプロンプトに)", &O::batch, 1, 4096},
    {"-t,--threads", "KOTO_THREADS", "Worker threads (0: one per physical core)", "ワーカースレッド数 (0: 物理コアごとに 1)",
     &O::threads, 0, 1024},
    {"--cache-mb", "KOTO_CACHE_MB", "Prefix cache in memory, MB (0: off)", "メモリ上のプレフィックスキャッシュ (MB、0: 無効)",
     &O::cache_mb, 0, 1 << 24},
    {"--cache-dir", "KOTO_CACHE_DIR", "Also keep the prefix cache in this folder, across restarts",
     "プレフィックスキャッシュをこのフォルダーにも保存 (再起動後も使う)", &O::cache_dir},
    {"--cache-disk-mb", "KOTO_CACHE_DISK_MB", "Size limit of --cache-dir, MB", "--cache-dir の上限 (MB)", &O::cache_disk_mb,
     1, 1 << 24},
    {"--api-key-file", "KOTO_API_KEY_FILE",
     "File with the accepted API keys, one per line (a single key may also come from KOTO_API_KEY)",
     "受け付ける API キーのファイル (1 行に 1 つ。1 つだけなら環境変数 KOTO_API_KEY でも可)", &O::api_key_file},
    {"--insecure-no-api-key", nullptr,
     "DANGEROUS: listen on a non-loopback address without any API key (anyone who can reach it can use it)",
     "危険: API キーなしでループバック以外のアドレスで待ち受ける (届く人は誰でも使える)", &O::insecure_no_api_key},
    {"--cors-origin", "KOTO_CORS_ORIGIN", "Allow browser pages from this origin (\"*\": any); none by default",
     "このオリジンのブラウザーページからの利用を許可 (\"*\": すべて)。既定では許可しない", &O::cors_origin},
    {"--max-body", "KOTO_MAX_BODY", "Largest request body (bytes; 4MiB, 512KB... also accepted)",
     "リクエスト本文の上限 (バイト。4MiB、512KB なども可)", &O::max_body_bytes},
    {"--max-tokens", "KOTO_MAX_TOKENS", "Most tokens one request may ask for (0: the context size)",
     "1 回の依頼で求められる最大トークン数 (0: コンテキスト長)", &O::max_tokens, 0, INT32_MAX},
    {"--read-timeout", "KOTO_READ_TIMEOUT", "Seconds a client may stay silent while sending",
     "送信中のクライアントが無言でいられる秒数", &O::read_timeout_s, 1, 3600},
    {"--write-timeout", "KOTO_WRITE_TIMEOUT", "Seconds a client may leave the answer unread (then it is cancelled)",
     "クライアントが回答を読まずにいられる秒数 (過ぎると生成を中止)", &O::write_timeout_s, 1, 3600},
    {"--idle-timeout", "KOTO_IDLE_TIMEOUT", "Seconds an idle keep-alive connection stays open",
     "アイドル状態の keep-alive 接続を保つ秒数", &O::idle_timeout_s, 1, 3600},
    {"--http-threads", "KOTO_HTTP_THREADS", "Connections served at once", "同時に扱う接続の数", &O::http_threads, 2, 4096},
    {"--shutdown-timeout", "KOTO_SHUTDOWN_TIMEOUT", "On SIGINT/SIGTERM, seconds running answers get to finish",
     "SIGINT/SIGTERM の後、実行中の回答が終わるのを待つ秒数", &O::shutdown_timeout_s, 0, 86400},
    {"--log-prompts", "KOTO_LOG_PROMPTS", "Log prompt and answer text (off: only sizes and times)",
     "プロンプトと回答の本文もログに出す (既定: 大きさと時間だけ)", &O::log_prompts},
    {"--system", "KOTO_SYSTEM", "System prompt for chat requests that bring none", "system メッセージのない依頼に使うシステムプロンプト",
     &O::system_prompt},
    {"--template", "KOTO_TEMPLATE", "Chat format instead of the model's (llama2, chatml, llama3, gemma, mistral, plain)",
     "モデルの代わりに使うチャット形式 (llama2, chatml, llama3, gemma, mistral, plain)", &O::chat_template},
    {"--db", "KOTO_DB", "Document index for POST /v1/search (default: koto index's, when it exists)",
     "POST /v1/search で使う文書索引 (既定: koto index の既定の索引があればそれ)", &O::db},
};

}  // namespace

std::span<const ServerOptionRow> server_option_rows() { return kServerOptions; }

void add_server_options(CLI::App& command, ServerOptions& options) {
  for (const ServerOptionRow& row : kServerOptions) {
    const std::string help(pick(row.help_en, row.help_ja));
    CLI::Option* option = std::visit(
        [&](auto member) -> CLI::Option* {
          using T = std::remove_reference_t<decltype(options.*member)>;
          if constexpr (std::is_same_v<T, bool>) {
            return command.add_flag(row.flags, options.*member, help);
          } else if constexpr (std::is_same_v<T, uint64_t>) {
            return command.add_option(row.flags, options.*member, help)
                ->transform(CLI::AsSizeValue(false))
                ->capture_default_str();
          } else if constexpr (std::is_same_v<T, int>) {
            return command.add_option(row.flags, options.*member, help)
                ->check(CLI::Range(row.min, row.max))
                ->capture_default_str();
          } else {
            return command.add_option(row.flags, options.*member, help)->capture_default_str();
          }
        },
        row.field);
    if (row.env != nullptr) option->envname(row.env);
  }
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4 {};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6 {};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return std::memcmp(&v6, &in6addr_loopback, sizeof(v6)) == 0;
  return false;
}

}  // namespace koto::server
