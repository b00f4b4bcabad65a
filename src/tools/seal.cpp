#include <array>
#include <istream>
#include <ostream>
#include <sysexits.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <mailseal/delivery/mailbox.hpp>
#include <mailseal/discovery/discovery.hpp>
#include <mailseal/keys/local_store.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/seal/sealer.hpp>
#include <mailseal/store/maildir.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>

#include "discovery_session.hpp"

namespace mailseal::tools {
namespace {

/// Writes the copy to a stream with LF line ends, as delivery stores it in a Maildir.
class stream_sink final : public seal::copy_sink {
public:
    explicit stream_sink(std::ostream& out) : out_(out) {}

    std::variant<std::string, lmtp::reply> open(std::size_t) override { return std::string(); }

    std::optional<lmtp::reply> write(std::size_t, std::string_view bytes) override {
        // The copy is CRLF text; a Maildir file (and so this output) has LF line ends.
        line_ends_.feed(bytes, [this](std::string_view run) { return put(run); });
        if (!out_) {
            return lmtp::reply(lmtp::replies::local_error, "cannot write the output");
        }
        return std::nullopt;
    }

    /// Writes a CR held back at the very end; false when the output could not be written.
    bool close() {
        line_ends_.finish([this](std::string_view run) { return put(run); });
        out_.flush();
        return static_cast<bool>(out_);
    }

private:
    bool put(std::string_view run) {
        out_.write(run.data(), static_cast<std::streamsize>(run.size()));
        return true;
    }

    std::ostream& out_;
    store::lf_converter line_ends_;
};

/// The keys in certificate files given on the command line, judged as local store
/// certificates for `address` would be (valid now, naming the address, a usable key); or the
/// exit status when they cannot be.
std::variant<seal::recipient_keys, int>
keys_from_files(const config::config& cfg, const std::vector<std::filesystem::path>& files,
                const std::string& address, std::ostream& err) {
    auto policy = keys::make_policy(cfg.keys);
    if (auto* problem = std::get_if<std::string>(&policy)) {
        err << "mailseal: keys: " << *problem << "\n";
        return EX_CONFIG;
    }
    std::vector<keys::local_certificate> certs;
    for (const auto& file : files) {
        auto listing = keys::read_certificate_file(file);
        for (const auto& p : listing.problems) {
            err << "mailseal: seal: " << util::printable(p.source) << ": " << util::printable(p.why)
                << "\n";
        }
        if (listing.certificates.empty()) {
            return EX_NOINPUT;
        }
        certs.insert(certs.end(), listing.certificates.begin(), listing.certificates.end());
    }
    auto evaluation = keys::evaluate({}, certs, std::get<keys::policy>(policy), address,
                                     std::chrono::system_clock::now());
    for (const auto& r : evaluation.reports) {
        if (!r.usable) {
            err << "mailseal: seal: " << util::printable(r.source)
                << " not usable: " << util::printable(r.why) << "\n";
        }
    }
    return seal::recipient_keys{keys::dns_outcome::secure_absent, std::move(evaluation.keys)};
}

int exit_status(const seal::message_sealer::recipient_state& r, bool output_ok, std::ostream& err) {
    bool stores_a_copy = r.decided && (r.decided->what == seal::action::seal ||
                                       r.decided->what == seal::action::passthrough ||
                                       r.decided->what == seal::action::plain);
    if (!output_ok || (stores_a_copy && r.refusal)) {
        // A script must never take an empty or cut-off output for a sealed message.
        err << "mailseal: seal: error: "
            << (output_ok ? r.detail : std::string("cannot write the output")) << "\n";
        return output_ok ? EX_SOFTWARE : EX_IOERR;
    }
    if (!r.decided) {
        err << "mailseal: seal: error: " << r.detail << "\n";
        return EX_SOFTWARE;
    }
    std::string why = r.refusal ? r.refusal->summary() : "";
    switch (r.decided->what) {
    case seal::action::seal:
        err << "mailseal: sealed to " << r.keys->keys.size() << " key(s), "
            << config::to_string(r.policy.cipher) << "\n";
        return seal_status::sealed;
    case seal::action::passthrough:
        err << "mailseal: passthrough: already encrypted (" << r.decided->reason << ")\n";
        return seal_status::passthrough;
    case seal::action::plain:
        err << "mailseal: no key: written as received\n";
        return seal_status::no_key;
    case seal::action::defer:
    case seal::action::reject:
        err << "mailseal: no key: nothing written (" << why << ")\n";
        return seal_status::no_key;
    case seal::action::key_bogus:
    case seal::action::key_failure:
        err << "mailseal: key lookup " << seal::to_string(r.decided->what) << ": nothing written ("
            << why << ")\n";
        return EX_TEMPFAIL;
    }
    return EX_SOFTWARE;
}

} // namespace

int seal(const config::config& cfg, const seal_options& options, std::istream& in,
         std::ostream& out, std::ostream& err) {
    auto recipient = lmtp::parse_forward_path("<" + options.to + ">", true);
    if (!recipient || recipient->domain.empty()) {
        err << "mailseal: seal: not an address: " << util::printable(options.to) << "\n";
        return EX_USAGE;
    }
    // The policy (cipher, header mode, on_no_key) is the recipient's, as in delivery.
    auto box = delivery::resolve(cfg, *recipient);
    config::seal_policy policy =
        box ? cfg.seal.policy_for(box->user, box->domain)
            : cfg.seal.policy_for(recipient->local_part, util::ascii_lower(recipient->domain));
    std::optional<seal::recipient_keys> keys;
    if (!options.certificates.empty()) {
        // As delivery judges them: for the address without its extension.
        auto found = keys_from_files(cfg, options.certificates,
                                     discovery::key_address(cfg, *recipient), err);
        if (auto* status = std::get_if<int>(&found)) {
            return *status;
        }
        keys = std::move(std::get<seal::recipient_keys>(found));
    } else {
        int setup = run_discovery(
            cfg, err, [&](discovery::key_discovery& discovery) -> boost::asio::awaitable<void> {
                auto found = co_await discovery.find(*recipient);
                keys = seal::recipient_keys{discovery::to_keys_outcome(found.lookup.result),
                                            std::move(found.evaluation.keys)};
            });
        if (setup != EX_OK) {
            return setup;
        }
    }

    stream_sink sink(out);
    seal::message_sealer sealer({policy}, cfg.seal.protected_subject, sink);
    sealer.provide_keys(0, std::move(*keys));
    std::array<char, 64 * 1024> buffer;
    while (in) {
        in.read(buffer.data(), buffer.size());
        auto n = static_cast<std::size_t>(in.gcount());
        if (n > 0) {
            sealer.write(std::string_view(buffer.data(), n));
        }
    }
    sealer.end_of_data();
    bool output_ok = sink.close();
    return exit_status(sealer.recipient(0), output_ok, err);
}

} // namespace mailseal::tools
