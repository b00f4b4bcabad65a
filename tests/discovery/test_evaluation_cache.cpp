// SPDX-License-Identifier: Apache-2.0
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/discovery/evaluation_cache.hpp>
#include <mailseal/seal/formats.hpp>

namespace mailseal::discovery {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::system_clock;

const seal::format_set& formats() {
    static const auto set = std::get<seal::format_set>(seal::format_set::load(config::config{}));
    return set;
}
const seal::format& smime() {
    return *formats().get(config::seal_format::smime);
}
const seal::format& openpgp() {
    return *formats().get(config::seal_format::openpgp);
}

dns::lookup_result answer(std::vector<std::vector<std::uint8_t>> rdata) {
    dns::lookup_result r;
    r.result = dns::outcome::secure_records;
    r.owner = "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.org";
    r.rr_type = 53;
    r.rdata = std::move(rdata);
    r.ttl = 3600;
    return r;
}

seal::evaluation decided(std::string decision) {
    seal::evaluation ev;
    ev.decision = std::move(decision);
    return ev;
}

evaluation_cache::identity id_of(const seal::format& f, std::string_view address,
                                 const dns::lookup_result& lookup,
                                 const std::vector<fs::path>& files = {}) {
    auto id = evaluation_cache::identify(f, address, lookup, files);
    EXPECT_TRUE(id);
    return id.value_or(evaluation_cache::identity{});
}

class temp_dir {
public:
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "mailseal-cache-XXXXXX").string();
        path_ = ::mkdtemp(pattern.data());
    }
    ~temp_dir() { fs::remove_all(path_); }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

TEST(evaluation_cache, identity_covers_every_input) {
    const auto base = answer({{3, 0, 0, 1, 2}, {3, 0, 0, 4}});
    const auto id = id_of(smime(), "alice@example.org", base);
    EXPECT_EQ(id, id_of(smime(), "alice@example.org", base)) << "the same inputs";

    EXPECT_NE(id, id_of(smime(), "bob@example.org", base));
    EXPECT_NE(id, id_of(openpgp(), "alice@example.org", base));
    auto changed = base;
    changed.rdata[1].push_back(5);
    EXPECT_NE(id, id_of(smime(), "alice@example.org", changed)) << "a record's data";
    auto reordered = base;
    std::swap(reordered.rdata[0], reordered.rdata[1]);
    EXPECT_NE(id, id_of(smime(), "alice@example.org", reordered)) << "the answer order";
    auto moved = base;
    moved.rdata = {{3, 0, 0, 1}, {2, 3, 0, 0, 4}};
    EXPECT_NE(id, id_of(smime(), "alice@example.org", moved)) << "where records split";
    auto insecure = base;
    insecure.result = dns::outcome::insecure;
    EXPECT_NE(id, id_of(smime(), "alice@example.org", insecure));
    auto lowercase = base;
    lowercase.owner = "x" + lowercase.owner;
    EXPECT_NE(id, id_of(smime(), "alice@example.org", lowercase)) << "another owner name";
    auto shorter = base;
    shorter.ttl = 5;
    EXPECT_EQ(id, id_of(smime(), "alice@example.org", shorter)) << "the TTL is not an input";
}

TEST(evaluation_cache, identity_follows_the_local_files) {
    temp_dir dir;
    auto file = dir.path() / "a.pem";
    std::ofstream(file) << "one";
    auto absent = answer({});
    absent.result = dns::outcome::secure_absent;
    const auto none = id_of(smime(), "alice@example.org", absent);
    const auto first = id_of(smime(), "alice@example.org", absent, {file});
    EXPECT_NE(none, first);
    EXPECT_EQ(first, id_of(smime(), "alice@example.org", absent, {file}));

    std::ofstream(file) << "owt";
    const auto rewritten = id_of(smime(), "alice@example.org", absent, {file});
    EXPECT_NE(first, rewritten) << "rewritten in place";

    auto time = fs::last_write_time(file);
    std::ofstream(file) << "Owt";
    fs::last_write_time(file, time);
    EXPECT_NE(rewritten, id_of(smime(), "alice@example.org", absent, {file}))
        << "same size and mtime, other content";

    auto copy = dir.path() / "new.pem";
    std::ofstream(copy) << "Owt";
    fs::rename(copy, file);
    EXPECT_EQ(id_of(smime(), "alice@example.org", absent, {file}),
              id_of(smime(), "alice@example.org", absent, {file}))
        << "another inode with the same content is the same input";

    auto big = dir.path() / "big.pem";
    std::ofstream(big) << std::string((1u << 20) + 1, 'x');
    EXPECT_FALSE(evaluation_cache::identify(smime(), "alice@example.org", absent, {big}))
        << "larger than any key file: evaluated afresh";

    fs::remove(file);
    EXPECT_FALSE(evaluation_cache::identify(smime(), "alice@example.org", absent, {file}))
        << "a file that cannot be read is not cached";
}

TEST(evaluation_cache, keeps_what_it_was_given) {
    evaluation_cache cache(10);
    auto now = clock::now();
    auto id = id_of(smime(), "alice@example.org", answer({{3, 0, 0, 1}}));
    EXPECT_FALSE(cache.find(id, now));
    cache.store(id, decided("first"), now, 3600);
    auto kept = cache.find(id, now);
    ASSERT_TRUE(kept);
    EXPECT_EQ(kept->decision, "first");
    cache.store(id, decided("second"), now, 3600);
    EXPECT_EQ(cache.find(id, now)->decision, "second");
    EXPECT_EQ(cache.size(), 1u);
}

TEST(evaluation_cache, ends_when_the_clock_could_change_the_verdict) {
    evaluation_cache cache(10);
    auto now = clock::now();
    auto id = id_of(smime(), "alice@example.org", answer({{3, 0, 0, 1}}));
    auto ev = decided("expiring");
    ev.changes_at = now + std::chrono::seconds(10);
    cache.store(id, ev, now, 3600);
    EXPECT_TRUE(cache.find(id, now + std::chrono::seconds(9)));
    EXPECT_FALSE(cache.find(id, now + std::chrono::seconds(10)));
    EXPECT_EQ(cache.size(), 0u) << "an entry past its time is dropped";

    ev.changes_at = now;
    cache.store(id, ev, now, 3600);
    EXPECT_EQ(cache.size(), 0u) << "already changing: not kept";
}

TEST(evaluation_cache, keeps_no_verdict_that_rests_on_a_passing_failure) {
    evaluation_cache cache(10);
    auto now = clock::now();
    auto id = id_of(smime(), "alice@example.org", answer({{3, 0, 0, 1}}));
    auto unreadable = decided("local file unreadable");
    unreadable.local_problems.push_back({});
    cache.store(id, unreadable, now, 3600);
    auto setup = decided("library not set up");
    setup.provisional = true;
    cache.store(id, setup, now, 3600);
    EXPECT_EQ(cache.size(), 0u);
}

TEST(evaluation_cache, ends_with_the_ttl) {
    evaluation_cache cache(10);
    auto now = clock::now();
    auto id = id_of(smime(), "alice@example.org", answer({{3, 0, 0, 1}}));
    cache.store(id, decided("no ttl"), now, 0);
    EXPECT_EQ(cache.size(), 0u) << "TTL 0: not to be cached";
    cache.store(id, decided("one second"), now, 1);
    EXPECT_TRUE(cache.find(id, now));
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    EXPECT_FALSE(cache.find(id, clock::now()));
}

TEST(evaluation_cache, drops_the_least_recently_used) {
    evaluation_cache cache(2);
    auto now = clock::now();
    auto a = id_of(smime(), "a@example.org", answer({}));
    auto b = id_of(smime(), "b@example.org", answer({}));
    auto c = id_of(smime(), "c@example.org", answer({}));
    cache.store(a, decided("a"), now, 3600);
    cache.store(b, decided("b"), now, 3600);
    EXPECT_TRUE(cache.find(a, now)) << "a is now the most recent";
    cache.store(c, decided("c"), now, 3600);
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_TRUE(cache.find(a, now));
    EXPECT_FALSE(cache.find(b, now));
    EXPECT_TRUE(cache.find(c, now));

    evaluation_cache off(0);
    off.store(a, decided("a"), now, 3600);
    EXPECT_FALSE(off.find(a, now));
}

} // namespace
} // namespace mailseal::discovery
