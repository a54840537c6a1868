#include "koto/model_store.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "koto/data_dir.h"
#include "koto/gguf.h"
#include "koto/model.h"
#include "koto/error.h"
#include "koto/i18n.h"

namespace koto {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// ---- libcurl, with RAII -----------------------------------------------------

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

// What one request saw: the final status, and the headers that matter, including the
// hub's X-Linked-* headers from any response of a redirect chain.
struct Response {
  long status = 0;
  std::string etag;          // of the last response
  std::string linked_etag;   // X-Linked-ETag (the LFS SHA-256 on the hub)
  uint64_t linked_size = 0;  // X-Linked-Size
  uint64_t content_length = 0;
  std::string body;          // for small requests (listings, errors)
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string line(data, size * count);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  const size_t colon = line.find(':');
  if (line.rfind("HTTP/", 0) == 0) {
    r->etag.clear();
    r->content_length = 0;
  } else if (colon != std::string::npos) {
    const std::string name = lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    auto unquote = [](std::string v) {
      if (v.rfind("W/", 0) == 0) v = v.substr(2);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return v;
    };
    if (name == "etag") r->etag = unquote(value);
    if (name == "x-linked-etag") r->linked_etag = unquote(value);
    if (name == "x-linked-size") r->linked_size = std::strtoull(value.c_str(), nullptr, 10);
    if (name == "content-length") r->content_length = std::strtoull(value.c_str(), nullptr, 10);
  }
  return size * count;
}

size_t on_body_to_string(char* data, size_t size, size_t count, void* user) {
  auto* r = static_cast<Response*>(user);
  if (r->body.size() < (16u << 20)) r->body.append(data, size * count);
  return size * count;
}

CurlHandle new_request(const std::string& url, const std::string& token) {
  CurlHandle c(curl_easy_init());
  if (!c) throw Error(ErrorCode::kOutOfMemory, "libcurl: no handle");
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.get(), CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "koto/0.1");
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  // A transfer slower than 1 byte/s for 60 s is a dropped connection: retried.
  curl_easy_setopt(c.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c.get(), CURLOPT_LOW_SPEED_TIME, 60L);
  // The token goes to the hub only, never to the CDN a redirect leads to.
  curl_easy_setopt(c.get(), CURLOPT_UNRESTRICTED_AUTH, 0L);
  if (!token.empty()) {
    curl_easy_setopt(c.get(), CURLOPT_XOAUTH2_BEARER, token.c_str());
    curl_easy_setopt(c.get(), CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
  }
  return c;
}

[[noreturn]] void throw_status(long status, const std::string& what, const std::string& token) {
  if (status == 401 || status == 403) {
    throw Error(ErrorCode::kUnavailable,
                tr("{0}: the hub refused access (HTTP {1}); the model may be gated: accept its terms on its page, "
                   "create an access token and set HF_TOKEN{2}",
                   "{0}: ハブにアクセスを拒否されました (HTTP {1})。利用条件への同意が必要なモデルかもしれません。モデルの"
                   "ページで同意し、アクセストークンを作って HF_TOKEN に設定してください{2}",
                   what, status, token.empty() ? "" : std::string(pick(" (the token given was refused)", " (指定したトークンは拒否されました)"))));
  }
  if (status == 404) {
    throw Error(ErrorCode::kNotFound, tr("{0}: not found on the hub (HTTP 404): check the owner, repository and file name",
                                         "{0}: ハブに見つかりません (HTTP 404)。所有者・リポジトリ・ファイル名を確認してください", what));
  }
  throw Error(ErrorCode::kUnavailable, tr("{0}: the hub answered HTTP {1}", "{0}: ハブの応答が HTTP {1} でした", what, status));
}

Response perform_small(const std::string& url, const std::string& token, bool head) {
  Response r;
  CurlHandle c = new_request(url, token);
  curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_body_to_string);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, 120L);
  if (head) curl_easy_setopt(c.get(), CURLOPT_NOBODY, 1L);
  const CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    throw Error(ErrorCode::kUnavailable, tr("{0}: {1} (check the network, or the proxy in https_proxy)",
                                            "{0}: {1} (ネットワークか、https_proxy のプロキシを確認してください)", url,
                                            curl_easy_strerror(rc)));
  }
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

std::string sha256_of_file(const fs::path& path) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[32];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", digest[i]);
    hex += b;
  }
  return hex;
}

bool is_sha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

// A reference resolved: where to download and what to call it.
struct Target {
  std::string url;
  std::string owner;
  std::string repo;
  std::string file;
  std::string expected_sha;  // from a listing (lfs.oid), when known
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t at = s.find(sep); at != std::string::npos; at = s.find(sep, start)) {
    parts.push_back(s.substr(start, at - start));
    start = at + 1;
  }
  parts.push_back(s.substr(start));
  return parts;
}

Target resolve(const std::string& reference, const std::string& endpoint, const std::string& token) {
  auto bad = [&] {
    return Error(ErrorCode::kInvalidArgument,
                 tr("{0}: not a model reference; use hf.co/OWNER/REPO/FILE.gguf, an https URL of a .gguf file, or OWNER/REPO:QUANT "
                    "(e.g. Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M)",
                    "{0}: モデルの指定として読めません。hf.co/所有者/リポジトリ/ファイル.gguf、.gguf ファイルの https URL、"
                    "または 所有者/リポジトリ:量子化 (例: Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M) で指定してください",
                    reference));
  };
  std::string path = reference;
  for (const char* prefix : {"https://", "http://"}) {
    if (path.rfind(prefix, 0) == 0) {
      const std::string rest = path.substr(std::string(prefix).size());
      const size_t slash = rest.find('/');
      if (slash == std::string::npos) throw bad();
      const std::vector<std::string> parts = split(rest.substr(slash + 1), '/');
      // OWNER/REPO/resolve|blob/REVISION/FILE...
      if (parts.size() < 5 || (parts[2] != "resolve" && parts[2] != "blob")) throw bad();
      std::string file = parts[4];
      for (size_t i = 5; i < parts.size(); ++i) file += "/" + parts[i];
      Target t{std::string(prefix) + rest.substr(0, slash) + "/" + parts[0] + "/" + parts[1] + "/resolve/" + parts[3] + "/" + file,
               parts[0], parts[1], file, ""};
      return t;
    }
  }
  for (const char* host : {"hf.co/", "huggingface.co/"}) {
    if (path.rfind(host, 0) == 0) {
      const std::vector<std::string> parts = split(path.substr(std::string(host).size()), '/');
      if (parts.size() < 3 || parts[0].empty() || parts[1].empty()) throw bad();
      std::string file = parts[2];
      for (size_t i = 3; i < parts.size(); ++i) file += "/" + parts[i];
      return {endpoint + "/" + parts[0] + "/" + parts[1] + "/resolve/main/" + file, parts[0], parts[1], file, ""};
    }
  }
  const size_t colon = path.find(':');
  const std::vector<std::string> names = split(path.substr(0, colon), '/');
  if (colon == std::string::npos || names.size() != 2 || names[0].empty() || names[1].empty() || colon + 1 == path.size()) throw bad();
  const std::string quant = lower(path.substr(colon + 1));
  const std::string what = names[0] + "/" + names[1];
  const Response listing = perform_small(endpoint + "/api/models/" + what + "/tree/main", token, false);
  if (listing.status != 200) throw_status(listing.status, what, token);
  nlohmann::json files;
  try {
    files = nlohmann::json::parse(listing.body);
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCode::kUnavailable, tr("{0}: the hub's file listing is not JSON", "{0}: ハブのファイル一覧が JSON ではありません", what));
  }
  std::vector<std::string> ggufs;
  std::vector<std::pair<std::string, std::string>> matches;  // file, sha
  for (const auto& f : files) {
    if (!f.is_object() || f.value("type", "") != "file") continue;
    const std::string name = f.value("path", "");
    if (lower(name).size() < 5 || lower(name).substr(lower(name).size() - 5) != ".gguf") continue;
    ggufs.push_back(name);
    const std::string base = lower(name);
    if (base.find(quant) != std::string::npos) {
      std::string sha;
      if (f.contains("lfs") && f["lfs"].is_object()) sha = f["lfs"].value("oid", "");
      matches.emplace_back(name, sha);
    }
  }
  if (matches.size() != 1) {
    std::string list;
    for (const std::string& g : ggufs) list += "\n  " + g;
    if (ggufs.empty()) list = pick(" (none)", " (なし)");
    throw Error(ErrorCode::kNotFound,
                matches.empty() ? tr("{0}: no GGUF file matches \"{1}\"; its GGUF files:{2}", "{0}: 「{1}」に合う GGUF ファイルがありません。GGUF ファイル:{2}",
                                     what, path.substr(colon + 1), list)
                                : tr("{0}: several GGUF files match \"{1}\"; name one with hf.co/{0}/FILE:{2}",
                                     "{0}: 「{1}」に合う GGUF ファイルが複数あります。hf.co/{0}/ファイル名 で一つを指定してください:{2}", what,
                                     path.substr(colon + 1), list));
  }
  return {endpoint + "/" + what + "/resolve/main/" + matches[0].first, names[0], names[1], matches[0].first, matches[0].second};
}

struct DownloadState {
  std::FILE* file = nullptr;
  uint64_t start = 0;       // bytes present before this attempt
  uint64_t received = 0;    // this attempt
  uint64_t total = 0;
  uint64_t transferred_before = 0;  // earlier attempts of this run
  const PullOptions* options = nullptr;
  Clock::time_point began;
  Clock::time_point last_progress;
  bool write_failed = false;
  long status = 0;
};

size_t on_download(char* data, size_t size, size_t count, void* user) {
  auto* s = static_cast<DownloadState*>(user);
  const size_t n = size * count;
  if (std::fwrite(data, 1, n, s->file) != n) {
    s->write_failed = true;
    return 0;
  }
  s->received += n;
  return n;
}

int on_transfer(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<DownloadState*>(user);
  if (s->options->cancel != nullptr && s->options->cancel->load()) return 1;
  const auto now = Clock::now();
  if (s->options->progress && now - s->last_progress > std::chrono::milliseconds(200)) {
    s->last_progress = now;
    s->options->progress({s->start + s->received, s->total, s->transferred_before + s->received,
                          std::chrono::duration<double>(now - s->began).count()});
  }
  return 0;
}

}  // namespace

std::string hub_endpoint(const std::string& option) {
  std::string e = option;
  for (const char* var : {"KOTO_HF_ENDPOINT", "HF_ENDPOINT"}) {
    if (e.empty()) {
      if (const char* v = std::getenv(var); v != nullptr) e = v;
    }
  }
  if (e.empty()) e = "https://huggingface.co";
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

fs::path ModelStore::default_root() { return koto_data_dir() / "models"; }

ModelStore::ModelStore(fs::path root) : root_(std::move(root)) {}

std::vector<StoredModel> ModelStore::list() const {
  std::vector<StoredModel> models;
  std::ifstream in(root_ / "models.json");
  if (!in) return models;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    for (const auto& m : j.at("models")) {
      StoredModel s;
      s.name = m.value("name", "");
      s.path = m.value("path", "");
      s.source = m.value("source", "");
      s.sha256 = m.value("sha256", "");
      s.size = m.value("size", uint64_t{0});
      s.downloaded = m.value("downloaded", int64_t{0});
      s.last_used = m.value("last_used", int64_t{0});
      if (!s.name.empty() && !s.path.empty()) models.push_back(std::move(s));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kCorruptFile, tr("{0}: the model index is damaged ({1}); delete it and pull again",
                                            "{0}: モデルの索引が壊れています ({1})。削除して pull し直してください",
                                            (root_ / "models.json").string(), e.what()));
  }
  return models;
}

void ModelStore::save(const std::vector<StoredModel>& models) const {
  nlohmann::json list = nlohmann::json::array();
  for (const StoredModel& m : models) {
    list.push_back({{"name", m.name}, {"path", m.path}, {"source", m.source}, {"sha256", m.sha256}, {"size", m.size},
                    {"downloaded", m.downloaded}, {"last_used", m.last_used}});
  }
  fs::create_directories(root_);
  const fs::path tmp = root_ / "models.json.tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << nlohmann::json{{"models", list}}.dump(2) << '\n';
    out.flush();
    if (!out) throw Error(ErrorCode::kIo, tr("{0}: cannot write", "{0}: 書き込めません", tmp.string()));
  }
  fs::rename(tmp, root_ / "models.json");
}

std::optional<StoredModel> ModelStore::find(const std::string& name) const {
  std::vector<StoredModel> hits;
  for (const StoredModel& m : list()) {
    const std::string file = fs::path(m.name).filename().string();
    const std::string stem = fs::path(m.name).stem().string();
    const std::vector<std::string> parts = split(m.name, '/');
    const std::string repo_file = parts.size() >= 3 ? parts[1] + "/" + file : file;
    if (m.name == name) return m;
    const CatalogueEntry* entry = find_in_catalogue(name);
    const bool catalogue_hit = entry != nullptr && m.name == std::string(entry->repo) + "/" + entry->file;
    if (repo_file == name || file == name || stem == name || catalogue_hit) hits.push_back(m);
  }
  if (hits.size() == 1) return hits[0];
  return std::nullopt;
}

bool ModelStore::remove(const std::string& name) {
  const std::optional<StoredModel> m = find(name);
  if (!m) return false;
  std::error_code ec;
  // Its repacked weights (Model::load's cache), if it was ever loaded that way.
  try {
    fs::remove(repack_cache_path(GgufFile::open(m->path)), ec);
  } catch (const Error&) {
    // Not a readable GGUF file: it never had a cache.
  }
  fs::remove(m->path, ec);
  std::vector<StoredModel> models = list();
  models.erase(std::remove_if(models.begin(), models.end(), [&](const StoredModel& s) { return s.name == m->name; }), models.end());
  save(models);
  return true;
}

void ModelStore::touch(const std::string& name) {
  std::vector<StoredModel> models = list();
  for (StoredModel& m : models) {
    if (m.name == name) m.last_used = now_seconds();
  }
  save(models);
}

PullResult ModelStore::pull(const std::string& reference, const PullOptions& options) {
  static CurlGlobal curl_global;
  const std::string endpoint = hub_endpoint(options.endpoint);
  std::string token = options.token;
  if (token.empty()) {
    if (const char* t = std::getenv("HF_TOKEN"); t != nullptr) token = t;
  }
  const CatalogueEntry* entry = find_in_catalogue(reference);
  const Target target = entry != nullptr ? resolve(std::string("hf.co/") + entry->repo + "/" + entry->file, endpoint, token)
                                         : resolve(reference, endpoint, token);
  const std::string name = target.owner + "/" + target.repo + "/" + target.file;
  const fs::path final_path = root_ / target.owner / target.repo / target.file;
  PullResult result;

  // Size and checksum from the hub's headers.
  const Response head = perform_small(target.url, token, true);
  if (head.status != 200) throw_status(head.status, name, token);
  const uint64_t size = head.linked_size > 0 ? head.linked_size : head.content_length;
  std::string sha = is_sha256(head.linked_etag) ? lower(head.linked_etag) : lower(target.expected_sha);
  if (!is_sha256(sha)) sha.clear();

  if (const std::optional<StoredModel> have = find(name); have && fs::exists(have->path) && (sha.empty() || have->sha256 == sha)) {
    result.model = *have;
    result.already_present = true;
    return result;
  }
  if (options.before_download) options.before_download(name, size);
  fs::create_directories(final_path.parent_path());
  const fs::path part = final_path.string() + ".part";
  std::error_code ec;
  uint64_t present = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
  if (present > size && size > 0) {
    fs::remove(part, ec);
    present = 0;
  }
  struct statvfs disk {};
  if (::statvfs(final_path.parent_path().c_str(), &disk) == 0 && size > present) {
    const uint64_t free_bytes = static_cast<uint64_t>(disk.f_bavail) * disk.f_frsize;
    if (free_bytes < size - present + (64ull << 20)) {
      throw Error(ErrorCode::kIo, tr("{0}: needs {1:.2f} GB more, {2:.2f} GB free in {3}", "{0}: あと {1:.2f} GB 必要ですが、{3} の空きは {2:.2f} GB です",
                                     name, static_cast<double>(size - present) / 1e9, static_cast<double>(free_bytes) / 1e9,
                                     final_path.parent_path().string()));
    }
  }

  DownloadState state;
  state.options = &options;
  state.total = size;
  state.began = Clock::now();
  state.last_progress = state.began - std::chrono::seconds(1);
  for (int attempt = 0;; ++attempt) {
    present = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
    if (size > 0 && present == size) break;
    std::unique_ptr<std::FILE, decltype(&std::fclose)> out(std::fopen(part.c_str(), "ab"), &std::fclose);
    if (!out) throw Error(ErrorCode::kIo, tr("{0}: cannot write", "{0}: 書き込めません", part.string()));
    state.file = out.get();
    state.start = present;
    state.received = 0;
    CurlHandle c = new_request(target.url, token);
    Response response;
    curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &response);
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_download);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &state);
    curl_easy_setopt(c.get(), CURLOPT_XFERINFOFUNCTION, on_transfer);
    curl_easy_setopt(c.get(), CURLOPT_XFERINFODATA, &state);
    curl_easy_setopt(c.get(), CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c.get(), CURLOPT_FAILONERROR, 1L);
    std::unique_ptr<curl_slist, SlistDeleter> headers;
    if (present > 0) {
      curl_easy_setopt(c.get(), CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(present));
      // If-Range: the file changed on the hub since the part was started → the whole file comes back (200).
      if (!head.etag.empty()) {
        headers.reset(curl_slist_append(nullptr, ("If-Range: \"" + head.etag + "\"").c_str()));
        curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
      }
    }
    const CURLcode rc = curl_easy_perform(c.get());
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    std::fflush(out.get());
    out.reset();
    state.transferred_before += state.received;
    if (rc == CURLE_OK && status == 200 && present > 0) {
      // The server sent the whole file (no range support, or it changed): keep only that.
      std::uintmax_t whole = fs::file_size(part, ec);
      if (whole >= present + state.received && state.received > 0) {
        std::ifstream in(part, std::ios::binary);
        in.seekg(static_cast<std::streamoff>(present));
        std::string rest(state.received, '\0');
        in.read(rest.data(), static_cast<std::streamsize>(rest.size()));
        in.close();
        std::ofstream rewrite(part, std::ios::binary | std::ios::trunc);
        rewrite.write(rest.data(), static_cast<std::streamsize>(rest.size()));
      }
    }
    if (status == 416) {
      // The part no longer fits what the server has (libcurl may even call that a
      // success): start again from zero.
      fs::remove(part, ec);
    } else if (rc == CURLE_OK) {
      present = fs::file_size(part, ec);
      if (size == 0 || present >= size) break;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      throw Error(ErrorCode::kCancelled, tr("{0}: interrupted after {1:.1f} MB; run the same koto pull again to resume",
                                            "{0}: {1:.1f} MB で中断しました。同じ koto pull をもう一度実行すると続きから再開します", name,
                                            static_cast<double>(fs::file_size(part, ec)) / 1e6));
    }
    if (state.write_failed) throw Error(ErrorCode::kIo, tr("{0}: write failed (disk full?)", "{0}: 書き込みに失敗しました (ディスクの空き不足?)", part.string()));
    if (rc == CURLE_HTTP_RETURNED_ERROR && status != 416 && status != 0 && status < 500 && status != 408 && status != 429) {
      throw_status(status, name, token);
    }
    if (attempt >= options.max_retries) {
      throw Error(ErrorCode::kUnavailable, tr("{0}: the download failed {1} times ({2}); run koto pull again to resume",
                                              "{0}: ダウンロードが {1} 回失敗しました ({2})。koto pull をもう一度実行すると再開します",
                                              name, attempt + 1, curl_easy_strerror(rc)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(250 << attempt, 8000)));
  }
  if (options.progress) {
    options.progress({fs::file_size(part, ec), size, state.transferred_before, std::chrono::duration<double>(Clock::now() - state.began).count()});
  }
  const std::string actual = sha256_of_file(part);
  if (!sha.empty() && actual != sha) {
    fs::remove(part, ec);
    throw Error(ErrorCode::kCorruptFile, tr("{0}: the download's SHA-256 is {1}, the hub says {2}; the file was deleted — try again",
                                            "{0}: ダウンロードした SHA-256 は {1} ですが、ハブの値は {2} です。ファイルを削除しました。やり直してください",
                                            name, actual, sha));
  }
  fs::rename(part, final_path);
  StoredModel model{name, fs::absolute(final_path).string(), target.url, actual, fs::file_size(final_path), now_seconds(), 0};
  std::vector<StoredModel> models = list();
  models.erase(std::remove_if(models.begin(), models.end(), [&](const StoredModel& m) { return m.name == name; }), models.end());
  models.push_back(model);
  save(models);
  result.model = model;
  result.transferred = state.transferred_before;
  return result;
}

}  // namespace koto
