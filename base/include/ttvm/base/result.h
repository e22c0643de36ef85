// Result<T>: the value of an expected failure (bad file, bad argument, missing
// /dev/kvm). Public APIs return it instead of throwing. The error carries a
// message a user can act on: what is wrong and where (file, byte offset, step).
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "ttvm/base/assert.h"

namespace ttvm {

struct Error {
  std::string message;
};

// Builds an Error; the message should name what is wrong and where.
inline Error makeError(std::string message) {
  return Error{std::move(message)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    TTVM_ASSERT(ok(), "Result::value() on an error: ", error().message);
    return std::get<0>(v_);
  }
  const T& value() const& {
    TTVM_ASSERT(ok(), "Result::value() on an error: ", error().message);
    return std::get<0>(v_);
  }
  T&& value() && {
    TTVM_ASSERT(ok(), "Result::value() on an error: ", error().message);
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    TTVM_ASSERT(!ok(), "Result::error() on a value");
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    TTVM_ASSERT(!ok_, "Result::error() on a value");
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace ttvm

// Propagates an error from an expression returning Result<...>.
#define TTVM_TRY(expr)                                           \
  do {                                                           \
    auto ttvm_try_result_ = (expr);                              \
    if (!ttvm_try_result_.ok()) return ttvm_try_result_.error(); \
  } while (0)
