/// Test-only `.proto` files, written to a temporary import root before protoc runs (the test
/// target cannot declare resources). Together they use every scalar type, maps with every kind
/// of key, oneofs, proto3 `optional`, repeated (packed and not), nesting, every well-known type
/// with a special JSON form, and proto2 presence, closed enums and groups.
enum TestProtos {
  static let files: [String: String] = [
    "dynamictest/v1/everything.proto": everything,
    "dynamictest/v1/legacy.proto": legacy,
  ]

  static let everything = """
    // Types that exercise the dynamic JSON conversion.
    syntax = "proto3";

    package dynamictest.v1;

    import "google/protobuf/any.proto";
    import "google/protobuf/duration.proto";
    import "google/protobuf/empty.proto";
    import "google/protobuf/field_mask.proto";
    import "google/protobuf/struct.proto";
    import "google/protobuf/timestamp.proto";
    import "google/protobuf/wrappers.proto";

    // A colour.
    enum Color {
      // Not set.
      COLOR_UNSPECIFIED = 0;
      COLOR_RED = 1;
      COLOR_GREEN = 2;
    }

    // Every scalar type once.
    message Scalars {
      int32 f_int32 = 1;
      int64 f_int64 = 2;
      uint32 f_uint32 = 3;
      uint64 f_uint64 = 4;
      sint32 f_sint32 = 5;
      sint64 f_sint64 = 6;
      fixed32 f_fixed32 = 7;
      fixed64 f_fixed64 = 8;
      sfixed32 f_sfixed32 = 9;
      sfixed64 f_sfixed64 = 10;
      float f_float = 11;
      double f_double = 12;
      bool f_bool = 13;
      string f_string = 14;
      bytes f_bytes = 15;
      Color f_color = 16;
      string renamed = 17 [json_name = "customName"];
    }

    // Every scalar type repeated.
    message Repeateds {
      repeated int32 r_int32 = 1;
      repeated int64 r_int64 = 2;
      repeated uint32 r_uint32 = 3;
      repeated uint64 r_uint64 = 4;
      repeated sint32 r_sint32 = 5;
      repeated sint64 r_sint64 = 6;
      repeated fixed32 r_fixed32 = 7;
      repeated fixed64 r_fixed64 = 8;
      repeated sfixed32 r_sfixed32 = 9;
      repeated sfixed64 r_sfixed64 = 10;
      repeated float r_float = 11;
      repeated double r_double = 12;
      repeated bool r_bool = 13;
      repeated string r_string = 14;
      repeated bytes r_bytes = 15;
      repeated Color r_color = 16;
      repeated Nested r_nested = 17;
      repeated int32 unpacked = 18 [packed = false];
    }

    // A recursive message.
    message Nested {
      // A leaf.
      message Leaf {
        bool on = 1;
      }
      string name = 1;
      Nested child = 2;
      repeated int32 values = 3;
      Leaf leaf = 4;
    }

    // Maps with every kind of key.
    message Maps {
      map<string, int32> string_to_int32 = 1;
      map<int64, string> int64_to_string = 2;
      map<bool, Nested> bool_to_nested = 3;
      map<uint32, Color> uint32_to_color = 4;
      map<sint64, bytes> sint64_to_bytes = 5;
      map<fixed32, double> fixed32_to_double = 6;
      map<string, google.protobuf.Value> string_to_value = 7;
      map<sfixed64, google.protobuf.Timestamp> sfixed64_to_timestamp = 8;
      map<int32, uint64> int32_to_uint64 = 9;
    }

    // A oneof and proto3 optional fields.
    message Choice {
      // At most one.
      oneof pick {
        string text = 1;
        int64 number = 2;
        Nested nested = 3;
        google.protobuf.Empty nothing = 4;
        Color color = 5;
      }
      optional int32 maybe_int = 6;
      optional string maybe_text = 7;
      optional Color maybe_color = 8;
      int32 plain = 9;
    }

    // The well-known types with a special JSON form.
    message WellKnown {
      google.protobuf.Timestamp timestamp = 1;
      google.protobuf.Duration duration = 2;
      google.protobuf.DoubleValue double_value = 3;
      google.protobuf.FloatValue float_value = 4;
      google.protobuf.Int64Value int64_value = 5;
      google.protobuf.UInt64Value uint64_value = 6;
      google.protobuf.Int32Value int32_value = 7;
      google.protobuf.UInt32Value uint32_value = 8;
      google.protobuf.BoolValue bool_value = 9;
      google.protobuf.StringValue string_value = 10;
      google.protobuf.BytesValue bytes_value = 11;
      google.protobuf.Struct struct_value = 12;
      google.protobuf.Value value = 13;
      google.protobuf.ListValue list_value = 14;
      google.protobuf.FieldMask field_mask = 15;
      google.protobuf.Empty empty = 16;
      google.protobuf.Any any = 17;
      repeated google.protobuf.Any anys = 18;
      repeated google.protobuf.Timestamp timestamps = 19;
      repeated google.protobuf.Value values = 20;
      google.protobuf.NullValue null_value = 21;
      repeated google.protobuf.Int32Value int32_values = 22;
    }

    // Everything together.
    message Everything {
      Scalars scalars = 1;
      Repeateds repeateds = 2;
      Maps maps = 3;
      Choice choice = 4;
      WellKnown well_known = 5;
      repeated Everything children = 6;
    }

    // A service with every streaming kind.
    service Streams {
      rpc Unary(Scalars) returns (Scalars);
      rpc ClientStream(stream Scalars) returns (Nested);
      rpc ServerStream(Nested) returns (stream Scalars);
      rpc Both(stream Nested) returns (stream Nested);
    }
    """

  static let legacy = """
    // proto2: presence for every singular field, closed enums, required fields, groups.
    syntax = "proto2";

    package dynamictest.v1;

    message Legacy {
      enum Kind {
        KIND_A = 1;
        KIND_B = 2;
      }
      optional int32 count = 1;
      required string id = 2;
      repeated int32 numbers = 3;
      repeated int32 packed_numbers = 4 [packed = true];
      optional Kind kind = 5;
      optional group Item = 6 {
        optional string label = 7;
      }
    }
    """
}
