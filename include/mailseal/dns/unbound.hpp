// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Ownership of libunbound handles. Each type's free function is named once, here.
///
/// Mind the order at shutdown: ub_ctx_delete() drops outstanding asynchronous queries without
/// calling their callbacks, so whoever waits on them must be completed first (the resolver
/// does this in cancel_all()).

#include <memory>

#include <unbound.h>

namespace mailseal::dns {

/// The free function of a libunbound type; specialised once per type below.
template <typename T>
struct deleter;

template <>
struct deleter<ub_ctx> {
    void operator()(ub_ctx* p) const noexcept { ub_ctx_delete(p); }
};
/// A result handed to a callback or returned by ub_resolve(); the caller owns it.
template <>
struct deleter<ub_result> {
    void operator()(ub_result* p) const noexcept { ub_resolve_free(p); }
};

/// Sole owner of a libunbound handle.
template <typename T>
using c_ptr = std::unique_ptr<T, deleter<T>>;

} // namespace mailseal::dns
