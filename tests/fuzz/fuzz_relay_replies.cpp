// SPDX-License-Identifier: Apache-2.0
// Fuzzes the parser of the next hop's replies (include/mailseal/relay/reply_parser.hpp): the
// bytes a server sends, fed whole and in pieces.
//
// Oracles: the replies (and the error, if any) do not depend on how the bytes were split;
// every reply has a three-digit code and at least one line, none with a line end in it; and a
// reply we pass on to our own client (peer_reply::to_reply) renders as one reply with the same
// code and as many lines, so text from the next hop cannot add a reply or a line of its own.
//
// Input (split_input.hpp): no options or choices; the cut lengths split the payload.

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/relay/reply_parser.hpp>

#include "oracle.hpp"
#include "split_input.hpp"

namespace mailseal::relay {
namespace {

using fuzz::require;

using result = std::variant<peer_reply, std::string>;

bool same(const result& a, const result& b) {
    if (a.index() != b.index()) {
        return false;
    }
    if (const auto* error = std::get_if<std::string>(&a)) {
        return *error == std::get<std::string>(b);
    }
    const auto& x = std::get<peer_reply>(a);
    const auto& y = std::get<peer_reply>(b);
    return x.code == y.code && x.enhanced == y.enhanced && x.lines == y.lines;
}

std::vector<result> parse(const std::vector<std::string_view>& pieces) {
    reply_parser parser;
    std::vector<result> out;
    for (std::string_view piece : pieces) {
        parser.feed(piece);
        while (auto next = parser.next()) {
            out.push_back(std::move(*next));
            if (std::holds_alternative<std::string>(out.back())) {
                return out; // the caller drops the connection
            }
        }
    }
    return out;
}

/// RFC 5321 §4.2: every line is the code, "-" on all but the last, text, CRLF; no CR or LF
/// stands anywhere else.
void check_rendered(const lmtp::reply& r, std::uint16_t code, std::size_t lines) {
    const std::string wire = r.render();
    const std::string digits = std::to_string(code);
    std::size_t start = 0;
    for (std::size_t i = 0; i < lines; ++i) {
        const std::size_t end = wire.find("\r\n", start);
        require(end != std::string::npos, "a reply passed on has fewer lines");
        const std::string_view line = std::string_view(wire).substr(start, end - start);
        require(line.find_first_of("\r\n") == std::string_view::npos,
                "a reply passed on has a bare CR or LF");
        const bool last = i + 1 == lines;
        require(line.starts_with(digits) &&
                    (last ? line.size() == 3 || line[3] == ' ' : line.size() > 3 && line[3] == '-'),
                "a reply passed on has a line that is not its own");
        start = end + 2;
    }
    require(start == wire.size(), "a reply passed on has more lines");
}

void check_reply(const peer_reply& r) {
    require(r.code <= 999, "a code of more than three digits");
    require(!r.lines.empty(), "a reply without lines");
    for (const auto& line : r.lines) {
        require(line.find('\n') == std::string::npos, "a line end inside a reply line");
    }
    require(!r.enhanced || r.enhanced->cls == 2 || r.enhanced->cls == 4 || r.enhanced->cls == 5,
            "an enhanced code of class other than 2, 4 or 5");
    const auto passed_on = r.to_reply();
    require(passed_on.has_value() == (r.code >= 200 && r.code <= 599),
            "a reply passed on with a code outside 2xx..5xx, or one in it refused");
    if (passed_on) {
        check_rendered(*passed_on, r.code, r.lines.size());
    }
}

} // namespace
} // namespace mailseal::relay

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace mailseal::relay;
    const auto in = mailseal::fuzz::split_input::parse(data, size);
    const auto whole = parse({in.payload});
    const auto pieces = parse(in.pieces());
    require(whole.size() == pieces.size(), "another number of replies when fed in pieces");
    for (std::size_t i = 0; i < whole.size(); ++i) {
        require(same(whole[i], pieces[i]), "another reply when fed in pieces");
        if (const auto* r = std::get_if<peer_reply>(&whole[i])) {
            check_reply(*r);
        }
    }
    return 0;
}
