// swift-tools-version:5.4
//
// libFuzzer targets, kept out of the main package because they must be built with
// `-sanitize=fuzzer` (libFuzzer provides `main`). Run them with tools/fuzz.

import PackageDescription

let package = Package(
  name: "payments-fuzz",
  dependencies: [.package(name: "payments", path: "..")],
  targets: [
    .executableTarget(
      name: "ProtobufDecoderFuzzer",
      dependencies: [
        .product(name: "ProtobufRuntime", package: "payments"),
        .product(name: "ProtobufCodeGen", package: "payments"),
      ])
  ]
)
