// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <list>
#include <optional>
#include <sstream>
#include <system_error>
#include <unistd.h>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <mailseal/dns/resolver.hpp>
#include <mailseal/dns/unbound.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/errno_text.hpp>

namespace mailseal::dns {

namespace asio = boost::asio;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr int class_in = 1;

/// Names of the DNS RCODEs a resolver can return (RFC 1035 §4.1.1, RFC 2136 §2.2).
std::string rcode_name(int rcode) {
    static constexpr std::array<std::string_view, 11> names{
        "NOERROR",  "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
        "YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE"};
    if (rcode >= 0 && static_cast<std::size_t>(rcode) < names.size()) {
        return std::string(names[static_cast<std::size_t>(rcode)]);
    }
    return "RCODE" + std::to_string(rcode);
}

lookup_result failed(std::string owner, std::uint16_t rr_type, std::string detail) {
    lookup_result r;
    r.result = outcome::failure;
    r.owner = std::move(owner);
    r.rr_type = rr_type;
    r.detail = std::move(detail);
    return r;
}

/// One libunbound answer as one outcome: a library error, then a validation failure, then a
/// server failure, and only then the security status of a real answer. The order matters:
/// libunbound reports a validation failure with rcode SERVFAIL and `bogus` set, and neither a
/// bogus nor a failed answer carries `secure`, so checking `secure` first would call both
/// insecure.
lookup_result classify(std::string owner, std::uint16_t rr_type, int err, const ub_result* r) {
    if (err != 0) {
        return failed(std::move(owner), rr_type, ub_strerror(err));
    }
    if (r == nullptr) {
        return failed(std::move(owner), rr_type, "no result");
    }
    lookup_result out;
    out.owner = std::move(owner);
    out.rr_type = rr_type;
    out.nxdomain = r->nxdomain != 0;
    out.ttl = r->ttl > 0 ? static_cast<std::uint32_t>(r->ttl) : 0;
    if (r->bogus != 0) {
        // RFC 6698 §4.1 (inherited by RFC 8162): a bogus answer must not be used, and must
        // not be treated as absent either.
        out.result = outcome::bogus;
        out.detail = r->why_bogus != nullptr ? r->why_bogus : "DNSSEC validation failed";
        return out;
    }
    // SERVFAIL comes without `secure`; reading it as insecure would let a broken server
    // downgrade a signed zone to plaintext. Any rcode but NOERROR and NXDOMAIN is a failure.
    if (r->rcode != 0 && r->rcode != 3) {
        out.result = outcome::failure;
        out.detail = rcode_name(r->rcode);
        return out;
    }
    if (r->secure == 0) {
        out.result = outcome::insecure;
        return out;
    }
    if (r->havedata == 0) {
        out.result = outcome::secure_absent;
        return out;
    }
    out.result = outcome::secure_records;
    for (std::size_t i = 0; r->data != nullptr && r->data[i] != nullptr; ++i) {
        auto length = static_cast<std::size_t>(std::max(r->len[i], 0));
        const auto* first = reinterpret_cast<const std::uint8_t*>(r->data[i]);
        out.rdata.emplace_back(first, first + length);
    }
    if (r->answer_packet != nullptr && r->answer_len > 0) {
        out.signatures = signatures_in({static_cast<const std::uint8_t*>(r->answer_packet),
                                        static_cast<std::size_t>(r->answer_len)},
                                       rr_type);
    }
    return out;
}

/// Frees what libunbound returns from malloc (ub_ctx_get_option).
struct malloc_deleter {
    void operator()(char* p) const noexcept { std::free(p); }
};

/// Closes a stdio stream.
struct file_closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

/// Collects what libunbound logs while it loads the configuration: its error lines say which
/// anchor or file failed, where ub_strerror() only says "initialization failure".
class log_capture {
public:
    explicit log_capture(ub_ctx* ctx) : ctx_(ctx) {
        stream_.reset(::open_memstream(&buffer_, &size_));
        if (stream_) {
            ub_ctx_debugout(ctx_, stream_.get());
        }
    }
    log_capture(const log_capture&) = delete;
    log_capture& operator=(const log_capture&) = delete;
    ~log_capture() {
        finish();
        std::free(buffer_); // open_memstream's buffer outlives the stream
    }

    /// Sends libunbound's log back to stderr and returns the message text of each captured
    /// line (without unbound's "[time] libunbound[pid:tid] " prefix).
    std::vector<std::string> finish() {
        std::vector<std::string> lines;
        if (!stream_) {
            return lines;
        }
        ub_ctx_debugout(ctx_, stderr);
        stream_.reset();
        std::istringstream in(std::string(buffer_ != nullptr ? buffer_ : "", size_));
        for (std::string line; std::getline(in, line);) {
            auto tag = line.find("] ");
            if (line.starts_with('[') && tag != std::string::npos) {
                line.erase(0, tag + 2);
                auto body = line.find("] ");
                if (body != std::string::npos) {
                    line.erase(0, body + 2);
                }
            }
            if (!line.empty()) {
                lines.push_back(std::move(line));
            }
        }
        return lines;
    }

private:
    ub_ctx* ctx_;
    char* buffer_ = nullptr;
    std::size_t size_ = 0;
    file_ptr stream_;
};

/// The first line libunbound logged, which names the file, line or anchor at fault (the
/// lines after it only trace the failure up through its modules).
std::string first_line(const std::vector<std::string>& lines) {
    if (lines.empty()) {
        return "";
    }
    std::string_view line = lines.front();
    if (line.starts_with("error: ")) {
        line.remove_prefix(7);
    }
    return std::string(line);
}

/// Whether a zone-file line is a DS or DNSKEY record: one of its fields (after the owner) is
/// the type. Comments (';') and directives ('$ORIGIN') hold none.
bool is_anchor_record(std::string_view line) {
    line = line.substr(0, line.find(';'));
    std::istringstream fields{std::string(line)};
    std::string field;
    bool first = true;
    while (fields >> field) {
        if (first && field.starts_with('$')) {
            return false;
        }
        if (!first && (util::iequals(field, "DS") || util::iequals(field, "DNSKEY"))) {
            return true;
        }
        first = false;
    }
    return false;
}

/// Why the trust anchor file gives no anchor, or std::nullopt when it holds at least one DS or
/// DNSKEY record. libunbound itself only notices a missing file when it loads its
/// configuration, and loads an empty one without complaint, after which every answer is
/// insecure.
std::optional<std::string> anchor_file_problem(const std::filesystem::path& path) {
    auto unreadable = [&](int err) {
        return "cannot read trust_anchor_file \"" + path.string() + "\": " + util::errno_text(err);
    };
    errno = 0;
    file_ptr file(std::fopen(path.c_str(), "re"));
    if (!file) {
        return unreadable(errno);
    }
    std::string content;
    std::array<char, 4096> chunk{};
    std::size_t n = 0;
    while ((n = std::fread(chunk.data(), 1, chunk.size(), file.get())) > 0) {
        content.append(chunk.data(), n);
    }
    if (std::ferror(file.get()) != 0) {
        return unreadable(errno);
    }
    std::istringstream lines(content);
    for (std::string line; std::getline(lines, line);) {
        if (is_anchor_record(line)) {
            return std::nullopt;
        }
    }
    return "trust_anchor_file \"" + path.string() + "\" holds no DS or DNSKEY record";
}

/// Whether `zone` is `name` or below it (both lowercase, ending in '.').
bool is_at_or_below(std::string_view zone, std::string_view name) {
    return zone == name || (zone.size() > name.size() && zone.ends_with(name) &&
                            zone[zone.size() - name.size() - 1] == '.');
}

/// Special-use names (RFC 6761, RFC 7686 onion., RFC 8375 home.arpa.) that unbound answers
/// from a built-in local zone (local. is mDNS, RFC 6762, listed for safety).
constexpr std::array<std::string_view, 6> special_use_names{"test.",      "local.", "invalid.",
                                                            "localhost.", "onion.", "home.arpa."};

bool is_special_use(std::string_view zone) {
    return std::any_of(special_use_names.begin(), special_use_names.end(),
                       [&](std::string_view name) { return is_at_or_below(zone, name); });
}

std::string in_quotes(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

std::string refused(int err) {
    return std::string(": refused by libunbound: ") + ub_strerror(err);
}

/// Applies `s` to a fresh context; returns the error text on the first refusal.
std::optional<std::string> configure(ub_ctx* ctx, const config::dns_settings& s,
                                     bool use_anchor_file) {
    // A thread, never a fork (ub_ctx_async(ctx, 0)): mailseal is a threaded server.
    if (int err = ub_ctx_async(ctx, 1); err != 0) {
        return std::string("cannot run libunbound in a thread: ") + ub_strerror(err);
    }
    // Before the file, which may turn it on again. With QNAME minimisation (RFC 9156),
    // libunbound 1.17 first asks for "_smimecert.<domain>"; where that name does not exist (a
    // domain where nobody publishes a key, the usual case) in a zone signed with NSEC3, it asks
    // again for every lookup instead of answering from its negative cache: a query to the
    // domain's servers, and its round trip, for each message. The full names are hashes of
    // local parts, so a parent zone learns no more than that a key is looked up at <domain>.
    if (int err = ub_ctx_set_option(ctx, "qname-minimisation:", "no"); err != 0) {
        return std::string("qname-minimisation") + refused(err);
    }
    // First, so that the settings below take precedence over the file.
    if (!s.unbound_conf.empty()) {
        auto name = "unbound_conf " + in_quotes(s.unbound_conf.string());
        if (int err = ub_ctx_config(ctx, s.unbound_conf.c_str()); err != 0) {
            return name + refused(err);
        }
        // A module list without the validator would make every answer insecure, as a missing
        // trust anchor does.
        char* raw = nullptr;
        int err = ub_ctx_get_option(ctx, "module-config", &raw);
        std::unique_ptr<char, malloc_deleter> modules(raw);
        if (err == 0 && modules &&
            std::string_view(modules.get()).find("validator") == std::string_view::npos) {
            return name + ": module-config " + in_quotes(modules.get()) +
                   " leaves out the validator (every answer would be insecure)";
        }
    }
    for (std::size_t i = 0; i < s.forwarders.size(); ++i) {
        if (int err = ub_ctx_set_fwd(ctx, s.forwarders[i].c_str()); err != 0) {
            return "forwarders[" + std::to_string(i) + "] " + in_quotes(s.forwarders[i]) +
                   refused(err);
        }
    }
    for (std::size_t i = 0; i < s.stub_zones.size(); ++i) {
        const auto& stub = s.stub_zones[i];
        auto name = "stub_zone[" + std::to_string(i) + "] " + in_quotes(stub.zone);
        for (const auto& server : stub.servers) {
            if (int err = ub_ctx_set_stub(ctx, stub.zone.c_str(), server.c_str(), 0); err != 0) {
                return name + " server " + in_quotes(server) + refused(err);
            }
        }
        // unbound answers special-use names (test., invalid., ...) itself, from built-in
        // local zones, and a stub zone does not override that: every lookup would end as an
        // insecure NXDOMAIN. A transparent local zone at the stub zone's own name lets its
        // queries through while the rest of the special-use name keeps unbound's answer.
        // (`nodefault` would do the same, but through ub_ctx_set_option() 1.17.1 takes the
        // whole "name nodefault" string as the zone name.)
        if (is_special_use(stub.zone)) {
            auto value = stub.zone + " transparent";
            if (int err = ub_ctx_set_option(ctx, "local-zone:", value.c_str()); err != 0) {
                return name + ": local-zone" + refused(err);
            }
        }
    }
    if (use_anchor_file) {
        if (int err = ub_ctx_add_ta_file(ctx, s.trust_anchor_file.c_str()); err != 0) {
            return "trust_anchor_file " + in_quotes(s.trust_anchor_file.string()) + refused(err);
        }
    }
    for (std::size_t i = 0; i < s.trust_anchors.size(); ++i) {
        const auto& anchor = s.trust_anchors[i];
        auto name = "trust_anchors[" + std::to_string(i) + "] " + in_quotes(anchor);
        if (!is_anchor_record(anchor)) {
            return name + ": is not a DS or DNSKEY record";
        }
        if (int err = ub_ctx_add_ta(ctx, anchor.c_str()); err != 0) {
            return name + refused(err);
        }
    }
    // Full certificates make answers larger than the 1232-octet EDNS buffer: the server sets
    // TC=1 and libunbound retries over TCP. An unbound.conf must not switch that off.
    if (int err = ub_ctx_set_option(ctx, "do-tcp:", "yes"); err != 0) {
        return std::string("do-tcp") + refused(err);
    }
    // DNSSEC or nothing: an unbound.conf must not turn bogus answers into insecure ones (which
    // send a recipient to the local store) nor accept answers stripped of their signatures.
    for (const auto& [option, value] :
         {std::pair{"val-permissive-mode:", "no"}, std::pair{"harden-dnssec-stripped:", "yes"}}) {
        if (int err = ub_ctx_set_option(ctx, option, value); err != 0) {
            return std::string(option) + refused(err);
        }
    }
    char* raw = nullptr;
    int err = ub_ctx_get_option(ctx, "domain-insecure", &raw);
    std::unique_ptr<char, malloc_deleter> insecure(raw);
    if (err == 0 && insecure && *insecure.get() != '\0') {
        return "unbound_conf: domain-insecure " + in_quotes(insecure.get()) +
               " would make signed zones insecure (DNSSEC or nothing)";
    }
    return std::nullopt;
}

} // namespace

/// A lookup in flight: lives in its coroutine's frame and is listed in core::waiters until it
/// completes, so the callback, the deadline and cancel_all() can each complete it once.
struct pending_lookup;

struct resolver::core {
    core(asio::any_io_executor e, c_ptr<ub_ctx> c, std::chrono::seconds t)
        : ex(std::move(e)), ctx(std::move(c)), answers(ex), timeout(t) {}

    /// Completes every waiting lookup as failure `detail`.
    void fail_all(const std::string& detail);
    /// Stops the pump's wait when nothing waits any more, so an idle resolver holds no work
    /// and io_context::run() can return at shutdown.
    void stop_pump_if_idle() {
        if (waiters.empty() && pumping) {
            answers.cancel();
        }
    }

    /// The answer kept for `owner` and `rr_type`, if its TTL has not run out.
    std::optional<lookup_result> kept_answer(const std::string& owner, std::uint16_t rr_type);
    /// Keeps an answer for its TTL: secure ones and insecure ones, never a bogus answer or a
    /// failure, which libunbound itself remembers only briefly.
    void keep_answer(const lookup_result& r);

    asio::any_io_executor ex;
    c_ptr<ub_ctx> ctx;
    /// A duplicate of ub_fd(): Asio closes its descriptor, and unbound must keep its own.
    asio::posix::stream_descriptor answers;
    std::chrono::seconds timeout;
    std::list<pending_lookup*> waiters;
    bool pumping = false;
    bool closed = false;
    /// Answers given again until their TTL ends, as libunbound's own cache would give them,
    /// but without the trip to its thread and back (two thread switches per lookup). Keyed by
    /// the RR type and the owner name.
    struct kept_entry {
        lookup_result result;
        std::chrono::steady_clock::time_point expires;
    };
    std::unordered_map<std::string, kept_entry> answers_kept;
};

namespace {

/// More answers than this are not kept: a burst of distinct recipients empties the map
/// rather than growing it without bound.
constexpr std::size_t max_kept_answers = 10000;

std::string kept_key(const std::string& owner, std::uint16_t rr_type) {
    return std::to_string(rr_type) + " " + owner;
}

} // namespace

std::optional<lookup_result> resolver::core::kept_answer(const std::string& owner,
                                                         std::uint16_t rr_type) {
    auto it = answers_kept.find(kept_key(owner, rr_type));
    if (it == answers_kept.end()) {
        return std::nullopt;
    }
    if (std::chrono::steady_clock::now() >= it->second.expires) {
        answers_kept.erase(it);
        return std::nullopt;
    }
    return it->second.result;
}

void resolver::core::keep_answer(const lookup_result& r) {
    bool keepable = r.result == outcome::secure_records || r.result == outcome::secure_absent ||
                    r.result == outcome::insecure;
    if (!keepable || r.ttl == 0) {
        return;
    }
    auto now = std::chrono::steady_clock::now();
    if (answers_kept.size() >= max_kept_answers) {
        std::erase_if(answers_kept, [&](const auto& entry) { return now >= entry.second.expires; });
        if (answers_kept.size() >= max_kept_answers) {
            answers_kept.clear();
        }
    }
    answers_kept.insert_or_assign(kept_key(r.owner, r.rr_type),
                                  kept_entry{r, now + std::chrono::seconds(r.ttl)});
}

struct pending_lookup {
    pending_lookup(std::shared_ptr<resolver::core> c, std::string owner, std::uint16_t type)
        : core(std::move(c)), timer(core->ex) {
        result.owner = std::move(owner);
        result.rr_type = type;
    }
    pending_lookup(const pending_lookup&) = delete;
    pending_lookup& operator=(const pending_lookup&) = delete;
    /// A frame destroyed while its query is pending (the io_context went away): the callback
    /// must not reach it any more.
    ~pending_lookup() {
        if (listed) {
            ub_cancel(core->ctx.get(), id);
            core->waiters.erase(position);
        }
    }

    void enlist(int async_id) {
        id = async_id;
        position = core->waiters.insert(core->waiters.end(), this);
        listed = true;
    }

    /// Records the outcome and wakes the coroutine, which waits on the timer.
    void complete(lookup_result r) {
        r.owner = std::move(result.owner);
        r.rr_type = result.rr_type;
        result = std::move(r);
        done = true;
        if (listed) {
            core->waiters.erase(position);
            listed = false;
        }
        timer.cancel();
    }

    /// Ends the lookup before its answer: libunbound will not call back for it.
    void abandon(std::string detail) {
        ub_cancel(core->ctx.get(), id);
        complete(failed(result.owner, result.rr_type, std::move(detail)));
    }

    std::shared_ptr<resolver::core> core;
    asio::steady_timer timer;
    int id = 0;
    bool listed = false;
    bool done = false;
    std::list<pending_lookup*>::iterator position;
    lookup_result result;
};

void resolver::core::fail_all(const std::string& detail) {
    // complete() unlinks the waiter: walk a copy.
    std::vector<pending_lookup*> pending(waiters.begin(), waiters.end());
    for (pending_lookup* w : pending) {
        w->abandon(detail);
    }
}

namespace {

/// ub_callback_type: runs inside ub_process(), on the event loop's thread.
void on_answer(void* arg, int err, ub_result* raw) {
    c_ptr<ub_result> result(raw);
    auto* w = static_cast<pending_lookup*>(arg);
    w->complete(classify(w->result.owner, w->result.rr_type, err, result.get()));
}

/// Reads answers while lookups wait: each time ub_fd() is readable, ub_process() drains every
/// answer there and runs its callback. It starts with the first pending lookup and ends with
/// the last, so an idle resolver leaves the io_context without work.
asio::awaitable<void> pump(std::shared_ptr<resolver::core> c) {
    for (;;) {
        // Also drains answers that arrived while no pump was waiting (late answers of
        // cancelled lookups): epoll reports each arrival once.
        if (int err = ub_process(c->ctx.get()); err != 0) {
            log::error("dns-process-failed", {{"error", ub_strerror(err)}});
            c->fail_all(ub_strerror(err));
        }
        if (c->waiters.empty() || c->closed) {
            break;
        }
        auto [ec] =
            co_await c->answers.async_wait(asio::posix::stream_descriptor::wait_read, use_tuple);
        if (ec && ec != asio::error::operation_aborted) {
            log::error("dns-wait-failed", {{"error", ec.message()}});
            c->fail_all(ec.message());
            break;
        }
    }
    c->pumping = false;
}

void start_pump(const std::shared_ptr<resolver::core>& c) {
    if (c->pumping) {
        return;
    }
    c->pumping = true;
    asio::co_spawn(c->ex, pump(c), [](std::exception_ptr e) { log::error("dns-pump-failed", e); });
}

asio::awaitable<lookup_result> run_lookup(std::shared_ptr<resolver::core> c, std::string owner,
                                          std::uint16_t rr_type) {
    if (c->closed) {
        co_return failed(std::move(owner), rr_type, "cancelled");
    }
    if (auto kept = c->kept_answer(owner, rr_type)) {
        co_return std::move(*kept);
    }
    pending_lookup w(c, std::move(owner), rr_type);
    int id = 0;
    int err = ub_resolve_async(c->ctx.get(), w.result.owner.c_str(), rr_type, class_in, &w,
                               on_answer, &id);
    if (err != 0) {
        co_return failed(std::move(w.result.owner), rr_type, ub_strerror(err));
    }
    w.enlist(id);
    // The pump may start inline (co_spawn dispatches) and complete this lookup at once.
    start_pump(c);
    if (!w.done) {
        // RFC 8162 and RFC 7929 leave timeouts to the client, and libunbound has no per-query
        // deadline: the timer is both the deadline and the wake-up that complete() triggers.
        w.timer.expires_after(c->timeout);
        auto [ec] = co_await w.timer.async_wait(use_tuple);
        if (!w.done) {
            // Not woken by complete(): the deadline passed, or the awaiting coroutine was
            // cancelled.
            w.abandon(ec == asio::error::operation_aborted ? "cancelled" : "timeout");
            c->stop_pump_if_idle();
        }
    }
    c->keep_answer(w.result);
    co_return std::move(w.result);
}

} // namespace

resolver::resolver(std::shared_ptr<core> c) : core_(std::move(c)) {}

resolver::~resolver() {
    cancel_all();
    core_->closed = true;
}

void resolver::cancel_all() {
    core_->fail_all("cancelled");
    core_->stop_pump_if_idle();
}

asio::awaitable<lookup_result> resolver::lookup(std::string owner, std::uint16_t rr_type) {
    return run_lookup(core_, std::move(owner), rr_type);
}

std::variant<std::unique_ptr<resolver>, std::string>
resolver::create(asio::any_io_executor ex, const config::dns_settings& settings) {
    auto file_problem = anchor_file_problem(settings.trust_anchor_file);
    if (file_problem && settings.trust_anchors.empty()) {
        // Without an anchor libunbound still answers, every answer insecure: encryption would
        // silently stop. Refuse to start instead.
        return "no DNSSEC trust anchor: " + *file_problem +
               ", and trust_anchors is empty (without an anchor every answer is insecure and "
               "nothing would be sealed)";
    }
    if (file_problem) {
        log::warning("dns-trust-anchor-file-skipped",
                     {{"problem", *file_problem},
                      {"anchors", std::to_string(settings.trust_anchors.size())}});
    }

    c_ptr<ub_ctx> ctx(ub_ctx_create());
    if (!ctx) {
        return std::string("cannot create a libunbound context");
    }
    log_capture captured(ctx.get());
    if (auto problem = configure(ctx.get(), settings, !file_problem)) {
        auto details = first_line(captured.finish());
        return details.empty() ? *problem : *problem + " (" + details + ")";
    }
    // libunbound reads trust anchors and sets up its modules only when it finalises the
    // context, which otherwise happens at the first query. Removing a local zone that does
    // not exist finalises it with no other effect, so anchor errors show here.
    int err = ub_ctx_zone_remove(ctx.get(), "mailseal-finalize.invalid.");
    auto lines = captured.finish();
    if (err != 0) {
        auto details = first_line(lines);
        return std::string("libunbound does not load the configuration: ") + ub_strerror(err) +
               (details.empty() ? "" : " (" + details + ")");
    }
    for (const auto& line : lines) {
        log::warning("dns-unbound", {{"message", line}});
    }

    int fd = ::fcntl(ub_fd(ctx.get()), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        return "cannot watch libunbound's answers: " + util::errno_text(errno);
    }
    auto c = std::make_shared<core>(std::move(ex), std::move(ctx), settings.timeout);
    boost::system::error_code ec;
    c->answers.assign(fd, ec);
    if (ec) {
        ::close(fd);
        return "cannot watch libunbound's answers: " + ec.message();
    }
    return std::unique_ptr<resolver>(new resolver(std::move(c)));
}

} // namespace mailseal::dns
