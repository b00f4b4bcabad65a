// SPDX-License-Identifier: Apache-2.0
#include <mailseal/seal/smime/certificate_file.hpp>
#include <mailseal/seal/smime/cms.hpp>
#include <mailseal/seal/smime/evaluate.hpp>
#include <mailseal/seal/smime/smime.hpp>

#include "inspect.hpp"

namespace mailseal::seal::smime {
namespace {

constexpr const char* usage_names[] = {"PKIX-TA", "PKIX-EE", "DANE-TA", "DANE-EE"};
constexpr const char* selector_names[] = {"full certificate", "SubjectPublicKeyInfo"};
constexpr const char* matching_names[] = {"exact", "SHA-256", "SHA-512"};

class cms_copy final : public encoder {
public:
    cms_copy(cms_encoder cms, content_cipher cipher) : encoder_(std::move(cms)), cipher_(cipher) {}

    void begin(std::string& out) override {
        // RFC 8551 §3.3, with name/filename so clients that go by extension recognise it.
        out += "MIME-Version: 1.0\r\n"
               "Content-Type: application/pkcs7-mime; smime-type=";
        out += smime_type(cipher_);
        out += "; name=\"smime.p7m\"\r\n"
               "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n"
               "Content-Transfer-Encoding: base64\r\n"
               "\r\n";
    }
    std::optional<std::string> write(std::string_view plaintext, std::string& out) override {
        return encoder_.write(plaintext, out);
    }
    std::optional<std::string> finish(std::string& out) override { return encoder_.finish(out); }
    std::string_view cipher() const override { return to_string(cipher_); }

private:
    cms_encoder encoder_;
    content_cipher cipher_;
};

class smime_format final : public format {
public:
    explicit smime_format(struct trust t) : trust_(std::move(t)) {}

    config::seal_format id() const override { return config::seal_format::smime; }
    std::uint16_t rr_type() const override { return smimea_rr_type; }
    std::string_view rr_name() const override { return "SMIMEA"; }
    std::string_view owner_label() const override { return "_smimecert"; }

    bool stores(const std::filesystem::path& file) const override {
        return file.extension() == ".pem";
    }
    bool recognises(const std::filesystem::path& file) const override {
        return looks_like_certificates(file);
    }

    evaluation evaluate(const dns::lookup_result& lookup,
                        const std::vector<std::filesystem::path>& local_files,
                        std::string_view address,
                        std::chrono::system_clock::time_point now) const override {
        std::vector<smimea_record> records;
        std::size_t unparsable = 0;
        for (const auto& rdata : lookup.rdata) {
            if (auto record = parse_smimea_rdata(rdata)) {
                records.push_back(std::move(*record));
            } else {
                ++unparsable;
            }
        }
        std::vector<local_certificate> certificates;
        std::vector<candidate_report> problems;
        for (const auto& file : local_files) {
            auto listing = read_certificate_file(file);
            std::move(listing.certificates.begin(), listing.certificates.end(),
                      std::back_inserter(certificates));
            std::move(listing.problems.begin(), listing.problems.end(),
                      std::back_inserter(problems));
        }
        auto ev = select_keys(lookup.result, records, certificates, trust_, address, now);
        ev.local_problems = std::move(problems);
        ev.unparsable = unparsable;
        return ev;
    }

    std::string_view legacy_protected_headers_marker() const override { return {}; }

    std::variant<std::unique_ptr<encoder>, std::string>
    seal(const std::vector<key>& keys, const config::seal_policy& policy,
         std::string_view line_end) const override {
        auto made = cms_encoder::begin(keys, policy.smime, line_end);
        if (auto* problem = std::get_if<std::string>(&made)) {
            return std::move(*problem);
        }
        return std::make_unique<cms_copy>(std::move(std::get<cms_encoder>(made)),
                                          policy.smime.cipher);
    }

    std::variant<std::vector<published_record>, record_refusal>
    records(const std::filesystem::path& file, std::string_view address,
            const record_parameters& parameters,
            std::chrono::system_clock::time_point now) const override {
        unsigned usage = parameters.usage.value_or(3);
        unsigned selector = parameters.selector.value_or(0);
        unsigned matching = parameters.matching_type.value_or(0);
        if (usage > 3 || selector > 1 || matching > 2) {
            return record_refusal{true, "usage must be 0..3, selector 0..1, matching type 0..2"};
        }
        auto listing = read_certificate_file(file);
        if (listing.certificates.empty()) {
            std::string why = "no PEM or DER certificate in " + file.string();
            for (const auto& problem : listing.problems) {
                why += ": " + problem.why;
            }
            return record_refusal{false, why};
        }
        std::vector<published_record> out;
        for (const auto& cert : listing.certificates) {
            auto data = association_data(*cert.certificate, static_cast<std::uint8_t>(selector),
                                         static_cast<std::uint8_t>(matching));
            if (!data) {
                return record_refusal{false, "cannot encode " + cert.path.string()};
            }
            smimea_record rr{static_cast<std::uint8_t>(usage), static_cast<std::uint8_t>(selector),
                             static_cast<std::uint8_t>(matching), std::move(*data)};
            auto described = describe(*cert.certificate, cert.path.string());
            published_record record;
            record.comments.push_back("SMIMEA for " + std::string(address) + ": " +
                                      usage_names[usage] + ", " + selector_names[selector] + ", " +
                                      matching_names[matching]);
            record.comments.push_back("certificate " + described.subject + ", " +
                                      described.key_description + ", sha256 " +
                                      described.fingerprint);
            // Would mailseal itself seal to this record, published as it stands?
            auto verdict = smime::evaluate({rr}, {}, trust_, address, now);
            if (verdict.keys.empty() && !verdict.reports.empty()) {
                record.comments.push_back("note: mailseal would not seal to this record alone: " +
                                          verdict.reports.front().why);
            }
            record.presentation = to_presentation(rr);
            record.rdata = {rr.usage, rr.selector, rr.matching_type};
            record.rdata.insert(record.rdata.end(), rr.data.begin(), rr.data.end());
            out.push_back(std::move(record));
        }
        return out;
    }

private:
    struct trust trust_;
};

} // namespace

std::variant<std::shared_ptr<const format>, std::string> make_format(const config::config& cfg) {
    auto loaded = load_trust(cfg.keys);
    if (auto* problem = std::get_if<std::string>(&loaded)) {
        return std::move(*problem);
    }
    return std::make_shared<smime_format>(std::move(std::get<struct trust>(loaded)));
}

} // namespace mailseal::seal::smime
