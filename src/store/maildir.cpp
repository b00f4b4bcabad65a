// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <mailseal/store/maildir.hpp>

namespace mailseal::store {

namespace {

/// Output is collected and written in blocks of this size: few system calls per message.
constexpr std::size_t write_block = 64 * 1024;
/// From this size on, a file's blocks are written by a thread of its own, in larger blocks.
constexpr std::uint64_t background_threshold = 4u << 20;
constexpr std::size_t background_block = 128u << 10;
/// Blocks that may wait for that thread: what a large delivery holds in memory besides the
/// block being filled (a block is background_block, or a piece given up whole, a few hundred
/// KiB at most). Enough to cover one direct write of direct_chunk, during which the
/// sealing worker would otherwise wait too: with 4, sealing a 200 MiB message took about a
/// sixth longer.
constexpr std::size_t background_queue = 16;
/// How much of a large file is written before the kernel is asked to start writing it back.
constexpr std::uint64_t writeback_window = 8u << 20;
/// With direct I/O, a large file goes to the disk in writes of this size, from one buffer.
constexpr std::size_t direct_chunk = 1u << 20;
/// The alignment asked of the buffer and of each direct write's offset and length, at least:
/// 4096 octets (a page on most systems), so the device's own (512 octets on most disks) is met
/// whatever it is up to that.
constexpr std::size_t direct_minimum_alignment = 4096;

failure sys_failure(int err, std::string_view step, const std::filesystem::path& path) {
    return failure{classify_errno(err), err, std::string(step) + " " + path.string()};
}

/// Writes all of `data`: 0, or the errno of the failure.
int write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        auto n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            // A regular file never accepts zero bytes of a non-empty write; retrying would
            // loop forever.
            return EIO;
        }
        // A short write (a signal, or the disk filling up) writes the rest in the next round,
        // which then reports the error.
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return 0;
}

/// fsync a directory, making the entries created or renamed in it durable.
std::optional<failure> sync_directory(const std::filesystem::path& dir) {
    util::unique_fd fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (!fd) {
        return sys_failure(errno, "open", dir);
    }
    if (::fsync(fd.get()) != 0) {
        return sys_failure(errno, "fsync", dir);
    }
    return std::nullopt;
}

/// mkdir with `mode` exactly, creating missing parents with the same mode when `parents`.
std::optional<failure> make_directory(const std::filesystem::path& dir, mode_t mode, bool parents) {
    if (::mkdir(dir.c_str(), mode) == 0) {
        // mkdir() applies the umask; the configured mode is the operator's explicit choice.
        if (::chmod(dir.c_str(), mode) != 0) {
            return sys_failure(errno, "chmod", dir);
        }
        // The new entry must survive a crash like the message that will be stored below it:
        // the fsync of new/ at commit does not cover its parents' entries.
        auto parent = dir.parent_path();
        return sync_directory(parent.empty() ? std::filesystem::path(".") : parent);
    }
    int err = errno;
    if (err == EEXIST) {
        // Another delivery to the same mailbox created it first. If it is not a directory,
        // opening it fails next with ENOTDIR.
        return std::nullopt;
    }
    auto parent = dir.parent_path();
    if (err == ENOENT && parents && !parent.empty() && parent != dir) {
        if (auto f = make_directory(parent, mode, true)) {
            return f;
        }
        return make_directory(dir, mode, false);
    }
    return sys_failure(err, "mkdir", dir);
}

/// How every directory of a Maildir is opened: to read entries and to be fsync'd.
constexpr int directory_flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;

failure missing_failure(const std::filesystem::path& maildir) {
    return failure{error_kind::missing, ENOENT,
                   "maildir " + maildir.string() + " (or its cur/, new/, tmp/)"};
}

/// The failure of opening `name` relative to `dir_fd` (shown as `path`) with O_NOFOLLOW. For a
/// symbolic link the kernel reports ENOTDIR (with O_DIRECTORY) or ELOOP; the failure then names
/// the link as such, since "Not a directory" about a link to one would mislead the log's reader.
failure open_failure(int err, int dir_fd, const char* name, const std::filesystem::path& path) {
    struct stat st {};
    if ((err == ENOTDIR || err == ELOOP) &&
        ::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        return failure{error_kind::io, ELOOP, "open " + path.string() + " (a symbolic link)"};
    }
    return sys_failure(err, "open", path);
}

/// Opens `sub` (cur, new or tmp) of the open Maildir `maildir_fd`, creating it when missing and
/// allowed, and never through a symbolic link.
std::variant<util::unique_fd, failure> open_subdirectory(int maildir_fd,
                                                         const std::filesystem::path& maildir,
                                                         const char* sub,
                                                         const maildir_options& options) {
    auto path = maildir / sub;
    util::unique_fd fd{::openat(maildir_fd, sub, directory_flags | O_NOFOLLOW)};
    if (fd) {
        return fd;
    }
    if (errno != ENOENT) {
        return open_failure(errno, maildir_fd, sub, path);
    }
    if (!options.create_mode) {
        return missing_failure(maildir);
    }
    // EEXIST: another delivery to the same mailbox created it first. mkdirat() never creates
    // anything through a link: a name that is one gives EEXIST too, and the open refuses it.
    bool created = ::mkdirat(maildir_fd, sub, *options.create_mode) == 0;
    if (!created && errno != EEXIST) {
        return sys_failure(errno, "mkdir", path);
    }
    fd = util::unique_fd{::openat(maildir_fd, sub, directory_flags | O_NOFOLLOW)};
    if (!fd) {
        return open_failure(errno, maildir_fd, sub, path);
    }
    if (created) {
        // mkdirat() applies the umask; the configured mode is the operator's explicit choice.
        if (::fchmod(fd.get(), *options.create_mode) != 0) {
            return sys_failure(errno, "chmod", path);
        }
        // The new entry must survive a crash like the message that will be stored below it.
        if (::fsync(maildir_fd) != 0) {
            return sys_failure(errno, "fsync", maildir);
        }
    }
    return fd;
}

/// Makes sure <maildir>, cur/, new/ and tmp/ exist, creating them when allowed; returns tmp/.
///
/// The Maildir itself is reached the ordinary way, through any symbolic link on its path: that
/// path is the operator's (mailbox.maildir), and a link on it, say /var/vmail/example.org ->
/// /srv/vmail/example.org for a domain moved to another disk, is a legitimate layout. Only the
/// delivery agent and the mail reader make cur/, new/ and tmp/; a link in their place was put
/// there by whoever can write to the Maildir, its user, and following it would let them make
/// this process (root or the shared mail user) create and rename files wherever it may write.
/// So those three are opened with O_NOFOLLOW, and a delivery then works relative to tmp/'s
/// descriptor, which a link swapped in later cannot change.
std::variant<util::unique_fd, failure> open_maildir(const std::filesystem::path& maildir,
                                                    const maildir_options& options) {
    util::unique_fd root{::open(maildir.c_str(), directory_flags)};
    if (!root && errno == ENOENT && options.create_mode) {
        if (auto f = make_directory(maildir, *options.create_mode, true)) {
            return *std::move(f);
        }
        root = util::unique_fd{::open(maildir.c_str(), directory_flags)};
    } else if (!root && errno == ENOENT) {
        return missing_failure(maildir);
    }
    if (!root) {
        return sys_failure(errno, "open", maildir);
    }
    // cur/ and new/ are only checked (and made) here; commit() opens new/ again from tmp/.
    for (const auto* sub : {"cur", "new"}) {
        auto opened = open_subdirectory(root.get(), maildir, sub, options);
        if (auto* f = std::get_if<failure>(&opened)) {
            return std::move(*f);
        }
    }
    return open_subdirectory(root.get(), maildir, "tmp", options);
}

std::chrono::system_clock::time_point to_time_point(const struct timespec& ts) {
    return std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec})};
}

/// Owns a directory stream (and the descriptor fdopendir() took over).
struct dir_closer {
    void operator()(DIR* dir) const { ::closedir(dir); }
};
using dir_ptr = std::unique_ptr<DIR, dir_closer>;

/// Process-wide, so that two name_generator objects never produce the same name.
std::atomic<std::uint64_t> delivery_counter{0};

} // namespace

std::string_view to_string(error_kind kind) {
    switch (kind) {
    case error_kind::no_space:
        return "no_space";
    case error_kind::over_quota:
        return "over_quota";
    case error_kind::permission:
        return "permission";
    case error_kind::missing:
        return "missing";
    case error_kind::io:
        return "io";
    }
    return "io";
}

std::string failure::str() const {
    if (sys_errno == 0) {
        return what;
    }
    return what + ": " + std::error_code(sys_errno, std::generic_category()).message();
}

error_kind classify_errno(int err) {
    switch (err) {
    case ENOSPC:
        return error_kind::no_space;
    case EDQUOT:
        return error_kind::over_quota;
    case EACCES:
    case EPERM:
    case EROFS:
        return error_kind::permission;
    default:
        return error_kind::io;
    }
}

name_generator::name_generator(std::string_view hostname) {
    // Maildir spec: "/" and ":" in the host part are written as \057 and \072, because "/"
    // cannot appear in a file name and ":" starts the info part (":2,<flags>").
    host_.reserve(hostname.size());
    for (char c : hostname) {
        switch (c) {
        case '/':
            host_ += "\\057";
            break;
        case ':':
            host_ += "\\072";
            break;
        default:
            host_ += c;
            break;
        }
    }
}

std::string name_generator::next(std::chrono::system_clock::time_point now) {
    auto since_epoch = now.time_since_epoch();
    auto secs = std::chrono::floor<std::chrono::seconds>(since_epoch);
    auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - secs);
    auto n = delivery_counter.fetch_add(1, std::memory_order_relaxed) + 1;
    // getpid() on every call: a forked child must not reuse its parent's names.
    return std::to_string(secs.count()) + ".M" + std::to_string(usecs.count()) + "P" +
           std::to_string(::getpid()) + "Q" + std::to_string(n) + "." + host_;
}

/// Refuses a name for a new file before anything is created: a "/" would leave tmp/, and
/// readers skip names starting with ".".
std::optional<failure> refuse_name(const std::string& unique_name) {
    if (unique_name.empty() || unique_name.front() == '.' ||
        unique_name.find('/') != std::string::npos) {
        return failure{error_kind::io, EINVAL, "invalid Maildir file name \"" + unique_name + "\""};
    }
    return std::nullopt;
}

/// Moves from_dir/name to to_dir/target in one atomic step, never over an existing file:
/// RENAME_NOREPLACE, or where the file system lacks it (NFS) the Maildir spec's link() +
/// unlink(), which gives the same guarantee. `target_path` names the target in the failure.
std::optional<failure> rename_without_replacing(int from_dir, const std::string& name, int to_dir,
                                                const std::string& target,
                                                const std::filesystem::path& target_path) {
    if (::renameat2(from_dir, name.c_str(), to_dir, target.c_str(), RENAME_NOREPLACE) == 0) {
        return std::nullopt;
    }
    if (errno != EINVAL) {
        return sys_failure(errno, "rename", target_path);
    }
    if (::linkat(from_dir, name.c_str(), to_dir, target.c_str(), 0) != 0) {
        return sys_failure(errno, "link", target_path);
    }
    // The file is in place now; a tmp/ name left behind by a failed unlink is only stale
    // housekeeping (removed after 36 hours), never a second copy.
    ::unlinkat(from_dir, name.c_str(), 0);
    return std::nullopt;
}

std::string size_suffix(std::uint64_t size, std::uint64_t crlf_size) {
    return ",S=" + std::to_string(size) + ",W=" + std::to_string(crlf_size);
}

bool hold_back_cr(std::string& block) {
    if (block.empty() || block.back() != '\r') {
        return false;
    }
    block.pop_back();
    return true;
}

maildir_form to_maildir_form(std::string& block, char& file_end) {
    maildir_form form;
    char* data = block.data();
    const std::size_t n = block.size();
    std::size_t read = 0;
    std::size_t out = 0;
    char last_read = 0;
    while (read < n) {
        const auto* lf = static_cast<const char*>(std::memchr(data + read, '\n', n - read));
        std::size_t stop = lf == nullptr ? n : static_cast<std::size_t>(lf - data);
        if (stop > read) {
            last_read = data[stop - 1];
            if (out != read) {
                std::memmove(data + out, data + read, stop - read);
            }
            out += stop - read;
        }
        if (lf == nullptr) {
            break;
        }
        if (stop > read && last_read == '\r') {
            --out; // the CR of a CRLF
        }
        // Only a CR kept before this LF (input CR CR LF) makes it a CRLF in the file.
        if ((out == 0 ? file_end : data[out - 1]) != '\r') {
            ++form.lf_without_cr;
        }
        data[out++] = '\n';
        last_read = '\n';
        read = stop + 1;
    }
    block.resize(out);
    form.size = out;
    if (out > 0) {
        file_end = data[out - 1];
    }
    return form;
}

namespace {

/// Frees what posix_memalign() gave.
struct aligned_free {
    void operator()(char* p) const noexcept { std::free(p); }
};

/// The alignment direct I/O needs for `fd` (buffer, offset and length), or 0 when its file
/// system does not say it supports direct I/O (tmpfs, for one, does not).
std::size_t direct_io_alignment(int fd) {
    struct statx stx {};
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) != 0 ||
        (stx.stx_mask & STATX_DIOALIGN) == 0 || stx.stx_dio_offset_align == 0 ||
        stx.stx_dio_mem_align == 0) {
        return 0;
    }
    std::size_t alignment = std::max<std::size_t>(
        {direct_minimum_alignment, stx.stx_dio_offset_align, stx.stx_dio_mem_align});
    return direct_chunk % alignment == 0 ? alignment : 0;
}

/// Sets or clears O_DIRECT on `fd`: whether it is now as asked.
bool set_direct(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) {
        return false;
    }
    flags = on ? flags | O_DIRECT : flags & ~O_DIRECT;
    return ::fcntl(fd, F_SETFL, flags) == 0;
}

} // namespace

/// Converts a large file's blocks into Maildir form and writes them on a thread of its own, so
/// that the line-end work and the writes overlap the sealing of the next blocks instead of
/// following it. At most background_queue blocks wait; what is queued is what would be written
/// anyway.
///
/// When the file leaves the page cache once durable anyway, and its file system supports
/// direct I/O, the blocks are gathered into an aligned buffer and written past the page cache
/// with O_DIRECT: no copy into the page cache, no writeback by the kernel's threads, no pages
/// to drop, which is most of what writing costs the processor. The octets before the first
/// aligned offset and the last partial chunk are written through the page cache as usual.
/// Durability does not change: commit() still fsyncs the file (its size and block map, and the
/// device's cache) before the rename.
class delivery::block_writer {
public:
    /// Starts the thread (std::system_error when there is none to be had); `offset` is where
    /// the file's end is, and `file_end` its last byte.
    block_writer(int fd, std::uint64_t offset, char file_end, bool drop_written)
        : fd_(fd), drop_written_(drop_written), written_(offset), writeback_requested_(offset),
          dropped_(offset), file_end_(file_end) {
        if (drop_written_) {
            start_direct();
        }
        thread_ = std::thread([this] { run(); });
    }

    /// Stops after the block being written; the others are dropped (the file is being thrown
    /// away, or everything was drained).
    ~block_writer() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        changed_.notify_all();
        thread_.join();
    }

    block_writer(const block_writer&) = delete;
    block_writer& operator=(const block_writer&) = delete;

    /// Queues `block` (received bytes, not yet in Maildir form) and leaves it empty (a spare
    /// buffer, when there is one); waits while the queue is full. 0, or the errno of an earlier
    /// write that failed.
    int submit(std::string& block) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return queue_.size() < background_queue || error_ != 0; });
        if (error_ != 0) {
            return error_;
        }
        queue_.push_back(std::move(block));
        block.clear();
        if (!spare_.empty()) {
            block = std::move(spare_.back());
            spare_.pop_back();
        }
        lock.unlock();
        changed_.notify_all();
        return 0;
    }

    /// Waits until every queued block is written, then writes what the direct I/O buffer
    /// still holds: 0, or the errno of the first failure.
    int drain() {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return (queue_.empty() && !writing_) || error_ != 0; });
        if (error_ != 0) {
            return error_;
        }
        // The thread waits for a block that will not come: what it alone touched is this
        // thread's now, after the lock.
        if (direct_) {
            error_ = end_direct();
        }
        return error_;
    }

    /// What the written blocks became in the file; complete after drain().
    maildir_form written_form() {
        std::lock_guard lock(mutex_);
        return form_;
    }

private:
    void run() {
        for (;;) {
            std::string block;
            {
                std::unique_lock lock(mutex_);
                changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
                if (stop_ || error_ != 0) {
                    return;
                }
                block = std::move(queue_.front());
                queue_.pop_front();
                writing_ = true;
            }
            auto form = to_maildir_form(block, file_end_);
            int err = direct_ ? write_direct(block) : write_buffered(block);
            block.clear();
            {
                std::lock_guard lock(mutex_);
                writing_ = false;
                if (err != 0) {
                    error_ = err;
                } else {
                    form_.size += form.size;
                    form_.lf_without_cr += form.lf_without_cr;
                    spare_.push_back(std::move(block));
                }
            }
            changed_.notify_all();
        }
    }

    /// Writes `data` through the page cache: 0, or the errno of the failure.
    int write_buffered(std::string_view data) {
        int err = write_all(fd_, data);
        if (err == 0) {
            written_ += data.size();
            err = request_writeback();
        }
        return err;
    }

    /// Chooses direct I/O when the file system supports it, with the buffer it writes from;
    /// otherwise the file is written through the page cache. O_DIRECT itself is set by the
    /// thread, at its first write past the aligned offset: should the thread not start, the
    /// caller goes on writing the file as before.
    void start_direct() {
        const std::size_t alignment = direct_io_alignment(fd_);
        if (alignment == 0) {
            return;
        }
        void* memory = nullptr;
        if (::posix_memalign(&memory, alignment, direct_chunk) != 0) {
            return;
        }
        direct_buffer_.reset(static_cast<char*>(memory));
        // Until the file's end is aligned, octets go through the page cache.
        lead_ = static_cast<std::size_t>((alignment - written_ % alignment) % alignment);
        direct_ = true;
    }

    /// Gathers `data` into the direct I/O buffer and writes each full one: 0, or the errno of
    /// a failure.
    int write_direct(std::string_view data) {
        if (lead_ > 0) {
            const std::size_t n = std::min(lead_, data.size());
            if (int err = write_all(fd_, data.substr(0, n)); err != 0) {
                return err;
            }
            written_ += n;
            lead_ -= n;
            data.remove_prefix(n);
        }
        if (lead_ == 0 && !direct_set_) {
            if (!set_direct(fd_, true)) {
                direct_ = false;
                return write_buffered(data);
            }
            direct_set_ = true;
        }
        while (!data.empty()) {
            const std::size_t n = std::min(direct_chunk - staged_, data.size());
            std::memcpy(direct_buffer_.get() + staged_, data.data(), n);
            staged_ += n;
            data.remove_prefix(n);
            if (staged_ == direct_chunk) {
                if (int err = write_staged(); err != 0) {
                    return err;
                }
                if (!direct_) {
                    return write_buffered(data);
                }
            }
        }
        return 0;
    }

    /// Writes the full direct I/O buffer. Whatever a direct write did not take (a file system
    /// that refuses it after all, a short write as the disk fills) goes through the page cache
    /// instead, with direct I/O off from then on, and a real failure is then reported by that
    /// write: 0, or its errno.
    int write_staged() {
        std::string_view rest(direct_buffer_.get(), staged_);
        staged_ = 0;
        ssize_t n = -1;
        do {
            n = ::write(fd_, rest.data(), rest.size());
        } while (n < 0 && errno == EINTR);
        if (n > 0) {
            written_ += static_cast<std::size_t>(n);
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        if (rest.empty()) {
            return 0;
        }
        if (int err = stop_direct(); err != 0) {
            return err;
        }
        // What is before it is already on the disk.
        writeback_requested_ = written_;
        dropped_ = written_;
        return write_buffered(rest);
    }

    /// Writes what the direct I/O buffer holds (less than a chunk) through the page cache and
    /// turns direct I/O off, so that the file is as every other when commit() fsyncs it: 0, or
    /// the errno of a failure.
    int end_direct() {
        if (int err = stop_direct(); err != 0) {
            return err;
        }
        std::string_view rest(direct_buffer_.get(), staged_);
        staged_ = 0;
        int err = write_all(fd_, rest);
        if (err == 0) {
            written_ += rest.size();
        }
        return err;
    }

    /// Writes through the page cache from now on, clearing O_DIRECT if it was set: 0, or the
    /// errno of the failure.
    int stop_direct() {
        direct_ = false;
        if (direct_set_ && !set_direct(fd_, false)) {
            return errno;
        }
        direct_set_ = false;
        return 0;
    }

    /// 0, or the errno of a failed writeback.
    int request_writeback() {
        if (written_ - writeback_requested_ < writeback_window) {
            return 0;
        }
        // The pages start going to disk while the rest is still being sealed, instead of all
        // at commit's fsync. Only a request: fsync still decides durability.
        ::sync_file_range(fd_, static_cast<off64_t>(writeback_requested_),
                          static_cast<off64_t>(written_ - writeback_requested_),
                          SYNC_FILE_RANGE_WRITE);
        if (drop_written_ && writeback_requested_ > dropped_) {
            // The window before it is on disk by now, or soon: once it is, its pages go back
            // for the next blocks to reuse. A writeback error seen here is not seen again by
            // commit's fsync (the kernel reports each one once per open file), so it fails the
            // delivery now.
            auto from = static_cast<off64_t>(dropped_);
            auto length = static_cast<off64_t>(writeback_requested_ - dropped_);
            if (::sync_file_range(fd_, from, length,
                                  SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                      SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
                return errno;
            }
            ::posix_fadvise(fd_, from, length, POSIX_FADV_DONTNEED);
            dropped_ = writeback_requested_;
        }
        writeback_requested_ = written_;
        return 0;
    }

    const int fd_;
    /// Drop each window's pages from the page cache once they are on disk.
    const bool drop_written_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::string> queue_;
    std::vector<std::string> spare_;
    bool writing_ = false;
    bool stop_ = false;
    int error_ = 0;
    maildir_form form_;
    /// Touched by the thread only.
    std::uint64_t written_;
    std::uint64_t writeback_requested_;
    std::uint64_t dropped_;
    char file_end_;
    /// Direct I/O: chosen, O_DIRECT set on the descriptor, the buffer, how much of it is
    /// filled, and the octets still to write through the page cache before the file's end is
    /// aligned.
    bool direct_ = false;
    bool direct_set_ = false;
    std::unique_ptr<char, aligned_free> direct_buffer_;
    std::size_t staged_ = 0;
    std::size_t lead_ = 0;
    /// Started in the constructor's body, once everything it uses is made.
    std::thread thread_;
};

std::variant<delivery, failure> delivery::begin(const std::filesystem::path& maildir,
                                                const std::string& unique_name,
                                                const maildir_options& options) {
    if (auto f = refuse_name(unique_name)) {
        return *std::move(f);
    }
    auto tmp_dir = open_maildir(maildir, options);
    if (auto* f = std::get_if<failure>(&tmp_dir)) {
        return std::move(*f);
    }
    return begin_in_tmp(maildir, std::move(std::get<util::unique_fd>(tmp_dir)), unique_name,
                        options.drop_from_page_cache);
}

std::variant<delivery, failure> delivery::begin_at(int maildir_fd,
                                                   const std::filesystem::path& maildir,
                                                   const std::string& unique_name,
                                                   bool drop_from_page_cache) {
    if (auto f = refuse_name(unique_name)) {
        return *std::move(f);
    }
    auto tmp_dir = open_subdirectory(maildir_fd, maildir, "tmp", {});
    if (auto* f = std::get_if<failure>(&tmp_dir)) {
        return std::move(*f);
    }
    return begin_in_tmp(maildir, std::move(std::get<util::unique_fd>(tmp_dir)), unique_name,
                        drop_from_page_cache);
}

std::variant<delivery, failure> delivery::begin_in_tmp(const std::filesystem::path& maildir,
                                                       util::unique_fd tmp,
                                                       const std::string& unique_name,
                                                       bool drop_from_page_cache) {
    auto tmp_path = maildir / "tmp" / unique_name;
    // O_EXCL: never write into a file someone else created. The name is unique, so EEXIST
    // means a bug or a hostile file, and fails instead of trying another name. O_NOFOLLOW: a
    // symlink planted in tmp/ cannot redirect the write. O_CLOEXEC: no child inherits the fd.
    util::unique_fd fd{::openat(tmp.get(), unique_name.c_str(),
                                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
    if (!fd) {
        return sys_failure(errno, "open", tmp_path);
    }
    return delivery{maildir, unique_name, std::move(tmp), std::move(fd), drop_from_page_cache};
}

delivery::delivery(std::filesystem::path maildir, std::string name, util::unique_fd tmp_dir,
                   util::unique_fd fd, bool drop_from_page_cache)
    : maildir_(std::move(maildir)), name_(std::move(name)), tmp_path_(maildir_ / "tmp" / name_),
      tmp_dir_(std::move(tmp_dir)), fd_(std::move(fd)), tmp_exists_(true),
      drop_from_page_cache_(drop_from_page_cache), block_size_(write_block) {
    buffer_.reserve(block_size_);
}

delivery::delivery(delivery&& other) noexcept
    : maildir_(std::move(other.maildir_)), name_(std::move(other.name_)),
      tmp_path_(std::move(other.tmp_path_)), tmp_dir_(std::move(other.tmp_dir_)),
      fd_(std::move(other.fd_)), tmp_exists_(std::exchange(other.tmp_exists_, false)),
      drop_from_page_cache_(other.drop_from_page_cache_), failed_(std::move(other.failed_)),
      buffer_(std::move(other.buffer_)), block_size_(other.block_size_), file_end_(other.file_end_),
      size_(other.size_), crlf_size_(other.crlf_size_), received_(other.received_),
      writer_(std::move(other.writer_)) {}

delivery& delivery::operator=(delivery&& other) noexcept {
    if (this != &other) {
        abandon();
        maildir_ = std::move(other.maildir_);
        name_ = std::move(other.name_);
        tmp_path_ = std::move(other.tmp_path_);
        tmp_dir_ = std::move(other.tmp_dir_);
        fd_ = std::move(other.fd_);
        tmp_exists_ = std::exchange(other.tmp_exists_, false);
        drop_from_page_cache_ = other.drop_from_page_cache_;
        failed_ = std::move(other.failed_);
        buffer_ = std::move(other.buffer_);
        block_size_ = other.block_size_;
        file_end_ = other.file_end_;
        size_ = other.size_;
        crlf_size_ = other.crlf_size_;
        received_ = other.received_;
        writer_ = std::move(other.writer_);
    }
    return *this;
}

delivery::~delivery() {
    abandon();
}

void delivery::abandon() {
    // The writer thread stops before its descriptor is closed. The file is being thrown away,
    // so a failing close() changes nothing.
    writer_.reset();
    fd_.reset();
    if (tmp_exists_) {
        ::unlinkat(tmp_dir_.get(), name_.c_str(), 0);
        tmp_exists_ = false;
    }
    buffer_.clear();
}

failure delivery::fail(failure f) {
    // Remove the tmp/ file at once: on a full disk this gives the space back to the other
    // recipients of the same transaction.
    abandon();
    failed_ = f;
    return f;
}

std::optional<failure> delivery::write(std::string_view bytes) {
    if (failed_) {
        return failed_;
    }
    if (!fd_) {
        return failure{error_kind::io, EBADF, "write " + tmp_path_.string() + " after the end"};
    }
    while (!bytes.empty()) {
        auto n = std::min(bytes.size(), block_size_ - std::min(block_size_, buffer_.size()));
        buffer_.append(bytes.substr(0, n));
        bytes.remove_prefix(n);
        if (buffer_.size() >= block_size_) {
            if (auto f = flush(false)) {
                return fail(*std::move(f));
            }
        }
    }
    return std::nullopt;
}

std::optional<failure> delivery::write_taking(std::string& bytes) {
    // A piece of at least a block is written (or given to the writer thread) as it is rather
    // than copied into the block being gathered, which goes first as a shorter one. Once one
    // piece was copied, every later one would be, since the gathered block is then never
    // empty.
    const bool whole = bytes.size() >= write_block && !failed_ && fd_;
    if (whole && !buffer_.empty()) {
        if (auto f = flush(false)) {
            bytes.clear();
            return fail(*std::move(f));
        }
    }
    // Short pieces are gathered, and so is one after a CR held back for the LF it may start
    // with.
    if (!whole || !buffer_.empty()) {
        auto f = write(bytes);
        bytes.clear();
        return f;
    }
    buffer_.swap(bytes);
    bytes.clear();
    if (auto f = flush(false)) {
        return fail(*std::move(f));
    }
    return std::nullopt;
}

std::optional<failure> delivery::flush(bool last) {
    // A CR at the end of a block may be the first half of a CRLF: it waits for the next block,
    // which then starts with it. Only the file's last block may end with one (a bare CR).
    bool carry_cr = !last && hold_back_cr(buffer_);
    if (buffer_.empty()) {
        if (carry_cr) {
            buffer_ += '\r';
        }
        return std::nullopt;
    }
    if (!writer_ && received_ + buffer_.size() >= background_threshold) {
        try {
            writer_ =
                std::make_unique<block_writer>(fd_.get(), size_, file_end_, drop_from_page_cache_);
            block_size_ = background_block;
        } catch (const std::system_error&) {
            // No thread to be had: the writes stay on this one.
        }
    }
    received_ += buffer_.size();
    if (writer_) {
        if (int err = writer_->submit(buffer_); err != 0) {
            return sys_failure(err, "write", tmp_path_);
        }
        buffer_.reserve(block_size_);
    } else {
        auto form = to_maildir_form(buffer_, file_end_);
        size_ += form.size;
        crlf_size_ += form.size + form.lf_without_cr;
        if (int err = write_all(fd_.get(), buffer_); err != 0) {
            return sys_failure(err, "write", tmp_path_);
        }
        buffer_.clear();
    }
    if (carry_cr) {
        buffer_ += '\r';
    }
    return std::nullopt;
}

std::optional<failure> delivery::finish_file(const stored_message* metadata_of) {
    if (failed_) {
        return failed_;
    }
    if (!fd_) {
        return failure{error_kind::io, EBADF, "commit " + tmp_path_.string() + " after the end"};
    }
    // 1. Write what is still buffered (a CR at its very end has no LF after it: it is a bare
    //    CR and stays); ENOSPC and EDQUOT often show up only here.
    if (auto f = flush(true)) {
        return fail(*std::move(f));
    }
    if (writer_) {
        if (int err = writer_->drain(); err != 0) {
            return fail(sys_failure(err, "write", tmp_path_));
        }
        auto form = writer_->written_form();
        size_ += form.size;
        crlf_size_ += form.size + form.lf_without_cr;
        writer_.reset();
    }
    // 2. A replacement takes over the old file's owner, mode and mtime (the INTERNALDATE)
    //    before the fsync, so that they are as durable as its content. The owner first: a
    //    chown clears set-id bits a mode may hold.
    if (metadata_of != nullptr) {
        const struct timespec times[2] = {{0, UTIME_OMIT}, metadata_of->mtime};
        // Only when it differs: the Maildir's owner running this needs no right to chown
        // (nor a sandbox that allows the call).
        struct stat st {};
        if (::fstat(fd_.get(), &st) != 0) {
            return fail(sys_failure(errno, "fstat", tmp_path_));
        }
        if ((st.st_uid != metadata_of->owner || st.st_gid != metadata_of->group) &&
            ::fchown(fd_.get(), metadata_of->owner, metadata_of->group) != 0) {
            return fail(sys_failure(errno, "chown", tmp_path_));
        }
        if (::fchmod(fd_.get(), metadata_of->mode & 07777) != 0) {
            return fail(sys_failure(errno, "chmod", tmp_path_));
        }
        if (::futimens(fd_.get(), times) != 0) {
            return fail(sys_failure(errno, "futimens", tmp_path_));
        }
    }
    // 3. fsync and check it, as the Maildir spec asks. Without it the rename below can reach
    //    the disk before the data, and a crash leaves an empty or truncated message in new/.
    if (::fsync(fd_.get()) != 0) {
        return fail(sys_failure(errno, "fsync", tmp_path_));
    }
    if (drop_from_page_cache_) {
        // The pages are clean now and the file durable: only advice, whatever the answer.
        ::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_DONTNEED);
    }
    // 4. Check close() too: "fclose() may fail even while fflush and fsync() succeed. Think of
    //    remote file systems such as AFS that copy the file back to the server upon close."
    //    (Postfix, mail_copy.c)
    if (int err = fd_.close(); err != 0) {
        return fail(sys_failure(err, "close", tmp_path_));
    }
    return std::nullopt;
}

std::variant<std::filesystem::path, failure> delivery::commit() {
    if (auto f = finish_file(nullptr)) {
        return *std::move(f);
    }
    auto final_name = name_ + size_suffix(size_, crlf_size_);
    auto placed = place("new", final_name);
    if (auto* f = std::get_if<failure>(&placed)) {
        return std::move(*f);
    }
    return maildir_ / "new" / final_name;
}

std::variant<util::unique_fd, failure> delivery::place(const std::string& subdirectory,
                                                       const std::string& final_name) {
    // 5. Open the target directory before the rename, so that the only step that can fail
    //    once the file is there is the directory fsync. It is reached from tmp/'s descriptor:
    //    ".." is the directory tmp/ really is in (never a link), and O_NOFOLLOW refuses a link
    //    put in place of new/ or cur/ since begin() checked them.
    auto dir_path = maildir_ / subdirectory;
    auto relative = "../" + subdirectory;
    util::unique_fd dir{::openat(tmp_dir_.get(), relative.c_str(),
                                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (!dir) {
        return fail(open_failure(errno, tmp_dir_.get(), relative.c_str(), dir_path));
    }
    // 6. Move in one atomic step, as Dovecot does (maildir-save.c), but never over an existing
    //    file: names are unique per host name and pid, yet two machines sharing a mail store
    //    under one configured host name, both running us as pid 1 in containers, could meet.
    //    A collision is a temporary failure: the retry gets a new name. On failure the file
    //    stays in tmp/ and fail() removes it, so the target directory is untouched.
    if (auto f = rename_without_replacing(tmp_dir_.get(), name_, dir.get(), final_name,
                                          dir_path / final_name)) {
        return fail(*std::move(f));
    }
    tmp_exists_ = false;
    // 7. fsync the directory so that the rename itself survives a crash. Only now may the
    //    caller reply 250, or remove what the file replaces. If this fails, the caller replies
    //    4xx and the client retries, so the file is removed again: a crash may then still leave
    //    a duplicate, but never a lost message.
    if (::fsync(dir.get()) != 0) {
        auto f = sys_failure(errno, "fsync", dir_path);
        ::unlinkat(dir.get(), final_name.c_str(), 0);
        return fail(std::move(f));
    }
    return dir;
}

std::variant<std::filesystem::path, failure> delivery::commit_replacing(const stored_message& old,
                                                                        bool& removed_old) {
    removed_old = false;
    if (old.subdirectory != "cur" && old.subdirectory != "new") {
        return fail(failure{error_kind::io, EINVAL,
                            "replace a message outside cur/ and new/: " + old.subdirectory});
    }
    if (auto f = finish_file(&old)) {
        return *std::move(f);
    }
    auto final_name = name_ + size_suffix(size_, crlf_size_) + std::string(old.info());
    // The new file is durable before the old one goes: a crash in between leaves both, which
    // the next run resolves, never neither.
    auto placed = place(old.subdirectory, final_name);
    if (auto* f = std::get_if<failure>(&placed)) {
        return std::move(*f);
    }
    auto& dir = std::get<util::unique_fd>(placed);
    auto dir_path = maildir_ / old.subdirectory;
    if (::unlinkat(dir.get(), old.name.c_str(), 0) == 0) {
        removed_old = true;
    } else if (errno != ENOENT) {
        // The replacement is in place; the old file stays until the next run removes it.
        return sys_failure(errno, "unlink", dir_path / old.name);
    }
    if (removed_old && ::fsync(dir.get()) != 0) {
        return sys_failure(errno, "fsync", dir_path);
    }
    return dir_path / final_name;
}

std::string_view stored_message::base() const {
    return std::string_view(name).substr(0, name.find(':'));
}

std::string_view stored_message::info() const {
    auto colon = name.find(':');
    return colon == std::string::npos ? std::string_view() : std::string_view(name).substr(colon);
}

std::optional<stored_message> stored_message_of(int subdirectory_fd, std::string subdirectory,
                                                std::string name) {
    struct stat st {};
    if (::fstatat(subdirectory_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode)) {
        return std::nullopt;
    }
    stored_message m;
    m.subdirectory = std::move(subdirectory);
    m.name = std::move(name);
    m.owner = st.st_uid;
    m.group = st.st_gid;
    m.mode = st.st_mode & 07777;
    m.mtime = st.st_mtim;
    m.changed = st.st_ctim;
    m.size = static_cast<std::uint64_t>(st.st_size);
    return m;
}

std::vector<maildir_folder> maildir_folders(const std::filesystem::path& maildir) {
    std::vector<maildir_folder> out;
    auto is_folder = [](const std::filesystem::path& p) {
        std::error_code ec;
        return !std::filesystem::is_symlink(p, ec) &&
               std::filesystem::is_directory(p / "cur", ec) &&
               std::filesystem::is_directory(p / "new", ec);
    };
    if (is_folder(maildir)) {
        out.push_back({"INBOX", maildir});
    }
    std::error_code ec;
    for (std::filesystem::directory_iterator it(maildir, ec), end; !ec && it != end;
         it.increment(ec)) {
        auto name = it->path().filename().string();
        // Maildir++: ".Name" (".Parent.Child" for nested folders); "." and ".." never appear.
        if (name.size() < 2 || name[0] != '.' || !is_folder(it->path())) {
            continue;
        }
        out.push_back({name.substr(1), it->path()});
    }
    std::sort(out.begin(), out.end(),
              [](const maildir_folder& a, const maildir_folder& b) { return a.name < b.name; });
    return out;
}

std::size_t remove_stale_tmp(const std::filesystem::path& maildir,
                             std::chrono::system_clock::time_point now,
                             std::chrono::hours max_age) {
    // tmp/ as a delivery opens it (open_maildir): a link in its place is not followed, or this
    // would delete old files wherever it points.
    util::unique_fd root{::open(maildir.c_str(), directory_flags)};
    if (!root) {
        return 0;
    }
    util::unique_fd tmp{::openat(root.get(), "tmp", directory_flags | O_NOFOLLOW)};
    if (!tmp) {
        return 0;
    }
    dir_ptr entries{::fdopendir(tmp.get())};
    if (!entries) {
        return 0;
    }
    // closedir() closes the descriptor from now on: fdopendir() took it over.
    int tmp_fd = tmp.release();
    std::vector<std::string> stale;
    while (const dirent* entry = ::readdir(entries.get())) {
        struct stat st {};
        // A symlink is never a delivery's file, and following it could reach anything.
        if (::fstatat(tmp_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode)) {
            continue;
        }
        // The Maildir spec lets readers delete tmp/ files not accessed for 36 hours. ctime is
        // checked as well because a delivery that is still writing changes it (and mtime)
        // without ever reading the file, so its atime stays old.
        if (now - to_time_point(st.st_atim) > max_age &&
            now - to_time_point(st.st_ctim) > max_age) {
            stale.emplace_back(entry->d_name);
        }
    }
    std::size_t removed = 0;
    for (const auto& name : stale) {
        if (::unlinkat(tmp_fd, name.c_str(), 0) == 0) {
            ++removed;
        }
    }
    return removed;
}

} // namespace mailseal::store
