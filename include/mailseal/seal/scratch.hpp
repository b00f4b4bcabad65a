// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Room on disk for a message body that must wait, without plaintext at rest.
///
/// A body that claims to be encrypted is only known to be once its last byte is checked, and
/// until then nobody knows whether to store it as received or sealed. Holding a large body in
/// memory is not bounded, and writing it to disk as it is could put plaintext at rest. So it
/// goes to an unnamed file (O_TMPFILE: no name, gone when closed, even after a crash) under a
/// key that exists only in this object's memory: AES-256-CTR with a random key and IV, so what
/// reaches the disk is unreadable once the process is gone.
///
/// Failure policy: every call returns an error text; the caller then seals the message (the
/// choice that never stores plaintext) or fails the recipients.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <mailseal/util/unique_fd.hpp>

namespace mailseal::seal {

class encrypted_scratch {
public:
    /// An empty scratch file in `directory`.
    static std::variant<encrypted_scratch, std::string>
    create(const std::filesystem::path& directory);
    /// $TMPDIR, else /var/tmp (on disk, unlike a tmpfs /tmp; private under the packaged
    /// unit's PrivateTmp=).
    static std::filesystem::path default_directory();

    encrypted_scratch(encrypted_scratch&&) noexcept;
    encrypted_scratch& operator=(encrypted_scratch&&) noexcept;
    ~encrypted_scratch();

    std::optional<std::string> append(std::string_view plain);
    /// Reads everything back, in order, handing out the plaintext chunk by chunk (each chunk
    /// is wiped after `each` returns).
    std::optional<std::string> replay(const std::function<void(std::string_view)>& each);
    std::uint64_t size() const { return size_; }

private:
    struct cipher;
    encrypted_scratch(util::unique_fd fd, std::unique_ptr<cipher> c);

    util::unique_fd fd_;
    std::unique_ptr<cipher> cipher_;
    std::uint64_t size_ = 0;
};

} // namespace mailseal::seal
