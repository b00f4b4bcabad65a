// SPDX-License-Identifier: Apache-2.0
// The LMTP client against a scripted next hop: the protocol violations and races real Dovecot
// does not produce on demand (tests/integration/test_relay.py covers real Dovecot). Each test
// scripts the server's answers and checks that mailseal never turns a confused exchange into
// a 250, never reuses a connection whose replies are out of step, and stuffs dots correctly.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/lmtp/address.hpp>
#include <mailseal/relay/next_hop.hpp>

namespace mailseal::relay {
namespace {

/// One scripted LMTP server on a unix socket. `answer` gets each command line (without CRLF)
/// and the connection's number, and returns the bytes to send back; after a 354 the data up
/// to the final dot is collected into `messages` and `answer` gets the line ".".
class scripted_server {
public:
    using script = std::function<std::string(const std::string& line, int connection)>;

    explicit scripted_server(script answer) : answer_(std::move(answer)) {
        dir_ = std::filesystem::temp_directory_path() /
               ("mailseal-relay-test-" + std::to_string(::getpid()) + "-" +
                std::to_string(counter_++));
        std::filesystem::create_directories(dir_);
        path_ = (dir_ / "lmtp").string();
        listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        path_.copy(sun.sun_path, sizeof sun.sun_path - 1);
        EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
        EXPECT_EQ(::listen(listener_, 16), 0);
        thread_ = std::thread([this] { serve(); });
    }

    ~scripted_server() {
        ::shutdown(listener_, SHUT_RDWR);
        ::close(listener_);
        thread_.join();
        std::filesystem::remove_all(dir_);
    }

    config::listener address() const { return config::unix_listener{path_, 0600, {}, {}}; }
    int connections() const { return connections_.load(); }
    std::vector<std::string> messages() {
        std::lock_guard lock(mutex_);
        return messages_;
    }

private:
    void serve() {
        std::vector<std::thread> clients;
        for (;;) {
            int fd = ::accept(listener_, nullptr, nullptr);
            if (fd < 0) {
                break;
            }
            int number = ++connections_;
            clients.emplace_back([this, fd, number] { talk(fd, number); });
        }
        for (auto& c : clients) {
            c.join();
        }
    }

    static bool send_all(int fd, const std::string& bytes) {
        return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(bytes.size());
    }

    void talk(int fd, int number) {
        timeval five{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
        send_all(fd, "220 scripted\r\n");
        std::string in;
        bool in_data = false;
        char buffer[65536];
        for (;;) {
            ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) {
                break;
            }
            in.append(buffer, static_cast<std::size_t>(n));
            for (;;) {
                if (in_data) {
                    auto end = in.find("\r\n.\r\n");
                    if (end == std::string::npos) {
                        break;
                    }
                    {
                        std::lock_guard lock(mutex_);
                        messages_.push_back(in.substr(0, end + 2));
                    }
                    in.erase(0, end + 5);
                    in_data = false;
                    send_all(fd, answer_(".", number));
                    continue;
                }
                auto eol = in.find("\r\n");
                if (eol == std::string::npos) {
                    break;
                }
                std::string line = in.substr(0, eol);
                in.erase(0, eol + 2);
                std::string reply = answer_(line, number);
                in_data = reply.starts_with("354");
                if (reply == "close") {
                    ::close(fd);
                    return;
                }
                send_all(fd, reply);
            }
        }
        ::close(fd);
    }

    static inline std::atomic<int> counter_{0};
    script answer_;
    std::filesystem::path dir_;
    std::string path_;
    int listener_ = -1;
    std::thread thread_;
    std::atomic<int> connections_{0};
    std::mutex mutex_;
    std::vector<std::string> messages_;
};

/// Dovecot's answers, for everything a test does not script differently.
std::string well_behaved(const std::string& line) {
    if (line.starts_with("LHLO")) {
        return "250-scripted\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n";
    }
    if (line.starts_with("MAIL")) {
        return "250 2.1.0 OK\r\n";
    }
    if (line.starts_with("RCPT")) {
        return "250 2.1.5 OK\r\n";
    }
    if (line == "DATA") {
        return "354 OK\r\n";
    }
    if (line == ".") {
        return "250 2.0.0 <a@example.org> Saved\r\n";
    }
    return "250 2.0.0 OK\r\n";
}

lmtp::envelope envelope() {
    lmtp::envelope env;
    env.sender = lmtp::address{"s", "example.net"};
    env.recipients.push_back(lmtp::address{"a", "example.org"});
    return env;
}

using namespace std::chrono_literals;

/// Sends one copy of `body`; the reply for the recipient.
outcome relay_one(next_hop& hop, const std::string& body) {
    auto env = envelope();
    auto begun = hop.begin(env, env.recipients[0]);
    if (auto* refused = std::get_if<outcome>(&begun)) {
        return *refused;
    }
    auto& transfer = std::get<copy_transfer>(begun);
    if (auto failed = transfer.write(body)) {
        return *failed;
    }
    return transfer.finish();
}

TEST(NextHop, DeliversAndReusesTheConnection) {
    scripted_server server([](const std::string& line, int) { return well_behaved(line); });
    next_hop hop(server.address(), 5s, 5s, 4, "mailseal.test");
    for (int i = 0; i < 3; ++i) {
        auto result = relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
        EXPECT_EQ(result.reply.summary(), "250 2.0.0 <a@example.org> Saved") << result.detail;
    }
    EXPECT_EQ(server.connections(), 1);
    EXPECT_EQ(server.messages().size(), 3u);
}

TEST(NextHop, DotsAreStuffedAcrossWritesAndLongLines) {
    scripted_server server([](const std::string& line, int) { return well_behaved(line); });
    next_hop hop(server.address(), 5s, 5s, 4, "mailseal.test");
    auto env = envelope();
    auto begun = hop.begin(env, env.recipients[0]);
    ASSERT_TRUE(std::holds_alternative<copy_transfer>(begun));
    auto& transfer = std::get<copy_transfer>(begun);
    std::string long_line(200 * 1024, 'x'); // longer than the send buffer
    for (std::string_view piece :
         {"Subject: dots\r\n\r\n.one\r\n", "\r", "\n", ".", "two\r\n", "..\r\n", ".", "\r\n"}) {
        ASSERT_FALSE(transfer.write(piece));
    }
    ASSERT_FALSE(transfer.write(long_line));
    ASSERT_FALSE(transfer.write("\r\n.last"));
    auto result = transfer.finish();
    EXPECT_TRUE(result.reply.positive()) << result.detail;
    auto got = server.messages();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], "Subject: dots\r\n\r\n..one\r\n\r\n..two\r\n...\r\n..\r\n" + long_line +
                          "\r\n..last\r\n");
}

TEST(NextHop, A250ToDataIsNeverA250ForTheMessage) {
    scripted_server server([](const std::string& line, int) {
        return line == "DATA" ? std::string("250 2.0.0 huh\r\n") : well_behaved(line);
    });
    next_hop hop(server.address(), 5s, 5s, 4, "mailseal.test");
    auto result = relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
    EXPECT_EQ(result.reply.code(), 451);
    EXPECT_EQ(result.reply.enhanced()->str(), "4.5.0");
    EXPECT_TRUE(server.messages().empty());
}

TEST(NextHop, A354AfterTheDotIsNoVerdict) {
    scripted_server server([](const std::string& line, int) {
        return line == "." ? std::string("354 again\r\n") : well_behaved(line);
    });
    next_hop hop(server.address(), 5s, 5s, 4, "mailseal.test");
    auto result = relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
    EXPECT_EQ(result.reply.summary(), "451 4.5.0 Next hop sent an invalid reply, try again later");
}

TEST(NextHop, ExtraRepliesMakeAConnectionUnfitForReuse) {
    scripted_server server([](const std::string& line, int) {
        return line == "." ? std::string("250 2.0.0 Saved\r\n250 2.0.0 extra\r\n")
                           : well_behaved(line);
    });
    next_hop hop(server.address(), 5s, 5s, 4, "mailseal.test");
    for (int i = 0; i < 2; ++i) {
        auto result = relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
        EXPECT_EQ(result.reply.summary(), "250 2.0.0 Saved") << result.detail;
    }
    EXPECT_EQ(server.connections(), 2) << "the out-of-step connection was not reused";
    EXPECT_EQ(server.messages().size(), 2u);
}

TEST(NextHop, RefusalsPassThroughUnchangedAndDataAfterThemIsLeftAlone) {
    // A pipelining server that refuses the RCPT and still opens DATA (RFC 2920 allows it):
    // the refusal is the answer, at once, and the half-open data phase is not reused.
    scripted_server server([](const std::string& line, int) {
        if (line.starts_with("RCPT")) {
            return std::string("452 4.2.2 <a@example.org> Quota exceeded\r\n");
        }
        return well_behaved(line);
    });
    next_hop hop(server.address(), 5s, 5s, 4, "mailseal.test");
    auto started = std::chrono::steady_clock::now();
    auto result = relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
    EXPECT_EQ(result.reply.render(), "452 4.2.2 <a@example.org> Quota exceeded\r\n");
    relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
    EXPECT_EQ(server.connections(), 2);
}

TEST(NextHop, A421OnAnIdleConnectionIsRetriedOnAFreshOne) {
    scripted_server server([](const std::string& line, int connection) {
        if (connection == 1 && line.starts_with("MAIL") &&
            line.find("second") != std::string::npos) {
            return std::string("421 4.3.2 shutting down\r\n");
        }
        return well_behaved(line);
    });
    next_hop hop(server.address(), 5s, 5s, 4, "mailseal.test");
    auto env = envelope();
    auto first = relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
    EXPECT_TRUE(first.reply.positive()) << first.detail;
    env.sender = lmtp::address{"second", "example.net"};
    auto begun = hop.begin(env, env.recipients[0]);
    ASSERT_TRUE(std::holds_alternative<copy_transfer>(begun)) << std::get<outcome>(begun).detail;
    auto& transfer = std::get<copy_transfer>(begun);
    ASSERT_FALSE(transfer.write("Subject: y\r\n\r\nbody\r\n"));
    EXPECT_TRUE(transfer.finish().reply.positive());
    EXPECT_EQ(server.connections(), 2);
}

TEST(NextHop, ANextHopThatIsNotThereIs451_4_4_1) {
    next_hop hop(config::unix_listener{"/nonexistent/lmtp", 0600, {}, {}}, 5s, 5s, 4,
                 "mailseal.test");
    auto result = relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
    EXPECT_EQ(result.reply.summary(), "451 4.4.1 Next hop not answering, try again later");
    EXPECT_NE(result.detail.find("connect"), std::string::npos) << result.detail;
}

TEST(NextHop, ASilentNextHopTimesOut) {
    scripted_server server([](const std::string& line, int) {
        return line == "." ? std::string() : well_behaved(line);
    });
    next_hop hop(server.address(), 5s, 1s, 4, "mailseal.test");
    auto started = std::chrono::steady_clock::now();
    auto result = relay_one(hop, "Subject: x\r\n\r\nbody\r\n");
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(result.reply.summary(), "451 4.4.2 Connection to next hop lost, try again later");
    EXPECT_GE(took, 1s);
    EXPECT_LT(took, 4s) << "data_done_timeout, not timeout, bounds the final reply";
}

} // namespace
} // namespace mailseal::relay
