// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <pthread.h>
#include <random>
#include <set>
#include <string_view>
#include <sys/mman.h>
#include <unistd.h>

#include <mailseal/seal/openpgp/evaluate.hpp>
#include <mailseal/seal/openpgp/pgp_mime.hpp>
#include <mailseal/seal/openpgp/rnp.hpp>
#include <mailseal/util/errno_text.hpp>

namespace mailseal::seal::openpgp {
namespace {

/// The encryption thread's stack: librnp keeps several 32 KiB stream buffers on it, and
/// Botan's public-key operations go deep. Only the pages touched are ever committed.
constexpr std::size_t stack_size = 4u << 20;

std::string librnp_error(std::string_view what, rnp_result_t rc) {
    return std::string(what) + " (librnp: " + rnp_result_to_string(rc) + ")";
}

/// librnp's name for the cipher.
const char* cipher_name(symmetric_cipher c) {
    switch (c) {
    case symmetric_cipher::aes_256:
        return "AES256";
    case symmetric_cipher::aes_192:
        return "AES192";
    case symmetric_cipher::aes_128:
        return "AES128";
    }
    return "AES256";
}

/// A random MIME boundary. No line of ASCII armour can start with "--" followed by it: radix-64
/// lines have no '-', and the armour lines begin with five dashes and a letter.
std::string make_boundary() {
    std::random_device entropy;
    static constexpr char digits[] = "0123456789abcdef";
    std::string out = "----mailseal-";
    for (int i = 0; i < 24; ++i) {
        out += digits[entropy() & 0xf];
    }
    return out;
}

/// A thread on a stack mapped for it alone (with a guard page below it) and unmapped once it
/// has been joined, instead of glibc's cache of stacks that later threads reuse.
class private_stack_thread {
public:
    using body = void (*)(void*);

    /// Starts `run(arg)`; an error text when the stack or the thread cannot be made.
    std::optional<std::string> start(body run, void* arg) {
        long page = ::sysconf(_SC_PAGESIZE);
        guard_ = page > 0 ? static_cast<std::size_t>(page) : 4096;
        size_ = stack_size + guard_;
        void* base = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (base == MAP_FAILED) {
            return "cannot map a stack for the encryption thread: " + util::errno_text(errno);
        }
        base_ = base;
        if (::mprotect(base_, guard_, PROT_NONE) != 0) {
            return "cannot protect the encryption thread's stack: " + util::errno_text(errno);
        }
        pthread_attr_t attr;
        if (int err = ::pthread_attr_init(&attr); err != 0) {
            return "cannot start the encryption thread: " + util::errno_text(err);
        }
        int err = ::pthread_attr_setstack(&attr, static_cast<char*>(base_) + guard_, stack_size);
        if (err == 0) {
            run_ = run;
            arg_ = arg;
            err = ::pthread_create(&thread_, &attr, &trampoline, this);
        }
        ::pthread_attr_destroy(&attr);
        if (err != 0) {
            return "cannot start the encryption thread: " + util::errno_text(err);
        }
        running_ = true;
        return std::nullopt;
    }

    void join() {
        if (running_) {
            ::pthread_join(thread_, nullptr);
            running_ = false;
        }
    }

    ~private_stack_thread() {
        join();
        if (base_ != nullptr) {
            // Unmapped, the pages go back to the kernel, which clears them before any reuse.
            ::munmap(base_, size_);
        }
    }

private:
    static void* trampoline(void* self) {
        auto* t = static_cast<private_stack_thread*>(self);
        t->run_(t->arg_);
        return nullptr;
    }

    void* base_ = nullptr;
    std::size_t size_ = 0;
    std::size_t guard_ = 0;
    pthread_t thread_{};
    bool running_ = false;
    body run_ = nullptr;
    void* arg_ = nullptr;
};

/// The hand-off between the caller, which pushes plaintext and collects armoured output, and
/// the thread where librnp pulls the plaintext through its reader callback.
struct hand_off {
    std::mutex mutex;
    std::condition_variable changed;
    /// Caller's plaintext librnp has not taken yet; the caller waits until it is empty.
    std::string_view pending;
    /// No more plaintext will come: the reader reports the end.
    bool end = false;
    /// The caller gave up: the reader and writer fail, and librnp stops.
    bool abort = false;
    /// Armoured output not collected yet.
    std::string produced;
    /// rnp_op_encrypt_execute returned, with `result`.
    bool done = false;
    rnp_result_t result = RNP_SUCCESS;
};

/// rnp_input_reader_t: blocks until the caller has plaintext for it, or has ended. Nothing may
/// be thrown through librnp, which would skip its own clean-up: an error is a failed read.
bool read_plaintext(void* ctx, void* buf, std::size_t len, std::size_t* read) noexcept {
    try {
        auto& h = *static_cast<hand_off*>(ctx);
        std::unique_lock lock(h.mutex);
        h.changed.wait(lock, [&] { return !h.pending.empty() || h.end || h.abort; });
        if (h.abort) {
            return false;
        }
        std::size_t n = std::min(len, h.pending.size());
        if (n > 0) {
            std::memcpy(buf, h.pending.data(), n);
            h.pending.remove_prefix(n);
        }
        *read = n; // 0 at the end of the plaintext
        if (h.pending.empty()) {
            h.changed.notify_all();
        }
        return true;
    } catch (...) {
        return false;
    }
}

/// rnp_output_writer_t: keeps the armoured output for the caller; a failed write when it
/// cannot (the caller gave up, or no memory).
bool write_armour(void* ctx, const void* buf, std::size_t len) noexcept {
    try {
        auto& h = *static_cast<hand_off*>(ctx);
        std::lock_guard lock(h.mutex);
        if (h.abort) {
            return false;
        }
        h.produced.append(static_cast<const char*>(buf), len);
        return true;
    } catch (...) {
        return false;
    }
}

class pgp_mime_copy final : public encoder {
public:
    explicit pgp_mime_copy(const options& opts) : cipher_(opts.cipher) {}

    pgp_mime_copy(const pgp_mime_copy&) = delete;
    pgp_mime_copy& operator=(const pgp_mime_copy&) = delete;

    ~pgp_mime_copy() override {
        {
            std::lock_guard lock(hand_off_.mutex);
            hand_off_.abort = !hand_off_.done;
        }
        hand_off_.changed.notify_all();
        thread_.join();
    }

    std::optional<std::string> prepare(const std::vector<key>& keys) {
        if (keys.empty()) {
            return std::string("no keys to encrypt to");
        }
        rnp_ffi_t raw_ffi = nullptr;
        if (auto rc = rnp_ffi_create(&raw_ffi, "GPG", "GPG"); rc != RNP_SUCCESS) {
            return librnp_error("creating the OpenPGP context", rc);
        }
        ffi_.reset(raw_ffi);
        // Each transferable key once, then each encryption key by its fingerprint.
        std::set<const std::vector<std::uint8_t>*> imported;
        std::vector<c_ptr<rnp_key_handle_st>> recipients;
        for (const auto& k : keys) {
            const auto* m = encryption_key_of(k);
            if (m == nullptr || !m->transferable_key) {
                return "not an OpenPGP key: " + k.source;
            }
            if (imported.insert(m->transferable_key.get()).second) {
                rnp_input_t raw_in = nullptr;
                rnp_input_from_memory(&raw_in, m->transferable_key->data(),
                                      m->transferable_key->size(), false);
                c_ptr<rnp_input_st> in(raw_in);
                auto rc = rnp_import_keys(ffi_.get(), in.get(), RNP_LOAD_SAVE_PUBLIC_KEYS, nullptr);
                if (rc != RNP_SUCCESS) {
                    return librnp_error("importing " + k.source, rc);
                }
            }
            rnp_key_handle_t raw_key = nullptr;
            rnp_locate_key(ffi_.get(), "fingerprint", m->fingerprint.c_str(), &raw_key);
            if (raw_key == nullptr) {
                return "key " + m->fingerprint + " not found in " + k.source;
            }
            recipients.emplace_back(raw_key);
            if (auto problem = encryption_problem(raw_key, std::chrono::system_clock::now());
                !problem.empty()) {
                return "key " + m->fingerprint + " from " + k.source + ": " + problem;
            }
        }
        rnp_input_t raw_in = nullptr;
        rnp_output_t raw_out = nullptr;
        if (auto rc = rnp_input_from_callback(&raw_in, &read_plaintext, nullptr, &hand_off_);
            rc != RNP_SUCCESS) {
            return librnp_error("setting up the plaintext input", rc);
        }
        input_.reset(raw_in);
        if (auto rc = rnp_output_to_callback(&raw_out, &write_armour, nullptr, &hand_off_);
            rc != RNP_SUCCESS) {
            return librnp_error("setting up the output", rc);
        }
        output_.reset(raw_out);
        rnp_op_encrypt_t raw_op = nullptr;
        if (auto rc = rnp_op_encrypt_create(&raw_op, ffi_.get(), input_.get(), output_.get());
            rc != RNP_SUCCESS) {
            return librnp_error("creating the encryption", rc);
        }
        op_.reset(raw_op);
        for (const auto& r : recipients) {
            if (auto rc = rnp_op_encrypt_add_recipient(op_.get(), r.get()); rc != RNP_SUCCESS) {
                return librnp_error("adding a recipient", rc);
            }
        }
        // The forms every current reader opens: SEIPD v1 with the chosen cipher, no AEAD (RFC
        // 9580's v2 is not read by GnuPG 2.2), no compression (nothing to gain on mail that
        // is mostly compressed attachments, and the cost is CPU on every message).
        for (auto rc : {rnp_op_encrypt_set_cipher(op_.get(), cipher_name(cipher_)),
                        rnp_op_encrypt_set_aead(op_.get(), "None"),
                        rnp_op_encrypt_set_compression(op_.get(), "Uncompressed", 0),
                        rnp_op_encrypt_set_armor(op_.get(), true)}) {
            if (rc != RNP_SUCCESS) {
                return librnp_error("setting the encryption's parameters", rc);
            }
        }
        // From here on the FFI and the operation belong to the encryption thread.
        return thread_.start(&run, this);
    }

    void begin(std::string& out) override {
        out += "MIME-Version: 1.0\r\n"
               "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"
               " boundary=\"";
        out += boundary_;
        out += "\"\r\n"
               "\r\n"
               "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
               "--";
        // RFC 3156 §4: the first part is the version, the second the armoured message.
        out += boundary_;
        out += "\r\n"
               "Content-Type: application/pgp-encrypted\r\n"
               "Content-Description: PGP/MIME version identification\r\n"
               "\r\n"
               "Version: 1\r\n"
               "\r\n"
               "--";
        out += boundary_;
        out += "\r\n"
               "Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
               "Content-Description: OpenPGP encrypted message\r\n"
               "Content-Disposition: inline; filename=\"encrypted.asc\"\r\n"
               "\r\n";
    }

    std::optional<std::string> write(std::string_view plaintext, std::string& out) override {
        std::unique_lock lock(hand_off_.mutex);
        hand_off_.pending = plaintext;
        hand_off_.changed.notify_all();
        hand_off_.changed.wait(lock, [&] { return hand_off_.pending.empty() || hand_off_.done; });
        hand_off_.pending = {};
        collect(out);
        if (hand_off_.done) {
            return failure("encrypting");
        }
        return std::nullopt;
    }

    std::optional<std::string> finish(std::string& out) override {
        std::optional<std::string> problem;
        {
            std::unique_lock lock(hand_off_.mutex);
            hand_off_.end = true;
            hand_off_.changed.notify_all();
            hand_off_.changed.wait(lock, [&] { return hand_off_.done; });
            collect(out);
            problem = failure("finishing the encryption");
        }
        thread_.join();
        if (problem) {
            return problem;
        }
        out += "\r\n--";
        out += boundary_;
        out += "--\r\n";
        return std::nullopt;
    }

    std::string_view cipher() const override { return to_string(cipher_); }

private:
    static void run(void* self) {
        auto* copy = static_cast<pgp_mime_copy*>(self);
        auto rc = rnp_op_encrypt_execute(copy->op_.get());
        std::lock_guard lock(copy->hand_off_.mutex);
        copy->hand_off_.result = rc;
        copy->hand_off_.done = true;
        copy->hand_off_.changed.notify_all();
    }

    /// Moves the output librnp has written so far to `out`; the mutex is held.
    void collect(std::string& out) {
        out += hand_off_.produced;
        hand_off_.produced.clear();
    }

    /// The error text when librnp has stopped with an error (or before the end of the input);
    /// the mutex is held.
    std::optional<std::string> failure(std::string_view what) {
        if (!hand_off_.done) {
            return std::nullopt;
        }
        if (hand_off_.result != RNP_SUCCESS) {
            return librnp_error(what, hand_off_.result);
        }
        if (!hand_off_.end) {
            return std::string(what) + ": librnp stopped before the end of the message";
        }
        return std::nullopt;
    }

    symmetric_cipher cipher_;
    std::string boundary_ = make_boundary();
    hand_off hand_off_;
    c_ptr<rnp_ffi_st> ffi_;
    c_ptr<rnp_input_st> input_;
    c_ptr<rnp_output_st> output_;
    c_ptr<rnp_op_encrypt_st> op_;
    /// Declared last: destroyed (joined) first, before what the thread uses.
    private_stack_thread thread_;
};

} // namespace

std::variant<std::unique_ptr<encoder>, std::string> begin_pgp_mime(const std::vector<key>& keys,
                                                                   const options& opts) {
    auto copy = std::make_unique<pgp_mime_copy>(opts);
    if (auto problem = copy->prepare(keys)) {
        return std::move(*problem);
    }
    return std::unique_ptr<encoder>(std::move(copy));
}

} // namespace mailseal::seal::openpgp
