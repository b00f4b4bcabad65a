// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What each format decided about a recipient's records and local key files, kept between
/// messages: parsing a certificate or importing an OpenPGP key and checking it costs far more
/// than sealing a small message to it, and a busy mailbox gets the same records all day.
///
/// An entry is found only for the very same inputs: the format, the address, the lookup's
/// outcome and owner name, every record's RDATA in answer order, and the name and content of
/// every local file the format reads. They are hashed with SHA-256, so a record crafted to
/// collide with another user's cannot fetch that user's keys. An entry lives until the
/// lookup's TTL runs out or until the clock alone could change the verdict
/// (evaluation::changes_at), whichever comes first; the least recently used goes when the
/// cache is full. A verdict that rests on a failure that may pass (a file that could not be
/// read, evaluation::provisional) is never kept. Safe to use from several threads.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <list>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <mailseal/dns/lookup.hpp>
#include <mailseal/seal/format.hpp>

namespace mailseal::discovery {

class evaluation_cache {
public:
    using identity = std::array<std::uint8_t, 32>;

    /// At most `capacity` entries; 0 keeps none.
    explicit evaluation_cache(std::size_t capacity);

    /// The digest of one format's inputs for one recipient. Reads the local files (blocking);
    /// nullopt when one cannot be read or is over 1 MiB: then the format evaluates afresh.
    static std::optional<identity> identify(const seal::format& format, std::string_view address,
                                            const dns::lookup_result& lookup,
                                            const std::vector<std::filesystem::path>& local_files);

    /// The evaluation kept for these inputs, if it still holds at `now`.
    std::optional<seal::evaluation> find(const identity& id,
                                         std::chrono::system_clock::time_point now);

    /// Keeps `ev`, made at `now` from a lookup with `ttl` seconds to live.
    void store(const identity& id, const seal::evaluation& ev,
               std::chrono::system_clock::time_point now, std::uint32_t ttl);

    std::size_t size() const;

private:
    struct digest_hash {
        std::size_t operator()(const identity& id) const noexcept;
    };
    struct entry {
        seal::evaluation evaluation;
        /// The TTL's end, on the clock that does not jump.
        std::chrono::steady_clock::time_point expires;
        /// evaluation::changes_at, on the clock the verdict was made with.
        std::optional<std::chrono::system_clock::time_point> changes_at;
        std::list<identity>::iterator recency;
    };

    const std::size_t capacity_;
    mutable std::mutex mutex_;
    /// Most recently used first.
    std::list<identity> recency_;
    std::unordered_map<identity, entry, digest_hash> entries_;
};

} // namespace mailseal::discovery
