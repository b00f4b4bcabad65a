// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <linux/fs.h>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/store/maildir.hpp>

namespace mailseal::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace std::string_literals;

/// A fresh directory under $TMPDIR, removed with everything in it at the end of the test.
class temp_dir {
public:
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "mailseal-store-XXXXXX").string();
        if (::mkdtemp(pattern.data()) != nullptr) {
            path_ = pattern;
        }
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

/// A tmpfs mounted on `dir` for the lifetime of the object (needs CAP_SYS_ADMIN).
class tmpfs_mount {
public:
    tmpfs_mount(fs::path dir, const char* options) : dir_(std::move(dir)) {
        fs::create_directories(dir_);
        if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options) == 0) {
            mounted_ = true;
        } else {
            error_ = errno;
        }
    }
    tmpfs_mount(const tmpfs_mount&) = delete;
    tmpfs_mount& operator=(const tmpfs_mount&) = delete;
    ~tmpfs_mount() {
        if (mounted_) {
            ::umount2(dir_.c_str(), MNT_DETACH);
        }
    }
    bool mounted() const { return mounted_; }
    std::string error() const { return std::strerror(error_); }
    bool remount_read_only() {
        return ::mount(nullptr, dir_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0;
    }

private:
    fs::path dir_;
    bool mounted_ = false;
    int error_ = 0;
};

/// A small ext4 file system without a journal (as on this project's own machines) in an image
/// file, mounted through a loop device: unlike tmpfs, it supports direct I/O.
class ext4_image_mount {
public:
    ext4_image_mount(const fs::path& image, fs::path dir, int megabytes) : dir_(std::move(dir)) {
        fs::create_directories(dir_);
        const auto quoted_image = "'" + image.string() + "'";
        const auto quoted_dir = "'" + dir_.string() + "'";
        const auto make = "truncate -s " + std::to_string(megabytes) + "M " + quoted_image +
                          " && mkfs.ext4 -q -F -O ^has_journal " + quoted_image +
                          " >/dev/null 2>&1 && mount -o loop " + quoted_image + " " + quoted_dir +
                          " 2>/dev/null";
        mounted_ = std::system(make.c_str()) == 0;
    }
    ext4_image_mount(const ext4_image_mount&) = delete;
    ext4_image_mount& operator=(const ext4_image_mount&) = delete;
    ~ext4_image_mount() {
        if (mounted_) {
            // The loop device goes with the last reference (mount sets it to clear itself).
            ::umount2(dir_.c_str(), MNT_DETACH);
        }
    }
    bool mounted() const { return mounted_; }

private:
    fs::path dir_;
    bool mounted_ = false;
};

/// A message with a line end of every kind on every block and chunk boundary (CRLF, CR CR LF,
/// bare CR, bare LF), of at least `size` octets, line i holding i % 3 + i % 7 * `longer` octets
/// of text; `want` is the Maildir file it makes (the conversion taken one octet at a time: a
/// CR right before an LF goes), `want_w` its size with CRLF line ends (W= counts every LF of
/// the file that does not follow a CR twice).
std::string mixed_line_ends(std::size_t size, std::size_t longer, std::string& want,
                            std::uint64_t& want_w) {
    std::string input;
    const std::string_view ends[] = {"\r\n", "\r\r\n", "\r", "\n", "\r\n\n"};
    for (std::size_t i = 0; input.size() < size; ++i) {
        input.append(i % 3 + i % 7 * longer, 'q');
        input += ends[i % 5];
    }
    input += "\r";
    want.clear();
    want_w = 0;
    for (std::size_t i = 0; i < input.size(); ++i) {
        if (input[i] == '\r' && i + 1 < input.size() && input[i + 1] == '\n') {
            continue;
        }
        want_w += input[i] == '\n' && (want.empty() || want.back() != '\r') ? 2 : 1;
        want += input[i];
    }
    return input;
}

/// Sets the immutable attribute (chattr +i) on a directory and clears it at the end.
class immutable_dir {
public:
    explicit immutable_dir(const fs::path& dir) : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY)) {
        int flags = 0;
        if (fd_ >= 0 && ::ioctl(fd_, FS_IOC_GETFLAGS, &flags) == 0) {
            flags |= FS_IMMUTABLE_FL;
            set_ = ::ioctl(fd_, FS_IOC_SETFLAGS, &flags) == 0;
        }
    }
    immutable_dir(const immutable_dir&) = delete;
    immutable_dir& operator=(const immutable_dir&) = delete;
    ~immutable_dir() {
        int flags = 0;
        if (set_ && ::ioctl(fd_, FS_IOC_GETFLAGS, &flags) == 0) {
            flags &= ~FS_IMMUTABLE_FL;
            ::ioctl(fd_, FS_IOC_SETFLAGS, &flags);
        }
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    bool set() const { return set_; }

private:
    int fd_;
    bool set_ = false;
};

std::vector<std::string> list_dir(const fs::path& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it{dir, ec}; !ec && it != fs::directory_iterator{};
         it.increment(ec)) {
        names.push_back(it->path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string read_all(const fs::path& path) {
    std::ifstream in{path, std::ios::binary};
    return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

mode_t mode_of(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return 0;
    }
    return st.st_mode & 07777;
}

std::string octal(mode_t mode) {
    char out[16];
    std::snprintf(out, sizeof out, "0%o", static_cast<unsigned>(mode));
    return out;
}

/// Printable form of bytes for failure messages.
std::string escaped(std::string_view bytes) {
    std::string out;
    for (unsigned char c : bytes) {
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20 || c >= 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02X", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::optional<delivery> must_begin(const fs::path& maildir, const std::string& name,
                                   const maildir_options& options) {
    auto begun = delivery::begin(maildir, name, options);
    if (auto* f = std::get_if<failure>(&begun)) {
        ADD_FAILURE() << "begin(" << name << "): got failure " << f->str() << ", want success";
        return std::nullopt;
    }
    return std::move(std::get<delivery>(begun));
}

/// Sets the process umask for the lifetime of the object.
class umask_guard {
public:
    explicit umask_guard(mode_t mask) : old_(::umask(mask)) {}
    umask_guard(const umask_guard&) = delete;
    umask_guard& operator=(const umask_guard&) = delete;
    ~umask_guard() { ::umask(old_); }

private:
    mode_t old_;
};

/// Names each instance of a parameterized test after its table row.
struct by_name {
    template <class Row>
    std::string operator()(const ::testing::TestParamInfo<Row>& row) const {
        return row.param.name;
    }
};

const maildir_options create_0700{0700};

class maildir_test : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_FALSE(root_.path().empty()) << "mkdtemp failed"; }

    fs::path maildir() const { return root_.path() / "Maildir"; }
    std::string next_name() { return names_.next(std::chrono::system_clock::now()); }

    /// Writes `input` into a new delivery to `maildir` in pieces of ever-changing size (each
    /// `step` times the last, modulo `modulus`, plus one), commits, and checks that the file
    /// holds `want` and the delivery reports its sizes; returns the file's path.
    std::optional<fs::path> store_in_odd_pieces(const fs::path& maildir, std::string_view input,
                                                std::size_t step, std::size_t modulus,
                                                const std::string& want, std::uint64_t want_w) {
        auto d = must_begin(maildir, next_name(), create_0700);
        if (!d) {
            return std::nullopt;
        }
        for (std::size_t n = 1; !input.empty(); n = n * step % modulus + 1) {
            auto take = std::min(input.size(), n);
            if (auto f = d->write(input.substr(0, take))) {
                ADD_FAILURE() << "write: " << f->str();
                return std::nullopt;
            }
            input.remove_prefix(take);
        }
        auto committed = d->commit();
        auto* path = std::get_if<fs::path>(&committed);
        if (path == nullptr) {
            ADD_FAILURE() << "commit: " << std::get<failure>(committed).str();
            return std::nullopt;
        }
        EXPECT_TRUE(read_all(*path) == want) << "file content differs from the converted input";
        EXPECT_EQ(d->size(), want.size());
        EXPECT_EQ(d->crlf_size(), want_w);
        return *path;
    }

    temp_dir root_;
    name_generator names_{"mx.test"};
};

// ---------------------------------------------------------------------------------------------
// Names

/// The parts of `<secs>.M<usecs>P<pid>Q<n>.<host>`, or nothing when the name has another shape.
struct name_parts {
    std::string secs, usecs, pid, counter, host;
};

std::optional<name_parts> parse_name(std::string_view name) {
    auto digits = [&name](std::string& out) {
        auto n = std::min(name.find_first_not_of("0123456789"), name.size());
        out = name.substr(0, n);
        name.remove_prefix(n);
        return n > 0;
    };
    auto literal = [&name](char c) {
        if (name.empty() || name.front() != c) {
            return false;
        }
        name.remove_prefix(1);
        return true;
    };
    name_parts p;
    if (!(digits(p.secs) && literal('.') && literal('M') && digits(p.usecs) && literal('P') &&
          digits(p.pid) && literal('Q') && digits(p.counter) && literal('.') && !name.empty())) {
        return std::nullopt;
    }
    p.host = name;
    return p;
}

TEST(name_generator, format_carries_time_pid_counter_and_host) {
    name_generator names{"mx.example.org"};
    auto when = std::chrono::system_clock::time_point{1276528487s + 364837us + 999ns};
    auto name = names.next(when);
    auto parts = parse_name(name);
    ASSERT_TRUE(parts) << "got " << name << ", want <secs>.M<usecs>P<pid>Q<n>.<host>";
    EXPECT_EQ(parts->secs, "1276528487");
    EXPECT_EQ(parts->usecs, "364837") << "microseconds are truncated, not rounded";
    EXPECT_EQ(parts->pid, std::to_string(::getpid()));
    EXPECT_EQ(parts->host, "mx.example.org");

    auto later = names.next(when);
    auto later_parts = parse_name(later);
    ASSERT_TRUE(later_parts) << "got " << later;
    EXPECT_GT(std::stoull(later_parts->counter), std::stoull(parts->counter))
        << "got " << name << " then " << later << ", want a growing Q counter";
}

TEST(name_generator, whole_second_has_zero_microseconds) {
    name_generator names{"h"};
    auto name = names.next(std::chrono::system_clock::time_point{1700000000s});
    EXPECT_EQ(name.rfind("1700000000.M0P", 0), 0u) << "got " << name;
}

TEST(name_generator, unique_over_many_calls_in_the_same_microsecond) {
    name_generator names{"h"};
    auto now = std::chrono::system_clock::now();
    std::set<std::string> seen;
    for (int i = 0; i < 20000; ++i) {
        seen.insert(names.next(now));
    }
    EXPECT_EQ(seen.size(), 20000u);
}

TEST(name_generator, unique_across_threads_and_generators) {
    // Two generators with the same host, shared by eight threads, all at the same instant: the
    // process-wide counter alone keeps the names apart.
    name_generator first{"h"};
    name_generator second{"h"};
    auto now = std::chrono::system_clock::now();
    constexpr int threads = 8;
    constexpr int per_thread = 4000;
    std::vector<std::vector<std::string>> made(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            auto& gen = t % 2 == 0 ? first : second;
            for (int i = 0; i < per_thread; ++i) {
                made[static_cast<std::size_t>(t)].push_back(gen.next(now));
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    std::set<std::string> seen;
    for (const auto& list : made) {
        seen.insert(list.begin(), list.end());
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(threads * per_thread));
}

struct host_case {
    std::string name;
    std::string host;
    std::string want;
};

void PrintTo(const host_case& row, std::ostream* os) {
    *os << row.name;
}

class host_escaping : public ::testing::TestWithParam<host_case> {};

TEST_P(host_escaping, escapes_slash_and_colon) {
    const auto& c = GetParam();
    name_generator names{c.host};
    auto name = names.next(std::chrono::system_clock::now());
    auto parts = parse_name(name);
    ASSERT_TRUE(parts) << "got " << name;
    EXPECT_EQ(parts->host, c.want) << "host " << c.host;
    EXPECT_EQ(name.find_first_of("/:"), std::string::npos) << "got " << name;
}

INSTANTIATE_TEST_SUITE_P(
    table, host_escaping,
    ::testing::Values(host_case{"plain", "mx.example.org", "mx.example.org"},
                      host_case{"slash", "a/b", "a\\057b"}, host_case{"colon", "a:b", "a\\072b"},
                      host_case{"mixed", "/mx::1/", "\\057mx\\072\\0721\\057"}),
    by_name{});

struct suffix_case {
    std::string name;
    std::uint64_t size;
    std::uint64_t crlf_size;
    std::string want;
};

void PrintTo(const suffix_case& row, std::ostream* os) {
    *os << row.name;
}

class suffix : public ::testing::TestWithParam<suffix_case> {};

TEST_P(suffix, formats_s_and_w) {
    const auto& c = GetParam();
    EXPECT_EQ(size_suffix(c.size, c.crlf_size), c.want);
}

INSTANTIATE_TEST_SUITE_P(
    table, suffix,
    ::testing::Values(suffix_case{"empty", 0, 0, ",S=0,W=0"},
                      suffix_case{"dovecot_example", 1355, 1394, ",S=1355,W=1394"},
                      suffix_case{"huge", std::numeric_limits<std::uint64_t>::max(),
                                  std::numeric_limits<std::uint64_t>::max(),
                                  ",S=18446744073709551615,W=18446744073709551615"}),
    by_name{});

// ---------------------------------------------------------------------------------------------
// Errors

struct errno_case {
    std::string name;
    int err;
    error_kind want;
};

void PrintTo(const errno_case& row, std::ostream* os) {
    *os << row.name;
}

class errno_classes : public ::testing::TestWithParam<errno_case> {};

TEST_P(errno_classes, classify) {
    const auto& c = GetParam();
    auto got = classify_errno(c.err);
    EXPECT_EQ(got, c.want) << "errno " << c.err << ": got " << to_string(got) << ", want "
                           << to_string(c.want);
}

INSTANTIATE_TEST_SUITE_P(table, errno_classes,
                         ::testing::Values(errno_case{"ENOSPC", ENOSPC, error_kind::no_space},
                                           errno_case{"EDQUOT", EDQUOT, error_kind::over_quota},
                                           errno_case{"EACCES", EACCES, error_kind::permission},
                                           errno_case{"EPERM", EPERM, error_kind::permission},
                                           errno_case{"EROFS", EROFS, error_kind::permission},
                                           errno_case{"EIO", EIO, error_kind::io},
                                           errno_case{"ENOENT", ENOENT, error_kind::io},
                                           errno_case{"EEXIST", EEXIST, error_kind::io},
                                           errno_case{"EMFILE", EMFILE, error_kind::io},
                                           errno_case{"ENOTDIR", ENOTDIR, error_kind::io},
                                           errno_case{"zero", 0, error_kind::io}),
                         by_name{});

/// Every octet of `block` converted on its own, the rule to_maildir_form() states: a CR right
/// before an LF goes, and an LF counts for W= unless the octet kept before it (or `file_end`)
/// is a CR.
maildir_form octet_by_octet(std::string& block, char& file_end) {
    maildir_form form;
    std::string out;
    for (std::size_t i = 0; i < block.size(); ++i) {
        if (block[i] == '\r' && i + 1 < block.size() && block[i + 1] == '\n') {
            continue;
        }
        if (block[i] == '\n' && (out.empty() ? file_end : out.back()) != '\r') {
            ++form.lf_without_cr;
        }
        out += block[i];
    }
    block = out;
    form.size = out.size();
    if (!out.empty()) {
        file_end = out.back();
    }
    return form;
}

TEST(to_maildir_form, agrees_with_the_octet_by_octet_rule_on_random_line_ends) {
    // Blocks of CR, LF and text in every mix, long enough for the 16-octet windows and short
    // enough that CR CR LF, CRLF and bare CRs and LFs fall on every window position, after each
    // possible last octet of the file.
    std::uint32_t state = 12345;
    auto next = [&state] {
        state = state * 1103515245u + 12345u;
        return state >> 16;
    };
    const char octets[] = {'\r', '\n', 'x'};
    for (int round = 0; round < 20000; ++round) {
        std::string block;
        const std::size_t size = next() % 100;
        const unsigned text_weight = next() % 8;
        for (std::size_t i = 0; i < size; ++i) {
            const unsigned pick = next() % (2 + text_weight);
            block += octets[std::min(pick, 2u)];
        }
        const char file_end = "\0\r\nx"[round % 4];
        std::string got = block;
        std::string want = block;
        char got_end = file_end;
        char want_end = file_end;
        const auto got_form = to_maildir_form(got, got_end);
        const auto want_form = octet_by_octet(want, want_end);
        ASSERT_EQ(got, want) << "input \"" << escaped(block) << "\"";
        ASSERT_EQ(got_form.size, want_form.size);
        ASSERT_EQ(got_form.lf_without_cr, want_form.lf_without_cr)
            << "input \"" << escaped(block) << "\" after " << int{file_end};
        ASSERT_EQ(got_end, want_end);
    }
}

TEST(error_kind, to_string_names_every_kind) {
    EXPECT_EQ(to_string(error_kind::no_space), "no_space");
    EXPECT_EQ(to_string(error_kind::over_quota), "over_quota");
    EXPECT_EQ(to_string(error_kind::permission), "permission");
    EXPECT_EQ(to_string(error_kind::missing), "missing");
    EXPECT_EQ(to_string(error_kind::io), "io");
}

TEST(failure, str_has_step_path_and_reason) {
    failure f{error_kind::no_space, ENOSPC, "write /m/tmp/x"};
    EXPECT_EQ(f.str(), "write /m/tmp/x: No space left on device");
    failure bare{error_kind::io, 0, "something"};
    EXPECT_EQ(bare.str(), "something");
}

// ---------------------------------------------------------------------------------------------
// Line ends, S= and W=

struct conversion_case {
    std::string name;
    std::string input;
    std::string want_file;
    std::uint64_t want_s;
    std::uint64_t want_w;
};

void PrintTo(const conversion_case& row, std::ostream* os) {
    *os << row.name;
}

class conversion : public maildir_test, public ::testing::WithParamInterface<conversion_case> {
protected:
    /// Delivers `chunks` and checks the file's bytes, its real size and the S=/W= suffix.
    void deliver_and_check(const std::vector<std::string_view>& chunks, const std::string& how) {
        const auto& c = GetParam();
        auto name = next_name();
        auto d = must_begin(maildir(), name, create_0700);
        ASSERT_TRUE(d);
        for (auto chunk : chunks) {
            auto f = d->write(chunk);
            ASSERT_FALSE(f) << how << ": write failed: " << f->str();
        }
        auto committed = d->commit();
        auto* path = std::get_if<fs::path>(&committed);
        ASSERT_NE(path, nullptr) << how << ": " << std::get<failure>(committed).str();

        auto got = read_all(*path);
        EXPECT_EQ(got, c.want_file)
            << how << ": got \"" << escaped(got) << "\", want \"" << escaped(c.want_file) << "\"";
        EXPECT_EQ(d->size(), c.want_s) << how;
        EXPECT_EQ(d->crlf_size(), c.want_w) << how;
        EXPECT_EQ(fs::file_size(*path), c.want_s) << how << ": S= must be the real file size";
        EXPECT_EQ(path->filename().string(), name + size_suffix(c.want_s, c.want_w)) << how;
        fs::remove(*path);
    }
};

TEST_P(conversion, whole) {
    deliver_and_check({GetParam().input}, "whole");
}

TEST_P(conversion, every_split_point) {
    std::string_view input = GetParam().input;
    for (std::size_t i = 0; i <= input.size(); ++i) {
        deliver_and_check({input.substr(0, i), input.substr(i)}, "split at " + std::to_string(i));
    }
}

TEST_P(conversion, byte_by_byte) {
    std::string_view input = GetParam().input;
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < input.size(); ++i) {
        bytes.push_back(input.substr(i, 1));
    }
    deliver_and_check(bytes, "byte by byte");
}

INSTANTIATE_TEST_SUITE_P(
    table, conversion,
    ::testing::Values(conversion_case{"crlf_text", "Subject: hi\r\n\r\nbody\r\n",
                                      "Subject: hi\n\nbody\n", 18, 21},
                      conversion_case{"crlf_lines", "a\r\nb\r\n", "a\nb\n", 4, 6},
                      conversion_case{"crlf_only", "\r\n", "\n", 1, 2},
                      conversion_case{"bare_lf", "a\nb\n", "a\nb\n", 4, 6},
                      conversion_case{"bare_cr_inside", "a\rb", "a\rb", 3, 3},
                      conversion_case{"bare_cr_at_end", "a\r", "a\r", 2, 2},
                      conversion_case{"cr_only", "\r", "\r", 1, 1},
                      // The first CR has no LF after it and stays; the second CRLF becomes LF. In
                      // the file that LF follows a CR, so W= counts it once.
                      conversion_case{"cr_cr_lf", "\r\r\n", "\r\n", 2, 2},
                      conversion_case{"cr_run_then_lfs", "x\r\r\r\n\n", "x\r\r\n\n", 5, 6},
                      conversion_case{"lf_then_crlf", "\n\r\n", "\n\n", 2, 4},
                      conversion_case{"empty", "", "", 0, 0},
                      conversion_case{"no_final_newline", "a\r\nb", "a\nb", 3, 4},
                      conversion_case{"eight_bit_and_nul", "\xC3\xA9t\xE9\r\n\xFF\x00\x80\r\n"s,
                                      "\xC3\xA9t\xE9\n\xFF\x00\x80\n"s, 9, 11}),
    by_name{});

TEST_F(maildir_test, large_message_crosses_write_blocks) {
    // Several 64 KiB output blocks, written in odd-sized chunks so that CRLFs straddle chunk
    // and block boundaries.
    std::string input;
    std::string want;
    std::uint64_t lines = 0;
    for (int i = 0; input.size() < 600 * 1024; ++i, ++lines) {
        auto line = "line " + std::to_string(i) + " \xE2\x9C\x93 some text";
        input += line + "\r\n";
        want += line + "\n";
    }
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    std::string_view rest = input;
    while (!rest.empty()) {
        auto n = std::min<std::size_t>(rest.size(), 4093);
        ASSERT_FALSE(d->write(rest.substr(0, n)));
        rest.remove_prefix(n);
    }
    auto committed = d->commit();
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();
    EXPECT_TRUE(read_all(*path) == want) << "file content differs from the converted input";
    EXPECT_EQ(fs::file_size(*path), want.size());
    EXPECT_EQ(d->size(), want.size());
    EXPECT_EQ(d->crlf_size(), want.size() + lines);
}

TEST_F(maildir_test, very_large_message_is_written_on_a_thread_of_its_own) {
    // Past 4 MiB the blocks go to a writer thread; the delivery is moved while it runs.
    std::string input;
    std::string want;
    std::uint64_t lines = 0;
    for (int i = 0; input.size() < 10 * 1024 * 1024; ++i, ++lines) {
        auto line = "line " + std::to_string(i) + std::string(i % 97, 'z');
        input += line + "\r\n";
        want += line + "\n";
    }
    auto begun = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(begun);
    std::optional<delivery> d;
    d.emplace(std::move(*begun));
    std::string_view rest = input;
    bool moved = false;
    while (!rest.empty()) {
        auto n = std::min<std::size_t>(rest.size(), 65521);
        ASSERT_FALSE(d->write(rest.substr(0, n)));
        rest.remove_prefix(n);
        if (!moved && rest.size() < input.size() / 2) {
            delivery other = std::move(*d);
            d.emplace(std::move(other));
            moved = true;
        }
    }
    auto committed = d->commit();
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();
    EXPECT_TRUE(read_all(*path) == want) << "file content differs from the converted input";
    EXPECT_EQ(d->size(), want.size());
    EXPECT_EQ(d->crlf_size(), want.size() + lines);
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
}

TEST_F(maildir_test, blocks_given_up_by_the_caller_are_stored_like_copied_ones) {
    // write_taking() writes a block from the caller's buffer, or hands it to a large file's
    // writer thread, before and after the writer starts at 4 MiB; bytes write() left behind go
    // first, as a shorter block. Lines of 64 octets put every 64 KiB boundary between lines.
    std::string input;
    for (int i = 0; input.size() < 9 * 1024 * 1024; ++i) {
        auto line = "line " + std::to_string(i) + " ";
        line.resize(62, static_cast<char>('a' + i % 26));
        input += line + "\r\n";
    }
    const std::size_t chunk = 64 * 1024;
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    std::string_view rest = input;
    for (std::size_t i = 0; !rest.empty(); ++i) {
        if (i == 80) {
            // 5 MiB in: a small write, then one that ends on the next 128 KiB boundary.
            ASSERT_FALSE(d->write(rest.substr(0, 777)));
            ASSERT_FALSE(d->write(rest.substr(777, 2 * chunk - 777)));
            rest.remove_prefix(2 * chunk);
            continue;
        }
        std::string block(rest.substr(0, std::min(rest.size(), chunk)));
        rest.remove_prefix(block.size());
        ASSERT_FALSE(d->write_taking(block));
        EXPECT_TRUE(block.empty());
    }
    auto committed = d->commit();
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();
    std::string want = input;
    std::erase(want, '\r');
    EXPECT_TRUE(read_all(*path) == want) << "file content differs from the converted input";
    EXPECT_EQ(d->size(), want.size());
    EXPECT_EQ(d->crlf_size(), input.size());
}

TEST_F(maildir_test, pieces_given_up_after_gathered_bytes_and_held_back_crs_keep_line_ends) {
    // Pieces of odd sizes, short and long, copied and given up, over the 4 MiB at which the
    // writer thread starts: line ends of every kind fall on their edges, so a gathered block
    // often ends in a CR held back for the LF that starts the next piece.
    std::string want;
    std::uint64_t want_w = 0;
    const std::string input = mixed_line_ends(6 * 1024 * 1024, 3, want, want_w);
    const std::size_t sizes[] = {777, 65536, 70001, 3, 100003, 65535, 131077, 64 * 1024 + 1};
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    std::string_view rest = input;
    for (std::size_t i = 0; !rest.empty(); ++i) {
        std::string piece(rest.substr(0, std::min(rest.size(), sizes[i % std::size(sizes)])));
        rest.remove_prefix(piece.size());
        if (i % 5 == 4) {
            ASSERT_FALSE(d->write(piece));
        } else {
            ASSERT_FALSE(d->write_taking(piece));
            EXPECT_TRUE(piece.empty());
        }
    }
    auto committed = d->commit();
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();
    EXPECT_TRUE(read_all(*path) == want) << "file content differs from the converted input";
    EXPECT_EQ(d->size(), want.size());
    EXPECT_EQ(d->crlf_size(), want_w);
}

TEST_F(maildir_test, line_ends_that_straddle_block_boundaries_are_converted_once) {
    // Blocks are 64 KiB up to 4 MiB, then 128 KiB on the writer thread. Lines so short that
    // CRLF, CR CR LF and bare CRs and LFs lie on every block boundary, in both phases.
    std::string want;
    std::uint64_t want_w = 0;
    const std::string input = mixed_line_ends(6 * 1024 * 1024, 0, want, want_w);
    auto path = store_in_odd_pieces(maildir(), input, 3, 100003, want, want_w);
    ASSERT_TRUE(path);
    EXPECT_EQ(path->filename().string().substr(path->filename().string().find(",S=")),
              size_suffix(want.size(), want_w));
}

TEST_F(maildir_test, abandon_stops_the_writer_thread_and_removes_the_file) {
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    std::string block(1000, 'w');
    block += "\r\n";
    for (int i = 0; i < 8 * 1024; ++i) {
        ASSERT_FALSE(d->write(block));
    }
    d->abandon();
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
    EXPECT_TRUE(std::holds_alternative<failure>(d->commit()));
    EXPECT_TRUE(list_dir(maildir() / "new").empty());
}

// ---------------------------------------------------------------------------------------------
// The durable path and the life of a delivery

TEST_F(maildir_test, commit_leaves_exactly_one_file_in_new) {
    auto name = next_name();
    auto d = must_begin(maildir(), name, create_0700);
    ASSERT_TRUE(d);
    EXPECT_EQ(list_dir(maildir() / "tmp"), std::vector<std::string>{name})
        << "the message is written in tmp/ first";
    ASSERT_FALSE(d->write("Subject: x\r\n\r\nhello\r\n"));
    auto committed = d->commit();
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();

    auto want_name = name + ",S=18,W=21";
    EXPECT_EQ(*path, maildir() / "new" / want_name);
    EXPECT_EQ(list_dir(maildir() / "new"), std::vector<std::string>{want_name});
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
    EXPECT_TRUE(list_dir(maildir() / "cur").empty());
    EXPECT_EQ(read_all(*path), "Subject: x\n\nhello\n");
    EXPECT_EQ(octal(mode_of(*path)), octal(0600));
}

TEST_F(maildir_test, write_and_commit_after_commit_fail) {
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    ASSERT_TRUE(std::holds_alternative<fs::path>(d->commit()));
    auto w = d->write("more");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->sys_errno, EBADF);
    auto again = d->commit();
    ASSERT_TRUE(std::holds_alternative<failure>(again));
    EXPECT_EQ(std::get<failure>(again).sys_errno, EBADF);
    EXPECT_EQ(list_dir(maildir() / "new").size(), 1u) << "the committed file stays";
}

TEST_F(maildir_test, destructor_removes_tmp_file) {
    {
        auto d = must_begin(maildir(), next_name(), create_0700);
        ASSERT_TRUE(d);
        ASSERT_FALSE(d->write("partial\r\n"));
        EXPECT_EQ(list_dir(maildir() / "tmp").size(), 1u);
    }
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
    EXPECT_TRUE(list_dir(maildir() / "new").empty());
}

TEST_F(maildir_test, abandon_removes_tmp_file_and_ends_the_delivery) {
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    ASSERT_FALSE(d->write("partial\r\n"));
    d->abandon();
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
    EXPECT_TRUE(std::holds_alternative<failure>(d->commit()));
    EXPECT_TRUE(list_dir(maildir() / "new").empty());
}

TEST_F(maildir_test, move_construction_transfers_the_file_and_a_held_cr) {
    auto name = next_name();
    std::optional<delivery> moved;
    {
        auto d = must_begin(maildir(), name, create_0700);
        ASSERT_TRUE(d);
        ASSERT_FALSE(d->write("a\r"));
        moved.emplace(std::move(*d));
    }
    EXPECT_EQ(list_dir(maildir() / "tmp"), std::vector<std::string>{name})
        << "destroying the moved-from delivery must not remove the file";
    ASSERT_FALSE(moved->write("\nb"));
    auto committed = moved->commit();
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();
    EXPECT_EQ(read_all(*path), "a\nb");
    EXPECT_EQ(path->filename().string(), name + ",S=3,W=4");
}

TEST_F(maildir_test, move_assignment_abandons_the_old_file) {
    auto first_name = next_name();
    auto second_name = next_name();
    auto first = must_begin(maildir(), first_name, create_0700);
    auto second = must_begin(maildir(), second_name, create_0700);
    ASSERT_TRUE(first && second);
    ASSERT_FALSE(second->write("second\r\n"));
    *first = std::move(*second);
    EXPECT_EQ(list_dir(maildir() / "tmp"), std::vector<std::string>{second_name});
    second.reset();
    EXPECT_EQ(list_dir(maildir() / "tmp"), std::vector<std::string>{second_name});
    auto committed = first->commit();
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();
    EXPECT_EQ(path->filename().string(), second_name + ",S=7,W=8");
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
}

TEST_F(maildir_test, commit_never_replaces_a_message_already_in_new) {
    auto name = next_name();
    auto d = must_begin(maildir(), name, create_0700);
    ASSERT_TRUE(d);
    auto taken = maildir() / "new" / (name + ",S=2,W=3");
    { std::ofstream{taken} << "another host's message"; }
    ASSERT_FALSE(d->write("a\r\n"));
    auto committed = d->commit();
    ASSERT_TRUE(std::holds_alternative<failure>(committed)) << "got a path, want EEXIST";
    const auto& f = std::get<failure>(committed);
    EXPECT_EQ(f.kind, error_kind::io) << "got " << to_string(f.kind);
    EXPECT_EQ(f.sys_errno, EEXIST) << f.str();
    EXPECT_EQ(read_all(taken), "another host's message");
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
}

TEST_F(maildir_test, existing_tmp_name_is_an_io_failure_and_left_alone) {
    ASSERT_TRUE(must_begin(maildir(), "probe", create_0700)); // creates the Maildir
    auto name = next_name();
    { std::ofstream{maildir() / "tmp" / name} << "someone else's"; }
    auto begun = delivery::begin(maildir(), name, create_0700);
    ASSERT_TRUE(std::holds_alternative<failure>(begun));
    const auto& f = std::get<failure>(begun);
    EXPECT_EQ(f.kind, error_kind::io) << "got " << to_string(f.kind);
    EXPECT_EQ(f.sys_errno, EEXIST) << f.str();
    EXPECT_EQ(read_all(maildir() / "tmp" / name), "someone else's");
}

TEST_F(maildir_test, symlink_in_tmp_is_not_followed) {
    ASSERT_TRUE(must_begin(maildir(), "probe", create_0700));
    auto target = root_.path() / "target";
    auto name = next_name();
    fs::create_symlink(target, maildir() / "tmp" / name);
    auto begun = delivery::begin(maildir(), name, create_0700);
    ASSERT_TRUE(std::holds_alternative<failure>(begun));
    EXPECT_FALSE(fs::exists(target)) << "O_EXCL|O_NOFOLLOW must not create the target";
}

// ---------------------------------------------------------------------------------------------
// Symbolic links inside the Maildir are never followed; the path to the Maildir is.

struct linked_subdirectory_case {
    std::string name;
    std::string sub;    ///< replaced by a link
    bool target_exists; ///< a dangling link must not get its target created either
    bool create;        ///< with a create mode: a missing target is not "missing" here
};

void PrintTo(const linked_subdirectory_case& row, std::ostream* os) {
    *os << row.name;
}

class linked_subdirectory : public maildir_test,
                            public ::testing::WithParamInterface<linked_subdirectory_case> {};

TEST_P(linked_subdirectory, refused_and_not_followed) {
    const auto& row = GetParam();
    ASSERT_TRUE(must_begin(maildir(), "probe", create_0700)); // creates the Maildir
    auto outside = root_.path() / "outside";
    if (row.target_exists) {
        fs::create_directory(outside);
    }
    fs::remove_all(maildir() / row.sub);
    fs::create_directory_symlink(outside, maildir() / row.sub);

    auto begun =
        delivery::begin(maildir(), next_name(), row.create ? create_0700 : maildir_options{});
    ASSERT_TRUE(std::holds_alternative<failure>(begun)) << "got a delivery, want a refusal";
    const auto& f = std::get<failure>(begun);
    EXPECT_EQ(f.kind, error_kind::io) << "got " << to_string(f.kind) << ": " << f.str();
    EXPECT_EQ(f.sys_errno, ELOOP) << f.str();
    EXPECT_EQ(f.what, "open " + (maildir() / row.sub).string() + " (a symbolic link)");
    EXPECT_EQ(fs::exists(outside), row.target_exists) << "nothing is created through the link";
    if (row.target_exists) {
        EXPECT_TRUE(list_dir(outside).empty()) << "nothing is written through the link";
    }
    EXPECT_TRUE(fs::is_symlink(maildir() / row.sub)) << "the link is left as it is";
}

INSTANTIATE_TEST_SUITE_P(
    table, linked_subdirectory,
    ::testing::Values(linked_subdirectory_case{"tmp", "tmp", true, true},
                      linked_subdirectory_case{"new", "new", true, true},
                      linked_subdirectory_case{"cur", "cur", true, true},
                      linked_subdirectory_case{"tmp_without_create", "tmp", true, false},
                      linked_subdirectory_case{"dangling_tmp", "tmp", false, true},
                      linked_subdirectory_case{"dangling_new", "new", false, true}),
    by_name{});

TEST_F(maildir_test, new_linked_during_a_delivery_is_not_followed) {
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    ASSERT_FALSE(d->write("hello\r\n"));
    auto outside = root_.path() / "outside";
    fs::create_directory(outside);
    fs::rename(maildir() / "new", root_.path() / "new.moved");
    fs::create_directory_symlink(outside, maildir() / "new");

    auto committed = d->commit();
    ASSERT_TRUE(std::holds_alternative<failure>(committed)) << "got a path, want a refusal";
    const auto& f = std::get<failure>(committed);
    EXPECT_EQ(f.kind, error_kind::io) << f.str();
    EXPECT_EQ(f.sys_errno, ELOOP) << f.str();
    EXPECT_TRUE(list_dir(outside).empty());
    EXPECT_TRUE(list_dir(root_.path() / "new.moved").empty());
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty()) << "the refused file is removed";
}

TEST_F(maildir_test, tmp_linked_during_a_delivery_is_not_followed) {
    // The file stays where it was created: renamed from the tmp/ that begin() opened (wherever
    // that directory is now) into the Maildir's new/, never through the link.
    auto name = next_name();
    auto d = must_begin(maildir(), name, create_0700);
    ASSERT_TRUE(d);
    ASSERT_FALSE(d->write("hello\r\n"));
    auto outside = root_.path() / "outside";
    fs::create_directory(outside);
    fs::rename(maildir() / "tmp", maildir() / "tmp.moved");
    fs::create_directory_symlink(outside, maildir() / "tmp");

    auto committed = d->commit();
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();
    EXPECT_EQ(list_dir(maildir() / "new"), std::vector<std::string>{name + ",S=6,W=7"});
    EXPECT_TRUE(list_dir(maildir() / "tmp.moved").empty());
    EXPECT_TRUE(list_dir(outside).empty());
}

TEST_F(maildir_test, abandon_removes_the_file_from_the_tmp_it_was_created_in) {
    auto name = next_name();
    auto d = must_begin(maildir(), name, create_0700);
    ASSERT_TRUE(d);
    auto outside = root_.path() / "outside";
    fs::create_directory(outside);
    { std::ofstream{outside / name} << "not the delivery's"; }
    fs::rename(maildir() / "tmp", maildir() / "tmp.moved");
    fs::create_directory_symlink(outside, maildir() / "tmp");
    d->abandon();
    EXPECT_TRUE(list_dir(maildir() / "tmp.moved").empty());
    EXPECT_EQ(read_all(outside / name), "not the delivery's");
}

TEST_F(maildir_test, link_on_the_path_to_the_maildir_is_followed) {
    // The operator's layout: a domain moved to another disk, linked from the mail root.
    auto elsewhere = root_.path() / "srv" / "example.org";
    fs::create_directories(elsewhere);
    fs::create_directory_symlink(elsewhere, root_.path() / "example.org");
    auto linked = root_.path() / "example.org" / "alice" / "Maildir";
    auto d = must_begin(linked, next_name(), create_0700);
    ASSERT_TRUE(d);
    ASSERT_FALSE(d->write("hello\r\n"));
    ASSERT_TRUE(std::holds_alternative<fs::path>(d->commit()));
    EXPECT_EQ(list_dir(elsewhere / "alice" / "Maildir" / "new").size(), 1u);

    // The Maildir itself may be such a link as well.
    fs::create_directories(root_.path() / "bob");
    fs::create_directory_symlink(elsewhere / "alice" / "Maildir", root_.path() / "bob" / "Maildir");
    auto again = must_begin(root_.path() / "bob" / "Maildir", next_name(), create_0700);
    ASSERT_TRUE(again);
    ASSERT_TRUE(std::holds_alternative<fs::path>(again->commit()));
    EXPECT_EQ(list_dir(elsewhere / "alice" / "Maildir" / "new").size(), 2u);
}

struct bad_name_case {
    std::string name;
    std::string unique_name;
};

void PrintTo(const bad_name_case& row, std::ostream* os) {
    *os << row.name;
}

class bad_names : public maildir_test, public ::testing::WithParamInterface<bad_name_case> {};

TEST_P(bad_names, refused) {
    auto begun = delivery::begin(maildir(), GetParam().unique_name, create_0700);
    ASSERT_TRUE(std::holds_alternative<failure>(begun));
    EXPECT_EQ(std::get<failure>(begun).sys_errno, EINVAL) << std::get<failure>(begun).str();
    EXPECT_FALSE(fs::exists(maildir())) << "nothing is created for a bad name";
}

INSTANTIATE_TEST_SUITE_P(table, bad_names,
                         ::testing::Values(bad_name_case{"empty", ""}, bad_name_case{"dot", "."},
                                           bad_name_case{"dotdot", ".."},
                                           bad_name_case{"hidden", ".x"},
                                           bad_name_case{"slash", "a/b"}),
                         by_name{});

// ---------------------------------------------------------------------------------------------
// A missing Maildir

TEST_F(maildir_test, missing_maildir_is_created_with_parents_and_mode) {
    auto deep = root_.path() / "example.org" / "alice" / "Maildir";
    umask_guard mask{027};
    auto d = must_begin(deep, next_name(), maildir_options{0770});
    ASSERT_TRUE(d);
    for (const auto& dir : {root_.path() / "example.org", root_.path() / "example.org" / "alice",
                            deep, deep / "cur", deep / "new", deep / "tmp"}) {
        EXPECT_TRUE(fs::is_directory(dir)) << dir;
        EXPECT_EQ(octal(mode_of(dir)), octal(0770)) << dir << ": the umask must not narrow it";
    }
    EXPECT_EQ(octal(mode_of(root_.path())), octal(0700)) << "existing parents are not changed";
}

TEST_F(maildir_test, missing_subdirectory_is_created) {
    fs::create_directories(maildir() / "cur");
    fs::create_directories(maildir() / "new");
    fs::permissions(maildir(), fs::perms{0711});
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    EXPECT_EQ(octal(mode_of(maildir() / "tmp")), octal(0700));
    EXPECT_EQ(octal(mode_of(maildir())), octal(0711)) << "an existing Maildir keeps its mode";
}

TEST_F(maildir_test, missing_maildir_is_refused_without_create_mode) {
    auto begun = delivery::begin(maildir(), next_name(), maildir_options{});
    ASSERT_TRUE(std::holds_alternative<failure>(begun));
    const auto& f = std::get<failure>(begun);
    EXPECT_EQ(f.kind, error_kind::missing) << "got " << to_string(f.kind);
    EXPECT_FALSE(fs::exists(maildir())) << "nothing is created when refusing";
}

TEST_F(maildir_test, missing_subdirectory_is_refused_without_create_mode) {
    fs::create_directories(maildir() / "cur");
    fs::create_directories(maildir() / "tmp");
    auto begun = delivery::begin(maildir(), next_name(), maildir_options{});
    ASSERT_TRUE(std::holds_alternative<failure>(begun));
    EXPECT_EQ(std::get<failure>(begun).kind, error_kind::missing);
    EXPECT_FALSE(fs::exists(maildir() / "new"));
}

TEST_F(maildir_test, maildir_that_is_a_file_is_an_io_failure) {
    { std::ofstream{maildir()} << "not a directory"; }
    auto begun = delivery::begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(std::holds_alternative<failure>(begun));
    EXPECT_EQ(std::get<failure>(begun).kind, error_kind::io);
    EXPECT_EQ(std::get<failure>(begun).sys_errno, ENOTDIR);
}

TEST_F(maildir_test, concurrent_creation_of_one_maildir_succeeds_everywhere) {
    // Two recipients of one message, or two messages, may create the same Maildir at once.
    constexpr int threads = 8;
    std::vector<std::string> results(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            auto begun = delivery::begin(maildir(), next_name(), create_0700);
            if (auto* f = std::get_if<failure>(&begun)) {
                results[static_cast<std::size_t>(t)] = f->str();
                return;
            }
            auto committed = std::get<delivery>(begun).commit();
            if (auto* f = std::get_if<failure>(&committed)) {
                results[static_cast<std::size_t>(t)] = f->str();
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    for (const auto& r : results) {
        EXPECT_EQ(r, "") << "got a failure, want success";
    }
    EXPECT_EQ(list_dir(maildir() / "new").size(), static_cast<std::size_t>(threads));
}

// ---------------------------------------------------------------------------------------------
// Failures from the filesystem. Each must leave new/ empty (and tmp/ clean).

class mounted_test : public maildir_test {
protected:
    /// Mounts a tmpfs at <root>/mnt, or skips the test when this process may not mount.
    void mount_tmpfs(const char* options) {
        mount_.emplace(root_.path() / "mnt", options);
        if (!mount_->mounted()) {
            GTEST_SKIP() << "mount -t tmpfs failed (" << mount_->error()
                         << "); this test needs CAP_SYS_ADMIN, e.g. root outside a container";
        }
    }
    /// Mounts an ext4 image of `megabytes` at <root>/mnt, or skips the test when this process
    /// may not (no loop devices, no mkfs.ext4, no CAP_SYS_ADMIN).
    void mount_ext4(int megabytes) {
        ext4_.emplace(root_.path() / "image", root_.path() / "mnt", megabytes);
        if (!ext4_->mounted()) {
            GTEST_SKIP() << "mounting an ext4 image through a loop device failed; this test "
                            "needs mkfs.ext4, loop devices and CAP_SYS_ADMIN";
        }
    }
    fs::path mounted_maildir() const { return root_.path() / "mnt" / "Maildir"; }

    /// Writes `chunk` up to `times` times into a new delivery to the mounted Maildir, until a
    /// write fails, then commits: the disk must fill, reported by a write (the first failure,
    /// perhaps the writer thread's, seen by the next write or by commit) as ENOSPC, and
    /// nothing may be left in new/ or tmp/.
    void expect_disk_full(const std::string& chunk, int times) {
        auto d = must_begin(mounted_maildir(), next_name(), create_0700);
        ASSERT_TRUE(d);
        std::optional<failure> first;
        for (int i = 0; i < times && !first; ++i) {
            first = d->write(chunk);
        }
        auto committed = d->commit();
        ASSERT_TRUE(std::holds_alternative<failure>(committed))
            << (first ? "commit after a failed write" : "everything fit");
        if (!first) {
            first = std::get<failure>(committed);
        }
        EXPECT_EQ(first->kind, error_kind::no_space) << first->str();
        EXPECT_EQ(first->sys_errno, ENOSPC);
        EXPECT_EQ(first->what.rfind("write ", 0), 0u) << "got what=" << first->what;
        EXPECT_TRUE(list_dir(mounted_maildir() / "new").empty());
        EXPECT_TRUE(list_dir(mounted_maildir() / "tmp").empty()) << "space is given back at once";
    }

    void TearDown() override {
        mount_.reset();
        ext4_.reset();
    }

    std::optional<tmpfs_mount> mount_;
    std::optional<ext4_image_mount> ext4_;
};

TEST_F(mounted_test, large_message_written_with_direct_io_is_stored_whole) {
    mount_ext4(48);
    if (IsSkipped()) {
        return;
    }
    // Past 4 MiB the writer thread gathers 1 MiB chunks and writes them with O_DIRECT; the
    // octets before the first aligned offset and the last partial chunk go through the page
    // cache. Writes of odd sizes put every kind of boundary at every one of those points.
    std::string want;
    std::uint64_t want_w = 0;
    const std::string input = mixed_line_ends(13 * 1024 * 1024 + 4321, 11, want, want_w);
    EXPECT_TRUE(store_in_odd_pieces(mounted_maildir(), input, 7, 300007, want, want_w));
    EXPECT_TRUE(list_dir(mounted_maildir() / "tmp").empty());
}

TEST_F(mounted_test, disk_full_during_direct_writes) {
    mount_ext4(12);
    if (IsSkipped()) {
        return;
    }
    // 32 MiB into 12 MiB: the disk fills during the writer thread's direct writes.
    expect_disk_full(std::string(65000, 'd') + "\r\n", 512);

    auto after = must_begin(mounted_maildir(), next_name(), create_0700);
    ASSERT_TRUE(after);
    ASSERT_FALSE(after->write(std::string(6 * 1024 * 1024, 'a') + "\r\n"));
    EXPECT_TRUE(std::holds_alternative<fs::path>(after->commit()))
        << "the failed delivery's space was given back";
}

TEST_F(mounted_test, read_only_filesystem_is_a_permission_failure) {
    mount_tmpfs("size=1m,mode=0700");
    if (IsSkipped()) {
        return;
    }
    ASSERT_TRUE(must_begin(mounted_maildir(), "probe", create_0700)); // creates the Maildir
    ASSERT_TRUE(mount_->remount_read_only()) << std::strerror(errno);

    auto begun = delivery::begin(mounted_maildir(), next_name(), create_0700);
    ASSERT_TRUE(std::holds_alternative<failure>(begun));
    const auto& f = std::get<failure>(begun);
    EXPECT_EQ(f.kind, error_kind::permission) << f.str();
    EXPECT_EQ(f.sys_errno, EROFS) << f.str();
    EXPECT_NE(f.what.find("/tmp/"), std::string::npos) << "got what=" << f.what;
    EXPECT_TRUE(list_dir(mounted_maildir() / "new").empty());
}

TEST_F(mounted_test, read_only_filesystem_refuses_creating_the_maildir) {
    mount_tmpfs("size=1m,mode=0700,ro");
    if (IsSkipped()) {
        return;
    }
    auto begun = delivery::begin(mounted_maildir(), next_name(), create_0700);
    ASSERT_TRUE(std::holds_alternative<failure>(begun));
    const auto& f = std::get<failure>(begun);
    EXPECT_EQ(f.kind, error_kind::permission) << f.str();
    EXPECT_EQ(f.sys_errno, EROFS) << f.str();
    EXPECT_EQ(f.what.rfind("mkdir ", 0), 0u) << "got what=" << f.what;
}

TEST_F(mounted_test, disk_full_during_write) {
    mount_tmpfs("size=32k,mode=0700");
    if (IsSkipped()) {
        return;
    }
    auto d = must_begin(mounted_maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    std::string chunk(1000, 'x');
    chunk += "\r\n";
    std::optional<failure> first;
    for (int i = 0; i < 256 && !first; ++i) {
        first = d->write(chunk);
    }
    ASSERT_TRUE(first) << "got no failure writing 256 KB into a 32 KB tmpfs";
    EXPECT_EQ(first->kind, error_kind::no_space) << first->str();
    EXPECT_EQ(first->sys_errno, ENOSPC);
    EXPECT_EQ(first->what.rfind("write ", 0), 0u) << "got what=" << first->what;
    EXPECT_TRUE(list_dir(mounted_maildir() / "tmp").empty()) << "space is given back at once";

    auto committed = d->commit();
    ASSERT_TRUE(std::holds_alternative<failure>(committed)) << "commit after a failed write";
    EXPECT_EQ(std::get<failure>(committed).kind, error_kind::no_space);
    EXPECT_TRUE(list_dir(mounted_maildir() / "new").empty());
    EXPECT_TRUE(list_dir(mounted_maildir() / "tmp").empty());
}

TEST_F(mounted_test, disk_full_on_the_writer_thread) {
    mount_tmpfs("size=6m,mode=0700");
    if (IsSkipped()) {
        return;
    }
    // 16 MiB into 6 MiB: the disk fills after the writer thread starts at 4 MiB.
    expect_disk_full(std::string(4094, 'v') + "\r\n", 4096);
}

TEST_F(mounted_test, disk_full_at_commit) {
    mount_tmpfs("size=32k,mode=0700");
    if (IsSkipped()) {
        return;
    }
    auto d = must_begin(mounted_maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    // 48 KB fits in the write buffer, so the disk fills up only when commit() flushes it.
    ASSERT_FALSE(d->write(std::string(48 * 1024, 'y')));
    auto committed = d->commit();
    ASSERT_TRUE(std::holds_alternative<failure>(committed));
    const auto& f = std::get<failure>(committed);
    EXPECT_EQ(f.kind, error_kind::no_space) << f.str();
    EXPECT_EQ(f.sys_errno, ENOSPC);
    EXPECT_TRUE(list_dir(mounted_maildir() / "new").empty());
    EXPECT_TRUE(list_dir(mounted_maildir() / "tmp").empty());

    auto after = must_begin(mounted_maildir(), next_name(), create_0700);
    ASSERT_TRUE(after);
    ASSERT_FALSE(after->write("small\r\n"));
    EXPECT_TRUE(std::holds_alternative<fs::path>(after->commit()))
        << "the failed delivery's space was given back";
}

TEST_F(maildir_test, failed_rename_leaves_new_empty_and_tmp_clean) {
    ASSERT_TRUE(must_begin(maildir(), "probe", create_0700)); // creates the Maildir
    auto d = must_begin(maildir(), next_name(), create_0700);
    ASSERT_TRUE(d);
    ASSERT_FALSE(d->write("hello\r\n"));
    immutable_dir frozen{maildir() / "new"};
    if (!frozen.set()) {
        GTEST_SKIP() << "chattr +i is not supported here (needs CAP_LINUX_IMMUTABLE and ext4, "
                        "xfs, btrfs or a recent tmpfs)";
    }
    auto committed = d->commit();
    ASSERT_TRUE(std::holds_alternative<failure>(committed));
    const auto& f = std::get<failure>(committed);
    EXPECT_EQ(f.kind, error_kind::permission) << f.str();
    EXPECT_EQ(f.sys_errno, EPERM) << f.str();
    EXPECT_EQ(f.what.rfind("rename ", 0), 0u) << "got what=" << f.what;
    EXPECT_TRUE(list_dir(maildir() / "new").empty());
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
}

// ---------------------------------------------------------------------------------------------
// Stale tmp/ files

void set_atime(const fs::path& path, std::chrono::system_clock::time_point when) {
    auto since = when.time_since_epoch();
    auto secs = std::chrono::floor<std::chrono::seconds>(since);
    struct timespec times[2] = {
        {static_cast<time_t>(secs.count()),
         static_cast<long>(std::chrono::nanoseconds{since - secs}.count())},
        {0, UTIME_OMIT},
    };
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
        << path << ": " << std::strerror(errno);
}

TEST_F(maildir_test, remove_stale_tmp_needs_old_atime_and_old_ctime) {
    // ctime cannot be set from user space: it is always "now" here. So the test moves `now`
    // instead: 40 hours ahead, every ctime is 40 hours old and only atime decides.
    ASSERT_TRUE(must_begin(maildir(), "probe", create_0700)); // creates the Maildir
    auto real_now = std::chrono::system_clock::now();
    auto tmp = maildir() / "tmp";
    { std::ofstream{tmp / "old_atime"} << "x"; }
    { std::ofstream{tmp / "recent_atime"} << "x"; }
    { std::ofstream{maildir() / "new" / "old_in_new"} << "x"; }
    fs::create_directory(tmp / "old_dir");
    fs::create_symlink(tmp / "old_atime", tmp / "old_link");
    set_atime(tmp / "old_atime", real_now - 48h);
    set_atime(tmp / "recent_atime", real_now + 10h); // 30 hours old at real_now + 40h
    set_atime(tmp / "old_dir", real_now - 48h);
    set_atime(tmp / "old_link", real_now - 48h);
    set_atime(maildir() / "new" / "old_in_new", real_now - 48h);

    EXPECT_EQ(remove_stale_tmp(maildir(), real_now), 0u)
        << "an old atime alone is not enough: ctime is recent";
    EXPECT_EQ(list_dir(tmp).size(), 4u);

    EXPECT_EQ(remove_stale_tmp(maildir(), real_now + 40h), 1u);
    EXPECT_EQ(list_dir(tmp), (std::vector<std::string>{"old_dir", "old_link", "recent_atime"}))
        << "only the regular file with both times older than 36 hours goes";
    EXPECT_TRUE(fs::exists(maildir() / "new" / "old_in_new")) << "new/ is never touched";

    EXPECT_EQ(remove_stale_tmp(maildir(), real_now + 40h, 24h), 1u)
        << "with max_age 24h, a 30-hour-old atime is stale too";
    EXPECT_EQ(list_dir(tmp), (std::vector<std::string>{"old_dir", "old_link"}));
}

TEST_F(maildir_test, remove_stale_tmp_leaves_a_linked_tmp_alone) {
    ASSERT_TRUE(must_begin(maildir(), "probe", create_0700)); // creates the Maildir
    auto outside = root_.path() / "outside";
    fs::create_directory(outside);
    { std::ofstream{outside / "old"} << "x"; }
    auto real_now = std::chrono::system_clock::now();
    set_atime(outside / "old", real_now - 48h);
    fs::remove(maildir() / "tmp");
    fs::create_directory_symlink(outside, maildir() / "tmp");
    EXPECT_EQ(remove_stale_tmp(maildir(), real_now + 40h), 0u);
    EXPECT_TRUE(fs::exists(outside / "old")) << "files behind a linked tmp/ are not the Maildir's";
}

TEST_F(maildir_test, remove_stale_tmp_without_maildir_removes_nothing) {
    EXPECT_EQ(remove_stale_tmp(maildir(), std::chrono::system_clock::now()), 0u);
}

// ---------------------------------------------------------------------------------------------
// Replacing a stored message

/// Writes `content` as cur/ or new/ `name` with the given mtime and mode.
fs::path put_message(const fs::path& maildir, const std::string& sub, const std::string& name,
                     const std::string& content, std::time_t mtime, mode_t mode) {
    auto path = maildir / sub / name;
    {
        std::ofstream out(path, std::ios::binary);
        out << content;
    }
    const struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
    EXPECT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
}

TEST_F(maildir_test, a_replacement_takes_the_old_files_place_flags_mtime_and_mode) {
    ASSERT_TRUE(must_begin(maildir(), next_name(), create_0700)); // makes cur/ new/ tmp/
    auto old_path = put_message(maildir(), "cur", "1700000000.M1P1Q1.mx,S=6,W=7:2,FS", "plain\n",
                                1600000000, 0640);
    util::unique_fd cur{::open((maildir() / "cur").c_str(), O_RDONLY | O_DIRECTORY)};
    auto old = stored_message_of(cur.get(), "cur", old_path.filename().string());
    ASSERT_TRUE(old);
    EXPECT_EQ(old->base(), "1700000000.M1P1Q1.mx,S=6,W=7");
    EXPECT_EQ(old->info(), ":2,FS");

    auto d = must_begin(maildir(), "1700000000.M1P1Q1.mx.resealed", {});
    ASSERT_TRUE(d);
    ASSERT_FALSE(d->write("sealed\r\ncopy\r\n"));
    bool removed_old = false;
    auto committed = d->commit_replacing(*old, removed_old);
    auto* path = std::get_if<fs::path>(&committed);
    ASSERT_NE(path, nullptr) << std::get<failure>(committed).str();
    EXPECT_TRUE(removed_old);
    EXPECT_EQ(path->filename().string(), "1700000000.M1P1Q1.mx.resealed,S=12,W=14:2,FS");
    EXPECT_EQ(path->parent_path().filename(), "cur");
    EXPECT_EQ(read_all(*path), "sealed\ncopy\n");
    EXPECT_FALSE(fs::exists(old_path));
    struct stat st {};
    ASSERT_EQ(::stat(path->c_str(), &st), 0);
    EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
}

TEST_F(maildir_test, a_replacement_whose_old_file_moved_meanwhile_says_so) {
    ASSERT_TRUE(must_begin(maildir(), next_name(), create_0700));
    auto old_path =
        put_message(maildir(), "new", "1700000001.M2P2Q2.mx,S=6,W=7", "plain\n", 1600000000, 0600);
    util::unique_fd new_dir{::open((maildir() / "new").c_str(), O_RDONLY | O_DIRECTORY)};
    auto old = stored_message_of(new_dir.get(), "new", old_path.filename().string());
    ASSERT_TRUE(old);
    EXPECT_EQ(old->info(), "");
    // A mail client moves it to cur/ and marks it seen while the copy is being written.
    fs::rename(old_path, maildir() / "cur" / (old_path.filename().string() + ":2,S"));
    auto d = must_begin(maildir(), "1700000001.M2P2Q2.mx.resealed", {});
    ASSERT_TRUE(d);
    ASSERT_FALSE(d->write("sealed\r\n"));
    bool removed_old = true;
    auto committed = d->commit_replacing(*old, removed_old);
    ASSERT_TRUE(std::holds_alternative<fs::path>(committed));
    EXPECT_FALSE(removed_old) << "the caller must look for the moved file";
    EXPECT_EQ(list_dir(maildir() / "new"),
              std::vector<std::string>{"1700000001.M2P2Q2.mx.resealed,S=7,W=8"});
}

TEST_F(maildir_test, a_replacement_never_overwrites_an_existing_copy) {
    ASSERT_TRUE(must_begin(maildir(), next_name(), create_0700));
    auto old_path =
        put_message(maildir(), "cur", "1700000002.M3P3Q3.mx:2,S", "plain\n", 1600000000, 0600);
    put_message(maildir(), "cur", "1700000002.M3P3Q3.mx.resealed,S=7,W=8:2,S", "other\n",
                1600000000, 0600);
    util::unique_fd cur{::open((maildir() / "cur").c_str(), O_RDONLY | O_DIRECTORY)};
    auto old = stored_message_of(cur.get(), "cur", old_path.filename().string());
    ASSERT_TRUE(old);
    auto d = must_begin(maildir(), "1700000002.M3P3Q3.mx.resealed", {});
    ASSERT_TRUE(d);
    ASSERT_FALSE(d->write("sealed\r\n"));
    bool removed_old = false;
    auto committed = d->commit_replacing(*old, removed_old);
    ASSERT_TRUE(std::holds_alternative<failure>(committed));
    EXPECT_EQ(std::get<failure>(committed).sys_errno, EEXIST);
    EXPECT_TRUE(fs::exists(old_path)) << "the plaintext stays when its copy cannot be placed";
    EXPECT_EQ(read_all(maildir() / "cur" / "1700000002.M3P3Q3.mx.resealed,S=7,W=8:2,S"), "other\n");
    EXPECT_TRUE(list_dir(maildir() / "tmp").empty());
}

TEST_F(maildir_test, folders_are_the_maildir_and_its_maildir_plus_plus_subfolders) {
    ASSERT_TRUE(must_begin(maildir(), next_name(), create_0700));
    for (const char* folder : {".Sent", ".Archive.2024", ".Drafts"}) {
        for (const char* sub : {"cur", "new", "tmp"}) {
            fs::create_directories(maildir() / folder / sub);
        }
    }
    fs::create_directories(maildir() / ".not-a-folder");
    fs::create_directories(maildir() / "courierimapkeywords");
    fs::create_directory_symlink(maildir() / ".Sent", maildir() / ".Linked");
    std::vector<std::string> names;
    for (const auto& f : maildir_folders(maildir())) {
        names.push_back(f.name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"Archive.2024", "Drafts", "INBOX", "Sent"}));
}

} // namespace
} // namespace mailseal::store
