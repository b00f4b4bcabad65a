// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Certificate files: `.pem` files in the local key store (for recipients whose domain publishes
/// no DNSSEC-signed SMIMEA records, and for hash-only SMIMEA records to confirm), and files
/// given to `mailseal seal --key` and `mailseal record --key`.
///
/// A file holds one or more PEM certificates ("CERTIFICATE" blocks; text around the blocks is
/// ignored), or one DER certificate.
///
/// Failure policy: reading is blocking I/O (run it on the worker pool). A file that cannot be
/// read, is larger than 1 MiB, holds no certificate, or holds a block that does not parse is
/// skipped whole and reported; so is a non-certificate block (a private key placed there by
/// mistake): the file's certificates are still used.

#include <filesystem>
#include <vector>

#include <mailseal/seal/format.hpp>
#include <mailseal/seal/smime/evaluate.hpp>

namespace mailseal::seal::smime {

struct certificate_listing {
    std::vector<local_certificate> certificates;
    /// One per file skipped or with skipped content; source "local <path>", usable false.
    std::vector<candidate_report> problems;
};

/// The certificates of one file; problems as above.
certificate_listing read_certificate_file(const std::filesystem::path& file);

/// Whether the file starts like a certificate file: a PEM "CERTIFICATE" block, or a DER
/// SEQUENCE.
bool looks_like_certificates(const std::filesystem::path& file);

} // namespace mailseal::seal::smime
