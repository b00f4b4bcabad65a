// SPDX-License-Identifier: Apache-2.0
#include <algorithm>

#include <mailseal/log/log.hpp>
#include <mailseal/seal/sealer.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::seal {

message_sealer::message_sealer(std::vector<config::seal_policy> policies,
                               std::string protected_subject, copy_sink& sink)
    : protected_subject_(std::move(protected_subject)), sink_(sink) {
    recipients_.reserve(policies.size());
    for (auto& p : policies) {
        recipients_.push_back(recipient_state{p, {}, {}, {}, {}, {}});
    }
}

message_sealer::~message_sealer() {
    util::wipe(held_);
    util::wipe(canonical_);
    util::wipe(body_);
    util::wipe(output_);
}

void message_sealer::provide_keys(std::size_t index, key_set keys) {
    auto& r = recipients_.at(index);
    if (r.keys) {
        return;
    }
    r.keys = std::move(keys);
    decide_all();
}

bool message_sealer::has_keys(std::size_t index) const {
    return recipients_.at(index).keys.has_value();
}

bool message_sealer::needs_keys() const {
    return held_.size() > held_body_limit &&
           std::any_of(recipients_.begin(), recipients_.end(),
                       [](const recipient_state& r) { return !r.keys && !r.refusal; });
}

void message_sealer::exclude(std::size_t index, lmtp::reply why, std::string detail) {
    fail(index, std::move(why), std::move(detail));
    decide_all();
}

void message_sealer::write(std::string_view bytes) {
    // Each scratch buffer is sized for the chunk before use: a reallocation would leave the
    // old copy of the plaintext in freed memory, unwiped.
    std::size_t room = 2 * bytes.size() + header_section_limit;
    if (canonical_.capacity() < room) {
        util::wipe(canonical_);
        canonical_.reserve(room);
    }
    if (body_.capacity() < room) {
        util::wipe(body_);
        body_.reserve(room);
    }
    if (headers_.complete()) {
        // The body: no header section to look for, so it goes straight to the copies.
        body_arrived(canonicalize_.canonical(bytes, body_));
        util::wipe(body_);
        return;
    }
    canonicalize_.feed(bytes, canonical_);
    headers_.feed(canonical_, body_);
    util::wipe(canonical_);
    if (!headers_.complete()) {
        return;
    }
    headers_complete();
    body_arrived(body_);
    util::wipe(body_);
}

void message_sealer::end_of_data() {
    if (!headers_.complete()) {
        headers_.finish(body_);
        headers_complete();
        body_arrived(body_);
        util::wipe(body_);
    }
    if (!form_) {
        if (check_ && check_->finish()) {
            form_ = claimed_;
        } else {
            unverified("structure");
        }
    }
    for (auto& r : recipients_) {
        if (!r.keys && !r.refusal) {
            r.keys = key_set{dns::outcome::failure, nullptr, {}};
        }
    }
    decide_all();
    for (std::size_t i = 0; i < recipients_.size(); ++i) {
        auto& r = recipients_[i];
        if (!r.writer) {
            continue;
        }
        if (auto problem = r.writer->finish(output_)) {
            util::wipe(output_);
            fail(i, lmtp::replies::sealing_failed, *problem);
            continue;
        }
        flush(i);
    }
}

void message_sealer::headers_complete() {
    auto c = classify(headers_.section());
    claimed_ = c.form;
    check_ = make_body_scanner(c);
    if (!check_) {
        form_ = c.form;
    }
}

void message_sealer::body_arrived(std::string_view bytes) {
    if (check_ && !form_) {
        check_->feed(bytes);
        if (!check_->still_possible()) {
            unverified("structure");
        }
    }
    for (std::size_t i = 0; i < recipients_.size(); ++i) {
        if (recipients_[i].writer) {
            send(i, bytes);
        }
    }
    if (any_undecided()) {
        if (spilled_) {
            if (auto problem = spilled_->append(bytes)) {
                // The scratch file holds a part of the body now, so no copy can do without
                // it: each undecided recipient fails rather than miss a part.
                for (std::size_t i = 0; i < recipients_.size(); ++i) {
                    if (!recipients_[i].decided && !recipients_[i].refusal) {
                        fail(i, lmtp::replies::local_error, *problem);
                    }
                }
                spilled_.reset();
            }
        } else {
            util::append_wiping_growth(held_, bytes, held_body_limit + bytes.size());
        }
    }
    if (!form_ && !spilled_ && held_.size() > held_body_limit) {
        spill();
    }
    decide_all();
}

void message_sealer::spill() {
    auto made = encrypted_scratch::create(encrypted_scratch::default_directory());
    if (auto* problem = std::get_if<std::string>(&made)) {
        log::warning("scratch-failed", {{"error", *problem}});
        unverified("scratch-failed");
        return;
    }
    auto& scratch = std::get<encrypted_scratch>(made);
    if (auto problem = scratch.append(held_)) {
        log::warning("scratch-failed", {{"error", *problem}});
        unverified("scratch-failed");
        return;
    }
    util::wipe(held_);
    spilled_.emplace(std::move(scratch));
}

void message_sealer::unverified(std::string_view why) {
    // A label the body does not bear out: the message is sealed like any plaintext. Plain text
    // that never looked like armour claimed nothing, and is not worth a log line.
    form_ = encrypted_form::none;
    if (claimed_ != encrypted_form::none && (!check_ || check_->claims_encryption())) {
        log::info("encryption-unverified",
                  {{"claimed", std::string(to_string(claimed_))}, {"reason", std::string(why)}});
    }
}

bool message_sealer::any_undecided() const {
    return std::any_of(recipients_.begin(), recipients_.end(),
                       [](const recipient_state& r) { return !r.decided && !r.refusal; });
}

bool message_sealer::ready_to_decide(const recipient_state& r) const {
    return !r.decided && !r.refusal && r.keys && headers_.complete() &&
           (form_ || r.policy.passthrough == config::passthrough_mode::never);
}

void message_sealer::decide_all() {
    std::vector<std::size_t> fresh;
    for (std::size_t i = 0; i < recipients_.size(); ++i) {
        if (ready_to_decide(recipients_[i]) && decide(i)) {
            fresh.push_back(i);
        }
    }
    if (!fresh.empty()) {
        send_backlog(fresh);
    }
    if (!any_undecided()) {
        util::wipe(held_);
        spilled_.reset();
    }
}

void message_sealer::send_backlog(const std::vector<std::size_t>& fresh) {
    if (spilled_) {
        auto problem = spilled_->replay([&](std::string_view chunk) {
            for (auto i : fresh) {
                if (recipients_[i].writer) {
                    send(i, chunk);
                }
            }
        });
        if (problem) {
            for (auto i : fresh) {
                fail(i, lmtp::replies::local_error, *problem);
            }
            return;
        }
    }
    for (auto i : fresh) {
        if (recipients_[i].writer) {
            send(i, held_);
        }
    }
}

bool message_sealer::decide(std::size_t index) {
    auto& r = recipients_[index];
    // Under passthrough = never every message counts as plaintext: one layer the operator's
    // policy controls, whatever the sender did.
    auto form =
        r.policy.passthrough == config::passthrough_mode::never ? encrypted_form::none : *form_;
    r.decided = seal::decide(r.keys->outcome, r.keys->keys.size(), r.keys->unsettled, form,
                             r.policy.on_no_key);
    if (auto refusal = r.decided->refusal()) {
        r.refusal = std::move(*refusal);
        r.detail = r.decided->reason;
        return false;
    }
    auto opened = sink_.open(index);
    if (auto* refusal = std::get_if<lmtp::reply>(&opened)) {
        fail(index, std::move(*refusal), "");
        return false;
    }
    const auto& trace = std::get<std::string>(opened);
    const auto& section = headers_.section();
    if (r.decided->what == action::seal) {
        auto made = copy_writer::sealed(trace, section, *r.keys, r.policy, protected_subject_,
                                        sink_.line_end(index), output_, sealed_note_);
        if (auto* problem = std::get_if<std::string>(&made)) {
            util::wipe(output_);
            fail(index, lmtp::replies::sealing_failed, *problem);
            return false;
        }
        r.writer.emplace(std::move(std::get<copy_writer>(made)));
    } else {
        r.writer.emplace(
            copy_writer::as_received(trace, section, mailseal_field(*r.decided), output_));
    }
    return flush(index);
}

void message_sealer::send(std::size_t index, std::string_view bytes) {
    auto& r = recipients_[index];
    if (auto problem = r.writer->body(bytes, output_)) {
        util::wipe(output_);
        fail(index, lmtp::replies::sealing_failed, *problem);
        return;
    }
    flush(index);
}

bool message_sealer::flush(std::size_t index) {
    // A sealed copy's output is what its file holds anyway: ciphertext and the outer header
    // section, which the sink may keep as it is. Only a copy as received puts plaintext there.
    const auto& writer = recipients_[index].writer;
    const bool sealed = writer && writer->is_sealed();
    std::optional<lmtp::reply> failed;
    if (!output_.empty()) {
        failed = sealed ? sink_.write_taking(index, output_) : sink_.write(index, output_);
    }
    if (sealed) {
        output_.clear();
    } else {
        util::wipe(output_);
    }
    if (failed) {
        fail(index, std::move(*failed), "");
        return false;
    }
    return true;
}

void message_sealer::fail(std::size_t index, lmtp::reply why, std::string detail) {
    auto& r = recipients_[index];
    r.writer.reset();
    if (!r.refusal) {
        r.refusal = std::move(why);
        r.detail = std::move(detail);
    }
}

} // namespace mailseal::seal
