// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Running another program (postconf, doveadm) from a one-shot tool: found through PATH,
/// without a shell, waited for.

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <fcntl.h>
#include <optional>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <variant>
#include <vector>

#include <mailseal/util/errno_text.hpp>
#include <mailseal/util/unique_fd.hpp>

extern char** environ;

namespace mailseal::util {

namespace detail {

/// Starts argv[0] with standard output on `out_fd` (or inherited when -1); the pid, or why not.
inline std::variant<pid_t, std::string> spawn(const std::vector<std::string>& argv, int out_fd) {
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (out_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    }
    pid_t pid = 0;
    int err = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) {
        return argv[0] + ": " + errno_text(err);
    }
    return pid;
}

/// Waits for `pid`: nullopt when it exited 0, else why not.
inline std::optional<std::string> wait_for(pid_t pid, const std::string& name) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return name + ": waitpid: " + errno_text(errno);
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return std::nullopt;
    }
    return name + (WIFEXITED(status) ? " exited " + std::to_string(WEXITSTATUS(status))
                                     : std::string(" was killed"));
}

} // namespace detail

/// Runs `argv` and waits for it: nullopt when it exits 0, else why not.
inline std::optional<std::string> run_command(const std::vector<std::string>& argv) {
    auto started = detail::spawn(argv, -1);
    if (auto* why = std::get_if<std::string>(&started)) {
        return *why;
    }
    return detail::wait_for(std::get<pid_t>(started), argv[0]);
}

/// Runs `argv` and returns what it wrote to standard output (its standard error stays the
/// caller's), or why it could not run or did not exit 0. Output past `limit` octets is read
/// and dropped, so the program never blocks on a full pipe.
inline std::variant<std::string, std::string> command_output(const std::vector<std::string>& argv,
                                                             std::size_t limit = 1 << 20) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        return std::variant<std::string, std::string>(std::in_place_index<1>,
                                                      "pipe: " + errno_text(errno));
    }
    unique_fd read_end(fds[0]);
    unique_fd write_end(fds[1]);
    auto started = detail::spawn(argv, write_end.get());
    (void)write_end.close();
    if (auto* why = std::get_if<std::string>(&started)) {
        return std::variant<std::string, std::string>(std::in_place_index<1>, *why);
    }
    std::string output;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (output.size() < limit) {
            output.append(buffer, std::min(static_cast<std::size_t>(n), limit - output.size()));
        }
    }
    if (auto why = detail::wait_for(std::get<pid_t>(started), argv[0])) {
        return std::variant<std::string, std::string>(std::in_place_index<1>, *why);
    }
    return std::variant<std::string, std::string>(std::in_place_index<0>, std::move(output));
}

} // namespace mailseal::util
