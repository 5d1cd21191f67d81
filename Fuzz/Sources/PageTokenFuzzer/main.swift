// Feeds arbitrary text to ListPayments' page-token parser twice: as a token from the network
// (almost all of which fail the signature check) and signed with the service's key, so that the
// checks behind the signature (cursor range, payment ID, digest, age) see arbitrary fields too.
// Any crash is a bug (a token from the network once trapped here); refusals are expected. A token
// that parses must re-encode to one that parses the same.
import Foundation

@testable import QueryService

let key = Array("fuzzing key, 32 bytes long......".utf8)
let now: Int64 = 1_800_000_000

func check(_ token: String) {
  guard case .success(let parsed) = PageToken.decode(token, key: key, now: now) else { return }
  let again = PageToken.decode(parsed.encoded(key: key), key: key, now: now)
  precondition(again == .success(parsed), "a parsed token did not survive re-encoding")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  check(text)
  let signed = text + "." + PageToken.mac(text, key: key)
  check(
    Data(signed.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: ""))
  return 0
}
