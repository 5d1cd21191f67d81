// swift-tools-version:6.1
//
// Benchmarks, kept out of the main package so that its builds and CI don't compile the
// comparison libraries. Run with: cd Benchmarks && swift run -c release ProtobufBenchmark

import PackageDescription

let package = Package(
  name: "payments-benchmarks",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(name: "payments", path: ".."),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
  ],
  targets: [
    .executableTarget(
      name: "ProtobufBenchmark",
      dependencies: [
        .product(name: "ProtobufRuntime", package: "payments"),
        .product(name: "PaymentsProto", package: "payments"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ])
  ]
)
