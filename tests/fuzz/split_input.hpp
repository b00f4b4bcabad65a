// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The input layout of the fuzz targets that feed a byte stream in pieces, so that libFuzzer
/// chooses the split points and the harness's decisions along with the bytes:
///
///     byte 0        options, each target's own bits
///     byte 1        low nibble: how many cut lengths follow; high nibble: how many choices
///     cut lengths   the pieces are (length + 1) octets long, the lengths used in turn; with
///                   none the payload is fed whole
///     choices       octets the target reads in turn for its decisions; with none every
///                   choice is 0
///     payload       the rest: the bytes fed to the code under test
///
/// A seed is its payload behind two zero octets: fed whole, every option and choice 0.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace mailseal::fuzz {

struct split_input {
    std::uint8_t options = 0;
    std::span<const std::uint8_t> cuts;
    std::span<const std::uint8_t> choices;
    std::string_view payload;

    /// Reads the layout above; a short input has what it has, and the rest empty.
    static split_input parse(const std::uint8_t* data, std::size_t size) {
        std::span<const std::uint8_t> in(data, size);
        auto take = [&in](std::size_t n) {
            auto part = in.first(std::min(n, in.size()));
            in = in.subspan(part.size());
            return part;
        };
        split_input out;
        if (auto head = take(2); head.size() == 2) {
            out.options = head[0];
            out.cuts = take(head[1] & 0x0fu);
            out.choices = take(head[1] >> 4);
        }
        out.payload = std::string_view(reinterpret_cast<const char*>(in.data()), in.size());
        return out;
    }

    /// The payload cut as the cut lengths say.
    std::vector<std::string_view> pieces() const {
        std::vector<std::string_view> out;
        std::string_view rest = payload;
        for (std::size_t i = 0; !rest.empty(); ++i) {
            std::size_t n = cuts.empty() ? rest.size() : cuts[i % cuts.size()] + std::size_t{1};
            out.push_back(rest.substr(0, n));
            rest.remove_prefix(out.back().size());
        }
        return out;
    }
};

/// Hands out the choices in turn, starting again after the last.
class choice_reader {
public:
    explicit choice_reader(std::span<const std::uint8_t> choices) : choices_(choices) {}

    std::uint8_t next() {
        if (choices_.empty()) {
            return 0;
        }
        return choices_[next_++ % choices_.size()];
    }

private:
    std::span<const std::uint8_t> choices_;
    std::size_t next_ = 0;
};

} // namespace mailseal::fuzz
