#include <catch2/catch.hpp>

#include "vidnode/actors/job_table.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using actors::job_table;
using time_point = job_table::time_point;

namespace {

runtime::job_spec spec_with_key(std::string key) {
  runtime::job_spec spec;
  spec.model = "sim";
  spec.idempotency_key = std::move(key);
  return spec;
}

void end(actors::job_record& rec) {
  rec.result.state = runtime::job_state::succeeded;
}

} // namespace

TEST_CASE("the job table numbers jobs in acceptance order and finds them by "
          "id and idempotency key",
          "[job_table]") {
  job_table table{{1h, 10}};
  auto t = time_point{} + 1s;
  auto& a = table.add(spec_with_key("k1"), t);
  auto& b = table.add(spec_with_key(""), t);
  CHECK(a.result.id.value == 1);
  CHECK(b.result.id.value == 2);
  CHECK(a.seq < b.seq);
  CHECK(table.next_ticket() > b.seq);
  CHECK(table.find(a.result.id) == &a);
  CHECK(table.find_by_key("k1") == &a);
  CHECK(table.find_by_key("") == nullptr);
  CHECK(table.find(runtime::job_id{3}) == nullptr);
}

TEST_CASE("the job table keeps at most max_results finished results, the "
          "newest, and forgets their idempotency keys with them",
          "[job_table]") {
  job_table table{{1h, 2}};
  auto t = time_point{} + 1s;
  std::vector<runtime::job_id> ids;
  for (int i = 0; i < 3; ++i) {
    auto& rec = table.add(spec_with_key("k" + std::to_string(i)), t);
    ids.push_back(rec.result.id);
    end(rec);
    auto expiry = table.retire(rec, t + std::chrono::seconds{i});
    // Only the first result kept asks for a timer.
    CHECK(expiry.has_value() == (i == 0));
  }
  CHECK(table.find(ids[0]) == nullptr);
  CHECK(table.find_by_key("k0") == nullptr);
  CHECK(table.find(ids[1]) != nullptr);
  CHECK(table.find(ids[2]) != nullptr);
}

TEST_CASE("the job table forgets results once result_ttl has passed and says "
          "when the next one expires",
          "[job_table]") {
  job_table table{{10s, 100}};
  auto t0 = time_point{} + 1s;
  auto& a = table.add(spec_with_key(""), t0);
  end(a);
  auto first = table.retire(a, t0);
  REQUIRE(first);
  CHECK(*first == t0 + 10s);
  auto& b = table.add(spec_with_key(""), t0);
  end(b);
  table.retire(b, t0 + 5s);
  auto live = table.add(spec_with_key(""), t0).result.id;
  CHECK(table.expire(t0 + 9s) == t0 + 10s);
  CHECK(table.size() == 3);
  CHECK(table.expire(t0 + 10s) == t0 + 15s);
  CHECK(table.size() == 2);
  CHECK(table.expire(t0 + 1h) == time_point::max());
  CHECK(table.size() == 1);
  CHECK(table.find(live) != nullptr);
}

TEST_CASE("a listing shows live jobs oldest first, then ended ones newest "
          "first, up to the limit",
          "[job_table]") {
  job_table table{{1h, 100}};
  auto t = time_point{} + 1s;
  auto& e1 = table.add(spec_with_key(""), t);
  auto& l1 = table.add(spec_with_key(""), t);
  auto& e2 = table.add(spec_with_key(""), t);
  auto& l2 = table.add(spec_with_key(""), t);
  end(e1);
  end(e2);
  runtime::list_query all;
  all.include_finished = true;
  auto listed = table.listing(all);
  REQUIRE(listed.size() == 4);
  CHECK(listed[0] == &l1);
  CHECK(listed[1] == &l2);
  CHECK(listed[2] == &e2);
  CHECK(listed[3] == &e1);
  runtime::list_query live_only;
  live_only.include_finished = false;
  CHECK(table.listing(live_only).size() == 2);
  all.limit = 3;
  CHECK(table.listing(all).size() == 3);
}
