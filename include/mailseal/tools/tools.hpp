// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The operator's key tools, subcommands of `mailseal`:
///
/// - `lookup ADDRESS`: what key discovery finds for an address, for each format of its policy
///   (SMIMEA, OPENPGPKEY): the owner name, the DNSSEC outcome, every candidate record and local
///   key decoded with the reason it is usable or not; then the format and keys sealing would
///   use. Exit status: 0 keys found, 1 none (secure absence or nothing usable), 2 insecure zone
///   and no local key, 3 bogus, 4 lookup failure; 64 bad address; 78 configuration (e.g. no
///   trust anchor).
/// - `record --key FILE ADDRESS`: the zone-file lines that publish the certificates (SMIMEA)
///   or OpenPGP keys (OPENPGPKEY, in the minimal form RFC 7929 recommends) in FILE, in
///   presentation form and in RFC 3597 generic form (for servers that do not know the type).
///   Exit status: 0; 64 bad arguments; 66 unreadable file or no key.
/// - `check ADDRESS... | --all | --tlsa HOST | --host`: for monitoring (see check() below).
/// - `seal --to ADDRESS [--key FILE]...`: seals one message from stdin to stdout exactly as
///   delivery would (same detection, MIME layout, algorithms, policy and Mailseal: field; LF
///   line ends as in a Maildir), to the keys in the given files (X.509 certificates or OpenPGP
///   keys, judged as local store ones) or, without --key, to what key discovery finds. Exit
///   status: 0 sealed, 1 passthrough (already encrypted, written as received), 2 no usable key
///   (written as received under on_no_key = "plain", nothing written under
///   "defer"/"reject"), 75 bogus or failed lookup (nothing written), 64 bad address, 66 no key
///   in a --key file, 70 encryption failure, 74 the output could not be written, 78
///   configuration. One line on stderr says which.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mailseal/config/config.hpp>

namespace mailseal::tools {

/// `mailseal lookup`'s outcomes, which are also its exit statuses. unsettled: a format could not
/// judge its keys this time (discovery::choose_keys), so delivery answers 451 4.3.0.
enum lookup_status : int {
    found = 0,
    absent = 1,
    insecure = 2,
    bogus = 3,
    failure = 4,
    unsettled = 5
};

int lookup(const config::config& cfg, const std::string& address, bool json, std::ostream& out,
           std::ostream& err);

struct record_options {
    std::filesystem::path key;
    /// SMIMEA's fields (default 3 0 0); not for OpenPGP keys.
    std::optional<unsigned> usage;
    std::optional<unsigned> selector;
    std::optional<unsigned> matching_type;
    std::uint32_t ttl = 3600;
    /// One JSON object: the address and its records (owner, ttl, type, rdata, generic form,
    /// comments).
    bool json = false;
};

int record(const config::config& cfg, const std::string& address, const record_options& options,
           std::ostream& out, std::ostream& err);

struct tlsa_record_options {
    /// The certificate (chain) the mail server presents now; its first certificate is the
    /// server's.
    std::filesystem::path current;
    /// The one that will replace it, published ahead of the switch; optional.
    std::optional<std::filesystem::path> next;
    /// The host name the MX records name; default server.hostname.
    std::string host;
    std::uint16_t port = 25;
    std::uint32_t ttl = 3600;
    /// One JSON object: each certificate's role, record and description.
    bool json = false;
};

/// `record --tlsa --cert FILE [--next FILE]`: the `3 1 1` TLSA records (DANE-EE, the SHA-256 of
/// the server certificate's SubjectPublicKeyInfo: they outlive a renewal that keeps the key)
/// at _PORT._tcp.HOST for the current certificate and the staged next one, each after comment
/// lines naming it. Exit status: 0; 64 a bad host name; 66 a file without a certificate.
int record_tlsa(const config::config& cfg, const tlsa_record_options& options, std::ostream& out,
                std::ostream& err);

struct check_options {
    std::vector<std::string> addresses;
    /// Every address with a directory in the local store, and every mailbox found through the
    /// Maildir template when its path components are exactly %d and %n, or %u.
    bool all = false;
    /// The TLSA records of this host name (the name MX records give) at _PORT._tcp.
    std::string tlsa_host;
    /// This host entire: the MX records of every local domain, the TLSA records of every MX
    /// host (this host's, named server.hostname, in its certificate, or resolving to its
    /// addresses, against its chains; others by DNS alone unless probed), and every address as
    /// with `all`.
    bool host = false;
    std::uint16_t port = 25;
    /// The certificate chain file the server presents; default: the chains Postfix's smtpd
    /// loads (postconf), or with `probe` those a STARTTLS handshake gets.
    std::optional<std::filesystem::path> cert;
    bool probe = false;
    /// Postfix's configuration directory (postconf -c); default: postconf's own.
    std::optional<std::filesystem::path> postfix_config;
    /// The certificate chains staged to replace the current ones (this host's).
    std::optional<std::filesystem::path> next;
    /// Answer only whether `next` may go live now: its exit status (0 yes, 1 not yet, 2 not
    /// published or no secure answer, 3 the check cannot run).
    bool gate = false;
    /// Warn this many days before a certificate or key expires.
    int warn_days = 21;
    /// Judge as of this time (expiry, signatures, how long records have been visible).
    std::optional<std::chrono::system_clock::time_point> at;
    bool json = false;
    /// A node_exporter textfile to replace with the results.
    std::optional<std::filesystem::path> prometheus;
    /// When each TLSA record was first seen (monitor/seen.hpp).
    std::filesystem::path state_file = "/var/lib/mailseal/tlsa-seen";
};

/// `check`: for monitoring, one `STATUS NAME: summary` line per checked name (STATUS OK,
/// WARNING, CRITICAL or UNKNOWN, with the zone-file lines to publish and to remove indented
/// below), or one JSON object; `prometheus` also writes a node_exporter textfile. Exit status
/// the worst line's, Nagios-style (0..3), or the gate's with `gate`: 3 too when the check
/// cannot run (the resolver, the key policy, the state file, the textfile); 64 bad addresses.
///
/// Addresses: what DNS publishes for each (SMIMEA, OPENPGPKEY) against the local store. A bogus
/// or failed lookup is critical, as is an expired key in use; an insecure zone, an unusable
/// record, a key expiring within `warn_days` (above all a user's only key), a local key DNS
/// does not publish (renewed without updating DNS) and unreadable store files are warnings.
///
/// TLSA (monitor/tlsa.hpp): critical when no record matches a chain in use, when the RRset is
/// bogus or the zone insecure, or when there are no records while a local domain's MX names
/// the host; a warning when the certificate expires within `warn_days`, when only a 2 x x
/// record for an intermediate CA matches, when the next key is not published yet, or for an
/// unusable or stale record; unknown when the certificate in use cannot be read or the
/// lookup fails.
int check(const config::config& cfg, const check_options& options, std::ostream& out,
          std::ostream& err);

/// The report of a check that cannot run (`what`: "configuration", "state", "setup"): an
/// UNKNOWN line, or with `json` an object with code 3 and no checks. Returns 3.
int cannot_run(bool json, std::string_view what, std::string_view why, std::ostream& out);

/// `--at`'s forms: "2027-01-31", "2027-01-31T12:00:00Z", "+30d", "+12h", "+90m" (after `now`).
std::optional<std::chrono::system_clock::time_point>
parse_when(std::string_view text, std::chrono::system_clock::time_point now);

enum seal_status : int { sealed = 0, passthrough = 1, no_key = 2 };

struct seal_options {
    std::string to;
    /// Certificate or OpenPGP key files; empty: key discovery.
    std::vector<std::filesystem::path> keys;
};

int seal(const config::config& cfg, const seal_options& options, std::istream& in,
         std::ostream& out, std::ostream& err);

struct deliver_options {
    /// The envelope sender; "" or "<>" for the null sender.
    std::string from;
    std::vector<std::string> to;
};

/// LDA mode: delivers one message from stdin to each recipient as the daemon would (mailbox,
/// key discovery, sealing policy, durable Maildir write), for Postfix's pipe(8) or
/// mailbox_command and for scripts. Exit status, sysexits as Postfix reads them: 0 delivered
/// to every recipient; 75 (EX_TEMPFAIL) when any recipient got a temporary failure (the MTA
/// retries; run one recipient per call so none is delivered twice); otherwise the first
/// permanent one: 67 unknown user, 73 mailbox full (permanent quota), 77 policy refused
/// plaintext, 65 message too big, 74 stdin unreadable, 69 other; 64 bad arguments, 78
/// configuration. One line on stderr names each recipient that was not delivered and why.
int deliver(const config::config& cfg, const deliver_options& options, std::istream& in,
            std::ostream& err);

/// `test-message ADDRESS`: delivers a short message to the address's mailbox, sealed to the
/// keys key discovery finds, so the user can check that their mail client opens it before
/// the operator turns on a defer or reject policy. Never stored in clear: without a usable key
/// it exits 77 (550 5.7.1) and stores nothing. Otherwise as `deliver`; 0 prints one line.
int test_message(const config::config& cfg, const std::string& address, std::ostream& out,
                 std::ostream& err);

struct reseal_options {
    std::vector<std::string> addresses;
    /// Every mailbox found through the Maildir template (which must then name %d and %n, or %u).
    bool all = false;
    /// Counts what would change; writes nothing.
    bool dry_run = false;
    bool json = false;
    /// Folder name globs ("INBOX", "Sent", "Archive*"); empty: every folder but Drafts.
    std::vector<std::string> folders;
    /// Messages per second at most; 0: no limit.
    double max_rate = 0;
    /// Afterwards, `doveadm mailbox cache purge` each user's folders.
    bool purge_dovecot_cache = false;
    /// Only files put in place since the last complete run with this option (as `state_file`
    /// records it), in folders changed since then; the first run only records its start. With
    /// --all and every folder only.
    bool since_last_run = false;
    std::filesystem::path state_file = "/var/lib/mailseal/reseal.last-run";
};

/// `reseal ADDRESS... | --all`: seals the plaintext messages already stored in each user's
/// Maildir (its INBOX and Maildir++ folders), to the keys key discovery finds, as delivery
/// would have sealed them ("Mailseal: sealed; ...; resealed"). Each sealed copy keeps the
/// message's flags (the info suffix), owner, mode and mtime (the IMAP INTERNALDATE) and gets
/// a new name with exact S= and W=; it is written to tmp/, fsync'd and renamed into place
/// before the plaintext file is removed, so a crash leaves both, and the next run removes the
/// plaintext one. Messages already encrypted (as the structural checks find) are left alone.
/// Users without a usable key are skipped. One line per user on stdout (or one JSON object
/// with --json). Exit status: 0; 75 when a lookup was bogus or failed, or a message could not
/// be sealed (nothing of that user, or that message, was changed: run again), or another run
/// holds the Maildir, or the asked-for Dovecot cache purge failed; 67 an address without a
/// local mailbox; 65 an unreadable --since-last-run state file; 64 bad arguments; 78
/// configuration.
int reseal(const config::config& cfg, const reseal_options& options, std::ostream& out,
           std::ostream& err);

/// The addresses `check --all` covers, sorted and unique.
std::vector<std::string> known_addresses(const config::config& cfg);

/// The address a Maildir path stands for under `maildir_template`, when the template's path
/// components are exactly %d and %n (or %u); nullopt otherwise.
std::optional<std::string> address_from_maildir(const std::string& maildir_template,
                                                const std::filesystem::path& maildir);

} // namespace mailseal::tools
