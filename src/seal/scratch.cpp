// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <mailseal/seal/scratch.hpp>
#include <mailseal/util/errno_text.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::seal {
namespace {

struct cipher_ctx_deleter {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

constexpr std::size_t chunk_size = 64 * 1024;

} // namespace

struct encrypted_scratch::cipher {
    std::array<unsigned char, 32> key{};
    std::array<unsigned char, 16> iv{};
    cipher_ctx encrypt;

    ~cipher() {
        ::explicit_bzero(key.data(), key.size());
        ::explicit_bzero(iv.data(), iv.size());
    }

    cipher_ctx start() const {
        cipher_ctx c(EVP_CIPHER_CTX_new());
        if (c &&
            EVP_EncryptInit_ex(c.get(), EVP_aes_256_ctr(), nullptr, key.data(), iv.data()) != 1) {
            c.reset();
        }
        return c;
    }
};

std::filesystem::path encrypted_scratch::default_directory() {
    const char* tmpdir = std::getenv("TMPDIR");
    return tmpdir != nullptr && *tmpdir == '/' ? std::filesystem::path(tmpdir)
                                               : std::filesystem::path("/var/tmp");
}

std::variant<encrypted_scratch, std::string>
encrypted_scratch::create(const std::filesystem::path& directory) {
    util::unique_fd fd(::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) {
        return "scratch file in " + directory.string() + ": " + util::errno_text(errno);
    }
    auto c = std::make_unique<cipher>();
    if (RAND_bytes(c->key.data(), static_cast<int>(c->key.size())) != 1 ||
        RAND_bytes(c->iv.data(), static_cast<int>(c->iv.size())) != 1) {
        return std::string("scratch file: no random key");
    }
    c->encrypt = c->start();
    if (!c->encrypt) {
        return std::string("scratch file: AES-256-CTR unavailable");
    }
    return encrypted_scratch(std::move(fd), std::move(c));
}

encrypted_scratch::encrypted_scratch(util::unique_fd fd, std::unique_ptr<cipher> c)
    : fd_(std::move(fd)), cipher_(std::move(c)) {}

encrypted_scratch::encrypted_scratch(encrypted_scratch&&) noexcept = default;
encrypted_scratch& encrypted_scratch::operator=(encrypted_scratch&&) noexcept = default;
encrypted_scratch::~encrypted_scratch() = default;

std::optional<std::string> encrypted_scratch::append(std::string_view plain) {
    std::array<unsigned char, chunk_size> out{};
    while (!plain.empty()) {
        auto n = std::min(plain.size(), out.size());
        int produced = 0;
        if (EVP_EncryptUpdate(cipher_->encrypt.get(), out.data(), &produced,
                              reinterpret_cast<const unsigned char*>(plain.data()),
                              static_cast<int>(n)) != 1) {
            return std::string("scratch file: encryption failed");
        }
        plain.remove_prefix(n);
        std::size_t written = 0;
        while (written < static_cast<std::size_t>(produced)) {
            auto w = ::write(fd_.get(), out.data() + written,
                             static_cast<std::size_t>(produced) - written);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w < 0) {
                return "scratch file: " + util::errno_text(errno);
            }
            written += static_cast<std::size_t>(w);
        }
        size_ += written;
    }
    return std::nullopt;
}

std::optional<std::string>
encrypted_scratch::replay(const std::function<void(std::string_view)>& each) {
    auto decrypt = cipher_->start(); // CTR: the same keystream from the start
    if (!decrypt) {
        return std::string("scratch file: AES-256-CTR unavailable");
    }
    std::array<unsigned char, chunk_size> in{};
    std::string plain(chunk_size, '\0');
    std::uint64_t offset = 0;
    std::optional<std::string> problem;
    while (offset < size_ && !problem) {
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), size_ - offset));
        auto got = ::pread(fd_.get(), in.data(), want, static_cast<off_t>(offset));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            problem = "scratch file: " + (got < 0 ? util::errno_text(errno) : "ends early");
            break;
        }
        int produced = 0;
        if (EVP_EncryptUpdate(decrypt.get(), reinterpret_cast<unsigned char*>(plain.data()),
                              &produced, in.data(), static_cast<int>(got)) != 1) {
            problem = "scratch file: decryption failed";
            break;
        }
        offset += static_cast<std::uint64_t>(got);
        each(std::string_view(plain.data(), static_cast<std::size_t>(produced)));
        ::explicit_bzero(plain.data(), plain.size());
    }
    ::explicit_bzero(plain.data(), plain.size());
    return problem;
}

} // namespace mailseal::seal
