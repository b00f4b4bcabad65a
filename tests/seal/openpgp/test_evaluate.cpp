// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/seal/openpgp/evaluate.hpp>
#include <mailseal/seal/openpgp/pgp_mime.hpp>

#include "test_keys.hpp"

namespace mailseal::seal::openpgp {
namespace {

using test::bytes;
using test::key_spec;
using test::made_key;
using test::subkey_spec;

const auto now = std::chrono::system_clock::from_time_t(test::test_now);
constexpr std::string_view alice = "alice@example.org";

/// Keys are slow enough to make (RSA especially) that each is made once for all tests.
const made_key& key_named(const std::string& name) {
    static std::map<std::string, made_key> made;
    static const std::map<std::string, std::function<key_spec()>> specs{
        {"ed25519", [] { return key_spec{}; }},
        {"rsa",
         [] {
             key_spec s;
             s.algorithm = "RSA";
             s.bits = 2048;
             s.subkeys = {subkey_spec{"RSA", nullptr, 2048}};
             return s;
         }},
        {"rsa_primary_encrypts",
         [] {
             key_spec s;
             s.algorithm = "RSA";
             s.bits = 2048;
             s.extra_usage = "encrypt";
             s.subkeys = {};
             return s;
         }},
        {"rsa_1024_subkey",
         [] {
             key_spec s;
             s.subkeys = {subkey_spec{"RSA", nullptr, 1024}};
             return s;
         }},
        {"signing_only",
         [] {
             key_spec s;
             s.subkeys = {};
             return s;
         }},
        {"expired",
         [] {
             key_spec s;
             s.expiration = test::day;
             return s;
         }},
        {"not_yet_valid",
         [] {
             key_spec s;
             s.created = test::test_now + 10 * test::day;
             return s;
         }},
        {"revoked",
         [] {
             key_spec s;
             s.revoked = true;
             return s;
         }},
        {"subkey_expired_and_fresh",
         [] {
             key_spec s;
             s.subkeys = {subkey_spec{"ECDH", "Curve25519", 0, "encrypt", test::day},
                          subkey_spec{}};
             return s;
         }},
        {"subkey_revoked_and_fresh",
         [] {
             key_spec s;
             s.subkeys = {subkey_spec{"ECDH", "Curve25519", 0, "encrypt", 0, true}, subkey_spec{}};
             return s;
         }},
        {"two_subkeys",
         [] {
             key_spec s;
             s.subkeys = {subkey_spec{}, subkey_spec{"ECDH", "NIST P-256"}};
             return s;
         }},
        {"other_address",
         [] {
             key_spec s;
             s.user_ids = {"Bob <bob@example.org>", "bob@example.net"};
             return s;
         }},
        {"second_uid_names_alice",
         [] {
             key_spec s;
             s.user_ids = {"Bob <bob@example.org>", "ALICE@Example.ORG"};
             return s;
         }},
        {"idn_uid",
         [] {
             key_spec s;
             s.user_ids = {"Alice <alice@b\xc3\xbc"
                           "cher.example>"};
             return s;
         }},
        {"elgamal",
         [] {
             key_spec s;
             s.algorithm = "DSA";
             s.bits = 1024;
             s.subkeys = {subkey_spec{"ELGAMAL", nullptr, 1024}};
             return s;
         }},
        {"secp256k1",
         [] {
             key_spec s;
             s.subkeys = {subkey_spec{"ECDH", "secp256k1"}};
             return s;
         }},
    };
    auto it = made.find(name);
    if (it == made.end()) {
        it = made.emplace(name, test::make_key(specs.at(name)())).first;
    }
    return it->second;
}

key_data record(const bytes& data, int n = 1) {
    return {"openpgpkey #" + std::to_string(n), data, true};
}

key_data file(const bytes& data, const std::string& name = "alice.asc") {
    return {"local /store/example.org/alice/" + name, data, false};
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](char c) { return std::tolower(c); });
    return s;
}

struct judge_case {
    std::string name;
    std::string key;
    bool usable;
    std::size_t keys;
    std::string why; ///< a part of the report's reason
};

class judge_test : public testing::TestWithParam<judge_case> {};

TEST_P(judge_test, reports_every_decision) {
    const auto& c = GetParam();
    const auto& k = key_named(c.key);
    auto ev = evaluate({record(k.public_key)}, {}, alice, now);
    ASSERT_EQ(ev.reports.size(), 1u);
    const auto& r = ev.reports.front();
    EXPECT_EQ(r.source, "openpgpkey #1");
    EXPECT_EQ(r.usable, c.usable) << r.why;
    EXPECT_NE(r.why.find(c.why), std::string::npos) << "got " << r.why << ", want " << c.why;
    EXPECT_EQ(r.fingerprint, lower(k.fingerprint));
    EXPECT_EQ(ev.keys.size(), c.keys) << r.why;
    EXPECT_EQ(r.selected, c.keys > 0);
    EXPECT_EQ(ev.decision, "secure OPENPGPKEY answer: keys from the records");
}

INSTANTIATE_TEST_SUITE_P(
    table, judge_test,
    testing::Values(
        judge_case{"ed25519_cv25519", "ed25519", true, 1, "encrypts to subkey"},
        judge_case{"rsa_2048", "rsa", true, 1, "(RSA 2048)"},
        judge_case{"rsa_primary_that_encrypts", "rsa_primary_encrypts", true, 1,
                   "encrypts to primary key"},
        judge_case{"rsa_1024_refused", "rsa_1024_subkey", false, 0, "RSA 1024 bits: below 2048"},
        judge_case{"signing_only", "signing_only", false, 0, "no encryption-capable key"},
        judge_case{"expired", "expired", false, 0, "key expired 2025-01-02"},
        judge_case{"not_yet_valid", "not_yet_valid", false, 0, "key not valid before 2026-06-11"},
        judge_case{"revoked", "revoked", false, 0, "key revoked"},
        judge_case{"expired_subkey_skipped", "subkey_expired_and_fresh", true, 1,
                   "expired 2025-01-02"},
        judge_case{"revoked_subkey_skipped", "subkey_revoked_and_fresh", true, 1, "revoked"},
        judge_case{"every_valid_subkey", "two_subkeys", true, 2, "ECDH NIST P-256"},
        judge_case{"user_id_for_another_address", "other_address", false, 0,
                   "no valid user ID names alice@example.org (RFC 7929 §5); it names Bob "
                   "<bob@example.org>, bob@example.net"},
        judge_case{"second_user_id_case_insensitive", "second_uid_names_alice", true, 1,
                   "encrypts to"},
        judge_case{"elgamal_refused", "elgamal", false, 0, "ElGamal: not accepted"},
        judge_case{"secp256k1_refused", "secp256k1", false, 0,
                   "ECDH on secp256k1: not a curve every OpenPGP reader supports"}),
    [](const auto& p) { return p.param.name; });

TEST(judge, user_id_domain_in_either_form) {
    const auto& k = key_named("idn_uid");
    auto ev = evaluate({record(k.public_key)}, {}, "alice@xn--bcher-kva.example", now);
    ASSERT_EQ(ev.keys.size(), 1u) << ev.reports.front().why;
    EXPECT_TRUE(
        names_address("Alice <ALICE@xn--BCHER-kva.example>", "alice@xn--bcher-kva.example"));
    EXPECT_TRUE(names_address("alice@example.org", "alice@example.org"));
    EXPECT_FALSE(names_address("alice@example.org.evil", "alice@example.org"));
    EXPECT_FALSE(names_address("Alice Example", "alice@example.org"));
    EXPECT_FALSE(names_address("<malice@example.org>", "alice@example.org"));
}

TEST(judge, key_fields) {
    const auto& k = key_named("two_subkeys");
    auto ev = evaluate({record(k.public_key)}, {}, alice, now);
    ASSERT_EQ(ev.keys.size(), 2u);
    EXPECT_EQ(ev.keys[0].algorithm, "ecdh-curve25519");
    EXPECT_EQ(ev.keys[1].algorithm, "ecdh-nist-p-256");
    EXPECT_EQ(ev.keys[0].fingerprint, lower(k.subkey_fprs[0]));
    EXPECT_EQ(ev.keys[1].fingerprint, lower(k.subkey_fprs[1]));
    EXPECT_FALSE(ev.keys[0].expires) << "the key never expires";
    EXPECT_EQ(ev.keys[0].source, "openpgpkey #1 subkey " + lower(k.subkey_fprs[0]).substr(24));
    const auto* m = encryption_key_of(ev.keys[0]);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->fingerprint, k.subkey_fprs[0]);
    ASSERT_TRUE(m->transferable_key);
    const auto& r = ev.reports.front();
    EXPECT_EQ(r.subject, "Alice <alice@example.org>");
    EXPECT_EQ(r.names, std::vector<std::string>{"Alice <alice@example.org>"});
    EXPECT_EQ(r.key_description, "EdDSA Ed25519");
    ASSERT_TRUE(r.not_before);
    EXPECT_EQ(iso_time(*r.not_before), "2025-01-01T00:00:00Z");
    EXPECT_FALSE(r.not_after);

    const auto& expiring = key_named("subkey_expired_and_fresh");
    auto later = evaluate({record(expiring.public_key)}, {}, alice,
                          std::chrono::system_clock::from_time_t(test::test_created + 3600));
    ASSERT_EQ(later.keys.size(), 2u) << "before the first subkey's expiry both are used";
    ASSERT_TRUE(later.keys[0].expires);
    EXPECT_EQ(iso_time(*later.keys[0].expires), "2025-01-02T00:00:00Z");
}

TEST(judge, holds_until_a_key_or_signature_it_saw_changes) {
    EXPECT_FALSE(evaluate({record(key_named("two_subkeys").public_key)}, {}, alice, now).changes_at)
        << "nothing in the key expires";

    const auto& expiring = key_named("subkey_expired_and_fresh");
    auto early = evaluate({record(expiring.public_key)}, {}, alice,
                          std::chrono::system_clock::from_time_t(test::test_created + 3600));
    ASSERT_TRUE(early.changes_at);
    EXPECT_EQ(iso_time(*early.changes_at), "2025-01-02T00:00:00Z") << "the first subkey expires";
    EXPECT_FALSE(evaluate({record(expiring.public_key)}, {}, alice, now).changes_at)
        << "after its expiry nothing changes any more";

    auto future = evaluate({record(key_named("not_yet_valid").public_key)}, {}, alice, now);
    EXPECT_TRUE(future.keys.empty());
    ASSERT_TRUE(future.changes_at);
    EXPECT_EQ(iso_time(*future.changes_at), "2026-06-11T00:00:00Z") << "the key's creation";
}

struct malformed_case {
    std::string name;
    std::function<bytes()> data;
    std::string why;
};

class malformed_test : public testing::TestWithParam<malformed_case> {};

TEST_P(malformed_test, record_is_unusable_and_opens_the_store) {
    const auto& c = GetParam();
    const auto& stored = key_named("ed25519");
    auto ev = evaluate({record(c.data())}, {file(stored.public_key)}, alice, now);
    ASSERT_GE(ev.reports.size(), 2u);
    EXPECT_FALSE(ev.reports[0].usable);
    EXPECT_NE(ev.reports[0].why.find(c.why), std::string::npos)
        << "got " << ev.reports[0].why << ", want " << c.why;
    // A secure answer with nothing that parses says nothing: the local store is used, as for
    // a secure absence.
    EXPECT_EQ(ev.decision, "secure OPENPGPKEY answer without a key that parses: local key store");
    ASSERT_EQ(ev.keys.size(), 1u);
    EXPECT_TRUE(ev.keys[0].source.starts_with("local "));
}

INSTANTIATE_TEST_SUITE_P(
    table, malformed_test,
    testing::Values(malformed_case{"random_bytes",
                                   [] {
                                       return bytes{0x99, 0x01, 0x0d, 0x04, 0xde, 0xad, 0xbe, 0xef};
                                   },
                                   "does not parse"},
                    malformed_case{"empty", [] { return bytes{}; }, "empty"},
                    malformed_case{"armoured_in_a_record",
                                   [] { return test::armoured(key_named("ed25519").public_key); },
                                   "not a binary OpenPGP key"},
                    malformed_case{"truncated",
                                   [] {
                                       auto b = key_named("ed25519").public_key;
                                       b.resize(b.size() / 2);
                                       return b;
                                   },
                                   "does not parse"},
                    malformed_case{"secret_key", [] { return key_named("ed25519").secret_key; },
                                   "holds a secret key"},
                    malformed_case{"two_keys_in_one_record",
                                   [] {
                                       auto b = key_named("ed25519").public_key;
                                       const auto& other = key_named("rsa").public_key;
                                       b.insert(b.end(), other.begin(), other.end());
                                       return b;
                                   },
                                   "holds 2 keys; an OPENPGPKEY record holds one (RFC 7929 §2.1)"}),
    [](const auto& p) { return p.param.name; });

TEST(precedence, records_over_the_local_store) {
    const auto& published = key_named("ed25519");
    const auto& stored = key_named("rsa");
    auto ev = select_keys(dns::outcome::secure_records, {record(published.public_key)},
                          {file(stored.public_key)}, alice, now);
    ASSERT_EQ(ev.keys.size(), 1u);
    EXPECT_EQ(ev.keys[0].fingerprint, lower(published.subkey_fprs[0]));
    ASSERT_EQ(ev.reports.size(), 2u);
    EXPECT_TRUE(ev.reports[1].local);
    EXPECT_FALSE(ev.reports[1].usable);
    EXPECT_FALSE(ev.reports[1].in_use);
    EXPECT_TRUE(ev.reports[1].why.starts_with("not used: a secure OPENPGPKEY answer takes "
                                              "precedence over the local store"))
        << ev.reports[1].why;
}

TEST(precedence, unusable_record_keeps_the_store_closed) {
    // A record that parses but gives no key is the user's word: no fallback.
    auto ev = select_keys(dns::outcome::secure_records, {record(key_named("expired").public_key)},
                          {file(key_named("rsa").public_key)}, alice, now);
    EXPECT_TRUE(ev.keys.empty());
}

TEST(precedence, absence_and_insecure_use_the_store) {
    for (auto outcome : {dns::outcome::secure_absent, dns::outcome::insecure}) {
        auto ev = select_keys(outcome, {}, {file(test::armoured(key_named("rsa").public_key))},
                              alice, now);
        ASSERT_EQ(ev.keys.size(), 1u) << dns::to_string(outcome);
        EXPECT_TRUE(ev.keys[0].source.starts_with("local /store/example.org/alice/alice.asc"));
    }
}

TEST(precedence, bogus_and_failure_give_nothing) {
    for (auto outcome : {dns::outcome::bogus, dns::outcome::failure}) {
        auto ev = select_keys(outcome, {record(key_named("ed25519").public_key)},
                              {file(key_named("rsa").public_key)}, alice, now);
        EXPECT_TRUE(ev.keys.empty());
        EXPECT_TRUE(ev.reports.empty());
        EXPECT_NE(ev.decision.find("no fallback to the local store"), std::string::npos);
    }
}

TEST(precedence, several_records_all_used_once) {
    const auto& a = key_named("ed25519");
    const auto& b = key_named("rsa");
    auto ev = evaluate({record(a.public_key, 1), record(b.public_key, 2), record(a.public_key, 3)},
                       {}, alice, now);
    ASSERT_EQ(ev.keys.size(), 2u) << "rollover: every published key, each once";
    ASSERT_EQ(ev.reports.size(), 3u);
    EXPECT_TRUE(ev.reports[2].in_use);
    EXPECT_FALSE(ev.reports[2].selected);
    EXPECT_NE(ev.reports[2].why.find("same key as openpgpkey #1"), std::string::npos);
}

TEST(merging, a_revocation_in_one_record_applies_to_a_stale_copy_in_another) {
    // What GnuPG does in its keyring: the copies of one key are one key. A stale copy published
    // beside the revoked one (in either order) must not make the revoked key usable.
    const auto& k = key_named("revoked");
    for (bool stale_first : {false, true}) {
        auto a = record(stale_first ? k.unrevoked_public_key : k.public_key, 1);
        auto b = record(stale_first ? k.public_key : k.unrevoked_public_key, 2);
        auto ev = evaluate({a, b}, {}, alice, now);
        EXPECT_TRUE(ev.keys.empty()) << "stale copy first: " << stale_first;
        ASSERT_EQ(ev.reports.size(), 2u);
        for (const auto& r : ev.reports) {
            EXPECT_EQ(r.why, "key revoked") << r.source;
        }
    }
}

TEST(merging, a_revoked_subkey_in_the_new_copy_is_not_used_from_the_old) {
    // The new copy revokes one subkey and keeps another; the old copy has only the first. The
    // copy is sealed to the fresh subkey alone (an encoder given the revoked one as well would
    // fail on every delivery).
    const auto& k = key_named("subkey_revoked_and_fresh");
    auto ev =
        evaluate({record(k.public_key, 1), record(k.unrevoked_public_key, 2)}, {}, alice, now);
    ASSERT_EQ(ev.keys.size(), 1u);
    EXPECT_EQ(ev.keys[0].fingerprint, lower(k.subkey_fprs[1]));
    auto begun = begin_pgp_mime(ev.keys, {});
    ASSERT_TRUE(std::holds_alternative<std::unique_ptr<encoder>>(begun))
        << std::get<std::string>(begun);
    auto& copy = *std::get<std::unique_ptr<encoder>>(begun);
    std::string out;
    copy.begin(out);
    EXPECT_EQ(copy.write("Subject: x\r\n\r\nbody\r\n", out), std::nullopt);
    EXPECT_EQ(copy.finish(out), std::nullopt);
}

TEST(merging, a_revocation_certificate_beside_the_key_revokes_it) {
    const auto& k = key_named("ed25519");
    auto ev = evaluate({}, {file(k.public_key, "2024.pgp"), file(k.revocation, "revoked.pgp")},
                       alice, now);
    EXPECT_TRUE(ev.keys.empty());
    ASSERT_EQ(ev.reports.size(), 2u);
    EXPECT_EQ(ev.reports[0].why, "key revoked");
    EXPECT_NE(ev.reports[1].why.find("signatures only"), std::string::npos) << ev.reports[1].why;
    auto armoured = evaluate({},
                             {file(k.public_key, "2024.pgp"),
                              file(test::armoured(k.revocation, "public key"), "rev.asc")},
                             alice, now);
    EXPECT_TRUE(armoured.keys.empty()) << "an armoured revocation certificate applies as well";
    // Records and files are kept apart: a file's revocation does not reach a record's key,
    // which wins over the store anyway.
    auto apart = select_keys(dns::outcome::secure_records, {record(k.public_key)},
                             {file(k.revocation, "revoked.pgp")}, alice, now);
    EXPECT_EQ(apart.keys.size(), 1u);
}

TEST(secret_keys, are_refused_wherever_they_are_in_the_data) {
    const auto& k = key_named("ed25519");
    auto public_then_secret = k.public_key;
    public_then_secret.insert(public_then_secret.end(), k.secret_key.begin(), k.secret_key.end());
    auto secret_then_public = k.secret_key;
    secret_then_public.insert(secret_then_public.end(), k.public_key.begin(), k.public_key.end());
    for (const auto& data : {public_then_secret, secret_then_public}) {
        auto from_record = evaluate({record(data)}, {}, alice, now);
        EXPECT_TRUE(from_record.keys.empty());
        ASSERT_EQ(from_record.reports.size(), 1u);
        EXPECT_NE(from_record.reports[0].why.find("holds a secret key"), std::string::npos)
            << from_record.reports[0].why;
        auto from_file = evaluate({}, {file(test::armoured(data, "public key"))}, alice, now);
        EXPECT_TRUE(from_file.keys.empty());
        ASSERT_EQ(from_file.local_problems.size(), 1u);
        EXPECT_NE(from_file.local_problems[0].why.find("holds a secret key"), std::string::npos);
    }
    // The refused file leaves nothing behind: a good file beside it still gives its key.
    auto ev = evaluate(
        {}, {file(public_then_secret, "bad.pgp"), file(key_named("rsa").public_key, "good.pgp")},
        alice, now);
    ASSERT_EQ(ev.keys.size(), 1u);
    EXPECT_EQ(ev.keys[0].fingerprint, lower(key_named("rsa").subkey_fprs[0]));
}

TEST(precedence, a_local_copy_of_the_published_key_is_in_use) {
    // `mailseal check` warns about local keys that are not in use; the same key as the record
    // is in use, only found in DNS first.
    const auto& k = key_named("ed25519");
    auto ev = select_keys(dns::outcome::secure_records, {record(k.public_key)},
                          {file(k.public_key)}, alice, now);
    ASSERT_EQ(ev.keys.size(), 1u);
    ASSERT_EQ(ev.reports.size(), 2u);
    EXPECT_TRUE(ev.reports[1].in_use);
    EXPECT_FALSE(ev.reports[1].selected);
    EXPECT_TRUE(ev.reports[1].why.starts_with("the same key as openpgpkey #1, which is used"))
        << ev.reports[1].why;
}

TEST(local_file, several_keys_in_one_file) {
    auto both = key_named("ed25519").public_key;
    const auto& other = key_named("two_subkeys").public_key;
    both.insert(both.end(), other.begin(), other.end());
    auto ev = evaluate({}, {file(both, "keyring.pgp")}, alice, now);
    ASSERT_EQ(ev.reports.size(), 2u);
    EXPECT_EQ(ev.keys.size(), 3u);
    EXPECT_NE(ev.reports[1].source.find("(key 2)"), std::string::npos) << ev.reports[1].source;
}

TEST(local_file, reads_and_recognises) {
    auto dir =
        std::filesystem::temp_directory_path() / ("mailseal-pgp-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto& k = key_named("ed25519");
    auto write = [&](const char* name, const bytes& data) {
        std::ofstream(dir / name, std::ios::binary)
            .write(reinterpret_cast<const char*>(data.data()),
                   static_cast<std::streamsize>(data.size()));
        return dir / name;
    };
    EXPECT_TRUE(looks_like_key(write("a.asc", test::armoured(k.public_key))));
    EXPECT_TRUE(looks_like_key(write("a.pgp", k.public_key)));
    EXPECT_FALSE(looks_like_key(write("a.txt", bytes{'h', 'i'})));
    auto content = read_key_file(dir / "a.pgp");
    ASSERT_TRUE(content.data);
    EXPECT_EQ(content.data->bytes, k.public_key);
    EXPECT_EQ(content.data->source, "local " + (dir / "a.pgp").string());
    auto missing = read_key_file(dir / "missing.asc");
    ASSERT_TRUE(missing.problem);
    EXPECT_EQ(missing.problem->why, "cannot open: No such file or directory");
    std::filesystem::remove_all(dir);
}

} // namespace
} // namespace mailseal::seal::openpgp
