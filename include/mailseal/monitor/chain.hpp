// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The certificate chains a mail server presents, from files (as Postfix loads them), from
/// Postfix's own settings, or from a live STARTTLS handshake.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <openssl/x509.h>

namespace mailseal::monitor {

/// One chain, the server's own certificate first, and where it was found ("/etc/ssl/mx.pem",
/// "probe 192.0.2.1:25").
struct served_chain {
    std::string source;
    std::vector<std::shared_ptr<X509>> certificates;
};

/// Splits certificates, in file order, into chains: each certificate that is not the issuer of
/// the one before it starts a new chain. A Postfix chain file may hold several key and chain
/// pairs (an RSA and an ECDSA one), each chain leaf first.
std::vector<served_chain> split_chains(const std::string& source,
                                       const std::vector<std::shared_ptr<X509>>& certificates);

/// The chains in a PEM file (private key blocks in it are skipped, never kept), or why not.
std::variant<std::vector<served_chain>, std::string> read_chains(const std::filesystem::path& file);

/// The certificate files Postfix's smtpd loads for the service on `port`, from `postconf -h`
/// values of main.cf (`main`: smtpd_tls_chain_files, smtpd_tls_cert_file,
/// smtpd_tls_eccert_file, smtpd_tls_dcert_file, in that order) and the `postconf -P` lines of
/// master.cf overrides (`service/type/parameter = value`). An override applies when its
/// service is of type inet and listens on `port` (its name, after any "address:", is the port
/// number or one of `port_names`), or for port 25 when it is postscreen's `smtpd pass` service.
/// smtpd_tls_chain_files, when set, wins over the others, as in Postfix 3.4 and later.
std::vector<std::string> postfix_chain_files(const std::vector<std::string>& main,
                                             const std::string& overrides, std::uint16_t port,
                                             const std::vector<std::string>& port_names);

/// Runs postconf (with `-c config_dir` when given) and reads the chains its smtpd serves on
/// `port`; the error says what failed (postconf missing, no TLS certificate configured, a file
/// that does not read).
std::variant<std::vector<served_chain>, std::string>
postfix_chains(const std::optional<std::filesystem::path>& config_dir, std::uint16_t port);

/// Which signatures a probe offers the server: a server with an RSA and an ECDSA certificate
/// presents the one the client's signature algorithms call for.
enum class signature_kind { any, ecdsa, rsa };

/// Connects to address:port (an IPv4 or IPv6 literal), reads the greeting, says EHLO
/// `ehlo_name`, asks STARTTLS and completes a TLS handshake with SNI `host`, offering `kind`
/// of signatures, then QUITs. The chain the server presented, or why none came; the whole
/// exchange takes at most `timeout`. The chain is not verified here: judging it against the
/// TLSA records is the caller's business.
std::variant<served_chain, std::string> probe(const std::string& host, const std::string& address,
                                              std::uint16_t port, const std::string& ehlo_name,
                                              std::chrono::seconds timeout, signature_kind kind);

} // namespace mailseal::monitor
