// The STARTTLS probe: the few SMTP steps up to a TLS handshake, on a blocking socket with
// send and receive timeouts. A one-shot tool talking to one server needs no event loop.

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <mailseal/monitor/chain.hpp>
#include <mailseal/seal/smime/openssl.hpp>
#include <mailseal/util/errno_text.hpp>
#include <mailseal/util/unique_fd.hpp>

namespace mailseal::monitor {
namespace {

struct ssl_ctx_deleter {
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct ssl_deleter {
    void operator()(SSL* p) const noexcept { SSL_free(p); }
};

/// A reply longer than this is not an SMTP server's.
constexpr std::size_t max_reply = 64 * 1024;

/// An SMTP reply: its code and its lines' texts.
struct reply {
    int code = 0;
    std::vector<std::string> lines;
};

class connection {
public:
    explicit connection(util::unique_fd fd) : fd_(std::move(fd)) {}

    /// Reads one (multi-line) reply; nullopt on a timeout, a closed connection or garbage.
    std::optional<reply> read_reply(std::string& why) {
        reply r;
        for (;;) {
            auto newline = buffer_.find('\n');
            while (newline == std::string::npos) {
                if (buffer_.size() > max_reply) {
                    why = "reply too long";
                    return std::nullopt;
                }
                char chunk[4096];
                ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0) {
                    why = n == 0 ? "connection closed"
                                 : (errno == EAGAIN ? "timed out" : util::errno_text(errno));
                    return std::nullopt;
                }
                buffer_.append(chunk, static_cast<std::size_t>(n));
                newline = buffer_.find('\n');
            }
            std::string line = buffer_.substr(0, newline);
            buffer_.erase(0, newline + 1);
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            if (line.size() < 3 || line.find_first_not_of("0123456789") < 3 ||
                (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
                why = "not an SMTP reply: " + line.substr(0, 80);
                return std::nullopt;
            }
            r.code = std::stoi(line.substr(0, 3));
            r.lines.push_back(line.size() > 4 ? line.substr(4) : "");
            if (line.size() == 3 || line[3] == ' ') {
                return r;
            }
        }
    }

    bool send(const std::string& text, std::string& why) {
        std::size_t sent = 0;
        while (sent < text.size()) {
            ssize_t n = ::send(fd_.get(), text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                why = util::errno_text(errno);
                return false;
            }
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }

    /// Data read past the last reply: a server may not send anything before the handshake.
    bool has_unread() const { return !buffer_.empty(); }
    int fd() const { return fd_.get(); }

private:
    util::unique_fd fd_;
    std::string buffer_;
};

std::variant<util::unique_fd, std::string>
connect_to(const std::string& address, std::uint16_t port, std::chrono::seconds timeout) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        length = sizeof *v4;
    } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        length = sizeof *v6;
    } else {
        return "not an IP address: " + address;
    }
    util::unique_fd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return "socket: " + util::errno_text(errno);
    }
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
        if (errno != EINPROGRESS) {
            return "connect: " + util::errno_text(errno);
        }
        pollfd waiting{fd.get(), POLLOUT, 0};
        int ready = ::poll(&waiting, 1, static_cast<int>(timeout.count() * 1000));
        if (ready == 0) {
            return "connect: timed out";
        }
        int err = 0;
        socklen_t err_length = sizeof err;
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_length);
        if (ready < 0 || err != 0) {
            return "connect: " + util::errno_text(ready < 0 ? errno : err);
        }
    }
    // Blocking from here on, each send and receive bounded by the timeout.
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    timeval limit{static_cast<time_t>(timeout.count()), 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    return fd;
}

std::string openssl_error() {
    auto code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) {
        return "handshake failed";
    }
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

} // namespace

std::variant<served_chain, std::string> probe(const std::string& host, const std::string& address,
                                              std::uint16_t port, const std::string& ehlo_name,
                                              std::chrono::seconds timeout) {
    std::string where = address.find(':') == std::string::npos
                            ? address + ":" + std::to_string(port)
                            : "[" + address + "]:" + std::to_string(port);
    auto connected = connect_to(address, port, timeout);
    if (auto* why = std::get_if<std::string>(&connected)) {
        return where + ": " + *why;
    }
    connection smtp(std::move(std::get<util::unique_fd>(connected)));
    std::string why;
    auto fail = [&](const std::string& step) { return where + ": " + step + ": " + why; };
    auto greeting = smtp.read_reply(why);
    if (!greeting) {
        return fail("greeting");
    }
    if (greeting->code != 220) {
        return where + ": greeting: " + std::to_string(greeting->code) + " " +
               greeting->lines.front();
    }
    if (!smtp.send("EHLO " + ehlo_name + "\r\n", why)) {
        return fail("EHLO");
    }
    auto ehlo = smtp.read_reply(why);
    if (!ehlo) {
        return fail("EHLO");
    }
    bool offers_starttls = false;
    for (const auto& line : ehlo->lines) {
        std::string upper;
        for (char c : line) {
            upper += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
        }
        offers_starttls = offers_starttls || upper == "STARTTLS";
    }
    if (ehlo->code != 250 || !offers_starttls) {
        return where + ": the server does not offer STARTTLS";
    }
    if (!smtp.send("STARTTLS\r\n", why)) {
        return fail("STARTTLS");
    }
    auto go_ahead = smtp.read_reply(why);
    if (!go_ahead) {
        return fail("STARTTLS");
    }
    if (go_ahead->code != 220 || smtp.has_unread()) {
        return where + ": STARTTLS refused: " + std::to_string(go_ahead->code);
    }
    std::unique_ptr<SSL_CTX, ssl_ctx_deleter> context(SSL_CTX_new(TLS_client_method()));
    if (!context) {
        return where + ": " + openssl_error();
    }
    // Any chain is taken: judging it against the TLSA records is what the probe is for.
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr);
    std::unique_ptr<SSL, ssl_deleter> tls(SSL_new(context.get()));
    // SSL_set_tlsext_host_name is a macro with a C cast; this is the call it stands for.
    if (!tls || SSL_set_fd(tls.get(), smtp.fd()) != 1 ||
        SSL_ctrl(tls.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(host.c_str())) != 1) {
        return where + ": " + openssl_error();
    }
    if (SSL_connect(tls.get()) != 1) {
        return where + ": TLS handshake: " + openssl_error();
    }
    served_chain chain{"probe " + where, {}};
    // On the client side the peer chain starts with the server's own certificate.
    STACK_OF(X509)* presented = SSL_get_peer_cert_chain(tls.get());
    for (int i = 0; presented != nullptr && i < sk_X509_num(presented); ++i) {
        X509* cert = sk_X509_value(presented, i);
        X509_up_ref(cert);
        chain.certificates.emplace_back(cert, seal::smime::deleter<X509>{});
    }
    const char quit[] = "QUIT\r\n";
    SSL_write(tls.get(), quit, sizeof quit - 1);
    SSL_shutdown(tls.get());
    if (chain.certificates.empty()) {
        return where + ": the server presented no certificate";
    }
    return chain;
}

} // namespace mailseal::monitor
