// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Durable delivery of one message into one Maildir, the way Dovecot's maildir-save.c does it:
/// create tmp/<unique> with O_EXCL|O_NOFOLLOW|O_CLOEXEC, write, fsync, check close, rename into
/// new/<unique>,S=<size>,W=<crlf size>, fsync new/. Only after commit() returns a path may the
/// caller answer 250.
///
/// Files are stored with LF line ends, as Dovecot stores them by default (mail_save_crlf = no):
/// each CRLF of the input becomes LF, any other byte is kept. S= is the file's size and W= the
/// size Dovecot computes when every LF not preceded by CR counts as CRLF; both are exact,
/// because Dovecot trusts them (RFC822.SIZE is W=).
///
/// Symbolic links: the path up to and including the Maildir is followed (it is the operator's
/// layout), but cur/, new/ and tmp/ inside it never are. They are opened with O_NOFOLLOW, and the
/// file is created, renamed and removed relative to those descriptors, so a link put in their
/// place, before or during a delivery, cannot redirect a write out of the Maildir; it is an `io`
/// failure (ELOOP).
///
/// Failure policy: every error is a `failure` carrying its kind and errno; the caller maps kinds
/// to replies. Nothing partial ever appears in new/: an uncommitted delivery removes its tmp/
/// file when it is destroyed.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/types.h>
#include <variant>
#include <vector>

#include <mailseal/util/unique_fd.hpp>

namespace mailseal::store {

/// The line end of a Maildir file (see above): a writer that ends its lines in it spares the
/// conversion.
inline constexpr std::string_view maildir_line_end = "\n";

enum class error_kind {
    no_space,   ///< ENOSPC
    over_quota, ///< EDQUOT
    permission, ///< EACCES, EPERM, EROFS
    missing,    ///< the Maildir does not exist and creating it was not allowed
    io,         ///< anything else
};
std::string_view to_string(error_kind);

struct failure {
    error_kind kind;
    int sys_errno = 0;
    std::string what; ///< the step and path, e.g. "fsync /var/vmail/.../tmp/123.M4P5.host"

    std::string str() const;
};

/// Classifies an errno from a filesystem call.
error_kind classify_errno(int err);

struct maildir_options {
    /// Create a missing Maildir (and its parents) with this mode; nullopt refuses instead.
    std::optional<mode_t> create_mode;
    /// Drop the file's pages from the page cache once they are on disk: as a large file's
    /// blocks reach the disk, and the whole file after its fsync. The message is usually
    /// read later, if ever, by the IMAP server, and the pages it frees are the ones the next
    /// message's writes reuse. On a virtual machine that hands free memory back to its host
    /// (free page reporting) every fresh page costs a fault in the host: writing 64 KiB into
    /// fresh pages took 163 us here, into reused ones 18 us.
    bool drop_from_page_cache = true;
};

/// Unique Maildir base names, `<secs>.M<usecs>P<pid>Q<n>.<host>`: seconds and microseconds of
/// the delivery, the pid, and a per-process counter so two deliveries in the same microsecond
/// differ. `/` and `:` in the host are written `\057` and `\072` as the Maildir spec asks.
/// Safe to call from several threads at once.
///
/// The counter is shared by every generator in the process, so two generators (say, before and
/// after a configuration reload) can never hand out the same name, and it also makes names
/// unique when the clock stands still or goes backwards, which Dovecot guards against by
/// bumping the microseconds instead.
class name_generator {
public:
    explicit name_generator(std::string_view hostname);
    std::string next(std::chrono::system_clock::time_point now);

private:
    std::string host_;
};

/// One block's bytes in Maildir form.
struct maildir_form {
    std::size_t size = 0;
    /// LFs with no CR before them in the file: W= counts each of them twice.
    std::uint64_t lf_without_cr = 0;
};

/// CRLF to LF, as Maildir files hold lines, a block of received bytes at a time: each CRLF
/// becomes LF; every other byte, bare CR and bare LF included, is kept. Turns `block` into
/// that form in place and shortens it to what remains. A CRLF must lie within one block: a
/// block other than the last has its final CR held back (hold_back_cr()) and the next block
/// starts with it. `file_end` is the output's last byte before the block (0 for none), and
/// then after it. One scan for LF per line: the CR to drop, if any, is the byte before it.
maildir_form to_maildir_form(std::string& block, char& file_end);

/// Takes a CR off the end of `block`, as the last octet may be the first half of a CRLF that
/// the next block completes: true when there was one, which then starts the next block.
bool hold_back_cr(std::string& block);

/// The `,S=<size>,W=<size>` suffix Dovecot reads.
std::string size_suffix(std::uint64_t size, std::uint64_t crlf_size);

/// What a replacement keeps of the message file it replaces (stored_message_of() reads it):
/// where it is, its info suffix (":2,<flags>", which holds its flags and keywords), its owner and
/// mode, and its mtime, which Dovecot takes as the IMAP INTERNALDATE.
struct stored_message {
    /// "cur" or "new".
    std::string subdirectory;
    /// The file name: the base name, then the info suffix.
    std::string name;
    uid_t owner = 0;
    gid_t group = 0;
    mode_t mode = 0600;
    struct timespec mtime {};
    /// When the file was last put or renamed where it is (its ctime), and its size; not kept.
    struct timespec changed {};
    std::uint64_t size = 0;

    /// The name up to the info suffix (Dovecot keys a message's UID on it).
    std::string_view base() const;
    /// From ':' on; empty when the name has none.
    std::string_view info() const;
};

/// One message being written into one Maildir. Not copyable; movable: the moved-to object owns
/// the tmp/ file, and the moved-from one neither writes nor removes anything.
///
/// After any failure the delivery is finished: its tmp/ file is already removed, and later
/// write() and commit() calls return the same failure.
class delivery {
public:
    /// Ensures the Maildir (cur/, new/, tmp/) exists per `options`, and creates tmp/<name>.
    /// A missing directory is created with `options.create_mode` exactly (the umask does not
    /// narrow it), parents included; otherwise the failure is `missing`. A symbolic link in
    /// place of cur/, new/ or tmp/ is an `io` failure (ELOOP), and nothing is created through
    /// it. `unique_name` must be
    /// a name_generator name: an empty name, a `/` or a leading `.` is refused, and an existing
    /// tmp/<name> is an `io` failure, never overwritten.
    static std::variant<delivery, failure> begin(const std::filesystem::path& maildir,
                                                 const std::string& unique_name,
                                                 const maildir_options& options);
    /// The same in the Maildir open as `maildir_fd` (named `maildir` in messages), which must
    /// have its tmp/ already: a link put in place of the Maildir after it was opened cannot
    /// redirect the write. `drop_from_page_cache` as in maildir_options.
    static std::variant<delivery, failure> begin_at(int maildir_fd,
                                                    const std::filesystem::path& maildir,
                                                    const std::string& unique_name,
                                                    bool drop_from_page_cache);

    delivery(delivery&& other) noexcept;
    delivery& operator=(delivery&& other) noexcept;
    delivery(const delivery&) = delete;
    delivery& operator=(const delivery&) = delete;
    ~delivery();

    /// Appends bytes (CRLF line ends are turned into LF; a CR at the end of one chunk and LF at
    /// the start of the next are handled).
    std::optional<failure> write(std::string_view bytes);
    /// The same for bytes the caller gives up: a piece of a block or more is written from
    /// `bytes`' buffer (or a large file's writer thread takes that buffer) instead of a copy.
    /// `bytes` is left empty, perhaps holding another buffer.
    std::optional<failure> write_taking(std::string& bytes);
    /// fsync, close, rename into new/, fsync new/. Returns the path in new/.
    std::variant<std::filesystem::path, failure> commit();
    /// Puts the file in place of `old`, which lies in the Maildir this delivery was begun in:
    /// gives it `old`'s owner, mode and mtime, fsyncs and closes it, renames it into `old`'s
    /// subdirectory as <name>,S=<size>,W=<crlf size><old's info suffix> (never over an
    /// existing file), fsyncs that directory, and only then removes `old` and fsyncs the
    /// directory again. Returns the new path. `removed_old` tells whether `old` was still there
    /// to remove (a mail client may have renamed or expunged it meanwhile): when it was not,
    /// the caller looks for it under its new name.
    std::variant<std::filesystem::path, failure> commit_replacing(const stored_message& old,
                                                                  bool& removed_old);
    /// Removes the tmp/ file (also done by the destructor when not committed).
    void abandon();

    /// The file's size, and its size read with CRLF line ends (S= and W=): final once
    /// commit() has succeeded.
    std::uint64_t size() const { return size_; }
    std::uint64_t crlf_size() const { return crlf_size_; }

private:
    delivery(std::filesystem::path maildir, std::string name, util::unique_fd tmp_dir,
             util::unique_fd fd, bool drop_from_page_cache);
    static std::variant<delivery, failure> begin_in_tmp(const std::filesystem::path& maildir,
                                                        util::unique_fd tmp,
                                                        const std::string& unique_name,
                                                        bool drop_from_page_cache);
    class block_writer;

    /// Writes buffer_ (`last`: the file's last block).
    std::optional<failure> flush(bool last);
    /// Renames the finished file from tmp/ to `subdirectory`/`final_name`, never over an
    /// existing file, and fsyncs that directory; returns its descriptor.
    std::variant<util::unique_fd, failure> place(const std::string& subdirectory,
                                                 const std::string& final_name);
    /// Writes what is still buffered, waits for the writer thread, gives the file
    /// `metadata_of`'s owner, mode and mtime (when not null), fsyncs and closes it.
    std::optional<failure> finish_file(const stored_message* metadata_of);
    failure fail(failure f);

    std::filesystem::path maildir_;
    std::string name_;
    std::filesystem::path tmp_path_; ///< for messages; the file is reached through tmp_dir_
    util::unique_fd tmp_dir_;        ///< tmp/, opened without following a link
    util::unique_fd fd_;
    bool tmp_exists_ = false;           ///< tmp_path_ is ours to remove
    bool drop_from_page_cache_ = false; ///< as in maildir_options
    std::optional<failure> failed_;     ///< the first failure; it finished the delivery
    std::string buffer_;                ///< received bytes not yet converted and written
    /// How full buffer_ gets before it is written.
    std::size_t block_size_ = 0;
    /// The file's last byte so far (0 for none), of the blocks written on this thread.
    char file_end_ = 0;
    /// Of the blocks written on this thread (the writer thread counts its own until commit).
    std::uint64_t size_ = 0;
    std::uint64_t crlf_size_ = 0;
    /// Received bytes written (or queued to the writer thread).
    std::uint64_t received_ = 0;
    /// A large file's writes, on a thread of their own.
    std::unique_ptr<block_writer> writer_;
};

/// The message file `name` in the directory open as `subdirectory_fd` ("cur" or "new", named
/// `subdirectory`), not followed if a link, as a replacement would keep it; nullopt when it is
/// not a regular file (gone, a link, a directory).
std::optional<stored_message> stored_message_of(int subdirectory_fd, std::string subdirectory,
                                                std::string name);

/// A Maildir's folders: the Maildir itself ("INBOX") and its Maildir++ subfolders (".Sent",
/// ".Archive.2024", each a directory with cur/, new/ and tmp/), by folder name, sorted.
struct maildir_folder {
    /// "INBOX", "Sent", "Archive.2024"
    std::string name;
    std::filesystem::path path;
};
std::vector<maildir_folder> maildir_folders(const std::filesystem::path& maildir);

/// Removes regular files in <maildir>/tmp whose last access (atime) and last status change
/// (ctime) are both older than `max_age` (the Maildir spec's 36 hours): leftovers of deliveries
/// that crashed. Symlinks and directories are left alone, and so is a tmp/ that is itself a
/// symlink (its target is not the Maildir's). Returns how many were removed; errors are skipped.
std::size_t remove_stale_tmp(const std::filesystem::path& maildir,
                             std::chrono::system_clock::time_point now,
                             std::chrono::hours max_age = std::chrono::hours{36});

} // namespace mailseal::store
