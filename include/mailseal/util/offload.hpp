// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Running blocking work (file I/O, fsync, encryption, certificate parsing) off the event loop.

#include <exception>
#include <optional>
#include <type_traits>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace mailseal::util {

/// Runs `work` on `executor` (a thread pool's) and resumes the calling coroutine on its own
/// executor with the result. Exceptions from `work` are rethrown in the caller.
///
/// A plain post and a completion posted back, not co_spawn: with Boost 1.81, a coroutine
/// co_spawn'ed onto the pool throws out of the pool's thread (std::terminate) when its parent
/// was cancelled meanwhile (co_spawn_entry_point's post after completion is not guarded).
template <class Executor, class Work>
boost::asio::awaitable<std::invoke_result_t<Work&>> run_on(Executor executor, Work work) {
    using result = std::invoke_result_t<Work&>;
    // The value travels through an optional: replies, transactions and evaluations are not all
    // default-constructible, and a void result becomes a bool.
    using carried = std::conditional_t<std::is_void_v<result>, bool, result>;
    auto caller = co_await boost::asio::this_coro::executor;
    auto initiate = [executor, caller, &work](auto handler) {
        boost::asio::post(executor, [caller, &work, handler = std::move(handler)]() mutable {
            std::exception_ptr failure;
            std::optional<carried> value;
            try {
                if constexpr (std::is_void_v<result>) {
                    work();
                    value.emplace(true);
                } else {
                    value.emplace(work());
                }
            } catch (...) {
                failure = std::current_exception();
            }
            boost::asio::post(caller, [failure, value = std::move(value),
                                       handler = std::move(handler)]() mutable {
                std::move(handler)(failure, std::move(value));
            });
        });
    };
    auto value =
        co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>,
                                             void(std::exception_ptr, std::optional<carried>)>(
            std::move(initiate), boost::asio::use_awaitable);
    if constexpr (!std::is_void_v<result>) {
        co_return std::move(*value);
    }
}

} // namespace mailseal::util
