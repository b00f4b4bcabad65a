// SPDX-License-Identifier: Apache-2.0
#include <openssl/evp.h>

#include <mailseal/seal/openpgp/evaluate.hpp>
#include <mailseal/seal/openpgp/openpgp.hpp>
#include <mailseal/seal/openpgp/pgp_mime.hpp>
#include <mailseal/seal/openpgp/rnp.hpp>

namespace mailseal::seal::openpgp {
namespace {

/// RFC 7929 §2.3: the presentation form of the RDATA is its base64 encoding.
std::string base64(const std::vector<std::uint8_t>& data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                            static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(std::max(n, 0)));
    return out;
}

std::vector<key_data> records_of(const dns::lookup_result& lookup) {
    std::vector<key_data> out;
    for (std::size_t i = 0; i < lookup.rdata.size(); ++i) {
        out.push_back({"openpgpkey #" + std::to_string(i + 1), lookup.rdata[i], true});
    }
    return out;
}

/// The minimal form of each key in `data` for `address`, as RFC 7929 §2.1 recommends and
/// `gpg --export-options export-minimal` makes: the primary key, the user ID naming the
/// address, one encryption subkey, and their self-signatures.
std::variant<std::vector<std::vector<std::uint8_t>>, std::string>
minimal_keys(const key_data& data, std::string_view address, std::uint64_t now) {
    rnp_ffi_t raw_ffi = nullptr;
    if (rnp_ffi_create(&raw_ffi, "GPG", "GPG") != RNP_SUCCESS) {
        return std::string("librnp could not be set up");
    }
    c_ptr<rnp_ffi_st> ffi(raw_ffi);
    rnp_set_timestamp(ffi.get(), now);
    rnp_input_t raw_in = nullptr;
    rnp_input_from_memory(&raw_in, data.bytes.data(), data.bytes.size(), false);
    c_ptr<rnp_input_st> in(raw_in);
    if (auto rc = rnp_import_keys(ffi.get(), in.get(), RNP_LOAD_SAVE_PUBLIC_KEYS, nullptr);
        rc != RNP_SUCCESS) {
        return std::string("no OpenPGP public key in it (librnp: ") + rnp_result_to_string(rc) +
               ")";
    }
    std::vector<std::vector<std::uint8_t>> out;
    rnp_identifier_iterator_t raw_it = nullptr;
    rnp_identifier_iterator_create(ffi.get(), &raw_it, "fingerprint");
    c_ptr<rnp_identifier_iterator_st> it(raw_it);
    const char* id = nullptr;
    while (it && rnp_identifier_iterator_next(it.get(), &id) == RNP_SUCCESS && id != nullptr) {
        rnp_key_handle_t raw_key = nullptr;
        rnp_locate_key(ffi.get(), "fingerprint", id, &raw_key);
        c_ptr<rnp_key_handle_st> k(raw_key);
        bool primary = false;
        if (!k || rnp_key_is_primary(k.get(), &primary) != RNP_SUCCESS || !primary) {
            continue;
        }
        // The user ID to keep: the first one naming the address.
        std::string uid;
        std::size_t count = 0;
        rnp_key_get_uid_count(k.get(), &count);
        for (std::size_t i = 0; i < count && uid.empty(); ++i) {
            char* raw = nullptr;
            rnp_key_get_uid_at(k.get(), i, &raw);
            c_ptr<char> text(raw);
            if (text && names_address(text.get(), address)) {
                uid = text.get();
            }
        }
        rnp_output_t raw_out = nullptr;
        rnp_output_to_memory(&raw_out, 0);
        c_ptr<rnp_output_st> output(raw_out);
        auto rc = rnp_key_export_autocrypt(k.get(), nullptr, uid.empty() ? nullptr : uid.c_str(),
                                           output.get(), 0);
        if (rc != RNP_SUCCESS) {
            // No single encryption subkey and user ID to keep: the key as it is.
            rnp_output_t raw_full = nullptr;
            rnp_output_to_memory(&raw_full, 0);
            output.reset(raw_full);
            rc = rnp_key_export(k.get(), output.get(),
                                RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS);
        }
        std::uint8_t* buf = nullptr;
        std::size_t len = 0;
        if (rc != RNP_SUCCESS ||
            rnp_output_memory_get_buf(output.get(), &buf, &len, false) != RNP_SUCCESS) {
            return std::string("librnp could not export key ") + id;
        }
        out.emplace_back(buf, buf + len);
    }
    if (out.empty()) {
        return std::string("no primary key in it");
    }
    return out;
}

class openpgp_format final : public format {
public:
    config::seal_format id() const override { return config::seal_format::openpgp; }
    std::uint16_t rr_type() const override { return openpgpkey_rr_type; }
    std::string_view rr_name() const override { return "OPENPGPKEY"; }
    std::string_view owner_label() const override { return "_openpgpkey"; }

    bool stores(const std::filesystem::path& file) const override {
        return file.extension() == ".asc" || file.extension() == ".pgp";
    }
    bool recognises(const std::filesystem::path& file) const override {
        return looks_like_key(file);
    }

    evaluation evaluate(const dns::lookup_result& lookup,
                        const std::vector<std::filesystem::path>& local_files,
                        std::string_view address,
                        std::chrono::system_clock::time_point now) const override {
        std::vector<key_data> files;
        std::vector<candidate_report> problems;
        for (const auto& file : local_files) {
            auto content = read_key_file(file);
            if (content.problem) {
                problems.push_back(std::move(*content.problem));
            } else {
                files.push_back(std::move(*content.data));
            }
        }
        auto ev = select_keys(lookup.result, records_of(lookup), files, address, now);
        problems.insert(problems.end(), ev.local_problems.begin(), ev.local_problems.end());
        ev.local_problems = std::move(problems);
        return ev;
    }

    /// Thunderbird and K-9 show a protected Subject only for OpenPGP mail marked the way the
    /// LAMPS draft that preceded RFC 9788 did.
    std::string_view legacy_protected_headers_marker() const override {
        return "protected-headers=\"v1\"";
    }

    std::variant<std::unique_ptr<encoder>, std::string>
    seal(const std::vector<key>& keys, const config::seal_policy& policy,
         std::string_view /*line_end*/) const override {
        // librnp writes the armour, with its own line ends; the sink converts them if it must.
        return begin_pgp_mime(keys, policy.openpgp);
    }

    std::variant<std::vector<published_record>, record_refusal>
    records(const std::filesystem::path& file, std::string_view address,
            const record_parameters& parameters,
            std::chrono::system_clock::time_point now) const override {
        if (parameters.usage || parameters.selector || parameters.matching_type) {
            return record_refusal{true, "--usage, --selector and --matching are for S/MIME "
                                        "certificates, not OpenPGP keys"};
        }
        auto content = read_key_file(file);
        if (content.problem) {
            return record_refusal{false, content.problem->source + ": " + content.problem->why};
        }
        auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
        auto made =
            minimal_keys(*content.data, address, static_cast<std::uint64_t>(seconds.count()));
        if (auto* problem = std::get_if<std::string>(&made)) {
            return record_refusal{false, file.string() + ": " + *problem};
        }
        std::vector<published_record> out;
        for (auto& bytes : std::get<std::vector<std::vector<std::uint8_t>>>(made)) {
            // What mailseal itself makes of the record, published as it stands.
            auto verdict = openpgp::evaluate({{"openpgpkey", bytes, true}}, {}, address, now);
            published_record r;
            if (!verdict.reports.empty()) {
                const auto& report = verdict.reports.front();
                r.comments.push_back("OPENPGPKEY for " + std::string(address) + ": key " +
                                     report.fingerprint + ", " + report.key_description);
                if (!report.subject.empty()) {
                    r.comments.push_back("user ID " + report.subject);
                }
                if (verdict.keys.empty()) {
                    r.comments.push_back("note: mailseal would not seal to this record: " +
                                         report.why);
                } else {
                    r.comments.push_back(report.why);
                }
            }
            r.presentation = base64(bytes);
            r.rdata = std::move(bytes);
            out.push_back(std::move(r));
        }
        return out;
    }
};

} // namespace

std::variant<std::shared_ptr<const format>, std::string> make_format(const config::config&) {
    return std::make_shared<openpgp_format>();
}

} // namespace mailseal::seal::openpgp
