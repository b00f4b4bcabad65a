// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <mailseal/seal/message.hpp>

// gmime is initialised once, before any test (and any thread) runs, as the daemon does.
int main(int argc, char** argv) {
    mailseal::seal::gmime_library gmime;
    testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
