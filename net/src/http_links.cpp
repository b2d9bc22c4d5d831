#include "vidnode/net/http_gateway.hpp"

#include <array>
#include <random>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hex.hpp"

namespace vidnode::net {

namespace {

std::string random_secret() {
  std::random_device source;
  std::string secret(32, '\0');
  for (auto& c : secret)
    c = static_cast<char>(source() & 0xff);
  return secret;
}

} // namespace

http_links::http_links(std::string secret)
  : secret_(secret.empty() ? random_secret() : std::move(secret)) {}

void http_links::set_base_url(std::string base) {
  while (!base.empty() && base.back() == '/')
    base.pop_back();
  std::lock_guard<std::mutex> guard{mutex_};
  base_ = std::move(base);
}

std::string http_links::base_url() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return base_;
}

std::string http_links::signature(runtime::job_id id) const {
  auto message = "output/" + runtime::to_string(id);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
       digest.data(), &size);
  // 128 bits are plenty for a link that only reads one video.
  return detail::to_hex(digest.data(), std::min<size_t>(size, 16));
}

std::string http_links::video_link(runtime::job_id id) const {
  return base_url() + "/output/" + runtime::to_string(id)
         + ".mp4?sig=" + signature(id);
}

bool http_links::valid_signature(runtime::job_id id,
                                 const std::string& given) const {
  auto expected = signature(id);
  return given.size() == expected.size()
         && CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

std::string http_links::video_url(const runtime::job_result& result) const {
  if (result.state != runtime::job_state::succeeded || result.output.empty())
    return {};
  if (!result.output_node.empty())
    return video_link(result.id);
  if (result.output.rfind("http://", 0) == 0
      || result.output.rfind("https://", 0) == 0)
    // Uploaded: the object's URL, without the upload's signature.
    return result.output.substr(0, result.output.find('?'));
  return {};
}

} // namespace vidnode::net
