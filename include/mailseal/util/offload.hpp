#pragma once

/// Running blocking work (file I/O, fsync, certificate parsing) off the event loop.

#include <optional>
#include <type_traits>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace mailseal::util {

/// Runs `work` on `executor` (a thread pool's) and resumes the calling coroutine on its own
/// executor with the result. Exceptions from `work` are rethrown in the caller.
template <class Executor, class Work>
boost::asio::awaitable<std::invoke_result_t<Work&>> run_on(Executor executor, Work work) {
    using result = std::invoke_result_t<Work&>;
    if constexpr (std::is_void_v<result>) {
        co_await boost::asio::co_spawn(
            executor,
            [&work]() -> boost::asio::awaitable<void> {
                work();
                co_return;
            },
            boost::asio::use_awaitable);
    } else {
        // co_spawn's awaitable completion needs a default-constructible value; ours (replies,
        // transactions, evaluations) are not all, so the value travels through an optional.
        std::optional<result> value;
        co_await boost::asio::co_spawn(
            executor,
            [&]() -> boost::asio::awaitable<void> {
                value.emplace(work());
                co_return;
            },
            boost::asio::use_awaitable);
        co_return std::move(*value);
    }
}

} // namespace mailseal::util
