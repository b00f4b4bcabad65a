// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Owning a file descriptor.

#include <cerrno>
#include <unistd.h>
#include <utility>

namespace mailseal::util {

/// Owns one file descriptor and closes it when destroyed. Not copyable; movable.
class unique_fd {
public:
    unique_fd() = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

    /// Closes the descriptor and returns 0, or the errno of a failed close(). The descriptor
    /// is released either way: on Linux, close() frees it even when it reports an error, so a
    /// retry could close an unrelated descriptor opened by another thread meanwhile.
    [[nodiscard]] int close() noexcept {
        if (fd_ < 0) {
            return 0;
        }
        int result = ::close(std::exchange(fd_, -1));
        return result == 0 ? 0 : errno;
    }
    /// Gives the descriptor up without closing it, for a C function that takes it over (the
    /// caller names that function where it calls release()).
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    /// Closes the descriptor, ignoring errors: for paths that already discard the file.
    void reset() noexcept {
        if (fd_ >= 0) {
            ::close(std::exchange(fd_, -1));
        }
    }

private:
    int fd_ = -1;
};

} // namespace mailseal::util
