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
/// - `check ADDRESS... | --all`: for monitoring. One line per address, `OK|WARNING|CRITICAL
///   address: summary`, comparing what DNS publishes with the local store, for each format:
///   a bogus or failed lookup is critical, as is an expired certificate or key in use; an
///   insecure zone, an unusable record, a key expiring within `days`, a local key DNS does not
///   publish (renewed without updating DNS) and unreadable store files are warnings. Exit
///   status is the worst line's, Nagios-style: 0, 1, 2.
/// - `seal --to ADDRESS [--key FILE]...`: seals one message from stdin to stdout exactly as
///   delivery would (same detection, MIME layout, algorithms, policy and Mailseal: field; LF
///   line ends as in a Maildir), to the keys in the given files (X.509 certificates or OpenPGP
///   keys, judged as local store ones) or, without --key, to what key discovery finds. Exit
///   status: 0 sealed, 1 passthrough (already encrypted, written as received), 2 no usable key
///   (written as received under on_no_key = "plain", nothing written under
///   "defer"/"reject"), 75 bogus or failed lookup (nothing written), 64 bad address, 66 no key
///   in a --key file, 70 encryption failure, 74 the output could not be written, 78
///   configuration. One line on stderr says which.

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
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
};

/// `record --tlsa --cert FILE [--next FILE]`: the `3 1 1` TLSA records (DANE-EE, the SHA-256 of
/// the server certificate's SubjectPublicKeyInfo: they outlive a renewal that keeps the key)
/// at _PORT._tcp.HOST for the current certificate and the staged next one, each after comment
/// lines naming it. Exit status: 0; 64 a bad host name; 66 a file without a certificate.
int record_tlsa(const config::config& cfg, const tlsa_record_options& options, std::ostream& out,
                std::ostream& err);

enum check_status : int { ok = 0, warning = 1, critical = 2 };

struct check_options {
    std::vector<std::string> addresses;
    /// Every address with a directory in the local store, and every mailbox found through the
    /// Maildir template when its path components are exactly %d and %n, or %u.
    bool all = false;
    int days = 30;
};

int check(const config::config& cfg, const check_options& options, std::ostream& out,
          std::ostream& err);

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
