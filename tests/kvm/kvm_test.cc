// Kvm::open's expected failures, on any host: each message says what is wrong
// and suggests --backend emu.
#include "ttvm/kvm/kvm.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace ttvm::kvm {
namespace {

TEST(KvmOpen, MissingDeviceSaysWhyAndSuggestsTheEmulator) {
  const Result<Kvm> k = Kvm::open("/nonexistent/kvm");
  ASSERT_FALSE(k.ok());
  const std::string& m = k.error().message;
  EXPECT_NE(m.find("/nonexistent/kvm"), std::string::npos) << m;
  EXPECT_NE(m.find("no KVM"), std::string::npos) << m;
  EXPECT_NE(m.find("--backend emu"), std::string::npos) << m;
}

TEST(KvmOpen, ADeviceThatIsNotKvm) {
  const Result<Kvm> k = Kvm::open("/dev/null");
  ASSERT_FALSE(k.ok());
  const std::string& m = k.error().message;
  EXPECT_NE(m.find("/dev/null: not a KVM device"), std::string::npos) << m;
  EXPECT_NE(m.find("--backend emu"), std::string::npos) << m;
}

TEST(KvmOpen, NoPermission) {
  if (geteuid() == 0) GTEST_SKIP() << "running as root: every file opens";
  // /etc/shadow: present and unreadable to users on Debian.
  const Result<Kvm> k = Kvm::open("/etc/shadow");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.error().message.find("no permission"), std::string::npos) << k.error().message;
}

}  // namespace
}  // namespace ttvm::kvm
