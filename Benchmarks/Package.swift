// swift-tools-version:6.1
//
// Benchmarks, kept out of the main package so that its builds and CI don't compile the
// comparison libraries.
// - ProtobufBenchmark: our protobuf runtime against apple/swift-protobuf
//   (`cd Benchmarks && swift run -c release ProtobufBenchmark`).
// - EchoServerOurs / EchoServerGRPCSwift: the same unary method served by our gRPC stack and by
//   grpc-swift-2, driven with h2load by tools/benchmark-grpc.
// - PaymentsLoad: SubmitPayment and GetPayment load against running services
//   (tools/benchmark-payments).

import PackageDescription

let package = Package(
  name: "payments-benchmarks",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(name: "payments", path: ".."),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.0"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.0"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.0"),
  ],
  targets: [
    .executableTarget(
      name: "ProtobufBenchmark",
      dependencies: [
        .product(name: "ProtobufRuntime", package: "payments"),
        .product(name: "PaymentsProto", package: "payments"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]),
    .executableTarget(
      name: "EchoServerOurs",
      dependencies: [
        .product(name: "ProtobufRuntime", package: "payments"),
        .product(name: "RPCCore", package: "payments"),
        .product(name: "RPCTransportHTTP2", package: "payments"),
        .product(name: "Logging", package: "swift-log"),
      ],
      exclude: ["protobuf.json"],
      plugins: [.plugin(name: "ProtobufGenerator", package: "payments")]),
    .executableTarget(
      name: "EchoServerGRPCSwift",
      dependencies: [
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]),
    .executableTarget(
      name: "PaymentsLoad",
      dependencies: [
        .product(name: "PaymentsProto", package: "payments"),
        .product(name: "RPCCore", package: "payments"),
        .product(name: "RPCTransportHTTP2", package: "payments"),
        .product(name: "Logging", package: "swift-log"),
      ]),
  ]
)
