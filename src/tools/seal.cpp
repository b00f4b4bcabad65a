// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <istream>
#include <ostream>
#include <sysexits.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/seal/formats.hpp>
#include <mailseal/seal/sealer.hpp>
#include <mailseal/store/maildir.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/wipe.hpp>

#include "discovery_session.hpp"

namespace mailseal::tools {
namespace {

/// Writes the copy to a stream with LF line ends, as delivery stores it in a Maildir (and with
/// the same conversion).
class stream_sink final : public seal::copy_sink {
public:
    explicit stream_sink(std::ostream& out) : out_(out) {}
    stream_sink(const stream_sink&) = delete;
    stream_sink& operator=(const stream_sink&) = delete;
    ~stream_sink() override { util::wipe(block_); }

    std::variant<std::string, lmtp::reply> open(std::size_t) override { return std::string(); }
    std::string_view line_end(std::size_t) const override { return store::maildir_line_end; }

    std::optional<lmtp::reply> write(std::size_t, std::string_view bytes) override {
        // The copy is CRLF text; a Maildir file (and so this output) has LF line ends.
        util::append_wiping_growth(block_, bytes, bytes.size() + 1);
        bool held_back = store::hold_back_cr(block_);
        put();
        if (held_back) {
            block_ += '\r';
        }
        if (!out_) {
            return lmtp::reply(lmtp::replies::local_error, "cannot write the output");
        }
        return std::nullopt;
    }

    /// Writes a CR held back at the very end; false when the output could not be written.
    bool close() {
        put();
        out_.flush();
        return static_cast<bool>(out_);
    }

private:
    /// Converts and writes block_, then wipes it: a copy as received is plaintext.
    void put() {
        store::to_maildir_form(block_, file_end_);
        out_.write(block_.data(), static_cast<std::streamsize>(block_.size()));
        util::wipe(block_);
    }

    std::ostream& out_;
    std::string block_;
    char file_end_ = 0;
};

/// The keys in the files given on the command line, each file read by the format whose keys it
/// holds and judged as that format judges its local store files for `address` (valid now,
/// naming the address, a usable key). Of several formats, the first of the policy's with a
/// usable key is taken, as key discovery chooses (choose_keys). An exit status when a file
/// holds no key.
std::variant<seal::key_set, int> keys_from_files(const config::config& cfg,
                                                 const config::seal_policy& policy,
                                                 const std::vector<std::filesystem::path>& files,
                                                 const std::string& address, std::ostream& err) {
    auto loaded = seal::format_set::load(cfg);
    if (auto* problem = std::get_if<std::string>(&loaded)) {
        err << "mailseal: " << *problem << "\n";
        return EX_CONFIG;
    }
    const auto& formats = std::get<seal::format_set>(loaded);
    std::vector<std::shared_ptr<const seal::format>> format_of_file;
    for (const auto& file : files) {
        auto found = formats.for_file(file);
        if (auto* why = std::get_if<std::string>(&found)) {
            err << "mailseal: seal: " << util::printable(file.string()) << ": "
                << util::printable(*why) << "\n";
            return EX_NOINPUT;
        }
        const auto& f = std::get<std::shared_ptr<const seal::format>>(found);
        if (std::find(policy.formats.begin(), policy.formats.end(), f->id()) ==
            policy.formats.end()) {
            // Sealing would silently ignore the key and write the message as it came.
            err << "mailseal: seal: " << util::printable(file.string()) << " holds "
                << config::to_string(f->id()) << " keys, but seal.formats for "
                << util::printable(address) << " does not list " << config::to_string(f->id())
                << "\n";
            return EX_USAGE;
        }
        format_of_file.push_back(f);
    }
    dns::lookup_result none;
    none.result = dns::outcome::secure_absent;
    auto now = std::chrono::system_clock::now();
    std::vector<discovery::format_lookup> evaluated;
    for (const auto& f : formats.all()) {
        std::vector<std::filesystem::path> mine;
        for (std::size_t i = 0; i < files.size(); ++i) {
            if (format_of_file[i] == f) {
                mine.push_back(files[i]);
            }
        }
        if (mine.empty()) {
            continue;
        }
        auto ev = f->evaluate(none, mine, address, now);
        for (const auto& p : ev.local_problems) {
            err << "mailseal: seal: " << util::printable(p.source) << ": " << util::printable(p.why)
                << "\n";
        }
        for (const auto& file : mine) {
            auto source = "local " + file.string();
            bool gave_any = std::any_of(ev.reports.begin(), ev.reports.end(), [&](const auto& r) {
                return r.source.starts_with(source);
            });
            if (!gave_any) {
                return EX_NOINPUT;
            }
        }
        for (const auto& r : ev.reports) {
            if (!r.usable) {
                err << "mailseal: seal: " << util::printable(r.source)
                    << " not usable: " << util::printable(r.why) << "\n";
            }
        }
        discovery::format_lookup l;
        l.format = f;
        l.lookup = none;
        l.evaluation = std::move(ev);
        evaluated.push_back(std::move(l));
    }
    // In the policy's order of preference, which lists every format evaluated (checked above).
    auto rank = [&](const discovery::format_lookup& l) {
        return std::find(policy.formats.begin(), policy.formats.end(), l.format->id()) -
               policy.formats.begin();
    };
    std::stable_sort(evaluated.begin(), evaluated.end(),
                     [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
    return discovery::choose_keys(evaluated);
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
        err << "mailseal: sealed to " << r.keys->keys.size() << " "
            << config::to_string(r.keys->format->id()) << " key(s), "
            << (r.writer ? r.writer->cipher() : std::string_view()) << "\n";
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
    case seal::action::key_unsettled:
        err << "mailseal: keys unsettled: nothing written (" << why << ")\n";
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
    auto rcpt = recipient::normalise(cfg, *recipient);
    config::seal_policy policy = cfg.seal.policy_for(rcpt.user, rcpt.domain);
    std::optional<seal::key_set> keys;
    if (!options.keys.empty()) {
        // As delivery judges them: for the address without its extension.
        auto found = keys_from_files(cfg, policy, options.keys, rcpt.key_address(), err);
        if (auto* status = std::get_if<int>(&found)) {
            return *status;
        }
        keys = std::move(std::get<seal::key_set>(found));
    } else {
        int setup = run_discovery(
            cfg, err, [&](discovery::key_discovery& discovery) -> boost::asio::awaitable<void> {
                auto found = co_await discovery.find(rcpt);
                keys = std::move(found.chosen);
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
