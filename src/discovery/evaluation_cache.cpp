// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <unistd.h>

#include <openssl/evp.h>

#include <mailseal/discovery/evaluation_cache.hpp>
#include <mailseal/util/unique_fd.hpp>

namespace mailseal::discovery {

namespace {

struct digest_context_deleter {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};

/// Feeds length-prefixed fields to a SHA-256 context, so that no two different sequences of
/// fields hash the same bytes.
class field_hasher {
public:
    field_hasher() : ctx_(EVP_MD_CTX_new()) {
        ok_ = ctx_ && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
    }

    void bytes(const void* data, std::size_t size) {
        number(size);
        raw(data, size);
    }
    void text(std::string_view s) { bytes(s.data(), s.size()); }
    /// Bytes whose length is fed after them (a stream of unknown length).
    void raw_bytes(const void* data, std::size_t size) { raw(data, size); }
    void number(std::uint64_t n) {
        unsigned char be[8];
        for (int i = 7; i >= 0; --i) {
            be[i] = static_cast<unsigned char>(n & 0xff);
            n >>= 8;
        }
        raw(be, sizeof be);
    }

    std::optional<evaluation_cache::identity> finish() {
        evaluation_cache::identity out{};
        unsigned int size = 0;
        if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), out.data(), &size) != 1 || size != out.size()) {
            return std::nullopt;
        }
        return out;
    }

private:
    void raw(const void* data, std::size_t size) {
        ok_ = ok_ && EVP_DigestUpdate(ctx_.get(), data, size) == 1;
    }

    std::unique_ptr<EVP_MD_CTX, digest_context_deleter> ctx_;
    bool ok_ = false;
};

/// Feeds a file's bytes; false when it cannot be read whole or is larger than any key file the
/// formats read (those are evaluated afresh, and reported).
bool hash_content(field_hasher& h, const std::filesystem::path& file) {
    constexpr std::size_t largest = 1u << 20;
    util::unique_fd fd{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
    if (!fd) {
        return false;
    }
    std::array<char, 16384> buffer;
    std::size_t total = 0;
    for (;;) {
        auto n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return false;
        }
        if (n == 0) {
            break;
        }
        total += static_cast<std::size_t>(n);
        if (total > largest) {
            return false;
        }
        h.raw_bytes(buffer.data(), static_cast<std::size_t>(n));
    }
    h.number(total);
    return true;
}

} // namespace

evaluation_cache::evaluation_cache(std::size_t capacity) : capacity_(capacity) {}

std::size_t evaluation_cache::digest_hash::operator()(const identity& id) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, id.data(), sizeof h);
    return h;
}

std::optional<evaluation_cache::identity>
evaluation_cache::identify(const seal::format& format, std::string_view address,
                           const dns::lookup_result& lookup,
                           const std::vector<std::filesystem::path>& local_files) {
    field_hasher h;
    h.number(static_cast<std::uint64_t>(format.id()));
    h.text(address);
    h.number(static_cast<std::uint64_t>(lookup.result));
    h.text(lookup.owner);
    h.number(lookup.rr_type);
    h.number(lookup.rdata.size());
    for (const auto& rdata : lookup.rdata) {
        h.bytes(rdata.data(), rdata.size());
    }
    // The files' content, not their times: a rewrite within one timestamp tick, or attributes
    // a network file system caches, would hide a change. Hashing a key file costs far less
    // than parsing it.
    h.number(local_files.size());
    for (const auto& file : local_files) {
        h.text(file.native());
        if (!hash_content(h, file)) {
            return std::nullopt;
        }
    }
    return h.finish();
}

std::optional<seal::evaluation> evaluation_cache::find(const identity& id,
                                                       std::chrono::system_clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end()) {
        return std::nullopt;
    }
    auto& e = it->second;
    if (std::chrono::steady_clock::now() >= e.expires || (e.changes_at && now >= *e.changes_at)) {
        recency_.erase(e.recency);
        entries_.erase(it);
        return std::nullopt;
    }
    recency_.splice(recency_.begin(), recency_, e.recency);
    return e.evaluation;
}

void evaluation_cache::store(const identity& id, const seal::evaluation& ev,
                             std::chrono::system_clock::time_point now, std::uint32_t ttl) {
    // A local file that could not be read now may be readable for the next message.
    if (capacity_ == 0 || ttl == 0 || ev.provisional || !ev.local_problems.empty() ||
        (ev.changes_at && now >= *ev.changes_at)) {
        return;
    }
    auto expires = std::chrono::steady_clock::now() + std::chrono::seconds(ttl);
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(id); it != entries_.end()) {
        it->second.evaluation = ev;
        it->second.expires = expires;
        it->second.changes_at = ev.changes_at;
        recency_.splice(recency_.begin(), recency_, it->second.recency);
        return;
    }
    if (entries_.size() >= capacity_) {
        entries_.erase(recency_.back());
        recency_.pop_back();
    }
    recency_.push_front(id);
    entries_.emplace(id, entry{ev, expires, ev.changes_at, recency_.begin()});
}

std::size_t evaluation_cache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

} // namespace mailseal::discovery
