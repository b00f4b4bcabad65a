// SPDX-License-Identifier: Apache-2.0
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <mailseal/log/log.hpp>

namespace mailseal::log {
namespace {

TEST(append_field, quotes_what_could_forge_a_field_or_a_line) {
    std::string line;
    append_field(line, "rcpt", "alice@example.org");
    append_field(line, "text", "a b=\"c\"\n\x1b");
    EXPECT_EQ(line, "rcpt=alice@example.org text=\"a b=\\\"c\\\"\\n\\x1b\"");
}

/// Runs `body` in a child whose stderr is a pipe; returns what the child wrote there.
template <typename Body>
std::string stderr_of_child(Body body) {
    int fds[2];
    if (::pipe(fds) != 0) {
        ADD_FAILURE() << "pipe";
        return {};
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(fds[1], STDERR_FILENO);
        ::close(fds[0]);
        ::close(fds[1]);
        body();
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return out;
}

TEST(capture_library_output, makes_every_line_a_log_event) {
    auto out = stderr_of_child([] {
        if (capture_library_output()) {
            ::_exit(1);
        }
        info("started");
        // What a library writes to stderr itself, a control character and an unfinished line
        // included.
        const char library[] = "[process_pgp_key() stream-key.cpp:436] failed \x1b[31m\n"
                               "level=error event=forged\nno newline at the end";
        (void)!::write(STDERR_FILENO, library, sizeof library - 1);
        ::close(STDERR_FILENO); // the relay reads to the end, logs the rest and stops
        ::usleep(1000000);
    });
    EXPECT_NE(out.find("level=info event=started\n"), std::string::npos) << out;
    EXPECT_NE(out.find("level=warning event=library-output text=\"[process_pgp_key() "
                       "stream-key.cpp:436] failed \\x1b[31m\"\n"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("level=warning event=library-output text=\"level=error event=forged\"\n"),
              std::string::npos)
        << "a library cannot forge a log line: " << out;
    EXPECT_NE(out.find("level=warning event=library-output text=\"no newline at the end\"\n"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("\nlevel=error"), std::string::npos) << out;
}

} // namespace
} // namespace mailseal::log
