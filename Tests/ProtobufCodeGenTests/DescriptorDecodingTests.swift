import Foundation
import PaymentsTestSupport
import ProtobufCodeGen
import ProtobufRuntime
import Testing

/// The generator's hand-written descriptor types read what the real protoc writes.
@Suite("descriptor bootstrap against protoc")
struct DescriptorDecodingTests {
  static let protoRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("proto").path

  /// protoc's descriptor set for our contract, with comments.
  static func contractDescriptorSet() throws -> FileDescriptorSet {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("descriptors-\(UUID()).pb")
      .path
    defer { try? FileManager.default.removeItem(atPath: output) }
    let result = try ChildProcess.run(
      "/usr/bin/protoc",
      [
        "-I", protoRoot, "-I", "/usr/include", "--include_imports", "--include_source_info",
        "--descriptor_set_out=\(output)", "payments/v1/query_service.proto",
        "payments/v1/command_service.proto",
      ])
    guard result.status == 0 else { throw HarnessError(result.output) }
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
    return try FileDescriptorSet(serializedBytes: bytes)
  }

  @Test("files, messages, fields, maps, oneofs, enums, services and streaming kinds are read")
  func structure() throws {
    let set = try Self.contractDescriptorSet()
    let names = set.files.map(\.name)
    #expect(names.contains("google/protobuf/timestamp.proto"))
    // Imports come before their importers.
    #expect(
      names.firstIndex(of: "payments/v1/payment.proto")! < names.firstIndex(
        of: "payments/v1/query_service.proto")!)

    let paymentFile = try #require(set.files.first { $0.name == "payments/v1/payment.proto" })
    #expect(paymentFile.package == "payments.v1")
    #expect(paymentFile.syntax == "proto3")
    #expect(paymentFile.dependencies == ["google/protobuf/timestamp.proto"])
    let payment = try #require(paymentFile.messageTypes.first { $0.name == "Payment" })
    #expect(payment.fields.count == 17)
    let money = try #require(paymentFile.messageTypes.first { $0.name == "Money" })
    let amount = try #require(money.fields.first { $0.name == "amount_minor" })
    #expect(amount.number == 2)
    #expect(amount.type == .int64)
    #expect(amount.jsonName == "amountMinor")
    let createdAt = try #require(payment.fields.first { $0.name == "created_at" })
    #expect(createdAt.type == .message)
    #expect(createdAt.typeName == ".google.protobuf.Timestamp")
    let metadata = try #require(payment.fields.first { $0.name == "metadata" })
    #expect(metadata.label == .repeated)
    let entry = try #require(payment.nestedTypes.first { $0.name == "MetadataEntry" })
    #expect(entry.isMapEntry)
    #expect(entry.fields.map(\.name) == ["key", "value"])
    let status = try #require(paymentFile.enumTypes.first { $0.name == "PaymentStatus" })
    #expect(status.values.map(\.number) == [0, 1, 2, 3, 4, 5, 6])
    #expect(status.values[4].name == "PAYMENT_STATUS_SUCCEEDED")

    let queryFile = try #require(set.files.first { $0.name == "payments/v1/query_service.proto" })
    let get = try #require(queryFile.messageTypes.first { $0.name == "GetPaymentRequest" })
    #expect(get.oneofs.map(\.name) == ["lookup"])
    #expect(get.fields.filter { $0.oneofIndex == 0 }.map(\.name) == ["payment_id", "idempotency_key"])
    #expect(get.fields.first { $0.name == "min_version" }?.oneofIndex == nil)
    let service = try #require(queryFile.services.first)
    #expect(service.name == "PaymentQueryService")
    let watch = try #require(service.methods.first { $0.name == "WatchPayment" })
    #expect(watch.serverStreaming && !watch.clientStreaming)
    #expect(watch.inputType == ".payments.v1.WatchPaymentRequest")
    #expect(watch.outputType == ".payments.v1.Payment")
  }

  @Test("comments come through source info, by element path")
  func comments() throws {
    let set = try Self.contractDescriptorSet()
    let paymentFile = try #require(set.files.first { $0.name == "payments/v1/payment.proto" })
    let info = try #require(paymentFile.sourceCodeInfo)
    let paymentIndex = Int32(paymentFile.messageTypes.firstIndex { $0.name == "Payment" }!)
    // 4 = message_type, then the message's index, 2 = field, 0 = first field (payment_id).
    let comment = try #require(info.comment(at: [4, paymentIndex, 2, 0]))
    #expect(comment.contains("Server-assigned"))
  }

  @Test("a descriptor re-encoded by us decodes to the same model")
  func reencode() throws {
    let set = try Self.contractDescriptorSet()
    let again = try FileDescriptorSet(serializedBytes: set.serializedBytes())
    #expect(again == set)
  }
}
