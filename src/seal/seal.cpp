// SPDX-License-Identifier: Apache-2.0
#include <mailseal/seal/seal.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::seal {
namespace {

/// RFC 9788 hcp_baseline: the Subject is replaced, Keywords and Comments are removed, and the
/// other fields stay readable outside (clients need From, To, Date and Message-ID to list and
/// thread the message).
bool hidden_when_protected(const header_field& f) {
    return f.is("Keywords") || f.is("Comments");
}

/// A Content-Type field with `parameters` appended to its own.
std::string with_parameters(const header_field& f, std::string_view parameters) {
    std::string raw = f.raw;
    auto end = raw.size();
    while (end > 0 && (raw[end - 1] == '\r' || raw[end - 1] == '\n')) {
        --end;
    }
    raw.insert(end, parameters);
    return raw;
}

} // namespace

std::string_view to_string(action a) {
    switch (a) {
    case action::seal:
        return "sealed";
    case action::passthrough:
        return "passthrough";
    case action::plain:
        return "plain";
    case action::defer:
        return "deferred";
    case action::reject:
        return "rejected";
    case action::key_bogus:
        return "bogus";
    case action::key_failure:
        return "lookup-failed";
    case action::key_unsettled:
        return "unsettled";
    }
    return "unknown";
}

std::optional<lmtp::reply> decision::refusal() const {
    switch (what) {
    case action::seal:
    case action::passthrough:
    case action::plain:
        return std::nullopt;
    case action::defer:
        return lmtp::reply(lmtp::replies::no_key_deferred);
    case action::reject:
        return lmtp::reply(lmtp::replies::no_key_rejected);
    case action::key_bogus:
        return lmtp::reply(lmtp::replies::key_bogus);
    case action::key_failure:
        return lmtp::reply(lmtp::replies::key_lookup_failed);
    case action::key_unsettled:
        return lmtp::reply(lmtp::replies::key_evaluation_failed);
    }
    return lmtp::reply(lmtp::replies::local_error);
}

decision decide(dns::outcome outcome, std::size_t usable_keys, bool unsettled, encrypted_form form,
                config::no_key_action on_no_key) {
    // Ciphertext is stored as it came whatever DNS said: it is no plaintext, and a second
    // layer would only make it harder to read.
    if (form != encrypted_form::none) {
        return {action::passthrough, std::string(to_string(form))};
    }
    switch (outcome) {
    case dns::outcome::bogus:
        return {action::key_bogus, "dnssec-bogus"};
    case dns::outcome::failure:
        return {action::key_failure, "lookup-failed"};
    case dns::outcome::secure_records:
    case dns::outcome::secure_absent:
    case dns::outcome::insecure:
        break;
    }
    if (unsettled) {
        return {action::key_unsettled, "evaluation-failed"};
    }
    if (usable_keys > 0) {
        return {action::seal, "keys=" + std::to_string(usable_keys)};
    }
    switch (on_no_key) {
    case config::no_key_action::plain:
        return {action::plain, "no-key"};
    case config::no_key_action::defer:
        return {action::defer, "no-key"};
    case config::no_key_action::reject:
        return {action::reject, "no-key"};
    }
    return {action::plain, "no-key"};
}

std::string mailseal_field(const decision& d) {
    if (d.what == action::passthrough) {
        return "Mailseal: passthrough; form=" + d.reason + "\r\n";
    }
    return "Mailseal: plain; reason=" + d.reason + "\r\n";
}

std::string sealed_field(const format& f, std::size_t keys, std::string_view cipher,
                         std::string_view note) {
    return "Mailseal: sealed; format=" + std::string(config::to_string(f.id())) +
           "; keys=" + std::to_string(keys) + "; cipher=" + std::string(cipher) +
           (note.empty() ? std::string() : "; " + std::string(note)) + "\r\n";
}

split_headers split_for_sealing(const header_section& headers, config::header_mode mode,
                                std::string_view protected_subject,
                                std::string_view legacy_marker) {
    split_headers out;
    if (mode == config::header_mode::keep) {
        for (const auto& f : headers.fields) {
            (f.describes_content() ? out.inner : out.outer) += f.raw;
        }
        return out;
    }
    // Injected headers (RFC 9788 §2): the inner header section is the whole original one;
    // HP-Outer records each field left readable outside, so a reader can tell what an
    // attacker could have changed. hp="cipher" on the root part's Content-Type (§2.1.1) says
    // its header section is the protected one.
    std::string parameters = "; hp=\"cipher\"";
    if (!legacy_marker.empty()) {
        parameters += "; " + std::string(legacy_marker);
    }
    bool has_type = false;
    std::string hp_outer;
    for (const auto& f : headers.fields) {
        if (f.is("Content-Type") && !has_type) {
            out.inner += with_parameters(f, parameters);
            has_type = true;
        } else {
            out.inner += f.raw;
        }
        if (f.describes_content() || hidden_when_protected(f)) {
            continue;
        }
        if (f.is("Subject")) {
            std::string subject = "Subject: " + std::string(protected_subject);
            out.outer += subject + "\r\n";
            hp_outer += "HP-Outer: " + subject + "\r\n";
        } else {
            out.outer += f.raw;
            hp_outer += "HP-Outer: " + f.name + ": " + f.value() + "\r\n";
        }
    }
    if (!has_type) {
        // RFC 2045 §5.2's default, made explicit to carry the parameters.
        out.inner += "Content-Type: text/plain; charset=us-ascii" + parameters + "\r\n";
    }
    out.inner += hp_outer;
    return out;
}

copy_writer copy_writer::as_received(std::string_view trace, const header_section& headers,
                                     std::string_view mailseal_field, std::string& out) {
    out += trace;
    out += mailseal_field;
    for (const auto& f : headers.fields) {
        out += f.raw;
    }
    if (headers.has_separator) {
        out += "\r\n";
    }
    return copy_writer();
}

std::variant<copy_writer, std::string>
copy_writer::sealed(std::string_view trace, const header_section& headers, const key_set& keys,
                    const config::seal_policy& policy, std::string_view protected_subject,
                    std::string_view line_end, std::string& out, std::string_view note) {
    if (!keys.format || keys.keys.empty()) {
        return std::string("no keys to seal to");
    }
    auto made = keys.format->seal(keys.keys, policy, line_end);
    if (auto* problem = std::get_if<std::string>(&made)) {
        return std::move(*problem);
    }
    copy_writer w;
    w.encoder_ = std::move(std::get<std::unique_ptr<encoder>>(made));
    auto parts = split_for_sealing(headers, policy.headers, protected_subject,
                                   keys.format->legacy_protected_headers_marker());
    out += trace;
    out += sealed_field(*keys.format, keys.keys.size(), w.encoder_->cipher(), note);
    out += parts.outer;
    w.encoder_->begin(out);
    // The inner entity: its header section and the empty line that ends it, which the
    // original may have lacked (a header section ended by a non-field line).
    std::string inner = std::move(parts.inner);
    inner += "\r\n";
    auto problem = w.encoder_->write(inner, out);
    util::wipe(inner);
    if (problem) {
        return std::move(*problem);
    }
    return w;
}

std::optional<std::string> copy_writer::body(std::string_view canonical, std::string& out) {
    if (encoder_) {
        return encoder_->write(canonical, out);
    }
    out.append(canonical);
    return std::nullopt;
}

std::optional<std::string> copy_writer::finish(std::string& out) {
    if (encoder_) {
        return encoder_->finish(out);
    }
    return std::nullopt;
}

std::string_view copy_writer::cipher() const {
    return encoder_ ? encoder_->cipher() : std::string_view();
}

} // namespace mailseal::seal
