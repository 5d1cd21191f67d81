// Feeds arbitrary bytes, cut into DATA-frame-sized pieces at places the input chooses, to the gRPC
// message deframer. Whatever the cuts, it must yield the same messages and the same error as one
// piece, never a message above the limit, and the messages re-framed must be exactly the bytes
// consumed.
@testable import RPCTransportHTTP2

let limit = 1 << 12

func deframe(_ pieces: [[UInt8]]) -> (messages: [[UInt8]], error: GRPCFramingError?, partial: Int) {
  var deframer = GRPCMessageDeframer(maximumMessageBytes: limit)
  var messages: [[UInt8]] = []
  for piece in pieces {
    do {
      messages += try deframer.append(piece)
    } catch {
      return (messages, error, deframer.partialBytes)
    }
  }
  return (messages, nil, deframer.partialBytes)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let input = Array(UnsafeBufferPointer(start: data, count: size))
  // The first byte seeds the cut points; the rest is the stream.
  var seed = UInt64(input[0]) &* 0x9E37_79B9_7F4A_7C15 | 1
  let stream = Array(input.dropFirst())
  var pieces: [[UInt8]] = []
  var index = 0
  while index < stream.count {
    seed ^= seed << 13
    seed ^= seed >> 7
    seed ^= seed << 17
    let length = min(Int(seed % 9), stream.count - index)
    pieces.append(Array(stream[index..<index + length]))
    index += length
  }
  let whole = deframe([stream])
  let cut = deframe(pieces)
  // (On an error the one-piece call returns nothing, the cut one what came before: compare the
  // messages of error-free streams only.)
  precondition(whole.error == cut.error, "the cuts changed the error")
  if whole.error == nil { precondition(whole.messages == cut.messages, "the cuts changed the messages") }
  precondition(cut.messages.allSatisfy { $0.count <= limit }, "a message above the limit")
  let reframed = cut.messages.flatMap { GRPCFraming.frame($0) }
  precondition(Array(stream.prefix(reframed.count)) == reframed, "the messages are not the bytes consumed")
  if cut.error == nil {
    // What is held is the partial message, plus its 5-byte prefix once that was read.
    let held = stream.count - reframed.count
    precondition(held == cut.partial || held == cut.partial + 5, "bytes lost or invented")
  }
  return 0
}
