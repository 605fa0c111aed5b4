// The deleter that lets std::unique_ptr own a C library's handle: `FreeWith<X509_free>` calls
// X509_free on a non-null pointer. Header-only and dependency-free, so that the fixture
// programs (libevent, not the test library) and the test library (curl, OpenSSL) share it.
#pragma once

namespace balancer::test {

template <auto Fn>
struct FreeWith {
  template <class T>
  void operator()(T* p) const {
    if (p != nullptr) Fn(p);
  }
};

}  // namespace balancer::test
