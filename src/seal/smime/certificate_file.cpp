// SPDX-License-Identifier: Apache-2.0
#include <fstream>
#include <iterator>

#include <mailseal/seal/smime/certificate_file.hpp>

#include "inspect.hpp"

namespace mailseal::seal::smime {

namespace {

/// A store file is a handful of certificates; anything larger is a mistake, not worth reading
/// on every delivery.
constexpr std::uintmax_t max_file_size = 1u << 20;

/// The head of a file, enough to tell what it holds.
std::string head_of(const std::filesystem::path& file, std::size_t size) {
    std::ifstream in(file, std::ios::binary);
    std::string head(size, '\0');
    in.read(head.data(), static_cast<std::streamsize>(size));
    head.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
    return head;
}

} // namespace

certificate_listing read_certificate_file(const std::filesystem::path& file) {
    auto listing = detail::read_pem_file(file, max_file_size);
    std::error_code ec;
    if (!listing.certificates.empty() || !std::filesystem::is_regular_file(file, ec) ||
        std::filesystem::file_size(file, ec) > max_file_size) {
        return listing;
    }
    // Not PEM: one DER certificate, as `openssl x509 -outform der` and most CA downloads give.
    std::ifstream in(file, std::ios::binary);
    std::vector<std::uint8_t> der((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    auto parsed = detail::parse_certificate_der(der);
    if (parsed.certificate) {
        return certificate_listing{{{share(std::move(parsed.certificate)), file}}, {}};
    }
    return listing;
}

bool looks_like_certificates(const std::filesystem::path& file) {
    auto head = head_of(file, 64 * 1024);
    if (head.find("-----BEGIN CERTIFICATE-----") != std::string::npos ||
        head.find("-----BEGIN X509 CERTIFICATE-----") != std::string::npos) {
        return true;
    }
    // DER: a SEQUENCE (0x30) with a long-form length, as every certificate has.
    return head.size() > 4 && static_cast<unsigned char>(head[0]) == 0x30 &&
           (static_cast<unsigned char>(head[1]) == 0x82 ||
            static_cast<unsigned char>(head[1]) == 0x83);
}

} // namespace mailseal::seal::smime
