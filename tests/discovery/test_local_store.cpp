// SPDX-License-Identifier: Apache-2.0
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/discovery/discovery.hpp>

namespace mailseal::discovery {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& file, const std::string& content) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
}

struct listing_summary {
    std::vector<std::string> files;    ///< relative to the store
    std::vector<std::string> problems; ///< "source: why"
};

listing_summary summarize(const local_store_listing& listing, const fs::path& base) {
    listing_summary out;
    for (const auto& f : listing.files) {
        out.files.push_back(fs::relative(f, base).string());
    }
    for (const auto& p : listing.problems) {
        EXPECT_FALSE(p.usable);
        EXPECT_TRUE(p.local);
        // "local <base>/x" becomes "x", "local <base>" becomes "local STORE".
        std::string source = p.source;
        std::string local_base = "local " + base.string();
        if (source.starts_with(local_base + "/")) {
            source = source.substr(local_base.size() + 1);
        } else if (source == local_base) {
            source = "local STORE";
        }
        out.problems.push_back(source + ": " + p.why);
    }
    return out;
}

class local_store_test : public testing::Test {
protected:
    void SetUp() override {
        store_ = fs::temp_directory_path() / ("mailseal-store-" + std::to_string(::getpid()));
        auto dir = store_ / "example.org" / "alice";
        for (const char* name : {"b.pem", "a.pem", "d.txt", "key.asc", ".hidden.pem"}) {
            write(dir / name, "content");
        }
        fs::create_directories(dir / "e.pem");
        write(store_ / "file.example", "a file where a domain directory should be");
    }
    void TearDown() override { fs::remove_all(store_); }

    fs::path store_;
};

TEST_F(local_store_test, lists_regular_files_in_name_order) {
    auto got = summarize(list_local_store(store_, "alice", "example.org"), store_);
    EXPECT_EQ(got.files,
              (std::vector<std::string>{"example.org/alice/a.pem", "example.org/alice/b.pem",
                                        "example.org/alice/d.txt", "example.org/alice/key.asc"}))
        << "no directories, no hidden files; each format picks its own by name";
    EXPECT_TRUE(got.problems.empty());
}

TEST_F(local_store_test, domain_is_lowercased) {
    EXPECT_EQ(list_local_store(store_, "alice", "EXAMPLE.Org").files.size(), 4u);
}

struct nothing_case {
    std::string name;
    std::string user;
    std::string domain;
    std::string want_problem; ///< empty: no problem either
};

class local_store_nothing_test : public local_store_test,
                                 public testing::WithParamInterface<nothing_case> {};

TEST_P(local_store_nothing_test, lists_no_file) {
    const auto& c = GetParam();
    auto got = summarize(list_local_store(store_, c.user, c.domain), store_);
    EXPECT_TRUE(got.files.empty()) << "got " << got.files.front();
    std::vector<std::string> want;
    if (!c.want_problem.empty()) {
        want.push_back(c.want_problem);
    }
    EXPECT_EQ(got.problems, want);
}

INSTANTIATE_TEST_SUITE_P(
    table, local_store_nothing_test,
    testing::Values(
        nothing_case{"unknown_user", "carol", "example.org", ""},
        nothing_case{"unknown_domain", "alice", "example.net", ""},
        // The user name is the Maildir's, already normalised by the caller: used exactly.
        nothing_case{"user_case_kept", "Alice", "example.org", ""},
        nothing_case{"dot_dot_user", "..", "example.org",
                     "local STORE: \"..@example.org\" cannot name a store directory"},
        nothing_case{"dot_user", ".", "example.org",
                     "local STORE: \".@example.org\" cannot name a store directory"},
        nothing_case{"slash_user", "alice/../bob", "example.org",
                     "local STORE: \"alice/../bob@example.org\" cannot name a store directory"},
        nothing_case{"empty_user", "", "example.org",
                     "local STORE: \"@example.org\" cannot name a store directory"},
        nothing_case{"dot_dot_domain", "alice", "..",
                     "local STORE: \"alice@..\" cannot name a store directory"},
        nothing_case{"nul_in_user", std::string("ali\0ce", 6), "example.org",
                     "local STORE: \"" + std::string("ali\0ce", 6) +
                         "@example.org\" cannot name a store directory"},
        nothing_case{"domain_is_a_file", "alice", "file.example",
                     "file.example/alice: cannot list: Not a directory"}),
    [](const testing::TestParamInfo<nothing_case>& param_info) { return param_info.param.name; });

TEST(local_store, not_configured) {
    auto got = list_local_store("", "alice", "example.org");
    EXPECT_TRUE(got.files.empty());
    EXPECT_TRUE(got.problems.empty());
}

} // namespace
} // namespace mailseal::discovery
