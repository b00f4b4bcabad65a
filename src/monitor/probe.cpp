// SPDX-License-Identifier: Apache-2.0
// The STARTTLS probe: the few SMTP steps up to a TLS handshake, on a non-blocking socket with
// one deadline for the whole exchange. A one-shot tool talking to one server needs no event
// loop.

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

using clock = std::chrono::steady_clock;

/// A reply longer than this is not an SMTP server's.
constexpr std::size_t max_reply = 64 * 1024;

/// Waits until `fd` is ready for `events` or the deadline passes: false on a timeout.
bool wait_for(int fd, short events, clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd waiting{fd, events, 0};
        int ready = ::poll(&waiting, 1, static_cast<int>(left.count()));
        if (ready > 0) {
            return true;
        }
        if (ready < 0 && errno != EINTR) {
            return false;
        }
    }
}

/// An SMTP reply: its code and its lines' texts.
struct reply {
    int code = 0;
    std::vector<std::string> lines;
};

/// The plaintext SMTP dialogue up to STARTTLS, every step bounded by the probe's deadline (a
/// server trickling bytes cannot stretch it).
class connection {
public:
    connection(util::unique_fd fd, clock::time_point deadline)
        : fd_(std::move(fd)), deadline_(deadline) {}

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
                if (!wait_for(fd_.get(), POLLIN, deadline_)) {
                    why = "timed out";
                    return std::nullopt;
                }
                char chunk[4096];
                ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
                if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
                    continue;
                }
                if (n <= 0) {
                    why = n == 0 ? "connection closed" : util::errno_text(errno);
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
            if (!wait_for(fd_.get(), POLLOUT, deadline_)) {
                why = "timed out";
                return false;
            }
            ssize_t n = ::send(fd_.get(), text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
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
    clock::time_point deadline_;
    std::string buffer_;
};

std::variant<util::unique_fd, std::string>
connect_to(const std::string& address, std::uint16_t port, clock::time_point deadline) {
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
        if (!wait_for(fd.get(), POLLOUT, deadline)) {
            return "connect: timed out";
        }
        int err = 0;
        socklen_t err_length = sizeof err;
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_length);
        if (err != 0) {
            return "connect: " + util::errno_text(err);
        }
    }
    return fd;
}

std::string openssl_error(const char* otherwise) {
    auto code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) {
        return otherwise;
    }
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

/// The signature algorithms offered: all by default, else one kind, so that a server with
/// certificates of both kinds picks the other one.
const char* signature_algorithms(signature_kind kind) {
    switch (kind) {
    case signature_kind::any:
        return nullptr;
    case signature_kind::ecdsa:
        return "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:ecdsa_secp521r1_sha512";
    case signature_kind::rsa:
        return "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:rsa_pkcs1_sha256:"
               "rsa_pkcs1_sha384:rsa_pkcs1_sha512";
    }
    return nullptr;
}

} // namespace

std::variant<served_chain, std::string> probe(const std::string& host, const std::string& address,
                                              std::uint16_t port, const std::string& ehlo_name,
                                              std::chrono::seconds timeout, signature_kind kind) {
    std::string where = address.find(':') == std::string::npos
                            ? address + ":" + std::to_string(port)
                            : "[" + address + "]:" + std::to_string(port);
    auto deadline = clock::now() + timeout;
    auto connected = connect_to(address, port, deadline);
    if (auto* why = std::get_if<std::string>(&connected)) {
        return where + ": " + *why;
    }
    connection smtp(std::move(std::get<util::unique_fd>(connected)), deadline);
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
        return where + ": " + openssl_error("cannot set up TLS");
    }
    // Any chain is taken: judging it against the TLSA records is what the probe is for.
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr);
    std::unique_ptr<SSL, ssl_deleter> tls(SSL_new(context.get()));
    // SSL_set_tlsext_host_name and SSL_set1_sigalgs_list are macros with C casts; these are the
    // calls they stand for.
    if (!tls || SSL_set_fd(tls.get(), smtp.fd()) != 1 ||
        SSL_ctrl(tls.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(host.c_str())) != 1) {
        return where + ": " + openssl_error("cannot set up TLS");
    }
    if (const char* algorithms = signature_algorithms(kind);
        algorithms != nullptr &&
        SSL_ctrl(tls.get(), SSL_CTRL_SET_SIGALGS_LIST, 0, const_cast<char*>(algorithms)) != 1) {
        return where + ": " + openssl_error("cannot set the signature algorithms");
    }
    for (;;) {
        int done = SSL_connect(tls.get());
        if (done == 1) {
            break;
        }
        int wants = SSL_get_error(tls.get(), done);
        short events = wants == SSL_ERROR_WANT_READ    ? POLLIN
                       : wants == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                       : 0;
        if (events == 0) {
            return where + ": TLS handshake: " + openssl_error("handshake failed");
        }
        if (!wait_for(smtp.fd(), events, deadline)) {
            return where + ": TLS handshake: timed out";
        }
    }
    served_chain chain{"probe " + where, {}};
    // On the client side the peer chain starts with the server's own certificate.
    STACK_OF(X509)* presented = SSL_get_peer_cert_chain(tls.get());
    for (int i = 0; presented != nullptr && i < sk_X509_num(presented); ++i) {
        X509* cert = sk_X509_value(presented, i);
        X509_up_ref(cert);
        chain.certificates.emplace_back(cert, seal::smime::deleter<X509>{});
    }
    // Goodbye without waiting: the chain is what was wanted.
    const char quit[] = "QUIT\r\n";
    SSL_write(tls.get(), quit, sizeof quit - 1);
    SSL_shutdown(tls.get());
    if (chain.certificates.empty()) {
        return where + ": the server presented no certificate";
    }
    return chain;
}

} // namespace mailseal::monitor
