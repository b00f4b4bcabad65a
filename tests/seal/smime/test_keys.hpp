// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The tests' RSA keys, fixed. Generating an RSA key takes from a tenth of a second to over a
/// second (more under the sanitizers), and ctest runs every test in a process of its own, so
/// generating them in each process was most of the unit tests' time. Made with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:<bits>`; test keys only.

#include <memory>
#include <stdexcept>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include <mailseal/seal/smime/openssl.hpp>

namespace mailseal::seal::smime::test {

inline std::shared_ptr<EVP_PKEY> fixed_key(std::string_view pem) {
    c_ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    c_ptr<EVP_PKEY> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                            : nullptr);
    if (!key) {
        throw std::runtime_error("a fixed test key does not parse");
    }
    return share(std::move(key));
}

/// An RSA-2048 key.
inline constexpr std::string_view rsa2048_first_pem = R"(
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCU6LSSBcf2Ms6i
P3s7R9mOsE/foRAajAEl6Aqg1biDhnRdShcgeiLziio2yhxWUc41AOEWKIx/3NDX
U1UMXkZaXqcXFDD/J4fmgxDpelpy2wnFzIbwj/sgIr49QipzEmfPaTwyiVHeiJgv
p3MOmXoGhrZckOW8enlGdNFVxG32VH5g/YH3wpHkp0HYJoQc4+kBFnvwEB04wuLW
SRQnLTuGTtBMGm6WPg1U36IaJrWEdfPfd6f62JlRcW97Dz95JE3G7GPPc/FH0NPu
A3VAEkQ7whxts+bBou1xDouai2+mg6wRScvylUd5iubNImCnaQY9vu0A9hQ+iwqA
84eDYSOpAgMBAAECggEAKUrsg8+plyqYpWJgLFysxkY7KALUYeAwE1Bo3hfV/lcD
HrmEd0OXPJy0PxRFzmQKACW5xTjCWVSk7wkTPQZJkRbNU/eL7L2MEI6I2o3M1ivK
ZnjkdIIgu9UWlwsplVZlxhzjDgqJUuHi/df77nD95yBlIn8lzeHSjoinYhbB/Xwd
VVA1p+ue0pgAkonyYTP4GvjbcLZr5F1ef6NeT29raueKa7GmYtciqBdFAYj+zWcN
b7OebJ6NGfLollU5EGGSkguK40UMUbEXtl3VgWRrHrWmSo+FK4z68/q7e0Mzx9XP
4szoFIYLJMyKitORnwq10iR/c6VukcZoMy1jtIlYLwKBgQDMvCvAeUu5SSOgmJja
NujpNLKTJ8wSWRPevVoiR8+NL6ni2cEu/F39c76xlMXQxCq5t2z1g5NlCljwXQaP
PipnGbiLQzd0+2NuvAnuizAZtld8PKibtWb/ruTQ7HP6gbbEC50YRx/+K8P2/RC7
RSAqm/xvNTyWx4esTpORusaC3wKBgQC6MgAJi1l1WCXyFS5bHijKNuJivBU9IVKj
l0/Rab94n01+1F4/fQ+lZZPXX1aJB1kRwoxVOXAvlkEbdZkTbsUl5RbCIcH7RTdg
CHmzV+STIBMn7PPxDjfZxTXJqwhDxvu/aMv7gvjSvYzo7vOvVZ3Ad96D2ddAcIM5
Uwalio1ydwKBgH6LoI9rab6w0nClYXUfk37xr579bkm4/Wsjpt6hfExMNbmd1qZw
HrhWHnws9MhBOBdqpNJr7WL6rlaDaVaImjT31PVfKpwH9kGvwIPNTIHYDuMfqyfz
TCKlu5DXVih0nL84XnVvIPs9mfbEHN9jrqonmDQ0t6qK0fVS7CubQrAJAoGAITqr
JwjnfjmtC/cbvsczIGOLI3PNlotL5EYsyILG2RAVFH1yFIKNOEdYiydImkvlaXX+
9Xa6vsNh+zSRjRZHuOuZlCvSIrXHnCvnDEqzUE55HLb9Ehgnf4Xig4syfmYUp6Rc
QxassW+Cpk9+zdvJu3+pBn7qG2X5BVH77a88byECgYApTtrN/ub8Y1vxZ9ZSG5lI
lCkzt6HXxkYIJUA0ITvj8VC9zTpMiEr8lOMlVebvdcoY6UVoAHMMvPUXTVJp21py
AV1oF6uyvUII8+E0iTCiuMOouanFVCJvO8DdPUlfPI/CApvj6UzRfAoSzBJrMFOq
TPtISwECMs85wLUD66KwVA==
-----END PRIVATE KEY-----
)";

/// Another RSA-2048 key.
inline constexpr std::string_view rsa2048_second_pem = R"(
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC27ZRhc1MG2BvB
/YOk3jE4q1tPPlwfdASIqsCNeE92AHZD4fn4I0MLsKUlUzOT5QZMV7C3l9MZ6Rpp
rnCRcxXf11DXYRdHT5wK1h/2EZYCD0cY2rfsOOjXM24kVVgw/ByWfmRmEYWXTcAM
C2LCe2PQHWzzU+FQe9PbUxt6HOfkAdxJ/nwTaR1MfTe4w3f1JSdw0+vQqJWIYPGt
d9ZQU+k1vFC55gpWi8bJB1ipDWNYYB2MMxS+0RBdSpG7J/YDM2NYz21/AJBHddUu
5J/70omNe0pwjZiEE8LwK/DXqmpmNMF2z7ZiZo5KzFG0YhT5TNrryFc9tS5B7skD
oxIgliitAgMBAAECggEABgiA79PfZabkB3pmiJ4BbpaMPOlYHXt0mNNU5XWV3VT3
kZaW6X20POL3F2uOlG6lzgfIXs3FmyGqitjDgrCShJ7z3h6oJ2RzR5I3XKTI10mM
tT+leEeKOmrKU61y6q6t/LKvegRS7SIV1u/bMoHiUV9fFAlssXxcCOxNSDJC3ay5
wmqXIK72ZzbA5qKeIUKnHJ+jID/2V32fbFatrphyctWedclPv7LkMXnyv9bET1U8
Rlqrs6bk7eMkP+Xo5hDMttZeVLJxo9H1TGJlU4ARXzCr7fpOrbfrYbw/XbRpwNE3
900BWTn4wR8Mz2n3P8SXQp4asLj7CSRE8UAlslQz8QKBgQDZPcvhc/D4HTy7ktoH
lx/Ylfxax29IzrEIkbW6569Z6sm5O/vlpcYDYhnUcPgtoFow1pXUZlxQAFJoh7S4
mZ6swtPSFBryyqW8rkIvlSt3jGCxG3Gxs8N4rokkIyN9aimzBUzk8hgUnS5GuquT
mo/O49zMyPaD/eTdFzax+dizaQKBgQDXkJFoMiRXYXNHz/vxW9r7cWd/DA5L5t/y
Wd2zRVVhPzblBQSrO59X79LISTHpuuth1RDHgJg2pcyekQ4ekAyYyG1JNwxsIKhn
0HAE/dlclq8LbZjkgExeqxaPH7zwCV7gMRXHo+gmDRmjpOE91W45bTL7DNseUZ9v
+kUPnhOWpQKBgGGscTCKynsj2hyT6EelYQImXXILXTOlCt/Jc6X3aVXKRKxuFdGo
+SCoSOjFajBJeoOe13rKExM9MdAhw9WD7F3MsyQvOfaTunTc/JEcRpDXotm+dx3o
ryhhgPOogNpwkxMUfQArATyzdw0B/Qa+ZY4l0S6Z5Ixv6SimuUbICPCRAoGAflai
ghjxJ61brTj+hkS5oSij6dgdAOs9UYLN5uW51pcAC1XXmKwHBbjvJqePc1cz4VDI
1sRNcanWtRB63/q5B0pgksqKo0y4pq+JF8PXguZljSMcur9fAxTu0c9eIqi7TFY4
V5t+0d5XqotV37GZOlr/yBeOzMQ116EsnKye+mkCgYA/rj9TpCwq8zvGY1n4HyEn
zzOX63mcDdjhEEvbv8rzX19AbRzDrsh7+fDgFiZSC8yxpfRVL2eA1SsaQKwOHbzC
duH2bM2+/9AfPjkwjJbGOGO2t/PDBXySdIJ6XLprhg4U1SDHwIDyZWYRl/C0ThJA
gKTBZyIEHS62dZjyUUXD/w==
-----END PRIVATE KEY-----
)";

/// An RSA-1024 key, below the smallest size mailseal encrypts to.
inline constexpr std::string_view rsa1024_pem = R"(
-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAKAO1dsNOwo9KAQi
j4GAN4N/H6OJQHgbhtHxeZ0wM5nC6Iz5Ac96vk40P3dnNkUarhkZyXw2t0mSiw/C
ssvL02okkg7SWVxiAF/ExxDBWPR2ESJbfnh27tXvdFyiJ5Z7SzwNekiYW6Rmdb4Z
FhuqTWH1Myvv+HabrhZsunsDP2jpAgMBAAECgYACxZ8Ahy8hk0ORJsQTexP7DAWR
QHxEWD2yfxsbFM2f+Rcr8dgNLtQC6La8q6Xt9nNTbfXmV9A+zvHnmPidvO7xXaNS
hQZrq6i8En1x1ELCjiKAKkFKx6IoUx4iTpa4GMmBOiI7+h4nqdxbzn/+qQVV40wW
Wk9cUz9N+7wI8MxKfQJBAM9qy6KiyzRNVnQxi67ICQO2OdOPqn2JbI20jBJUsX8J
utKzJph+EN5qk9dWgrX04WfpNz2XIbCIh20LIp7nC+MCQQDFjEYKSQSkeSFl5RE0
t4fG7IvigEbi2u7YgtH6Rx+9ascBnAcUXGKVWJqc6mp8zgjeCqexxKgCdkDzDMvp
XinDAkAQf6E1DZf2UBSJZ4uB2p2E8xDEeFAKbkz5NJxTtPLtdPusWN3AEX8MAhRC
c7ov+QuY9V8UghoG7cU/8jvNwfkbAkEAl8UTMmeyx2HAhPYd5/BwwiWNuvBuhW9K
PNEU3UGzYuUcC2KCFeR8YNz3vEJkmYn5Sg3JlEvQAEQ11gUozBvp3QJAEcU5UCs+
bfi0jeTwXuRd3tGO4kukOs2GLlv8mBgsOqQYtrFHjmFD/QCKFVdcbkv8aNexOG+c
BQ5ykVi5yUrYwQ==
-----END PRIVATE KEY-----
)";

} // namespace mailseal::seal::smime::test
