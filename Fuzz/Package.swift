// swift-tools-version:5.4
//
// libFuzzer targets, kept out of the main package because libFuzzer provides `main`. tools/fuzz
// builds every module with AddressSanitizer, coverage instrumentation and `-enable-testing` (so
// that a target reaches a module's internal parser with `@testable import` without widening its
// API); only the targets here link libFuzzer. Tools version 5.4: newer ones rename an
// executable's entry point, which libFuzzer's `main` would not find.

import PackageDescription

/// Each fuzz target and the products of the main package it needs.
let fuzzers: [(String, [String])] = [
  ("ProtobufDecoderFuzzer", ["ProtobufRuntime", "ProtobufCodeGen"]),
  ("ProtobufJSONFuzzer", ["ProtobufRuntime", "PaymentsProto"]),
  ("GRPCDeframerFuzzer", ["RPCTransportHTTP2"]),
  ("HTTP2SessionFuzzer", ["HTTP2"]),
  ("PageTokenFuzzer", ["QueryService"]),
  ("ConfigurationFuzzer", ["PaymentsConfiguration"]),
]

let package = Package(
  name: "payments-fuzz",
  dependencies: [.package(name: "payments", path: "..")],
  targets: fuzzers.map { name, dependencies in
    .executableTarget(
      name: name, dependencies: dependencies.map { .product(name: $0, package: "payments") },
      swiftSettings: [.unsafeFlags(["-parse-as-library"])],
      linkerSettings: [.unsafeFlags(["-sanitize=fuzzer"])])
  }
)
