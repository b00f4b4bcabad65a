#include <chrono>
#include <fstream>
#include <iterator>
#include <ostream>
#include <sysexits.h>

#include <mailseal/delivery/mailbox.hpp>
#include <mailseal/dns/smimea.hpp>
#include <mailseal/keys/evaluate.hpp>
#include <mailseal/keys/local_store.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/tools/tools.hpp>

namespace mailseal::tools {
namespace {

constexpr const char* usage_names[] = {"PKIX-TA", "PKIX-EE", "DANE-TA", "DANE-EE"};
constexpr const char* selector_names[] = {"full certificate", "SubjectPublicKeyInfo"};
constexpr const char* matching_names[] = {"exact", "SHA-256", "SHA-512"};

/// The certificates in a PEM file, or the one certificate of a DER file (what `openssl x509
/// -outform der` and most CA downloads give).
keys::local_listing load_certificates(const std::filesystem::path& file) {
    auto listing = keys::read_certificate_file(file);
    std::error_code ec;
    if (!listing.certificates.empty() || !std::filesystem::is_regular_file(file, ec)) {
        return listing;
    }
    std::ifstream in(file, std::ios::binary);
    std::vector<unsigned char> der((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
    const unsigned char* p = der.data();
    keys::c_ptr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (cert && p == der.data() + der.size()) {
        return keys::local_listing{{{keys::share(std::move(cert)), file}}, {}};
    }
    return listing;
}

} // namespace

int record(const config::config& cfg, const std::string& address, const record_options& options,
           std::ostream& out, std::ostream& err) {
    if (options.usage > 3 || options.selector > 1 || options.matching_type > 2) {
        err << "mailseal: record: usage must be 0..3, selector 0..1, matching type 0..2\n";
        return EX_USAGE;
    }
    auto parsed = lmtp::parse_forward_path("<" + address + ">", true);
    if (!parsed || parsed->domain.empty()) {
        err << "mailseal: record: not an address: " << address << "\n";
        return EX_USAGE;
    }
    auto domain = dns::to_a_label(parsed->domain);
    if (!domain) {
        err << "mailseal: record: not a valid IDNA2008 domain: " << parsed->domain << "\n";
        return EX_USAGE;
    }
    auto listing = load_certificates(options.certificate);
    if (listing.certificates.empty()) {
        err << "mailseal: record: no PEM or DER certificate in " << options.certificate.string();
        for (const auto& problem : listing.problems) {
            err << ": " << problem.why;
        }
        err << "\n";
        return EX_NOINPUT;
    }

    std::string local(delivery::base_local_part(cfg, parsed->local_part));
    std::string owner = dns::smimea_owner_name(local, *domain) + ".";
    std::string mailbox = local + "@" + parsed->domain;
    auto policy = keys::make_policy(cfg.keys);
    for (const auto& cert : listing.certificates) {
        auto data =
            keys::association_data(*cert.certificate, static_cast<std::uint8_t>(options.selector),
                                   static_cast<std::uint8_t>(options.matching_type));
        if (!data) {
            err << "mailseal: record: cannot encode " << cert.path.string() << "\n";
            return EX_DATAERR;
        }
        dns::smimea_record rr{static_cast<std::uint8_t>(options.usage),
                              static_cast<std::uint8_t>(options.selector),
                              static_cast<std::uint8_t>(options.matching_type), std::move(*data)};
        auto described = keys::describe(*cert.certificate, cert.path.string());
        out << "; SMIMEA for " << mailbox << ": " << usage_names[options.usage] << ", "
            << selector_names[options.selector] << ", " << matching_names[options.matching_type]
            << "\n; certificate " << described.subject << ", " << described.key_description
            << ", sha256 " << described.sha256_fingerprint << "\n";
        // Would mailseal itself seal to this record, published as it stands?
        if (auto* pol = std::get_if<keys::policy>(&policy)) {
            auto verdict = keys::evaluate({{rr.usage, rr.selector, rr.matching_type, rr.data}}, {},
                                          *pol, mailbox, std::chrono::system_clock::now());
            if (verdict.keys.empty() && !verdict.reports.empty()) {
                out << "; note: mailseal would not seal to this record alone: "
                    << verdict.reports.front().why << "\n";
            }
        }
        out << owner << " " << options.ttl << " IN SMIMEA " << dns::to_presentation(rr) << "\n";
        out << owner << " " << options.ttl << " IN TYPE53 " << dns::to_generic(rr) << "\n";
    }
    return EX_OK;
}

} // namespace mailseal::tools
