// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <filesystem>
#include <grp.h>
#include <list>
#include <malloc.h>
#include <pwd.h>
#include <random>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <type_traits>
#include <unistd.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <mailseal/delivery/mailbox.hpp>
#include <mailseal/delivery/transaction.hpp>
#include <mailseal/discovery/discovery.hpp>
#include <mailseal/lmtp/session.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/metrics/metrics.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/relay/next_hop.hpp>
#include <mailseal/server/server.hpp>
#include <mailseal/store/maildir.hpp>
#include <mailseal/util/errno_text.hpp>
#include <mailseal/util/offload.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::server {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using tcp = asio::ip::tcp;
using local_stream = asio::local::stream_protocol;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

struct listener {
    std::variant<tcp::acceptor, local_stream::acceptor> acceptor;
    std::string name;
    /// For a unix listener: its socket file, removed at stop unless another process has put a
    /// socket of its own there (same path, other inode).
    std::filesystem::path socket_path;
    ino_t socket_inode = 0;
};

/// What stop() needs to know about a live connection.
struct connection_entry {
    asio::steady_timer* timer = nullptr;
    /// Waiting for a command before DATA: stopping may answer 421 4.3.2 at once, since nothing
    /// of a message has been accepted yet.
    bool interruptible = false;
};

std::string hex_id(std::uint64_t v) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    do {
        out.insert(out.begin(), digits[v & 0xf]);
        v >>= 4;
    } while (v != 0);
    return out;
}

std::string listener_name(const tcp::endpoint& ep) {
    auto address = ep.address();
    std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return "tcp:" + host + ":" + std::to_string(ep.port());
}

/// Applies a unix listener's mode, owner and group to its socket file.
std::optional<std::string> set_socket_permissions(const config::unix_listener& l) {
    if (::chmod(l.path.c_str(), l.mode) != 0) {
        return "chmod " + l.path.string() + ": " + util::errno_text(errno);
    }
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    if (!l.owner.empty()) {
        const passwd* pw = ::getpwnam(l.owner.c_str());
        if (pw == nullptr) {
            return "unknown user '" + l.owner + "' for " + l.path.string();
        }
        uid = pw->pw_uid;
    }
    if (!l.group.empty()) {
        const group* gr = ::getgrnam(l.group.c_str());
        if (gr == nullptr) {
            return "unknown group '" + l.group + "' for " + l.path.string();
        }
        gid = gr->gr_gid;
    }
    if ((!l.owner.empty() || !l.group.empty()) && ::chown(l.path.c_str(), uid, gid) != 0) {
        return "chown " + l.path.string() + ": " + util::errno_text(errno);
    }
    return std::nullopt;
}

std::variant<listener, std::string> bind_listener(asio::io_context& io, const config::listener& l) {
    boost::system::error_code ec;
    if (const auto* t = std::get_if<config::tcp_listener>(&l)) {
        auto address = asio::ip::make_address(t->address, ec);
        if (ec) {
            return "bad listener address " + t->address + ": " + ec.message();
        }
        tcp::endpoint ep(address, t->port);
        tcp::acceptor acceptor(io);
        acceptor.open(ep.protocol(), ec);
        if (!ec) {
            acceptor.set_option(asio::socket_base::reuse_address(true), ec);
        }
        if (!ec) {
            acceptor.bind(ep, ec);
        }
        if (!ec) {
            acceptor.listen(asio::socket_base::max_listen_connections, ec);
        }
        if (ec) {
            return "cannot listen on " + listener_name(ep) + ": " + ec.message();
        }
        std::string name = listener_name(acceptor.local_endpoint());
        return listener{std::move(acceptor), std::move(name), {}, 0};
    }
    const auto& u = std::get<config::unix_listener>(l);
    std::string name = "unix:" + u.path.string();
    local_stream::endpoint ep(u.path.string());
    // A socket left by an earlier run is replaced, but not one a running instance still
    // listens on (two daemons would split the mail between them), and nothing that is not a
    // socket.
    struct stat st {};
    if (::lstat(u.path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return "cannot listen on " + name + ": exists and is not a socket";
        }
        local_stream::socket probe(io);
        probe.connect(ep, ec);
        if (!ec) {
            return "cannot listen on " + name + ": another process is listening there";
        }
        ::unlink(u.path.c_str());
    }
    local_stream::acceptor acceptor(io);
    acceptor.open(ep.protocol(), ec);
    if (!ec) {
        acceptor.bind(ep, ec);
    }
    if (!ec) {
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        return "cannot listen on " + name + ": " + ec.message();
    }
    if (auto problem = set_socket_permissions(u)) {
        return *problem;
    }
    if (::lstat(u.path.c_str(), &st) != 0) {
        return "stat " + u.path.string() + ": " + util::errno_text(errno);
    }
    return listener{std::move(acceptor), std::move(name), u.path, st.st_ino};
}

/// The listening sockets systemd passed (LISTEN_FDS, sd_listen_fds(3)); none when not socket
/// activated. Any passed descriptor that is not a listening stream socket is an error.
std::variant<std::vector<listener>, std::string> adopt_activated_sockets(asio::io_context& io) {
    std::vector<listener> out;
    int n = ::sd_listen_fds(1);
    if (n < 0) {
        return "sd_listen_fds: " + util::errno_text(-n);
    }
    for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; ++fd) {
        boost::system::error_code ec;
        if (::sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) > 0) {
            local_stream::acceptor acceptor(io);
            acceptor.assign(local_stream(), fd, ec);
            auto path = ec ? std::string() : acceptor.local_endpoint(ec).path();
            if (ec) {
                return "socket from systemd (fd " + std::to_string(fd) + "): " + ec.message();
            }
            // No socket_path: the file is systemd's to remove, not ours.
            out.push_back(listener{std::move(acceptor), "unix:" + path, {}, 0});
        } else if (::sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0) {
            bool v6 = ::sd_is_socket_inet(fd, AF_INET6, SOCK_STREAM, 1, 0) > 0;
            tcp::acceptor acceptor(io);
            acceptor.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
            auto ep = ec ? tcp::endpoint() : acceptor.local_endpoint(ec);
            if (ec) {
                return "socket from systemd (fd " + std::to_string(fd) + "): " + ec.message();
            }
            out.push_back(listener{std::move(acceptor), listener_name(ep), {}, 0});
        } else {
            return "descriptor " + std::to_string(fd) +
                   " from systemd is not a listening stream socket (unix or TCP)";
        }
    }
    return out;
}

/// Runs `work` on the worker pool; the connection's coroutine resumes on the event loop.
template <class Work>
asio::awaitable<std::invoke_result_t<Work&>> on_pool(asio::thread_pool& pool, Work work) {
    return util::run_on(pool.get_executor(), std::move(work));
}

} // namespace

/// Everything a configuration reload replaces. Each connection holds the generation it
/// started with until it closes, and each key lookup until it completes, so a reload never
/// pulls anything from under them.
struct generation {
    generation(config::config configuration, std::unique_ptr<dns::resolver> dns_resolver,
               seal::format_set formats, const asio::any_io_executor& blocking)
        : cfg(std::move(configuration)), resolver(std::move(dns_resolver)),
          discovery(cfg, *resolver, std::move(formats), blocking), names(cfg.server.hostname) {
        if (cfg.store.kind == config::store_kind::lmtp && cfg.store.next_hop) {
            next_hop = std::make_unique<relay::next_hop>(
                *cfg.store.next_hop, cfg.store.timeout, cfg.store.data_done_timeout,
                cfg.store.idle_connections, cfg.server.hostname);
        }
    }

    const config::config cfg;
    std::unique_ptr<dns::resolver> resolver;
    discovery::key_discovery discovery;
    store::name_generator names;
    /// [store] kind = "lmtp": the next hop, with its idle connections.
    std::unique_ptr<relay::next_hop> next_hop;
};

struct server::state {
    state(asio::io_context& context, std::size_t workers)
        : io(context), pool(workers), idle_trim(context) {
        std::random_device entropy;
        id_prefix = hex_id(entropy()) + "-";
    }

    asio::io_context& io;
    asio::thread_pool pool;
    /// The configuration in force for new connections (replaced by reload()).
    std::shared_ptr<generation> current;
    /// The listeners came from systemd, not from [[listen]].
    bool socket_activated = false;
    std::vector<listener> listeners;
    /// The Prometheus endpoint ([metrics] listen), if configured.
    std::optional<listener> metrics_listener;
    std::list<connection_entry> connections;
    /// Runs out a second after the last connection closed (see connection_registration).
    asio::steady_timer idle_trim;
    bool stopping = false;
    std::string id_prefix;
    std::uint64_t next_session = 0;
};

namespace {

void log_crash(std::exception_ptr e) {
    log::error("connection-failed", e);
}

/// Wipes a body slice's whole buffer, which also reaches what a move leaves behind: a short
/// string keeps its bytes in its inline buffer.
void wipe_body_bytes(lmtp::event& e) {
    if (auto* body = std::get_if<lmtp::events::body>(&e)) {
        util::wipe_storage(body->bytes);
    }
}

/// Moves the session's events to the connection's queue, wiping what the moves leave behind.
void enqueue(std::vector<lmtp::event> events, std::deque<lmtp::event>& queue) {
    for (auto& e : events) {
        queue.push_back(std::move(e));
        wipe_body_bytes(e);
    }
}

/// Body slices taken from the session's events for one hand-off to the pool: their plaintext
/// is wiped however the hand-off ends.
struct body_slices {
    body_slices() = default;
    body_slices(const body_slices&) = delete;
    body_slices& operator=(const body_slices&) = delete;
    ~body_slices() {
        for (auto& slice : items) {
            util::wipe(slice);
        }
    }
    std::vector<std::string> items;
};

/// Body bytes the connection may read and parse ahead while the pool still seals and stores
/// the previous slices; past it, the client waits on TCP flow control.
constexpr std::size_t read_ahead_bytes = 512 * 1024;
/// A message's first body bytes wait for more until they reach this much: a message no larger
/// goes to the pool once, with its end, instead of once for its first read and again for the
/// rest (two thread switches and a wake-up each time).
constexpr std::size_t first_batch_bytes = 256 * 1024;

/// Whether the body slices at the front of the connection's queue, `first` and the slices
/// queued behind it, go to the pool now rather than wait for more reading: something other than
/// body follows them (the end of the data, a discard), or they reach `enough` bytes.
bool body_batch_complete(const lmtp::events::body& first, const std::deque<lmtp::event>& queue,
                         std::size_t enough) {
    std::size_t bytes = first.bytes.size();
    for (const auto& next : queue) {
        const auto* body = std::get_if<lmtp::events::body>(&next);
        if (body == nullptr) {
            return true;
        }
        bytes += body->bytes.size();
    }
    return bytes >= enough;
}

/// Key discovery's answers for recipients without keys, by RCPT index.
using ready_keys = std::vector<std::pair<std::size_t, seal::key_set>>;

/// On the pool: gives the transaction the keys that arrived.
void give_keys(delivery::transaction& txn, ready_keys& keys) {
    for (auto& [index, key_set] : keys) {
        txn.provide_keys(index, std::move(key_set));
    }
}

/// On the pool: gives the transaction the keys that arrived, then the body slices, wiping each
/// once written.
void write_body(delivery::transaction& txn, ready_keys& keys, body_slices& slices) {
    give_keys(txn, keys);
    for (auto& slice : slices.items) {
        txn.write(slice);
        util::wipe(slice);
    }
}

/// Body slices the pool seals and stores while the connection reads on. Shared with the pool's
/// work, which also holds the transaction and its generation.
struct body_hand_off {
    explicit body_hand_off(const asio::any_io_executor& ex) : finished(ex) {
        finished.expires_at(asio::steady_timer::time_point::max());
    }
    body_slices slices;
    /// Cancelled (woken) when `done` is set, on the connection's executor.
    asio::steady_timer finished;
    bool done = false;
    /// The transaction holds all the plaintext it may before its recipients' keys arrive.
    bool needs_keys = false;
    std::exception_ptr failure;
};

/// Starts writing `slices` (after giving `keys`) to `txn` on the pool; the returned hand-off
/// is done, on `loop`, when the pool is through with them.
std::shared_ptr<body_hand_off> hand_off_body(asio::thread_pool& pool,
                                             const asio::any_io_executor& loop,
                                             std::shared_ptr<generation> gen,
                                             std::shared_ptr<delivery::transaction> txn,
                                             body_slices& slices, ready_keys keys) {
    auto h = std::make_shared<body_hand_off>(loop);
    // A swap: the slices' strings stay where they are, no bytes are left behind.
    h->slices.items.swap(slices.items);
    asio::post(pool, [h, loop, gen = std::move(gen), txn = std::move(txn),
                      keys = std::move(keys)]() mutable {
        try {
            write_body(*txn, keys, h->slices);
            h->needs_keys = txn->needs_keys();
        } catch (...) {
            h->failure = std::current_exception();
        }
        // The transaction and the generation go back with the completion: their last owner
        // must let go of them on the loop, where the resolver a generation owns lives.
        asio::post(loop, [h, gen = std::move(gen), txn = std::move(txn)] {
            h->done = true;
            h->finished.cancel();
        });
    });
    return h;
}

/// An accepted recipient and its key lookup, started when its RCPT is accepted and awaited when
/// its copy must be decided, so DNS time overlaps the upload. Shared with the lookup's
/// completion.
struct pending_keys {
    pending_keys(const asio::any_io_executor& ex, recipient::recipient r)
        : rcpt(std::move(r)), ready(ex) {
        ready.expires_at(asio::steady_timer::time_point::max());
    }
    /// As verification normalised it, for the transaction.
    recipient::recipient rcpt;
    /// Cancelled (woken) when `result` is set.
    asio::steady_timer ready;
    std::optional<seal::key_set> result;
    asio::cancellation_signal cancel;
};

std::shared_ptr<pending_keys> start_lookup(server::state& st, std::shared_ptr<generation> gen,
                                           const asio::any_io_executor& ex,
                                           recipient::recipient rcpt);

/// Gives the memory a burst of connections left behind back to the kernel once the server has
/// been idle for a second: glibc keeps freed heap memory (read buffers, sessions, coroutine
/// frames) in its arenas for reuse, so without this the daemon's RSS stays at its peak. A
/// second of quiet coalesces the trims of a client that connects once per message.
void trim_when_idle(const std::shared_ptr<server::state>& st) {
    st->idle_trim.expires_after(std::chrono::seconds(1));
    st->idle_trim.async_wait(
        [weak = std::weak_ptr<server::state>(st)](boost::system::error_code ec) {
            auto state = weak.lock();
            if (ec || !state || !state->connections.empty() || state->stopping) {
                return;
            }
            // It walks every arena: on the pool, not the event loop.
            asio::post(state->pool, [] { ::malloc_trim(0); });
        });
}

/// Registers a connection for its lifetime, so stop() can reach it and the limit can count it.
class connection_registration {
public:
    connection_registration(std::shared_ptr<server::state> st, asio::steady_timer& timer)
        : st_(std::move(st)),
          entry_(st_->connections.insert(st_->connections.end(), connection_entry{&timer, false})) {
        metrics::global().connection_opened();
    }
    ~connection_registration() {
        st_->connections.erase(entry_);
        metrics::global().connection_closed();
        if (st_->connections.empty() && !st_->stopping) {
            trim_when_idle(st_);
        }
    }
    connection_registration(const connection_registration&) = delete;
    connection_registration& operator=(const connection_registration&) = delete;

    void set_interruptible(bool interruptible) { entry_->interruptible = interruptible; }

private:
    std::shared_ptr<server::state> st_;
    std::list<connection_entry>::iterator entry_;
};

template <class Socket>
asio::awaitable<bool> write_with_deadline(Socket& socket, asio::steady_timer& timer,
                                          std::string& out, std::chrono::seconds limit) {
    timer.expires_after(limit);
    auto result = co_await (asio::async_write(socket, asio::buffer(out), use_tuple) ||
                            timer.async_wait(use_tuple));
    out.clear();
    if (result.index() != 0) {
        co_return false;
    }
    auto [ec, n] = std::get<0>(result);
    co_return !ec;
}

std::chrono::seconds deadline_for(const config::limits& limits, lmtp::session::phase p) {
    switch (p) {
    case lmtp::session::phase::idle:
        return limits.idle_timeout;
    case lmtp::session::phase::data:
        return limits.data_timeout;
    case lmtp::session::phase::command:
    case lmtp::session::phase::verifying:
    case lmtp::session::phase::delivering:
    case lmtp::session::phase::closed:
        return limits.command_timeout;
    }
    return limits.command_timeout;
}

bool is_cancellation(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const boost::system::system_error& ex) {
        return ex.code() == asio::error::operation_aborted;
    } catch (...) {
        return false;
    }
}

std::shared_ptr<pending_keys> start_lookup(server::state& st, std::shared_ptr<generation> gen,
                                           const asio::any_io_executor& ex,
                                           recipient::recipient rcpt) {
    auto pending = std::make_shared<pending_keys>(ex, std::move(rcpt));
    // The completion handler holds the generation: the lookup's coroutine uses its discovery
    // and resolver until it completes, even after a reload and the connection's end.
    asio::co_spawn(st.io, gen->discovery.find(pending->rcpt),
                   asio::bind_cancellation_slot(
                       pending->cancel.slot(),
                       [pending, gen](std::exception_ptr e, discovery::recipient_keys found) {
                           if (e) {
                               // Cancelled by drop_lookups(): nobody waits for the answer.
                               if (!is_cancellation(e)) {
                                   log_crash(e);
                               }
                               pending->result = seal::key_set{};
                           } else {
                               pending->result = std::move(found.chosen);
                           }
                           pending->ready.cancel();
                       }));
    return pending;
}

/// Waits for a lookup's answer (each lookup has its own deadline, dns.timeout).
asio::awaitable<void> await_keys(pending_keys& pending) {
    if (!pending.result) {
        co_await pending.ready.async_wait(use_tuple);
    }
}

/// Ends lookups nobody will wait for (RSET, a new transaction, a closed connection): the
/// resolver cancels the query (ub_cancel), and the answer is dropped.
void drop_lookups(std::vector<std::shared_ptr<pending_keys>>& lookups, std::size_t from) {
    for (std::size_t i = from; i < lookups.size(); ++i) {
        if (!lookups[i]->result) {
            lookups[i]->cancel.emit(asio::cancellation_type::terminal);
        }
    }
    lookups.resize(std::min(from, lookups.size()));
}

template <class Socket>
asio::awaitable<void> run_connection(std::shared_ptr<server::state> st, Socket socket,
                                     std::string peer) {
    // The configuration this connection keeps to its end, whatever a reload does meanwhile.
    std::shared_ptr<generation> gen = st->current;
    const auto& cfg = gen->cfg;
    asio::steady_timer timer(socket.get_executor());
    connection_registration registration(st, timer);
    std::string session_id = st->id_prefix + hex_id(++st->next_session);
    std::string out;

    if (st->connections.size() > cfg.limits.connections || st->stopping) {
        lmtp::reply refusal = st->stopping ? lmtp::reply(lmtp::replies::shutting_down)
                                           : lmtp::reply(lmtp::replies::too_many_connections);
        log::warning("connection-refused",
                     {{"session", session_id}, {"peer", peer}, {"reply", refusal.summary()}});
        out = refusal.render();
        co_await write_with_deadline(socket, timer, out, cfg.limits.command_timeout);
        co_return;
    }
    log::debug("connect", {{"session", session_id}, {"peer", peer}});

    lmtp::session session(
        lmtp::session_options{cfg.server.hostname,
                              {cfg.limits.message_size, cfg.limits.recipients,
                               cfg.limits.command_line_length, cfg.limits.data_line_length}});
    session.start();

    // Shared with the pool's work on a body hand-off, which may outlive this frame.
    std::shared_ptr<delivery::transaction> txn;
    std::shared_ptr<body_hand_off> in_flight;
    std::vector<std::shared_ptr<pending_keys>> lookups;
    std::uint64_t transactions = 0;
    /// Some of the current transaction's body has gone to the pool before its end.
    bool body_handed_off = false;
    std::deque<lmtp::event> queue;
    // Body slices may wait in the queue while the connection reads on: whatever way the
    // connection ends, they are wiped.
    struct queue_wiper {
        std::deque<lmtp::event>& events;
        ~queue_wiper() {
            for (auto& e : events) {
                wipe_body_bytes(e);
            }
        }
    } wipe_queue_at_exit{queue};
    std::array<char, 64 * 1024> buffer;
    bool closing = false;

    auto abandon = [&](std::string_view reason) -> asio::awaitable<void> {
        drop_lookups(lookups, 0);
        if (auto h = std::move(in_flight)) {
            if (!h->done) {
                co_await h->finished.async_wait(use_tuple);
            }
            if (h->failure) {
                log_crash(h->failure);
            }
        }
        if (txn) {
            co_await on_pool(st->pool, [&] { txn->abandon(reason); });
            txn.reset();
        }
    };
    // The answers that have arrived for recipients still without keys; with `wait`, waits for
    // all first. They go to the transaction with the next hand-off to the pool.
    auto collect_keys = [&](bool wait) -> asio::awaitable<ready_keys> {
        ready_keys ready;
        for (std::size_t i = 0; i < txn->recipients(); ++i) {
            if (txn->has_keys(i)) {
                continue;
            }
            if (i >= lookups.size()) {
                // No lookup was started (cannot happen for an accepted RCPT): no key known.
                ready.emplace_back(i, seal::key_set{});
                continue;
            }
            if (wait) {
                co_await await_keys(*lookups[i]);
            }
            if (lookups[i]->result) {
                ready.emplace_back(i, std::move(*lookups[i]->result));
            }
        }
        co_return ready;
    };
    // Waits until the pool is through with the body slices handed to it, then, when the
    // transaction holds all the plaintext it may without keys, for the keys: held plaintext is
    // bounded, and the client waits on TCP flow control meanwhile.
    auto finish_hand_off = [&]() -> asio::awaitable<void> {
        auto h = std::move(in_flight);
        if (!h) {
            co_return;
        }
        if (!h->done) {
            co_await h->finished.async_wait(use_tuple);
        }
        if (h->failure) {
            std::rethrow_exception(h->failure);
        }
        if (h->needs_keys) {
            auto missing = co_await collect_keys(true);
            co_await on_pool(st->pool, [&] { give_keys(*txn, missing); });
        }
    };
    // Sends the pending replies; false when the client is gone or stopped reading. (Callers
    // test the result in a statement of its own: GCC 12 mishandles co_await inside conditions.)
    auto flush = [&]() -> asio::awaitable<bool> {
        if (out.empty()) {
            co_return true;
        }
        co_return co_await write_with_deadline(socket, timer, out, cfg.limits.command_timeout);
    };

    for (;;) {
        enqueue(session.take_events(), queue);
        while (!queue.empty()) {
            lmtp::event e = std::move(queue.front());
            wipe_body_bytes(queue.front());
            queue.pop_front();
            if (auto* send = std::get_if<lmtp::events::send>(&e)) {
                if (!send->rcpt_refusal.empty()) {
                    metrics::global().rcpt_refused(send->rcpt_refusal);
                }
                out += send->what.render();
            } else if (auto* verify = std::get_if<lmtp::events::verify_recipient>(&e)) {
                auto check = [&] { return delivery::verify_recipient(cfg, verify->recipient); };
                // A plain if: GCC 12 mishandles co_await inside a conditional expression.
                std::variant<recipient::recipient, lmtp::reply> verdict;
                if (delivery::verification_touches_filesystem(cfg)) {
                    verdict = co_await on_pool(st->pool, check);
                } else {
                    verdict = check();
                }
                std::optional<lmtp::reply> refusal;
                if (auto* accepted = std::get_if<recipient::recipient>(&verdict)) {
                    // A new transaction's first RCPT reuses index 0: earlier lookups are void.
                    drop_lookups(lookups, verify->index);
                    lookups.push_back(
                        start_lookup(*st, gen, socket.get_executor(), std::move(*accepted)));
                } else {
                    refusal = std::move(std::get<lmtp::reply>(verdict));
                    metrics::global().rcpt_refused(refusal->code() == 550 ? "unknown-recipient"
                                                                          : "mailbox-error");
                }
                session.recipient_verified(std::move(refusal));
                enqueue(session.take_events(), queue);
            } else if (auto* begin = std::get_if<lmtp::events::begin_data>(&e)) {
                // Let the client start sending while the files are opened.
                bool sent = co_await flush();
                if (!sent) {
                    co_return;
                }
                delivery::transaction_info info{session_id,
                                                session_id + "." + std::to_string(++transactions),
                                                peer, cfg.server.hostname};
                std::vector<recipient::recipient> recipients;
                for (std::size_t i = 0; i < begin->env.recipients.size(); ++i) {
                    // Every accepted RCPT has its entry; normalising again only covers a gap.
                    recipients.push_back(i < lookups.size()
                                             ? lookups[i]->rcpt
                                             : recipient::normalise(cfg, begin->env.recipients[i]));
                }
                body_handed_off = false;
                txn = std::make_shared<delivery::transaction>(
                    cfg, gen->names, std::move(begin->env), std::move(recipients), std::move(info),
                    gen->next_hop.get());
            } else if (std::holds_alternative<lmtp::events::body>(e) ||
                       std::holds_alternative<lmtp::events::end_data>(e)) {
                // Every body slice already queued, and the end of the data when it came with
                // them (a small message arrives in one read), go to the pool in one hand-off,
                // with the keys that have arrived: each hand-off costs two thread switches.
                // While the pool is still on the previous slices, the connection reads on and
                // these wait in the queue, so reading and parsing overlap sealing and writing;
                // a message's first slices wait for first_batch_bytes, or its end.
                // Not while a recipient's keys are still looked up: the sealer then holds the
                // plaintext, and it may hold only its bound plus one read's worth.
                auto keys_pending = [&] {
                    return std::any_of(lookups.begin(), lookups.end(),
                                       [](const auto& l) { return !l->result; });
                };
                bool pool_busy = in_flight && !in_flight->done;
                if (const auto* body = std::get_if<lmtp::events::body>(&e);
                    body != nullptr && (pool_busy || !body_handed_off) &&
                    !body_batch_complete(*body, queue,
                                         body_handed_off ? read_ahead_bytes : first_batch_bytes) &&
                    !keys_pending()) {
                    queue.push_front(std::move(e));
                    wipe_body_bytes(e);
                    break;
                }
                body_slices slices;
                // Reserved: a vector that grows moves short slices and leaves their bytes
                // behind.
                slices.items.reserve(
                    1 + static_cast<std::size_t>(
                            std::count_if(queue.begin(), queue.end(), [](const lmtp::event& q) {
                                return std::holds_alternative<lmtp::events::body>(q);
                            })));
                std::optional<lmtp::events::end_data> end;
                auto take = [&](lmtp::event& next) {
                    if (auto* body = std::get_if<lmtp::events::body>(&next)) {
                        slices.items.push_back(std::move(body->bytes));
                        util::wipe_storage(body->bytes);
                    } else {
                        end = std::get<lmtp::events::end_data>(next);
                    }
                };
                take(e);
                while (!end && !queue.empty() &&
                       (std::holds_alternative<lmtp::events::body>(queue.front()) ||
                        std::holds_alternative<lmtp::events::end_data>(queue.front()))) {
                    take(queue.front());
                    queue.pop_front();
                }
                if (!txn && end) {
                    // No transaction took the data (a defect: begin_data always makes one).
                    // Each recipient still gets its reply, a temporary one, so the client
                    // neither waits for its timeout nor takes the message as delivered.
                    log::error("no-transaction", {{"session", session_id}});
                    for (std::size_t i = 0; i < end->recipients; ++i) {
                        session.complete_recipient(i, lmtp::reply(lmtp::replies::local_error));
                    }
                    enqueue(session.take_events(), queue);
                    continue;
                }
                if (!txn) {
                    continue;
                }
                co_await finish_hand_off();
                auto ready = co_await collect_keys(end.has_value());
                if (!end) {
                    in_flight = hand_off_body(st->pool, socket.get_executor(), gen, txn, slices,
                                              std::move(ready));
                    body_handed_off = true;
                    continue;
                }
                std::optional<lmtp::reply> first_reply;
                co_await on_pool(st->pool, [&] {
                    write_body(*txn, ready, slices);
                    txn->end_of_data();
                    if (end->recipients > 0) {
                        first_reply = txn->finish(0);
                    }
                });
                drop_lookups(lookups, 0);
                // RFC 2033 §4.2: one reply per recipient, in RCPT order, each sent as soon as
                // it is known.
                for (std::size_t i = 0; i < end->recipients; ++i) {
                    // A plain if: GCC 12 mishandles co_await inside a conditional expression.
                    std::optional<lmtp::reply> result = std::move(first_reply);
                    if (i > 0) {
                        result = co_await on_pool(st->pool, [&] { return txn->finish(i); });
                    }
                    session.complete_recipient(i, std::move(*result));
                    enqueue(session.take_events(), queue);
                    while (!queue.empty() &&
                           std::holds_alternative<lmtp::events::send>(queue.front())) {
                        out += std::get<lmtp::events::send>(queue.front()).what.render();
                        queue.pop_front();
                    }
                    bool sent = co_await flush();
                    if (!sent) {
                        co_await abandon("client gone before its replies");
                        co_return;
                    }
                }
                txn.reset();
            } else if (auto* discard = std::get_if<lmtp::events::discard_data>(&e)) {
                co_await abandon(discard->why.summary());
            } else if (std::holds_alternative<lmtp::events::close>(e)) {
                closing = true;
            }
        }
        bool sent = co_await flush();
        if (!sent || closing) {
            break;
        }
        auto phase = session.current_phase();
        bool interruptible =
            phase == lmtp::session::phase::idle || phase == lmtp::session::phase::command;
        if (st->stopping && interruptible) {
            session.shut_down();
            continue;
        }
        registration.set_interruptible(interruptible);
        timer.expires_after(deadline_for(cfg.limits, phase));
        auto result = co_await (socket.async_read_some(asio::buffer(buffer), use_tuple) ||
                                timer.async_wait(use_tuple));
        registration.set_interruptible(false);
        if (result.index() == 1) {
            auto [ec] = std::get<1>(result);
            if (ec == asio::error::operation_aborted && st->stopping) {
                continue; // woken by stop(): the loop answers 421 4.3.2
            }
            log::info("timeout", {{"session", session_id}, {"phase", lmtp::to_string(phase)}});
            co_await abandon("timeout");
            session.timed_out();
            continue;
        }
        auto [ec, n] = std::get<0>(result);
        if (ec) {
            // Connections may close without QUIT (RFC 5321 §3.8 asks servers to cope).
            if (txn || session.in_transaction()) {
                log::info("disconnect", {{"session", session_id},
                                         {"phase", lmtp::to_string(phase)},
                                         {"error", ec.message()}});
            }
            co_await abandon("client disconnected");
            break;
        }
        session.feed(std::string_view(buffer.data(), n));
        // The session keeps what it needs; the read buffer's plaintext goes now.
        ::explicit_bzero(buffer.data(), n);
    }
    co_await abandon("connection closed");
    log::debug("disconnect", {{"session", session_id}});
}

template <class Socket>
std::string peer_name(const Socket& socket) {
    if constexpr (std::is_same_v<Socket, tcp::socket>) {
        boost::system::error_code ec;
        auto ep = socket.remote_endpoint(ec);
        return ec ? std::string("unknown") : ep.address().to_string();
    } else {
        return "unix";
    }
}

/// One scrape: reads an HTTP request head (5 s, 8 KiB at most) and answers GET /metrics with
/// the text exposition format; anything else gets 404. One request per connection.
template <class Socket>
asio::awaitable<void> serve_metrics(Socket socket) {
    asio::steady_timer timer(socket.get_executor());
    timer.expires_after(std::chrono::seconds(5));
    std::string request;
    std::array<char, 1024> buffer;
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
        auto result = co_await (socket.async_read_some(asio::buffer(buffer), use_tuple) ||
                                timer.async_wait(use_tuple));
        if (result.index() != 0) {
            co_return;
        }
        auto [ec, n] = std::get<0>(result);
        if (ec) {
            co_return;
        }
        request.append(buffer.data(), n);
    }
    bool found = request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?");
    std::string body = found ? metrics::global().render() : std::string("not found\n");
    std::string response = std::string(found ? "HTTP/1.1 200 OK" : "HTTP/1.1 404 Not Found") +
                           "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"
                           "\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    co_await write_with_deadline(socket, timer, response, std::chrono::seconds(5));
}

/// Accepts until stop(); `serve` starts a coroutine for each accepted socket.
template <class Acceptor, class Serve>
asio::awaitable<void> accept_loop(std::shared_ptr<server::state> st, Acceptor& acceptor,
                                  std::string name, Serve serve) {
    asio::steady_timer backoff(st->io);
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
        if (st->stopping || ec == asio::error::operation_aborted) {
            co_return;
        }
        if (ec) {
            // EMFILE and friends: wait a little instead of spinning on the error.
            log::error("accept-failed", {{"listener", name}, {"error", ec.message()}});
            backoff.expires_after(std::chrono::milliseconds(100));
            co_await backoff.async_wait(use_tuple);
            continue;
        }
        asio::co_spawn(st->io, serve(std::move(socket)), log_crash);
    }
}

} // namespace

server::server(std::unique_ptr<state> s) : state_(std::move(s)) {}

server::~server() {
    stop();
    state_->pool.join();
}

std::variant<std::unique_ptr<server>, std::string>
server::bind(asio::io_context& io, config::config configuration,
             std::unique_ptr<dns::resolver> resolver, seal::format_set formats) {
    auto st = std::make_unique<state>(io, configuration.server.workers);
    st->current = std::make_shared<generation>(std::move(configuration), std::move(resolver),
                                               std::move(formats), st->pool.get_executor());
    const auto& cfg = st->current->cfg;
    if (cfg.metrics.listen) {
        auto bound = bind_listener(io, *cfg.metrics.listen);
        if (auto* problem = std::get_if<std::string>(&bound)) {
            return "metrics: " + *problem;
        }
        st->metrics_listener.emplace(std::move(std::get<listener>(bound)));
    }
    auto activated = adopt_activated_sockets(io);
    if (auto* problem = std::get_if<std::string>(&activated)) {
        return std::move(*problem);
    }
    auto& adopted = std::get<std::vector<listener>>(activated);
    if (!adopted.empty()) {
        // The service manager owns the sockets (mailseal.socket): [[listen]] is not used.
        log::info("socket-activation", {{"sockets", std::to_string(adopted.size())}});
        st->listeners = std::move(adopted);
        st->socket_activated = true;
        return std::unique_ptr<server>(new server(std::move(st)));
    }
    for (const auto& l : cfg.listeners) {
        auto bound = bind_listener(io, l);
        if (auto* problem = std::get_if<std::string>(&bound)) {
            return std::move(*problem);
        }
        st->listeners.push_back(std::move(std::get<listener>(bound)));
    }
    return std::unique_ptr<server>(new server(std::move(st)));
}

void server::start() {
    if (auto& m = state_->metrics_listener) {
        log::info("metrics-listening", {{"listener", m->name}});
        std::visit(
            [&](auto& acceptor) {
                asio::co_spawn(
                    state_->io,
                    accept_loop(state_, acceptor, m->name,
                                [](auto socket) { return serve_metrics(std::move(socket)); }),
                    log_crash);
            },
            m->acceptor);
    }
    for (auto& l : state_->listeners) {
        log::info("listening", {{"listener", l.name}});
        std::visit(
            [&](auto& acceptor) {
                asio::co_spawn(state_->io,
                               accept_loop(state_, acceptor, l.name,
                                           [st = state_](auto socket) {
                                               std::string peer = peer_name(socket);
                                               return run_connection(st, std::move(socket),
                                                                     std::move(peer));
                                           }),
                               log_crash);
            },
            l.acceptor);
    }
}

void server::stop() {
    if (state_->stopping) {
        return;
    }
    state_->stopping = true;
    if (auto& m = state_->metrics_listener) {
        std::visit([](auto& acceptor) { acceptor.close(); }, m->acceptor);
        if (!m->socket_path.empty()) {
            ::unlink(m->socket_path.c_str());
        }
    }
    for (auto& l : state_->listeners) {
        std::visit([](auto& acceptor) { acceptor.close(); }, l.acceptor);
        struct stat st {};
        if (!l.socket_path.empty() && ::lstat(l.socket_path.c_str(), &st) == 0 &&
            st.st_ino == l.socket_inode) {
            ::unlink(l.socket_path.c_str());
        }
    }
    state_->idle_trim.cancel();
    // Wake connections that wait for a command before DATA; the others notice the flag when
    // their message is delivered.
    for (auto& c : state_->connections) {
        if (c.interruptible) {
            c.timer->cancel();
        }
    }
}

std::optional<std::string> server::reload(config::config cfg,
                                          std::unique_ptr<dns::resolver> resolver,
                                          seal::format_set formats) {
    const auto& old = state_->current->cfg;
    // What was bound, switched to or started once cannot change without a restart.
    if (!state_->socket_activated && cfg.listeners != old.listeners) {
        return "[[listen]] changed: restart mailseal to apply";
    }
    if (cfg.metrics.listen != old.metrics.listen) {
        return "metrics.listen changed: restart mailseal to apply";
    }
    if (cfg.server.user != old.server.user || cfg.server.group != old.server.group) {
        return "server.user or server.group changed: restart mailseal to apply";
    }
    if (cfg.server.workers != old.server.workers) {
        return "server.workers changed: restart mailseal to apply";
    }
    state_->current = std::make_shared<generation>(std::move(cfg), std::move(resolver),
                                                   std::move(formats), state_->pool.get_executor());
    return std::nullopt;
}

std::size_t server::open_connections() const {
    return state_->connections.size();
}

} // namespace mailseal::server
