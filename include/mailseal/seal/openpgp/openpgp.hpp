// SPDX-License-Identifier: Apache-2.0
#pragma once

/// OpenPGP (RFC 4880) as a sealing format: keys from OPENPGPKEY records (RFC 7929) and the
/// local store's `.asc` and `.pgp` files, judged as evaluate.hpp says; copies sealed as
/// PGP/MIME (RFC 3156), as pgp_mime.hpp says.

#include <memory>
#include <string>
#include <variant>

#include <mailseal/config/config.hpp>
#include <mailseal/seal/format.hpp>

namespace mailseal::seal::openpgp {

std::variant<std::shared_ptr<const format>, std::string> make_format(const config::config& cfg);

} // namespace mailseal::seal::openpgp
