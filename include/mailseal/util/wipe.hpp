#pragma once

/// Clearing buffers that held message plaintext before their memory is reused or freed, so no
/// later heap dump or core file shows it.

#include <cstring>
#include <string>

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

} // namespace mailseal::util
