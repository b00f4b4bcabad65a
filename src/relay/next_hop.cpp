// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <mailseal/metrics/metrics.hpp>
#include <mailseal/relay/next_hop.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/errno_text.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::relay {
namespace {

/// Our reply for a copy the next hop did not take, counted by why (metrics::relay_error_names).
outcome failure(std::string_view kind, lmtp::reply reply, std::string detail) {
    metrics::global().relay_error(kind);
    return outcome{std::move(reply), std::move(detail)};
}

/// The next hop's own verdict, passed on; a refusal is counted.
outcome answer_of_next_hop(lmtp::reply reply, std::string detail) {
    if (!reply.positive()) {
        metrics::global().relay_error(reply.code() >= 500 ? "refused-permanent"
                                                          : "refused-temporary");
    }
    return outcome{std::move(reply), std::move(detail)};
}

/// A connection idle longer than this is closed rather than reused: Dovecot's LMTP server
/// drops idle clients after a while, and an old connection is likelier to be half-dead.
constexpr std::chrono::seconds max_idle_age{60};
/// Connecting gets at most this long, however long the per-reply timeout is: a next hop
/// that does not accept within it is down.
constexpr std::chrono::seconds max_connect_time{30};
/// Dot-stuffed data is sent in pieces of about this size.
constexpr std::size_t send_chunk = 64 * 1024;

std::string address_name(const config::listener& address) {
    bool is_unix = std::holds_alternative<config::unix_listener>(address);
    return (is_unix ? "unix:" : "tcp:") + config::endpoint_text(address);
}

/// Rounded up: poll() would otherwise wake up to a millisecond before the deadline, and a
/// timeout would end sooner than configured.
int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count(), 0));
}

/// Waits for `events` on fd until the deadline; an error text on timeout or failure.
std::optional<std::string> wait_for(int fd, short events,
                                    std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, remaining_ms(deadline));
        if (n > 0) {
            return std::nullopt;
        }
        if (n == 0) {
            if (std::chrono::steady_clock::now() < deadline) {
                continue;
            }
            return std::string("timed out");
        }
        if (errno != EINTR) {
            return "poll: " + util::errno_text(errno);
        }
    }
}

std::variant<util::unique_fd, std::string> connect_to(const config::listener& address,
                                                      std::chrono::seconds timeout) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    int family = AF_UNIX;
    if (const auto* u = std::get_if<config::unix_listener>(&address)) {
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        const std::string& path = u->path.string();
        if (path.size() >= sizeof sun.sun_path) {
            return std::string("socket path too long");
        }
        std::copy(path.begin(), path.end(), sun.sun_path);
        length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
        std::memcpy(&storage, &sun, sizeof sun);
    } else {
        const auto& t = std::get<config::tcp_listener>(address);
        sockaddr_in v4{};
        sockaddr_in6 v6{};
        if (::inet_pton(AF_INET, t.address.c_str(), &v4.sin_addr) == 1) {
            family = AF_INET;
            v4.sin_family = AF_INET;
            v4.sin_port = htons(t.port);
            length = sizeof v4;
            std::memcpy(&storage, &v4, sizeof v4);
        } else if (::inet_pton(AF_INET6, t.address.c_str(), &v6.sin6_addr) == 1) {
            family = AF_INET6;
            v6.sin6_family = AF_INET6;
            v6.sin6_port = htons(t.port);
            length = sizeof v6;
            std::memcpy(&storage, &v6, sizeof v6);
        } else {
            return "not a numeric address: " + t.address;
        }
    }
    util::unique_fd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return "socket: " + util::errno_text(errno);
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0) {
        // A unix socket answers EAGAIN when its listen backlog is full: the server is busy,
        // not connecting (only TCP says EINPROGRESS).
        if (errno == EAGAIN && family == AF_UNIX) {
            return std::string("connect: listen queue full (the next hop is at its process "
                               "limit)");
        }
        if (errno != EINPROGRESS) {
            return "connect: " + util::errno_text(errno);
        }
        auto deadline = std::chrono::steady_clock::now() + std::min(timeout, max_connect_time);
        if (auto problem = wait_for(fd.get(), POLLOUT, deadline)) {
            return "connect: " + *problem;
        }
        int err = 0;
        socklen_t err_length = sizeof err;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_length) != 0) {
            err = errno;
        }
        if (err != 0) {
            return "connect: " + util::errno_text(err);
        }
    }
    return fd;
}

} // namespace

connection::connection(util::unique_fd fd, std::chrono::seconds timeout)
    : idle_since(std::chrono::steady_clock::now()), fd_(std::move(fd)), timeout_(timeout) {}

std::variant<connection, std::string> connection::open(const config::listener& address,
                                                       std::chrono::seconds timeout,
                                                       const std::string& hostname) {
    auto connected = connect_to(address, timeout);
    if (auto* problem = std::get_if<std::string>(&connected)) {
        return std::move(*problem);
    }
    connection conn(std::move(std::get<util::unique_fd>(connected)), timeout);
    auto greeting = conn.read_reply();
    if (auto* problem = std::get_if<std::string>(&greeting)) {
        return "greeting: " + *problem;
    }
    if (std::get<peer_reply>(greeting).code != 220) {
        return "greeting: " + std::get<peer_reply>(greeting).summary();
    }
    if (auto problem = conn.send("LHLO " + hostname + "\r\n")) {
        return "LHLO: " + *problem;
    }
    auto lhlo = conn.read_reply();
    if (auto* problem = std::get_if<std::string>(&lhlo)) {
        return "LHLO: " + *problem;
    }
    const auto& capabilities = std::get<peer_reply>(lhlo);
    if (capabilities.code != 250) {
        return "LHLO: " + capabilities.summary();
    }
    // The first line is the server's name; each later one a keyword and its parameters.
    for (std::size_t i = 1; i < capabilities.lines.size(); ++i) {
        std::string_view line = capabilities.lines[i];
        auto keyword = util::ascii_lower(line.substr(0, line.find(' ')));
        conn.pipelining |= keyword == "pipelining";
        conn.eight_bit_mime |= keyword == "8bitmime";
        conn.smtputf8 |= keyword == "smtputf8";
    }
    return conn;
}

std::optional<std::string> connection::send(std::string_view bytes) {
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (auto problem = wait_for(fd_.get(), POLLOUT, deadline)) {
                return "write: " + *problem;
            }
            continue;
        }
        return "write: " + util::errno_text(errno);
    }
    return std::nullopt;
}

std::variant<peer_reply, std::string> connection::read_reply(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buffer[4096];
    for (;;) {
        if (auto parsed = parser_.next()) {
            if (auto* problem = std::get_if<std::string>(&*parsed)) {
                return "bad reply: " + *problem;
            }
            return std::get<peer_reply>(std::move(*parsed));
        }
        // Also for a server that trickles bytes: the deadline is for the whole reply.
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::string("reply: timed out");
        }
        ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
        if (n > 0) {
            parser_.feed(std::string_view(buffer, static_cast<std::size_t>(n)));
            continue;
        }
        if (n == 0) {
            return std::string("connection closed by the next hop");
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (auto problem = wait_for(fd_.get(), POLLIN, deadline)) {
                return "reply: " + *problem;
            }
            continue;
        }
        return "read: " + util::errno_text(errno);
    }
}

bool connection::reusable() const {
    pollfd p{fd_.get(), POLLIN, 0};
    return parser_.drained() && ::poll(&p, 1, 0) == 0;
}

copy_transfer::copy_transfer(next_hop& hop, connection conn)
    : hop_(&hop), connection_(std::move(conn)) {
    buffer_.reserve(send_chunk);
}

copy_transfer::copy_transfer(copy_transfer&& other) noexcept
    : hop_(other.hop_), connection_(std::move(other.connection_)),
      buffer_(std::move(other.buffer_)), at_line_start_(other.at_line_start_) {
    other.connection_.reset();
}

copy_transfer& copy_transfer::operator=(copy_transfer&& other) noexcept {
    if (this != &other) {
        util::wipe(buffer_);
        hop_ = other.hop_;
        connection_ = std::move(other.connection_);
        other.connection_.reset();
        buffer_ = std::move(other.buffer_);
        at_line_start_ = other.at_line_start_;
    }
    return *this;
}

copy_transfer::~copy_transfer() {
    util::wipe(buffer_);
}

outcome copy_transfer::lost(const std::string& why) {
    connection_.reset();
    util::wipe(buffer_);
    return failure("lost", lmtp::replies::next_hop_lost, hop_->name() + ": " + why);
}

std::optional<outcome> copy_transfer::flush() {
    if (buffer_.empty()) {
        return std::nullopt;
    }
    auto problem = connection_->send(buffer_);
    util::wipe(buffer_);
    if (problem) {
        return lost(*problem);
    }
    return std::nullopt;
}

std::optional<outcome> copy_transfer::append(std::string_view bytes) {
    while (!bytes.empty()) {
        if (buffer_.size() == buffer_.capacity()) {
            if (auto failed = flush()) {
                return failed;
            }
        }
        auto room = std::min(buffer_.capacity() - buffer_.size(), bytes.size());
        buffer_.append(bytes.substr(0, room));
        bytes.remove_prefix(room);
    }
    return std::nullopt;
}

std::optional<outcome> copy_transfer::write(std::string_view bytes) {
    if (!connection_) {
        return failure("lost", lmtp::replies::next_hop_lost,
                       hop_->name() + ": transfer already ended");
    }
    // RFC 5321 §4.5.2: a line that starts with "." gets another one. Lines end at LF, so a
    // bare LF (kept from the original) also starts a line, as Dovecot's reader takes it.
    while (!bytes.empty()) {
        if (at_line_start_ && bytes.front() == '.') {
            if (auto failed = append(".")) {
                return failed;
            }
        }
        auto lf = bytes.find('\n');
        auto piece = lf == std::string_view::npos ? bytes : bytes.substr(0, lf + 1);
        if (auto failed = append(piece)) {
            return failed;
        }
        at_line_start_ = lf != std::string_view::npos;
        bytes.remove_prefix(piece.size());
    }
    return std::nullopt;
}

outcome copy_transfer::finish() {
    if (!connection_) {
        return failure("lost", lmtp::replies::next_hop_lost,
                       hop_->name() + ": transfer already ended");
    }
    // The data must end with a line break before the final dot.
    auto failed = append(at_line_start_ ? ".\r\n" : "\r\n.\r\n");
    if (!failed) {
        failed = flush();
    }
    if (failed) {
        return *failed;
    }
    auto answer = connection_->read_reply(hop_->data_done_timeout_);
    if (auto* problem = std::get_if<std::string>(&answer)) {
        return lost(*problem);
    }
    const auto& verdict = std::get<peer_reply>(answer);
    std::string detail = hop_->name() + ": " + verdict.summary();
    // Only 2xx, 4xx and 5xx are verdicts: anything else is a confused server, never a 250.
    auto passed_on = verdict.code / 100 == 3 ? std::nullopt : verdict.to_reply();
    if (!passed_on) {
        connection_.reset();
        return failure("protocol", lmtp::replies::next_hop_confused, detail);
    }
    // The transaction is over either way; the connection can carry the next one.
    hop_->give_back(std::move(*connection_));
    connection_.reset();
    return answer_of_next_hop(std::move(*passed_on), detail);
}

next_hop::next_hop(config::listener address, std::chrono::seconds timeout,
                   std::chrono::seconds data_done_timeout, std::size_t idle_limit,
                   std::string hostname)
    : address_(std::move(address)), name_(address_name(address_)), timeout_(timeout),
      data_done_timeout_(data_done_timeout), idle_limit_(idle_limit),
      hostname_(std::move(hostname)) {}

next_hop::~next_hop() = default;

std::optional<connection> next_hop::take_idle() {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    while (!idle_.empty()) {
        connection conn = std::move(idle_.back());
        idle_.pop_back();
        if (now - conn.idle_since < max_idle_age && conn.reusable()) {
            return conn;
        }
    }
    return std::nullopt;
}

void next_hop::give_back(connection conn) {
    if (!conn.reusable()) {
        return;
    }
    std::lock_guard lock(mutex_);
    if (idle_.size() < idle_limit_) {
        conn.idle_since = std::chrono::steady_clock::now();
        idle_.push_back(std::move(conn));
    }
}

std::variant<copy_transfer, outcome, next_hop::stale>
next_hop::attempt(connection conn, const lmtp::envelope& env, const lmtp::address& recipient,
                  bool reused) {
    std::string mail = "MAIL FROM:" + lmtp::path_text(env.sender);
    if (env.parameters.body == lmtp::body_type::eight_bit_mime && conn.eight_bit_mime) {
        mail += " BODY=8BITMIME";
    }
    if (env.parameters.smtputf8 && conn.smtputf8) {
        mail += " SMTPUTF8";
    }
    const std::string commands[] = {mail + "\r\n", "RCPT TO:<" + recipient.str() + ">\r\n",
                                    "DATA\r\n"};
    const char* steps[] = {"MAIL FROM", "RCPT TO", "DATA"};

    std::optional<std::string> problem;
    if (conn.pipelining) {
        problem = conn.send(commands[0] + commands[1] + commands[2]);
    }
    std::optional<peer_reply> refusal;
    const char* refused_at = nullptr;
    bool data_opened_after_refusal = false;
    for (std::size_t i = 0; i < 3 && !problem; ++i) {
        if (!conn.pipelining) {
            if (refusal) {
                break; // no DATA after a refused MAIL or RCPT
            }
            problem = conn.send(commands[i]);
            if (problem) {
                break;
            }
        }
        auto answer = conn.read_reply();
        if (auto* failed = std::get_if<std::string>(&answer)) {
            problem = *failed;
            break;
        }
        auto& r = std::get<peer_reply>(answer);
        // A server closing an idle connection says 421 to whatever comes first.
        if (reused && i == 0 && r.code == 421) {
            return stale{r.summary()};
        }
        bool expected = i < 2 ? r.code / 100 == 2 : r.code == 354;
        if (i == 2 && r.code == 354 && refusal) {
            // RFC 2920 lets a server take DATA after refusing every RCPT; the data phase it
            // opened can only be left by closing the connection.
            data_opened_after_refusal = true;
        }
        if (!expected && !refusal) {
            refusal = std::move(r);
            refused_at = steps[i];
        }
    }
    if (problem) {
        if (reused) {
            return stale{*problem};
        }
        return failure("lost", lmtp::replies::next_hop_lost, name_ + ": " + *problem);
    }
    if (!refusal) {
        return copy_transfer(*this, std::move(conn));
    }
    std::string detail = name_ + ": " + refused_at + ": " + refusal->summary();
    // Only a 4xx or 5xx is a refusal to pass on; any other unexpected reply (a 250 to DATA, a
    // 354 to RCPT) means the server and we disagree on where we are: never a 250 for mail
    // the next hop did not take.
    auto passed_on = refusal->code >= 400 ? refusal->to_reply() : std::nullopt;
    if (!passed_on) {
        return failure("protocol", lmtp::replies::next_hop_confused, detail);
    }
    // The server may hold a half-made transaction (MAIL accepted): RSET clears it for reuse.
    if (!data_opened_after_refusal && !conn.send("RSET\r\n")) {
        auto reset = conn.read_reply();
        if (auto* r = std::get_if<peer_reply>(&reset); r && r->code / 100 == 2) {
            give_back(std::move(conn));
        }
    }
    return answer_of_next_hop(std::move(*passed_on), detail);
}

std::variant<copy_transfer, outcome> next_hop::begin(const lmtp::envelope& env,
                                                     const lmtp::address& recipient) {
    std::string stale_reason;
    for (int round = 0; round < 2; ++round) {
        auto conn = round == 0 ? take_idle() : std::nullopt;
        bool reused = conn.has_value();
        if (!conn) {
            auto opened = connection::open(address_, timeout_, hostname_);
            if (auto* problem = std::get_if<std::string>(&opened)) {
                std::string detail = name_ + ": " + *problem;
                if (!stale_reason.empty()) {
                    detail += " (after a reused connection failed: " + stale_reason + ")";
                }
                return failure("unavailable", lmtp::replies::next_hop_unavailable, detail);
            }
            conn.emplace(std::move(std::get<connection>(opened)));
        }
        auto result = attempt(std::move(*conn), env, recipient, reused);
        if (auto* gone = std::get_if<stale>(&result)) {
            stale_reason = gone->why;
            continue;
        }
        if (auto* transfer = std::get_if<copy_transfer>(&result)) {
            return std::move(*transfer);
        }
        return std::get<outcome>(std::move(result));
    }
    return failure("lost", lmtp::replies::next_hop_lost, name_ + ": " + stale_reason);
}

} // namespace mailseal::relay
