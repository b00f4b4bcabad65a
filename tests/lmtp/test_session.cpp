// SPDX-License-Identifier: Apache-2.0
// Session tests. Most are golden transcripts (tests/lmtp/transcripts/*.txt, format in the README
// there), each run three ways: fed whole, byte by byte, and cut in two at every offset. The
// rest check API contracts a transcript cannot express.

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/lmtp/session.hpp>

namespace mailseal::lmtp {
namespace {

// Every status a transcript can name by code and enhanced code. Where two share both (500
// 5.5.1), the first is used and the transcript gives the text.
const std::vector<status>& all_statuses() {
    static const std::vector<status> list{
        replies::greeting,
        replies::lhlo,
        replies::closing,
        replies::too_many_connections,
        replies::timeout,
        replies::shutting_down,
        replies::ok,
        replies::sender_ok,
        replies::recipient_ok,
        replies::cannot_vrfy,
        replies::start_data,
        replies::delivered,
        replies::unknown_command,
        replies::use_lhlo,
        replies::line_too_long,
        replies::bad_command_syntax,
        replies::syntax_error,
        replies::bad_sender_syntax,
        replies::bad_recipient_syntax,
        replies::bad_sequence,
        replies::no_valid_recipients,
        replies::unknown_parameter,
        replies::smtputf8_required,
        replies::unknown_recipient,
        replies::too_many_recipients,
        replies::message_too_big,
        replies::data_line_too_long,
        replies::disk_full,
        replies::over_quota_temporary,
        replies::over_quota_permanent,
        replies::local_error,
        replies::mailbox_unavailable,
    };
    return list;
}

std::string unescape(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\' || i + 1 == s.size()) {
            out.push_back(s[i]);
            continue;
        }
        const char c = s[++i];
        switch (c) {
        case 'r':
            out.push_back('\r');
            break;
        case 'n':
            out.push_back('\n');
            break;
        case 't':
            out.push_back('\t');
            break;
        case 'x':
            out.push_back(
                static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
            i += 2;
            break;
        default:
            out.push_back(c);
            break;
        }
    }
    return out;
}

std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (u < 0x20 || u >= 0x7f) {
            constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

// Splits "550 5.1.1 some text" into a reply from the table, with the text if one is given.
reply parse_reply(std::string_view spec) {
    std::istringstream in{std::string(spec)};
    int code = 0;
    std::string enh;
    in >> code >> enh;
    std::string text;
    std::getline(in >> std::ws, text);
    unsigned cls = 0;
    unsigned subject = 0;
    unsigned detail = 0;
    if (std::sscanf(enh.c_str(), "%u.%u.%u", &cls, &subject, &detail) != 3) {
        ADD_FAILURE() << "bad reply spec: " << spec;
        return replies::local_error;
    }
    const enhanced_code want{static_cast<std::uint8_t>(cls), static_cast<std::uint16_t>(subject),
                             static_cast<std::uint16_t>(detail)};
    for (const status& s : all_statuses()) {
        if (s.code() == code && s.enhanced() == want) {
            return text.empty() ? reply(s) : reply(s, text);
        }
    }
    ADD_FAILURE() << "no status in the table for " << spec;
    return replies::local_error;
}

// One step of a transcript: client bytes, or something the caller of the session does.
struct step {
    enum class kind { client, verified, complete, timeout, shutdown, check_phase } what;
    std::string bytes;     // client
    std::size_t index = 0; // complete
    std::string arg;       // verified: "accept" or reply spec; complete: reply spec;
                           // check_phase: phase name
};

// What came out of the session, normalized so that runs can be compared: adjacent body
// events are merged (how a body is chunked depends on how the input was split).
struct record {
    bool body = false;
    std::string text; // a rendered line without CRLF, or raw body octets
    friend bool operator==(const record&, const record&) = default;
};

std::string show(const std::vector<record>& records) {
    std::string out;
    for (const record& r : records) {
        out += r.body ? "E: body " + escape(r.text) : r.text;
        out += '\n';
    }
    return out;
}

struct transcript {
    session_options options{"mx.example.org", {}};
    std::map<std::string, reply> refusals;
    // V: lines answer verify_recipient events; without them the harness answers each at once,
    // from the P: lines.
    bool manual_verification = false;
    std::vector<step> steps;
    std::vector<record> want;
};

transcript load(const std::filesystem::path& file) {
    transcript t;
    std::ifstream in(file);
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.empty() || line[0] == '#') {
            continue;
        }
        if (line.size() < 3 || line[1] != ':' || (line.size() > 2 && line[2] != ' ')) {
            ADD_FAILURE() << file.filename() << ":" << number << ": bad line: " << line;
            continue;
        }
        const char tag = line[0];
        const std::string rest = line.substr(3);
        auto client = [&](std::string bytes) {
            if (t.steps.empty() || t.steps.back().what != step::kind::client) {
                t.steps.push_back({step::kind::client, {}, 0, {}});
            }
            t.steps.back().bytes += bytes;
        };
        std::istringstream words(rest);
        std::string first;
        words >> first;
        switch (tag) {
        case 'C':
            client(unescape(rest) + "\r\n");
            break;
        case 'R':
            client(unescape(rest));
            break;
        case 'S':
            t.want.push_back({false, "S: " + rest});
            break;
        case 'E':
            if (first == "body") {
                t.want.push_back(
                    {true, unescape(rest.substr(std::min<std::size_t>(rest.size(), 5)))});
            } else {
                t.want.push_back({false, "E: " + rest});
            }
            break;
        case 'A':
            t.steps.push_back(
                {step::kind::complete, {}, std::stoul(first), rest.substr(first.size() + 1)});
            break;
        case 'V':
            t.manual_verification = true;
            t.steps.push_back({step::kind::verified, {}, 0, rest});
            break;
        case 'T':
            t.steps.push_back(
                {first == "timeout" ? step::kind::timeout : step::kind::shutdown, {}, 0, {}});
            break;
        case 'Q':
            t.steps.push_back({step::kind::check_phase, {}, 0, first});
            t.want.push_back({false, "Q: " + first});
            break;
        case 'P': {
            std::string path;
            words >> path;
            std::string spec;
            std::getline(words >> std::ws, spec);
            t.refusals.emplace(path, parse_reply(spec));
            break;
        }
        case 'O': {
            std::string value;
            words >> value;
            auto& l = t.options.limits;
            if (first == "hostname") {
                t.options.hostname = value;
            } else if (first == "message_size") {
                l.message_size = std::stoull(value);
            } else if (first == "recipients") {
                l.recipients = std::stoul(value);
            } else if (first == "command_line") {
                l.command_line = std::stoul(value);
            } else if (first == "data_line") {
                l.data_line = std::stoul(value);
            } else {
                ADD_FAILURE() << file.filename() << ":" << number << ": unknown option " << first;
            }
            break;
        }
        default:
            ADD_FAILURE() << file.filename() << ":" << number << ": unknown tag " << tag;
        }
    }
    if (t.manual_verification && !t.refusals.empty()) {
        ADD_FAILURE() << file.filename() << ": P: lines do nothing when V: lines answer";
    }
    return t;
}

std::string describe(const envelope& env) {
    std::string out = env.sender ? '<' + env.sender->str() + '>' : std::string("<>");
    if (env.parameters.size) {
        out += " SIZE=" + std::to_string(*env.parameters.size);
    }
    if (env.parameters.body != body_type::unspecified) {
        out += " BODY=" + std::string(to_string(env.parameters.body));
    }
    if (env.parameters.smtputf8) {
        out += " SMTPUTF8";
    }
    out += " ->";
    for (const address& a : env.recipients) {
        out += " <" + a.str() + '>';
    }
    return out;
}

// Drains the session's events into `out` and returns the recipient of a verify_recipient
// event, which is recorded only when `record_verify`. Fails when one batch holds two body
// events in a row (the session must coalesce a feed's body octets into one event) or anything
// after verify_recipient (the session must wait for the answer).
std::optional<address> collect(session& s, std::vector<record>& out, bool record_verify) {
    bool previous_body = false;
    std::optional<address> asked;
    for (event& e : s.take_events()) {
        const bool is_body = std::holds_alternative<events::body>(e);
        EXPECT_FALSE(is_body && previous_body) << "two body events from one call";
        previous_body = is_body;
        EXPECT_FALSE(asked) << "an event after verify_recipient <" << asked->str() << ">";
        if (auto* verify = std::get_if<events::verify_recipient>(&e)) {
            EXPECT_EQ(s.current_phase(), session::phase::verifying)
                << "verify_recipient outside the verifying phase";
            asked = verify->recipient;
            if (record_verify) {
                out.push_back({false, "E: verify <" + verify->recipient.str() + '>'});
            }
        } else if (auto* send = std::get_if<events::send>(&e)) {
            const std::string wire = send->what.render();
            std::size_t start = 0;
            while (start < wire.size()) {
                const std::size_t end = wire.find("\r\n", start);
                if (end == std::string::npos) {
                    ADD_FAILURE() << "reply does not end in CRLF: " << escape(wire);
                    break;
                }
                out.push_back({false, "S: " + wire.substr(start, end - start)});
                start = end + 2;
            }
        } else if (auto* begin = std::get_if<events::begin_data>(&e)) {
            out.push_back({false, "E: begin_data " + describe(begin->env)});
        } else if (auto* body = std::get_if<events::body>(&e)) {
            EXPECT_FALSE(body->bytes.empty()) << "empty body event";
            if (!out.empty() && out.back().body) {
                out.back().text += body->bytes;
            } else {
                out.push_back({true, body->bytes});
            }
        } else if (auto* end = std::get_if<events::end_data>(&e)) {
            out.push_back({false, "E: end_data " + std::to_string(end->recipients)});
        } else if (auto* discard = std::get_if<events::discard_data>(&e)) {
            out.push_back({false, "E: discard " + discard->why.summary()});
        } else if (std::holds_alternative<events::close>(e)) {
            out.push_back({false, "E: close"});
        }
    }
    return asked;
}

// Collects the events of one call. Unless the transcript answers verifications itself, each
// verify_recipient is answered at once from the P: lines, as a caller whose check never waits.
void drain(session& s, const transcript& t, std::vector<record>& out) {
    auto asked = collect(s, out, t.manual_verification);
    while (asked && !t.manual_verification) {
        const auto it = t.refusals.find('<' + asked->str() + '>');
        s.recipient_verified(it == t.refusals.end() ? std::nullopt
                                                    : std::optional<reply>(it->second));
        asked = collect(s, out, false);
    }
}

// How the client bytes of a transcript reach feed().
struct feeding {
    enum class mode { whole, bytewise, split } how;
    std::size_t offset = 0; // split: global offset into all client bytes of the transcript
};

std::vector<record> run(const transcript& t, feeding f) {
    session s(t.options);
    std::vector<record> out;
    s.start();
    drain(s, t, out);
    std::size_t base = 0; // global offset of the current client step
    for (const step& st : t.steps) {
        switch (st.what) {
        case step::kind::client: {
            const std::string_view bytes = st.bytes;
            if (f.how == feeding::mode::bytewise) {
                for (char c : bytes) {
                    s.feed(std::string_view(&c, 1));
                    drain(s, t, out);
                }
            } else if (f.how == feeding::mode::split && f.offset > base &&
                       f.offset < base + bytes.size()) {
                s.feed(bytes.substr(0, f.offset - base));
                drain(s, t, out);
                s.feed(bytes.substr(f.offset - base));
                drain(s, t, out);
            } else {
                s.feed(bytes);
                drain(s, t, out);
            }
            base += bytes.size();
            break;
        }
        case step::kind::verified:
            s.recipient_verified(st.arg == "accept" ? std::nullopt
                                                    : std::optional<reply>(parse_reply(st.arg)));
            drain(s, t, out);
            break;
        case step::kind::complete:
            s.complete_recipient(st.index, parse_reply(st.arg));
            drain(s, t, out);
            break;
        case step::kind::timeout:
            s.timed_out();
            drain(s, t, out);
            break;
        case step::kind::shutdown:
            s.shut_down();
            drain(s, t, out);
            break;
        case step::kind::check_phase:
            out.push_back({false, "Q: " + std::string(to_string(s.current_phase()))});
            break;
        }
    }
    return out;
}

std::vector<std::filesystem::path> transcript_files() {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(TRANSCRIPT_DIR)) {
        if (entry.path().extension() == ".txt") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

class transcript_test : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(transcript_test, whole_bytewise_and_every_split_agree) {
    const transcript t = load(GetParam());
    ASSERT_FALSE(t.want.empty()) << "transcript expects nothing";

    const auto whole = run(t, {feeding::mode::whole});
    EXPECT_TRUE(whole == t.want) << "fed whole\ngot:\n" << show(whole) << "want:\n" << show(t.want);

    const auto bytewise = run(t, {feeding::mode::bytewise});
    EXPECT_TRUE(bytewise == t.want) << "fed byte by byte\ngot:\n"
                                    << show(bytewise) << "want:\n"
                                    << show(t.want);

    std::size_t total = 0;
    for (const step& st : t.steps) {
        total += st.bytes.size();
    }
    for (std::size_t offset = 1; offset < total; ++offset) {
        const auto split = run(t, {feeding::mode::split, offset});
        if (split != t.want) {
            ADD_FAILURE() << "cut at offset " << offset << "\ngot:\n"
                          << show(split) << "want:\n"
                          << show(t.want);
            break;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    lmtp, transcript_test, ::testing::ValuesIn(transcript_files()), [](const auto& test) {
        std::string name = test.param.stem().string();
        std::replace_if(
            name.begin(), name.end(),
            [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
        return name;
    });

// --- API contracts -----------------------------------------------------------------------

// Feeds `bytes`, accepting every recipient the session asks about.
void feed_accepting(session& s, std::string_view bytes) {
    s.feed(bytes);
    while (s.current_phase() == session::phase::verifying) {
        s.recipient_verified(std::nullopt);
    }
}

std::vector<std::string> rendered(session& s) {
    std::vector<std::string> out;
    for (event& e : s.take_events()) {
        if (auto* send = std::get_if<events::send>(&e)) {
            out.push_back(send->what.render());
        }
    }
    return out;
}

session_options small_options() {
    return {"mx.example.org", {}};
}

TEST(session, over_long_line_is_skipped_not_stored) {
    session s(small_options());
    s.start();
    s.take_events();
    // 16 MiB without a line end, in 64 KiB reads as the server would deliver them.
    const std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 256; ++i) {
        s.feed(chunk);
        ASSERT_TRUE(s.take_events().empty()) << "reply before the line ended, at read " << i;
    }
    s.feed("\r\nNOOP\r\n");
    const auto got = rendered(s);
    const std::vector<std::string> want{"500 5.5.2 Line too long\r\n", "250 2.0.0 Ok\r\n"};
    EXPECT_EQ(got, want);
}

TEST(session, one_body_event_per_feed) {
    session s(small_options());
    feed_accepting(s, "LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    s.take_events();
    std::string message;
    for (int i = 0; i < 1000; ++i) {
        message += "line " + std::to_string(i) + "\r\n..stuffed\r\n";
    }
    s.feed(message);
    auto got = s.take_events();
    ASSERT_EQ(got.size(), 1U);
    const auto* body = std::get_if<events::body>(&got[0]);
    ASSERT_NE(body, nullptr);
    EXPECT_EQ(body->bytes.size(), message.size() - 1000);
    EXPECT_EQ(s.current_phase(), session::phase::data);
}

TEST(session, envelope_of_begin_data) {
    session s(small_options());
    feed_accepting(s, "LHLO client.example\r\nMAIL FROM:<a@b> SIZE=10 BODY=8BITMIME\r\n"
                      "RCPT TO:<c@d>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    const envelope* env = nullptr;
    const auto got = s.take_events();
    for (const event& e : got) {
        if (const auto* b = std::get_if<events::begin_data>(&e)) {
            env = &b->env;
        }
    }
    ASSERT_NE(env, nullptr);
    EXPECT_EQ(env->lhlo_name, "client.example");
    ASSERT_TRUE(env->sender.has_value());
    EXPECT_EQ(env->sender->str(), "a@b");
    EXPECT_EQ(env->parameters.size, std::optional<std::uint64_t>(10));
    EXPECT_EQ(env->parameters.body, body_type::eight_bit_mime);
    // RFC 2033 §4.2: a repeated forward-path is a recipient of its own.
    const std::vector<address> want{{"c", "d"}, {"c", "d"}};
    EXPECT_EQ(env->recipients, want);
}

TEST(session, completion_outside_delivery_or_repeated_is_ignored) {
    session s(small_options());
    s.complete_recipient(0, replies::delivered);
    EXPECT_TRUE(s.take_events().empty()) << "completion while idle produced events";

    feed_accepting(s, "LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
                      "x\r\n.\r\n");
    s.take_events();
    ASSERT_EQ(s.current_phase(), session::phase::delivering);
    s.complete_recipient(2, replies::delivered);
    EXPECT_TRUE(s.take_events().empty()) << "out-of-range completion produced events";
    s.complete_recipient(1, replies::local_error);
    s.complete_recipient(1, replies::delivered);
    EXPECT_TRUE(s.take_events().empty()) << "recipient 1 answered before recipient 0";
    s.complete_recipient(0, replies::delivered);
    const std::vector<std::string> want{
        "250 2.0.0 <a@b> Delivered\r\n",
        "451 4.3.0 <c@d> Temporary local problem, try again later\r\n",
    };
    EXPECT_EQ(rendered(s), want);
    EXPECT_EQ(s.current_phase(), session::phase::idle);
    EXPECT_FALSE(s.in_transaction());
}

TEST(session, verify_event_carries_the_recipient_and_waits) {
    session s(small_options());
    s.feed("LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<@relay.example:\"x y\"@d>\r\nNOOP\r\n");
    auto got = s.take_events();
    ASSERT_EQ(got.size(), 3U) << "want the LHLO and MAIL replies, then the verification";
    const auto* verify = std::get_if<events::verify_recipient>(&got.back());
    ASSERT_NE(verify, nullptr) << "the last event is not verify_recipient";
    const address want{"x y", "d"};
    EXPECT_EQ(verify->recipient, want)
        << "got " << verify->recipient.str() << ", want " << want.str();
    EXPECT_EQ(s.current_phase(), session::phase::verifying);

    s.recipient_verified(reply(replies::unknown_recipient, "No such user here"));
    const std::vector<std::string> replies{"550 5.1.1 No such user here\r\n", "250 2.0.0 Ok\r\n"};
    EXPECT_EQ(rendered(s), replies);
    EXPECT_EQ(s.current_phase(), session::phase::command);
}

// A stray answer must neither produce a reply nor change the state: the client was promised
// nothing by it.
TEST(session, verification_outside_verifying_is_ignored) {
    struct {
        std::string_view name;
        std::string_view input;
        session::phase phase;
    } const table[] = {
        {"before LHLO", "", session::phase::idle},
        {"after LHLO", "LHLO c\r\n", session::phase::idle},
        {"after MAIL", "LHLO c\r\nMAIL FROM:<a@b>\r\n", session::phase::command},
        {"after an answered RCPT", "LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n",
         session::phase::command},
        {"in DATA", "LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx",
         session::phase::data},
        {"delivering", "LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n",
         session::phase::delivering},
        {"after QUIT", "QUIT\r\n", session::phase::closed},
    };
    for (const auto& row : table) {
        for (const bool refuse : {false, true}) {
            session s(small_options());
            feed_accepting(s, row.input);
            s.take_events();
            ASSERT_EQ(s.current_phase(), row.phase) << row.name;
            s.recipient_verified(refuse ? std::optional<reply>(replies::unknown_recipient)
                                        : std::nullopt);
            EXPECT_TRUE(s.take_events().empty())
                << row.name << (refuse ? ", refusing" : ", accepting") << ": produced events";
            EXPECT_EQ(s.current_phase(), row.phase)
                << row.name << ": got " << to_string(s.current_phase()) << ", want "
                << to_string(row.phase);
        }
    }
}

TEST(session, phases_and_transaction_state) {
    session s(small_options());
    // An empty input stands for the caller accepting the recipient being verified.
    struct {
        std::string_view input;
        session::phase phase;
        bool in_transaction;
    } const table[] = {
        {"LHLO c\r\n", session::phase::idle, false},
        {"MAIL FROM:<a@b>\r\n", session::phase::command, true},
        {"RCPT TO:<c@d>\r\n", session::phase::verifying, true},
        {"DATA\r\n", session::phase::verifying, true},
        {"", session::phase::data, true},
        {"hello\r\n.\r\n", session::phase::delivering, true},
        {"NOOP\r\n", session::phase::delivering, true},
    };
    for (const auto& row : table) {
        if (row.input.empty()) {
            s.recipient_verified(std::nullopt);
        } else {
            s.feed(row.input);
        }
        const std::string step = row.input.empty() ? "accepting" : "after " + escape(row.input);
        EXPECT_EQ(s.current_phase(), row.phase) << step << ": got " << to_string(s.current_phase())
                                                << ", want " << to_string(row.phase);
        EXPECT_EQ(s.in_transaction(), row.in_transaction) << step;
    }
    s.timed_out();
    EXPECT_EQ(s.current_phase(), session::phase::closed);
    EXPECT_FALSE(s.in_transaction());
    s.take_events();
    s.feed("NOOP\r\n");
    s.timed_out();
    s.shut_down();
    s.complete_recipient(0, replies::delivered);
    s.recipient_verified(std::nullopt);
    EXPECT_TRUE(s.take_events().empty()) << "a closed session produced events";
}

TEST(session, phase_names) {
    EXPECT_EQ(to_string(session::phase::idle), "idle");
    EXPECT_EQ(to_string(session::phase::command), "command");
    EXPECT_EQ(to_string(session::phase::verifying), "verifying");
    EXPECT_EQ(to_string(session::phase::data), "data");
    EXPECT_EQ(to_string(session::phase::delivering), "delivering");
    EXPECT_EQ(to_string(session::phase::closed), "closed");
}

} // namespace
} // namespace mailseal::lmtp
