import Glibc

/// A socket error with the failing call and `errno`.
public struct SocketError: Error, Sendable, CustomStringConvertible {
  public let operation: String
  public let errorNumber: Int32
  public var description: String {
    errorNumber == 0 ? operation : "\(operation): \(String(cString: strerror(errorNumber)))"
  }
}

/// Non-blocking TCP sockets, as the HTTP/2 transports use them.
public enum TCPSocket {
  /// Listens on `host:port` (IPv4 or IPv6 literal or name; port 0 picks a free port). Returns the
  /// descriptor and the bound port.
  public static func listen(host: String, port: Int, backlog: Int32 = 512) throws(SocketError) -> (
    descriptor: Int32, port: Int
  ) {
    let address = try resolve(host: host, port: port, passive: true)
    let descriptor = socket(
      Int32(address.family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw SocketError(operation: "socket", errorNumber: errno) }
    var one: Int32 = 1
    setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let bound = address.storage.withUnsafeBytes {
      bind(descriptor, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), address.length)
    }
    guard bound == 0, Glibc.listen(descriptor, backlog) == 0 else {
      let error = SocketError(operation: "bind \(host):\(port)", errorNumber: errno)
      close(descriptor)
      throw error
    }
    setNonBlocking(descriptor)
    return (descriptor, localPort(descriptor))
  }

  /// Accepts one pending connection; `nil` when none is waiting.
  public static func accept(_ listener: Int32) -> (descriptor: Int32, peer: String)? {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let descriptor = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.accept(listener, $0, &length)
      }
    }
    guard descriptor >= 0 else { return nil }
    setNonBlocking(descriptor)
    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    var one: Int32 = 1
    setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    return (descriptor, describe(storage))
  }

  /// Starts connecting to `host:port` without blocking; the socket becomes writable when the
  /// connection is established or failed (see ``connectionError(_:)``).
  public static func connect(host: String, port: Int) throws(SocketError) -> Int32 {
    let address = try resolve(host: host, port: port, passive: false)
    let descriptor = socket(
      Int32(address.family),
      Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard descriptor >= 0 else { throw SocketError(operation: "socket", errorNumber: errno) }
    var one: Int32 = 1
    setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    let result = address.storage.withUnsafeBytes {
      Glibc.connect(descriptor, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), address.length)
    }
    if result != 0 && errno != EINPROGRESS {
      let error = SocketError(operation: "connect \(host):\(port)", errorNumber: errno)
      close(descriptor)
      throw error
    }
    return descriptor
  }

  /// The outcome of a non-blocking connect, once the socket is writable.
  public static func connectionError(_ descriptor: Int32) -> SocketError? {
    var error: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
    return error == 0 ? nil : SocketError(operation: "connect", errorNumber: error)
  }

  /// Reads what is available into `buffer`: the count, 0 at end of stream, `nil` when it would
  /// block.
  public static func read(_ descriptor: Int32, into buffer: inout [UInt8]) throws(SocketError) -> Int? {
    let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
    if count >= 0 { return count }
    if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return nil }
    throw SocketError(operation: "read", errorNumber: errno)
  }

  /// Writes as much of `bytes[offset...]` as the socket takes; returns the count written.
  public static func write(_ descriptor: Int32, _ bytes: [UInt8], from offset: Int) throws(SocketError) -> Int
  {
    let count = bytes.withUnsafeBytes { buffer in
      send(descriptor, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
    }
    if count >= 0 { return count }
    if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
    throw SocketError(operation: "write", errorNumber: errno)
  }

  /// Closes a descriptor.
  public static func close(_ descriptor: Int32) { _ = Glibc.close(descriptor) }

  private static func setNonBlocking(_ descriptor: Int32) {
    _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
  }

  private static func localPort(_ descriptor: Int32) -> Int {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    _ = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return port(of: storage)
  }

  private static func port(of storage: sockaddr_storage) -> Int {
    var storage = storage
    let family = Int32(storage.ss_family)
    return withUnsafePointer(to: &storage) { pointer in
      if family == AF_INET6 {
        return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
          Int(UInt16(bigEndian: $0.pointee.sin6_port))
        }
      }
      return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
        Int(UInt16(bigEndian: $0.pointee.sin_port))
      }
    }
  }

  private static func describe(_ storage: sockaddr_storage) -> String {
    var storage = storage
    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    let length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let result = withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
      }
    }
    guard result == 0 else { return "unknown" }
    let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return Int32(storage.ss_family) == AF_INET6
      ? "[\(name)]:\(port(of: storage))" : "\(name):\(port(of: storage))"
  }

  private struct ResolvedAddress {
    var family: Int32
    var storage: [UInt8]
    var length: socklen_t
  }

  private static func resolve(host: String, port: Int, passive: Bool) throws(SocketError) -> ResolvedAddress {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = passive ? AI_PASSIVE : 0
    var result: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result)
    guard status == 0, let first = result else {
      throw SocketError(
        operation: "resolve \(host): \(String(cString: gai_strerror(status)))", errorNumber: 0)
    }
    defer { freeaddrinfo(result) }
    let info = first.pointee
    let bytes = Array(UnsafeRawBufferPointer(start: info.ai_addr, count: Int(info.ai_addrlen)))
    return ResolvedAddress(family: info.ai_family, storage: bytes, length: info.ai_addrlen)
  }
}
