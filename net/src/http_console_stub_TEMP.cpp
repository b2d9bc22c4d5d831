#include "http_console.hpp"
namespace vidnode::net::detail {
void add_console_routes(httplib::Server&,
                        std::shared_ptr<const console_backend>) {}
} // namespace vidnode::net::detail
