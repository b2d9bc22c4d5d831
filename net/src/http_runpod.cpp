#include "http_runpod.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "hex.hpp"
#include "vidnode/net/s3_presign.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/validation.hpp"

namespace vidnode::net {

using runtime::errc;
using runtime::make_error;

namespace detail {

namespace {

using json = nlohmann::json;

caf::error bad(const std::string& field, const std::string& why) {
  return make_error(errc::invalid_request, field + ": " + why);
}

std::string shown(const json& value) {
  auto text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64)
    text = text.substr(0, 61) + "...";
  return text;
}

const char* type_words(input_type type) {
  switch (type) {
    case input_type::text:
      return "a string";
    case input_type::integer:
      return "an integer";
    case input_type::number:
      return "a number";
  }
  return "a value";
}

bool fits(const json& value, input_type type) {
  switch (type) {
    case input_type::text:
      return value.is_string();
    case input_type::integer:
      return value.is_number_integer();
    case input_type::number:
      return value.is_number();
  }
  return false;
}

/// An endpoint default (always a string) as the JSON value a request would
/// send for that field; null when it does not parse as the field's type.
json default_value(const input_field* field, const std::string& text) {
  if (field == nullptr || field->type == input_type::text)
    return text;
  auto parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !fits(parsed, field->type))
    return nullptr;
  return parsed;
}

/// An extra input field's value as a model option.
caf::expected<std::string> option_text(const std::string& name,
                                       const json& value) {
  if (value.is_string())
    return value.get<std::string>();
  if (value.is_boolean())
    return std::string{value.get<bool>() ? "true" : "false"};
  if (value.is_number())
    return value.dump();
  return bad("input." + name, "must be a string, number or boolean to be a "
                              "model option, got "
                                + shown(value));
}

/// Sets the job_spec field `target` from `value`, which fits its type.
caf::error apply(runtime::job_spec& spec, const input_field& field,
                 const json& value) {
  std::string target = field.target;
  auto whole = [&](int32_t& out) -> caf::error {
    auto n = value.get<int64_t>();
    if (n < std::numeric_limits<int32_t>::min()
        || n > std::numeric_limits<int32_t>::max())
      return bad(std::string{"input."} + field.name,
                 "out of range, got " + shown(value));
    out = static_cast<int32_t>(n);
    return caf::none;
  };
  if (target == "prompt")
    spec.prompt = value.get<std::string>();
  else if (target == "width")
    return whole(spec.width);
  else if (target == "height")
    return whole(spec.height);
  else if (target == "frames")
    return whole(spec.frames);
  else if (target == "fps")
    return whole(spec.fps);
  else if (target == "steps")
    return whole(spec.steps);
  else if (target == "ranks")
    return whole(spec.ranks);
  else if (target == "seed") {
    if (value.is_number_unsigned() || value.get<int64_t>() >= 0) {
      spec.seed = value.get<uint64_t>();
    } else if (value.get<int64_t>() == -1) {
      spec.seed = std::random_device{}();
      spec.seed = (spec.seed << 32) ^ std::random_device{}();
    } else {
      return bad("input.seed",
                 "must be from 0 to 2^64-1, or -1 for a random seed, got "
                   + shown(value));
    }
  } else if (target == "audio_url")
    spec.audio_url = value.get<std::string>();
  else if (target == "output_url")
    spec.output_url = value.get<std::string>();
  else if (target.rfind("options.", 0) == 0) {
    auto text = option_text(field.name, value);
    if (!text)
      return text.error();
    spec.options[target.substr(8)] = *text;
  }
  return caf::none;
}

caf::error apply_policy(runtime::job_spec& spec, const json& policy) {
  if (!policy.is_object())
    return bad("policy", "must be an object, got " + shown(policy));
  for (const auto& [key, value] : policy.items()) {
    if (key == "executionTimeout") {
      if (!value.is_number_integer() || value.get<int64_t>() <= 5000
          || value.get<int64_t>() > int64_t{7} * 24 * 3600 * 1000)
        return bad("policy.executionTimeout",
                   "must be whole milliseconds above 5000 and at most a week, "
                   "got "
                     + shown(value));
      spec.run_timeout = std::chrono::milliseconds{value.get<int64_t>()};
    } else if (key == "ttl") {
      if (!value.is_number_integer() || value.get<int64_t>() < 10000
          || value.get<int64_t>() > int64_t{7} * 24 * 3600 * 1000)
        return bad("policy.ttl", "must be whole milliseconds from 10000 to a "
                                 "week (604800000), got "
                                   + shown(value));
      spec.queue_timeout = std::chrono::milliseconds{value.get<int64_t>()};
    } else if (key == "lowPriority") {
      if (!value.is_boolean())
        return bad("policy.lowPriority",
                   "must be true or false, got " + shown(value));
      if (value.get<bool>())
        spec.priority = runtime::job_limits::min_priority;
    }
    // Runpod ignores policy fields it does not know; so does vidnode.
  }
  return caf::none;
}

/// "ENDPOINT/32 hex digits.mp4": the key of a video uploaded for s3Config
/// without an objectPath (or with one that ends in '/').
std::string random_object_key(const http_endpoint& endpoint) {
  return endpoint.id + "/" + random_hex(32) + ".mp4";
}

} // namespace

/// runtime::validate names job_spec fields; the request named them
/// otherwise.
caf::error in_request_terms(caf::error err) {
  static const std::vector<std::pair<std::string, std::string>> names = {
    {"frames:", "input.num_frames:"},
    {"steps:", "input.num_inference_steps:"},
    {"width:", "input.width:"},
    {"height:", "input.height:"},
    {"fps:", "input.fps:"},
    {"prompt:", "input.prompt:"},
    {"ranks:", "input.ranks:"},
    {"audio_url:", "input.audio_url:"},
    {"output_url:", "input.output_url:"},
    {"webhook_url:", "webhook:"},
    {"run_timeout:", "policy.executionTimeout:"},
    {"queue_timeout:", "policy.ttl:"},
    {"options:", "input:"},
  };
  auto detail = runtime::detail_of(err);
  static const std::string unknown_option = "options: '";
  static const std::string not_option = "' is not an option of model ";
  if (auto end = detail.find(not_option);
      detail.rfind(unknown_option, 0) == 0 && end != std::string::npos)
    return make_error(
      errc::invalid_request,
      "input."
        + detail.substr(unknown_option.size(), end - unknown_option.size())
        + ": not a field of the input mapping table (README, \"HTTP "
          "gateway\") nor an option of model "
        + detail.substr(end + not_option.size()));
  for (const auto& [from, to] : names)
    if (detail.rfind(from, 0) == 0)
      return make_error(errc::invalid_request, to + detail.substr(from.size()));
  return err;
}

const std::vector<input_field>& input_fields() {
  static const std::vector<input_field> table = {
    {"prompt", input_type::text, "prompt"},
    {"negative_prompt", input_type::text, "options.negative_prompt"},
    {"width", input_type::integer, "width"},
    {"height", input_type::integer, "height"},
    {"num_frames", input_type::integer, "frames"},
    {"fps", input_type::integer, "fps"},
    {"num_inference_steps", input_type::integer, "steps"},
    {"guidance_scale", input_type::number, "options.guidance_scale"},
    {"seed", input_type::integer, "seed"},
    {"audio_url", input_type::text, "audio_url"},
    {"output_url", input_type::text, "output_url"},
    {"ranks", input_type::integer, "ranks"},
  };
  return table;
}

const input_field* find_input_field(const std::string& name) {
  for (const auto& field : input_fields())
    if (name == field.name)
      return &field;
  return nullptr;
}

caf::expected<nlohmann::json> parse_body(const std::string& text) {
  // Objects open at each depth, with the keys seen so far in each.
  std::vector<std::vector<std::string>> open;
  std::string fault;
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (!fault.empty())
      return false;
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= max_body_depth) {
          fault =
            "nested deeper than " + std::to_string(max_body_depth) + " levels";
          return false;
        }
        if (event == json::parse_event_t::object_start)
          open.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open.empty())
          open.pop_back();
        break;
      case json::parse_event_t::key: {
        auto key = parsed.get<std::string>();
        auto& seen = open.back();
        if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
          fault = "the key \"" + key.substr(0, 64) + "\" appears twice in one "
                  + "object";
          return false;
        }
        seen.push_back(std::move(key));
        break;
      }
      default:
        break;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text, check, true);
  } catch (const json::exception& e) {
    return make_error(errc::invalid_request,
                      "body: not valid JSON: "
                        + (fault.empty() ? std::string{e.what()} : fault));
  }
  if (!fault.empty())
    return make_error(errc::invalid_request, "body: " + fault);
  return doc;
}

caf::expected<runtime::job_spec>
job_spec_from_request(const http_endpoint& endpoint, const json& body) {
  if (!body.is_object())
    return bad("body", "must be a JSON object, got " + shown(body));
  auto input = body.find("input");
  if (input == body.end())
    return bad("input", "missing: every request needs an input object");
  if (!input->is_object())
    return bad("input", "must be an object, got " + shown(*input));
  runtime::job_spec spec;
  spec.model = endpoint.model;
  spec.endpoint = endpoint.id;
  auto set = [&](const std::string& name, const json& value,
                 bool from_request) -> caf::error {
    if (name == "priority" && !from_request) {
      spec.priority = value.is_number_integer()
                        ? static_cast<int32_t>(value.get<int64_t>())
                        : std::stoi(value.get<std::string>());
      return caf::none;
    }
    const auto* field = find_input_field(name);
    if (field == nullptr) {
      if (from_request && endpoint.ignore_extra_fields)
        return caf::none;
      auto text = option_text(name, value);
      if (!text)
        return text.error();
      spec.options[name] = *text;
      return caf::none;
    }
    if (!fits(value, field->type))
      return bad("input." + name, std::string{"must be "}
                                    + type_words(field->type) + ", got "
                                    + shown(value));
    return apply(spec, *field, value);
  };
  for (const auto& [name, text] : endpoint.defaults) {
    if (input->contains(name))
      continue;
    auto value = name == "priority"
                   ? json(text)
                   : default_value(find_input_field(name), text);
    if (auto err = set(name, value, false))
      return err;
  }
  for (const auto& [name, value] : input->items())
    if (auto err = set(name, value, true))
      return err;
  if (auto policy = body.find("policy"); policy != body.end())
    if (auto err = apply_policy(spec, *policy))
      return err;
  if (auto hook = body.find("webhook");
      hook != body.end() && !hook->is_null()) {
    if (!hook->is_string())
      return bad("webhook", "must be a URL string, got " + shown(*hook));
    spec.webhook_url = hook->get<std::string>();
  }
  if (auto s3 = body.find("s3Config"); s3 != body.end() && !s3->is_null()) {
    if (!spec.output_url.empty())
      return bad("s3Config", "give either s3Config or input.output_url, not "
                             "both");
    auto cfg = parse_s3_config(*s3);
    if (!cfg)
      return cfg.error();
    spec.output_url =
      presigned_put_url(*cfg, random_object_key(endpoint), s3_upload_validity,
                        std::chrono::system_clock::now());
    if (spec.output_url.size() > runtime::job_limits::max_url_bytes)
      return bad("s3Config.objectPath",
                 "too long: the presigned URL would exceed "
                   + std::to_string(runtime::job_limits::max_url_bytes)
                   + " bytes");
  }
  if (auto err = runtime::validate(spec))
    return in_request_terms(std::move(err));
  return spec;
}

int http_status_of(const caf::error& err) {
  if (err.category() == caf::atom("system")) {
    if (static_cast<caf::sec>(err.code()) == caf::sec::request_timeout)
      return 504;
    return 500;
  }
  if (err.category() != runtime::error_category())
    return 500;
  switch (static_cast<runtime::errc>(err.code())) {
    case runtime::errc::invalid_request:
    case runtime::errc::unknown_model:
    case runtime::errc::too_large:
      return 400;
    case runtime::errc::unauthorized:
      return 401;
    case runtime::errc::unknown_job:
    case runtime::errc::no_output:
      return 404;
    case runtime::errc::queue_full:
      return 429;
    case runtime::errc::node_lost:
    case runtime::errc::output_unavailable:
      return 502;
    case runtime::errc::shutting_down:
    case runtime::errc::journal_unavailable:
      return 503;
    default:
      return 500;
  }
}

nlohmann::json error_json(const caf::error& err) {
  return {{"error", runtime::describe(err)}, {"code", runtime::code_name(err)}};
}

runtime::job_id parse_job_id(const std::string& text) noexcept {
  uint64_t value = 0;
  auto [end, ec] =
    std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()
      || text[0] == '+' || (text.size() > 1 && text[0] == '0'))
    return runtime::job_id{0};
  return runtime::job_id{value};
}

int64_t milliseconds_of(caf::timespan d) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

} // namespace detail

caf::expected<http_endpoint> parse_http_endpoint(const std::string& text) {
  auto fail = [&](const std::string& why) {
    return make_error(errc::invalid_request, "endpoint '" + text + "': " + why);
  };
  auto eq = text.find('=');
  if (eq == std::string::npos)
    return fail("must be ID=MODEL[,key=value...]");
  http_endpoint result;
  result.id = text.substr(0, eq);
  if (result.id.empty() || result.id.size() > 64
      || !std::all_of(result.id.begin(), result.id.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-'
                  || c == '_';
         }))
    return fail("the id must be 1 to 64 letters, digits, '-' or '_'");
  auto rest = text.substr(eq + 1);
  auto comma = rest.find(',');
  result.model = rest.substr(0, comma);
  if (auto why = runtime::invalid_model_name(result.model))
    return fail("model '" + result.model + "' " + *why);
  while (comma != std::string::npos) {
    auto next = rest.find(',', comma + 1);
    auto pair =
      rest.substr(comma + 1, next == std::string::npos ? std::string::npos
                                                       : next - comma - 1);
    comma = next;
    auto kv = pair.find('=');
    if (kv == std::string::npos || kv == 0)
      return fail("'" + pair + "' is not key=value");
    auto key = pair.substr(0, kv);
    auto value = pair.substr(kv + 1);
    if (result.defaults.count(key) > 0
        || (key == "extra_fields" && result.ignore_extra_fields))
      return fail("'" + key + "' is given twice");
    if (key == "extra_fields") {
      if (value != "options" && value != "ignore")
        return fail("extra_fields must be options or ignore, got '" + value
                    + "'");
      result.ignore_extra_fields = value == "ignore";
      continue;
    }
    if (key == "priority") {
      int n = -1;
      auto [end, ec] =
        std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc{} || end != value.data() + value.size()
          || n < runtime::job_limits::min_priority
          || n > runtime::job_limits::max_priority)
        return fail("priority must be a whole number from 0 to 9, got '" + value
                    + "'");
    } else if (const auto* field = detail::find_input_field(key);
               field != nullptr && field->type != detail::input_type::text) {
      if (detail::default_value(field, value).is_null())
        return fail(key + " must be " + detail::type_words(field->type)
                    + ", got '" + value + "'");
    }
    result.defaults[key] = value;
  }
  // Defaults that no request could run with are refused now, not blamed on
  // every request.
  auto spec = detail::job_spec_from_request(
    result, {{"input", nlohmann::json::object()}});
  if (!spec)
    return fail("its defaults: " + runtime::detail_of(spec.error()));
  return result;
}

const char* runpod_status_name(runtime::job_state state) noexcept {
  switch (state) {
    case runtime::job_state::queued:
      return "IN_QUEUE";
    case runtime::job_state::running:
      return "IN_PROGRESS";
    case runtime::job_state::succeeded:
      return "COMPLETED";
    case runtime::job_state::failed:
      return "FAILED";
    case runtime::job_state::cancelled:
      return "CANCELLED";
    case runtime::job_state::timed_out:
      return "TIMED_OUT";
  }
  return "FAILED";
}

nlohmann::json runpod_output(const runtime::job_result& result,
                             const http_links& links) {
  auto url = links.video_url(result);
  if (url.empty())
    return nlohmann::json::object();
  return {{"video_url", std::move(url)}};
}

nlohmann::json runpod_status_body(const runtime::job_result& result,
                                  const http_links& links) {
  nlohmann::json body{
    {"id", runtime::to_string(result.id)},
    {"status", runpod_status_name(result.state)},
    {"delayTime", detail::milliseconds_of(result.queue_time)},
    {"executionTime", detail::milliseconds_of(result.run_time)},
  };
  if (!result.node.empty() && !result.device.empty())
    body["workerId"] = result.node + "/" + result.device;
  if (result.state == runtime::job_state::succeeded)
    body["output"] = runpod_output(result, links);
  else if (result.error
           && (result.state == runtime::job_state::failed
               || result.state == runtime::job_state::timed_out
               || result.state == runtime::job_state::cancelled))
    body["error"] = runtime::describe(result.error);
  return body;
}

} // namespace vidnode::net
