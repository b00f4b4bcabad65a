#include <cstring>
#include <memory>
#include <sys/stat.h>

#include <openssl/evp.h>

#include <mailseal/discovery/evaluation_cache.hpp>

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
    // A file rewritten in place changes its size or times; one replaced by rename changes its
    // inode.
    h.number(local_files.size());
    for (const auto& file : local_files) {
        struct stat st {};
        if (::stat(file.c_str(), &st) != 0) {
            return std::nullopt;
        }
        h.text(file.native());
        for (auto n :
             {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
              static_cast<std::uint64_t>(st.st_size), static_cast<std::uint64_t>(st.st_mtim.tv_sec),
              static_cast<std::uint64_t>(st.st_mtim.tv_nsec),
              static_cast<std::uint64_t>(st.st_ctim.tv_sec),
              static_cast<std::uint64_t>(st.st_ctim.tv_nsec)}) {
            h.number(n);
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
    if (capacity_ == 0 || ttl == 0 || (ev.changes_at && now >= *ev.changes_at)) {
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
