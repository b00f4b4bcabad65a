// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Domain names in the form DNS needs.

#include <optional>
#include <string>
#include <string_view>

namespace mailseal::dns {

/// The domain in the ASCII form DNS queries need: U-labels become A-labels (IDNA2008 with
/// UTS #46 non-transitional mapping, through libidn2), and ASCII letters are lowercased.
/// std::nullopt for a name that is not a host name: empty, an empty label (including a
/// trailing dot), a label over 63 octets or with characters other than letters, digits and
/// '-' (not first or last), more than 253 octets in all, or invalid IDNA.
///
/// to_a_label("Bücher.Example") == "xn--bcher-kva.example"
std::optional<std::string> to_a_label(std::string_view domain);

} // namespace mailseal::dns
