// SPDX-License-Identifier: Apache-2.0
#include <cerrno>
#include <chrono>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <thread>
#include <unistd.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/seal/message.hpp>
#include <mailseal/seal/sealer.hpp>
#include <mailseal/store/maildir.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/command.hpp>
#include <mailseal/util/errno_text.hpp>
#include <mailseal/util/replace_file.hpp>
#include <mailseal/util/unique_fd.hpp>
#include <mailseal/util/wipe.hpp>

#include "discovery_session.hpp"

namespace mailseal::tools {
namespace {

/// Appended to a message's unique name to name its sealed copy. The next run recognises a copy
/// by it, and so finishes a replacement a crash interrupted: a copy is renamed into place only
/// once complete, so when both files are found, the plaintext one is removed.
constexpr std::string_view sealed_suffix = ".resealed";

/// How much of a file is read at a time, and at first: enough for any trace block.
constexpr std::size_t read_size = 64 * 1024;

/// With --since-last-run, files changed this long before the last run's start are looked at
/// again: file times come from a coarser clock than the one that dated the run.
constexpr std::chrono::seconds since_margin{10};

bool earlier(const struct timespec& a, const struct timespec& b) {
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/// The last complete run's start, from --since-last-run's state file ("<seconds>.<nanoseconds>")
/// less since_margin; nullopt when there is no state file yet; an error text when it cannot be
/// read or parsed (never taken for a first run: that would skip what came since).
std::variant<std::optional<struct timespec>, std::string>
last_run(const std::filesystem::path& state_file) {
    std::ifstream in(state_file);
    if (!in) {
        if (errno == ENOENT) {
            return std::optional<struct timespec>{};
        }
        return "cannot read " + state_file.string() + ": " + util::errno_text(errno);
    }
    long long seconds = 0;
    char dot = 0;
    long nanoseconds = 0;
    if (!(in >> seconds >> dot >> nanoseconds) || dot != '.' || nanoseconds < 0 ||
        nanoseconds >= 1000000000) {
        return state_file.string() + " does not hold a time (<seconds>.<nanoseconds>)";
    }
    struct timespec t {};
    t.tv_sec = static_cast<time_t>(seconds - since_margin.count());
    t.tv_nsec = nanoseconds;
    return std::optional<struct timespec>{t};
}

/// Records `start` as the last complete run's, durably, replacing the state file in one step.
std::optional<std::string> record_run(const std::filesystem::path& state_file,
                                      const struct timespec& start) {
    std::ostringstream text;
    text << start.tv_sec << "." << std::setw(9) << std::setfill('0') << start.tv_nsec << "\n";
    return util::replace_file(state_file, text.str(), 0600);
}

/// What names a message across a replacement: its file name up to the info suffix, without the
/// S= and W= fields (which a sealed copy has anew). A sealed copy's key is its message's key
/// with sealed_suffix.
std::string message_key(std::string_view name) {
    auto base = name.substr(0, name.find(':'));
    std::string key;
    for (std::size_t at = 0; at < base.size();) {
        auto comma = base.find(',', at + 1);
        auto field = base.substr(at, comma == std::string_view::npos ? comma : comma - at);
        if (at == 0 || !(field.starts_with(",S=") || field.starts_with(",W="))) {
            key += field;
        }
        at = comma == std::string_view::npos ? base.size() : comma;
    }
    return key;
}

bool is_sealed_copy_name(std::string_view name) {
    return message_key(name).ends_with(sealed_suffix);
}

/// Header fields a delivery puts on top: they stay on top of the sealed copy, outside the
/// encryption, as delivery writes them. An earlier Mailseal: field is dropped.
bool is_trace_field(std::string_view name) {
    for (std::string_view trace :
         {"Return-Path", "Delivered-To", "Received", "X-Original-To", "Mailseal"}) {
        if (util::iequals(name, trace)) {
            return true;
        }
    }
    return false;
}

/// The trace block at the start of a stored message.
struct trace_block {
    /// Its fields in CRLF form, Mailseal: fields left out.
    std::string fields;
    /// Where the rest of the message starts.
    std::size_t end = 0;
    /// A Mailseal: field says the message was sealed by mailseal.
    bool sealed_by_us = false;
};

trace_block leading_trace(std::string_view head) {
    trace_block out;
    std::size_t pos = 0;
    for (;;) {
        auto line_end = head.find('\n', pos);
        if (line_end == std::string_view::npos || head[pos] == ' ' || head[pos] == '\t') {
            break;
        }
        auto first = head.substr(pos, line_end + 1 - pos);
        auto colon = first.find(':');
        if (colon == std::string_view::npos) {
            break;
        }
        auto name = util::trim(first.substr(0, colon));
        if (!is_trace_field(name)) {
            break;
        }
        // The field's continuation lines; one cut off by the end of `head` ends the block.
        std::size_t field_end = line_end + 1;
        bool complete = true;
        while (field_end < head.size() && (head[field_end] == ' ' || head[field_end] == '\t')) {
            auto next = head.find('\n', field_end);
            if (next == std::string_view::npos) {
                complete = false;
                break;
            }
            field_end = next + 1;
        }
        if (!complete || field_end >= head.size()) {
            break;
        }
        auto field = head.substr(pos, field_end - pos);
        if (util::iequals(name, "Mailseal")) {
            out.sealed_by_us = out.sealed_by_us ||
                               util::istarts_with(util::trim(field.substr(colon + 1)), "sealed");
        } else {
            // A Maildir file's LF line ends made CRLF, what a copy sink writes.
            seal::canonicalizer().feed(field, out.fields);
        }
        pos = field_end;
    }
    out.end = pos;
    return out;
}

/// What happened to one message file.
enum class message_outcome {
    sealed,
    /// Sealed by mailseal or encrypted by its sender, as the structural checks find: left alone.
    encrypted,
    would_seal,
    /// Renamed or removed by someone else before it was read.
    vanished,
    failed,
};

struct user_report {
    std::string address;
    /// "done", "no-key", "dry-run", "error"
    std::string outcome = "done";
    std::string detail;
    std::size_t folders = 0;
    std::size_t messages = 0;
    std::size_t sealed = 0;
    std::size_t encrypted = 0;
    std::size_t would_seal = 0;
    std::size_t vanished = 0;
    std::size_t failed = 0;
    /// Replacements an earlier run left half done and this one finished.
    std::size_t finished_earlier = 0;
    std::uint64_t bytes_read = 0;
    std::uint64_t bytes_written = 0;
    bool temporary_failure = false;
};

/// Writes one sealed copy into the folder's tmp/, under the sealed name of the message it
/// replaces; refuses every copy that is not sealed (and every copy in a dry run), so nothing
/// but ciphertext is ever written.
class replacement_sink final : public seal::copy_sink {
public:
    replacement_sink(int folder_fd, const std::filesystem::path& folder, std::string tmp_name,
                     std::string trace, bool dry_run, bool drop_from_page_cache)
        : folder_fd_(folder_fd), folder_(folder), tmp_name_(std::move(tmp_name)),
          trace_(std::move(trace)), dry_run_(dry_run), drop_from_page_cache_(drop_from_page_cache) {
    }

    void watch(const seal::message_sealer& sealer) { sealer_ = &sealer; }

    std::variant<std::string, lmtp::reply> open(std::size_t index) override {
        const auto& r = sealer_->recipient(index);
        if (dry_run_ || !r.decided || r.decided->what != seal::action::seal) {
            return lmtp::reply(lmtp::replies::local_error, "not replaced");
        }
        auto begun =
            store::delivery::begin_at(folder_fd_, folder_, tmp_name_, drop_from_page_cache_);
        if (auto* f = std::get_if<store::failure>(&begun)) {
            problem_ = f->str();
            return lmtp::reply(lmtp::replies::local_error, problem_);
        }
        file_.emplace(std::move(std::get<store::delivery>(begun)));
        return trace_;
    }

    std::string_view line_end(std::size_t) const override { return store::maildir_line_end; }

    std::optional<lmtp::reply> write(std::size_t, std::string_view bytes) override {
        if (auto f = file_->write(bytes)) {
            problem_ = f->str();
            return lmtp::reply(lmtp::replies::local_error, problem_);
        }
        return std::nullopt;
    }

    std::optional<store::delivery>& file() { return file_; }
    const std::string& problem() const { return problem_; }

private:
    int folder_fd_;
    const std::filesystem::path& folder_;
    std::string tmp_name_;
    std::string trace_;
    bool dry_run_;
    bool drop_from_page_cache_;
    const seal::message_sealer* sealer_ = nullptr;
    std::optional<store::delivery> file_;
    std::string problem_;
};

/// How far a user's run is, on standard error: a line redrawn in place on a terminal (at most
/// ten times a second), otherwise a plain line every 30 seconds, for logs of long runs.
class progress_display {
public:
    progress_display(std::ostream& out, bool terminal) : out_(out), terminal_(terminal) {}

    void start(std::string user) {
        user_ = std::move(user);
        total_messages_ = done_messages_ = 0;
        total_bytes_ = done_bytes_ = 0;
        last_ = std::chrono::steady_clock::now();
    }

    void add_to_total(std::uint64_t bytes) {
        ++total_messages_;
        total_bytes_ += bytes;
    }

    void done(std::uint64_t bytes) {
        ++done_messages_;
        done_bytes_ += bytes;
        auto now = std::chrono::steady_clock::now();
        if (now - last_ < (terminal_ ? std::chrono::milliseconds(100) : std::chrono::seconds(30))) {
            return;
        }
        last_ = now;
        if (terminal_) {
            out_ << "\r\033[K" << line() << std::flush;
        } else {
            out_ << "mailseal: reseal: " << line() << "\n" << std::flush;
        }
    }

    /// Clears the terminal line, so the user's summary starts on a clean one.
    void finish() {
        if (terminal_ && done_messages_ > 0) {
            out_ << "\r\033[K" << std::flush;
        }
    }

private:
    std::string line() const {
        constexpr int width = 30;
        auto fraction = total_bytes_ == 0
                            ? 1.0
                            : static_cast<double>(done_bytes_) / static_cast<double>(total_bytes_);
        auto filled = static_cast<int>(fraction * width);
        std::string bar =
            terminal_ ? "[" + std::string(static_cast<std::size_t>(filled), '#') +
                            std::string(static_cast<std::size_t>(width - filled), ' ') + "] "
                      : std::string();
        return user_ + ": " + bar + std::to_string(done_messages_) + "/" +
               std::to_string(total_messages_) + " messages, " + megabytes(done_bytes_) + "/" +
               megabytes(total_bytes_) + " MB";
    }

    static std::string megabytes(std::uint64_t bytes) {
        std::ostringstream text;
        text << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / 1e6;
        return text.str();
    }

    std::ostream& out_;
    bool terminal_;
    std::string user_;
    std::uint64_t total_messages_ = 0;
    std::uint64_t done_messages_ = 0;
    std::uint64_t total_bytes_ = 0;
    std::uint64_t done_bytes_ = 0;
    std::chrono::steady_clock::time_point last_;
};

/// A folder opened for one run: its directory and cur/ and new/, never through a link put in
/// their place later (as the store opens a Maildir), and every file in them by name.
struct folder_scan {
    std::filesystem::path path;
    util::unique_fd dir;
    util::unique_fd cur;
    util::unique_fd new_;
    std::vector<store::stored_message> files;
    /// The sealed copies in the folder, by the key of the message each replaces.
    std::map<std::string, store::stored_message, std::less<>> copies;

    int fd_of(std::string_view subdirectory) const {
        return subdirectory == "cur" ? cur.get() : new_.get();
    }
    std::filesystem::path path_of(const store::stored_message& m) const {
        return path / m.subdirectory / m.name;
    }
};

/// Opens a directory below `parent_fd`, refusing a link.
util::unique_fd open_directory_at(int parent_fd, const char* name) {
    return util::unique_fd{
        ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
}

/// The regular files of a directory (by its descriptor, which stays open), as stored messages.
std::vector<store::stored_message> list_messages(int dir_fd, const char* subdirectory) {
    std::vector<store::stored_message> out;
    int copy = ::dup(dir_fd);
    DIR* dir = copy < 0 ? nullptr : ::fdopendir(copy);
    if (dir == nullptr) {
        if (copy >= 0) {
            ::close(copy);
        }
        return out;
    }
    std::unique_ptr<DIR, int (*)(DIR*)> owner(dir, &::closedir);
    ::rewinddir(dir);
    while (const dirent* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name.starts_with('.')) {
            continue;
        }
        if (auto m = store::stored_message_of(dir_fd, subdirectory, name)) {
            out.push_back(std::move(*m));
        }
    }
    return out;
}

/// The message file in cur/ or new/ of `scan` whose key is `key`, as it is named now (a mail
/// client may have renamed it: flags changed, moved from new/ to cur/).
std::optional<store::stored_message> find_by_key(const folder_scan& scan, std::string_view key) {
    for (const char* sub : {"cur", "new"}) {
        for (auto& m : list_messages(scan.fd_of(sub), sub)) {
            if (message_key(m.name) == key) {
                return std::move(m);
            }
        }
    }
    return std::nullopt;
}

/// The first octets of a file hold a sealed copy's Mailseal: field.
bool holds_sealed_field(int dir_fd, const std::string& name) {
    util::unique_fd fd{::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
    if (!fd) {
        return false;
    }
    std::string head(4096, '\0');
    auto n = ::read(fd.get(), head.data(), head.size());
    head.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    auto field = head.find("\nMailseal: sealed;");
    return field != std::string::npos &&
           head.substr(field, head.find('\n', field + 1) - field).ends_with("; resealed");
}

class resealer {
public:
    /// `since`: only files changed since then (--since-last-run), and folders changed since.
    resealer(const config::config& cfg, const reseal_options& options,
             std::optional<struct timespec> since, std::ostream& err)
        : cfg_(cfg), options_(options), since_(since), err_(err) {}

    void user(const recipient::recipient& rcpt, const seal::key_set& keys, user_report& report) {
        // One run at a time in a Maildir: a second one would remove the first one's unfinished
        // copies from tmp/. The lock goes with the process, however it ends.
        util::unique_fd root{::open(rcpt.maildir->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
        if (!root || ::flock(root.get(), LOCK_EX | LOCK_NB) != 0) {
            report.outcome = "error";
            report.detail = !root ? "cannot open the Maildir: " + util::errno_text(errno)
                                  : "another reseal is working on this Maildir";
            report.temporary_failure = true;
            return;
        }
        auto policy = cfg_.seal.policy_for(rcpt.user, rcpt.domain);
        // Dovecot's names for the folders: Maildir++ ".Archive.2024" is "Archive.2024".
        std::vector<std::string> mailboxes;
        std::vector<folder_scan> scans;
        progress_.start(report.address);
        for (const auto& folder : store::maildir_folders(*rcpt.maildir)) {
            if (!wanted(folder.name)) {
                continue;
            }
            ++report.folders;
            mailboxes.push_back(folder.name);
            auto scanned = scan(root.get(), folder);
            if (!scanned) {
                err_ << "mailseal: reseal: cannot open " << util::printable(folder.path.string())
                     << " (a link, or not a Maildir)\n";
                report.temporary_failure = true;
                continue;
            }
            scans.push_back(std::move(*scanned));
            for (const auto& file : scans.back().files) {
                if (to_process(file)) {
                    progress_.add_to_total(file.size);
                }
            }
        }
        for (const auto& scanned : scans) {
            process(scanned, policy, keys, report);
        }
        progress_.finish();
        if (options_.purge_dovecot_cache && !options_.dry_run && !mailboxes.empty()) {
            // Dovecot's cache may still hold fields and previews of the messages that were
            // plaintext; a purge rewrites it without the expunged ones.
            std::vector<std::string> argv{"doveadm", "mailbox", "cache",
                                          "purge",   "-u",      report.address};
            argv.insert(argv.end(), mailboxes.begin(), mailboxes.end());
            if (auto problem = util::run_command(argv)) {
                err_ << "mailseal: reseal: " << report.address
                     << ": purging Dovecot's cache failed: " << util::printable(*problem) << "\n";
                report.detail = "dovecot cache purge failed";
                report.temporary_failure = true;
            }
        }
    }

private:
    bool wanted(const std::string& folder) const {
        if (options_.folders.empty()) {
            // A client editing a draft saves it again and again: it must not see it vanish.
            return folder != "Drafts";
        }
        return std::any_of(options_.folders.begin(), options_.folders.end(),
                           [&](const std::string& glob) {
                               return ::fnmatch(glob.c_str(), folder.c_str(), 0) == 0;
                           });
    }

    /// Whether a directory's entries changed since the last run: its mtime moves whenever a
    /// file is added, renamed or removed.
    bool changed_since_last_run(int dir_fd) const {
        struct stat st {};
        return !since_ || ::fstat(dir_fd, &st) != 0 || !earlier(st.st_mtim, *since_);
    }

    /// The folder's files; nullopt when it cannot be opened safely.
    std::optional<folder_scan> scan(int root_fd, const store::maildir_folder& folder) const {
        folder_scan out;
        out.path = folder.path;
        // The Maildir itself is the INBOX; a subfolder is opened below it, never through a link.
        out.dir = folder.name == "INBOX"
                      ? util::unique_fd{::dup(root_fd)}
                      : open_directory_at(root_fd, folder.path.filename().c_str());
        if (!out.dir) {
            return std::nullopt;
        }
        out.cur = open_directory_at(out.dir.get(), "cur");
        out.new_ = open_directory_at(out.dir.get(), "new");
        util::unique_fd tmp = open_directory_at(out.dir.get(), "tmp");
        if (!out.cur || !out.new_ || !tmp) {
            return std::nullopt;
        }
        if (!changed_since_last_run(out.cur.get()) && !changed_since_last_run(out.new_.get()) &&
            !changed_since_last_run(tmp.get())) {
            return out;
        }
        for (const char* sub : {"cur", "new"}) {
            for (auto& m : list_messages(out.fd_of(sub), sub)) {
                if (is_sealed_copy_name(m.name)) {
                    auto key = message_key(m.name);
                    out.copies.emplace(key.substr(0, key.size() - sealed_suffix.size()), m);
                }
                out.files.push_back(std::move(m));
            }
        }
        return out;
    }

    /// Whether `file` is read and perhaps sealed: not a sealed copy, and new enough.
    bool to_process(const store::stored_message& file) const {
        return !is_sealed_copy_name(file.name) && !(since_ && earlier(file.changed, *since_));
    }

    void process(const folder_scan& scan, const config::seal_policy& policy,
                 const seal::key_set& keys, user_report& report) {
        if (!options_.dry_run) {
            remove_own_tmp_files(scan);
            // Files a crashed writer (any delivery agent, a client's save) left in tmp/ may be
            // plaintext; the Maildir spec's 36 hours tell them from writes in progress.
            store::remove_stale_tmp(scan.path, std::chrono::system_clock::now());
        }
        for (const auto& file : scan.files) {
            if (is_sealed_copy_name(file.name)) {
                if (!since_ || !earlier(file.changed, *since_)) {
                    ++report.messages;
                    ++report.encrypted;
                }
                continue;
            }
            auto copy = scan.copies.find(message_key(file.name));
            if (copy != scan.copies.end() && !options_.dry_run &&
                finish_earlier(scan, file, copy->second, report)) {
                ++report.messages;
                continue;
            }
            if (!to_process(file)) {
                continue; // looked at by an earlier run
            }
            ++report.messages;
            pace();
            auto outcome = message(scan, file, policy, keys, report);
            progress_.done(file.size);
            switch (outcome) {
            case message_outcome::sealed:
                ++report.sealed;
                break;
            case message_outcome::encrypted:
                ++report.encrypted;
                break;
            case message_outcome::would_seal:
                ++report.would_seal;
                break;
            case message_outcome::vanished:
                ++report.vanished;
                break;
            case message_outcome::failed:
                ++report.failed;
                report.temporary_failure = true;
                break;
            }
        }
    }

    /// tmp/ files of this tool: sealed copies a crash left unfinished, ciphertext only. Under
    /// the Maildir's lock, no other run is writing them.
    void remove_own_tmp_files(const folder_scan& scan) {
        util::unique_fd tmp = open_directory_at(scan.dir.get(), "tmp");
        if (!tmp) {
            return;
        }
        for (const auto& m : list_messages(tmp.get(), "tmp")) {
            if (is_sealed_copy_name(m.name)) {
                ::unlinkat(tmp.get(), m.name.c_str(), 0);
            }
        }
    }

    /// A replacement a crash interrupted after the sealed copy was in place: removes the
    /// plaintext once the copy is seen to be there and sealed. False when it is not (removed
    /// meanwhile): the message is then sealed again like any other.
    bool finish_earlier(const folder_scan& scan, const store::stored_message& file,
                        const store::stored_message& copy, user_report& report) {
        if (!holds_sealed_field(scan.fd_of(copy.subdirectory), copy.name)) {
            return false;
        }
        int dir = scan.fd_of(file.subdirectory);
        auto outcome = message_outcome::sealed;
        if (::unlinkat(dir, file.name.c_str(), 0) != 0 && errno != ENOENT) {
            outcome = failed("cannot remove", scan.path_of(file), errno);
        } else if (::fsync(dir) != 0) {
            outcome = failed("fsync", scan.path, errno);
        }
        if (outcome == message_outcome::failed) {
            ++report.failed;
            report.temporary_failure = true;
        } else {
            ++report.finished_earlier;
        }
        return true;
    }

    /// Keeps to --max-rate messages per second.
    void pace() {
        if (options_.max_rate <= 0) {
            return;
        }
        auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(1.0 / options_.max_rate));
        auto now = std::chrono::steady_clock::now();
        if (next_start_ > now) {
            std::this_thread::sleep_until(next_start_);
            now = next_start_;
        }
        next_start_ = now + interval;
    }

    message_outcome message(const folder_scan& scan, store::stored_message old,
                            config::seal_policy policy, const seal::key_set& keys,
                            user_report& report) {
        util::unique_fd fd;
        // A mail client may rename the file between the listing and now (flags, new/ to
        // cur/): it is looked up again by its key, a few times at most.
        for (int attempt = 0; attempt < 3; ++attempt) {
            fd = util::unique_fd{::openat(scan.fd_of(old.subdirectory), old.name.c_str(),
                                          O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
            if (fd || errno != ENOENT) {
                break;
            }
            auto renamed = find_by_key(scan, message_key(old.name));
            if (!renamed) {
                return message_outcome::vanished; // expunged: nothing left to seal
            }
            old = std::move(*renamed);
        }
        auto path = scan.path_of(old);
        if (!fd) {
            err_ << "mailseal: reseal: " << util::printable(path.string()) << ": "
                 << util::errno_text(errno) << "\n";
            return message_outcome::failed;
        }
        std::string buffer(read_size, '\0');
        struct wiper {
            std::string& b;
            ~wiper() { util::wipe_storage(b); }
        } wipe_buffer{buffer};
        auto read_some = [&]() -> std::optional<std::size_t> {
            for (;;) {
                auto n = ::read(fd.get(), buffer.data(), buffer.size());
                if (n >= 0) {
                    report.bytes_read += static_cast<std::uint64_t>(n);
                    return static_cast<std::size_t>(n);
                }
                if (errno != EINTR) {
                    return std::nullopt;
                }
            }
        };
        auto first = read_some();
        if (!first) {
            return failed("read", path, errno);
        }
        std::string_view head(buffer.data(), *first);
        auto trace = leading_trace(head);
        if (trace.sealed_by_us) {
            // Its own earlier copy is never sealed again, whatever the passthrough policy: the
            // structural checks still decide whether it really is one.
            policy.passthrough = config::passthrough_mode::verified;
        }
        replacement_sink sink(scan.dir.get(), scan.path,
                              message_key(old.name) + std::string(sealed_suffix), trace.fields,
                              options_.dry_run,
                              cfg_.mailbox.page_cache == config::page_cache_policy::drop);
        seal::message_sealer sealer({policy}, cfg_.seal.protected_subject, sink);
        sink.watch(sealer);
        sealer.set_sealed_note("resealed");
        sealer.provide_keys(0, keys);
        sealer.write(head.substr(trace.end));
        for (;;) {
            if (options_.dry_run && sealer.recipient(0).decided) {
                break;
            }
            auto n = read_some();
            if (!n) {
                return failed("read", path, errno);
            }
            if (*n == 0) {
                break;
            }
            sealer.write(std::string_view(buffer.data(), *n));
        }
        sealer.end_of_data();
        const auto& r = sealer.recipient(0);
        if (r.decided && r.decided->what == seal::action::passthrough) {
            return message_outcome::encrypted;
        }
        if (!r.decided || r.decided->what != seal::action::seal) {
            err_ << "mailseal: reseal: " << util::printable(path.string()) << ": not sealed ("
                 << util::printable(r.detail) << ")\n";
            return message_outcome::failed;
        }
        if (options_.dry_run) {
            return message_outcome::would_seal;
        }
        if (r.refusal || !sink.file()) {
            err_ << "mailseal: reseal: " << util::printable(path.string()) << ": "
                 << util::printable(sink.problem().empty() ? r.detail : sink.problem()) << "\n";
            return message_outcome::failed;
        }
        return replace(scan, old, *sink.file(), report);
    }

    message_outcome failed(const std::string& what, const std::filesystem::path& path, int err) {
        err_ << "mailseal: reseal: " << what << " " << util::printable(path.string()) << ": "
             << util::errno_text(err) << "\n";
        return message_outcome::failed;
    }

    message_outcome replace(const folder_scan& scan, const store::stored_message& old,
                            store::delivery& file, user_report& report) {
        bool removed_old = false;
        auto committed = file.commit_replacing(old, removed_old);
        if (auto* f = std::get_if<store::failure>(&committed)) {
            err_ << "mailseal: reseal: " << util::printable(f->str()) << "\n";
            return message_outcome::failed;
        }
        report.bytes_written += file.size();
        if (removed_old) {
            return message_outcome::sealed;
        }
        // A mail client renamed the plaintext meanwhile (flags, new/ to cur/): the copy takes
        // its current name's place and flags, then the plaintext goes. Gone altogether
        // (expunged, or moved to another folder), the message must not come back: the copy
        // goes instead.
        const auto& sealed_path = std::get<std::filesystem::path>(committed);
        store::stored_message copy;
        copy.subdirectory = sealed_path.parent_path().filename().string();
        copy.name = sealed_path.filename().string();
        for (int attempt = 0; attempt < 3; ++attempt) {
            auto moved = find_by_key(scan, message_key(old.name));
            if (!moved) {
                int dir = scan.fd_of(copy.subdirectory);
                if (::unlinkat(dir, copy.name.c_str(), 0) != 0 || ::fsync(dir) != 0) {
                    return failed("cannot remove", scan.path_of(copy), errno);
                }
                return message_outcome::vanished;
            }
            auto wanted = copy.name.substr(0, copy.name.find(':')) + std::string(moved->info());
            if (moved->subdirectory != copy.subdirectory || wanted != copy.name) {
                if (::renameat2(scan.fd_of(copy.subdirectory), copy.name.c_str(),
                                scan.fd_of(moved->subdirectory), wanted.c_str(),
                                RENAME_NOREPLACE) != 0) {
                    return failed("rename", scan.path_of(copy), errno);
                }
                if (::fsync(scan.fd_of(copy.subdirectory)) != 0) {
                    return failed("fsync", scan.path / copy.subdirectory, errno);
                }
                copy.subdirectory = moved->subdirectory;
                copy.name = wanted;
            }
            // The copy is durable under its final name before the plaintext goes.
            int dir = scan.fd_of(moved->subdirectory);
            if (::fsync(dir) != 0) {
                return failed("fsync", scan.path / moved->subdirectory, errno);
            }
            if (::unlinkat(dir, moved->name.c_str(), 0) == 0) {
                if (::fsync(dir) != 0) {
                    return failed("fsync", scan.path / moved->subdirectory, errno);
                }
                return message_outcome::sealed;
            }
            if (errno != ENOENT) {
                return failed("cannot remove", scan.path_of(*moved), errno);
            }
        }
        // Still being renamed after three tries: both stay, and the next run resolves them.
        err_ << "mailseal: reseal: " << util::printable(scan.path_of(old).string())
             << " keeps being renamed; the next run removes it\n";
        return message_outcome::failed;
    }

    const config::config& cfg_;
    const reseal_options& options_;
    std::optional<struct timespec> since_;
    std::ostream& err_;
    progress_display progress_{err_, ::isatty(STDERR_FILENO) == 1};
    std::chrono::steady_clock::time_point next_start_{};
};

std::string summary(const user_report& r, bool dry_run) {
    std::string out = r.address + ": " + r.outcome;
    if (!r.detail.empty()) {
        out += " (" + r.detail + ")";
    }
    if (r.outcome == "done" || r.outcome == "dry-run") {
        out += "; folders=" + std::to_string(r.folders) +
               " messages=" + std::to_string(r.messages) +
               (dry_run ? " would_seal=" + std::to_string(r.would_seal)
                        : " sealed=" + std::to_string(r.sealed)) +
               " encrypted=" + std::to_string(r.encrypted) + " failed=" + std::to_string(r.failed);
        if (r.finished_earlier > 0) {
            out += " finished_earlier=" + std::to_string(r.finished_earlier);
        }
        if (r.vanished > 0) {
            out += " vanished=" + std::to_string(r.vanished);
        }
    }
    return out;
}

nlohmann::json to_json(const user_report& r) {
    return {{"address", r.address},
            {"outcome", r.outcome},
            {"detail", r.detail},
            {"folders", r.folders},
            {"messages", r.messages},
            {"sealed", r.sealed},
            {"would_seal", r.would_seal},
            {"encrypted", r.encrypted},
            {"failed", r.failed},
            {"vanished", r.vanished},
            {"finished_earlier", r.finished_earlier},
            {"bytes_read", r.bytes_read},
            {"bytes_written", r.bytes_written}};
}

} // namespace

int reseal(const config::config& cfg, const reseal_options& options, std::ostream& out,
           std::ostream& err) {
    if (options.since_last_run && (!options.all || !options.folders.empty())) {
        // One recorded time stands for every mailbox and folder: a narrower run would move it
        // past what the others saved meanwhile.
        err << "mailseal: reseal: --since-last-run covers --all and every folder; it takes "
               "neither addresses nor --folders\n";
        return EX_USAGE;
    }
    // Before the Maildirs are listed: a Maildir made meanwhile is the next run's.
    struct timespec start {};
    ::clock_gettime(CLOCK_REALTIME, &start);
    std::vector<recipient::recipient> users;
    if (options.all) {
        std::set<std::string> seen;
        for (const auto& maildir : recipient::existing_maildirs(cfg)) {
            auto address = address_from_maildir(cfg.mailbox.maildir, maildir);
            if (!address) {
                err << "mailseal: reseal: --all needs a mailbox.maildir template whose path "
                       "components are exactly %d and %n, or %u; name the addresses instead\n";
                return EX_USAGE;
            }
            if (seen.insert(*address).second) {
                if (auto parsed = lmtp::parse_forward_path("<" + *address + ">", true)) {
                    if (auto r = recipient::resolve(cfg, *parsed)) {
                        users.push_back(std::move(*r));
                    }
                }
            }
        }
    } else {
        for (const auto& address : options.addresses) {
            auto parsed = lmtp::parse_forward_path("<" + address + ">", true);
            if (!parsed || parsed->domain.empty()) {
                err << "mailseal: reseal: not an address: " << util::printable(address) << "\n";
                return EX_USAGE;
            }
            auto r = recipient::resolve(cfg, *parsed);
            if (!r) {
                err << "mailseal: reseal: not a local mailbox: " << util::printable(address)
                    << "\n";
                return EX_NOUSER;
            }
            users.push_back(std::move(*r));
        }
    }

    std::optional<struct timespec> since;
    if (options.since_last_run) {
        auto recorded = last_run(options.state_file);
        if (auto* problem = std::get_if<std::string>(&recorded)) {
            err << "mailseal: reseal: " << util::printable(*problem) << "\n";
            return EX_DATAERR;
        }
        since = std::get<std::optional<struct timespec>>(recorded);
        if (!since) {
            // The first run only sets the start: sealing the whole store changes every UID
            // and is the operator's decision (a plain `reseal --all`), not a timer's.
            if (options.dry_run) {
                return EX_OK;
            }
            if (auto problem = record_run(options.state_file, start)) {
                err << "mailseal: reseal: " << util::printable(*problem) << "\n";
                return EX_CANTCREAT;
            }
            out << "no earlier run recorded in " << util::printable(options.state_file.string())
                << ": files put in place from now on will be sealed; mailseal reseal --all "
                   "seals what is stored already\n";
            return EX_OK;
        }
    }
    std::vector<user_report> reports;
    resealer work(cfg, options, since, err);
    int setup =
        users.empty()
            ? EX_OK
            : run_discovery(
                  cfg, err,
                  [&](discovery::key_discovery& discovery) -> boost::asio::awaitable<void> {
                      for (const auto& rcpt : users) {
                          user_report report;
                          report.address = rcpt.user + "@" + rcpt.domain;
                          std::error_code ec;
                          if (!std::filesystem::is_directory(*rcpt.maildir, ec)) {
                              report.outcome = "no-mailbox";
                              report.detail = rcpt.maildir->string();
                              reports.push_back(std::move(report));
                              continue;
                          }
                          auto found = co_await discovery.find(rcpt);
                          const auto& keys = found.chosen;
                          if (keys.outcome == dns::outcome::bogus ||
                              keys.outcome == dns::outcome::failure || keys.unsettled) {
                              // Nothing is touched: the next run tries again with keys that can be
                              // trusted.
                              report.outcome = "error";
                              report.detail =
                                  keys.unsettled
                                      ? "keys unsettled"
                                      : "key lookup " + std::string(dns::to_string(keys.outcome));
                              report.temporary_failure = true;
                          } else if (keys.keys.empty()) {
                              report.outcome = "no-key";
                          } else {
                              work.user(rcpt, keys, report);
                              if (options.dry_run) {
                                  report.outcome = "dry-run";
                              }
                          }
                          log::info("reseal", {{"user", report.address},
                                               {"outcome", report.outcome},
                                               {"detail", report.detail},
                                               {"messages", std::to_string(report.messages)},
                                               {"sealed", std::to_string(report.sealed)},
                                               {"would_seal", std::to_string(report.would_seal)},
                                               {"encrypted", std::to_string(report.encrypted)},
                                               {"failed", std::to_string(report.failed)},
                                               {"bytes", std::to_string(report.bytes_read)}});
                          if (!options.json) {
                              out << summary(report, options.dry_run) << "\n";
                              out.flush();
                          }
                          reports.push_back(std::move(report));
                      }
                  });
    if (setup != EX_OK) {
        return setup;
    }
    bool temporary = std::any_of(reports.begin(), reports.end(),
                                 [](const user_report& r) { return r.temporary_failure; });
    bool missing = std::any_of(reports.begin(), reports.end(),
                               [](const user_report& r) { return r.outcome == "no-mailbox"; });
    if (options.json) {
        nlohmann::json users_json = nlohmann::json::array();
        for (const auto& r : reports) {
            users_json.push_back(to_json(r));
        }
        out << nlohmann::json{{"dry_run", options.dry_run}, {"users", users_json}}.dump(2) << "\n";
    } else {
        for (const auto& r : reports) {
            if (r.outcome == "no-mailbox") {
                out << summary(r, options.dry_run) << "\n";
            }
        }
    }
    if (temporary) {
        // The next --since-last-run run looks again at everything this one looked at.
        return EX_TEMPFAIL;
    }
    if (missing) {
        return EX_NOUSER;
    }
    if (options.since_last_run && !options.dry_run) {
        if (auto problem = record_run(options.state_file, start)) {
            err << "mailseal: reseal: " << util::printable(*problem) << "\n";
            return EX_CANTCREAT;
        }
    }
    return EX_OK;
}

} // namespace mailseal::tools
