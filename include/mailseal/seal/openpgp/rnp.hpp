// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Ownership of librnp handles. Each type's destroy function is named once, here. An FFI
/// object and everything made from it (key handles, operations) belong to one thread at a
/// time; librnp has no locking of its own.

#include <memory>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>

namespace mailseal::seal::openpgp {

/// The destroy function of a librnp handle type; specialised once per type below.
template <typename T>
struct deleter;

template <>
struct deleter<rnp_ffi_st> {
    void operator()(rnp_ffi_t p) const noexcept { rnp_ffi_destroy(p); }
};
template <>
struct deleter<rnp_input_st> {
    void operator()(rnp_input_t p) const noexcept { rnp_input_destroy(p); }
};
template <>
struct deleter<rnp_output_st> {
    void operator()(rnp_output_t p) const noexcept { rnp_output_destroy(p); }
};
template <>
struct deleter<rnp_key_handle_st> {
    void operator()(rnp_key_handle_t p) const noexcept { rnp_key_handle_destroy(p); }
};
template <>
struct deleter<rnp_uid_handle_st> {
    void operator()(rnp_uid_handle_t p) const noexcept { rnp_uid_handle_destroy(p); }
};
template <>
struct deleter<rnp_signature_handle_st> {
    void operator()(rnp_signature_handle_t p) const noexcept { rnp_signature_handle_destroy(p); }
};
template <>
struct deleter<rnp_op_encrypt_st> {
    void operator()(rnp_op_encrypt_t p) const noexcept { rnp_op_encrypt_destroy(p); }
};
template <>
struct deleter<rnp_identifier_iterator_st> {
    void operator()(rnp_identifier_iterator_t p) const noexcept {
        rnp_identifier_iterator_destroy(p);
    }
};
/// Strings and buffers librnp allocates for its caller.
template <>
struct deleter<char> {
    void operator()(char* p) const noexcept { rnp_buffer_destroy(p); }
};

/// Sole owner of a librnp handle: c_ptr<rnp_ffi_st> for an rnp_ffi_t, and so on.
template <typename T>
using c_ptr = std::unique_ptr<T, deleter<T>>;

} // namespace mailseal::seal::openpgp
