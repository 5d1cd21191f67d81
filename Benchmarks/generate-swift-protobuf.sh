#!/usr/bin/env bash
# Generates apple/swift-protobuf's code for our payment messages, for the comparison benchmark
# only (the product never uses swift-protobuf). Building protoc-gen-swift takes minutes, so the
# output is checked in; rerun this after changing proto/payments/v1/*.proto or the echo test proto.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/Sources/dummy"
cat > "$work/Package.swift" <<'PKG'
// swift-tools-version:6.1
import PackageDescription
let package = Package(
  name: "gen",
  dependencies: [.package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0")],
  targets: [.executableTarget(name: "dummy", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")])]
)
PKG
echo 'print("")' > "$work/Sources/dummy/main.swift"
(cd "$work" && swift build -c release --product protoc-gen-swift)
out=Sources/ProtobufBenchmark/SwiftProtobufGenerated
rm -f "$out"/*.pb.swift
protoc --plugin=protoc-gen-swift="$work/.build/release/protoc-gen-swift" --swift_out="$out" \
  -I ../proto -I /usr/include payments/v1/payment.proto payments/v1/command_service.proto
mv "$out/payments/v1/"*.pb.swift "$out/" && rm -rf "$out/payments"
echo "generated: $(ls "$out")"
# The echo test service, for EchoServerGRPCSwift.
echo_out=Sources/EchoServerGRPCSwift
protoc --plugin=protoc-gen-swift="$work/.build/release/protoc-gen-swift" --swift_out="$echo_out" \
  -I ../Tests/GeneratedCodeTests/proto echo/v1/echo.proto
mv "$echo_out/echo/v1/echo.pb.swift" "$echo_out/echo.pb.swift" && rm -rf "$echo_out/echo"
echo "generated: $echo_out/echo.pb.swift"
