// SPDX-License-Identifier: Apache-2.0
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/seal/sealer.hpp>
#include <mailseal/seal/smime/smime.hpp>

#include "decrypt.hpp"
#include "samples.hpp"
#include "smime/test_certs.hpp"

namespace mailseal::seal {
namespace {

namespace kt = smime::test;
using dns_outcome = dns::outcome;

TEST(decide, follows_the_policy_table) {
    using cfg_nk = config::no_key_action;
    struct row {
        dns_outcome outcome;
        std::size_t keys;
        bool unsettled;
        encrypted_form form;
        cfg_nk on_no_key;
        action want;
        std::string reply; ///< empty: a copy is stored
    };
    for (const auto& r : std::vector<row>{
             {dns_outcome::secure_records, 2, false, encrypted_form::none, cfg_nk::plain,
              action::seal, ""},
             {dns_outcome::insecure, 1, false, encrypted_form::none, cfg_nk::reject, action::seal,
              ""},
             {dns_outcome::secure_records, 1, false, encrypted_form::pgp_mime, cfg_nk::plain,
              action::passthrough, ""},
             {dns_outcome::bogus, 0, false, encrypted_form::smime_enveloped, cfg_nk::plain,
              action::passthrough, ""},
             {dns_outcome::failure, 0, false, encrypted_form::pgp_inline, cfg_nk::reject,
              action::passthrough, ""},
             {dns_outcome::secure_absent, 0, false, encrypted_form::none, cfg_nk::plain,
              action::plain, ""},
             {dns_outcome::insecure, 0, false, encrypted_form::none, cfg_nk::plain, action::plain,
              ""},
             {dns_outcome::secure_records, 0, false, encrypted_form::none, cfg_nk::defer,
              action::defer, "451 4.7.1"},
             {dns_outcome::insecure, 0, false, encrypted_form::none, cfg_nk::reject, action::reject,
              "550 5.7.1"},
             {dns_outcome::bogus, 0, false, encrypted_form::none, cfg_nk::plain, action::key_bogus,
              "451 4.7.5"},
             {dns_outcome::failure, 0, false, encrypted_form::none, cfg_nk::plain,
              action::key_failure, "451 4.4.3"},
             {dns_outcome::secure_absent, 0, true, encrypted_form::none, cfg_nk::plain,
              action::key_unsettled, "451 4.3.0"},
             {dns_outcome::insecure, 0, true, encrypted_form::none, cfg_nk::reject,
              action::key_unsettled, "451 4.3.0"},
             {dns_outcome::secure_absent, 0, true, encrypted_form::pgp_mime, cfg_nk::plain,
              action::passthrough, ""},
             {dns_outcome::bogus, 0, true, encrypted_form::none, cfg_nk::plain, action::key_bogus,
              "451 4.7.5"},
         }) {
        auto d = decide(r.outcome, r.keys, r.unsettled, r.form, r.on_no_key);
        auto label = std::string(dns::to_string(r.outcome)) + "/" + std::to_string(r.keys) + "/" +
                     std::string(to_string(r.form));
        EXPECT_EQ(d.what, r.want) << label << ": got " << to_string(d.what);
        auto refusal = d.refusal();
        std::string got_reply;
        if (refusal) {
            got_reply = std::to_string(refusal->code()) + " " + refusal->enhanced()->str();
        }
        EXPECT_EQ(got_reply, r.reply) << label;
    }
}

header_section section_of(const std::string& headers) {
    header_scanner s(4096);
    std::string body;
    s.feed(headers + "\r\n", body);
    return s.section();
}

TEST(split_for_sealing, keep_moves_only_content_fields_inside) {
    auto h = section_of("From: a@x\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nSubject: s\r\n"
                        "MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\nTo: b@y\r\n");
    auto got = split_for_sealing(h, config::header_mode::keep, "[...]");
    EXPECT_EQ(got.inner, "Content-Type: text/plain;\r\n charset=utf-8\r\nMIME-Version: 1.0\r\n"
                         "Content-Transfer-Encoding: 8bit\r\n");
    EXPECT_EQ(got.outer, "From: a@x\r\nSubject: s\r\nTo: b@y\r\n");
}

TEST(split_for_sealing, protect_injects_headers_rfc9788) {
    auto h = section_of("From: a@x\r\nSubject: secret plans\r\nKeywords: k\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\nTo: b@y\r\n");
    auto got = split_for_sealing(h, config::header_mode::protect, "[...]");
    EXPECT_EQ(got.inner,
              "From: a@x\r\nSubject: secret plans\r\nKeywords: k\r\n"
              "Content-Type: text/plain; charset=utf-8; hp=\"cipher\"\r\nTo: b@y\r\n"
              "HP-Outer: From: a@x\r\nHP-Outer: Subject: [...]\r\nHP-Outer: To: b@y\r\n");
    EXPECT_EQ(got.outer, "From: a@x\r\nSubject: [...]\r\nTo: b@y\r\n");
    auto no_type =
        split_for_sealing(section_of("Subject: s\r\n"), config::header_mode::protect, "(hidden)");
    EXPECT_EQ(no_type.inner, "Subject: s\r\nContent-Type: text/plain; charset=us-ascii; "
                             "hp=\"cipher\"\r\nHP-Outer: Subject: (hidden)\r\n");
}

/// Copies kept in memory, per recipient.
class memory_sink final : public copy_sink {
public:
    std::variant<std::string, lmtp::reply> open(std::size_t index) override {
        if (refuse_open.count(index)) {
            return lmtp::reply(lmtp::replies::disk_full);
        }
        opened.push_back(index);
        return std::string("X-Trace: ") + std::to_string(index) + "\r\n";
    }
    std::optional<lmtp::reply> write(std::size_t index, std::string_view bytes) override {
        copies[index].append(bytes);
        return std::nullopt;
    }
    std::map<std::size_t, std::string> copies;
    std::vector<std::size_t> opened;
    std::set<std::size_t> refuse_open;
};

std::shared_ptr<const format> smime_format() {
    static const auto made =
        std::get<std::shared_ptr<const format>>(smime::make_format(config::config{}));
    return made;
}

/// Alice's S/MIME key from a secure answer.
key_set alice_keys() {
    const auto& c = kt::certs();
    return {dns_outcome::secure_records,
            smime_format(),
            {kt::make_key(c.rsa_key, c.rsa, smime::key_type::rsa, 2048, "test")}};
}

key_set no_keys(dns_outcome outcome) {
    return {outcome, nullptr, {}};
}

/// The header section and body of a sealed copy; the inner entity decrypted with alice's key.
struct opened_copy {
    std::string outer_headers;
    std::string inner;
};

opened_copy open_sealed(const std::string& copy) {
    auto split = copy.find("\r\n\r\n");
    opened_copy out;
    out.outer_headers = copy.substr(0, split + 2);
    auto cms = test::parse_base64_cms(copy.substr(split + 4));
    if (!cms) {
        ADD_FAILURE() << "no CMS in copy";
        return out;
    }
    auto plain = test::decrypt(*cms, *kt::certs().rsa_key, kt::certs().rsa.get());
    if (!plain) {
        ADD_FAILURE() << "cannot decrypt: " << test::openssl_errors();
        return out;
    }
    out.inner = *plain;
    return out;
}

std::vector<config::seal_policy> policies(std::size_t n) {
    return std::vector<config::seal_policy>(n);
}

TEST(message_sealer, three_recipients_three_outcomes) {
    memory_sink sink;
    message_sealer sealer(policies(3), "[...]", sink);
    sealer.provide_keys(0, alice_keys());
    sealer.provide_keys(1, no_keys(dns_outcome::secure_absent));
    sealer.provide_keys(2, no_keys(dns_outcome::bogus));
    const std::string message =
        "From: s@x\nSubject: Hi\nContent-Type: text/plain\n\nline 1\nline 2\n";
    for (char ch : message) {
        sealer.write(std::string(1, ch));
    }
    sealer.end_of_data();

    auto sealed = open_sealed(sink.copies.at(0));
    EXPECT_EQ(
        sealed.outer_headers,
        "X-Trace: 0\r\nMailseal: sealed; format=smime; keys=1; cipher=aes-256-cbc\r\nFrom: s@x\r\n"
        "Subject: Hi\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; "
        "smime-type=enveloped-data; name=\"smime.p7m\"\r\nContent-Disposition: attachment; "
        "filename=\"smime.p7m\"\r\nContent-Transfer-Encoding: base64\r\n");
    EXPECT_EQ(sealed.inner, "Content-Type: text/plain\r\n\r\nline 1\r\nline 2\r\n");
    EXPECT_EQ(sink.copies.at(1),
              "X-Trace: 1\r\nMailseal: plain; reason=no-key\r\nFrom: s@x\r\n"
              "Subject: Hi\r\nContent-Type: text/plain\r\n\r\nline 1\r\nline 2\r\n");
    EXPECT_EQ(sink.copies.count(2), 0u) << "nothing is stored for a bogus lookup";
    EXPECT_EQ(sealer.recipient(2).refusal->summary(),
              "451 4.7.5 Recipient's key failed DNSSEC validation, try again later");
    EXPECT_EQ(sealer.recipient(0).decided->what, action::seal);
    EXPECT_EQ(sealer.recipient(1).decided->what, action::plain);
}

TEST(message_sealer, keys_arriving_late_get_the_held_body) {
    memory_sink sink;
    message_sealer sealer(policies(2), "[...]", sink);
    sealer.provide_keys(1, no_keys(dns_outcome::insecure));
    sealer.write("Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n");
    EXPECT_EQ(sink.opened, std::vector<std::size_t>{1}) << "decided as soon as it can be";
    sealer.write("part\r\n--b--\r\n");
    EXPECT_FALSE(sealer.needs_keys());
    sealer.provide_keys(0, alice_keys());
    sealer.end_of_data();
    auto sealed = open_sealed(sink.copies.at(0));
    EXPECT_EQ(sealed.inner,
              "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\npart\r\n--b--\r\n");
}

TEST(message_sealer, held_body_is_bounded) {
    memory_sink sink;
    message_sealer sealer(policies(1), "[...]", sink);
    sealer.write("Content-Type: application/octet-stream\r\n\r\n");
    std::string chunk(64 * 1024, 'a');
    std::size_t written = 0;
    while (!sealer.needs_keys()) {
        sealer.write(chunk);
        written += chunk.size();
        ASSERT_LE(written, held_body_limit + chunk.size());
    }
    sealer.provide_keys(0, alice_keys());
    EXPECT_FALSE(sealer.needs_keys());
    sealer.write("tail\r\n");
    sealer.end_of_data();
    auto sealed = open_sealed(sink.copies.at(0));
    EXPECT_EQ(sealed.inner.size(),
              std::string("Content-Type: application/octet-stream\r\n\r\n").size() + written + 6);
}

/// A message as another S/MIME client sends it: our own sealed copy of `message` to alice,
/// without the trace fields.
std::string smime_encrypted(const std::string& message) {
    memory_sink sink;
    message_sealer sealer(policies(1), "[...]", sink);
    sealer.provide_keys(0, alice_keys());
    sealer.write(message);
    sealer.end_of_data();
    auto copy = sink.copies.at(0);
    return copy.substr(copy.find("\r\n", copy.find("Mailseal:")) + 2);
}

TEST(message_sealer, already_encrypted_is_stored_as_received) {
    using namespace test::samples;
    const std::string pgp_mime_type = "Content-Type: multipart/encrypted; boundary=b1;\r\n "
                                      "protocol=\"application/pgp-encrypted\"\r\n";
    const std::string smime = smime_encrypted("Subject: s\r\n\r\nsecret\r\n");
    struct row {
        const char* name;
        std::string message;
        action want;
    };
    for (const auto& r : std::vector<row>{
             {"pgp_mime",
              "Subject: s\r\n" + pgp_mime_type + "\r\n" + pgp_mime_body(armoured_message),
              action::passthrough},
             {"smime", smime, action::passthrough},
             {"inline_pgp", "Subject: s\r\n\r\n\r\n" + armoured_message + "\r\n",
              action::passthrough},
             {"quoted_armour", "Subject: s\r\n\r\nLook:\r\n" + armoured_message, action::seal},
             {"signed_only",
              "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
              "boundary=b\r\n\r\n--b\r\nx\r\n--b--\r\n",
              action::seal},
             // A label over plaintext: the reproductions of a body that only claims encryption.
             {"pgp_mime_label_over_text",
              "Subject: s\r\n" + pgp_mime_type +
                  "\r\n--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
                  "--b1\r\nContent-Type: text/plain\r\n\r\nmy password is hunter2\r\n--b1--\r\n",
              action::seal},
             {"smime_label_over_text",
              "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
              "Content-Transfer-Encoding: base64\r\n\r\n" +
                  base64(bytes({0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
                                0x07, 0x03}) +
                         "my password is hunter2"),
              action::seal},
             {"smime_with_text_after", smime + "my password is hunter2\r\n", action::seal},
         }) {
        memory_sink sink;
        message_sealer sealer(policies(1), "[...]", sink);
        sealer.provide_keys(0, alice_keys());
        sealer.write(r.message);
        sealer.end_of_data();
        EXPECT_EQ(sealer.recipient(0).decided->what, r.want) << r.name;
        if (r.want == action::passthrough) {
            EXPECT_EQ(sink.copies.at(0), "X-Trace: 0\r\nMailseal: passthrough; form=" +
                                             sealer.recipient(0).decided->reason + "\r\n" +
                                             r.message)
                << r.name;
        } else {
            EXPECT_EQ(sink.copies.at(0).find("hunter2"), std::string::npos) << r.name;
            EXPECT_EQ(open_sealed(sink.copies.at(0)).inner.find("hunter2") == std::string::npos,
                      r.message.find("hunter2") == std::string::npos)
                << r.name << ": the sealed copy holds the whole message";
        }
    }
}

/// `size` bytes of body for a message that claims to be S/MIME-encrypted: a real envelope of
/// that size, or the same bytes with plaintext after them.
std::string large_smime(std::size_t size, bool text_after) {
    auto message = smime_encrypted("Content-Type: application/octet-stream\r\n\r\n" +
                                   std::string(size, 'z') + "\r\n");
    return text_after ? message + "my password is hunter2\r\n" : message;
}

TEST(message_sealer, a_long_claim_waits_in_an_encrypted_scratch_file) {
    for (bool text_after : {false, true}) {
        auto message = large_smime(3 * held_body_limit, text_after);
        memory_sink sink;
        message_sealer sealer(policies(2), "[...]", sink);
        sealer.provide_keys(0, alice_keys());
        for (std::size_t i = 0; i < message.size(); i += 64 * 1024) {
            sealer.write(std::string_view(message).substr(i, 64 * 1024));
            EXPECT_FALSE(sealer.needs_keys()) << "the body waits on disk, not in memory";
        }
        if (!text_after) {
            EXPECT_TRUE(sink.copies.empty()) << "nothing is stored before the verdict";
        }
        sealer.provide_keys(1, no_keys(dns_outcome::secure_absent));
        sealer.end_of_data();
        if (!text_after) {
            EXPECT_EQ(sealer.recipient(0).decided->what, action::passthrough);
            EXPECT_EQ(sink.copies.at(0),
                      "X-Trace: 0\r\nMailseal: passthrough; form=smime-enveloped\r\n" + message);
        } else {
            EXPECT_EQ(sealer.recipient(0).decided->what, action::seal);
            EXPECT_EQ(sink.copies.at(0).find("hunter2"), std::string::npos);
            auto inner = open_sealed(sink.copies.at(0)).inner;
            auto body = message.substr(message.find("\r\n\r\n") + 4);
            EXPECT_EQ(inner.substr(inner.size() - body.size()), body);
        }
        // The other recipient (no key) gets the message as received either way.
        auto other = sink.copies.at(1);
        EXPECT_EQ(other.substr(other.size() - message.size()), message);
    }
}

TEST(message_sealer, scratch_file_is_unreadable_and_gone) {
    auto made = encrypted_scratch::create(encrypted_scratch::default_directory());
    ASSERT_TRUE(std::holds_alternative<encrypted_scratch>(made)) << std::get<std::string>(made);
    auto& scratch = std::get<encrypted_scratch>(made);
    std::string plain;
    for (int i = 0; i < 20000; ++i) {
        plain += "my password is hunter2 ";
    }
    ASSERT_EQ(scratch.append(plain.substr(0, 1000)), std::nullopt);
    ASSERT_EQ(scratch.append(plain.substr(1000)), std::nullopt);
    EXPECT_EQ(scratch.size(), plain.size());
    std::string back;
    ASSERT_EQ(scratch.replay([&](std::string_view chunk) { back.append(chunk); }), std::nullopt);
    EXPECT_EQ(back, plain);
    back.clear();
    ASSERT_EQ(scratch.replay([&](std::string_view chunk) { back.append(chunk); }), std::nullopt);
    EXPECT_EQ(back, plain) << "replays from the start each time";
}

TEST(message_sealer, passthrough_never_seals_real_encrypted_mail) {
    const std::string smime = smime_encrypted("Subject: s\r\n\r\nsecret\r\n");
    memory_sink sink;
    auto p = policies(2);
    p[0].passthrough = config::passthrough_mode::never;
    message_sealer sealer(p, "[...]", sink);
    sealer.provide_keys(0, alice_keys());
    sealer.write(smime.substr(0, 20));
    EXPECT_TRUE(sink.opened.empty()) << "the header section is not complete yet";
    sealer.write(smime.substr(20, smime.size() / 2 - 20));
    EXPECT_EQ(sink.opened, std::vector<std::size_t>{0}) << "decided without waiting for the body";
    sealer.provide_keys(1, alice_keys());
    sealer.write(smime.substr(smime.size() / 2));
    sealer.end_of_data();
    EXPECT_EQ(sealer.recipient(0).decided->what, action::seal);
    auto body = smime.substr(smime.find("\r\n\r\n") + 4);
    auto sealed = open_sealed(sink.copies.at(0));
    EXPECT_EQ(sealed.inner.substr(sealed.inner.size() - body.size()), body);
    EXPECT_NE(sealed.inner.find("Content-Type: application/pkcs7-mime"), std::string::npos);
    EXPECT_EQ(sealer.recipient(1).decided->what, action::passthrough);
}

TEST(message_sealer, malformed_messages_are_sealed_whole) {
    struct row {
        std::string message;
        std::string outer_fields; ///< the original fields left outside
        std::string inner;
    };
    // The inner entity always gets its empty line; no byte of the original is lost.
    for (const auto& r : std::vector<row>{
             {"no header at all\r\nsecond line\r\n", "", "\r\nno header at all\r\nsecond line\r\n"},
             {"Subject: x\r\nthis line ends the header section\r\nbody\r\n", "Subject: x\r\n",
              "\r\nthis line ends the header section\r\nbody\r\n"},
             {"Subject: only a header", "", "\r\nSubject: only a header"},
             {"", "", "\r\n"},
         }) {
        memory_sink sink;
        message_sealer sealer(policies(1), "[...]", sink);
        sealer.provide_keys(0, alice_keys());
        sealer.write(r.message);
        sealer.end_of_data();
        auto sealed = open_sealed(sink.copies.at(0));
        std::string want_start =
            "X-Trace: 0\r\nMailseal: sealed; format=smime; keys=1; cipher=aes-256-cbc\r\n" +
            r.outer_fields + "MIME-Version: 1.0\r\n";
        EXPECT_EQ(sealed.outer_headers.substr(0, want_start.size()), want_start)
            << testing::PrintToString(r.message);
        EXPECT_EQ(sealed.inner, r.inner) << testing::PrintToString(r.message);
    }
}

TEST(message_sealer, sink_failure_ends_one_recipient) {
    memory_sink sink;
    sink.refuse_open = {0};
    message_sealer sealer(policies(2), "[...]", sink);
    sealer.provide_keys(0, alice_keys());
    sealer.provide_keys(1, alice_keys());
    sealer.write("Subject: x\r\nContent-Type: image/png\r\n\r\nbody\r\n");
    sealer.end_of_data();
    EXPECT_EQ(sealer.recipient(0).refusal->summary(), "452 4.3.1 Insufficient system storage");
    EXPECT_EQ(open_sealed(sink.copies.at(1)).inner, "Content-Type: image/png\r\n\r\nbody\r\n");
}

TEST(message_sealer, protect_mode_and_gcm_per_recipient) {
    memory_sink sink;
    auto p = policies(1);
    p[0].headers = config::header_mode::protect;
    p[0].smime.cipher = smime::content_cipher::aes_256_gcm;
    message_sealer sealer(p, "[...]", sink);
    sealer.provide_keys(0, alice_keys());
    sealer.write("From: a@x\r\nSubject: plans\r\nContent-Type: image/png\r\n\r\nbody\r\n");
    sealer.end_of_data();
    auto sealed = open_sealed(sink.copies.at(0));
    EXPECT_NE(sealed.outer_headers.find("\r\nSubject: [...]\r\n"), std::string::npos);
    EXPECT_EQ(sealed.outer_headers.find("plans"), std::string::npos);
    EXPECT_NE(sealed.outer_headers.find("smime-type=authEnveloped-data"), std::string::npos);
    EXPECT_NE(sealed.outer_headers.find("cipher=aes-256-gcm"), std::string::npos);
    EXPECT_EQ(sealed.inner, "From: a@x\r\nSubject: plans\r\nContent-Type: image/png; "
                            "hp=\"cipher\"\r\nHP-Outer: From: a@x\r\nHP-Outer: Subject: [...]\r\n"
                            "\r\nbody\r\n");
}

} // namespace
} // namespace mailseal::seal
