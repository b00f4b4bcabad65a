// SPDX-License-Identifier: Apache-2.0
#pragma once

/// One recipient's PGP/MIME copy (RFC 3156 §4): multipart/encrypted with the version part and
/// an ASCII-armoured OpenPGP message holding the inner entity, encrypted as it streams in.
///
/// The message is what every current reader opens (RFC 4880): one PKESK v3 packet per key and
/// one SEIPD v1 packet (integrity-protected, MDC), no compression, no AEAD. librnp writes it;
/// its encryption is a pull loop (rnp_op_encrypt_execute reads its input to the end), so it
/// runs on a thread of its own for each copy, fed through a hand-off with the caller: write()
/// returns once librnp has taken the plaintext (it does not copy it first), and the armoured
/// output is collected as it appears. That thread's stack is mapped for it alone and unmapped
/// at the end, so no plaintext lingers in a reused stack.
///
/// Failure policy: a librnp failure, or a thread that cannot be started, is an error text;
/// the caller answers 451 4.3.0 and stores nothing for that recipient.

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <mailseal/seal/format.hpp>
#include <mailseal/seal/openpgp/options.hpp>

namespace mailseal::seal::openpgp {

/// Starts a copy sealed to `keys` (not empty, all OpenPGP keys).
std::variant<std::unique_ptr<encoder>, std::string> begin_pgp_mime(const std::vector<key>& keys,
                                                                   const options& opts);

} // namespace mailseal::seal::openpgp
