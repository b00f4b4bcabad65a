// SPDX-License-Identifier: Apache-2.0
// Fuzzes the judgement of a mail host's TLSA RRset (src/monitor/tlsa.cpp), as `mailseal check
// --tlsa` makes it: each RDATA split into its fields, matched as DANE-EE against the server
// certificate and as DANE-TA against the chain's CAs (verifying the chain at the judged time),
// then the stale, unusable and next-key findings. The chain is tlsa_chain.pem (a server
// certificate for mx.example.org, an intermediate and a root, valid 2026 to 2051).
//
// Oracles, from tlsa.hpp: the severity is one of the four; a usable 3 1 1 record of the server
// certificate means a match (no "no TLSA record matches" finding); every line to publish is the
// server certificate's 3 1 1 record at the owner; every line to remove names a published
// record at the owner; the gate opens only for a published next key.
//
// Input (record_input.hpp), option bits: 0 the same chain is also staged as the next one, 1
// judge in 2060 (after the chain's end), 2 a local domain's MX names the host, 3 no chain in
// use (DNS alone), 4 the next key was first seen long ago.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <mailseal/monitor/tlsa.hpp>
#include <mailseal/seal/smime/evaluate.hpp>

#include "oracle.hpp"
#include "record_input.hpp"

namespace mailseal::monitor {
namespace {

using fuzz::require;

constexpr std::string_view host = "mx.example.org";

const served_chain& chain() {
    static const served_chain loaded = [] {
        auto read = read_chains(TLSA_CHAIN);
        if (read.index() != 0 || std::get<0>(read).size() != 1) {
            std::fprintf(stderr, "fuzz_tlsa: cannot read %s\n", TLSA_CHAIN);
            std::abort();
        }
        return std::get<0>(read).front();
    }();
    return loaded;
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

} // namespace
} // namespace mailseal::monitor

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace mailseal;
    using namespace mailseal::monitor;
    auto in = fuzz::record_input::parse(data, size, tlsa_rr_type, tlsa_owner(host, 25));
    const auto& served = chain();
    tlsa_inputs inputs;
    inputs.host = std::string(host);
    inputs.lookup = in.lookup;
    auto base = std::chrono::system_clock::from_time_t(1'893'456'000); // 2030-01-01
    inputs.at = (in.options & 0x02) != 0 ? base + std::chrono::hours(24 * 365 * 30) : base;
    if ((in.options & 0x08) == 0) {
        inputs.current = {served};
    }
    if ((in.options & 0x01) != 0) {
        inputs.next = {served};
    }
    if ((in.options & 0x04) != 0) {
        inputs.mx_domains = {"example.org"};
    }
    if ((in.options & 0x10) != 0) {
        for (const auto& rdata : in.lookup.rdata) {
            inputs.first_seen[tlsa_presentation(rdata)] = base - std::chrono::hours(24);
        }
    }
    auto judged = judge_tlsa(inputs);
    const auto& v = judged.result;

    fuzz::require(v.level >= ok && v.level <= unknown, "a severity out of range");
    auto leaf_data = seal::smime::association_data(*served.certificates.front(), 1, 1);
    fuzz::require(leaf_data.has_value(), "the server certificate has no 3 1 1 data");
    std::vector<std::uint8_t> leaf_record{3, 1, 1};
    leaf_record.insert(leaf_record.end(), leaf_data->begin(), leaf_data->end());
    bool leaf_published = false;
    for (const auto& rdata : in.lookup.rdata) {
        leaf_published = leaf_published || rdata == leaf_record;
    }
    if (leaf_published && !inputs.current.empty()) {
        fuzz::require(v.publish.empty() || !inputs.next.empty(),
                      "a record to publish although the server's is published");
        for (const auto& f : v.findings) {
            fuzz::require(f.text.find("no TLSA record matches") == std::string::npos,
                          "a published 3 1 1 record of the server certificate did not match");
        }
    }
    std::string owner = tlsa_owner(host, 25) + ".";
    auto leaf_line = tlsa_line(tlsa_owner(host, 25), 3600, served);
    for (const auto& line : v.publish) {
        fuzz::require(line == leaf_line, "a line to publish that is not the server's 3 1 1");
    }
    fuzz::require(v.remove.size() <= in.lookup.rdata.size(), "more removals than records");
    for (const auto& line : v.remove) {
        fuzz::require(starts_with(line, owner + " IN TLSA "), "a removal at another owner");
    }
    if (!inputs.next.empty() && judged.next.gate == ok) {
        fuzz::require(judged.next.published, "the gate opened for an unpublished key");
    }
    return 0;
}
