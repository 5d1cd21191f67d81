import ProtobufCodeGen
import ProtobufDynamic
import Testing

@Suite("descriptor pool")
struct DescriptorPoolTests {
  @Test("looks up messages, enums, services and methods by fully qualified name")
  func lookups() throws {
    let pool = try Descriptors.pool()
    let money = try #require(pool.message("payments.v1.Money"))
    #expect(money.fileName == "payments/v1/payment.proto")
    #expect(money.fields.map(\.name) == ["currency", "amount_minor"])
    #expect(money.field(named: "amountMinor")?.number == 2)
    #expect(money.field(named: "amount_minor")?.type == .int64)
    #expect(pool.message(".payments.v1.Money")?.fullName == "payments.v1.Money")
    #expect(pool.message("payments.v1.Nope") == nil)

    let payment = try #require(pool.message("payments.v1.Payment"))
    let metadata = try #require(payment.field(named: "metadata"))
    #expect(metadata.isMap && metadata.isRepeated)
    #expect(metadata.typeName == "payments.v1.Payment.MetadataEntry")
    #expect(payment.field(named: "createdAt")?.typeName == "google.protobuf.Timestamp")
    #expect(payment.field(named: "status")?.typeName == "payments.v1.PaymentStatus")

    let status = try #require(pool.enumType("payments.v1.PaymentStatus"))
    #expect(status.number(named: "PAYMENT_STATUS_SUCCEEDED") == 4)
    #expect(status.name(of: 1) == "PAYMENT_STATUS_ACCEPTED")
    #expect(!status.isClosed)
    #expect(pool.enumType("dynamictest.v1.Legacy.Kind")?.isClosed == true)

    #expect(pool.services.map(\.fullName).contains("grpc.health.v1.Health"))
    #expect(pool.services.map(\.fullName) == pool.services.map(\.fullName).sorted())
    let watch = try #require(pool.method("payments.v1.PaymentQueryService/WatchPayment"))
    #expect(watch.inputType == "payments.v1.WatchPaymentRequest")
    #expect(watch.outputType == "payments.v1.Payment")
    #expect(!watch.isClientStreaming && watch.isServerStreaming)
    #expect(watch.path == "/payments.v1.PaymentQueryService/WatchPayment")
    #expect(pool.method("payments.v1.PaymentQueryService.WatchPayment")?.name == "WatchPayment")
    #expect(pool.method("/payments.v1.PaymentQueryService/WatchPayment")?.name == "WatchPayment")
    #expect(pool.method("payments.v1.PaymentQueryService/Nope") == nil)
    let both = try #require(pool.method("dynamictest.v1.Streams.Both"))
    #expect(both.isClientStreaming && both.isServerStreaming)
  }

  @Test("finds the file that defines a symbol")
  func fileContaining() throws {
    let pool = try Descriptors.pool()
    #expect(pool.fileContaining(symbol: "payments.v1.Money")?.name == "payments/v1/payment.proto")
    #expect(
      pool.fileContaining(symbol: "payments.v1.Payment.MetadataEntry")?.name == "payments/v1/payment.proto")
    #expect(pool.fileContaining(symbol: "payments.v1.PaymentStatus")?.name == "payments/v1/payment.proto")
    #expect(
      pool.fileContaining(symbol: "payments.v1.PaymentCommandService")?.name
        == "payments/v1/command_service.proto")
    #expect(
      pool.fileContaining(symbol: "payments.v1.PaymentCommandService.SubmitPayment")?.name
        == "payments/v1/command_service.proto")
    #expect(
      pool.fileContaining(symbol: "google.protobuf.Timestamp")?.name == "google/protobuf/timestamp.proto")
    #expect(pool.fileContaining(symbol: "payments.v1.Nope") == nil)
    #expect(pool.files.contains { $0.name == "grpc/health/v1/health.proto" })
  }

  @Test("files may come in any order, and one given twice is kept once")
  func fileOrder() throws {
    let files = try Descriptors.pool().files
    let pool = try DescriptorPool(files: files.reversed() + files)
    #expect(pool.files.count == files.count)
    #expect(pool.message("payments.v1.SubmitPaymentRequest") != nil)
  }

  @Test("a field whose type is not defined is an error that names the field and the type")
  func missingType() throws {
    let files = try Descriptors.pool().files.filter { $0.name != "google/protobuf/timestamp.proto" }
    let error = #expect(throws: ProtobufDynamicError.self) { try DescriptorPool(files: files) }
    #expect(error?.code == .invalidDescriptor)
    #expect(error?.description.contains(".google.protobuf.Timestamp") == true)
    #expect(error?.description.contains("is not defined") == true)
  }

  @Test("a method whose input type is not defined is an error that names the method")
  func missingMethodType() throws {
    var file = FileDescriptorProto()
    file.name = "broken.proto"
    file.package = "broken"
    var service = ServiceDescriptorProto()
    service.name = "Service"
    var method = MethodDescriptorProto()
    method.name = "Call"
    method.inputType = ".broken.Missing"
    method.outputType = ".broken.Missing"
    service.methods = [method]
    file.services = [service]
    let error = #expect(throws: ProtobufDynamicError.self) { try DescriptorPool(files: [file]) }
    #expect(error?.description.contains("broken.Service.Call") == true)
    #expect(error?.description.contains(".broken.Missing") == true)
  }

  @Test("a symbol defined in two files is an error")
  func duplicateSymbol() throws {
    var first = FileDescriptorProto()
    first.name = "a.proto"
    var message = DescriptorProto()
    message.name = "Same"
    first.messageTypes = [message]
    var second = first
    second.name = "b.proto"
    let error = #expect(throws: ProtobufDynamicError.self) { try DescriptorPool(files: [first, second]) }
    #expect(error?.description.contains("Same is defined twice") == true)
  }

  @Test("bytes that are not a FileDescriptorSet are an error, not a crash")
  func badDescriptorSet() {
    #expect(throws: ProtobufDynamicError.self) { try DescriptorPool(descriptorSet: [0x0a, 0xff, 0xff]) }
  }
}

@Suite("describe")
struct DescribeTests {
  @Test("a service: every method with its streaming kinds, after the service's comment")
  func service() throws {
    let pool = try Descriptors.pool()
    let text = try pool.describe("payments.v1.PaymentQueryService")
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines.first == "payments.v1.PaymentQueryService is a service:")
    #expect(lines.contains("service PaymentQueryService {"))
    #expect(
      lines.contains(
        "// Serves the payments of the calling client. Every call needs `authorization: Bearer <api key>`"))
    #expect(
      lines.contains("  rpc GetPayment ( .payments.v1.GetPaymentRequest ) returns ( .payments.v1.Payment );"))
    #expect(
      lines.contains(
        "  rpc WatchPayment ( .payments.v1.WatchPaymentRequest ) returns ( stream .payments.v1.Payment );"))
    #expect(lines.contains("  // One payment, by ID or by idempotency key."))
    #expect(lines.last == "}")

    let streams = try pool.describe("dynamictest.v1.Streams")
    #expect(
      streams.contains(
        "rpc ClientStream ( stream .dynamictest.v1.Scalars ) returns ( .dynamictest.v1.Nested );"))
    #expect(
      streams.contains(
        "rpc Both ( stream .dynamictest.v1.Nested ) returns ( stream .dynamictest.v1.Nested );"))
  }

  @Test("a message with a map, a oneof, optional fields and a nested type")
  func message() throws {
    let pool = try Descriptors.pool()
    let payment = try pool.describe("payments.v1.Payment")
    #expect(
      payment.hasPrefix("payments.v1.Payment is a message:\n// A payment order and its current state.\n"))
    #expect(payment.contains("\n  map<string, string> metadata = 7;\n"))
    #expect(payment.contains("\n  .payments.v1.PaymentStatus status = 8;\n"))
    #expect(payment.contains("\n  .google.protobuf.Timestamp created_at = 13;\n"))
    #expect(!payment.contains("MetadataEntry"))

    let choice = try pool.describe("dynamictest.v1.Choice")
    #expect(
      choice == """
        dynamictest.v1.Choice is a message:
        // A oneof and proto3 optional fields.
        message Choice {
          // At most one.
          oneof pick {
            string text = 1;
            int64 number = 2;
            .dynamictest.v1.Nested nested = 3;
            .google.protobuf.Empty nothing = 4;
            .dynamictest.v1.Color color = 5;
          }
          optional int32 maybe_int = 6;
          optional string maybe_text = 7;
          optional .dynamictest.v1.Color maybe_color = 8;
          int32 plain = 9;
        }

        """)

    let nested = try pool.describe("dynamictest.v1.Nested")
    #expect(nested.contains("  // A leaf.\n  message Leaf {\n    bool on = 1;\n  }\n"))
    let maps = try pool.describe("dynamictest.v1.Maps")
    #expect(maps.contains("  map<bool, .dynamictest.v1.Nested> bool_to_nested = 3;"))
    let scalars = try pool.describe("dynamictest.v1.Scalars")
    #expect(scalars.contains("  string renamed = 17 [json_name = \"customName\"];"))
    let repeateds = try pool.describe("dynamictest.v1.Repeateds")
    #expect(repeateds.contains("  repeated int32 unpacked = 18 [packed = false];"))
    let legacy = try pool.describe("dynamictest.v1.Legacy")
    #expect(
      legacy.contains("  optional int32 count = 1;\n  required string id = 2;\n  repeated int32 numbers = 3;")
    )
  }

  @Test("an enum, with value comments")
  func enumeration() throws {
    let text = try Descriptors.pool().describe("dynamictest.v1.Color")
    #expect(
      text == """
        dynamictest.v1.Color is an enum:
        // A colour.
        enum Color {
          // Not set.
          COLOR_UNSPECIFIED = 0;
          COLOR_RED = 1;
          COLOR_GREEN = 2;
        }

        """)
  }

  @Test("a method, in either spelling")
  func method() throws {
    let pool = try Descriptors.pool()
    let text = try pool.describe("payments.v1.PaymentCommandService.SubmitPayment")
    #expect(
      text.hasPrefix(
        "payments.v1.PaymentCommandService.SubmitPayment is a method:\n// Stores a payment order"))
    #expect(
      text.hasSuffix(
        "rpc SubmitPayment ( .payments.v1.SubmitPaymentRequest ) returns ( .payments.v1.SubmitPaymentResponse );\n"
      ))
    #expect(try pool.describe("payments.v1.PaymentCommandService/SubmitPayment") == text)
  }

  @Test("an unknown symbol is an error naming it")
  func unknown() throws {
    let error = #expect(throws: ProtobufDynamicError.self) {
      try Descriptors.pool().describe("payments.v1.Nope")
    }
    #expect(error?.code == .unknownSymbol)
    #expect(error?.description.contains("payments.v1.Nope") == true)
  }
}
