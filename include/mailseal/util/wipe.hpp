// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Clearing buffers that held message plaintext before their memory is reused or freed, so no
/// later heap dump or core file shows it.

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

namespace mailseal::util {

/// Overwrites the contents with zeros (explicit_bzero: the compiler may not drop it) and empties
/// the string; its capacity is kept for reuse.
inline void wipe(std::string& s) noexcept {
    if (!s.empty()) {
        ::explicit_bzero(s.data(), s.size());
        s.clear();
    }
}

/// Overwrites every byte of the string's buffer, used or not, with zeros and empties it. For a
/// moved-from string: a short one keeps its old bytes in its inline buffer, which wipe() does
/// not reach since its size is already 0.
inline void wipe_storage(std::string& s) noexcept {
    // Growing to the capacity never reallocates.
    s.resize(s.capacity());
    ::explicit_bzero(s.data(), s.size());
    s.clear();
}

/// Appends `more` to `s`, which holds plaintext. When the buffer must grow it grows to at least
/// `min_capacity`, and the old buffer is wiped before it is freed: a plain append would leave a
/// copy of the contents in freed memory.
inline void append_wiping_growth(std::string& s, std::string_view more, std::size_t min_capacity) {
    if (s.capacity() < s.size() + more.size()) {
        std::string grown;
        grown.reserve(std::max(min_capacity, s.size() + more.size()));
        grown.append(s);
        wipe(s);
        s.swap(grown);
    }
    s.append(more);
}

} // namespace mailseal::util
