// SPDX-License-Identifier: Apache-2.0
#pragma once

/// S/MIME (RFC 8551) as a sealing format: keys from SMIMEA records (RFC 8162) and the local
/// store's `.pem` files, judged as evaluate.hpp says; copies sealed as one CMS EnvelopedData
/// (or AuthEnvelopedData) per recipient, application/pkcs7-mime in base64.

#include <memory>
#include <string>
#include <variant>

#include <mailseal/config/config.hpp>
#include <mailseal/seal/format.hpp>

namespace mailseal::seal::smime {

/// The format with the configuration's key settings, keys.smime_ca_file loaded (blocking). The
/// error names the file and the problem.
std::variant<std::shared_ptr<const format>, std::string> make_format(const config::config& cfg);

} // namespace mailseal::seal::smime
