#include "server/api_types.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "base/utf8.h"
#include "koto/i18n.h"

namespace koto::server {
namespace {

std::string type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return pick("a boolean", "真偽値").data();
    case json::value_t::string: return pick("a string", "文字列").data();
    case json::value_t::array: return pick("an array", "配列").data();
    case json::value_t::object: return pick("an object", "オブジェクト").data();
    default: return pick("a number", "数値").data();
  }
}

ApiError wrong_type(const std::string& param, const json& value, std::string_view expected_en,
                    std::string_view expected_ja) {
  return bad_request(param,
                     tr("'{0}' must be {1}, not {2}", "'{0}' は{3}でなければなりません ({2} が指定されました)", param,
                        expected_en, type_name(value), expected_ja),
                     "invalid_type");
}

const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;  // null means "not given", as in OpenAI's API
  return &*it;
}

bool get_bool(const json& body, const char* name, bool fallback) {
  const json* value = field(body, name);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) throw wrong_type(name, *value, "a boolean", "真偽値");
  return value->get<bool>();
}

// A finite number in [low, high].
std::optional<double> get_number(const json& body, const char* name, double low, double high) {
  const json* value = field(body, name);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) throw wrong_type(name, *value, "a number", "数値");
  const double x = value->get<double>();
  if (!std::isfinite(x) || x < low || x > high) {
    throw bad_request(name, tr("'{0}' must be between {1} and {2}, not {3}", "'{0}' は {1}〜{2} の範囲でなければなりません ({3} が指定されました)",
                               name, low, high, value->dump()),
                      "invalid_value");
  }
  return x;
}

// An integer in [low, high]; an integral float (10.0) counts.
std::optional<int64_t> get_integer(const json& body, const char* name, int64_t low, int64_t high) {
  const json* value = field(body, name);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) throw wrong_type(name, *value, "an integer", "整数");
  int64_t x;
  if (value->is_number_unsigned()) {
    const uint64_t u = value->get<uint64_t>();
    x = u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                        : static_cast<int64_t>(u);
  } else if (value->is_number_integer()) {
    x = value->get<int64_t>();
  } else {
    const double d = value->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) {
      throw wrong_type(name, *value, "an integer", "整数");
    }
    x = static_cast<int64_t>(d);
  }
  if (x < low || x > high) {
    throw bad_request(name, tr("'{0}' must be between {1} and {2}, not {3}", "'{0}' は {1}〜{2} の範囲でなければなりません ({3} が指定されました)",
                               name, low, high, value->dump()),
                      "invalid_value");
  }
  return x;
}

std::string get_string(const json& body, const char* name) {
  const json* value = field(body, name);
  if (value == nullptr) return {};
  if (!value->is_string()) throw wrong_type(name, *value, "a string", "文字列");
  return value->get<std::string>();
}

ApiError unsupported(const std::string& param, std::string_view what_en, std::string_view what_ja) {
  return bad_request(param,
                     tr("'{0}': {1} is not supported by koto", "'{0}': {2}には koto は対応していません", param, what_en, what_ja),
                     "unsupported_parameter");
}

// Everything a client can ask for that koto does not do: a clear 400, never silence.
void refuse_unsupported(const json& body) {
  if (const auto n = get_integer(body, "n", 0, std::numeric_limits<int64_t>::max()); n && *n != 1) {
    throw bad_request("n", tr("'n' = {0}: koto returns one choice per request; send n = 1 (or leave it out) and repeat "
                              "the request for more answers",
                              "'n' = {0}: koto は 1 回の依頼に 1 つの回答を返します。n = 1 にする (または省く) か、依頼を繰り返してください",
                              *n),
                      "unsupported_parameter");
  }
  if (get_bool(body, "logprobs", false)) throw unsupported("logprobs", "returning log-probabilities", "対数確率の返却");
  if (const json* top = field(body, "top_logprobs"); top != nullptr && !(top->is_number() && top->get<double>() == 0)) {
    throw unsupported("top_logprobs", "returning log-probabilities", "対数確率の返却");
  }
  for (const char* name : {"tools", "functions"}) {
    if (const json* value = field(body, name); value != nullptr && !(value->is_array() && value->empty())) {
      throw unsupported(name, "tool and function calling", "ツール・関数呼び出し");
    }
  }
  if (const json* format = field(body, "response_format"); format != nullptr) {
    if (!format->is_object()) throw wrong_type("response_format", *format, "an object", "オブジェクト");
    const auto type = format->find("type");
    if (type != format->end() && !(type->is_string() && type->get<std::string>() == "text")) {
      throw unsupported("response_format", "structured output (JSON mode)", "構造化出力 (JSON モード)");
    }
  }
  if (get_bool(body, "echo", false)) throw unsupported("echo", "echoing the prompt", "プロンプトの復唱");
  if (!get_string(body, "suffix").empty()) throw unsupported("suffix", "a suffix (fill in the middle)", "suffix (穴埋め)");
  if (const auto best_of = get_integer(body, "best_of", 0, std::numeric_limits<int64_t>::max()); best_of && *best_of > 1) {
    throw unsupported("best_of", "choosing the best of several answers", "複数回答からの選択");
  }
}

void check_text(const std::string& param, const std::string& text) {
  if (!utf8::is_valid(text)) {
    throw bad_request(param, tr("'{0}' is not valid UTF-8", "'{0}' が正しい UTF-8 ではありません", param), "invalid_encoding");
  }
}

GenerationParams parse_params(const json& body, const ApiLimits& limits) {
  refuse_unsupported(body);
  GenerationParams p;
  p.model = get_string(body, "model");
  p.stream = get_bool(body, "stream", false);
  p.ignore_eos = get_bool(body, "ignore_eos", false);
  if (const json* options = field(body, "stream_options"); options != nullptr) {
    if (!options->is_object()) throw wrong_type("stream_options", *options, "an object", "オブジェクト");
    const auto usage = options->find("include_usage");
    if (usage != options->end() && !usage->is_null()) {
      if (!usage->is_boolean()) throw wrong_type("stream_options.include_usage", *usage, "a boolean", "真偽値");
      p.include_usage = usage->get<bool>();
    }
  }
  // max_completion_tokens is the newer name; either may come.
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (const auto n = get_integer(body, name, 1, limits.max_tokens)) p.max_tokens = static_cast<int32_t>(*n);
  }
  if (const auto t = get_number(body, "temperature", 0.0, 2.0)) p.sampling.temperature = static_cast<float>(*t);
  if (const auto top_p = get_number(body, "top_p", 0.0, 1.0)) p.sampling.top_p = static_cast<float>(*top_p);
  if (const auto top_k = get_integer(body, "top_k", 0, 1 << 20)) p.sampling.top_k = static_cast<int32_t>(*top_k);
  if (const auto min_p = get_number(body, "min_p", 0.0, 1.0)) p.sampling.min_p = static_cast<float>(*min_p);
  if (const auto f = get_number(body, "frequency_penalty", -2.0, 2.0)) p.sampling.frequency_penalty = static_cast<float>(*f);
  if (const auto pr = get_number(body, "presence_penalty", -2.0, 2.0)) p.sampling.presence_penalty = static_cast<float>(*pr);
  if (const auto r = get_number(body, "repeat_penalty", 0.01, 10.0)) p.sampling.repeat_penalty = static_cast<float>(*r);
  if (const auto seed = get_integer(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    p.sampling.seed = static_cast<uint64_t>(*seed);
    if (p.sampling.seed == kRandomSeed) p.sampling.seed = 0;  // -1 is a seed like any other here
  }
  if (const json* stop = field(body, "stop"); stop != nullptr) {
    std::vector<json> items;
    if (stop->is_string()) {
      items.push_back(*stop);
    } else if (stop->is_array()) {
      items.assign(stop->begin(), stop->end());
    } else {
      throw wrong_type("stop", *stop, "a string or an array of strings", "文字列か文字列の配列");
    }
    if (items.size() > limits.max_stop_strings) {
      throw bad_request("stop", tr("'stop' has {0} strings; at most {1} are allowed", "'stop' に {0} 個の文字列があります。最大 {1} 個です",
                                   items.size(), limits.max_stop_strings),
                        "invalid_value");
    }
    for (const json& item : items) {
      if (!item.is_string()) throw wrong_type("stop", item, "a string", "文字列");
      std::string text = item.get<std::string>();
      check_text("stop", text);
      if (text.size() > limits.max_stop_bytes) {
        throw bad_request("stop", tr("a stop string of {0} bytes is longer than the {1} allowed",
                                     "停止文字列が {0} バイトあり、上限 {1} バイトを超えています", text.size(), limits.max_stop_bytes),
                          "invalid_value");
      }
      if (!text.empty()) p.stop.push_back(std::move(text));
    }
  }
  return p;
}

// A message's content: a string, or an array of text parts.
std::string message_content(const json& message, const std::string& param) {
  const auto content = message.find("content");
  if (content == message.end() || content->is_null()) return {};
  if (content->is_string()) {
    std::string text = content->get<std::string>();
    check_text(param, text);
    return text;
  }
  if (!content->is_array()) throw wrong_type(param, *content, "a string or an array of parts", "文字列か部品の配列");
  std::string text;
  for (size_t i = 0; i < content->size(); ++i) {
    const json& part = (*content)[i];
    const std::string part_param = fmt::format("{}[{}]", param, i);
    if (!part.is_object()) throw wrong_type(part_param, part, "an object", "オブジェクト");
    const auto type = part.find("type");
    if (type == part.end() || !type->is_string() || type->get<std::string>() != "text") {
      throw bad_request(part_param + ".type",
                        tr("only text parts are supported (type \"text\"); koto does not read images or audio",
                           "テキストの部品 (type \"text\") だけに対応しています。koto は画像や音声を読めません"),
                        "unsupported_parameter");
    }
    const auto part_text = part.find("text");
    if (part_text == part.end() || !part_text->is_string()) {
      throw bad_request(part_param + ".text", tr("a text part needs a string 'text'", "テキストの部品には文字列の 'text' が必要です"),
                        "missing_required_parameter");
    }
    std::string piece = part_text->get<std::string>();
    check_text(part_param + ".text", piece);
    text += piece;
  }
  return text;
}

// An array of token ids (range-checked against the vocabulary later, by the handler).
std::vector<TokenId> token_ids(const json& array, const char* param) {
  std::vector<TokenId> ids;
  ids.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const json& id = array[i];
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      throw bad_request(fmt::format("{}[{}]", param, i), pick("a token id must be a non-negative integer",
                                                              "トークン ID は 0 以上の整数でなければなりません")
                                                             .data(),
                        "invalid_value");
    }
    ids.push_back(static_cast<TokenId>(id.get<int64_t>()));
  }
  return ids;
}

// `dimensions` (truncating a trained vector) and `user` are OpenAI options koto does
// not honour; a request that relies on them gets a clear 400.
void refuse_unknown_embedding_options(const json& body) {
  if (field(body, "dimensions") != nullptr) {
    throw unsupported("dimensions", "choosing the number of dimensions", "次元数の指定");
  }
}

}  // namespace

ApiError bad_request(std::string param, const std::string& message, std::string code) {
  return ApiError(400, "invalid_request_error", std::move(code), std::move(param), message);
}

json error_body(const ApiError& error) {
  json inner = {{"message", error.what()}, {"type", error.type}};
  inner["param"] = error.param.empty() ? json(nullptr) : json(error.param);
  inner["code"] = error.code.empty() ? json(nullptr) : json(error.code);
  return {{"error", inner}};
}

json parse_body(std::string_view body) {
  if (!utf8::is_valid(body)) {
    throw bad_request("", pick("the request body is not valid UTF-8", "リクエスト本文が正しい UTF-8 ではありません").data(),
                      "invalid_encoding");
  }
  json value;
  try {
    // The callback sees each value's depth; deeper nesting is refused before it is built.
    value = json::parse(body, [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxJsonDepth) {
        throw bad_request("", tr("the JSON is nested more than {0} levels deep", "JSON の入れ子が {0} 段を超えています", kMaxJsonDepth),
                          "invalid_json");
      }
      return true;
    });
  } catch (const json::parse_error& e) {
    throw bad_request("", tr("the request body is not valid JSON (at byte {0})", "リクエスト本文が正しい JSON ではありません ({0} バイト目)",
                             e.byte),
                      "invalid_json");
  } catch (const json::exception&) {  // a number too large for a double, ...
    throw bad_request("", pick("the request body holds a value JSON cannot represent (a number out of range?)",
                               "リクエスト本文に表せない値があります (範囲外の数値など)")
                              .data(),
                      "invalid_json");
  }
  if (!value.is_object()) {
    throw bad_request("", tr("the request body must be a JSON object, not {0}", "リクエスト本文は JSON オブジェクトでなければなりません ({0} でした)",
                             type_name(value)),
                      "invalid_json");
  }
  return value;
}

ChatCompletionRequest parse_chat_completion_request(const json& body, const ApiLimits& limits) {
  ChatCompletionRequest request;
  request.params = parse_params(body, limits);
  if (const json* documents = field(body, "koto_documents")) {
    if (documents->is_boolean()) {
      if (documents->get<bool>()) request.documents = DocumentsOption{};
    } else if (documents->is_object()) {
      DocumentsOption option;
      if (const auto k = get_integer(*documents, "k", 1, 20)) option.k = static_cast<int>(*k);
      if (const auto m = get_number(*documents, "min_coverage", 0, 1)) option.min_coverage = *m;
      request.documents = option;
    } else {
      throw wrong_type("koto_documents", *documents, "a boolean or an object", "真偽値かオブジェクト");
    }
  }
  const json* messages = field(body, "messages");
  if (messages == nullptr) {
    throw bad_request("messages", pick("'messages' is required: the conversation to answer, e.g. [{\"role\": \"user\", \"content\": \"こんにちは\"}]",
                                       "'messages' は必須です。答える会話を渡してください (例: [{\"role\": \"user\", \"content\": \"こんにちは\"}])")
                                      .data(),
                      "missing_required_parameter");
  }
  if (!messages->is_array()) throw wrong_type("messages", *messages, "an array", "配列");
  if (messages->empty()) {
    throw bad_request("messages", pick("'messages' is empty; give at least one message", "'messages' が空です。メッセージを 1 つ以上渡してください").data(),
                      "invalid_value");
  }
  if (messages->size() > limits.max_messages) {
    throw bad_request("messages", tr("'messages' has {0} messages; at most {1} are allowed", "'messages' に {0} 件あります。最大 {1} 件です",
                                     messages->size(), limits.max_messages),
                      "invalid_value");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& message = (*messages)[i];
    const std::string param = fmt::format("messages[{}]", i);
    if (!message.is_object()) throw wrong_type(param, message, "an object", "オブジェクト");
    const auto role_it = message.find("role");
    if (role_it == message.end() || !role_it->is_string()) {
      throw bad_request(param + ".role", pick("each message needs a 'role' (system, user or assistant)",
                                              "各メッセージには 'role' (system、user、assistant のいずれか) が必要です")
                                             .data(),
                        "missing_required_parameter");
    }
    std::string role = role_it->get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant") {
      throw bad_request(param + ".role", tr("role \"{0}\" is not supported (system, developer, user, assistant)",
                                            "ロール \"{0}\" には対応していません (system、developer、user、assistant)",
                                            utf8::escape_for_message(role_it->get<std::string>())),
                        "invalid_value");
    }
    std::string content = message_content(message, param + ".content");
    if (role == "system" && !request.messages.empty()) {
      // Several leading system messages become one; a later one has no place in the templates.
      if (request.messages.size() == 1 && request.messages[0].role == "system") {
        request.messages[0].content += "\n\n" + content;
        continue;
      }
      throw bad_request(param + ".role", pick("a system message must come before the conversation",
                                              "system メッセージは会話の先頭に置いてください")
                                             .data(),
                        "invalid_value");
    }
    request.messages.push_back({std::move(role), std::move(content)});
  }
  if (request.messages.back().role == "system") {
    throw bad_request("messages", pick("the conversation has only a system message; add a user message",
                                       "会話が system メッセージだけです。user メッセージを加えてください")
                                      .data(),
                      "invalid_value");
  }
  return request;
}

TextCompletionRequest parse_completion_request(const json& body, const ApiLimits& limits) {
  TextCompletionRequest request;
  request.params = parse_params(body, limits);
  const json* prompt = field(body, "prompt");
  if (prompt == nullptr) {
    throw bad_request("prompt", pick("'prompt' is required", "'prompt' は必須です").data(), "missing_required_parameter");
  }
  const json* text = prompt;
  if (prompt->is_array()) {
    if (!prompt->empty() && (*prompt)[0].is_number()) {  // token ids
      request.prompt_tokens = token_ids(*prompt, "prompt");
      return request;
    }
    if (prompt->size() != 1) {
      throw bad_request("prompt", pick("give one prompt per request (a string, or an array with one string)",
                                       "1 回の依頼にはプロンプトを 1 つだけ渡してください (文字列か、文字列 1 つの配列)")
                                      .data(),
                        "unsupported_parameter");
    }
    text = &(*prompt)[0];
  }
  if (!text->is_string()) throw wrong_type("prompt", *text, "a string", "文字列");
  request.prompt = text->get<std::string>();
  check_text("prompt", request.prompt);
  if (request.prompt.empty()) {
    throw bad_request("prompt", pick("'prompt' is empty", "'prompt' が空です").data(), "invalid_value");
  }
  return request;
}

TokenizeRequest parse_tokenize_request(const json& body) {
  TokenizeRequest request;
  const json* content = field(body, "content");
  if (content == nullptr) {
    throw bad_request("content", pick("'content' is required: the text to tokenize", "'content' は必須です (トークン化するテキスト)").data(),
                      "missing_required_parameter");
  }
  if (!content->is_string()) throw wrong_type("content", *content, "a string", "文字列");
  request.content = content->get<std::string>();
  check_text("content", request.content);
  request.add_special = get_bool(body, "add_special", false);
  request.parse_special = get_bool(body, "parse_special", false);
  request.with_pieces = get_bool(body, "with_pieces", false);
  return request;
}

EmbeddingsRequest parse_embeddings_request(const json& body) {
  refuse_unknown_embedding_options(body);
  EmbeddingsRequest request;
  const json* input = field(body, "input");
  if (input == nullptr) {
    throw bad_request("input", pick("'input' is required: the text(s) to embed", "'input' は必須です (埋め込むテキスト)").data(),
                      "missing_required_parameter");
  }
  constexpr size_t kMaxInputs = 256;
  auto too_many = [&] {
    return bad_request("input", tr("at most {0} inputs per request", "一度に埋め込めるのは {0} 件までです", kMaxInputs),
                       "invalid_value");
  };
  if (input->is_string()) {
    request.texts.push_back(input->get<std::string>());
  } else if (input->is_array() && !input->empty() && (*input)[0].is_number_integer()) {
    request.token_lists.push_back(token_ids(*input, "input"));
  } else if (input->is_array() && !input->empty()) {
    if (input->size() > kMaxInputs) throw too_many();
    for (size_t i = 0; i < input->size(); ++i) {
      const json& item = (*input)[i];
      const std::string param = fmt::format("input[{}]", i);
      if (item.is_string()) {
        if (!request.token_lists.empty()) throw wrong_type(param, item, "an array of token ids", "トークン ID の配列");
        request.texts.push_back(item.get<std::string>());
      } else if (item.is_array()) {
        if (!request.texts.empty()) throw wrong_type(param, item, "a string", "文字列");
        request.token_lists.push_back(token_ids(item, param.c_str()));
      } else {
        throw wrong_type(param, item, "a string", "文字列");
      }
    }
  } else {
    throw wrong_type("input", *input, "a string or a non-empty array", "文字列か空でない配列");
  }
  for (size_t i = 0; i < request.texts.size(); ++i) {
    check_text(request.texts.size() == 1 && input->is_string() ? "input" : fmt::format("input[{}]", i).c_str(), request.texts[i]);
    if (request.texts[i].empty()) {
      throw bad_request("input", pick("an input is empty", "空の入力があります").data(), "invalid_value");
    }
  }
  for (const auto& ids : request.token_lists) {
    if (ids.empty()) throw bad_request("input", pick("an input is empty", "空の入力があります").data(), "invalid_value");
  }
  const std::string format = get_string(body, "encoding_format");
  if (!format.empty() && format != "float" && format != "base64") {
    throw bad_request("encoding_format", tr("'encoding_format' must be \"float\" or \"base64\", not \"{0}\"",
                                             "'encoding_format' は \"float\" か \"base64\" でなければなりません (\"{0}\" が指定されました)",
                                             format),
                      "invalid_value");
  }
  request.base64 = format == "base64";
  return request;
}

SearchRequest parse_search_request(const json& body) {
  SearchRequest request;
  const json* query = field(body, "query");
  if (query == nullptr) {
    throw bad_request("query", pick("'query' is required: what to look for", "'query' は必須です (探したいこと)").data(),
                      "missing_required_parameter");
  }
  if (!query->is_string()) throw wrong_type("query", *query, "a string", "文字列");
  request.query = query->get<std::string>();
  check_text("query", request.query);
  if (const auto k = get_integer(body, "k", 1, 100)) request.k = static_cast<int>(*k);
  return request;
}

std::string floats_base64(std::span<const float> values) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(values.size() * 4, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits = 0;
    std::memcpy(&bits, &values[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t a = static_cast<unsigned char>(bytes[i]);
    const uint32_t b = i + 1 < bytes.size() ? static_cast<unsigned char>(bytes[i + 1]) : 0;
    const uint32_t c = i + 2 < bytes.size() ? static_cast<unsigned char>(bytes[i + 2]) : 0;
    const uint32_t triple = (a << 16) | (b << 8) | c;
    out += kAlphabet[(triple >> 18) & 63];
    out += kAlphabet[(triple >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(triple >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[triple & 63] : '=';
  }
  return out;
}

std::vector<TokenId> parse_detokenize_request(const json& body) {
  const json* tokens = field(body, "tokens");
  if (tokens == nullptr) {
    throw bad_request("tokens", pick("'tokens' is required: an array of token ids", "'tokens' は必須です (トークン ID の配列)").data(),
                      "missing_required_parameter");
  }
  if (!tokens->is_array()) throw wrong_type("tokens", *tokens, "an array", "配列");
  return token_ids(*tokens, "tokens");
}

std::string_view finish_reason(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens:
    case StopReason::kContextFull: return "length";
    default: return "stop";
  }
}

json usage_json(const RequestStats& stats) {
  return {{"prompt_tokens", stats.prompt_tokens},
          {"completion_tokens", stats.generated_tokens},
          {"total_tokens", stats.prompt_tokens + stats.generated_tokens},
          {"prompt_tokens_details", {{"cached_tokens", stats.cached_tokens}}},
          {"completion_tokens_details", {{"reasoning_tokens", 0}}}};
}

json timings_json(const RequestStats& stats) {
  return {{"queue_ms", stats.queue_seconds * 1000.0},
          {"prompt_tokens", stats.prompt_tokens},
          {"cached_tokens", stats.cached_tokens},
          {"prompt_ms", stats.prompt_seconds * 1000.0},
          {"prompt_tokens_per_second", stats.prompt_tokens_per_second()},
          {"time_to_first_token_ms", stats.time_to_first_token_seconds * 1000.0},
          {"generated_tokens", stats.generated_tokens},
          {"lookup_drafted_tokens", stats.lookup_drafted},
          {"lookup_accepted_tokens", stats.lookup_accepted},
          {"generation_ms", stats.generation_seconds * 1000.0},
          {"tokens_per_second", stats.tokens_per_second()},
          {"characters", stats.output_chars},
          {"characters_per_second", stats.chars_per_second()},
          {"total_ms", stats.total_seconds * 1000.0},
          {"stop_reason", stop_reason_name(stats.stop_reason)},
          {"seed", stats.seed}};
}

namespace {

json envelope(const ResponseIdentity& who, const char* object) {
  return {{"id", who.id}, {"object", object}, {"created", who.created}, {"model", who.model},
          {"system_fingerprint", "koto-0.1.0"}};
}

json finish_value(const std::optional<std::string_view>& finish) {
  return finish ? json(std::string(*finish)) : json(nullptr);
}

}  // namespace

json chat_completion_json(const ResponseIdentity& who, const std::string& text, const RequestStats& stats) {
  json out = envelope(who, "chat.completion");
  out["choices"] = json::array({{{"index", 0},
                                 {"message", {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}}},
                                 {"logprobs", nullptr},
                                 {"finish_reason", std::string(finish_reason(stats.stop_reason))}}});
  out["usage"] = usage_json(stats);
  out["timings"] = timings_json(stats);
  return out;
}

json chat_chunk_json(const ResponseIdentity& who, const json& delta, const std::optional<std::string_view>& finish,
                     bool with_null_usage) {
  json out = envelope(who, "chat.completion.chunk");
  out["choices"] = json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish_value(finish)}}});
  if (with_null_usage) out["usage"] = nullptr;
  return out;
}

json completion_json(const ResponseIdentity& who, const std::string& text, const RequestStats& stats) {
  json out = envelope(who, "text_completion");
  out["choices"] = json::array({{{"index", 0},
                                 {"text", text},
                                 {"logprobs", nullptr},
                                 {"finish_reason", std::string(finish_reason(stats.stop_reason))}}});
  out["usage"] = usage_json(stats);
  out["timings"] = timings_json(stats);
  return out;
}

json completion_chunk_json(const ResponseIdentity& who, const std::string& text,
                           const std::optional<std::string_view>& finish, bool with_null_usage) {
  json out = envelope(who, "text_completion");
  out["choices"] = json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_value(finish)}}});
  if (with_null_usage) out["usage"] = nullptr;
  return out;
}

json usage_chunk_json(const ResponseIdentity& who, bool chat, const RequestStats& stats) {
  json out = envelope(who, chat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array();
  out["usage"] = usage_json(stats);
  out["timings"] = timings_json(stats);
  return out;
}

std::string sse_event(const json& payload) {
  // error_handler::replace: a chunk must never fail to serialise; text is valid UTF-8 anyway.
  return "data: " + payload.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace koto::server
