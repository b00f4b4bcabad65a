// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <arpa/inet.h>
#include <cstdio>
#include <netdb.h>
#include <sstream>

#include <openssl/err.h>
#include <openssl/pem.h>

#include <mailseal/monitor/chain.hpp>
#include <mailseal/seal/smime/openssl.hpp>
#include <mailseal/util/command.hpp>

namespace mailseal::monitor {
namespace {

using seal::smime::c_ptr;

/// Postfix list values: separated by commas and white space.
std::vector<std::string> list_items(const std::string& value) {
    std::vector<std::string> items;
    std::string item;
    for (char c : value + ",") {
        if (c == ',' || c == ' ' || c == '\t' || c == '\n') {
            if (!item.empty()) {
                items.push_back(item);
            }
            item.clear();
        } else {
            item += c;
        }
    }
    return items;
}

/// The files one set of values names: the chain files, else the legacy certificate files.
std::vector<std::string> files_of(const std::vector<std::string>& values) {
    if (!values.empty()) {
        auto chains = list_items(values[0]);
        if (!chains.empty()) {
            return chains;
        }
    }
    std::vector<std::string> files;
    for (std::size_t i = 1; i < values.size(); ++i) {
        auto items = list_items(values[i]);
        if (!items.empty() && items.front() != "none") {
            files.push_back(items.front());
        }
    }
    return files;
}

/// The names /etc/services gives `port` over TCP: "smtp" and "mail" for 25.
std::vector<std::string> service_names(std::uint16_t port) {
    std::vector<std::string> names;
    servent entry{};
    servent* found = nullptr;
    char buffer[1024];
    if (::getservbyport_r(htons(port), "tcp", &entry, buffer, sizeof buffer, &found) == 0 &&
        found != nullptr) {
        names.emplace_back(found->s_name);
        for (char** alias = found->s_aliases; alias != nullptr && *alias != nullptr; ++alias) {
            names.emplace_back(*alias);
        }
    }
    return names;
}

} // namespace

std::vector<served_chain> split_chains(const std::string& source,
                                       const std::vector<std::shared_ptr<X509>>& certificates) {
    std::vector<served_chain> chains;
    for (const auto& cert : certificates) {
        bool continues =
            !chains.empty() &&
            X509_check_issued(cert.get(), chains.back().certificates.back().get()) == X509_V_OK;
        if (!continues) {
            chains.push_back({source, {}});
        }
        chains.back().certificates.push_back(cert);
    }
    return chains;
}

std::variant<std::vector<served_chain>, std::string>
read_chains(const std::filesystem::path& file) {
    std::unique_ptr<std::FILE, decltype(&std::fclose)> stream(std::fopen(file.c_str(), "re"),
                                                              &std::fclose);
    if (!stream) {
        return file.string() + ": " + util::errno_text(errno);
    }
    c_ptr<BIO> bio(BIO_new_fp(stream.get(), BIO_NOCLOSE));
    if (!bio) {
        return file.string() + ": out of memory";
    }
    std::vector<std::shared_ptr<X509>> certificates;
    ERR_clear_error();
    // PEM_read_bio_X509 passes over blocks of other kinds (the private key of a chain file).
    while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        certificates.emplace_back(raw, seal::smime::deleter<X509>{});
    }
    auto error = ERR_peek_last_error();
    ERR_clear_error();
    if (ERR_GET_REASON(error) != PEM_R_NO_START_LINE) {
        return file.string() + ": a certificate does not parse";
    }
    if (certificates.empty()) {
        return file.string() + ": no PEM certificate";
    }
    return split_chains(file.string(), certificates);
}

std::vector<std::string> postfix_chain_files(const std::vector<std::string>& main,
                                             const std::string& overrides, std::uint16_t port,
                                             const std::vector<std::string>& port_names) {
    static const std::vector<std::string> parameters{"smtpd_tls_chain_files", "smtpd_tls_cert_file",
                                                     "smtpd_tls_eccert_file",
                                                     "smtpd_tls_dcert_file"};
    auto values = main;
    values.resize(parameters.size());
    std::istringstream lines(overrides);
    std::string line;
    while (std::getline(lines, line)) {
        // postconf prints "name = value", and "name =" for an override that empties a setting.
        auto equals = line.find(" =");
        auto first = line.find('/');
        auto second = first == std::string::npos ? first : line.find('/', first + 1);
        if (equals == std::string::npos || second == std::string::npos || second > equals) {
            continue;
        }
        std::string service = line.substr(0, first);
        std::string type = line.substr(first + 1, second - first - 1);
        std::string parameter = line.substr(second + 1, equals - second - 1);
        std::string listens = service.substr(service.rfind(':') + 1);
        bool on_port = listens == std::to_string(port) ||
                       std::find(port_names.begin(), port_names.end(), listens) != port_names.end();
        auto which = std::find(parameters.begin(), parameters.end(), parameter);
        // With postscreen on port 25, sessions are handed to the "smtpd pass" service, whose
        // overrides set the certificate.
        bool after_postscreen = type == "pass" && service == "smtpd" && port == 25;
        if (((type == "inet" && on_port) || after_postscreen) && which != parameters.end()) {
            auto value = line.substr(equals + 2);
            values[static_cast<std::size_t>(which - parameters.begin())] =
                value.empty() || value.front() != ' ' ? value : value.substr(1);
        }
    }
    return files_of(values);
}

std::variant<std::vector<served_chain>, std::string>
postfix_chains(const std::optional<std::filesystem::path>& config_dir, std::uint16_t port) {
    std::vector<std::string> base{"postconf"};
    if (config_dir) {
        base.insert(base.end(), {"-c", config_dir->string()});
    }
    // One parameter at a time: a Postfix that does not know one (smtpd_tls_chain_files before
    // 3.4) prints nothing for it, which would shift the lines of the others.
    std::vector<std::string> main;
    for (const char* parameter : {"smtpd_tls_chain_files", "smtpd_tls_cert_file",
                                  "smtpd_tls_eccert_file", "smtpd_tls_dcert_file"}) {
        auto command = base;
        command.insert(command.end(), {"-xh", parameter});
        auto output = util::command_output(command);
        if (output.index() == 1) {
            return "cannot read Postfix's settings: " + std::get<1>(output);
        }
        auto value = std::get<0>(output);
        while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) {
            value.pop_back();
        }
        main.push_back(value);
    }
    auto master_command = base;
    master_command.insert(master_command.end(), {"-Px"});
    auto master_output = util::command_output(master_command);
    if (master_output.index() == 1) {
        return "cannot read Postfix's master.cf: " + std::get<1>(master_output);
    }
    auto files = postfix_chain_files(main, std::get<0>(master_output), port, service_names(port));
    if (files.empty()) {
        return "Postfix has no TLS certificate for port " + std::to_string(port) +
               " (smtpd_tls_chain_files and smtpd_tls_cert_file are empty)";
    }
    std::vector<served_chain> chains;
    for (const auto& file : files) {
        auto read = read_chains(file);
        if (auto* why = std::get_if<std::string>(&read)) {
            return "Postfix's " + *why;
        }
        auto& found = std::get<std::vector<served_chain>>(read);
        chains.insert(chains.end(), found.begin(), found.end());
    }
    return chains;
}

} // namespace mailseal::monitor
