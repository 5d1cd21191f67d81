// swift-tools-version:6.1
//
// The payments platform: three services (command, dispatcher, query), a client SDK, a debug
// tool and the infrastructure wrappers they stand on. See docs/architecture.md for the layers.

import PackageDescription

let upcomingFeatures: [SwiftSetting] = [
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

extension Target.Dependency {
  static let argumentParser = Target.Dependency.product(
    name: "ArgumentParser", package: "swift-argument-parser")
  static let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
  static let serviceLifecycle = Target.Dependency.product(
    name: "ServiceLifecycle", package: "swift-service-lifecycle")
  static let unixSignals = Target.Dependency.product(
    name: "UnixSignals", package: "swift-service-lifecycle")
  static let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
  static let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
  static let prometheus = Target.Dependency.product(name: "Prometheus", package: "swift-prometheus")
  static let asyncHTTPClient = Target.Dependency.product(
    name: "AsyncHTTPClient", package: "async-http-client")
}

let package = Package(
  name: "payments",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "payments", targets: ["payments"]),
    .executable(name: "paymentsctl", targets: ["paymentsctl"]),
    .library(name: "PaymentsClient", targets: ["PaymentsClient"]),
    .library(name: "ProtobufRuntime", targets: ["ProtobufRuntime"]),
    .library(name: "ProtobufCodeGen", targets: ["ProtobufCodeGen"]),
    .library(name: "PaymentsProto", targets: ["PaymentsProto"]),
    .library(name: "RPCCore", targets: ["RPCCore"]),
    .library(name: "RPCTransportHTTP2", targets: ["RPCTransportHTTP2"]),
    .library(name: "TLS", targets: ["TLS"]),
    .library(name: "RPCStandardServices", targets: ["RPCStandardServices"]),
    // For the fuzz targets in Fuzz/ (a package of their own), which need these modules' parsers.
    .library(name: "HTTP2", targets: ["HTTP2"]),
    .library(name: "QueryService", targets: ["QueryService"]),
    .library(name: "PaymentsConfiguration", targets: ["PaymentsConfiguration"]),
    .plugin(name: "ProtobufGenerator", targets: ["ProtobufGenerator"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
    .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
    .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
  ],
  targets: [
    // MARK: C libraries (each imported by exactly one wrapper module below)
    .systemLibrary(
      name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
    .systemLibrary(
      name: "CRDKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
    .systemLibrary(
      name: "CNGHTTP2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
    .systemLibrary(
      name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),

    // MARK: Infrastructure wrappers (no payment logic; nothing above them sees a C type)
    .target(name: "Postgres", dependencies: ["CLibPQ", .logging]),
    // C helpers for librdkafka's variadic API, in a .c file so that sanitizers instrument them.
    .target(name: "CRDKafkaShim", dependencies: ["CRDKafka"]),
    .target(name: "Kafka", dependencies: ["CRDKafka", "CRDKafkaShim", .logging]),
    .target(name: "HTTP2", dependencies: ["CNGHTTP2"]),
    .target(name: "TLS", dependencies: ["COpenSSL"]),

    // MARK: Protobuf runtime and code generation
    .target(name: "ProtobufRuntime"),
    .target(name: "ProtobufCodeGen", dependencies: ["ProtobufRuntime"]),
    .target(name: "ProtobufDynamic", dependencies: ["ProtobufRuntime", "ProtobufCodeGen"]),
    .executableTarget(
      name: "protoc-gen-swift-payments", dependencies: ["ProtobufCodeGen", "ProtobufRuntime"]),
    .plugin(
      name: "ProtobufGenerator", capability: .buildTool(), dependencies: ["protoc-gen-swift-payments"]),
    .target(
      name: "PaymentsProto", dependencies: ["ProtobufRuntime", "RPCCore"], exclude: ["protobuf.json"],
      plugins: ["ProtobufGenerator"]),

    // MARK: RPC: a core that knows no transport, and the HTTP/2 transport
    .target(name: "RPCCore", dependencies: ["ProtobufRuntime", .logging]),
    .target(
      name: "RPCStandardServices", dependencies: ["RPCCore", "ProtobufRuntime", "ProtobufCodeGen"],
      exclude: ["protobuf.json"], plugins: ["ProtobufGenerator"]),
    .target(name: "RPCTransportHTTP2", dependencies: ["RPCCore", "HTTP2", "TLS", .logging]),

    // MARK: The payment domain and the three services
    .target(name: "PaymentsCore", dependencies: ["PaymentsProto", "ProtobufRuntime"]),
    .target(
      name: "PaymentsSchema",
      dependencies: ["Postgres"],
      resources: [
        .embedInCode("Migrations/auth"),
        .embedInCode("Migrations/command"),
        .embedInCode("Migrations/dispatcher"),
        .embedInCode("Migrations/query"),
      ]),
    .target(
      name: "ServiceKit",
      dependencies: [
        "Postgres", "Kafka", "RPCCore", "RPCStandardServices", "PaymentsProto", "TLS", .logging,
        .serviceLifecycle, .metrics,
      ]),
    .target(
      name: "CommandService",
      dependencies: [
        "PaymentsCore", "PaymentsProto", "ProtobufRuntime", "ServiceKit", "RPCCore", "RPCTransportHTTP2",
        "RPCStandardServices", "Postgres", "Kafka", "TLS", .logging, .serviceLifecycle, .metrics,
      ]),
    .target(
      name: "DispatcherService",
      dependencies: [
        "PaymentsCore", "PaymentsProto", "ProtobufRuntime", "ServiceKit", "RPCCore", "RPCTransportHTTP2",
        "RPCStandardServices", "Postgres", "Kafka", "TLS", .logging, .serviceLifecycle, .metrics,
        .asyncHTTPClient,
        .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOFoundationCompat", package: "swift-nio"),
      ]),
    .target(
      name: "QueryService",
      dependencies: [
        "PaymentsCore", "PaymentsProto", "ProtobufRuntime", "ServiceKit", "RPCCore", "RPCTransportHTTP2",
        "RPCStandardServices", "Postgres", "Kafka", "TLS", .logging, .serviceLifecycle, .metrics,
      ]),

    // MARK: The provider sandbox (a stand-in for an external payment provider)
    .target(
      name: "ProviderSandbox",
      dependencies: [
        .hummingbird, .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "HTTPTypes", package: "swift-http-types"), "TLS", .logging,
      ]),

    // MARK: SDK
    .target(
      name: "PaymentsClient",
      dependencies: [
        "PaymentsCore", "PaymentsProto", "ProtobufRuntime", "RPCCore", "RPCTransportHTTP2", "TLS", .logging,
        .serviceLifecycle,
      ]),

    // MARK: Service configuration: defaults, file, environment, flags
    .target(name: "PaymentsConfiguration", dependencies: [.product(name: "Yams", package: "Yams")]),

    // MARK: Local stack (`payments dev` and the tests): child processes, PostgreSQL clusters
    .target(name: "DevStack"),

    // MARK: Executables (configuration and wiring only)
    .executableTarget(
      name: "payments",
      dependencies: [
        "Postgres", "Kafka", "PaymentsCore", "PaymentsSchema", "ServiceKit", "CommandService",
        "QueryService", "DispatcherService", "ProviderSandbox", "RPCTransportHTTP2", "TLS", "DevStack",
        "PaymentsConfiguration",
        .argumentParser, .metrics, .prometheus, .hummingbird,
        .logging,
        .serviceLifecycle,
        .unixSignals,
      ]),

    .executableTarget(
      name: "paymentsctl",
      dependencies: [
        "PaymentsClient", "PaymentsCore", "PaymentsProto", "ProtobufDynamic", "ProtobufRuntime",
        "ProtobufCodeGen",
        "RPCCore", "RPCTransportHTTP2", "RPCStandardServices", "TLS", .argumentParser, .logging,
      ]),

    .executableTarget(
      name: "payments-example", dependencies: ["PaymentsClient"], path: "Examples/SubmitAndWait"),

    // MARK: Test support and tests
    .target(
      name: "PaymentsTestSupport",
      dependencies: ["DevStack", "Postgres", "Kafka", "DispatcherService", "PaymentsCore", .logging]),
    .testTarget(name: "PostgresTests", dependencies: ["Postgres", "PaymentsSchema", "PaymentsTestSupport"]),
    .testTarget(
      name: "KafkaTests", dependencies: ["Kafka", "CRDKafka", "CRDKafkaShim", "PaymentsTestSupport"]),
    .testTarget(name: "ContractTests", dependencies: ["PaymentsTestSupport"]),
    .testTarget(
      name: "PaymentsConfigurationTests",
      dependencies: [
        "PaymentsConfiguration", "PaymentsCore", "CommandService", "DispatcherService", "QueryService",
        "ProviderSandbox", .product(name: "Yams", package: "Yams"),
      ]),
    .testTarget(name: "ProtobufRuntimeTests", dependencies: ["ProtobufRuntime"]),
    .testTarget(
      name: "ProtobufDynamicTests",
      dependencies: ["ProtobufDynamic", "ProtobufRuntime", "ProtobufCodeGen", "PaymentsTestSupport"]),
    .testTarget(
      name: "GeneratedCodeTests", dependencies: ["ProtobufRuntime", "PaymentsTestSupport"],
      exclude: ["protobuf.json", "proto"],
      plugins: ["ProtobufGenerator"]),
    .testTarget(
      name: "ProtobufCodeGenTests",
      dependencies: ["ProtobufCodeGen", "ProtobufRuntime", "PaymentsTestSupport"], exclude: ["Golden"]),
    .testTarget(
      name: "RPCTests",
      dependencies: [
        "RPCCore", "RPCTransportHTTP2", "RPCStandardServices", "HTTP2", "TLS", "ProtobufRuntime",
        "PaymentsTestSupport", .logging,
      ],
      exclude: ["protobuf.json"], plugins: ["ProtobufGenerator"]),
    .testTarget(
      name: "PaymentsCLITests",
      dependencies: ["PaymentsTestSupport", "PaymentsSchema", "Kafka", "Postgres", "DevStack"]),
    .testTarget(
      name: "DispatcherTests",
      dependencies: [
        "DispatcherService", "PaymentsCore", "PaymentsProto", "PaymentsSchema", "Postgres",
        "PaymentsTestSupport", "ProviderSandbox", .asyncHTTPClient, .logging,
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOFoundationCompat", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
      ]),
    .testTarget(
      name: "ServiceTests",
      dependencies: [
        "CommandService", "QueryService", "ServiceKit", "PaymentsCore", "PaymentsProto", "PaymentsSchema",
        "ProtobufRuntime", "RPCCore", "RPCTransportHTTP2", "RPCStandardServices", "Postgres", "Kafka", "TLS",
        "PaymentsTestSupport",
        .logging, "DispatcherService", "ProviderSandbox", .asyncHTTPClient, "PaymentsClient",
        .serviceLifecycle,
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOFoundationCompat", package: "swift-nio"),
      ]),
  ]
)

for target in package.targets where target.type != .system && target.type != .plugin {
  target.swiftSettings = (target.swiftSettings ?? []) + upcomingFeatures
}
