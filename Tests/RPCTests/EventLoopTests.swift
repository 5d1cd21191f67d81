import Foundation
import Glibc
import HTTP2
import Testing

@Suite("Event loop")
struct EventLoopTests {
  /// A transport's `close()` stops its loop and its deinit stops it again. The second stop once
  /// wrote its wake-up byte into the loop's pipe after the ended thread had closed it, that is,
  /// into whatever the process had opened under that number since: another connection's socket.
  @Test("a late stop() writes nothing into descriptors opened after the loop ended")
  func lateStop() async throws {
    let loop = EventLoop(name: "late-stop")
    loop.stop()
    // The thread ends once it sees the stop; work submitted from now on is refused.
    for _ in 0..<100 {
      if (try? await loop.submit { true }) == nil { break }
      try await Task.sleep(for: .milliseconds(10))
    }
    try await Task.sleep(for: .milliseconds(100))
    // Sockets opened now take the lowest free numbers: the pipe's, had it been closed.
    var pairs: [[Int32]] = []
    for _ in 0..<16 {
      var pair: [Int32] = [0, 0]
      try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
      for end in pair { _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK) }
      pairs.append(pair)
    }
    defer { for pair in pairs { close(pair[0]); close(pair[1]) } }
    loop.stop()
    for end in pairs.flatMap({ $0 }) {
      var byte: UInt8 = 0
      #expect(read(end, &byte, 1) < 0 && errno == EAGAIN, "a byte arrived on a socket that nobody wrote to")
    }
  }
}
