#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <fnmatch.h>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <sysexits.h>
#include <thread>
#include <unistd.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/seal/sealer.hpp>
#include <mailseal/store/maildir.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/errno_text.hpp>
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

/// The last complete run's start, from --since-last-run's state file ("<seconds>.<nanoseconds>");
/// nullopt when there is none yet (or it cannot be read: everything is looked at).
std::optional<struct timespec> last_run(const std::filesystem::path& state_file) {
    std::ifstream in(state_file);
    long long seconds = 0;
    char dot = 0;
    long nanoseconds = 0;
    if (!(in >> seconds >> dot >> nanoseconds) || dot != '.' || nanoseconds < 0 ||
        nanoseconds >= 1000000000) {
        return std::nullopt;
    }
    struct timespec t {};
    t.tv_sec = static_cast<time_t>(seconds - since_margin.count());
    t.tv_nsec = nanoseconds;
    return t;
}

/// Records `start` as the last complete run's, replacing the state file in one step.
std::optional<std::string> record_run(const std::filesystem::path& state_file,
                                      const struct timespec& start) {
    auto tmp = state_file;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << start.tv_sec << "." << std::setw(9) << std::setfill('0') << start.tv_nsec << "\n";
        out.flush();
        if (!out) {
            return "cannot write " + tmp.string();
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, state_file, ec);
    if (ec) {
        return "cannot rename " + tmp.string() + ": " + ec.message();
    }
    return std::nullopt;
}

/// The unique part of a Maildir file name: up to the first ',' (S=, W= and other fields) or ':'
/// (the info suffix).
std::string_view unique_part(std::string_view name) {
    return name.substr(0, name.find_first_of(",:"));
}

bool is_sealed_copy_name(std::string_view name) {
    return unique_part(name).ends_with(sealed_suffix);
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

/// LF line ends (a Maildir file's) made CRLF (what a copy sink writes).
std::string with_crlf(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 32);
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) {
            out += '\r';
        }
        out += text[i];
    }
    return out;
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
            out.fields += with_crlf(field);
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
    replacement_sink(const std::filesystem::path& folder, std::string tmp_name, std::string trace,
                     bool dry_run)
        : folder_(folder), tmp_name_(std::move(tmp_name)), trace_(std::move(trace)),
          dry_run_(dry_run) {}

    void watch(const seal::message_sealer& sealer) { sealer_ = &sealer; }

    std::variant<std::string, lmtp::reply> open(std::size_t index) override {
        const auto& r = sealer_->recipient(index);
        if (dry_run_ || !r.decided || r.decided->what != seal::action::seal) {
            return lmtp::reply(lmtp::replies::local_error, "not replaced");
        }
        auto begun = store::delivery::begin(folder_, tmp_name_, {});
        if (auto* f = std::get_if<store::failure>(&begun)) {
            problem_ = f->str();
            return lmtp::reply(lmtp::replies::local_error, problem_);
        }
        file_.emplace(std::move(std::get<store::delivery>(begun)));
        return trace_;
    }

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
    const std::filesystem::path& folder_;
    std::string tmp_name_;
    std::string trace_;
    bool dry_run_;
    const seal::message_sealer* sealer_ = nullptr;
    std::optional<store::delivery> file_;
    std::string problem_;
};

/// Runs `argv` (found through PATH) and waits for it: nullopt when it exits 0, else why not.
std::optional<std::string> run_command(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    pid_t pid = 0;
    if (int err = ::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ); err != 0) {
        return argv[0] + ": " + util::errno_text(err);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return argv[0] + ": waitpid: " + util::errno_text(errno);
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return std::nullopt;
    }
    return argv[0] + (WIFEXITED(status) ? " exited " + std::to_string(WEXITSTATUS(status))
                                        : std::string(" was killed"));
}

/// The message file in cur/ or new/ whose name starts with `base` (up to its info suffix).
std::optional<store::stored_message> find_by_base(const std::filesystem::path& folder,
                                                  std::string_view base) {
    for (const char* sub : {"cur", "new"}) {
        std::error_code ec;
        for (std::filesystem::directory_iterator it(folder / sub, ec), end; !ec && it != end;
             it.increment(ec)) {
            auto name = it->path().filename().string();
            if (std::string_view(name).substr(0, name.find(':')) == base) {
                if (auto m = store::stored_message_of(folder, sub, name)) {
                    return m;
                }
            }
        }
    }
    return std::nullopt;
}

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

class resealer {
public:
    /// `since`: only files changed since then (--since-last-run), and folders changed since.
    resealer(const config::config& cfg, const reseal_options& options,
             std::optional<struct timespec> since, std::ostream& err)
        : cfg_(cfg), options_(options), since_(since), err_(err) {}

    void user(const recipient::recipient& rcpt, const seal::key_set& keys, user_report& report) {
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
            scans.push_back(scan(folder));
            for (const auto& file : scans.back().files) {
                if (to_process(scans.back(), file)) {
                    progress_.add_to_total(file.size);
                }
            }
        }
        for (const auto& s : scans) {
            process(s, policy, keys, report);
        }
        progress_.finish();
        if (options_.purge_dovecot_cache && !options_.dry_run && !mailboxes.empty()) {
            // Dovecot's cache may still hold fields and previews of the messages that were
            // plaintext; a purge rewrites it without the expunged ones.
            std::vector<std::string> argv{"doveadm", "mailbox", "cache",
                                          "purge",   "-u",      report.address};
            argv.insert(argv.end(), mailboxes.begin(), mailboxes.end());
            if (auto problem = run_command(argv)) {
                err_ << "mailseal: reseal: " << report.address
                     << ": purging Dovecot's cache failed: " << util::printable(*problem) << "\n";
                report.detail = "dovecot cache purge failed";
                report.temporary_failure = true;
            }
        }
    }

private:
    /// One folder's message files, listed before any is touched.
    struct folder_scan {
        std::filesystem::path path;
        std::vector<store::stored_message> files;
        /// The sealed copies in the folder, by the unique part of the message they replace.
        std::set<std::string, std::less<>> sealed_for;
    };

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
    bool changed_since_last_run(const std::filesystem::path& dir) const {
        struct stat st {};
        return !since_ || ::stat(dir.c_str(), &st) != 0 || !earlier(st.st_mtim, *since_);
    }

    folder_scan scan(const store::maildir_folder& folder) const {
        folder_scan out;
        out.path = folder.path;
        if (!changed_since_last_run(folder.path / "cur") &&
            !changed_since_last_run(folder.path / "new") &&
            !changed_since_last_run(folder.path / "tmp")) {
            return out;
        }
        for (const char* sub : {"cur", "new"}) {
            std::error_code ec;
            for (std::filesystem::directory_iterator it(folder.path / sub, ec), end;
                 !ec && it != end; it.increment(ec)) {
                auto name = it->path().filename().string();
                if (name.starts_with('.')) {
                    continue;
                }
                auto m = store::stored_message_of(folder.path, sub, name);
                if (!m) {
                    continue;
                }
                if (is_sealed_copy_name(name)) {
                    auto unique = unique_part(name);
                    out.sealed_for.emplace(unique.substr(0, unique.size() - sealed_suffix.size()));
                }
                out.files.push_back(std::move(*m));
            }
        }
        return out;
    }

    /// Whether `file` is read and perhaps sealed (rather than counted, finished or skipped).
    bool to_process(const folder_scan& scan, const store::stored_message& file) const {
        return !is_sealed_copy_name(file.name) &&
               !scan.sealed_for.contains(unique_part(file.name)) &&
               !(since_ && earlier(file.changed, *since_));
    }

    void process(const folder_scan& scan, const config::seal_policy& policy,
                 const seal::key_set& keys, user_report& report) {
        if (!options_.dry_run) {
            remove_own_tmp_files(scan.path);
        }
        for (const auto& file : scan.files) {
            if (is_sealed_copy_name(file.name)) {
                if (!since_ || !earlier(file.changed, *since_)) {
                    ++report.messages;
                    ++report.encrypted;
                }
                continue;
            }
            if (scan.sealed_for.contains(unique_part(file.name))) {
                // A replacement a crash interrupted after the sealed copy was in place.
                ++report.messages;
                if (!options_.dry_run) {
                    finish_earlier(scan.path, file, report);
                }
                continue;
            }
            if (!to_process(scan, file)) {
                continue; // looked at by an earlier run
            }
            ++report.messages;
            pace();
            auto outcome = message(scan.path, file, policy, keys, report);
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

    /// tmp/ files of this tool: sealed copies a crash left unfinished, ciphertext only.
    void remove_own_tmp_files(const std::filesystem::path& folder) {
        std::error_code ec;
        for (std::filesystem::directory_iterator it(folder / "tmp", ec), end; !ec && it != end;
             it.increment(ec)) {
            auto name = it->path().filename().string();
            if (is_sealed_copy_name(name) && it->is_regular_file(ec)) {
                std::filesystem::remove(it->path(), ec);
            }
        }
    }

    void finish_earlier(const std::filesystem::path& folder, const store::stored_message& file,
                        user_report& report) {
        auto path = folder / file.subdirectory / file.name;
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
            err_ << "mailseal: reseal: cannot remove " << util::printable(path.string()) << ": "
                 << util::errno_text(errno) << "\n";
            ++report.failed;
            report.temporary_failure = true;
            return;
        }
        sync_directory(folder / file.subdirectory);
        ++report.finished_earlier;
    }

    static void sync_directory(const std::filesystem::path& dir) {
        util::unique_fd fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
        if (fd) {
            ::fsync(fd.get());
        }
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

    message_outcome message(const std::filesystem::path& folder, const store::stored_message& old,
                            config::seal_policy policy, const seal::key_set& keys,
                            user_report& report) {
        auto path = folder / old.subdirectory / old.name;
        util::unique_fd fd{::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
        if (!fd) {
            if (errno == ENOENT) {
                return message_outcome::vanished;
            }
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
            err_ << "mailseal: reseal: read " << util::printable(path.string()) << ": "
                 << util::errno_text(errno) << "\n";
            return message_outcome::failed;
        }
        std::string_view head(buffer.data(), *first);
        auto trace = leading_trace(head);
        if (trace.sealed_by_us) {
            // Its own earlier copy is never sealed again, whatever the passthrough policy: the
            // structural checks still decide whether it really is one.
            policy.passthrough = config::passthrough_mode::verified;
        }
        std::string tmp_name = std::string(unique_part(old.name)) + std::string(sealed_suffix);
        replacement_sink sink(folder, tmp_name, trace.fields, options_.dry_run);
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
                err_ << "mailseal: reseal: read " << util::printable(path.string()) << ": "
                     << util::errno_text(errno) << "\n";
                return message_outcome::failed;
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
        return replace(folder, old, *sink.file(), report);
    }

    message_outcome replace(const std::filesystem::path& folder, const store::stored_message& old,
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
        // A mail client moved it (new/ to cur/) or changed its flags meanwhile: the plaintext
        // is under another name. The copy takes its current flags, then it goes.
        auto moved = find_by_base(folder, old.base());
        if (!moved) {
            return message_outcome::sealed; // expunged meanwhile; the copy stays, as a new message
        }
        const auto& sealed_path = std::get<std::filesystem::path>(committed);
        auto sealed_name = sealed_path.filename().string();
        auto wanted_name =
            sealed_name.substr(0, sealed_name.find(':')) + std::string(moved->info());
        auto wanted_path = folder / moved->subdirectory / wanted_name;
        if (wanted_path != sealed_path && ::renameat2(AT_FDCWD, sealed_path.c_str(), AT_FDCWD,
                                                      wanted_path.c_str(), RENAME_NOREPLACE) != 0) {
            err_ << "mailseal: reseal: rename " << util::printable(sealed_path.string()) << ": "
                 << util::errno_text(errno) << "\n";
        }
        sync_directory(wanted_path.parent_path());
        auto moved_path = folder / moved->subdirectory / moved->name;
        if (::unlink(moved_path.c_str()) != 0 && errno != ENOENT) {
            err_ << "mailseal: reseal: cannot remove " << util::printable(moved_path.string())
                 << ": " << util::errno_text(errno) << "\n";
            return message_outcome::failed;
        }
        sync_directory(moved_path.parent_path());
        return message_outcome::sealed;
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

    struct timespec start {};
    ::clock_gettime(CLOCK_REALTIME, &start);
    std::optional<struct timespec> since;
    if (options.since_last_run) {
        since = last_run(options.state_file);
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
    if (options.since_last_run && !options.dry_run) {
        if (auto problem = record_run(options.state_file, start)) {
            err << "mailseal: reseal: " << util::printable(*problem) << "\n";
            return EX_CANTCREAT;
        }
    }
    return missing ? EX_NOUSER : EX_OK;
}

} // namespace mailseal::tools
