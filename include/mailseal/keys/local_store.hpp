#pragma once

/// The operator's local certificate store: certificates for recipients whose domain publishes no
/// DNSSEC-signed SMIMEA records (most domains), and for hash-only SMIMEA records to confirm.
///
/// Layout (docs/keys.md): `<local_store>/<domain>/<user>/*.pem`, where <domain> is the
/// recipient's domain lowercased and <user> is the mailbox's user name, the local part exactly
/// as it names the Maildir (extension dropped, lowercased when mailbox.lowercase_local_part is
/// set). Each `.pem` file holds one or more PEM certificates ("CERTIFICATE" blocks); text around
/// the blocks is ignored. Files are read in name order; other names, subdirectories and hidden
/// files are ignored.
///
/// Failure policy: reading is blocking I/O (run it on the worker pool). A missing directory is
/// no certificates. A file that cannot be read, is larger than 1 MiB, holds no certificate, or
/// holds a block that does not parse is skipped whole and reported; so is a non-certificate
/// block (a private key placed there by mistake) — the file's certificates are still used.

#include <filesystem>
#include <string_view>
#include <vector>

#include <mailseal/keys/evaluate.hpp>

namespace mailseal::keys {

struct local_listing {
    std::vector<local_certificate> certificates;
    /// One per file skipped or with skipped content; source "local <path>", usable false.
    std::vector<candidate_report> problems;
};

/// The certificates stored for user@domain. An empty `store` (not configured) lists nothing. A
/// user or domain that cannot name a directory safely (empty, ".", "..", '/' or NUL) lists
/// nothing and reports why.
local_listing read_local_store(const std::filesystem::path& store, std::string_view user,
                               std::string_view domain);

/// The certificates of one PEM file (also for `mailseal record --cert`); problems as above.
local_listing read_certificate_file(const std::filesystem::path& file);

} // namespace mailseal::keys
