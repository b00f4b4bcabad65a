// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <unistd.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange
#include <variant>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mailseal/dns/resolver.hpp>

namespace asio = boost::asio;
namespace dns = mailseal::dns;
namespace cfg = mailseal::config;
using namespace asio::experimental::awaitable_operators;
using testing::HasSubstr;
using testing::StartsWith;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
/// The RR type the fake server answers (SMIMEA); the resolver itself is type-neutral.
constexpr std::uint16_t smimea = 53;

/// A file in a fresh directory, removed with it.
class temp_dir {
public:
    temp_dir() {
        auto base =
            std::filesystem::temp_directory_path() /
            ("mailseal-test-dns-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
        std::filesystem::create_directories(base);
        path_ = base;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    std::filesystem::path write(const std::string& name, const std::string& content) const {
        auto p = path_ / name;
        std::ofstream(p) << content;
        return p;
    }
    const std::filesystem::path& path() const { return path_; }

private:
    static inline int counter_ = 0;
    std::filesystem::path path_;
};

/// A DS record for a zone no test queries: it makes the anchor check pass, and leaves every
/// name the tests look up outside any anchor, so libunbound calls them insecure without
/// needing the root (no network in unit tests).
const std::string unrelated_ds = "anchor.example. IN DS 12345 13 2 "
                                 "E2D3C916F6DEEAC73294E8268FB5885044A833FC5459588F4A9184CFC41A5766";

std::string create_error(const cfg::dns_settings& s) {
    asio::io_context io;
    auto made = dns::resolver::create(io.get_executor(), s);
    if (const auto* e = std::get_if<std::string>(&made)) {
        return *e;
    }
    return "(no error)";
}

TEST(outcome, to_string) {
    EXPECT_EQ(dns::to_string(dns::outcome::secure_records), "secure");
    EXPECT_EQ(dns::to_string(dns::outcome::secure_absent), "secure-absent");
    EXPECT_EQ(dns::to_string(dns::outcome::insecure), "insecure");
    EXPECT_EQ(dns::to_string(dns::outcome::bogus), "bogus");
    EXPECT_EQ(dns::to_string(dns::outcome::failure), "failure");
}

struct create_case {
    std::string name;
    /// Content of the anchor file, or std::nullopt for a file that does not exist.
    std::optional<std::string> anchor_file;
    std::vector<std::string> anchors;
    std::vector<std::string> forwarders;
    std::vector<cfg::stub_zone> stubs;
    /// Content of an unbound.conf, or empty for none.
    std::string unbound_conf;
    /// The whole message, or its start when it ends in "...".
    std::string want;
};

std::vector<create_case> create_cases() {
    const std::string no_anchor_tail =
        ", and trust_anchors is empty (without an anchor every answer is insecure and nothing "
        "would be sealed)";
    return {
        {"missing_anchor_file",
         std::nullopt,
         {},
         {},
         {},
         "",
         "no DNSSEC trust anchor: cannot read trust_anchor_file \"DIR/anchor.key\": No such file "
         "or directory" +
             no_anchor_tail},
        {"empty_anchor_file",
         "",
         {},
         {},
         {},
         "",
         "no DNSSEC trust anchor: trust_anchor_file \"DIR/anchor.key\" holds no DS or DNSKEY "
         "record" +
             no_anchor_tail},
        {"comments_only",
         "; . IN DS 20326 8 2 "
         "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n$ORIGIN .\n",
         {},
         {},
         {},
         "",
         "no DNSSEC trust anchor: trust_anchor_file \"DIR/anchor.key\" holds no DS or DNSKEY "
         "record" +
             no_anchor_tail},
        {"anchor_not_a_record",
         std::nullopt,
         {"test. IN A 192.0.2.1"},
         {},
         {},
         "",
         "trust_anchors[0] \"test. IN A 192.0.2.1\": is not a DS or DNSKEY record"},
        {"anchor_bad_hex",
         unrelated_ds,
         {"test. IN DS 1 13 2 NOTHEX"},
         {},
         {},
         "",
         "libunbound does not load the configuration: initialization failure (..."},
        {"anchor_file_garbage",
         "test. IN DS 1 13 2 NOTHEX\n",
         {},
         {},
         {},
         "",
         "libunbound does not load the configuration: initialization failure (..."},
        {"forwarder_not_an_address",
         unrelated_ds,
         {},
         {"resolver.example"},
         {},
         "",
         "forwarders[0] \"resolver.example\": refused by libunbound: syntax error"},
        {"second_forwarder_bad",
         unrelated_ds,
         {},
         {"127.0.0.1@53", "127.0.0.1@x"},
         {},
         "",
         "forwarders[1] \"127.0.0.1@x\": refused by libunbound: syntax error"},
        {"stub_server_bad",
         unrelated_ds,
         {},
         {},
         {{"test.", {"127.0.0.1@5300", "nowhere"}}},
         "",
         "stub_zone[0] \"test.\" server \"nowhere\": refused by libunbound: syntax error"},
        {"unbound_conf_without_validator",
         unrelated_ds,
         {},
         {},
         {},
         "server:\n  module-config: \"iterator\"\n",
         "unbound_conf \"DIR/unbound.conf\": module-config \"iterator\" leaves out the "
         "validator (every answer would be insecure)"},
        {"unbound_conf_syntax",
         unrelated_ds,
         {},
         {},
         {},
         "server:\n  no-such-option: yes\n",
         "unbound_conf \"DIR/unbound.conf\": refused by libunbound: syntax error"},
    };
}

class create_error_case : public testing::TestWithParam<create_case> {};

TEST_P(create_error_case, names_the_problem) {
    const auto& c = GetParam();
    temp_dir dir;
    cfg::dns_settings s;
    s.trust_anchor_file = dir.path() / "anchor.key";
    if (c.anchor_file) {
        dir.write("anchor.key", *c.anchor_file);
    }
    s.trust_anchors = c.anchors;
    s.forwarders = c.forwarders;
    s.stub_zones = c.stubs;
    if (!c.unbound_conf.empty()) {
        s.unbound_conf = dir.write("unbound.conf", c.unbound_conf);
    }
    auto want = c.want;
    for (auto at = want.find("DIR"); at != std::string::npos; at = want.find("DIR")) {
        want.replace(at, 3, dir.path().string());
    }
    auto got = create_error(s);
    if (want.ends_with("...")) {
        EXPECT_THAT(got, StartsWith(want.substr(0, want.size() - 3)))
            << "got " << got << ", want " << want;
    } else {
        EXPECT_EQ(got, want) << "got " << got << ", want " << want;
    }
}

INSTANTIATE_TEST_SUITE_P(table, create_error_case, testing::ValuesIn(create_cases()),
                         [](const testing::TestParamInfo<create_case>& p) { return p.param.name; });

TEST(create, reports_unbounds_reason_for_a_bad_anchor) {
    temp_dir dir;
    cfg::dns_settings s;
    s.trust_anchor_file = dir.write("anchor.key", unrelated_ds + "\n");
    s.trust_anchors = {"test. IN DS 1 13 2 NOTHEX"};
    auto got = create_error(s);
    EXPECT_THAT(got, HasSubstr("(error parsing trust anchor test. IN DS 1 13 2 NOTHEX: ")) << got;
}

TEST(create, reports_the_line_of_a_bad_anchor_file) {
    temp_dir dir;
    cfg::dns_settings s;
    s.trust_anchor_file = dir.write("anchor.key", "test. IN DS 1 13 2 NOTHEX\n");
    auto got = create_error(s);
    EXPECT_THAT(got, HasSubstr("(parse error in " + s.trust_anchor_file.string() + ":")) << got;
}

TEST(create, anchor_file_that_is_a_directory) {
    temp_dir dir;
    cfg::dns_settings s;
    s.trust_anchor_file = dir.path();
    auto got = create_error(s);
    EXPECT_THAT(got, StartsWith("no DNSSEC trust anchor: cannot read trust_anchor_file \"" +
                                dir.path().string() + "\": Is a directory"))
        << got;
}

TEST(create, missing_unbound_conf_names_the_file) {
    temp_dir dir;
    cfg::dns_settings s;
    s.trust_anchor_file = dir.write("anchor.key", unrelated_ds + "\n");
    s.unbound_conf = dir.path() / "missing.conf";
    auto got = create_error(s);
    EXPECT_THAT(got, StartsWith("unbound_conf \"" + s.unbound_conf.string() +
                                "\": refused by libunbound: syntax error"))
        << got;
    EXPECT_THAT(got, HasSubstr("missing.conf")) << got;
}

TEST(create, accepts_debians_root_key) {
    const std::filesystem::path root_key = "/usr/share/dns/root.key";
    if (!std::filesystem::exists(root_key)) {
        GTEST_SKIP() << root_key << " is not installed (package dns-root-data)";
    }
    cfg::dns_settings s; // the default trust_anchor_file is Debian's root.key
    EXPECT_EQ(create_error(s), "(no error)");
}

TEST(create, extra_anchor_stands_in_for_an_unreadable_file) {
    temp_dir dir;
    cfg::dns_settings s;
    s.trust_anchor_file = dir.path() / "missing.key";
    s.trust_anchors = {unrelated_ds};
    EXPECT_EQ(create_error(s), "(no error)");
}

TEST(create, accepts_dnskey_anchor_and_special_use_stub_zones) {
    temp_dir dir;
    cfg::dns_settings s;
    s.trust_anchor_file =
        dir.write("anchor.key", "; comment line\n$TTL 3600\n"
                                "anchor.example. 3600 IN DNSKEY 257 3 13 "
                                "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+"
                                "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n");
    s.forwarders = {"127.0.0.1", "::1@5353"};
    s.stub_zones = {{"test.", {"127.0.0.1@5300"}},
                    {"child.invalid.", {"127.0.0.1@5301", "::1@5301"}},
                    {"example.org.", {"192.0.2.1"}}};
    EXPECT_EQ(create_error(s), "(no error)");
}

// ---------------------------------------------------------------------------------------
// Lookups against a small authoritative server on 127.0.0.1, run on the test's io_context.
// Names under a special-use domain and outside every trust anchor come back insecure
// without the root, so these tests need no network.

enum class reply_kind { silent, answer, rcode, truncate };

/// Answers every query the same way: the SMIMEA records for type 53, NODATA for other types
/// (qname minimisation asks for ancestors first); or an rcode; or TC=1 over UDP and the full
/// answer over TCP; or nothing at all.
class fake_server {
public:
    fake_server(asio::io_context& io, reply_kind kind) : kind_(kind), udp_(io), tcp_(io) {
        // UDP and TCP on one port, as unbound retries a truncated answer on the same port.
        for (int attempt = 0; attempt < 20; ++attempt) {
            udp_ = asio::ip::udp::socket(io, {asio::ip::make_address("127.0.0.1"), 0});
            port_ = udp_.local_endpoint().port();
            boost::system::error_code ec;
            tcp_ = asio::ip::tcp::acceptor(io);
            tcp_.open(asio::ip::tcp::v4());
            tcp_.bind({asio::ip::make_address("127.0.0.1"), port_}, ec);
            if (!ec) {
                tcp_.listen();
                break;
            }
        }
        asio::co_spawn(io, serve_udp(), asio::detached);
        asio::co_spawn(io, serve_tcp(), asio::detached);
    }

    std::string address() const { return "127.0.0.1@" + std::to_string(port_); }
    void set_rcode(std::uint8_t rcode) { rcode_ = rcode; }
    void add_record(std::vector<std::uint8_t> rdata) { records_.push_back(std::move(rdata)); }
    int udp_queries() const { return udp_queries_; }
    int tcp_queries() const { return tcp_queries_; }
    /// Each query's name, lowercase, without the final dot.
    const std::vector<std::string>& questions() const { return questions_; }
    void stop() {
        boost::system::error_code ec;
        udp_.close(ec);
        tcp_.close(ec);
    }

private:
    static std::string question_name(const std::vector<std::uint8_t>& query) {
        std::string name;
        for (std::size_t at = 12; at < query.size() && query[at] != 0; at += query[at] + 1u) {
            if (!name.empty()) {
                name += '.';
            }
            for (std::size_t i = at + 1; i <= at + query[at] && i < query.size(); ++i) {
                name += static_cast<char>(std::tolower(query[i]));
            }
        }
        return name;
    }

    std::vector<std::uint8_t> reply(const std::vector<std::uint8_t>& query, bool over_tcp) const {
        // Header (12 octets), then the question: labels, a zero octet, type and class.
        std::size_t end = 12;
        while (end < query.size() && query[end] != 0) {
            end += query[end] + 1u;
        }
        end += 5;
        if (query.size() < 12 || end > query.size()) {
            return {};
        }
        auto qtype = static_cast<int>(query[end - 4] << 8 | query[end - 3]);
        std::vector<std::uint8_t> out(query.begin(), query.begin() + static_cast<long>(end));
        bool truncated = kind_ == reply_kind::truncate && !over_tcp;
        bool answer = (kind_ == reply_kind::answer || kind_ == reply_kind::truncate) &&
                      qtype == smimea && !truncated;
        std::uint8_t rcode = kind_ == reply_kind::rcode ? rcode_ : 0;
        out[2] = static_cast<std::uint8_t>(0x84 | (truncated ? 0x02 : 0) | (query[2] & 0x01));
        out[3] = rcode;
        out[4] = 0;
        out[5] = 1; // QDCOUNT
        auto ancount = answer ? records_.size() : 0;
        out[6] = static_cast<std::uint8_t>(ancount >> 8);
        out[7] = static_cast<std::uint8_t>(ancount);
        out[8] = out[9] = out[10] = out[11] = 0;
        for (std::size_t i = 0; i < ancount; ++i) {
            const auto& rdata = records_[i];
            // Owner: a pointer to the question's name; type 53, class IN, TTL 300.
            std::array<std::uint8_t, 12> rr{0xc0,
                                            0x0c,
                                            0,
                                            53,
                                            0,
                                            1,
                                            0,
                                            0,
                                            1,
                                            0x2c,
                                            static_cast<std::uint8_t>(rdata.size() >> 8),
                                            static_cast<std::uint8_t>(rdata.size())};
            out.insert(out.end(), rr.begin(), rr.end());
            out.insert(out.end(), rdata.begin(), rdata.end());
        }
        return out;
    }

    asio::awaitable<void> serve_udp() {
        std::vector<std::uint8_t> buffer(65536);
        for (;;) {
            asio::ip::udp::endpoint from;
            auto [ec, n] = co_await udp_.async_receive_from(asio::buffer(buffer), from, use_tuple);
            if (ec) {
                co_return;
            }
            ++udp_queries_;
            questions_.push_back(
                question_name({buffer.begin(), buffer.begin() + static_cast<long>(n)}));
            if (kind_ == reply_kind::silent) {
                continue;
            }
            auto out = reply({buffer.begin(), buffer.begin() + static_cast<long>(n)}, false);
            co_await udp_.async_send_to(asio::buffer(out), from, use_tuple);
        }
    }

    asio::awaitable<void> serve_tcp() {
        for (;;) {
            auto [ec, socket] = co_await tcp_.async_accept(use_tuple);
            if (ec) {
                co_return;
            }
            // RFC 1035 §4.2.2: each message is prefixed with its length in two octets.
            std::array<std::uint8_t, 2> length{};
            auto [read_ec, got] =
                co_await asio::async_read(socket, asio::buffer(length), use_tuple);
            if (read_ec) {
                continue;
            }
            std::vector<std::uint8_t> query(static_cast<std::size_t>(length[0] << 8 | length[1]));
            std::tie(read_ec, got) =
                co_await asio::async_read(socket, asio::buffer(query), use_tuple);
            if (read_ec) {
                continue;
            }
            ++tcp_queries_;
            if (kind_ == reply_kind::silent) {
                continue;
            }
            auto out = reply(query, true);
            std::array<std::uint8_t, 2> prefix{static_cast<std::uint8_t>(out.size() >> 8),
                                               static_cast<std::uint8_t>(out.size())};
            std::array<asio::const_buffer, 2> framed{asio::buffer(prefix), asio::buffer(out)};
            co_await asio::async_write(socket, framed, use_tuple);
        }
    }

    reply_kind kind_;
    std::uint8_t rcode_ = 0;
    std::vector<std::vector<std::uint8_t>> records_;
    asio::ip::udp::socket udp_;
    asio::ip::tcp::acceptor tcp_;
    std::uint16_t port_ = 0;
    int udp_queries_ = 0;
    int tcp_queries_ = 0;
    std::vector<std::string> questions_;
};

cfg::dns_settings stub_settings(const temp_dir& dir, const fake_server& server,
                                std::chrono::seconds timeout) {
    cfg::dns_settings s;
    s.trust_anchor_file = dir.write("anchor.key", unrelated_ds + "\n");
    s.stub_zones = {{"example.test.", {server.address()}}};
    s.timeout = timeout;
    return s;
}

std::unique_ptr<dns::resolver> make_resolver(asio::io_context& io, const cfg::dns_settings& s) {
    auto made = dns::resolver::create(io.get_executor(), s);
    if (const auto* e = std::get_if<std::string>(&made)) {
        ADD_FAILURE() << "create: " << *e;
        return nullptr;
    }
    return std::move(std::get<std::unique_ptr<dns::resolver>>(made));
}

const std::string owner = dns::hashed_owner_name("hugh", "_smimecert", "example.test");

/// Runs one lookup to its end, and `server` only as long as it lasts.
dns::lookup_result lookup_once(asio::io_context& io, dns::resolver& r, fake_server& server,
                               std::string name = owner) {
    std::optional<dns::lookup_result> got;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            got = co_await r.lookup(name, smimea);
            server.stop();
        },
        asio::detached);
    // run() returns only when no work is left: also proves an idle resolver holds none.
    io.run();
    io.restart();
    EXPECT_TRUE(got.has_value());
    return got.value_or(dns::lookup_result{});
}

TEST(lookup, unsigned_answer_is_insecure_without_records) {
    asio::io_context io;
    fake_server server(io, reply_kind::answer);
    server.add_record({3, 0, 0, 0x30, 0x03, 0x02, 0x01, 0x00});
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(10)));
    ASSERT_TRUE(r);
    auto got = lookup_once(io, *r, server);
    EXPECT_EQ(dns::to_string(got.result), "insecure") << got.detail;
    EXPECT_EQ(got.owner, owner);
    EXPECT_TRUE(got.rdata.empty()) << "records are for secure answers only";
    EXPECT_FALSE(got.nxdomain);
    EXPECT_GE(server.udp_queries(), 1);
}

TEST(lookup, asks_for_the_full_name_at_once) {
    // With QNAME minimisation libunbound would ask for "_smimecert.example.test" first, and
    // ask again for every lookup where no such name exists.
    asio::io_context io;
    fake_server server(io, reply_kind::answer);
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(10)));
    ASSERT_TRUE(r);
    lookup_once(io, *r, server);
    ASSERT_FALSE(server.questions().empty());
    for (const auto& name : server.questions()) {
        EXPECT_NE(name, "_smimecert.example.test");
    }
    EXPECT_NE(std::find(server.questions().begin(), server.questions().end(), owner),
              server.questions().end());
}

TEST(lookup, an_answer_is_given_again_while_its_ttl_lasts) {
    asio::io_context io;
    fake_server server(io, reply_kind::answer);
    server.add_record({3, 0, 0, 0x30, 0x03, 0x02, 0x01, 0x00});
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(10)));
    ASSERT_TRUE(r);
    std::vector<dns::lookup_result> got;
    int asked_first = 0;
    int asked_then = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            got.push_back(co_await r->lookup(owner, smimea));
            asked_first = server.udp_queries() + server.tcp_queries();
            got.push_back(co_await r->lookup(owner, smimea));
            asked_then = server.udp_queries() + server.tcp_queries();
            server.stop();
        },
        asio::detached);
    io.run();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(asked_then, asked_first) << "the second lookup asked the server again";
    EXPECT_EQ(got[1].result, got[0].result);
    EXPECT_EQ(got[1].owner, owner);
    EXPECT_GT(got[0].ttl, 0u);
}

TEST(lookup, unsigned_nxdomain_is_insecure) {
    asio::io_context io;
    fake_server server(io, reply_kind::rcode);
    server.set_rcode(3);
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(10)));
    ASSERT_TRUE(r);
    auto got = lookup_once(io, *r, server);
    EXPECT_EQ(dns::to_string(got.result), "insecure") << got.detail;
    EXPECT_TRUE(got.nxdomain);
}

TEST(lookup, servfail_is_a_failure) {
    asio::io_context io;
    fake_server server(io, reply_kind::rcode);
    server.set_rcode(2);
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(30)));
    ASSERT_TRUE(r);
    auto got = lookup_once(io, *r, server);
    EXPECT_EQ(dns::to_string(got.result), "failure");
    EXPECT_EQ(got.detail, "SERVFAIL");
}

TEST(lookup, truncated_answer_is_retried_over_tcp) {
    asio::io_context io;
    fake_server server(io, reply_kind::truncate);
    // Two "certificates" of 1500 octets: far beyond the 1232-octet EDNS buffer.
    for (std::uint8_t n : {1, 2}) {
        std::vector<std::uint8_t> rdata{3, 0, 0};
        rdata.resize(1503, n);
        server.add_record(std::move(rdata));
    }
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(10)));
    ASSERT_TRUE(r);
    auto got = lookup_once(io, *r, server);
    EXPECT_EQ(dns::to_string(got.result), "insecure") << got.detail;
    EXPECT_GE(server.tcp_queries(), 1) << "got no query over TCP after TC=1";
}

TEST(lookup, unbound_conf_cannot_turn_off_tcp) {
    asio::io_context io;
    fake_server server(io, reply_kind::truncate);
    std::vector<std::uint8_t> rdata{3, 0, 0};
    rdata.resize(2003, 7);
    server.add_record(std::move(rdata));
    temp_dir dir;
    auto s = stub_settings(dir, server, std::chrono::seconds(10));
    s.unbound_conf = dir.write("unbound.conf", "server:\n  do-tcp: no\n  do-ip6: no\n");
    auto r = make_resolver(io, s);
    ASSERT_TRUE(r);
    auto got = lookup_once(io, *r, server);
    EXPECT_EQ(dns::to_string(got.result), "insecure") << got.detail;
    EXPECT_GE(server.tcp_queries(), 1) << "got no query over TCP after TC=1";
}

TEST(lookup, silent_server_times_out) {
    asio::io_context io;
    fake_server server(io, reply_kind::silent);
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(1)));
    ASSERT_TRUE(r);
    auto started = std::chrono::steady_clock::now();
    auto got = lookup_once(io, *r, server);
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(dns::to_string(got.result), "failure");
    EXPECT_EQ(got.detail, "timeout");
    EXPECT_GE(took, std::chrono::milliseconds(900));
}

TEST(lookup, cancel_all_completes_pending_lookups) {
    asio::io_context io;
    fake_server server(io, reply_kind::silent);
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(60)));
    ASSERT_TRUE(r);
    std::vector<dns::lookup_result> got;
    for (const char* user : {"a", "b", "c"}) {
        asio::co_spawn(
            io,
            [&, name = dns::hashed_owner_name(user, "_smimecert", "example.test")]()
                -> asio::awaitable<void> { got.push_back(co_await r->lookup(name, smimea)); },
            asio::detached);
    }
    asio::steady_timer later(io, std::chrono::milliseconds(100));
    later.async_wait([&](boost::system::error_code) {
        r->cancel_all();
        server.stop();
    });
    io.run();
    ASSERT_EQ(got.size(), 3u);
    for (const auto& g : got) {
        EXPECT_EQ(dns::to_string(g.result), "failure");
        EXPECT_EQ(g.detail, "cancelled");
    }
}

TEST(lookup, destroying_the_resolver_cancels_pending_lookups) {
    asio::io_context io;
    fake_server server(io, reply_kind::silent);
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(60)));
    ASSERT_TRUE(r);
    std::optional<dns::lookup_result> got;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { got = co_await r->lookup(owner, smimea); },
        asio::detached);
    asio::steady_timer later(io, std::chrono::milliseconds(100));
    later.async_wait([&](boost::system::error_code) {
        r.reset();
        server.stop();
    });
    io.run();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->detail, "cancelled");
}

TEST(lookup, caller_cancellation_ends_the_lookup) {
    asio::io_context io;
    fake_server server(io, reply_kind::silent);
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(60)));
    ASSERT_TRUE(r);
    std::optional<std::size_t> winner;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer deadline(io, std::chrono::milliseconds(100));
            auto result = co_await (r->lookup(owner, smimea) || deadline.async_wait(use_tuple));
            winner = result.index();
            server.stop();
        },
        asio::detached);
    auto started = std::chrono::steady_clock::now();
    io.run();
    EXPECT_EQ(winner, 1u) << "the timer should have won the race";
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30))
        << "io_context::run() waited for the abandoned lookup";
}

TEST(lookup, many_lookups_at_once_each_get_their_answer) {
    asio::io_context io;
    fake_server server(io, reply_kind::answer);
    server.add_record({3, 1, 0, 0x30});
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(10)));
    ASSERT_TRUE(r);
    std::vector<dns::lookup_result> got;
    constexpr int count = 20;
    for (int i = 0; i < count; ++i) {
        asio::co_spawn(
            io,
            [&, name = dns::hashed_owner_name("user" + std::to_string(i), "_smimecert",
                                              "example.test")]() -> asio::awaitable<void> {
                got.push_back(co_await r->lookup(name, smimea));
                if (got.size() == count) {
                    server.stop();
                }
            },
            asio::detached);
    }
    io.run();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(count));
    std::set<std::string> owners;
    for (const auto& g : got) {
        EXPECT_EQ(dns::to_string(g.result), "insecure") << g.owner << ": " << g.detail;
        owners.insert(g.owner);
    }
    EXPECT_EQ(owners.size(), static_cast<std::size_t>(count)) << "each lookup its own owner";
}

TEST(lookup, resolver_is_reusable_after_a_timeout) {
    asio::io_context io;
    fake_server server(io, reply_kind::silent);
    temp_dir dir;
    auto r = make_resolver(io, stub_settings(dir, server, std::chrono::seconds(1)));
    ASSERT_TRUE(r);
    auto first = lookup_once(io, *r, server);
    EXPECT_EQ(first.detail, "timeout");
    // The same resolver, another name, the server gone: a failure again (timeout, or
    // SERVFAIL once unbound gives the server up), and run() still returns.
    auto second =
        lookup_once(io, *r, server, dns::hashed_owner_name("other", "_smimecert", "example.test"));
    EXPECT_EQ(dns::to_string(second.result), "failure") << second.detail;
}

} // namespace
