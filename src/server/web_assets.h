// The web chat page's files, embedded in the binary at build time (web/ and the npm
// packages marked and DOMPurify): served by `koto serve` at / and /assets/, so the page
// needs no network beyond the server itself.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace koto::server {

struct WebAsset {
  const char* path;          // "/", "/assets/app.js"...
  const char* content_type;  // without parameters: "text/html"; all are UTF-8
  const unsigned char* data;
  size_t size;
};

std::span<const WebAsset> web_assets();

}  // namespace koto::server
