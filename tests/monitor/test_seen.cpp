// SPDX-License-Identifier: Apache-2.0
#include <fstream>

#include <gtest/gtest.h>

#include <mailseal/monitor/seen.hpp>

namespace mailseal::monitor {
namespace {

using std::chrono::seconds;
using time_point = seen_records::time_point;

const time_point t0{seconds(1'800'000'000)};

TEST(SeenRecords, FirstSightingIsKeptUntilTheRecordGoes) {
    seen_records seen;
    auto first = seen.observe("_25._tcp.mx", {"3 1 1 AA", "3 1 1 BB"}, t0);
    EXPECT_EQ(first.at("3 1 1 AA"), t0);
    EXPECT_TRUE(seen.changed());
    auto later = seen.observe("_25._tcp.mx", {"3 1 1 AA", "3 1 1 CC"}, t0 + seconds(100));
    EXPECT_EQ(later.at("3 1 1 AA"), t0);
    EXPECT_EQ(later.at("3 1 1 CC"), t0 + seconds(100));
    EXPECT_EQ(later.count("3 1 1 BB"), 0u);
    // A sighting recorded in the future counts from now.
    seen_records clock_set_back;
    clock_set_back.observe("_25._tcp.mx", {"3 1 1 AA"}, t0 + seconds(1000));
    EXPECT_EQ(clock_set_back.observe("_25._tcp.mx", {"3 1 1 AA"}, t0).at("3 1 1 AA"), t0);
    // Gone and back: waited for again.
    auto again = seen.observe("_25._tcp.mx", {"3 1 1 BB"}, t0 + seconds(200));
    EXPECT_EQ(again.at("3 1 1 BB"), t0 + seconds(200));
}

TEST(SeenRecords, SavedAndLoaded) {
    auto file = std::filesystem::temp_directory_path() / "mailseal-test-seen";
    std::filesystem::remove(file);
    auto empty = seen_records::load(file);
    ASSERT_EQ(empty.index(), 0u);
    auto& seen = std::get<0>(empty);
    seen.observe("_25._tcp.a", {"3 1 1 AA"}, t0);
    seen.observe("_25._tcp.b", {"2 1 1 BB", "3 1 1 CC"}, t0 + seconds(5));
    ASSERT_FALSE(seen.save(file));
    auto loaded = seen_records::load(file);
    ASSERT_EQ(loaded.index(), 0u) << std::get<1>(loaded);
    auto& back = std::get<0>(loaded);
    EXPECT_EQ(back.observe("_25._tcp.b", {"2 1 1 BB", "3 1 1 CC"}, t0 + seconds(99)).at("2 1 1 BB"),
              t0 + seconds(5));
    EXPECT_FALSE(back.changed());
    EXPECT_FALSE(std::filesystem::exists(file.string() + ".new"));

    std::ofstream(file) << "99999999999999 _25._tcp.a 3 1 1 AA\n";
    EXPECT_EQ(seen_records::load(file).index(), 1u);
    std::ofstream(file) << "1800000000 _25._tcp.a 3 1 1 AA\nnot a line\n";
    auto bad = seen_records::load(file);
    ASSERT_EQ(bad.index(), 1u);
    EXPECT_NE(std::get<1>(bad).find(":2:"), std::string::npos) << std::get<1>(bad);
    std::filesystem::remove(file);
}

} // namespace
} // namespace mailseal::monitor
